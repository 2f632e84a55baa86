"""UpYun legacy form-API block upload ("m0"), driven by the real `upyun` 2.4.2
SDK (the last version with it) and, for what the SDK cannot send (an
interrupted upload, a wrong block / file hash, an expired or badly signed
policy, return-url), by raw `requests` calls built by an independent
implementation of the protocol.

upyun 2.4.2 is installed by scripts/setup-venv.sh into <repo>/.venv/upyun-2.4.2
(pip --target, apart from the venv's 2.5.5) and imported here in isolation
under the package name `upyun242` (its modules use relative imports; the one
absolute `import upyun` in modules/httpipe.py only serves the User-Agent,
which the first shim replaces). The two Python 3 shims of
/work/shared/specs/client-sdks.md §2.5, kept in this harness:
  1. `UpYunHttp.__make_user_agent` (json.dumps(a, b) -> TypeError on
     Python 3) is replaced by a working one;
  2. `up.up_multi.host` (hard-coded m0.api.upyun.com) is set to the server,
     127.0.0.1:PORT.

Contract (client-sdks.md §2.5, upyun-form-block-upload.md):
* form secret: POST /_chuan/admin/upyun/form-secrets?tenant=T&bucket=B (HTTP
  Basic root) -> 201 {"bucket": B, "form_secret": "..."}; a new secret each
  call, only the latest is valid;
* all m0 requests: POST /<bucket>/;
  signature(d, secret) = md5hex("".join(k + str(d[k]) for k in sorted(d)) + secret),
  policy = b64(JSON(d));
  - init  (urlencoded; d = {path, expiration, file_blocks, file_hash, file_size, ...},
    form secret) -> {save_token, token_secret, bucket_name, blocks, status, expired_at};
  - block (multipart; d = {save_token, expiration, block_index, block_hash},
    token_secret, + file) -> {save_token, bucket_name, blocks, status, expired_at};
  - merge (urlencoded; d = {save_token, expiration}, token_secret) -> 200
    {bucket_name, path, content_type, content_length, last_modified, signature},
    signature = md5hex(sorted k+v of the other fields + form secret);
    with `return-url` in the init policy: 302, Location: <return-url>?<those fields>;
* re-init of the same upload (path, file_hash, file_size) -> same save_token,
  status shows the blocks already received (resume);
* errors: JSON {"error_code": "<5 digits>", "message", "path"}: 40305 wrong
  block hash, 40306 wrong file hash at merge (4xx), 40101 bad signature /
  expired policy (401), 40402 unknown save_token (404);
* the stored file is S3 key = path without the leading slash, same bucket.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import math
import os
import secrets
import sys
import time
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from adrive_helpers import Tenant, create_tenant
from compat_helpers import KiB, MiB, REPO_ROOT, get_body, list_all_keys

UPYUN242_VERSION = "2.4.2"
UPYUN242_DIR = REPO_ROOT / ".venv" / f"upyun-{UPYUN242_VERSION}"
FORM_SECRETS_PATH = "/_chuan/admin/upyun/form-secrets"

MERGE_FIELDS = {"bucket_name", "path", "content_type", "content_length", "last_modified", "signature"}
INIT_FIELDS = {"save_token", "token_secret", "bucket_name", "blocks", "status", "expired_at"}
BLOCK_FIELDS = {"save_token", "bucket_name", "blocks", "status", "expired_at"}


# --------------------------------------------------------------------------
# upyun 2.4.2, in isolation, with the two Python 3 shims

_UPYUN242 = None


def import_upyun242():
    """upyun 2.4.2 as package `upyun242` (separate module objects from the
    venv's 2.5.5), with shim 1 (a working __make_user_agent) applied."""
    global _UPYUN242
    if _UPYUN242 is not None:
        return _UPYUN242
    pkg_dir = UPYUN242_DIR / "upyun"
    if not (pkg_dir / "multi.py").is_file():
        raise AssertionError(
            f"upyun {UPYUN242_VERSION} not found at {pkg_dir}: run scripts/setup-venv.sh "
            "(it installs upyun==2.4.2 there with pip --target)"
        )
    name = "upyun242"
    spec = importlib.util.spec_from_file_location(
        name, pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    for sub in ("multi", "modules.httpipe", "modules.sign", "modules.exception"):
        importlib.import_module(f"{name}.{sub}")
    assert mod.__version__ == UPYUN242_VERSION, f"{pkg_dir} holds upyun {mod.__version__}"
    assert "save_token" in (pkg_dir / "multi.py").read_text(), "this upyun has no m0 block upload"

    http_cls = sys.modules[f"{name}.modules.httpipe"].UpYunHttp
    broken = http_cls._UpYunHttp__make_user_agent
    # The shim is needed: the original crashes on Python 3 (json.dumps(a, b)).
    with pytest.raises(TypeError):
        broken(http_cls(60, False))

    def make_user_agent(self):
        return json.dumps(f"upyun-python-sdk/{UPYUN242_VERSION} {requests.utils.default_user_agent()}")

    http_cls._UpYunHttp__make_user_agent = make_user_agent
    _UPYUN242 = mod
    return mod


def sdk_exc():
    mod = import_upyun242()
    return sys.modules[f"{mod.__name__}.modules.exception"].UpYunServiceException


# --------------------------------------------------------------------------
# the protocol, implemented independently of the SDK


def multi_signature(d: dict, secret: str) -> str:
    return hashlib.md5(("".join(k + str(d[k]) for k in sorted(d)) + secret).encode()).hexdigest()


def make_policy(d: dict) -> str:
    return base64.b64encode(json.dumps(d).encode()).decode()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def split_blocks(data: bytes, block_size: int) -> list[bytes]:
    """Blocks as the SDK cuts them: ceil(size / block_size) (>= 1), the last one shorter."""
    n = max(1, math.ceil(len(data) / block_size))
    return [data[i * block_size : (i + 1) * block_size] for i in range(n)]


def result_signature(fields: dict, secret: str) -> str:
    """Signature of a merge result (JSON body or return-url query): over every
    field but `signature`, as multi_signature."""
    return multi_signature({k: v for k, v in fields.items() if k != "signature"}, secret)


def s3_key(path: str) -> str:
    return path[1:] if path.startswith("/") else path


def unique_path(prefix: str = "/m0/f", ext: str = ".bin") -> str:
    return f"{prefix}-{secrets.token_hex(4)}{ext}"


# --------------------------------------------------------------------------
# accounts and raw requests


def create_form_secret(server, tenant: str, bucket: str, auth="root") -> requests.Response:
    return requests.post(
        f"{server.endpoint}{FORM_SECRETS_PATH}",
        params={"tenant": tenant, "bucket": bucket},
        auth=(server.access_key, server.secret_key) if auth == "root" else auth,
        timeout=30,
    )


def new_form_secret(server, tenant: str, bucket: str) -> str:
    r = create_form_secret(server, tenant, bucket)
    assert r.status_code == 201, f"POST {FORM_SECRETS_PATH}: HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert set(body) == {"bucket", "form_secret"}, body
    assert body["bucket"] == bucket, body
    assert isinstance(body["form_secret"], str) and body["form_secret"], body
    return body["form_secret"]


@dataclasses.dataclass
class M0Account:
    server: object
    tenant: Tenant
    bucket: str
    form_secret: str

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/{self.bucket}/"

    def s3(self):
        return self.server.client(self.tenant.access_key, self.tenant.secret_key)

    def sdk(self, secret: str | None = None):
        """upyun 2.4.2 UpYun with the form secret only, shim 2 applied."""
        mod = import_upyun242()
        up = mod.UpYun(self.bucket, secret=secret or self.form_secret, timeout=60)
        assert up.up_multi.host == "m0.api.upyun.com", up.up_multi.host
        up.up_multi.host = self.host
        return up

    # ---- raw m0 requests ------------------------------------------------

    def init(
        self,
        path: str,
        data: bytes,
        block_size: int,
        expiration_in: int = 1800,
        secret: str | None = None,
        file_hash: str | None = None,
        **extra,
    ) -> tuple[requests.Response, dict]:
        d = {
            "path": path,
            "expiration": int(time.time()) + expiration_in,
            "file_blocks": len(split_blocks(data, block_size)),
            "file_hash": file_hash or md5_hex(data),
            "file_size": len(data),
        }
        d.update(extra)
        r = self.post_urlencoded(make_policy(d), multi_signature(d, secret or self.form_secret))
        return r, d

    def block(
        self,
        save_token: str,
        token_secret: str,
        index: int,
        data: bytes,
        block_hash: str | None = None,
        expiration_in: int = 1800,
        filename: str = "file.bin",
    ) -> requests.Response:
        d = {
            "save_token": save_token,
            "expiration": int(time.time()) + expiration_in,
            "block_index": index,
            "block_hash": block_hash or md5_hex(data),
        }
        return self.post_block(make_policy(d), multi_signature(d, token_secret), data, filename)

    def merge(
        self, save_token: str, token_secret: str, expiration_in: int = 1800
    ) -> requests.Response:
        d = {"save_token": save_token, "expiration": int(time.time()) + expiration_in}
        return self.post_urlencoded(make_policy(d), multi_signature(d, token_secret))

    def post_urlencoded(self, policy: str, signature: str) -> requests.Response:
        return requests.post(
            self.url,
            data={"policy": policy, "signature": signature},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
            timeout=60,
        )

    def post_block(self, policy: str, signature: str, data: bytes, filename: str = "file.bin") -> requests.Response:
        """Multipart exactly as requests encodes the SDK's `files=` dict."""
        return requests.post(
            self.url,
            files={"policy": policy.encode(), "signature": signature, "file": (filename, data)},
            allow_redirects=False,
            timeout=60,
        )

    def upload_raw(self, path: str, data: bytes, block_size: int, **extra) -> requests.Response:
        """init + every block + merge; returns the merge response."""
        r, _ = self.init(path, data, block_size, **extra)
        ini = assert_init(r, self.bucket, len(split_blocks(data, block_size)))
        for i, blk in enumerate(split_blocks(data, block_size)):
            assert_block(self.block(ini["save_token"], ini["token_secret"], i, blk), self.bucket, ini, i)
        return self.merge(ini["save_token"], ini["token_secret"])


def make_m0_account(server) -> M0Account:
    tenant = create_tenant(server)
    bucket = "m0-" + secrets.token_hex(6)
    server.client(tenant.access_key, tenant.secret_key).create_bucket(Bucket=bucket)
    return M0Account(server=server, tenant=tenant, bucket=bucket, form_secret=new_form_secret(server, tenant.name, bucket))


@pytest.fixture
def acct(server):
    return make_m0_account(server)


# --------------------------------------------------------------------------
# assertions


def _json(r: requests.Response) -> dict:
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"HTTP {r.status_code}: body is not JSON: {r.text[:500]!r}")
    assert isinstance(body, dict), f"HTTP {r.status_code}: body is not a JSON object: {r.text[:500]!r}"
    return body


def assert_status_array(body: dict, blocks: int) -> list[int]:
    st = body["status"]
    assert isinstance(st, list) and len(st) == blocks, f"status should list {blocks} blocks: {body}"
    assert all(type(s) is int and s in (0, 1) for s in st), f"status entries must be 0 or 1: {body}"
    return st


def assert_init(r: requests.Response, bucket: str, blocks: int) -> dict:
    assert 200 <= r.status_code < 300, f"m0 init: HTTP {r.status_code} {r.text[:500]}"
    body = _json(r)
    missing = INIT_FIELDS - body.keys()
    assert not missing, f"m0 init response lacks {sorted(missing)}: {body}"
    assert isinstance(body["save_token"], str) and body["save_token"], body
    assert isinstance(body["token_secret"], str) and body["token_secret"], body
    assert body["bucket_name"] == bucket, body
    assert body["blocks"] == blocks, body
    assert_status_array(body, blocks)
    assert isinstance(body["expired_at"], int) and body["expired_at"] > time.time(), body
    return body


def assert_block(r: requests.Response, bucket: str, ini: dict, index: int) -> dict:
    assert 200 <= r.status_code < 300, f"m0 block {index}: HTTP {r.status_code} {r.text[:500]}"
    body = _json(r)
    missing = BLOCK_FIELDS - body.keys()
    assert not missing, f"m0 block response lacks {sorted(missing)}: {body}"
    assert body["save_token"] == ini["save_token"], body
    assert body["bucket_name"] == bucket, body
    assert body["blocks"] == ini["blocks"], body
    st = assert_status_array(body, ini["blocks"])
    assert st[index] == 1, f"block {index} not marked received: {body}"
    assert isinstance(body["expired_at"], int) and body["expired_at"] > time.time(), body
    return body


def assert_merge_result(res: dict, acct: M0Account, path: str, size: int, t0: float) -> None:
    assert isinstance(res, dict), f"merge result is not a JSON object: {res!r}"
    missing = MERGE_FIELDS - res.keys()
    assert not missing, f"merge result lacks {sorted(missing)}: {res}"
    assert res["bucket_name"] == acct.bucket, res
    assert res["path"] == path, res
    assert isinstance(res["content_length"], int) and res["content_length"] == size, res
    assert isinstance(res["content_type"], str) and res["content_type"], res
    assert isinstance(res["last_modified"], int), res
    assert int(t0) - 5 <= res["last_modified"] <= time.time() + 5, res
    assert res["signature"] == result_signature(res, acct.form_secret), (
        f"merge result signature is not md5(sorted fields + form secret): {res}"
    )


def assert_m0_error(r: requests.Response, code: str, *statuses: int, any_4xx: bool = False) -> dict:
    if any_4xx:
        assert 400 <= r.status_code < 500, f"expected a 4xx ({code}), got HTTP {r.status_code}: {r.text[:500]}"
    else:
        assert r.status_code in statuses, (
            f"expected HTTP {' or '.join(map(str, statuses))} ({code}), got {r.status_code}: {r.text[:500]}"
        )
    body = _json(r)
    missing = {"error_code", "message", "path"} - body.keys()
    assert not missing, f"m0 error body lacks {sorted(missing)}: {body}"
    assert isinstance(body["error_code"], str) and len(body["error_code"]) == 5 and body["error_code"].isdigit(), body
    assert body["error_code"] == code, f"expected error_code {code}: {body}"
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["path"], str), body
    return body


