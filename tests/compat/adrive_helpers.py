"""Helpers for the Aliyun Drive dialect tests (test_adrive.py) and the native
instant-upload tests (test_instant_native.py).

* tenants, refresh tokens and metrics through Chuan's admin/metrics endpoints;
* `AliyunRedirect`: redirects the real aligo 6.2.8 SDK to the test server by
  wrapping requests.adapters.HTTPAdapter.send in this process (aligo has no
  base-URL option; its code stays untouched) and records every HTTP exchange
  so tests can assert on what the SDK really sent and got;
* `make_aligo`: an `Aligo` logged in by refresh token, with a fresh config
  dir (~/.aligo/<name>.json never pre-exists, no QR login ever);
* `AdriveRaw`: raw JSON calls with `requests` (for what aligo cannot do);
* the hashes the protocols use: aligo pre_hash / content_hash / proof_code,
  CRC-64/XZ, and the native instant-upload HMAC proof;
* `env_server_factory`: like conftest's server_factory, but with extra
  environment variables for the server process (CHUAN_CHALLENGE_TTL_SECS,
  CHUAN_ADRIVE_URL_TTL_SECS), without touching compat_helpers.py.
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import hashlib
import hmac
import importlib
import json
import logging
import lzma
import os
import re
import secrets
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
import requests
import requests.adapters

from compat_helpers import ChuanServer, METRICS_PATH, unique_name

TENANTS_PATH = "/_chuan/admin/tenants"
REFRESH_TOKENS_PATH = "/_chuan/admin/adrive/refresh-tokens"
INSTANT_CHALLENGE_PATH = "/_chuan/v1/instant/challenge"
INSTANT_COMMIT_PATH = "/_chuan/v1/instant/commit"

PART_PUTS_METRIC = "chuan_adrive_part_puts_total"
INSTANT_HITS_METRIC = "chuan_instant_hits_total"

# aligo's part size for files below 100 000 MiB (core/Create.py).
ALIGO_CHUNK = 10 * 1024 * 1024

# Hosts aligo 6.2.8 talks to (aligo/core/Config.py); all go to the test server.
ALIYUN_HOST_RE = re.compile(r"(^|\.)(aliyundrive\.com|alipan\.com)$", re.IGNORECASE)


# --------------------------------------------------------------------------
# servers with extra environment variables


class EnvChuanServer(ChuanServer):
    """A ChuanServer whose process gets `env` on top of this process's environment."""

    def __init__(self, *args, env: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, env={k: str(v) for k, v in (env or {}).items()}, **kwargs)


@pytest.fixture
def env_server_factory(request, tmp_path):
    """`env_server_factory(env={...}, name="envsrv")` starts a separate server
    with its own data dir and the extra environment. Every instance still
    running at the end of the test is stopped with SIGTERM and must exit 0."""
    created: list[EnvChuanServer] = []
    existing = getattr(request.node, "_chuan_servers", None)
    if existing is None:
        request.node._chuan_servers = created
    registry = request.node._chuan_servers

    def make(env: dict[str, str] | None = None, name: str = "envsrv") -> EnvChuanServer:
        name = f"{name}{len(created)}"
        srv = EnvChuanServer(data_dir=tmp_path / f"{name}-data", work_dir=tmp_path, name=name, env=env)
        created.append(srv)
        if registry is not created:
            registry.append(srv)
        srv.start()
        return srv

    yield make

    problems = []
    for srv in created:
        if srv.proc is None:
            continue
        try:
            rc = srv.stop()
        except AssertionError as e:
            problems.append(str(e))
            continue
        if rc != 0:
            problems.append(f"{srv.name}: exit code {rc} after SIGTERM (expected 0)\n{srv.log_tail()}")
    assert not problems, "\n\n".join(problems)


# --------------------------------------------------------------------------
# admin: tenants, refresh tokens, metrics


@dataclasses.dataclass
class Tenant:
    name: str
    access_key: str
    secret_key: str
    # The tenant's Tencent COS appid, as the tenants endpoint answers it.
    cos_appid: object = None

    def s3(self, server):
        return server.client(self.access_key, self.secret_key)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.access_key, self.secret_key)


@dataclasses.dataclass
class DriveTenant(Tenant):
    refresh_token: str = ""
    default_drive_id: str = ""


