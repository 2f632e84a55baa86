"""Helpers for the UFile (UCloud US3 / Inspur OSS) dialect tests
(test_ufile.py) and the UCloud IoT device upload tests (test_iot.py).

* the real `ufile` SDK: 3.2.11 from the venv (`import ufile`), and 3.2.7 (the
  last one with `uploadhit` / `rename`) from <repo>/.venv/ufile-3.2.7
  (installed there by scripts/setup-venv.sh), imported in isolation under the
  package name `ufile327` (its modules only use relative imports, so the two
  versions keep separate `config` globals and HTTP sessions);
* pointing the SDK at the test server the two ways the SDK allows (the bucket
  is only ever in the Host name):
    - "localhost": suffix ".localhost:PORT" plus an in-process resolver shim
      (socket.getaddrinfo maps *.localhost -> 127.0.0.1);
    - "proxy": suffix ".ufile.invalid" plus HTTP_PROXY=http://127.0.0.1:PORT,
      so requests sends absolute-form request lines to the server;
  the suffix is set both with config.set_default(uploadsuffix=,
  downloadsuffix=) and in the FileManager / MultipartUploadUFile
  constructors (resumeuploadstream only uses the global default);
* independent implementations of what the SDK computes (so a test does not
  only check the SDK against itself): the ufile file etag (spec §1.3), the
  header signature and the presigned-download signature (spec §1.2), the
  UCloud API parameter signature (management API);
* raw `requests` calls for exact status / header / JSON checks, and
  assertion helpers for the UFile error contract;
* IoT device helpers (admin registration, the signed URL request).

Spec: /work/shared/specs/client-sdks.md §1, inspur-oss-api.md,
ucloud-iot-device-file-upload.md.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import importlib
import importlib.util
import json
import logging
import os
import socket
import struct
import sys
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
import requests

from adrive_helpers import Tenant, create_tenant  # noqa: F401  (re-exported)
from compat_helpers import MiB, REPO_ROOT, unique_name

import ufile  # noqa: E402  (3.2.11, from the venv)
import ufile.config  # noqa: E402
import ufile.filemanager  # noqa: E402
import ufile.multipartuploadufile  # noqa: E402
import ufile.util  # noqa: E402

UFILE_VERSION = "3.2.11"
UFILE327_VERSION = "3.2.7"
assert ufile.__version__ == UFILE_VERSION, (
    f"the venv holds ufile {ufile.__version__}, expected {UFILE_VERSION}: run scripts/setup-venv.sh"
)

UFILE_BLOCK = 4 * MiB  # ufile.config.BLOCKSIZE, the etag block and BlkSize
UFILE327_DIR = REPO_ROOT / ".venv" / "ufile-3.2.7"
PROXY_SUFFIX = ".ufile.invalid"
MODES = ("localhost", "proxy")
EMPTY_ETAG = "AAAAAA=="

IOT_DEVICES_PATH = "/_chuan/admin/iot/devices"
IOT_URL_PATH = "/api/v1/url"

# The SDK logs every request at INFO to stderr through logger "UCLOUD".
logging.getLogger("UCLOUD").setLevel(logging.WARNING)


# --------------------------------------------------------------------------
# the two SDK versions

_UFILE327 = None


def import_ufile327():
    """ufile 3.2.7 as package `ufile327` (separate module objects, separate
    config and HTTP session from the venv's 3.2.11)."""
    global _UFILE327
    if _UFILE327 is not None:
        return _UFILE327
    pkg_dir = UFILE327_DIR / "ufile"
    if not (pkg_dir / "filemanager.py").is_file():
        raise AssertionError(
            f"ufile {UFILE327_VERSION} not found at {pkg_dir}: run scripts/setup-venv.sh "
            "(it installs ufile==3.2.7 there with pip --target)"
        )
    name = "ufile327"
    spec = importlib.util.spec_from_file_location(
        name, pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    for sub in ("config", "util", "httprequest", "filemanager", "multipartuploadufile"):
        importlib.import_module(f"{name}.{sub}")
    assert mod.__version__ == UFILE327_VERSION, f"{pkg_dir} holds ufile {mod.__version__}"
    logging.getLogger("UCLOUD").setLevel(logging.WARNING)  # its logger.py reset it to INFO
    fm = sys.modules[f"{name}.filemanager"].FileManager
    assert hasattr(fm, "uploadhit") and hasattr(fm, "rename"), "ufile 3.2.7 lacks uploadhit/rename?"
    _UFILE327 = mod
    return mod


def sdk_config(mod):
    return sys.modules[f"{mod.__name__}.config"]


def sdk_filemanager(mod):
    return sys.modules[f"{mod.__name__}.filemanager"].FileManager


def sdk_multipart(mod):
    return sys.modules[f"{mod.__name__}.multipartuploadufile"].MultipartUploadUFile


# --------------------------------------------------------------------------
# name resolution and proxying

_orig_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    h = host.decode() if isinstance(host, (bytes, bytearray)) else host
    if isinstance(h, str) and h.lower().rstrip(".").endswith(".localhost"):
        host = "127.0.0.1"
    return _orig_getaddrinfo(host, *args, **kwargs)


def install_localhost_resolver() -> None:
    """Make *.localhost resolve to 127.0.0.1 in this process (what an
    /etc/hosts entry would do; glibc does not resolve *.localhost).
    Idempotent; only names ending in .localhost are affected."""
    if socket.getaddrinfo is not _getaddrinfo:
        socket.getaddrinfo = _getaddrinfo


_PROXY_VARS = ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@contextlib.contextmanager
def http_proxy(port: int | None):
    """HTTP_PROXY=http://127.0.0.1:PORT for everything `requests` sends to
    other hosts (the SDK's session and raw calls to *.ufile.invalid); direct
    calls to 127.0.0.1 / localhost (boto3, admin) bypass it. With port None:
    make sure no proxy from the host environment interferes."""
    saved = {k: os.environ.get(k) for k in _PROXY_VARS}
    for k in _PROXY_VARS:
        os.environ.pop(k, None)
    if port is not None:
        for k in ("HTTP_PROXY", "http_proxy"):
            os.environ[k] = f"http://127.0.0.1:{port}"
        for k in ("NO_PROXY", "no_proxy"):
            os.environ[k] = "127.0.0.1,localhost"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------
# what the SDK computes, implemented independently


def ufile_etag(data: bytes) -> str:
    """spec §1.3: base64url(uint32_le(n) || h), h = SHA1 of the one 4 MiB
    block, or SHA1 over the concatenated block SHA1s when n > 1, b"" for 0."""
    blocks = [data[i : i + UFILE_BLOCK] for i in range(0, len(data), UFILE_BLOCK)]
    h = b"".join(hashlib.sha1(b).digest() for b in blocks)
    if len(blocks) > 1:
        h = hashlib.sha1(h).digest()
    return base64.urlsafe_b64encode(struct.pack("<I", len(blocks)) + h).decode()


def quoted(etag: str) -> str:
    return f'"{etag}"'


def pattern_bytes(n: int) -> bytes:
    """The spec's worked-example data: bytes(i % 251 for i in range(n))."""
    unit = bytes(range(251))
    return (unit * (n // 251 + 1))[:n]


def string_to_sign(
    method: str,
    bucket: str,
    key: str,
    content_md5: str = "",
    content_type: str = "",
    date: str = "",
    listobjects: dict | None = None,
) -> str:
    s = f"{method.upper()}\n{content_md5}\n{content_type}\n{date}\n/{bucket}/{key}"
    if listobjects is not None:
        s += (
            "\nlistobjects\ndelimiter:{delimiter}\nmarker:{marker}\nmax-keys:{max-keys}\nprefix:{prefix}"
        ).format(**listobjects)
    return s


def hmac_sha1_b64(private_key: str, data: str) -> str:
    return base64.b64encode(hmac.new(private_key.encode(), data.encode(), hashlib.sha1).digest()).decode()


def authorization(public_key: str, private_key: str, sts: str) -> str:
    return f"UCloud {public_key}:{hmac_sha1_b64(private_key, sts)}"


def presign_signature(private_key: str, bucket: str, key: str, expires: int, method: str = "GET") -> str:
    return hmac_sha1_b64(private_key, f"{method.upper()}\n\n\n{expires}\n/{bucket}/{key}")


def api_signature(params: dict, private_key: str) -> str:
    """UCloud API (bucket management) signature, as ufile.auth.bucket_signature:
    SHA1 hex over the sorted key+value pairs followed by the private key."""
    s = "".join(f"{k}{params[k]}" for k in sorted(params)) + private_key
    return hashlib.sha1(s.encode()).hexdigest()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------
# one tenant + bucket, seen through the UFile dialect


@dataclasses.dataclass
class UFileCtx:
    server: Any
    mode: str
    public_key: str
    private_key: str
    bucket: str
    tenant: Tenant | None = None

    # ---- addressing ------------------------------------------------------

    @property
    def suffix(self) -> str:
        if self.mode == "localhost":
            return f".localhost:{self.server.port}"
        assert self.mode == "proxy", self.mode
        return PROXY_SUFFIX

    def host(self, bucket: str | None = None) -> str:
        return f"{bucket or self.bucket}{self.suffix}"

    def url(self, key: str = "", bucket: str | None = None, query: str = "") -> str:
        u = f"http://{self.host(bucket)}/{quote(key, safe='/~')}"
        return u + ("?" + query if query else "")

    def s3(self):
        """boto3 client with the same key pair (path style to 127.0.0.1)."""
        return self.server.client(self.public_key, self.private_key)

    def other(self, **changes) -> "UFileCtx":
        return dataclasses.replace(self, **changes)

    # ---- the real SDK --------------------------------------------------------

    def configure(self, mod=ufile, **extra) -> None:
        """Global SDK defaults: suffixes (needed by resumeuploadstream and
        upload_part_copy, which ignore the instance suffix), md5 off, a
        timeout so a hanging server fails the test."""
        kw = dict(uploadsuffix=self.suffix, downloadsuffix=self.suffix, connection_timeout=120, md5=False)
        kw.update(extra)
        sdk_config(mod).set_default(**kw)

    def fm(self, public_key: str | None = None, private_key: str | None = None, mod=ufile):
        self.configure(mod)
        return sdk_filemanager(mod)(
            public_key or self.public_key,
            private_key or self.private_key,
            upload_suffix=self.suffix,
            download_suffix=self.suffix,
        )

    def mp(self, public_key: str | None = None, private_key: str | None = None, mod=ufile):
        self.configure(mod)
        return sdk_multipart(mod)(
            public_key or self.public_key, private_key or self.private_key, upload_suffix=self.suffix
        )

    def fm327(self, public_key: str | None = None, private_key: str | None = None):
        return self.fm(public_key, private_key, mod=import_ufile327())

    # ---- raw requests ------------------------------------------------------

    def raw(
        self,
        method: str,
        key: str = "",
        *,
        bucket: str | None = None,
        query: str = "",
        headers: dict | None = None,
        data: Any = None,
        sign: bool = True,
        content_type: str | None = None,
        content_md5: str | None = None,
        listobjects: dict | None = None,
        keys: tuple[str, str] | None = None,
        sign_key: str | None = None,
        timeout: float = 120,
    ) -> requests.Response:
        """One request to http://<bucket><suffix>/<key>?<query>, signed like the
        SDK does (header auth over method, Content-MD5, Content-Type, "" date,
        /bucket/key, or /bucket/<sign_key> when given) unless sign=False or an
        Authorization header is given."""
        bucket = bucket or self.bucket
        hdrs = dict(headers or {})
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if content_md5 is not None:
            hdrs["Content-MD5"] = content_md5
        if sign and "Authorization" not in hdrs:
            pub, priv = keys or (self.public_key, self.private_key)
            sts = string_to_sign(
                method,
                bucket,
                key if sign_key is None else sign_key,
                content_md5=hdrs.get("Content-MD5", ""),
                content_type=hdrs.get("Content-Type", ""),
                listobjects=listobjects,
            )
            hdrs["Authorization"] = authorization(pub, priv, sts)
        return requests.request(
            method, self.url(key, bucket, query), headers=hdrs, data=data, timeout=timeout
        )

    def presigned_url(self, key: str, expires_at: int, bucket: str | None = None, method: str = "GET", quote_sig=True) -> str:
        bucket = bucket or self.bucket
        sig = presign_signature(self.private_key, bucket, key, expires_at, method)
        sig_q = quote(sig, safe="") if quote_sig else sig
        return self.url(key, bucket, f"UCloudPublicKey={quote(self.public_key, safe='')}&Expires={expires_at}&Signature={sig_q}")

    # ---- checks ------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> requests.Response:
        r = self.raw("PUT", key, data=data, content_type=content_type)
        assert r.status_code == 200, f"raw UFile PUT {key}: HTTP {r.status_code} {r.text[:500]}"
        return r

    def s3_bytes(self, key: str, bucket: str | None = None) -> bytes:
        return self.s3().get_object(Bucket=bucket or self.bucket, Key=key)["Body"].read()


def new_ufile_ctx(server, mode: str = "localhost", root: bool = False, tenant: Tenant | None = None) -> UFileCtx:
    """A fresh tenant (or root, or the given tenant) with a fresh bucket that
    it created through S3."""
    install_localhost_resolver()
    if root:
        pub, priv, t = server.access_key, server.secret_key, None
    else:
        t = tenant or create_tenant(server)
        pub, priv = t.access_key, t.secret_key
    bucket = unique_name("uf")
    server.client(pub, priv).create_bucket(Bucket=bucket)
    return UFileCtx(server=server, mode=mode, public_key=pub, private_key=priv, bucket=bucket, tenant=t)


@pytest.fixture
def make_ufile(request):
    """`make_ufile(server, mode="localhost", root=False, tenant=None)` ->
    UFileCtx. A "proxy" context sets HTTP_PROXY for the rest of the test (so
    use one server per proxy-mode test); otherwise any proxy settings of the
    environment are cleared for the test."""
    stack = contextlib.ExitStack()
    state = {"proxy_port": "unset"}

    def make(server, mode: str = "localhost", root: bool = False, tenant: Tenant | None = None) -> UFileCtx:
        port = server.port if mode == "proxy" else None
        if state["proxy_port"] == "unset":
            stack.enter_context(http_proxy(port))
            state["proxy_port"] = port
        elif port is not None and state["proxy_port"] != port:
            raise AssertionError("make_ufile: one proxy-mode server per test")
        return new_ufile_ctx(server, mode, root=root, tenant=tenant)

    with stack:
        yield make


@pytest.fixture
def uf(server, make_ufile) -> UFileCtx:
    """A new tenant + bucket on the shared server, SDK via *.localhost."""
    return make_ufile(server, "localhost")


@pytest.fixture(params=MODES)
def uf_mode(request, server, make_ufile) -> UFileCtx:
    """Like `uf`, once per addressing mode (localhost shim / HTTP proxy)."""
    return make_ufile(server, request.param)


# --------------------------------------------------------------------------
# assertions


def assert_ufile_error(r: requests.Response, statuses, what: str, body: bool = True) -> dict:
    """The UFile error contract: right status, Content-Type exactly
    application/json, an X-SessionId header, JSON {RetCode != 0, ErrMsg}."""
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert r.status_code in statuses, (
        f"{what}: expected HTTP {'/'.join(map(str, statuses))}, got {r.status_code} "
        f"{r.headers.get('Content-Type')} {r.text[:500]!r}"
    )
    assert r.headers.get("X-SessionId"), f"{what}: error response lacks an X-SessionId header: {dict(r.headers)}"
    if not body:
        return {}
    ct = r.headers.get("Content-Type")
    assert ct == "application/json", (
        f"{what}: error Content-Type must be exactly application/json (the SDK compares with ==), got {ct!r}"
    )
    try:
        doc = r.json()
    except ValueError:
        raise AssertionError(f"{what}: error body is not JSON: {r.text[:500]!r}")
    assert isinstance(doc, dict), f"{what}: error body is not a JSON object: {doc!r}"
    assert isinstance(doc.get("RetCode"), int) and not isinstance(doc.get("RetCode"), bool), (
        f"{what}: RetCode missing or not an int: {doc}"
    )
    assert doc["RetCode"] != 0, f"{what}: RetCode must be nonzero on error: {doc}"
    assert isinstance(doc.get("ErrMsg"), str), f"{what}: ErrMsg missing or not a string: {doc}"
    return doc


def assert_sdk_ok(ret, resp, what: str, statuses=(200,)) -> None:
    assert ret is not None and resp.status_code in statuses, (
        f"{what}: SDK call failed: HTTP {resp.status_code}, ret_code={resp.ret_code}, "
        f"error={resp.error!r}, content={getattr(resp, 'content', b'')[:300]!r}"
    )


def assert_sdk_error(ret, resp, statuses, what: str, body: bool = True) -> None:
    """A failure as the SDK sees it: ret None, the status, and (with a body)
    RetCode/ErrMsg parsed from it (the SDK reports ret_code -1 and 'unknown
    error' when the Content-Type is not exactly application/json)."""
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert ret is None, f"{what}: expected failure, SDK returned ret={ret!r} HTTP {resp.status_code}"
    assert resp.status_code in statuses, (
        f"{what}: expected HTTP {'/'.join(map(str, statuses))}, got {resp.status_code} "
        f"(error={resp.error!r}, content_type={resp.content_type!r})"
    )
    assert resp.x_session_id, f"{what}: no X-SessionId header on the error response"
    if body:
        assert resp.error != "unknown error" and resp.ret_code not in (None, -1, 0), (
            f"{what}: the SDK could not read RetCode/ErrMsg (Content-Type {resp.content_type!r}, "
            f"ret_code={resp.ret_code!r}, error={resp.error!r})"
        )


def assert_no_s3_object(ctx: UFileCtx, key: str, bucket: str | None = None, what: str = "") -> None:
    from botocore.exceptions import ClientError

    try:
        ctx.s3().head_object(Bucket=bucket or ctx.bucket, Key=key)
    except ClientError as e:
        code = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert code == 404, f"{what}: S3 HEAD {key}: expected 404, got {code}"
        return
    raise AssertionError(f"{what}: object {key!r} exists but must not")


# --------------------------------------------------------------------------
# IoT devices


@dataclasses.dataclass
class Device:
    product_sn: str
    device_sn: str
    device_secret: str
    tenant: Tenant
    bucket: str


def register_device_raw(server, tenant: str, bucket: str, product_sn: str, device_sn: str, auth=None) -> requests.Response:
    return requests.post(
        server.endpoint + IOT_DEVICES_PATH,
        params={"tenant": tenant, "bucket": bucket, "product_sn": product_sn, "device_sn": device_sn},
        auth=auth if auth is not None else (server.access_key, server.secret_key),
        timeout=30,
    )


def register_device(server, tenant: Tenant, bucket: str, product_sn: str | None = None, device_sn: str | None = None) -> Device:
    import secrets as _secrets

    product_sn = product_sn or "P" + _secrets.token_hex(5)
    device_sn = device_sn or "D" + _secrets.token_hex(8)
    r = register_device_raw(server, tenant.name, bucket, product_sn, device_sn)
    assert r.status_code == 201, f"POST {IOT_DEVICES_PATH}: HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body.get("product_sn") == product_sn and body.get("device_sn") == device_sn, body
    assert isinstance(body.get("device_secret"), str) and len(body["device_secret"]) >= 16, (
        f"device_secret missing or shorter than 16 characters: {body}"
    )
    return Device(product_sn, device_sn, body["device_secret"], tenant, bucket)


def iot_body(dev: Device, file_name: str, data: bytes, content_type: str = "plain/text", **override) -> dict:
    body = {
        "ProductSN": dev.product_sn,
        "DeviceSN": dev.device_sn,
        "FileName": file_name,
        "FileSize": len(data),
        "MD5": md5_hex(data),
        "Content-Type": content_type,
    }
    body.update(override)
    return body


def iot_request_url(server, body: dict, secret: str, raw_body: bytes | None = None) -> requests.Response:
    """POST /api/v1/url, Authorization = hex(HMAC-SHA256(secret, raw body))."""
    raw = raw_body if raw_body is not None else json.dumps(body, separators=(",", ":")).encode()
    sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return requests.post(
        server.endpoint + IOT_URL_PATH,
        data=raw,
        headers={"Content-Type": "application/json", "Authorization": sig},
        timeout=30,
    )


def check_iot_url_answer(server, r: requests.Response, dev: Device, file_name: str) -> tuple[str, str]:
    """Validate a 200 URL answer; return (url, authorization)."""
    assert r.status_code == 200, f"POST {IOT_URL_PATH}: HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body.get("RetCode") == 0, body
    url, auth = body.get("URL"), body.get("Authorization")
    assert isinstance(url, str) and isinstance(auth, str), body
    assert auth.startswith("Ucloud ") and len(auth) > len("Ucloud ") + 8, f"Authorization must be 'Ucloud <token>': {auth!r}"
    parts = urlsplit(url)
    assert parts.scheme == "http", f"URL must be plain http to the test server: {url}"
    host = (parts.hostname or "").lower()
    assert host in ("127.0.0.1", "localhost") or host.endswith(".localhost"), (
        f"URL does not point at the test server (127.0.0.1 / localhost / *.localhost): {url}"
    )
    assert parts.port == server.port, f"URL port {parts.port} is not the server's {server.port}: {url}"
    want = f"/{dev.product_sn}/{dev.device_sn}/{file_name}"
    assert unquote(parts.path).endswith(want), f"URL path must end with {want}: {url}"
    return url, auth


def iot_put(url: str, auth: str | None, data: bytes, content_type: str = "plain/text", content_md5: str | None = None) -> requests.Response:
    headers = {"Content-Type": content_type, "Content-MD5": content_md5 if content_md5 is not None else md5_hex(data)}
    if auth is not None:
        headers["Authorization"] = auth
    return requests.put(url, data=data, headers=headers, timeout=120)


def wait_until(deadline_s: float) -> None:
    left = deadline_s - time.time()
    if left > 0:
        time.sleep(left)