def assert_m0_4xx(r: requests.Response) -> dict:
    assert 400 <= r.status_code < 500, f"expected a 4xx, got HTTP {r.status_code}: {r.text[:500]}"
    body = _json(r)
    assert isinstance(body.get("error_code"), str) and len(body["error_code"]) == 5, body
    assert body["error_code"].startswith("4"), body
    return body


def assert_stored(acct: M0Account, path: str, data: bytes, content_type: str | None = None) -> None:
    s3 = acct.s3()
    head = s3.head_object(Bucket=acct.bucket, Key=s3_key(path))
    assert head["ContentLength"] == len(data), head
    got = get_body(s3, acct.bucket, s3_key(path))
    assert len(got) == len(data) and got == data, f"S3 body of {path} differs ({len(got)} vs {len(data)} bytes)"
    if content_type is not None:
        # The content_type the m0 result reports is that of the stored file.
        assert head["ContentType"] == content_type, (
            f"S3 Content-Type {head['ContentType']!r} of {path} differs from the "
            f"content_type {content_type!r} the m0 upload reported"
        )


def assert_not_stored(acct: M0Account, path: str) -> None:
    s3 = acct.s3()
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=acct.bucket, Key=s3_key(path))
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, info.value.response
    assert s3_key(path) not in list_all_keys(s3, acct.bucket), path