def create_tenant(server, name: str | None = None) -> Tenant:
    name = name or unique_name("t")
    r = requests.post(
        f"{server.endpoint}{TENANTS_PATH}",
        params={"name": name},
        auth=(server.access_key, server.secret_key),
        timeout=30,
    )
    assert r.status_code == 201, f"POST {TENANTS_PATH}?name={name}: HTTP {r.status_code} {r.text[:500]}"
    cred = r.json()
    assert cred.get("tenant") == name and cred.get("access_key") and cred.get("secret_key"), cred
    return Tenant(
        name=name, access_key=cred["access_key"], secret_key=cred["secret_key"], cos_appid=cred.get("cos_appid")
    )


def issue_refresh_token(server, tenant: str) -> dict:
    r = requests.post(
        f"{server.endpoint}{REFRESH_TOKENS_PATH}",
        params={"tenant": tenant},
        auth=(server.access_key, server.secret_key),
        timeout=30,
    )
    assert r.status_code == 201, (
        f"POST {REFRESH_TOKENS_PATH}?tenant={tenant}: HTTP {r.status_code} {r.text[:500]}"
    )
    body = r.json()
    assert body.get("tenant") == tenant, body
    assert isinstance(body.get("refresh_token"), str) and body["refresh_token"], body
    assert isinstance(body.get("default_drive_id"), str) and body["default_drive_id"], body
    return body


def create_drive_tenant(server, name: str | None = None) -> DriveTenant:
    t = create_tenant(server, name or unique_name("dt"))
    tok = issue_refresh_token(server, t.name)
    return DriveTenant(
        name=t.name,
        access_key=t.access_key,
        secret_key=t.secret_key,
        refresh_token=tok["refresh_token"],
        default_drive_id=tok["default_drive_id"],
    )


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_value(server, name: str) -> float:
    """Sum of all samples of counter `name` (any labels) in /_chuan/metrics.
    A counter that is not exposed at all is a failure, not 0."""
    r = requests.get(server.endpoint + METRICS_PATH, auth=(server.access_key, server.secret_key), timeout=10)
    assert r.status_code == 200, f"GET {METRICS_PATH}: HTTP {r.status_code}"
    total, seen = 0.0, False
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            total += float(m.group(3))
            seen = True
    assert seen, f"metric {name} is not exposed by {METRICS_PATH}"
    return total


def metrics(server) -> dict[str, float]:
    return {
        PART_PUTS_METRIC: metric_value(server, PART_PUTS_METRIC),
        INSTANT_HITS_METRIC: metric_value(server, INSTANT_HITS_METRIC),
    }


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


# --------------------------------------------------------------------------
# hashes


def sha1_upper(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest().upper()


def pre_hash(data: bytes) -> str:
    """aligo's pre_hash: lower-case SHA-1 hex of the first 1024 bytes."""
    return hashlib.sha1(data[:1024]).hexdigest()


def proof_offset(access_token: str, size: int) -> int:
    m = int(hashlib.md5(access_token.encode()).hexdigest()[:16], 16)
    return m % size if size else 0


def proof_code(access_token: str, data: bytes) -> str:
    """aligo's `_get_proof_code` (proof_version v1)."""
    size = len(data)
    off = proof_offset(access_token, size)
    return base64.b64encode(data[off : off + min(8, size - off)]).decode()


def wrong_proof_code(access_token: str, data: bytes) -> str:
    """A proof of the right length whose every byte differs from the right one."""
    size = len(data)
    off = proof_offset(access_token, size)
    right = data[off : off + min(8, size - off)]
    return base64.b64encode(bytes(b ^ 0xFF for b in right)).decode()


def crc64_xz(data: bytes) -> int:
    """CRC-64/XZ (the ECMA-182 CRC that xz puts in its block check), taken from
    the check field of an xz container made by the standard library."""
    if not data:
        return 0
    c = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=0)
    backward_size = struct.unpack("<I", c[-8:-4])[0]
    index_end = len(c) - 12
    index_start = index_end - (backward_size + 1) * 4
    return struct.unpack("<Q", c[index_start - 8 : index_start])[0]


assert crc64_xz(b"123456789") == 0x995DC9BBDF1939FA  # the catalogued check value


def instant_proof(nonce_hex: str, ranges: list, data: bytes) -> str:
    msg = b"".join(data[int(off) : int(off) + int(length)] for off, length in ranges)
    return hmac.new(bytes.fromhex(nonce_hex), msg, hashlib.sha256).hexdigest()


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


