"""Helpers for the Tencent COS JSON API dialect tests (test_cos_v4.py = API v4
/files/v2 with `qcloud_cos_v4` 0.0.9, test_cos_v3.py = API v3 /files/v1 with
`qcloud-cos` 3.3.6).

* the real SDKs: both are Python-2 only; scripts/setup-venv.sh ports them to
  Python 3 (scripts/port-cos-sdk.py) into <repo>/.venv/cos-v4/qcloud_cos and
  <repo>/.venv/cos-v3/qcloud_cos. Both packages are called `qcloud_cos`, so
  each is imported here under its own name (`cos_sdk_v4`, `cos_sdk_v3`; the
  port makes every intra-package import relative) and the two never share
  module objects;
* the v4 SDK's `SimpleThreadPool` workers are non-daemon threads that never
  exit (client-sdks.md §3.5): after a `max_con > 1` upload the interpreter
  would hang at exit. `import_cos_sdk("v4")` marks them daemon (the only
  runtime change to the SDK; what it sends is untouched);
* tenants with their COS appid (POST /_chuan/admin/tenants -> cos_appid);
* an independent implementation of what the SDKs compute: the signature
  (base64(HMAC-SHA1(secret, plain) || plain), plain
  `a=&k=&e=&t=&r=&f=&b=`), and the v4 `uploadparts` SHA-1 chain states
  (client-sdks.md §3.3/§3.4), so raw requests do not only check the SDK
  against itself;
* `CosCtx`: one tenant + bucket seen through COS (SDK clients pointed at the
  test server, raw signed requests, downloads on `<bucket>-<appid>.localhost`,
  boto3 with the same keys);
* `record_sdk_requests`: records every HTTP request an SDK client sends;
* assertions for the COS envelope: HTTP 200 + code 0, or HTTP 400 + the
  contract's negative code.

Contract: /tmp/cos_contract.md (copied into the test modules' docstrings);
spec: /work/shared/specs/client-sdks.md §3, tencent-cos-json-api-v4.md.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import importlib
import importlib.util
import json
import secrets
import struct
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests

from adrive_helpers import create_tenant
from compat_helpers import REPO_ROOT, unique_name
from ufile_helpers import http_proxy, install_localhost_resolver

TENANTS_PATH = "/_chuan/admin/tenants"

COS_SDKS = {
    # flavor: (dir, distribution, version, module name used here)
    "v4": (REPO_ROOT / ".venv" / "cos-v4", "qcloud_cos_v4", "0.0.9", "cos_sdk_v4"),
    "v3": (REPO_ROOT / ".venv" / "cos-v3", "qcloud-cos", "3.3.6", "cos_sdk_v3"),
}
API_OF = {"v4": "v2", "v3": "v1"}  # /files/<api>

SLICE_SIZES = (524288, 1048576, 2097152, 3145728)

# error codes of the contract
E_NO_SIGN = -81
E_BAD_SIGN = -97
E_EXPIRED = -96
E_UNKNOWN_SECRET_ID = -79
E_APPID_MISMATCH = -70
E_SECRET_ID_OTHER_TENANT = -62
E_BUCKET_MISMATCH = -61
E_FILEID_MISMATCH = -63
E_REPLAYED = -77
E_ONCE_NEEDED = -73
E_MULTI_NEEDED = -74
E_NO_OP = -5980
E_UNKNOWN_OP = -5992
E_BAD_JSON = -5975
E_BAD_FORM = -5993
E_NO_FILECONTENT = -5990
E_SHA_MISMATCH = -5984
E_TOO_BIG = -285
E_EXISTS = -4018
E_UNFINISHED = -4019
E_NO_SESSION = -5983
E_SLICE_SHA = -4016
E_SLICE_RANGE = -284
E_SLICES_MISSING = -175
E_FILE_SHA = -174
E_SLICE_SIZE = -4002
E_NOT_FOUND = -197
E_NO_PARENT = -166
E_DIR_EXISTS = -178
E_DEST_EXISTS = -177
E_DIR_NOT_EMPTY = -173
E_BAD_PATH = -180
E_FILE_PATH_SLASH = -160  # ERROR_CMD_PARAM_PAHT_FILE_SURPLUS_SLASH: a file path ending with '/'
E_BAD_NUM = -170


# --------------------------------------------------------------------------
# the ported SDKs

_SDKS: dict[str, Any] = {}


def _daemonize_pool(mod_name: str) -> None:
    """Make the v4 SimpleThreadPool's worker threads daemon threads: they
    block in Queue.get() forever after the upload (SDK bug), which would keep
    the pytest process from exiting."""
    tp = importlib.import_module(f"{mod_name}.threadpool")
    worker = tp.WorkerThread
    if getattr(worker, "_chuan_daemon", False):
        return
    orig_init = worker.__init__

    def __init__(self, *args, **kwargs):
        orig_init(self, *args, **kwargs)
        self.daemon = True

    worker.__init__ = __init__
    worker._chuan_daemon = True


def import_cos_sdk(flavor: str):
    """The ported SDK package ("v4" or "v3") as module `cos_sdk_<flavor>`."""
    if flavor in _SDKS:
        return _SDKS[flavor]
    sdk_dir, dist, version, name = COS_SDKS[flavor]
    pkg_dir = sdk_dir / "qcloud_cos"
    marker = pkg_dir / "CHUAN-PORT"
    if not marker.is_file():
        raise AssertionError(
            f"ported COS SDK {dist} {version} not found at {pkg_dir}: run scripts/setup-venv.sh "
            "(it fetches the sdist with pip and ports it with scripts/port-cos-sdk.py)"
        )
    assert marker.read_text().startswith(f"{dist}=={version} "), (
        f"{pkg_dir} holds {marker.read_text().strip()!r}, expected {dist}=={version}: run scripts/setup-venv.sh"
    )
    spec = importlib.util.spec_from_file_location(
        name, pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    for sub in ("cos_auth", "cos_op", "cos_request", "cos_config", "cos_client"):
        importlib.import_module(f"{name}.{sub}")
    if flavor == "v4":
        importlib.import_module(f"{name}.cos_common")
        _daemonize_pool(name)
    _SDKS[flavor] = mod
    return mod


def sdk_module(flavor: str, sub: str):
    import_cos_sdk(flavor)
    return sys.modules[f"{COS_SDKS[flavor][3]}.{sub}"]


# --------------------------------------------------------------------------
# signatures and hashes, implemented independently of the SDKs


def quote_path(cos_path: str) -> str:
    """What the SDKs put in URLs and in the signed fileid: quote(path, '~/')."""
    return quote(cos_path.encode("utf-8"), safe="~/")


def api_fileid(appid: int, bucket: str, cos_path: str) -> str:
    return f"/{appid}/{bucket}{quote_path(cos_path)}"


def sign_plain(appid, secret_id: str, expired: int, now: int, rand: int, fileid: str, bucket: str) -> str:
    return f"a={appid}&k={secret_id}&e={int(expired)}&t={int(now)}&r={int(rand)}&f={fileid}&b={bucket}"


def cos_sign_plain(secret_key: str, plain: str) -> str:
    mac = hmac.new(secret_key.encode("utf-8"), plain.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(mac + plain.encode("utf-8")).decode("ascii")


def cos_sign(
    appid,
    secret_id: str,
    secret_key: str,
    bucket: str,
    fileid: str,
    expired: int,
    now: int | None = None,
    rand: int | None = None,
) -> str:
    """base64(HMAC-SHA1(secret_key, plain)[20 bytes] || plain)."""
    now = int(time.time()) if now is None else now
    rand = secrets.randbelow(1_000_000_000) if rand is None else rand
    return cos_sign_plain(secret_key, sign_plain(appid, secret_id, expired, now, rand, fileid, bucket))


def decode_sign(sign: str) -> tuple[bytes, str]:
    raw = base64.b64decode(sign)
    return raw[:20], raw[20:].decode("utf-8")


def tamper_mac(sign: str) -> str:
    """The same signature with one bit of the MAC flipped (plain untouched)."""
    raw = bytearray(base64.b64decode(sign))
    raw[7] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


_SHA1_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def _sha1_compress(h: tuple, block: bytes) -> tuple:
    w = list(struct.unpack(">16I", block))
    for i in range(16, 80):
        x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
        w.append(((x << 1) | (x >> 31)) & 0xFFFFFFFF)
    a, b, c, d, e = h
    for i in range(80):
        if i < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif i < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif i < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        a, b, c, d, e = (_rol(a, 5) + f + e + k + w[i]) & 0xFFFFFFFF, a, _rol(b, 30), c, d
    return tuple((x + y) & 0xFFFFFFFF for x, y in zip(h, (a, b, c, d, e)))


_PARTS_CACHE: dict[tuple[str, int], list[dict]] = {}


def uploadparts(data: bytes, slice_size: int) -> list[dict]:
    """The v4 `uploadparts` list (client-sdks.md §3.4): per slice
    {offset, datalen, datasha}; datasha = the SHA-1 state (h0..h4, each word
    little-endian, hex) after bytes [0, offset+datalen), the last entry's the
    ordinary SHA-1 hex of the whole file. slice_size must be a multiple of 64."""
    assert slice_size % 64 == 0
    key = (hashlib.sha256(data).hexdigest(), slice_size)
    if key in _PARTS_CACHE:
        return [dict(p) for p in _PARTS_CACHE[key]]
    parts = []
    h = _SHA1_IV
    for off in range(0, len(data), slice_size):
        chunk = data[off : off + slice_size]
        for i in range(0, len(chunk) - len(chunk) % 64, 64):
            h = _sha1_compress(h, chunk[i : i + 64])
        state = struct.pack("<5I", *h).hex()
        parts.append({"offset": off, "datalen": len(chunk), "datasha": state})
    if parts:
        parts[-1]["datasha"] = hashlib.sha1(data).hexdigest()
    _PARTS_CACHE[key] = parts
    return [dict(p) for p in parts]


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def pattern_bytes(n: int) -> bytes:
    """The spec's worked-example data: bytes(i % 251 for i in range(n))."""
    unit = bytes(range(251))
    return (unit * (n // 251 + 1))[:n]


def slices_of(data: bytes, slice_size: int) -> list[tuple[int, bytes]]:
    return [(off, data[off : off + slice_size]) for off in range(0, len(data), slice_size)]


# --------------------------------------------------------------------------
# tenants


@dataclasses.dataclass
class CosTenant:
    name: str
    access_key: str
    secret_key: str
    appid: int


def create_cos_tenant(server, name: str | None = None) -> CosTenant:
    t = create_tenant(server, name or unique_name("ct"))
    appid = t.cos_appid
    assert isinstance(appid, int) and not isinstance(appid, bool) and appid >= 1_000_000_000, (
        f"tenant answer lacks an integer cos_appid >= 1e9 (COS is not served?): {t}"
    )
    return CosTenant(name=t.name, access_key=t.access_key, secret_key=t.secret_key, appid=appid)


# --------------------------------------------------------------------------
# recording what an SDK client sends


@dataclasses.dataclass
class SentRequest:
    method: str
    url: str
    op: str | None
    fields: dict


def _op_of(kwargs: dict) -> tuple[str | None, dict]:
    for key in ("files", "params"):
        v = kwargs.get(key)
        if isinstance(v, dict) and "op" in v:
            return str(v["op"]), {k: (x if isinstance(x, (str, int)) else f"<{len(x)} bytes>") for k, x in v.items()}
    data = kwargs.get("data")
    if isinstance(data, (str, bytes)):
        try:
            doc = json.loads(data)
        except ValueError:
            return None, {}
        if isinstance(doc, dict):
            return doc.get("op"), doc
    return None, {}


def record_sdk_requests(client) -> list[SentRequest]:
    """A list that receives every request the SDK client (v3 or v4
    CosClient) sends through its requests.Session (thread-safe append)."""
    sent: list[SentRequest] = []
    session = client._http_session
    orig = session.request
    lock = threading.Lock()

    def request(method, url, *args, **kwargs):
        op, fields = _op_of(kwargs)
        with lock:
            sent.append(SentRequest(method, url, op, fields))
        return orig(method, url, *args, **kwargs)

    session.request = request
    return sent


def ops(sent: list[SentRequest]) -> list[str | None]:
    return [r.op for r in sent]


# --------------------------------------------------------------------------
# the COS envelope


def cos_json(r: requests.Response, what: str) -> dict:
    try:
        doc = r.json()
    except ValueError:
        raise AssertionError(f"{what}: HTTP {r.status_code}, body is not JSON: {r.text[:500]!r}")
    assert isinstance(doc, dict) and isinstance(doc.get("code"), int) and not isinstance(doc.get("code"), bool), (
        f"{what}: HTTP {r.status_code}, not a COS envelope {{code, message, ...}}: {r.text[:500]!r}"
    )
    assert isinstance(doc.get("message"), str), f"{what}: envelope without a message string: {doc}"
    if doc["code"] == 0:
        assert r.status_code == 200, f"{what}: code 0 with HTTP {r.status_code}: {doc}"
    else:
        assert r.status_code == 400, f"{what}: error code {doc['code']} with HTTP {r.status_code} (want 400): {doc}"
    return doc


def assert_ok(doc: dict, what: str) -> dict:
    """code 0; returns data (a dict; {} when the answer has none, as for
    delete/update/move)."""
    assert isinstance(doc, dict) and doc.get("code") == 0, f"{what}: expected code 0, got {doc}"
    data = doc.get("data", {})
    assert isinstance(data, dict), f"{what}: data is not an object: {doc}"
    return data


def assert_code(doc: dict, code: int, what: str) -> dict:
    assert isinstance(doc, dict) and doc.get("code") == code, f"{what}: expected code {code}, got {doc}"
    return doc


def assert_access_url(ctx, url, cos_path: str, what: str) -> None:
    """The shape every access_url must have: http://<bucket>-<appid>.<host>:<port><path>.
    (The exact host part, the request's Host, is checked once, in
    test_cos_v4.py::test_upload_answer_urls_follow_the_contract.)"""
    assert isinstance(url, str), f"{what}: access_url missing: {url!r}"
    prefix = f"http://{ctx.bucket}-{ctx.appid}."
    suffix = f":{ctx.server.port}{quote_path(cos_path)}"
    assert url.startswith(prefix) and url.endswith(suffix), f"{what}: access_url {url!r} is not {prefix}<host>{suffix}"


def assert_int(v, what: str) -> int:
    assert isinstance(v, int) and not isinstance(v, bool), f"{what}: not an integer: {v!r}"
    return v


def assert_ts(v, what: str) -> int:
    """A 10-digit Unix time close to now (ints; strings of digits accepted
    as the vendor doc types them as String)."""
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    assert isinstance(v, int) and not isinstance(v, bool), f"{what}: not a Unix time: {v!r}"
    assert abs(v - time.time()) < 3600, f"{what}: {v} is not close to now ({int(time.time())})"
    return v


# --------------------------------------------------------------------------
# one tenant + bucket, seen through COS


@dataclasses.dataclass
class CosCtx:
    server: Any
    tenant: CosTenant
    bucket: str

    # ---- identity / addressing -----------------------------------------

    @property
    def appid(self) -> int:
        return self.tenant.appid

    @property
    def secret_id(self) -> str:
        return self.tenant.access_key

    @property
    def secret_key(self) -> str:
        return self.tenant.secret_key

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def api_url(self, cos_path: str, api: str = "v2", appid=None, bucket: str | None = None) -> str:
        return (
            f"http://{self.host}/files/{api}/{self.appid if appid is None else appid}/"
            f"{bucket or self.bucket}{quote_path(cos_path)}"
        )

    def fileid(self, cos_path: str) -> str:
        return api_fileid(self.appid, self.bucket, cos_path)

    def download_host(self, bucket: str | None = None) -> str:
        return f"{bucket or self.bucket}-{self.appid}.localhost:{self.server.port}"

    def download_url(self, cos_path: str, sign: str | None = None) -> str:
        u = f"http://{self.download_host()}{quote_path(cos_path)}"
        return u + (f"?sign={sign}" if sign is not None else "")

    # expected response values (contract)
    def resource_path(self, cos_path: str) -> str:
        return f"/{self.appid}/{self.bucket}{quote_path(cos_path)}"

    # ---- signatures ----------------------------------------------------

    def sign_more(self, cos_path: str, expires_in: int = 600, **over) -> str:
        kw = dict(
            appid=self.appid,
            secret_id=self.secret_id,
            secret_key=self.secret_key,
            bucket=self.bucket,
            fileid=self.fileid(cos_path),
            expired=int(time.time()) + expires_in,
        )
        kw.update(over)
        return cos_sign(**kw)

    def sign_once(self, cos_path: str, **over) -> str:
        kw = dict(
            appid=self.appid,
            secret_id=self.secret_id,
            secret_key=self.secret_key,
            bucket=self.bucket,
            fileid=self.fileid(cos_path),
            expired=0,
        )
        kw.update(over)
        return cos_sign(**kw)

    def sign_download(self, cos_path: str, expires_in: int = 600, **over) -> str:
        kw = dict(
            appid=self.appid,
            secret_id=self.secret_id,
            secret_key=self.secret_key,
            bucket=self.bucket,
            fileid=quote_path(cos_path),
            expired=int(time.time()) + expires_in,
        )
        kw.update(over)
        return cos_sign(**kw)

    # ---- raw requests --------------------------------------------------

    def _headers(self, auth: str | None, extra: dict | None = None) -> dict:
        h = {"User-Agent": "chuan-compat-tests"}
        if auth is not None:
            h["Authorization"] = auth
        h.update(extra or {})
        return h

    def post_form(
        self,
        cos_path: str,
        fields: dict,
        auth: str | None = "more",
        api: str = "v2",
        appid=None,
        bucket: str | None = None,
        timeout: float = 120,
    ) -> requests.Response:
        """POST multipart exactly as the SDKs do (requests `files=`: every
        field a file part named after itself). auth: "more" (a fresh
        multi-use sign), "once", None (no header) or a signature string."""
        if auth == "more":
            auth = self.sign_more(cos_path)
        elif auth == "once":
            auth = self.sign_once(cos_path)
        return requests.post(
            self.api_url(cos_path, api, appid=appid, bucket=bucket),
            files=fields,
            headers=self._headers(auth),
            timeout=timeout,
        )

    def post_json(
        self, cos_path: str, body, auth: str | None = "once", api: str = "v2", raw_body: bytes | None = None
    ) -> requests.Response:
        if auth == "more":
            auth = self.sign_more(cos_path)
        elif auth == "once":
            auth = self.sign_once(cos_path)
        data = raw_body if raw_body is not None else json.dumps(body)
        return requests.post(
            self.api_url(cos_path, api),
            data=data,
            headers=self._headers(auth, {"Content-Type": "application/json"}),
            timeout=60,
        )

    def get_op(self, cos_path: str, params: dict, auth: str | None = "more", api: str = "v2") -> requests.Response:
        if auth == "more":
            auth = self.sign_more(cos_path)
        elif auth == "once":
            auth = self.sign_once(cos_path)
        return requests.get(self.api_url(cos_path, api), params=params, headers=self._headers(auth), timeout=60)

    def post_query(self, cos_path: str, params: dict, auth: str | None = "once", api: str = "v2") -> requests.Response:
        """POST with the op in the query and no body (v4 move)."""
        if auth == "more":
            auth = self.sign_more(cos_path)
        elif auth == "once":
            auth = self.sign_once(cos_path)
        return requests.post(self.api_url(cos_path, api), params=params, headers=self._headers(auth), timeout=60)

    # ---- common operations, raw, asserting success --------------------

    def upload(self, cos_path: str, data: bytes, api: str = "v2", **fields) -> dict:
        f = {"op": "upload", "filecontent": data, "sha": sha1_hex(data), "biz_attr": "", "insertOnly": "1"}
        f.update({k: v for k, v in fields.items() if v is not None})
        return assert_ok(cos_json(self.post_form(cos_path, f, api=api), f"upload {cos_path}"), f"upload {cos_path}")

    def mkdir(self, cos_path: str, biz_attr: str = "", api: str = "v2") -> dict:
        r = self.post_json(cos_path, {"op": "create", "biz_attr": biz_attr}, auth="more", api=api)
        return assert_ok(cos_json(r, f"create {cos_path}"), f"create {cos_path}")

    def stat(self, cos_path: str, api: str = "v2") -> dict:
        return cos_json(self.get_op(cos_path, {"op": "stat"}, api=api), f"stat {cos_path}")

    def stat_ok(self, cos_path: str, api: str = "v2") -> dict:
        return assert_ok(self.stat(cos_path, api), f"stat {cos_path}")

    def list(self, dir_path: str, num: int = 1000, context: str = "", api: str = "v2", **extra) -> dict:
        params = {"op": "list", "num": num, "context": context}
        params.update(extra)
        return cos_json(self.get_op(dir_path, params, api=api), f"list {dir_path}")

    def list_all(self, dir_path: str, num: int = 1000, api: str = "v2", **extra) -> list[dict]:
        infos, context = [], ""
        for _ in range(1000):
            data = assert_ok(self.list(dir_path, num, context, api, **extra), f"list {dir_path}")
            infos.extend(data.get("infos") or [])
            if data.get("listover") is True:
                return infos
            context = data.get("context")
            assert isinstance(context, str) and context, f"list {dir_path}: not over but no context: {data}"
        raise AssertionError(f"list {dir_path}: never over")

    def delete(self, cos_path: str, api: str = "v2") -> dict:
        return cos_json(self.post_json(cos_path, {"op": "delete"}, auth="once", api=api), f"delete {cos_path}")

    def slice_init(self, cos_path: str, filesize: int, slice_size: int, **fields) -> dict:
        f = {"op": "upload_slice_init", "filesize": str(filesize), "slice_size": str(slice_size), "biz_attr": "", "insertOnly": "1"}
        f.update({k: v for k, v in fields.items() if v is not None})
        return cos_json(self.post_form(cos_path, f), f"upload_slice_init {cos_path}")

    def slice_data(self, cos_path: str, session: str, offset: int, chunk: bytes, **fields) -> dict:
        f = {"op": "upload_slice_data", "filecontent": chunk, "session": session, "offset": str(offset)}
        f.update({k: v for k, v in fields.items() if v is not None})
        return cos_json(self.post_form(cos_path, f), f"upload_slice_data {cos_path} @{offset}")

    def slice_finish(self, cos_path: str, session: str, filesize: int, **fields) -> dict:
        f = {"op": "upload_slice_finish", "session": session, "filesize": str(filesize)}
        f.update({k: v for k, v in fields.items() if v is not None})
        return cos_json(self.post_form(cos_path, f), f"upload_slice_finish {cos_path}")

    def slice_list(self, cos_path: str) -> dict:
        return cos_json(self.post_form(cos_path, {"op": "upload_slice_list"}), f"upload_slice_list {cos_path}")

    def download(self, cos_path: str, sign: str | None | bool = True, headers: dict | None = None) -> requests.Response:
        """GET on the download host; sign=True: a fresh download sign,
        None/False: no sign, a string: that sign (sent unencoded, as the SDK)."""
        if sign is True:
            sign = self.sign_download(cos_path)
        elif sign is False:
            sign = None
        return requests.get(self.download_url(cos_path, sign), headers=headers or {}, timeout=120)

    # ---- the SDKs ----------------------------------------------------------

    def v4(self, secret_id: str | None = None, secret_key: str | None = None, appid=None):
        sdk = import_cos_sdk("v4")
        client = sdk.CosClient(
            self.appid if appid is None else appid, secret_id or self.secret_id, secret_key or self.secret_key, region="shanghai"
        )
        cfg = sdk.CosConfig(
            hostname=self.host, download_hostname=f"localhost:{self.server.port}", timeout=120
        )
        client.set_config(cfg)
        assert cfg.get_endpoint() == f"http://{self.host}/files/v2", cfg.get_endpoint()
        return client

    def v3(self, secret_id: str | None = None, secret_key: str | None = None, appid=None):
        sdk = import_cos_sdk("v3")
        client = sdk.CosClient(self.appid if appid is None else appid, secret_id or self.secret_id, secret_key or self.secret_key)
        cfg = sdk.CosConfig()
        cfg.set_end_point(f"http://{self.host}/files/v1")
        cfg.set_timeout(120)
        client.set_config(cfg)
        return client

    # ---- S3 ---------------------------------------------------------------

    def s3(self):
        return self.server.client(self.tenant.access_key, self.tenant.secret_key)

    def s3_bytes(self, key: str) -> bytes:
        return self.s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def s3_exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3().head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as e:
            code = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            assert code == 404, f"S3 HEAD {key}: expected 200 or 404, got {code}"
            return False

    def s3_keys(self, prefix: str = "") -> list[str]:
        from compat_helpers import list_all_keys

        return list_all_keys(self.s3(), self.bucket, prefix)

    def s3_put(self, key: str, data: bytes, **kw) -> None:
        self.s3().put_object(Bucket=self.bucket, Key=key, Body=data, **kw)

    def assert_absent(self, cos_path: str, what: str = "") -> None:
        """Neither S3 nor COS stat sees the file."""
        key = s3_key(cos_path)
        assert not self.s3_exists(key), f"{what}: S3 object {key!r} exists but must not"
        assert_code(self.stat(cos_path), E_NOT_FOUND, f"{what}: stat {cos_path}")

    def assert_stored(self, cos_path: str, data: bytes, what: str = "") -> None:
        """S3 GET gives exactly `data`; COS stat reports its size and SHA-1."""
        key = s3_key(cos_path)
        got = self.s3_bytes(key)
        assert got == data, f"{what}: S3 GET {key}: {len(got)} bytes, expected {len(data)} (content differs)"
        st = self.stat_ok(cos_path)
        assert st.get("filesize") == len(data), f"{what}: stat {cos_path}: filesize {st.get('filesize')} != {len(data)}: {st}"
        assert st.get("sha") == sha1_hex(data), f"{what}: stat {cos_path}: sha {st.get('sha')} != {sha1_hex(data)}"


def s3_key(cos_path: str) -> str:
    """COS path /a/b.txt is S3 key a/b.txt; a directory /a/ is key a/."""
    return cos_path[1:] if cos_path.startswith("/") else cos_path


def new_cos_ctx(server, tenant: CosTenant | None = None) -> CosCtx:
    """A fresh tenant (or the given one) with a fresh bucket it created via S3."""
    install_localhost_resolver()
    tenant = tenant or create_cos_tenant(server)
    bucket = unique_name("cos")
    server.client(tenant.access_key, tenant.secret_key).create_bucket(Bucket=bucket)
    return CosCtx(server=server, tenant=tenant, bucket=bucket)


_COS_PROBED: dict[int, bool] = {}


def require_cos(server) -> None:
    """Fail early and clearly when the binary does not serve COS (501)."""
    if _COS_PROBED.get(server.port):
        return
    r = requests.get(f"{server.endpoint}/files/v2/1000000000/nobucket/?op=list&num=1", timeout=10)
    assert r.status_code != 501, f"the server does not serve COS /files/v2 (HTTP 501): {r.text[:300]}"
    _COS_PROBED[server.port] = True


@pytest.fixture
def no_proxy():
    """No proxy from the environment between the SDKs and the test server."""
    with http_proxy(None):
        yield


@pytest.fixture
def cos(server, no_proxy) -> CosCtx:
    """A new tenant + bucket on the shared server."""
    require_cos(server)
    return new_cos_ctx(server)


@pytest.fixture
def make_cos(server, no_proxy):
    """`make_cos(tenant=None)` -> another CosCtx (new tenant unless given)."""
    require_cos(server)

    def make(tenant: CosTenant | None = None) -> CosCtx:
        return new_cos_ctx(server, tenant)

    return make


def write_file(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)