# --------------------------------------------------------------------------
# recording what the SDK sends


def record_m0(up) -> list[tuple[str, dict]]:
    """Every m0 request `up` sends, as (stage, policy dict), stage one of
    init / block / merge; also checks the URL is POST /<bucket>/ on the server."""
    sent: list[tuple[str, dict]] = []
    session = up.hp.session
    orig = session.request
    expected_url = f"http://{up.up_multi.host}/{up.bucket}/"

    def request(method, url, *args, **kwargs):
        assert method == "POST" and url == expected_url, (method, url, expected_url)
        files = kwargs.get("files")
        if files:
            pol = files["policy"]
        else:
            pol = parse_qs(kwargs.get("data"))["policy"][0]
        d = json.loads(base64.b64decode(pol))
        stage = "init" if "file_hash" in d else "block" if "block_index" in d else "merge"
        sent.append((stage, d))
        return orig(method, url, *args, **kwargs)

    session.request = request
    return sent


# ==========================================================================
# tests


def test_multi_signature_reference_values():
    """The independent signature matches the spec's worked examples and the
    SDK's make_multi_signature."""
    d = {"expiration": 1698800000, "file_blocks": 3, "file_hash": "0123456789abcdef0123456789abcdef",
         "file_size": 2621440, "path": "/big.bin"}
    assert multi_signature(d, "formsecret") == "e03630d96a6de682dc3dc9e3fc9afbc9"
    doc = {"path": "/demo.png", "expiration": 1409200758, "file_blocks": 1,
           "file_hash": "b1143cbc07c8e768d517fa5e73cb79ca", "file_size": 653252}
    assert multi_signature(doc, "cAnyet74l9hdUag34h2dZu8z7gU=") == "a178e6e3ff4656e437811616ca842c48"
    mod = import_upyun242()
    sign = sys.modules[f"{mod.__name__}.modules.sign"]
    assert sign.make_multi_signature(d, "formsecret") == multi_signature(d, "formsecret")
    assert json.loads(base64.b64decode(sign.make_policy(d))) == d