# --------------------------------------------------------------------------
# HTTP traffic redirection and recording


@dataclasses.dataclass
class Exchange:
    method: str
    url: str
    path: str
    query: dict
    req_headers: dict
    req_json: Any
    req_len: int
    status: int
    resp_headers: dict
    resp_json: Any
    resp_text: str

    def short(self) -> str:
        body = self.resp_text[:300].replace("\n", " ")
        return f"{self.method} {self.path} -> {self.status} {body}"


def _body_len(body) -> int:
    if body is None:
        return 0
    if isinstance(body, (bytes, bytearray, str)):
        return len(body)
    return -1


class AliyunRedirect:
    """While active, every `requests` call in this process to an
    *.aliyundrive.com / *.alipan.com URL goes to `endpoint` instead (same path
    and query), and every exchange (also those to the server directly, e.g.
    upload and download URLs) is recorded in `self.exchanges`.

    `before_send(prepared_request)` may be set to delay or inspect requests."""

    _original_send = None
    _active: "AliyunRedirect | None" = None

    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/")
        self.exchanges: list[Exchange] = []
        self.before_send = None

    # ---- install / uninstall -------------------------------------------

    def __enter__(self) -> "AliyunRedirect":
        assert AliyunRedirect._active is None, "an AliyunRedirect is already active"
        if AliyunRedirect._original_send is None:
            AliyunRedirect._original_send = requests.adapters.HTTPAdapter.send
        original = AliyunRedirect._original_send

        def send(adapter, request, *args, **kwargs):
            active = AliyunRedirect._active
            if active is not None:
                request.url = active.rewrite(request.url)
                if active.before_send is not None:
                    active.before_send(request)
            response = original(adapter, request, *args, **kwargs)
            if active is not None:
                active.record(request, response, kwargs.get("stream", False))
            return response

        requests.adapters.HTTPAdapter.send = send
        AliyunRedirect._active = self
        return self

    def __exit__(self, *exc) -> None:
        AliyunRedirect._active = None
        requests.adapters.HTTPAdapter.send = AliyunRedirect._original_send

    # ---- rewriting / recording -----------------------------------------

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ALIYUN_HOST_RE.search(host):
            target = urlsplit(self.endpoint)
            return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))
        return url

    def record(self, request, response, stream: bool) -> None:
        parts = urlsplit(request.url)
        req_json = None
        ctype = (request.headers.get("Content-Type") or "").lower()
        if "json" in ctype and isinstance(request.body, (bytes, str)) and len(request.body) < 1_000_000:
            try:
                req_json = json.loads(request.body)
            except ValueError:
                req_json = None
        resp_json, resp_text = None, ""
        if not stream:
            content = response.content  # already read for non-stream requests anyway
            if len(content) < 1_000_000:
                resp_text = content.decode("utf-8", "replace")
                if resp_text.lstrip().startswith(("{", "[")):
                    try:
                        resp_json = json.loads(resp_text)
                    except ValueError:
                        resp_json = None
            else:
                resp_text = f"<{len(content)} bytes>"
        else:
            resp_text = "<streamed>"
        self.exchanges.append(
            Exchange(
                method=request.method,
                url=request.url,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                req_headers={k.lower(): v for k, v in request.headers.items()},
                req_json=req_json,
                req_len=_body_len(request.body),
                status=response.status_code,
                resp_headers={k.lower(): v for k, v in response.headers.items()},
                resp_json=resp_json,
                resp_text=resp_text,
            )
        )

    # ---- queries ----------------------------------------------------------

    def mark(self) -> int:
        return len(self.exchanges)

    def since(self, mark: int) -> list[Exchange]:
        return self.exchanges[mark:]

    def calls(self, path: str, since: int = 0, method: str | None = None) -> list[Exchange]:
        return [
            e for e in self.exchanges[since:] if e.path == path and (method is None or e.method == method)
        ]

    def describe(self, since: int = 0, last: int = 25) -> str:
        ex = self.exchanges[since:][-last:]
        return "\n".join(e.short() for e in ex) or "<no HTTP exchanges recorded>"

    def assert_no_throttling_or_server_errors(self) -> None:
        """aligo sleeps 5^i s on 429/502/504 and raises on 500: the dialect
        must never answer those."""
        bad = [e for e in self.exchanges if e.status in (429, 502, 504) or e.status >= 500]
        assert not bad, "server answered 429/5xx:\n" + "\n".join(e.short() for e in bad)