def test_form_secret_admin_endpoint(server):
    tenant = create_tenant(server)
    bucket = "m0-" + secrets.token_hex(6)
    server.client(tenant.access_key, tenant.secret_key).create_bucket(Bucket=bucket)
    s1 = new_form_secret(server, tenant.name, bucket)
    s2 = new_form_secret(server, tenant.name, bucket)
    assert s1 != s2, "each call must issue a new form secret"
    r = create_form_secret(server, tenant.name, bucket, auth=None)
    assert r.status_code == 401, f"form secret without credentials: HTTP {r.status_code} {r.text[:300]}"
    r = create_form_secret(server, tenant.name, bucket, auth=tenant.auth)
    assert r.status_code == 401, f"form secret with tenant keys: HTTP {r.status_code} {r.text[:300]}"

    # Only the latest secret is valid.
    acct = M0Account(server=server, tenant=tenant, bucket=bucket, form_secret=s2)
    data = os.urandom(1000)
    path = unique_path("/m0/rot")
    r, _ = acct.init(path, data, 100 * KiB, secret=s1)
    assert_m0_error(r, "40101", 401)
    r, _ = acct.init(path, data, 100 * KiB, secret=s2)
    assert_init(r, bucket, 1)


@pytest.mark.parametrize(
    "size,block_size",
    [
        (0, None),  # one empty block
        (1 * MiB, None),  # one 1 MiB block (SDK default block size)
        (1 * MiB, 300 * KiB),  # 4 blocks, the last one 124 KiB
        (25 * MiB, None),  # 25 blocks of 1 MiB, 4 threads
        (25 * MiB + 12345, 5 * MiB),  # 6 blocks, the SDK's largest block size
    ],
    ids=["0B", "1MiB-1block", "1MiB-300KiB", "25MiB-1MiB", "25MiB+-5MiB"],
)
def test_sdk_block_upload(acct, tmp_path, size, block_size):
    data = os.urandom(size)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    path = unique_path("/m0/sdk")
    up = acct.sdk()
    sent = record_m0(up)
    t0 = time.time()
    with open(src, "rb") as f:
        res = up.put(path, f, multipart=True, block_size=block_size)
    assert res is not None, "the SDK gave up (a block never reached status 1 within 5 rounds)"
    assert_merge_result(res, acct, path, size, t0)

    nblocks = len(split_blocks(data, block_size or MiB))
    stages = [s for s, _ in sent]
    assert stages.count("init") == 1 and stages[0] == "init", stages
    assert stages.count("merge") == 1 and stages[-1] == "merge", stages
    blocks_sent = sorted(d["block_index"] for s, d in sent if s == "block")
    assert blocks_sent == list(range(nblocks)), f"each block once: {blocks_sent}"
    assert sent[0][1]["file_hash"] == md5_hex(data) and sent[0][1]["file_blocks"] == nblocks

    assert_stored(acct, path, data, content_type=res["content_type"])


def test_interrupted_upload_resumes_with_reinit(acct, tmp_path):
    """raw init + blocks 0, 2, 3 of 5 -> a re-init of the same upload returns
    the same save_token and status [1,0,1,1,0]; the real SDK, started on the
    same file, then only sends blocks 1 and 4."""
    bs = 256 * KiB
    data = os.urandom(4 * bs + 100 * KiB)
    blocks = split_blocks(data, bs)
    assert len(blocks) == 5
    path = unique_path("/m0/resume")

    r, _ = acct.init(path, data, bs)
    ini = assert_init(r, acct.bucket, 5)
    assert ini["status"] == [0, 0, 0, 0, 0], ini
    assert ini["token_secret"] != acct.form_secret
    for i in (0, 2, 3):
        body = assert_block(acct.block(ini["save_token"], ini["token_secret"], i, blocks[i]), acct.bucket, ini, i)
    assert body["status"] == [1, 0, 1, 1, 0], body
    assert_not_stored(acct, path)

    # Re-init (new expiration, so a different policy) -> same upload.
    r, _ = acct.init(path, data, bs, expiration_in=2400)
    again = assert_init(r, acct.bucket, 5)
    assert again["save_token"] == ini["save_token"], (ini, again)
    assert again["status"] == [1, 0, 1, 1, 0], again

    # A different upload (other content, same path) is not confused with it.
    other = os.urandom(len(data))
    r, _ = acct.init(path, other, bs)
    fresh = assert_init(r, acct.bucket, 5)
    assert fresh["save_token"] != ini["save_token"], fresh
    assert fresh["status"] == [0, 0, 0, 0, 0], fresh

    # The SDK resumes: its init sees the status, it skips the received blocks.
    src = tmp_path / "resume.bin"
    src.write_bytes(data)
    up = acct.sdk()
    sent = record_m0(up)
    t0 = time.time()
    with open(src, "rb") as f:
        res = up.put(path, f, multipart=True, block_size=bs)
    assert res is not None, "the SDK gave up"
    assert_merge_result(res, acct, path, len(data), t0)
    assert sorted(d["block_index"] for s, d in sent if s == "block") == [1, 4], sent
    assert all(d["save_token"] == ini["save_token"] for s, d in sent if s != "init"), sent
    assert_stored(acct, path, data)