# --------------------------------------------------------------------------
# the real aligo SDK

_ALIGO = None


def import_aligo():
    """Import aligo with HOME pointing at a fresh temp dir: aligo resolves
    ~/.aligo (and ~/.aligo/config.json5) once, at import time."""
    global _ALIGO
    if _ALIGO is None:
        home = tempfile.mkdtemp(prefix="chuan-aligo-home-")
        atexit.register(shutil.rmtree, home, True)
        saved = os.environ.get("HOME")
        os.environ["HOME"] = home
        try:
            _ALIGO = importlib.import_module("aligo")
        finally:
            if saved is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = saved
        # Bound aligo's back-off on 429/502/504 (5^i s by default) so a
        # misbehaving server fails the test instead of stalling the suite;
        # AliyunRedirect.assert_no_throttling_or_server_errors flags them.
        sys.modules["aligo.core.Auth"].Auth._SLEEP_TIME_SEC = 1
    return _ALIGO


def make_aligo(tenant: DriveTenant, config_dir: Path, name: str | None = None):
    """`Aligo(name=..., refresh_token=..., re_login=False)` with a config dir
    of its own, so ~/.aligo/<name>.json never exists beforehand (no silent
    token reuse, never a QR login)."""
    aligo = import_aligo()
    auth_mod = sys.modules["aligo.core.Auth"]
    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    auth_mod.set_config_folder(str(config_dir))
    name = name or f"chuan-{secrets.token_hex(4)}"
    assert not (config_dir / f"{name}.json").exists()
    return aligo.Aligo(
        name=name,
        refresh_token=tenant.refresh_token,
        re_login=False,
        level=logging.WARNING,
        requests_timeout=120,
        request_failed_delay=0.5,
    )


def aligo_token(ali) -> str:
    return ali._auth.token.access_token


# --------------------------------------------------------------------------
# raw Aliyun Drive calls