def test_raw_upload_and_resend_of_a_received_block(acct):
    """Blocks may arrive in any order; re-sending a received block is harmless."""
    bs = 128 * KiB
    data = os.urandom(3 * bs + 1)
    blocks = split_blocks(data, bs)
    path = unique_path("/m0/order")
    r, _ = acct.init(path, data, bs)
    ini = assert_init(r, acct.bucket, 4)
    for i in (3, 1, 0, 1, 2):
        body = assert_block(acct.block(ini["save_token"], ini["token_secret"], i, blocks[i]), acct.bucket, ini, i)
    assert body["status"] == [1, 1, 1, 1], body
    t0 = time.time()
    m = acct.merge(ini["save_token"], ini["token_secret"])
    assert m.status_code == 200, f"merge: HTTP {m.status_code} {m.text[:500]}"
    assert_merge_result(_json(m), acct, path, len(data), t0)
    assert_stored(acct, path, data)


def test_wrong_block_hash_is_40305_and_nothing_stored(acct):
    bs = 128 * KiB
    data = os.urandom(2 * bs)
    blocks = split_blocks(data, bs)
    path = unique_path("/m0/badblock")
    r, _ = acct.init(path, data, bs)
    ini = assert_init(r, acct.bucket, 2)

    r = acct.block(ini["save_token"], ini["token_secret"], 0, blocks[0], block_hash=md5_hex(blocks[0] + b"x"))
    assert_m0_error(r, "40305", any_4xx=True)
    # Right hash, wrong bytes: same error.
    r = acct.block(ini["save_token"], ini["token_secret"], 1, blocks[0], block_hash=md5_hex(blocks[1]))
    assert_m0_error(r, "40305", any_4xx=True)

    r, _ = acct.init(path, data, bs)
    again = assert_init(r, acct.bucket, 2)
    assert again["save_token"] == ini["save_token"], again
    assert again["status"] == [0, 0], f"a block with a wrong hash must not count as received: {again}"

    # Merging the incomplete upload fails; nothing is stored.
    m = acct.merge(ini["save_token"], ini["token_secret"])
    assert_m0_4xx(m)
    assert_not_stored(acct, path)


def test_wrong_file_hash_at_merge_is_40306_and_nothing_stored(acct):
    bs = 128 * KiB
    data = os.urandom(2 * bs + 7)
    blocks = split_blocks(data, bs)
    path = unique_path("/m0/badfile")
    # The init declares the md5 of other bytes of the same size.
    r, _ = acct.init(path, data, bs, file_hash=md5_hex(os.urandom(len(data))))
    ini = assert_init(r, acct.bucket, 3)
    for i, blk in enumerate(blocks):
        assert_block(acct.block(ini["save_token"], ini["token_secret"], i, blk), acct.bucket, ini, i)
    m = acct.merge(ini["save_token"], ini["token_secret"])
    assert_m0_error(m, "40306", any_4xx=True)
    assert_not_stored(acct, path)


def test_expired_policy_is_401(acct, tmp_path):
    bs = 128 * KiB
    data = os.urandom(bs + 5)
    blocks = split_blocks(data, bs)
    path = unique_path("/m0/expired")

    r, _ = acct.init(path, data, bs, expiration_in=-60)
    assert_m0_error(r, "40101", 401)

    r, _ = acct.init(path, data, bs)
    ini = assert_init(r, acct.bucket, 2)
    r = acct.block(ini["save_token"], ini["token_secret"], 0, blocks[0], expiration_in=-60)
    assert_m0_error(r, "40101", 401)
    for i, blk in enumerate(blocks):
        assert_block(acct.block(ini["save_token"], ini["token_secret"], i, blk), acct.bucket, ini, i)
    m = acct.merge(ini["save_token"], ini["token_secret"], expiration_in=-60)
    assert_m0_error(m, "40101", 401)
    assert_not_stored(acct, path)

    # The SDK with an expiration in the past: refused at init.
    src = tmp_path / "exp.bin"
    src.write_bytes(data)
    with open(src, "rb") as f, pytest.raises(sdk_exc()) as info:
        acct.sdk().put(path, f, multipart=True, block_size=bs, expiration=-60)
    assert info.value.status == 401, f"expected 401, got {info.value.status}: {info.value.err!r}"
    assert json.loads(info.value.err)["error_code"] == "40101", info.value.err
    assert_not_stored(acct, path)