class AdriveRaw:
    """JSON calls to the dialect with `requests`, as a given access token."""

    def __init__(self, endpoint: str, access_token: str, drive_id: str, bearer: bool = False):
        self.endpoint = endpoint.rstrip("/")
        self.access_token = access_token
        self.drive_id = drive_id
        self.bearer = bearer

    def headers(self) -> dict:
        tok = f"Bearer {self.access_token}" if self.bearer else self.access_token
        return {"Authorization": tok, "Content-Type": "application/json"}

    def post(self, path: str, body: dict | None = None, params: dict | None = None) -> requests.Response:
        return requests.post(
            self.endpoint + path,
            data=json.dumps(body or {}),
            params=params,
            headers=self.headers(),
            timeout=120,
        )

    # ---- convenience wrappers (return the raw response) ----------------

    def create_folder(self, name: str, parent: str = "root", mode: str = "auto_rename") -> requests.Response:
        return self.post(
            "/adrive/v2/file/createWithFolders",
            {
                "drive_id": self.drive_id,
                "parent_file_id": parent,
                "name": name,
                "type": "folder",
                "check_name_mode": mode,
            },
        )

    def create_file(
        self,
        name: str,
        size: int,
        parent: str = "root",
        parts: int | None = None,
        path: str = "/adrive/v2/file/createWithFolders",
        **extra,
    ) -> requests.Response:
        if parts is None:
            parts = -(-size // ALIGO_CHUNK)
        body = {
            "drive_id": self.drive_id,
            "part_info_list": [{"part_number": i} for i in range(1, parts + 1)],
            "parent_file_id": parent,
            "name": name,
            "type": "file",
            "check_name_mode": "auto_rename",
            "size": size,
            "content_hash_name": "sha1",
        }
        body.update(extra)
        return self.post(path, body)

    def create_with_content_hash(self, name: str, data: bytes, proof: str, parent: str = "root", **kw):
        return self.create_file(
            name,
            len(data),
            parent=parent,
            content_hash=sha1_upper(data),
            proof_code=proof,
            proof_version="v1",
            **kw,
        )

    def complete(self, file_id: str, upload_id: str, parts: int = 1, **extra) -> requests.Response:
        body = {
            "drive_id": self.drive_id,
            "file_id": file_id,
            "upload_id": upload_id,
            "part_info_list": [{"part_number": i} for i in range(1, parts + 1)],
        }
        body.update(extra)
        return self.post("/v2/file/complete", body)

    def get_upload_url(self, file_id: str, upload_id: str, parts: list[int]) -> requests.Response:
        return self.post(
            "/v2/file/get_upload_url",
            {
                "drive_id": self.drive_id,
                "file_id": file_id,
                "upload_id": upload_id,
                "part_info_list": [{"part_number": p} for p in parts],
            },
        )

    def list_uploaded_parts(self, file_id: str, upload_id: str) -> requests.Response:
        return self.post(
            "/v2/file/list_uploaded_parts",
            {"drive_id": self.drive_id, "file_id": file_id, "upload_id": upload_id},
        )

    def list_v3(self, parent: str = "root", limit: int = 200, marker: str | None = None, **extra):
        body = {
            "drive_id": self.drive_id,
            "parent_file_id": parent,
            "limit": limit,
            "all": False,
            "fields": "*",
            "order_by": "updated_at",
            "order_direction": "DESC",
            "url_expire_sec": 14400,
        }
        if marker:
            body["marker"] = marker
        body.update(extra)
        return self.post("/adrive/v3/file/list", body)

    def list_v2(self, parent: str = "root", limit: int = 200, marker: str | None = None):
        body = {"drive_id": self.drive_id, "parent_file_id": parent, "limit": limit}
        if marker:
            body["marker"] = marker
        return self.post("/v2/file/list", body)

    def list_all(self, parent: str = "root", limit: int = 200, max_pages: int = 100) -> list[dict]:
        items: list[dict] = []
        marker = None
        for _ in range(max_pages):
            r = self.list_v3(parent, limit=limit, marker=marker)
            assert r.status_code == 200, f"/adrive/v3/file/list: HTTP {r.status_code} {r.text[:500]}"
            body = r.json()
            items.extend(body["items"])
            marker = body.get("next_marker")
            assert marker is not None, f"next_marker missing (must be '' at the end): {body}"
            if marker == "":
                return items
        raise AssertionError(f"listing did not end within {max_pages} pages")

    def get(self, file_id: str, drive_id: str | None = None) -> requests.Response:
        return self.post("/v2/file/get", {"drive_id": drive_id or self.drive_id, "file_id": file_id})

    def get_download_url(self, file_id: str, drive_id: str | None = None) -> requests.Response:
        return self.post(
            "/v2/file/get_download_url",
            {"drive_id": drive_id or self.drive_id, "file_id": file_id, "expire_sec": 14400},
        )

    def download(self, file_id: str) -> bytes:
        r = self.get_download_url(file_id)
        assert r.status_code == 200, f"get_download_url: HTTP {r.status_code} {r.text[:500]}"
        url = r.json().get("url")
        assert url, f"get_download_url returned no url: {r.text[:500]}"
        g = requests.get(url, timeout=120)
        assert g.status_code == 200, f"GET download url: HTTP {g.status_code} {g.text[:300]}"
        return g.content


def raw_login(server, refresh_token: str) -> dict:
    r = requests.post(
        server.endpoint + "/v2/account/token",
        json={"refresh_token": refresh_token, "grant_type": "refresh_token"},
        timeout=30,
    )
    assert r.status_code == 200, f"/v2/account/token: HTTP {r.status_code} {r.text[:500]}"
    tok = r.json()
    for field in ("access_token", "refresh_token", "expires_in", "token_type", "user_id", "default_drive_id"):
        assert tok.get(field) not in (None, ""), f"token response lacks {field}: {tok}"
    return tok


def raw_client(server, tenant: DriveTenant) -> AdriveRaw:
    tok = raw_login(server, tenant.refresh_token)
    return AdriveRaw(server.endpoint, tok["access_token"], tok["default_drive_id"])


def assert_adrive_error(r: requests.Response, status: int | tuple | None = None, what: str = "") -> dict:
    """A dialect error: 4xx (or exactly `status`), JSON {code, message}."""
    if status is None:
        ok = 400 <= r.status_code < 500
    elif isinstance(status, tuple):
        ok = r.status_code in status
    else:
        ok = r.status_code == status
    assert ok, f"{what}: expected HTTP {status or '4xx'}, got {r.status_code} {r.text[:500]}"
    assert r.status_code not in (429, 502, 504), f"{what}: HTTP {r.status_code} makes aligo sleep"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"{what}: error body is not JSON: {r.text[:500]!r}")
    assert isinstance(body, dict) and body.get("code") and "message" in body, (
        f"{what}: error body lacks code/message: {body}"
    )
    return body