def test_bad_signature_is_401(acct, tmp_path):
    bs = 128 * KiB
    data = os.urandom(bs + 5)
    blocks = split_blocks(data, bs)
    path = unique_path("/m0/badsig")

    # init signed with a wrong secret
    r, _ = acct.init(path, data, bs, secret=acct.form_secret + "x")
    assert_m0_error(r, "40101", 401)
    # init whose policy was changed after signing (other path)
    d = {"path": path, "expiration": int(time.time()) + 1800, "file_blocks": 2,
         "file_hash": md5_hex(data), "file_size": len(data)}
    sig = multi_signature(d, acct.form_secret)
    tampered = dict(d, path=unique_path("/m0/tampered"))
    assert_m0_error(acct.post_urlencoded(make_policy(tampered), sig), "40101", 401)
    assert_m0_error(acct.post_urlencoded(make_policy(d), "0" * 32), "40101", 401)

    r, _ = acct.init(path, data, bs)
    ini = assert_init(r, acct.bucket, 2)
    # block signed with the form secret instead of token_secret
    r = acct.block(ini["save_token"], acct.form_secret, 0, blocks[0])
    assert_m0_error(r, "40101", 401)
    # block policy tampered (other index) after signing
    bd = {"save_token": ini["save_token"], "expiration": int(time.time()) + 1800,
          "block_index": 0, "block_hash": md5_hex(blocks[0])}
    bsig = multi_signature(bd, ini["token_secret"])
    r = acct.post_block(make_policy(dict(bd, block_index=1)), bsig, blocks[0])
    assert_m0_error(r, "40101", 401)
    for i, blk in enumerate(blocks):
        assert_block(acct.block(ini["save_token"], ini["token_secret"], i, blk), acct.bucket, ini, i)
    # merge signed with the form secret instead of token_secret
    m = acct.merge(ini["save_token"], acct.form_secret)
    assert_m0_error(m, "40101", 401)
    assert_not_stored(acct, path)
    # the correctly signed merge still works
    t0 = time.time()
    m = acct.merge(ini["save_token"], ini["token_secret"])
    assert m.status_code == 200, f"merge: HTTP {m.status_code} {m.text[:500]}"
    assert_merge_result(_json(m), acct, path, len(data), t0)
    assert_stored(acct, path, data)

    # The SDK with a wrong form secret: refused at init.
    src = tmp_path / "badsig.bin"
    src.write_bytes(data)
    path2 = unique_path("/m0/badsig-sdk")
    with open(src, "rb") as f, pytest.raises(sdk_exc()) as info:
        acct.sdk(secret="not-the-secret").put(path2, f, multipart=True, block_size=bs)
    assert info.value.status == 401, f"expected 401, got {info.value.status}: {info.value.err!r}"
    assert json.loads(info.value.err)["error_code"] == "40101", info.value.err
    assert_not_stored(acct, path2)


def test_unknown_save_token_is_40402(acct):
    token, tsecret = secrets.token_hex(16), secrets.token_hex(16)
    r = acct.block(token, tsecret, 0, b"some block")
    assert_m0_error(r, "40402", 404)
    m = acct.merge(token, tsecret)
    assert_m0_error(m, "40402", 404)


def test_return_url_redirects_with_signed_result(acct):
    bs = 128 * KiB
    data = os.urandom(2 * bs + 99)
    path = unique_path("/m0/ret", ".txt")
    return_url = "http://client.example.invalid/cb/return.php"
    t0 = time.time()
    m = acct.upload_raw(path, data, bs, **{"return-url": return_url})
    assert m.status_code == 302, f"merge with return-url: HTTP {m.status_code} {m.text[:500]}"
    loc = m.headers.get("Location")
    assert loc and loc.startswith(return_url + "?"), f"Location: {loc!r}"
    assert urlsplit(loc).path == "/cb/return.php", loc
    pairs = parse_qsl(urlsplit(loc).query, keep_blank_values=True, strict_parsing=True)
    fields = dict(pairs)
    assert len(fields) == len(pairs), f"duplicate query fields: {pairs}"
    missing = MERGE_FIELDS - fields.keys()
    assert not missing, f"return-url query lacks {sorted(missing)}: {loc}"
    assert fields["bucket_name"] == acct.bucket, fields
    assert fields["path"] == path, fields
    assert fields["content_length"] == str(len(data)), fields
    assert int(t0) - 5 <= int(fields["last_modified"]) <= time.time() + 5, fields
    assert fields["signature"] == result_signature(fields, acct.form_secret), (
        f"return-url signature is not md5(sorted fields + form secret): {loc}"
    )
    assert_stored(acct, path, data, content_type=fields["content_type"])


def test_cross_protocol_s3_read_and_overwrite(acct, tmp_path):
    """An m0 upload is an ordinary object of the bucket: S3 sees it under the
    path without its leading slash (nested, non-ASCII), and an m0 upload
    replaces an object put with S3."""
    s3 = acct.s3()
    path = f"/m0/x-{secrets.token_hex(3)}/dir/报告 final+1.txt"
    s3.put_object(Bucket=acct.bucket, Key=s3_key(path), Body=b"old contents via S3")

    data = os.urandom(700 * KiB + 3)
    src = tmp_path / "x.txt"
    src.write_bytes(data)
    up = acct.sdk()
    t0 = time.time()
    with open(src, "rb") as f:
        res = up.put(path, f, multipart=True, block_size=200 * KiB)
    assert res is not None, "the SDK gave up"
    assert_merge_result(res, acct, path, len(data), t0)
    assert_stored(acct, path, data, content_type=res["content_type"])
    assert s3_key(path) in list_all_keys(s3, acct.bucket, prefix="m0/"), list_all_keys(s3, acct.bucket)
    rng = s3.get_object(Bucket=acct.bucket, Key=s3_key(path), Range="bytes=204800-204899")["Body"].read()
    assert rng == data[204800:204900]

    # Another tenant's keys cannot read it.
    other = create_tenant(acct.server)
    with pytest.raises(ClientError):
        acct.server.client(other.access_key, other.secret_key).get_object(Bucket=acct.bucket, Key=s3_key(path))


def test_content_type_in_init_policy(acct):
    """The optional `content-type` of the init policy (upyun-form-block-upload.md,
    optional parameters) is the stored file's type, reported by the merge and
    served by S3."""
    bs = 128 * KiB
    data = b"hello m0\n" * 20000
    path = unique_path("/m0/ctype", ".dat")
    t0 = time.time()
    m = acct.upload_raw(path, data, bs, **{"content-type": "text/plain"})
    assert m.status_code == 200, f"merge: HTTP {m.status_code} {m.text[:500]}"
    res = _json(m)
    assert_merge_result(res, acct, path, len(data), t0)
    assert res["content_type"] == "text/plain", res
    assert_stored(acct, path, data, content_type="text/plain")


def test_form_secret_is_scoped_to_its_bucket(server):
    """A form secret signs for its own bucket only; a save_token belongs to
    its bucket; a block index outside the upload is refused."""
    a = make_m0_account(server)
    b = make_m0_account(server)
    data = os.urandom(150 * KiB)
    path = unique_path("/m0/scope")
    # bucket B's URL, policy signed with bucket A's secret
    wrong = M0Account(server=server, tenant=b.tenant, bucket=b.bucket, form_secret=a.form_secret)
    r, _ = wrong.init(path, data, 100 * KiB)
    assert_m0_error(r, "40101", 401)

    r, _ = a.init(path, data, 100 * KiB)
    ini = assert_init(r, a.bucket, 2)
    # A's save_token sent to B's URL is unknown there.
    r = b.block(ini["save_token"], ini["token_secret"], 0, data[: 100 * KiB])
    assert_m0_error(r, "40402", 404)
    # Block index beyond file_blocks.
    r = a.block(ini["save_token"], ini["token_secret"], 2, data[: 100 * KiB])
    assert_m0_4xx(r)
    for i, blk in enumerate(split_blocks(data, 100 * KiB)):
        assert_block(a.block(ini["save_token"], ini["token_secret"], i, blk), a.bucket, ini, i)
    t0 = time.time()
    m = a.merge(ini["save_token"], ini["token_secret"])
    assert m.status_code == 200, f"merge: HTTP {m.status_code} {m.text[:500]}"
    assert_merge_result(_json(m), a, path, len(data), t0)
    assert_stored(a, path, data)
    assert_not_stored(b, path)