def upload_parts_raw(create_body: dict, data: bytes, chunk: int = ALIGO_CHUNK) -> list[requests.Response]:
    out = []
    for i, part in enumerate(create_body["part_info_list"]):
        out.append(requests.put(part["upload_url"], data=data[i * chunk : (i + 1) * chunk], timeout=120))
    return out


def raw_upload(client: AdriveRaw, name: str, data: bytes, parent: str = "root") -> dict:
    """Normal (non-instant) upload of `data` through the raw API; returns the
    completed file JSON."""
    r = client.create_file(name, len(data), parent=parent)
    assert r.status_code == 201, f"create {name}: HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body.get("rapid_upload") is not True, body
    for i, p in enumerate(upload_parts_raw(body, data)):
        assert 200 <= p.status_code < 300, f"part {i + 1} PUT: HTTP {p.status_code} {p.text[:300]}"
    c = client.complete(body["file_id"], body["upload_id"], parts=len(body["part_info_list"]))
    assert c.status_code == 200, f"complete {name}: HTTP {c.status_code} {c.text[:500]}"
    return c.json()


# --------------------------------------------------------------------------
# native instant upload


def instant_challenge(
    server, auth, bucket: str, key: str, size: int, sha256: str, prove: bool | None = None
) -> requests.Response:
    body = {"bucket": bucket, "key": key, "size": size, "sha256": sha256}
    if prove is not None:
        body["prove"] = prove
    return requests.post(server.endpoint + INSTANT_CHALLENGE_PATH, json=body, auth=auth, timeout=30)


_OMIT = object()


def instant_commit(server, auth, challenge_id: str, proof=_OMIT) -> requests.Response:
    body = {"challenge_id": challenge_id}
    if proof is not _OMIT:
        body["proof"] = proof
    return requests.post(server.endpoint + INSTANT_COMMIT_PATH, json=body, auth=auth, timeout=30)


def check_challenge(r: requests.Response, size: int, ttl_ms: int = 60_000) -> dict:
    """Validate a challenge answer against the contract; returns its JSON."""
    assert r.status_code == 200, f"challenge: HTTP {r.status_code} {r.text[:500]}"
    c = r.json()
    now_ms = int(time.time() * 1000)
    # Exactly these: the proof the server works out at issue (and anything else it keeps with
    # the challenge) must never reach the caller.
    assert set(c) == {"challenge_id", "proof_required", "nonce", "ranges", "expires_at"}, c
    assert isinstance(c.get("challenge_id"), str) and c["challenge_id"], c
    assert isinstance(c.get("proof_required"), bool), c
    nonce = c.get("nonce")
    assert isinstance(nonce, str) and re.fullmatch(r"[0-9a-fA-F]+", nonce) and len(nonce) % 2 == 0, c
    assert len(nonce) >= 32, f"nonce shorter than 128 bits: {c}"
    ranges = c.get("ranges")
    assert isinstance(ranges, list), c
    for rg in ranges:
        assert isinstance(rg, list) and len(rg) == 2 and all(isinstance(v, int) for v in rg), c
        off, length = rg
        assert 0 <= off and length > 0 and off + length <= size, f"range {rg} outside a {size}-byte file"
    if c["proof_required"]:
        assert ranges, f"proof required but no ranges: {c}"
    exp = c.get("expires_at")
    assert isinstance(exp, int), c
    assert now_ms - 500 < exp <= now_ms + ttl_ms + 5_000, (
        f"expires_at {exp} is not about now ({now_ms} ms) + {ttl_ms} ms"
    )
    return c


# --------------------------------------------------------------------------
# fixtures shared by the aligo test modules


@pytest.fixture
def redirect(server):
    """aligo's calls to aliyundrive.com go to the test server; no 429/5xx may be answered."""
    with AliyunRedirect(server.endpoint) as rd:
        yield rd
    rd.assert_no_throttling_or_server_errors()


@pytest.fixture
def drive(server) -> "DriveTenant":
    """A new tenant with a refresh token for its default drive."""
    return create_drive_tenant(server)


@pytest.fixture
def ali(drive, redirect, tmp_path):
    """The real aligo SDK logged in as `drive` (fresh config dir)."""
    return make_aligo(drive, tmp_path / "aligo-config")
