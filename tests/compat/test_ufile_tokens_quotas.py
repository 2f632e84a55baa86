"""UFile (UCloud US3 / Inspur OSS) scoped tokens, quotas, quota prices and
usage reports (inspur-oss-api.md §16-23), through the management API, the
real `ufile` SDK, raw requests and boto3.

Contract:
* management API: POST /?Action=<Action>&...&PublicKey=<tenant key>
  &Signature=<api_signature(params, secret)> on the server's own address,
  parameters in the query string; answers {"RetCode": 0, "Action":
  "<Action>Response", ...}; failures JSON {"RetCode": != 0, "ErrMsg"} with a
  4xx status; tokens cannot call it (403);
* CreateUFileToken (TokenName, AllowedOps.n, AllowedPrefixes.n,
  AllowedBuckets.n, ExpireTime) -> {TokenId, PublicKey "TOKEN_<TokenId>",
  PrivateKey}; the token key pair signs UFile requests (header and presigned
  URLs) and S3 SigV4 requests like any key pair; in every request signed with
  a token: op not allowed / key outside AllowedPrefixes / bucket outside
  AllowedBuckets / bucket management -> 403, after ExpireTime -> 401/403;
  UpdateUFileToken changes the grant (lists not given keep their values),
  DescribeUFileToken lists, DeleteUFileToken disables; another tenant's token
  -> 4xx RetCode 15040;
* quotas (admin: POST /_chuan/admin/quotas?tenant=T&storage_bytes=&
  download_bytes=&requests=, omitted = unlimited): totals per tenant,
  enforced synchronously and never exceeded; UFile refusals 403 RetCode
  15011, S3 refusals 403 QuotaExceeded, nothing stored / no partial body;
* GetUFileQuota / GetUFileQuotaInfo report what is left (GB = 1e9 bytes for
  storage and download, 10 000 requests for request-count; unlimited -> -1
  or a very large number); GetUFileReport shows the real daily counters
  (flushed every ~2 s: polled up to 10 s); GetUFileQuotaPrice prices a quota
  (spec example: 346 fen).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
import time
from typing import Any, Callable

import requests
from botocore.exceptions import ClientError

from compat_helpers import MiB, client_error, expect_s3_error, unique_name
from ufile_helpers import (  # noqa: F401  (fixtures: make_ufile, uf)
    UFileCtx,
    api_signature,
    assert_no_s3_object,
    assert_sdk_error,
    assert_sdk_ok,
    assert_ufile_error,
    make_ufile,
    quoted,
    uf,
    ufile_etag,
    wait_until,
)

OCT = "application/octet-stream"
QUOTAS_PATH = "/_chuan/admin/quotas"
QUOTA_RETCODE = 15011
TOKEN_NOT_FOUND = 15040
GB = 1e9
TEN_K = 1e4
UNLIMITED_MIN = 1e6  # a "very large" LeftQuota: at least 1e6 GB / 1e10 requests
QUOTA_TYPES = ("storage-volume", "download-traffic", "request-count")
REPORT_POLL_S = 10.0

READ, WRITE, DELETE, LIST, NONE = (
    "TOKEN_ALLOW_READ",
    "TOKEN_ALLOW_WRITE",
    "TOKEN_ALLOW_DELETE",
    "TOKEN_ALLOW_LIST",
    "TOKEN_ALLOW_NONE",
)
ALL_OPS = [READ, WRITE, DELETE, LIST]


# --------------------------------------------------------------------------
# management API


def mgmt(ctx: UFileCtx, action: str, params: dict | None = None, keys: tuple[str, str] | None = None,
         signature: str | None = None) -> requests.Response:
    """POST /?Action=...&PublicKey=...&Signature=... signed with ctx's key pair
    (or `keys`), parameters in the query string."""
    pub, priv = keys or (ctx.public_key, ctx.private_key)
    p = {"Action": action, "PublicKey": pub}
    p.update({k: str(v) for k, v in (params or {}).items()})
    p["Signature"] = signature if signature is not None else api_signature(p, priv)
    return requests.post(ctx.server.endpoint + "/", params=p, timeout=30)


def _json(r: requests.Response, what: str) -> dict:
    try:
        doc = r.json()
    except ValueError:
        raise AssertionError(f"{what}: body is not JSON: HTTP {r.status_code} {r.text[:500]!r}")
    assert isinstance(doc, dict), f"{what}: body is not a JSON object: {doc!r}"
    return doc


def mgmt_ok(ctx: UFileCtx, action: str, params: dict | None = None, keys: tuple[str, str] | None = None) -> dict:
    r = mgmt(ctx, action, params, keys)
    what = f"{action} {params or {}}"
    assert r.status_code == 200, f"{what}: HTTP {r.status_code} {r.text[:500]}"
    doc = _json(r, what)
    assert doc.get("RetCode") == 0 and not isinstance(doc.get("RetCode"), bool), f"{what}: RetCode must be 0: {doc}"
    assert doc.get("Action") == f"{action}Response", f"{what}: Action must be {action}Response: {doc}"
    return doc


def assert_mgmt_error(r: requests.Response, statuses, what: str, retcode: int | None = None) -> dict:
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert r.status_code in statuses, (
        f"{what}: expected HTTP {'/'.join(map(str, statuses))}, got {r.status_code} {r.text[:500]!r}"
    )
    doc = _json(r, what)
    rc = doc.get("RetCode")
    assert isinstance(rc, int) and not isinstance(rc, bool) and rc != 0, f"{what}: RetCode must be a nonzero int: {doc}"
    assert isinstance(doc.get("ErrMsg"), str), f"{what}: ErrMsg missing or not a string: {doc}"
    if retcode is not None:
        assert rc == retcode, f"{what}: expected RetCode {retcode}, got {rc}: {doc}"
    return doc


CLIENT_ERRORS = tuple(range(400, 500))


# --------------------------------------------------------------------------
# tokens


@dataclasses.dataclass
class Token:
    id: str
    public_key: str
    private_key: str

    @property
    def keys(self) -> tuple[str, str]:
        return (self.public_key, self.private_key)


def grant_params(ops=None, prefixes=None, buckets=None, expire=None, name=None) -> dict:
    p: dict[str, Any] = {}
    if name is not None:
        p["TokenName"] = name
    for field, values in (("AllowedOps", ops), ("AllowedPrefixes", prefixes), ("AllowedBuckets", buckets)):
        for i, v in enumerate(values or []):
            p[f"{field}.{i}"] = v
    if expire is not None:
        p["ExpireTime"] = int(expire)
    return p


def create_token(ctx: UFileCtx, ops, prefixes=None, buckets=None, expire=None, name=None) -> Token:
    if expire is None:
        expire = int(time.time()) + 3600
    if name is None:
        name = unique_name("tok")
    doc = mgmt_ok(ctx, "CreateUFileToken", grant_params(ops, prefixes, buckets, expire, name))
    tid, pub, priv = doc.get("TokenId"), doc.get("PublicKey"), doc.get("PrivateKey")
    assert isinstance(tid, str) and tid, f"CreateUFileToken: TokenId missing: {doc}"
    assert pub == f"TOKEN_{tid}", f"CreateUFileToken: PublicKey must be TOKEN_<TokenId>: {doc}"
    assert isinstance(priv, str) and len(priv) >= 16, f"CreateUFileToken: PrivateKey missing or short: {doc}"
    return Token(tid, pub, priv)


def with_token(ctx: UFileCtx, tok: Token, bucket: str | None = None) -> UFileCtx:
    """The same addressing as ctx, signed with the token's key pair."""
    return ctx.other(public_key=tok.public_key, private_key=tok.private_key, bucket=bucket or ctx.bucket)


def describe(ctx: UFileCtx, token_id: str | None = None) -> list[dict]:
    doc = mgmt_ok(ctx, "DescribeUFileToken", {"TokenId": token_id} if token_id else None)
    ds = doc.get("DataSet")
    assert isinstance(ds, list), f"DescribeUFileToken: DataSet must be a list: {doc}"
    return ds


def describe_one(ctx: UFileCtx, token_id: str) -> dict:
    ds = describe(ctx, token_id)
    assert len(ds) == 1 and ds[0].get("TokenId") == token_id, f"DescribeUFileToken TokenId={token_id}: {ds}"
    return ds[0]


def assert_grant(item: dict, ops, prefixes, buckets, expire: int, name: str, what: str) -> None:
    for field in ("TokenId", "TokenName", "PublicKey", "AllowedOps", "AllowedPrefixes", "AllowedBuckets", "ExpireTime"):
        assert field in item, f"{what}: token description lacks {field}: {item}"
    assert item["PublicKey"] == f"TOKEN_{item['TokenId']}", f"{what}: {item}"
    assert item["TokenName"] == name, f"{what}: TokenName {item['TokenName']!r}, expected {name!r}"
    assert sorted(item["AllowedOps"]) == sorted(ops), f"{what}: AllowedOps {item['AllowedOps']}, expected {ops}"
    assert sorted(item["AllowedPrefixes"]) == sorted(prefixes), f"{what}: AllowedPrefixes {item['AllowedPrefixes']}, expected {prefixes}"
    assert sorted(item["AllowedBuckets"]) == sorted(buckets), f"{what}: AllowedBuckets {item['AllowedBuckets']}, expected {buckets}"
    assert item["ExpireTime"] == expire, f"{what}: ExpireTime {item['ExpireTime']}, expected {expire}"


# --------------------------------------------------------------------------
# small request helpers


def write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def s3_status(call: Callable[[], Any]) -> int:
    """HTTP status of a boto3 call (200 when it succeeded)."""
    try:
        call()
    except ClientError as e:
        return client_error(e)[0]
    return 200


def assert_s3_status(call: Callable[[], Any], statuses, what: str) -> None:
    if isinstance(statuses, int):
        statuses = (statuses,)
    try:
        call()
    except ClientError as e:
        st, code = client_error(e)
        assert st in statuses, f"{what}: expected HTTP {statuses}, got {st} {code}: {e.response.get('Error')}"
        return
    raise AssertionError(f"{what}: expected HTTP {statuses}, the call succeeded")


def raw_ok(r: requests.Response, what: str, statuses=(200,)) -> requests.Response:
    assert r.status_code in statuses, f"{what}: HTTP {r.status_code} {r.text[:500]}"
    return r


def assert_exists(ctx: UFileCtx, key: str, data: bytes, what: str, bucket: str | None = None) -> None:
    got = ctx.s3_bytes(key, bucket)
    assert got == data, f"{what}: {key} holds {len(got)} B, expected the {len(data)} B written"


# --------------------------------------------------------------------------
# quotas


def set_quota(server, tenant: str, **limits) -> dict:
    params = {"tenant": tenant, **{k: str(v) for k, v in limits.items()}}
    r = requests.post(server.endpoint + QUOTAS_PATH, params=params, auth=(server.access_key, server.secret_key), timeout=30)
    what = f"POST {QUOTAS_PATH} {params}"
    assert r.status_code == 200, f"{what}: HTTP {r.status_code} {r.text[:500]}"
    body = _json(r, what)
    assert body.get("tenant") == tenant, f"{what}: the answer must echo tenant: {body}"
    # the limits echoed at the top level or in a "quota" object
    echo = body.get("quota") if isinstance(body.get("quota"), dict) else body
    for k, v in limits.items():
        assert echo.get(k) == v, f"{what}: the answer must echo {k}={v}: {body}"
    return body


def assert_quota_ufile(r: requests.Response, what: str, body: bool = True) -> None:
    doc = assert_ufile_error(r, 403, what, body=body)
    if body:
        assert doc["RetCode"] == QUOTA_RETCODE, f"{what}: quota refusal must be RetCode {QUOTA_RETCODE}: {doc}"


def assert_quota_sdk(ret, resp, what: str, body: bool = True) -> None:
    assert_sdk_error(ret, resp, 403, what, body=body)
    if body:
        assert resp.ret_code == QUOTA_RETCODE, f"{what}: SDK ret_code {resp.ret_code}, expected {QUOTA_RETCODE} ({resp.error!r})"


def quota_s3():
    return expect_s3_error(403, "QuotaExceeded")


def left_quota(ctx: UFileCtx, qtype: str) -> float:
    doc = mgmt_ok(ctx, "GetUFileQuota", {"QuotaType": qtype})
    v = doc.get("LeftQuota")
    assert isinstance(v, (int, float)) and not isinstance(v, bool), f"GetUFileQuota {qtype}: LeftQuota must be a number: {doc}"
    return float(v)


def quota_info(ctx: UFileCtx) -> dict:
    params = {f"QuotaType.{i}": t for i, t in enumerate(QUOTA_TYPES)}
    doc = mgmt_ok(ctx, "GetUFileQuotaInfo", params)
    ds = doc.get("DataSet")
    assert isinstance(ds, list) and len(ds) >= 1, f"GetUFileQuotaInfo: DataSet must be a non-empty list: {doc}"
    item = ds[0]
    assert isinstance(item, dict), doc
    assert isinstance(item.get("Region"), str), f"GetUFileQuotaInfo: Region must be a string: {item}"
    owe = item.get("Owe")
    assert isinstance(owe, int) and not isinstance(owe, bool) and owe in (0, 1), f"GetUFileQuotaInfo: Owe must be 0 or 1: {item}"
    for field in ("Storage", "DownloadFlow", "RequestCnt"):
        sub = item.get(field)
        assert isinstance(sub, dict), f"GetUFileQuotaInfo: {field} must be an object {{Left}}: {item}"
        left = sub.get("Left")
        assert isinstance(left, (int, float)) and not isinstance(left, bool), f"GetUFileQuotaInfo: {field}.Left must be a number: {item}"
    return item


def is_unlimited(v: float) -> bool:
    return v == -1 or v >= UNLIMITED_MIN


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = REPORT_POLL_S, every: float = 0.5):
    """fetch() until done(value) or timeout; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fetch()
        if done(v) or time.monotonic() >= deadline:
            return v
        time.sleep(every)


def close(a: float, b: float, rel: float = 1e-4, abs_: float = 1e-12) -> bool:
    return abs(a - b) <= max(abs_, rel * abs(b))


def day_start(ts: float) -> int:
    return int(ts) // 86400 * 86400


# ==========================================================================
# tokens: creation and description


def test_create_token_and_describe(server, make_ufile):
    a = make_ufile(server)
    b = make_ufile(server)
    exp = int(time.time()) + 7200
    t1 = create_token(a, [READ, WRITE], ["docs/", "img/"], [a.bucket], exp, "reader-writer")
    t2 = create_token(a, [LIST], None, [a.bucket], exp + 1, "lister")
    assert t1.id != t2.id and t1.private_key != t2.private_key

    assert_grant(describe_one(a, t1.id), [READ, WRITE], ["docs/", "img/"], [a.bucket], exp, "reader-writer", "describe t1")
    assert_grant(describe_one(a, t2.id), [LIST], [], [a.bucket], exp + 1, "lister", "describe t2")

    everything = {i.get("TokenId"): i for i in describe(a)}
    assert t1.id in everything and t2.id in everything, f"DescribeUFileToken without TokenId must list both tokens: {list(everything)}"
    assert_grant(everything[t1.id], [READ, WRITE], ["docs/", "img/"], [a.bucket], exp, "reader-writer", "describe-all t1")

    # another tenant sees none of them
    theirs = {i.get("TokenId") for i in describe(b)}
    assert t1.id not in theirs and t2.id not in theirs, f"tenant B's DescribeUFileToken lists tenant A's tokens: {theirs}"


def test_management_api_requires_a_valid_signature(server, make_ufile):
    a = make_ufile(server)
    before = {i.get("TokenId") for i in describe(a)}
    r = mgmt(a, "CreateUFileToken", grant_params([READ], None, [a.bucket], int(time.time()) + 600, "bad"), signature="0" * 40)
    assert_mgmt_error(r, (401, 403), "CreateUFileToken with a wrong Signature")
    r = mgmt(a, "CreateUFileToken", grant_params([READ], None, [a.bucket], int(time.time()) + 600, "bad"),
             keys=(a.public_key, a.private_key + "x"))
    assert_mgmt_error(r, (401, 403), "CreateUFileToken signed with a wrong private key")
    r = mgmt(a, "GetUFileQuota", {"QuotaType": "storage-volume"}, keys=("NO-SUCH-PUBLIC-KEY", "whatever"))
    assert_mgmt_error(r, (401, 403), "GetUFileQuota with an unknown PublicKey")
    after = {i.get("TokenId") for i in describe(a)}
    assert after == before, f"refused CreateUFileToken calls created tokens: {after - before}"


# ==========================================================================
# tokens: enforcement through the SDK, raw requests and boto3


def test_write_only_token(server, make_ufile, tmp_path):
    """WRITE only: putfile / putstream / postfile / multipart / S3 put pass;
    head, download, presigned GET, listings and delete are refused."""
    uf = make_ufile(server)
    existing = os.urandom(300)
    uf.put_bytes("w/existing.bin", existing)
    tok = create_token(uf, [WRITE], None, [uf.bucket])
    t = with_token(uf, tok)
    fm = t.fm()

    data = os.urandom(1000)
    ret, resp = fm.putfile(uf.bucket, "w/put.txt", write(tmp_path / "put.txt", data))
    assert_sdk_ok(ret, resp, "putfile with a WRITE token")
    assert resp.etag == quoted(ufile_etag(data)), resp.etag
    assert_exists(uf, "w/put.txt", data, "putfile with a WRITE token")
    sdata = os.urandom(777)
    ret, resp = fm.putstream(uf.bucket, "w/stream.bin", io.BytesIO(sdata))
    assert_sdk_ok(ret, resp, "putstream with a WRITE token")
    assert_exists(uf, "w/stream.bin", sdata, "putstream with a WRITE token")
    pdata = os.urandom(555)
    ret, resp = fm.postfile(uf.bucket, "w/post.bin", write(tmp_path / "post.bin", pdata))
    assert_sdk_ok(ret, resp, "postfile with a WRITE token")
    assert_exists(uf, "w/post.bin", pdata, "postfile with a WRITE token")
    mdata = os.urandom(4 * MiB + 1000)
    ret, resp = t.mp().uploadstream(uf.bucket, "w/mp.bin", io.BytesIO(mdata), retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, "multipart uploadstream with a WRITE token")
    assert_exists(uf, "w/mp.bin", mdata, "multipart with a WRITE token")

    ret, resp = fm.head_file(uf.bucket, "w/existing.bin")
    assert_sdk_error(ret, resp, 403, "head_file with a WRITE-only token", body=False)
    ret, resp = fm.download_file(uf.bucket, "w/existing.bin", str(tmp_path / "dl"))
    assert_sdk_error(ret, resp, 403, "download_file with a WRITE-only token")
    assert not (tmp_path / "dl").exists(), "download_file with a WRITE-only token wrote a local file"
    r = requests.get(fm.private_download_url(uf.bucket, "w/existing.bin"), timeout=30)
    assert_ufile_error(r, 403, "presigned GET with a WRITE-only token")
    r = t.raw("GET", "w/existing.bin")
    assert_ufile_error(r, 403, "raw GET with a WRITE-only token")
    r = t.raw("HEAD", "w/existing.bin")
    assert_ufile_error(r, 403, "raw HEAD with a WRITE-only token", body=False)
    ret, resp = fm.getfilelist(uf.bucket)
    assert_sdk_error(ret, resp, 403, "getfilelist with a WRITE-only token")
    ret, resp = fm.listobjects(uf.bucket, prefix="", marker="", maxkeys=10, delimiter="/")
    assert_sdk_error(ret, resp, 403, "listobjects with a WRITE-only token")
    ret, resp = fm.deletefile(uf.bucket, "w/existing.bin")
    assert_sdk_error(ret, resp, 403, "deletefile with a WRITE-only token")
    assert_exists(uf, "w/existing.bin", existing, "after a refused delete")

    # the same token as S3 keys
    s3 = t.s3()
    s3.put_object(Bucket=uf.bucket, Key="w/s3.bin", Body=b"s3 body")
    assert_exists(uf, "w/s3.bin", b"s3 body", "S3 PutObject with a WRITE token")
    mpu = s3.create_multipart_upload(Bucket=uf.bucket, Key="w/s3mp.bin")["UploadId"]
    etag = s3.upload_part(Bucket=uf.bucket, Key="w/s3mp.bin", UploadId=mpu, PartNumber=1, Body=b"part one")["ETag"]
    s3.complete_multipart_upload(
        Bucket=uf.bucket, Key="w/s3mp.bin", UploadId=mpu, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert_exists(uf, "w/s3mp.bin", b"part one", "S3 multipart with a WRITE token")
    with expect_s3_error(403):
        s3.get_object(Bucket=uf.bucket, Key="w/existing.bin")
    with expect_s3_error(403):
        s3.head_object(Bucket=uf.bucket, Key="w/existing.bin")
    with expect_s3_error(403):
        s3.list_objects_v2(Bucket=uf.bucket)
    with expect_s3_error(403):
        s3.delete_object(Bucket=uf.bucket, Key="w/existing.bin")
    assert_exists(uf, "w/existing.bin", existing, "after a refused S3 delete")


def test_read_only_token(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    data = os.urandom(2000)
    uf.put_bytes("r/a.bin", data)
    tok = create_token(uf, [READ], None, [uf.bucket])
    t = with_token(uf, tok)
    fm = t.fm()

    ret, resp = fm.head_file(uf.bucket, "r/a.bin")
    assert_sdk_ok(ret, resp, "head_file with a READ token")
    assert resp.etag == quoted(ufile_etag(data)) and resp.content_length == str(len(data)), (resp.etag, resp.content_length)
    ret, resp = fm.download_file(uf.bucket, "r/a.bin", str(tmp_path / "a"))
    assert_sdk_ok(ret, resp, "download_file with a READ token")
    assert (tmp_path / "a").read_bytes() == data
    ret, resp = fm.download_file(uf.bucket, "r/a.bin", str(tmp_path / "part"), content_range=(100, 199))
    assert_sdk_ok(ret, resp, "ranged download_file with a READ token", statuses=(206,))
    assert (tmp_path / "part").read_bytes() == data[100:200]
    r = requests.get(fm.private_download_url(uf.bucket, "r/a.bin"), timeout=30)
    assert r.status_code == 200 and r.content == data, f"presigned GET with a READ token: HTTP {r.status_code} {r.text[:200]}"
    r = raw_ok(t.raw("GET", "r/a.bin"), "raw GET with a READ token")
    assert r.content == data

    ret, resp = fm.putfile(uf.bucket, "r/new.bin", write(tmp_path / "new.bin", b"new"))
    assert_sdk_error(ret, resp, 403, "putfile with a READ-only token")
    assert_no_s3_object(uf, "r/new.bin", what="putfile with a READ-only token")
    ret, resp = fm.putfile(uf.bucket, "r/a.bin", write(tmp_path / "over.bin", b"overwrite"))
    assert_sdk_error(ret, resp, 403, "overwrite with a READ-only token")
    assert_exists(uf, "r/a.bin", data, "overwrite with a READ-only token")
    ret, resp = fm.copy(uf.bucket, "r/copy.bin", uf.bucket, "r/a.bin")
    assert_sdk_error(ret, resp, 403, "copy with a READ-only token")
    assert_no_s3_object(uf, "r/copy.bin", what="copy with a READ-only token")
    ret, resp = t.mp().uploadstream(uf.bucket, "r/mp.bin", io.BytesIO(b"z" * 10), retrycount=1, retryinterval=0)
    assert_sdk_error(ret, resp, 403, "multipart with a READ-only token")
    assert_no_s3_object(uf, "r/mp.bin", what="multipart with a READ-only token")
    ret, resp = fm.deletefile(uf.bucket, "r/a.bin")
    assert_sdk_error(ret, resp, 403, "deletefile with a READ-only token")
    ret, resp = fm.getfilelist(uf.bucket)
    assert_sdk_error(ret, resp, 403, "getfilelist with a READ-only token")
    assert_exists(uf, "r/a.bin", data, "after refused writes")

    s3 = t.s3()
    assert s3.get_object(Bucket=uf.bucket, Key="r/a.bin")["Body"].read() == data
    assert s3.head_object(Bucket=uf.bucket, Key="r/a.bin")["ContentLength"] == len(data)
    with expect_s3_error(403):
        s3.put_object(Bucket=uf.bucket, Key="r/s3.bin", Body=b"x")
    with expect_s3_error(403):
        s3.create_multipart_upload(Bucket=uf.bucket, Key="r/s3mp.bin")
    with expect_s3_error(403):
        s3.delete_object(Bucket=uf.bucket, Key="r/a.bin")
    with expect_s3_error(403):
        s3.list_objects_v2(Bucket=uf.bucket)
    assert_no_s3_object(uf, "r/s3.bin", what="S3 put with a READ-only token")
    assert_exists(uf, "r/a.bin", data, "after refused S3 writes")


def test_list_and_delete_token(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    for k in ("ld/a.bin", "ld/b.bin", "ld/sub/c.bin"):
        uf.put_bytes(k, os.urandom(50))
    tok = create_token(uf, [LIST, DELETE], None, [uf.bucket])
    t = with_token(uf, tok)
    fm = t.fm()

    ret, resp = fm.getfilelist(uf.bucket, prefix="ld/")
    assert_sdk_ok(ret, resp, "getfilelist with a LIST token")
    names = sorted(i.get("FileName") for i in ret.get("DataSet", []))
    assert names == ["ld/a.bin", "ld/b.bin", "ld/sub/c.bin"], ret
    ret, resp = fm.listobjects(uf.bucket, prefix="ld/", marker="", maxkeys=100, delimiter="/")
    assert_sdk_ok(ret, resp, "listobjects with a LIST token")
    assert sorted(c.get("Key") for c in ret.get("Contents", [])) == ["ld/a.bin", "ld/b.bin"], ret
    assert [p.get("Prefix") for p in ret.get("CommonPrefixes", [])] == ["ld/sub/"], ret

    ret, resp = fm.deletefile(uf.bucket, "ld/a.bin")
    assert_sdk_ok(ret, resp, "deletefile with a DELETE token", statuses=(200, 204))
    assert_no_s3_object(uf, "ld/a.bin", what="deletefile with a DELETE token")
    ret, resp = fm.download_file(uf.bucket, "ld/b.bin", str(tmp_path / "b"))
    assert_sdk_error(ret, resp, 403, "download_file with a LIST+DELETE token")
    ret, resp = fm.putfile(uf.bucket, "ld/new.bin", write(tmp_path / "n", b"n"))
    assert_sdk_error(ret, resp, 403, "putfile with a LIST+DELETE token")
    assert_no_s3_object(uf, "ld/new.bin", what="putfile with a LIST+DELETE token")

    s3 = t.s3()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=uf.bucket, Prefix="ld/").get("Contents", []))
    assert keys == ["ld/b.bin", "ld/sub/c.bin"], keys
    s3.delete_object(Bucket=uf.bucket, Key="ld/b.bin")
    assert_no_s3_object(uf, "ld/b.bin", what="S3 delete with a DELETE token")
    with expect_s3_error(403):
        s3.get_object(Bucket=uf.bucket, Key="ld/sub/c.bin")
    with expect_s3_error(403):
        s3.put_object(Bucket=uf.bucket, Key="ld/s3.bin", Body=b"x")


def test_none_token_refuses_everything(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    uf.put_bytes("n/a.bin", b"data")
    tok = create_token(uf, [NONE], None, [uf.bucket])
    t = with_token(uf, tok)
    assert_ufile_error(t.raw("PUT", "n/b.bin", data=b"x", content_type=OCT), 403, "PUT with a TOKEN_ALLOW_NONE token")
    assert_ufile_error(t.raw("GET", "n/a.bin"), 403, "GET with a TOKEN_ALLOW_NONE token")
    assert_ufile_error(t.raw("HEAD", "n/a.bin"), 403, "HEAD with a TOKEN_ALLOW_NONE token", body=False)
    assert_ufile_error(t.raw("DELETE", "n/a.bin"), 403, "DELETE with a TOKEN_ALLOW_NONE token")
    assert_ufile_error(t.raw("GET", "", query="list"), 403, "?list with a TOKEN_ALLOW_NONE token")
    s3 = t.s3()
    with expect_s3_error(403):
        s3.get_object(Bucket=uf.bucket, Key="n/a.bin")
    with expect_s3_error(403):
        s3.put_object(Bucket=uf.bucket, Key="n/s3.bin", Body=b"x")
    with expect_s3_error(403):
        s3.list_objects_v2(Bucket=uf.bucket)
    assert_no_s3_object(uf, "n/b.bin", what="TOKEN_ALLOW_NONE")
    assert_no_s3_object(uf, "n/s3.bin", what="TOKEN_ALLOW_NONE")
    assert_exists(uf, "n/a.bin", b"data", "TOKEN_ALLOW_NONE")


def test_token_prefix_scope(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    outside = os.urandom(120)
    uf.put_bytes("out/existing.bin", outside)
    tok = create_token(uf, ALL_OPS, ["in/"], [uf.bucket])
    t = with_token(uf, tok)
    fm = t.fm()

    data = os.urandom(400)
    ret, resp = fm.putfile(uf.bucket, "in/a.bin", write(tmp_path / "a.bin", data))
    assert_sdk_ok(ret, resp, "putfile inside AllowedPrefixes")
    ret, resp = fm.download_file(uf.bucket, "in/a.bin", str(tmp_path / "got"))
    assert_sdk_ok(ret, resp, "download_file inside AllowedPrefixes")
    assert (tmp_path / "got").read_bytes() == data
    ret, resp = fm.head_file(uf.bucket, "in/a.bin")
    assert_sdk_ok(ret, resp, "head_file inside AllowedPrefixes")

    ret, resp = fm.putfile(uf.bucket, "out/b.bin", write(tmp_path / "b.bin", b"bbb"))
    assert_sdk_error(ret, resp, 403, "putfile outside AllowedPrefixes")
    assert_no_s3_object(uf, "out/b.bin", what="putfile outside AllowedPrefixes")
    r = t.raw("PUT", "inx.bin", data=b"x", content_type=OCT)
    assert_ufile_error(r, 403, "PUT of a key that only shares the letters 'in' with the prefix 'in/'")
    r = t.raw("PUT", "in", data=b"x", content_type=OCT)
    assert_ufile_error(r, 403, "PUT of the key 'in' (prefix 'in/')")
    ret, resp = fm.download_file(uf.bucket, "out/existing.bin", str(tmp_path / "out"))
    assert_sdk_error(ret, resp, 403, "download_file outside AllowedPrefixes")
    r = requests.get(fm.private_download_url(uf.bucket, "out/existing.bin"), timeout=30)
    assert_ufile_error(r, 403, "presigned GET outside AllowedPrefixes")
    ret, resp = fm.head_file(uf.bucket, "out/existing.bin")
    assert_sdk_error(ret, resp, 403, "head_file outside AllowedPrefixes", body=False)
    ret, resp = fm.deletefile(uf.bucket, "out/existing.bin")
    assert_sdk_error(ret, resp, 403, "deletefile outside AllowedPrefixes")
    ret, resp = fm.copy(uf.bucket, "in/stolen.bin", uf.bucket, "out/existing.bin")
    assert_sdk_error(ret, resp, 403, "copy from a source outside AllowedPrefixes")
    assert_no_s3_object(uf, "in/stolen.bin", what="copy from outside AllowedPrefixes")
    ret, resp = fm.copy(uf.bucket, "out/copied.bin", uf.bucket, "in/a.bin")
    assert_sdk_error(ret, resp, 403, "copy to a destination outside AllowedPrefixes")
    assert_no_s3_object(uf, "out/copied.bin", what="copy to outside AllowedPrefixes")
    assert_exists(uf, "out/existing.bin", outside, "after refused operations outside the prefix")

    # listing inside the prefix works; listing outside it reveals nothing
    ret, resp = fm.listobjects(uf.bucket, prefix="in/", marker="", maxkeys=100, delimiter="/")
    assert_sdk_ok(ret, resp, "listobjects inside AllowedPrefixes")
    assert [c.get("Key") for c in ret.get("Contents", [])] == ["in/a.bin"], ret
    ret, resp = fm.listobjects(uf.bucket, prefix="out/", marker="", maxkeys=100, delimiter="/")
    if ret is not None:
        leaked = [c.get("Key") for c in ret.get("Contents", [])]
        assert not leaked, f"listobjects prefix=out/ with a token limited to in/ listed {leaked}"
    else:
        assert resp.status_code == 403, f"listobjects outside AllowedPrefixes: HTTP {resp.status_code}"

    s3 = t.s3()
    s3.put_object(Bucket=uf.bucket, Key="in/s3.bin", Body=b"s3")
    assert s3.get_object(Bucket=uf.bucket, Key="in/s3.bin")["Body"].read() == b"s3"
    with expect_s3_error(403):
        s3.put_object(Bucket=uf.bucket, Key="out/s3.bin", Body=b"s3")
    with expect_s3_error(403):
        s3.get_object(Bucket=uf.bucket, Key="out/existing.bin")
    with expect_s3_error(403):
        s3.head_object(Bucket=uf.bucket, Key="out/existing.bin")
    with expect_s3_error(403):
        s3.delete_object(Bucket=uf.bucket, Key="out/existing.bin")
    with expect_s3_error(403):
        s3.copy_object(Bucket=uf.bucket, Key="in/c2.bin", CopySource={"Bucket": uf.bucket, "Key": "out/existing.bin"})
    assert_no_s3_object(uf, "out/s3.bin", what="S3 put outside AllowedPrefixes")
    assert_no_s3_object(uf, "in/c2.bin", what="S3 copy from outside AllowedPrefixes")
    ret, resp = fm.deletefile(uf.bucket, "in/a.bin")
    assert_sdk_ok(ret, resp, "deletefile inside AllowedPrefixes", statuses=(200, 204))
    assert_no_s3_object(uf, "in/a.bin", what="deletefile inside AllowedPrefixes")
    assert_exists(uf, "out/existing.bin", outside, "after refused S3 operations outside the prefix")


def test_token_bucket_scope(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    other_bucket = make_ufile(server, tenant=uf.tenant)  # same tenant, second bucket
    stranger = make_ufile(server)  # another tenant
    other_bucket.put_bytes("x.bin", b"in the other bucket")
    stranger.put_bytes("x.bin", b"strangers' data")
    tok = create_token(uf, ALL_OPS, None, [uf.bucket])
    t = with_token(uf, tok)
    fm = t.fm()

    ret, resp = fm.putfile(uf.bucket, "ok.bin", write(tmp_path / "ok", b"allowed bucket"))
    assert_sdk_ok(ret, resp, "putfile into the allowed bucket")
    for b, what in ((other_bucket.bucket, "the tenant's bucket outside AllowedBuckets"), (stranger.bucket, "another tenant's bucket")):
        ret, resp = fm.putfile(b, "intrude.bin", write(tmp_path / "i", b"intrude"))
        assert_sdk_error(ret, resp, 403, f"putfile into {what}")
        ret, resp = fm.download_file(b, "x.bin", str(tmp_path / "x"))
        assert_sdk_error(ret, resp, 403, f"download_file from {what}")
        ret, resp = fm.getfilelist(b)
        assert_sdk_error(ret, resp, 403, f"getfilelist of {what}")
        ret, resp = fm.deletefile(b, "x.bin")
        assert_sdk_error(ret, resp, 403, f"deletefile in {what}")
        assert_ufile_error(t.raw("HEAD", "x.bin", bucket=b), 403, f"HEAD in {what}", body=False)
        s3 = t.s3()
        with expect_s3_error(403):
            s3.put_object(Bucket=b, Key="intrude-s3.bin", Body=b"x")
        with expect_s3_error(403):
            s3.get_object(Bucket=b, Key="x.bin")
        with expect_s3_error(403):
            s3.list_objects_v2(Bucket=b)
        with expect_s3_error(403):
            s3.copy_object(Bucket=uf.bucket, Key="copied.bin", CopySource={"Bucket": b, "Key": "x.bin"})
    assert_no_s3_object(uf, "copied.bin", what="copy from a bucket outside AllowedBuckets")
    assert_no_s3_object(other_bucket, "intrude.bin", what="putfile outside AllowedBuckets")
    assert_no_s3_object(other_bucket, "intrude-s3.bin", what="S3 put outside AllowedBuckets")
    assert_exists(other_bucket, "x.bin", b"in the other bucket", "after refused deletes")
    assert_no_s3_object(stranger, "intrude.bin", what="putfile into another tenant's bucket")
    assert_exists(stranger, "x.bin", b"strangers' data", "after refused deletes")


def test_token_cannot_manage_buckets(server, make_ufile):
    uf = make_ufile(server)
    spare = make_ufile(server, tenant=uf.tenant)  # empty, in AllowedBuckets
    uf.put_bytes("k.bin", b"private")
    tok = create_token(uf, ALL_OPS, None, [uf.bucket, spare.bucket])
    s3 = with_token(uf, tok).s3()
    owner = uf.s3()

    new = unique_name("tokb")
    with expect_s3_error(403):
        s3.create_bucket(Bucket=new)
    assert s3_status(lambda: owner.head_bucket(Bucket=new)) == 404, "S3 CreateBucket with a token created the bucket"
    with expect_s3_error(403):
        s3.delete_bucket(Bucket=spare.bucket)
    assert s3_status(lambda: owner.head_bucket(Bucket=spare.bucket)) == 200, "S3 DeleteBucket with a token deleted it"

    keys = tok.keys
    calls = [
        ("CreateBucket", {"BucketName": unique_name("tokm"), "Type": "private"}),
        ("UpdateBucket", {"BucketName": uf.bucket, "Type": "public"}),
        ("DeleteBucket", {"BucketName": spare.bucket}),
        ("DescribeBucket", {"BucketName": uf.bucket}),
        ("CreateUFileToken", grant_params(ALL_OPS, None, [uf.bucket], int(time.time()) + 600, "child")),
        ("DescribeUFileToken", {}),
        ("UpdateUFileToken", {"TokenId": tok.id, "AllowedBuckets.0": uf.bucket, "AllowedBuckets.1": spare.bucket}),
        ("DeleteUFileToken", {"TokenId": tok.id}),
        ("GetUFileQuota", {"QuotaType": "storage-volume"}),
        ("GetUFileQuotaInfo", {"QuotaType.0": "storage-volume"}),
        ("GetUFileReport", {"StartTime": int(time.time()) - 86400, "EndTime": int(time.time())}),
        ("GetUFileQuotaPrice", {"StorageVolume": 200, "DownloadTraffic": 5, "RequestCount": 2}),
    ]
    for action, params in calls:
        r = mgmt(uf, action, params, keys=keys)
        assert_mgmt_error(r, 403, f"{action} signed with a token")
    assert s3_status(lambda: owner.head_bucket(Bucket=calls[0][1]["BucketName"])) == 404, "token-signed CreateBucket created it"
    assert s3_status(lambda: owner.head_bucket(Bucket=spare.bucket)) == 200, "token-signed DeleteBucket deleted it"
    g = uf.raw("GET", "k.bin", sign=False)
    assert g.status_code in (401, 403), f"the bucket became public after a token-signed UpdateBucket: HTTP {g.status_code}"
    # the token still works for objects (DeleteUFileToken signed by itself was refused)
    raw_ok(with_token(uf, tok).raw("GET", "k.bin"), "GET with the token after its refused management calls")


# ==========================================================================
# tokens: update, expiry, deletion, other tenants


def test_update_token_changes_grant_and_keeps_unlisted_values(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    b2 = make_ufile(server, tenant=uf.tenant)
    uf.put_bytes("a/x.bin", b"ax")
    uf.put_bytes("b/x.bin", b"bx")
    b2.put_bytes("a/x.bin", b"b2ax")
    exp = int(time.time()) + 3600
    tok = create_token(uf, [READ, WRITE], ["a/"], [uf.bucket], exp, "first")
    t = with_token(uf, tok)
    raw_ok(t.raw("PUT", "a/new.bin", data=b"n", content_type=OCT), "PUT before the update")

    # only AllowedOps given: prefixes, buckets, name and expiry stay
    mgmt_ok(uf, "UpdateUFileToken", {"TokenId": tok.id, "AllowedOps.0": READ})
    assert_grant(describe_one(uf, tok.id), [READ], ["a/"], [uf.bucket], exp, "first", "after updating AllowedOps")
    assert_ufile_error(t.raw("PUT", "a/new2.bin", data=b"n", content_type=OCT), 403, "PUT after WRITE was removed")
    assert_no_s3_object(uf, "a/new2.bin", what="PUT after WRITE was removed")
    with expect_s3_error(403):
        t.s3().put_object(Bucket=uf.bucket, Key="a/new3.bin", Body=b"n")
    assert raw_ok(t.raw("GET", "a/x.bin"), "GET inside the kept prefix").content == b"ax"
    assert_ufile_error(t.raw("GET", "b/x.bin"), 403, "GET outside the kept prefix")
    assert_ufile_error(t.raw("GET", "a/x.bin", bucket=b2.bucket), 403, "GET in a bucket outside the kept AllowedBuckets")

    # only AllowedPrefixes and TokenName given: ops and buckets stay
    mgmt_ok(uf, "UpdateUFileToken", {"TokenId": tok.id, "TokenName": "second", "AllowedPrefixes.0": "b/"})
    assert_grant(describe_one(uf, tok.id), [READ], ["b/"], [uf.bucket], exp, "second", "after updating AllowedPrefixes")
    assert_ufile_error(t.raw("GET", "a/x.bin"), 403, "GET in the old prefix")
    assert raw_ok(t.raw("GET", "b/x.bin"), "GET in the new prefix").content == b"bx"
    assert t.s3().get_object(Bucket=uf.bucket, Key="b/x.bin")["Body"].read() == b"bx"
    with expect_s3_error(403):
        t.s3().get_object(Bucket=uf.bucket, Key="a/x.bin")

    # AllowedBuckets (and the prefix back to a/); ops and name stay
    mgmt_ok(uf, "UpdateUFileToken", {"TokenId": tok.id, "AllowedBuckets.0": b2.bucket, "AllowedPrefixes.0": "a/"})
    assert_grant(describe_one(uf, tok.id), [READ], ["a/"], [b2.bucket], exp, "second", "after updating AllowedBuckets")
    assert raw_ok(t.raw("GET", "a/x.bin", bucket=b2.bucket), "GET in the newly allowed bucket").content == b"b2ax"
    assert_ufile_error(t.raw("GET", "a/x.bin"), 403, "GET in the no longer allowed bucket")

    # the ops list back to READ+WRITE+DELETE: deletes now pass
    mgmt_ok(uf, "UpdateUFileToken", {"TokenId": tok.id, "AllowedOps.0": READ, "AllowedOps.1": WRITE, "AllowedOps.2": DELETE})
    ret, resp = t.fm().deletefile(b2.bucket, "a/x.bin")
    assert_sdk_ok(ret, resp, "deletefile after DELETE was granted", statuses=(200, 204))
    assert_no_s3_object(b2, "a/x.bin", what="deletefile after DELETE was granted")


def test_update_token_expire_time_in_the_past_disables_it(server, make_ufile):
    uf = make_ufile(server)
    uf.put_bytes("e/x.bin", b"x")
    tok = create_token(uf, [READ], None, [uf.bucket])
    t = with_token(uf, tok)
    raw_ok(t.raw("GET", "e/x.bin"), "GET before the update")
    past = int(time.time()) - 60
    mgmt_ok(uf, "UpdateUFileToken", {"TokenId": tok.id, "ExpireTime": past})
    assert describe_one(uf, tok.id).get("ExpireTime") == past
    assert_ufile_error(t.raw("GET", "e/x.bin"), (401, 403), "GET with a token whose ExpireTime was set to the past")
    assert_s3_status(lambda: t.s3().get_object(Bucket=uf.bucket, Key="e/x.bin"), (401, 403), "S3 GET with an expired token")


def test_token_expires(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    uf.put_bytes("t/x.bin", b"expiring")
    expire = int(time.time()) + 4
    tok = create_token(uf, [READ, WRITE], None, [uf.bucket], expire)
    t = with_token(uf, tok)
    fm = t.fm()
    url = fm.private_download_url(uf.bucket, "t/x.bin", expires=600)
    raw_ok(t.raw("GET", "t/x.bin"), "GET before ExpireTime")
    assert requests.get(url, timeout=30).status_code == 200, "presigned GET before ExpireTime"
    assert t.s3().get_object(Bucket=uf.bucket, Key="t/x.bin")["Body"].read() == b"expiring"

    wait_until(expire + 2)
    assert_ufile_error(t.raw("GET", "t/x.bin"), (401, 403), "GET after ExpireTime")
    assert_ufile_error(requests.get(url, timeout=30), (401, 403), "presigned GET (URL valid 600 s) after the token's ExpireTime")
    ret, resp = fm.putfile(uf.bucket, "t/late.bin", write(tmp_path / "late", b"late"))
    assert_sdk_error(ret, resp, (401, 403), "putfile after ExpireTime")
    assert_s3_status(lambda: t.s3().get_object(Bucket=uf.bucket, Key="t/x.bin"), (401, 403), "S3 GET after ExpireTime")
    assert_s3_status(lambda: t.s3().put_object(Bucket=uf.bucket, Key="t/late-s3.bin", Body=b"x"), (401, 403),
                     "S3 PUT after ExpireTime")
    assert_no_s3_object(uf, "t/late.bin", what="putfile after ExpireTime")
    assert_no_s3_object(uf, "t/late-s3.bin", what="S3 PUT after ExpireTime")


def test_delete_token(server, make_ufile, tmp_path):
    uf = make_ufile(server)
    uf.put_bytes("d/x.bin", b"x")
    tok = create_token(uf, ALL_OPS, None, [uf.bucket])
    keep = create_token(uf, [READ], None, [uf.bucket])
    t = with_token(uf, tok)
    url = t.fm().private_download_url(uf.bucket, "d/x.bin", expires=600)
    raw_ok(t.raw("GET", "d/x.bin"), "GET before DeleteUFileToken")

    mgmt_ok(uf, "DeleteUFileToken", {"TokenId": tok.id})
    assert_ufile_error(t.raw("GET", "d/x.bin"), (401, 403), "GET with a deleted token")
    assert_ufile_error(t.raw("PUT", "d/y.bin", data=b"y", content_type=OCT), (401, 403), "PUT with a deleted token")
    assert_ufile_error(requests.get(url, timeout=30), (401, 403), "presigned GET signed by a deleted token")
    assert_s3_status(lambda: t.s3().get_object(Bucket=uf.bucket, Key="d/x.bin"), (401, 403), "S3 GET with a deleted token")
    assert_no_s3_object(uf, "d/y.bin", what="PUT with a deleted token")

    assert_mgmt_error(mgmt(uf, "DescribeUFileToken", {"TokenId": tok.id}), CLIENT_ERRORS, "describe a deleted token", TOKEN_NOT_FOUND)
    ids = {i.get("TokenId") for i in describe(uf)}
    assert tok.id not in ids and keep.id in ids, f"DescribeUFileToken after a delete: {ids}"
    assert_mgmt_error(mgmt(uf, "DeleteUFileToken", {"TokenId": tok.id}), CLIENT_ERRORS, "delete a deleted token", TOKEN_NOT_FOUND)
    assert_mgmt_error(mgmt(uf, "UpdateUFileToken", {"TokenId": tok.id, "AllowedOps.0": READ}), CLIENT_ERRORS,
                      "update a deleted token", TOKEN_NOT_FOUND)
    # the other token is untouched
    raw_ok(with_token(uf, keep).raw("GET", "d/x.bin"), "GET with the token that was not deleted")


def test_other_tenant_cannot_touch_a_token(server, make_ufile):
    a = make_ufile(server)
    b = make_ufile(server)
    a.put_bytes("o/x.bin", b"x")
    exp = int(time.time()) + 3600
    tok = create_token(a, [READ], ["o/"], [a.bucket], exp, "a-token")

    assert_mgmt_error(mgmt(b, "DescribeUFileToken", {"TokenId": tok.id}), CLIENT_ERRORS, "B describes A's token", TOKEN_NOT_FOUND)
    assert_mgmt_error(
        mgmt(b, "UpdateUFileToken", {"TokenId": tok.id, "AllowedOps.0": WRITE, "AllowedPrefixes.0": "x/", "ExpireTime": 1}),
        CLIENT_ERRORS, "B updates A's token", TOKEN_NOT_FOUND,
    )
    assert_mgmt_error(mgmt(b, "DeleteUFileToken", {"TokenId": tok.id}), CLIENT_ERRORS, "B deletes A's token", TOKEN_NOT_FOUND)

    assert_grant(describe_one(a, tok.id), [READ], ["o/"], [a.bucket], exp, "a-token", "A's token after B's attempts")
    t = with_token(a, tok)
    raw_ok(t.raw("GET", "o/x.bin"), "A's token after B's attempts")
    assert_ufile_error(t.raw("PUT", "o/y.bin", data=b"y", content_type=OCT), 403, "A's READ token still cannot write")


# ==========================================================================
# quotas: the admin endpoint


def test_admin_quota_endpoint_requires_root(server, make_ufile):
    uf = make_ufile(server)
    for auth, what in ((uf.tenant.auth, "the tenant's own key pair"), (None, "no credentials")):
        r = requests.post(
            server.endpoint + QUOTAS_PATH, params={"tenant": uf.tenant.name, "storage_bytes": "10"}, auth=auth, timeout=30
        )
        assert r.status_code in (401, 403), f"POST {QUOTAS_PATH} with {what}: HTTP {r.status_code} {r.text[:300]}"
    # nothing was applied
    uf.put_bytes("big.bin", os.urandom(600))
    assert is_unlimited(left_quota(uf, "storage-volume")), "a refused quota call limited the tenant"
    set_quota(server, uf.tenant.name, storage_bytes=5000, download_bytes=7000, requests=90)
    set_quota(server, uf.tenant.name)  # all omitted: unlimited again
    for q in QUOTA_TYPES:
        assert is_unlimited(left_quota(uf, q)), f"{q}: not unlimited after a quota call without limits"


# ==========================================================================
# quotas: storage


def test_storage_quota_refuses_uploads_beyond_the_cap(server, make_ufile, tmp_path):
    a = make_ufile(server)
    a2 = make_ufile(server, tenant=a.tenant)
    set_quota(server, a.tenant.name, storage_bytes=1000)
    s3 = a.s3()
    fm = a.fm()

    one = os.urandom(600)
    raw_ok(a.raw("PUT", "q/one.bin", data=one, content_type=OCT), "600 B PUT under a 1000 B storage quota")
    with quota_s3():
        s3.put_object(Bucket=a.bucket, Key="q/two-s3.bin", Body=os.urandom(600))
    assert_quota_ufile(a.raw("PUT", "q/two-raw.bin", data=os.urandom(600), content_type=OCT), "raw PUT beyond the storage quota")
    ret, resp = fm.putfile(a.bucket, "q/two-sdk.bin", write(tmp_path / "two", os.urandom(600)))
    assert_quota_sdk(ret, resp, "putfile beyond the storage quota")
    ret, resp = fm.postfile(a.bucket, "q/two-post.bin", write(tmp_path / "post", os.urandom(600)))
    assert_quota_sdk(ret, resp, "postfile beyond the storage quota")
    # the quota covers all the tenant's buckets
    assert_quota_ufile(a2.raw("PUT", "q/other.bin", data=os.urandom(600), content_type=OCT), "PUT into the tenant's other bucket")
    with quota_s3():
        s3.put_object(Bucket=a2.bucket, Key="q/other-s3.bin", Body=os.urandom(600))
    for k in ("q/two-s3.bin", "q/two-raw.bin", "q/two-sdk.bin", "q/two-post.bin"):
        assert_no_s3_object(a, k, what="refused upload")
    for k in ("q/other.bin", "q/other-s3.bin"):
        assert_no_s3_object(a2, k, what="refused upload")

    # up to the cap exactly is fine, a zero-byte object too; one byte more is not
    fill = os.urandom(400)
    s3.put_object(Bucket=a2.bucket, Key="q/fill.bin", Body=fill)
    s3.put_object(Bucket=a.bucket, Key="q/empty.bin", Body=b"")
    with quota_s3():
        s3.put_object(Bucket=a.bucket, Key="q/byte.bin", Body=b"1")
    assert_quota_ufile(a.raw("PUT", "q/byte-raw.bin", data=b"1", content_type=OCT), "1 B PUT at the cap")
    assert_no_s3_object(a, "q/byte.bin", what="1 B over the cap")
    assert_no_s3_object(a, "q/byte-raw.bin", what="1 B over the cap")

    # another tenant is not affected
    b = make_ufile(server)
    b.put_bytes("free.bin", os.urandom(5000))

    # deleting frees room
    ret, resp = fm.deletefile(a.bucket, "q/one.bin")
    assert_sdk_ok(ret, resp, "deletefile under a storage quota", statuses=(200, 204))
    again = os.urandom(600)
    s3.put_object(Bucket=a.bucket, Key="q/again.bin", Body=again)
    assert_exists(a, "q/again.bin", again, "PUT after a delete freed room")
    assert_quota_ufile(a.raw("PUT", "q/byte-raw.bin", data=b"1", content_type=OCT), "1 B PUT at the cap again")
    assert_exists(a2, "q/fill.bin", fill, "objects within the quota")


def test_storage_quota_counts_existing_objects_and_overwrites(server, make_ufile):
    a = make_ufile(server)
    a.put_bytes("o/x.bin", os.urandom(600))  # stored before the quota is set
    set_quota(server, a.tenant.name, storage_bytes=1000)
    s3 = a.s3()
    with quota_s3():
        s3.put_object(Bucket=a.bucket, Key="o/y.bin", Body=os.urandom(600))
    assert_no_s3_object(a, "o/y.bin", what="PUT beyond the cap counting objects stored before the quota")
    # replacing the 600 B object by 900 B leaves 900 B stored: within the cap
    nine = os.urandom(900)
    raw_ok(a.raw("PUT", "o/x.bin", data=nine, content_type=OCT), "overwrite 600 B -> 900 B under a 1000 B quota")
    assert_exists(a, "o/x.bin", nine, "overwrite within the cap")
    with quota_s3():
        s3.put_object(Bucket=a.bucket, Key="o/x.bin", Body=os.urandom(1001))
    assert_quota_ufile(a.raw("PUT", "o/x.bin", data=os.urandom(1001), content_type=OCT), "overwrite with 1001 B")
    assert_exists(a, "o/x.bin", nine, "a refused overwrite keeps the old object")
    s3.put_object(Bucket=a.bucket, Key="o/y.bin", Body=os.urandom(100))
    with quota_s3():
        s3.put_object(Bucket=a.bucket, Key="o/z.bin", Body=b"z")


def _s3_multipart(s3, bucket: str, key: str, parts: list[bytes]) -> ClientError | None:
    upload_id = None
    try:
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        done = []
        for n, p in enumerate(parts, 1):
            done.append({"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=p)["ETag"]})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done})
        return None
    except ClientError as e:
        if upload_id is not None:
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except ClientError:
                pass
        return e


def test_storage_quota_multipart(server, make_ufile):
    # tenant A: UFile multipart within the quota, then an S3 multipart beyond it
    a = make_ufile(server)
    set_quota(server, a.tenant.name, storage_bytes=8 * MiB)
    d = os.urandom(6 * MiB)
    ret, resp = a.mp().uploadstream(a.bucket, "mp/ufile.bin", io.BytesIO(d), retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, "UFile multipart of 6 MiB under an 8 MiB quota")
    assert_exists(a, "mp/ufile.bin", d, "UFile multipart within the quota")
    err = _s3_multipart(a.s3(), a.bucket, "mp/s3.bin", [os.urandom(5 * MiB), os.urandom(1 * MiB)])
    assert err is not None, "S3 multipart of 6 MiB more under an 8 MiB quota (6 MiB stored) succeeded"
    assert client_error(err) == (403, "QuotaExceeded"), f"S3 multipart beyond the quota: {client_error(err)} {err.response.get('Error')}"
    assert_no_s3_object(a, "mp/s3.bin", what="S3 multipart beyond the quota")

    # tenant B: S3 multipart within the quota, then a UFile multipart beyond it
    b = make_ufile(server)
    set_quota(server, b.tenant.name, storage_bytes=8 * MiB)
    err = _s3_multipart(b.s3(), b.bucket, "mp/s3.bin", [os.urandom(5 * MiB), os.urandom(1 * MiB)])
    assert err is None, f"S3 multipart of 6 MiB under an 8 MiB quota: {client_error(err)} {err.response.get('Error')}"
    ret, resp = b.mp().uploadstream(b.bucket, "mp/ufile.bin", io.BytesIO(os.urandom(6 * MiB)), retrycount=1, retryinterval=0)
    assert_quota_sdk(ret, resp, "UFile multipart of 6 MiB more under an 8 MiB quota (6 MiB stored)")
    assert_no_s3_object(b, "mp/ufile.bin", what="UFile multipart beyond the quota")


def test_storage_quota_concurrent_uploads_never_exceed(server, make_ufile):
    a = make_ufile(server)
    set_quota(server, a.tenant.name, storage_bytes=1000)
    blobs = {f"c/{i}.bin": os.urandom(300) for i in range(10)}
    s3 = a.s3()  # one client shared by the threads (creating clients is not thread-safe)

    def put(item):
        k, d = item
        if int(k.split("/")[1].split(".")[0]) % 2:
            return a.raw("PUT", k, data=d, content_type=OCT).status_code
        return s3_status(lambda: s3.put_object(Bucket=a.bucket, Key=k, Body=d))

    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        statuses = list(ex.map(put, blobs.items()))
    assert set(statuses) <= {200, 403}, f"concurrent uploads under a storage quota: statuses {statuses}"
    ok = statuses.count(200)
    assert 1 <= ok <= 3, f"{ok} concurrent 300 B uploads succeeded under a 1000 B quota: {statuses}"
    stored = sum(len(a.s3_bytes(k)) for k, st in zip(blobs, statuses) if st == 200)
    assert stored == 300 * ok
    # the room left is used up sequentially: exactly three fit in total
    extra = 0
    for i in range(4):
        r = a.raw("PUT", f"c/seq{i}.bin", data=os.urandom(300), content_type=OCT)
        if r.status_code != 200:
            assert_quota_ufile(r, "sequential upload once the quota is full")
            break
        extra += 1
    assert ok + extra == 3, f"{ok} concurrent + {extra} sequential 300 B uploads fit a 1000 B quota, expected 3 in total"


# ==========================================================================
# quotas: download traffic


def test_download_quota_refuses_gets_beyond_the_allowance(server, make_ufile, tmp_path):
    a = make_ufile(server)
    data = os.urandom(600)
    a.put_bytes("d/x.bin", data)
    set_quota(server, a.tenant.name, download_bytes=1000)
    fm = a.fm()
    s3 = a.s3()

    ret, resp = fm.download_file(a.bucket, "d/x.bin", str(tmp_path / "one"))
    assert_sdk_ok(ret, resp, "download_file of 600 B under a 1000 B download quota")
    assert (tmp_path / "one").read_bytes() == data
    with quota_s3():
        s3.get_object(Bucket=a.bucket, Key="d/x.bin")
    assert_quota_ufile(a.raw("GET", "d/x.bin"), "raw GET beyond the download allowance")
    ret, resp = fm.download_file(a.bucket, "d/x.bin", str(tmp_path / "two"))
    assert_quota_sdk(ret, resp, "download_file beyond the download allowance")
    assert not (tmp_path / "two").exists(), "a refused download_file wrote a local file"
    assert_quota_ufile(requests.get(fm.private_download_url(a.bucket, "d/x.bin"), timeout=30), "presigned GET beyond the allowance")
    # HEAD sends no body
    h = raw_ok(a.raw("HEAD", "d/x.bin"), "HEAD under an exhausted-for-600-B download quota")
    assert h.headers.get("Content-Length") == "600"
    assert s3.head_object(Bucket=a.bucket, Key="d/x.bin")["ContentLength"] == 600
    # ranges that fit the 400 B left pass, down to exactly 0
    r = raw_ok(a.raw("GET", "d/x.bin", headers={"Range": "bytes=0-299"}), "300 B range with 400 B left", statuses=(206,))
    assert r.content == data[:300]
    assert s3.get_object(Bucket=a.bucket, Key="d/x.bin", Range="bytes=300-399")["Body"].read() == data[300:400]
    assert_quota_ufile(a.raw("GET", "d/x.bin", headers={"Range": "bytes=0-0"}), "1 B range with nothing left")
    with quota_s3():
        s3.get_object(Bucket=a.bucket, Key="d/x.bin", Range="bytes=0-0")

    # another tenant is not affected
    b = make_ufile(server)
    b.put_bytes("y.bin", os.urandom(3000))
    assert len(b.s3_bytes("y.bin")) == 3000

    # a new quota is a new allowance
    set_quota(server, a.tenant.name, download_bytes=1000)
    assert s3.get_object(Bucket=a.bucket, Key="d/x.bin")["Body"].read() == data
    assert_quota_ufile(a.raw("GET", "d/x.bin"), "second GET of the new allowance")
    # no limit: unlimited
    set_quota(server, a.tenant.name)
    for _ in range(3):
        assert raw_ok(a.raw("GET", "d/x.bin"), "GET without a download quota").content == data


def test_download_quota_concurrent_gets_never_exceed(server, make_ufile):
    a = make_ufile(server)
    data = os.urandom(300)
    a.put_bytes("c/x.bin", data)
    set_quota(server, a.tenant.name, download_bytes=1000)
    s3 = a.s3()

    def get(i):
        if i % 2:
            r = a.raw("GET", "c/x.bin")
            return r.status_code, r.content if r.status_code == 200 else None
        try:
            return 200, s3.get_object(Bucket=a.bucket, Key="c/x.bin")["Body"].read()
        except ClientError as e:
            return client_error(e)[0], None

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(get, range(8)))
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 403}, f"concurrent GETs under a download quota: {statuses}"
    ok = statuses.count(200)
    assert 1 <= ok <= 3, f"{ok} concurrent 300 B GETs succeeded under a 1000 B download quota: {statuses}"
    assert all(body == data for s, body in results if s == 200), "a GET under a download quota returned a partial body"
    extra = 0
    for _ in range(4):
        r = a.raw("GET", "c/x.bin")
        if r.status_code != 200:
            assert_quota_ufile(r, "sequential GET once the download allowance is used up")
            break
        assert r.content == data
        extra += 1
    assert ok + extra == 3, f"{ok} concurrent + {extra} sequential 300 B GETs fit a 1000 B allowance, expected 3 in total"


# ==========================================================================
# quotas: request count


def test_request_quota_counts_ufile_and_s3_operations(server, make_ufile, tmp_path):
    a = make_ufile(server)
    a2 = make_ufile(server, tenant=a.tenant)
    set_quota(server, a.tenant.name, requests=10)
    fm = a.fm()
    s3 = a.s3()
    ops = [
        ("UFile PUT", lambda: raw_ok(a.raw("PUT", "r/a.bin", data=b"aaaa", content_type=OCT), "UFile PUT")),
        ("S3 PutObject", lambda: s3.put_object(Bucket=a.bucket, Key="r/b.bin", Body=b"bbbb")),
        ("UFile head_file", lambda: assert_sdk_ok(*fm.head_file(a.bucket, "r/a.bin"), "head_file")),
        ("S3 GetObject", lambda: s3.get_object(Bucket=a.bucket, Key="r/b.bin")["Body"].read()),
        ("UFile getfilelist", lambda: assert_sdk_ok(*fm.getfilelist(a.bucket), "getfilelist")),
        ("S3 ListObjectsV2", lambda: s3.list_objects_v2(Bucket=a.bucket)),
        ("S3 CopyObject", lambda: s3.copy_object(Bucket=a.bucket, Key="r/c.bin", CopySource={"Bucket": a.bucket, "Key": "r/b.bin"})),
        ("UFile deletefile", lambda: assert_sdk_ok(*fm.deletefile(a.bucket, "r/c.bin"), "deletefile", statuses=(200, 204))),
        ("UFile download_file", lambda: assert_sdk_ok(*fm.download_file(a.bucket, "r/a.bin", str(tmp_path / "a")), "download_file")),
        ("S3 HeadObject", lambda: s3.head_object(Bucket=a.bucket, Key="r/b.bin")),
    ]
    for what, op in ops:
        try:
            op()
        except (AssertionError, ClientError) as e:
            raise AssertionError(f"request {what} within a quota of 10 requests was refused: {e}") from e

    # the 11th and later requests are refused, in both dialects and all buckets
    assert_quota_ufile(a.raw("GET", "r/a.bin"), "UFile GET after the request allowance")
    assert_quota_ufile(a.raw("HEAD", "r/a.bin"), "UFile HEAD after the request allowance", body=False)
    assert_quota_ufile(a2.raw("PUT", "r/x.bin", data=b"x", content_type=OCT), "UFile PUT into another bucket after the allowance")
    ret, resp = fm.putfile(a.bucket, "r/late.bin", write(tmp_path / "late", b"late"))
    assert_quota_sdk(ret, resp, "putfile after the request allowance")
    ret, resp = fm.getfilelist(a.bucket)
    assert_quota_sdk(ret, resp, "getfilelist after the request allowance")
    with quota_s3():
        s3.get_object(Bucket=a.bucket, Key="r/b.bin")
    with quota_s3():
        s3.put_object(Bucket=a.bucket, Key="r/late-s3.bin", Body=b"x")
    with quota_s3():
        s3.list_objects_v2(Bucket=a.bucket)
    with expect_s3_error(403):
        s3.head_object(Bucket=a.bucket, Key="r/b.bin")
    with quota_s3():
        s3.delete_object(Bucket=a.bucket, Key="r/b.bin")

    # another tenant is not affected
    b = make_ufile(server)
    for i in range(12):
        b.put_bytes(f"free{i}.bin", b"x")

    # without limits again: everything works, and the refused writes stored nothing
    set_quota(server, a.tenant.name)
    assert_exists(a, "r/b.bin", b"bbbb", "after a refused S3 delete")
    assert_no_s3_object(a, "r/late.bin", what="putfile refused by the request quota")
    assert_no_s3_object(a, "r/late-s3.bin", what="S3 put refused by the request quota")
    assert_no_s3_object(a2, "r/x.bin", what="UFile put refused by the request quota")


def test_request_quota_counts_multipart_steps(server, make_ufile):
    a = make_ufile(server)
    set_quota(server, a.tenant.name, requests=3)
    # init + one part + finish = 3 requests
    data = os.urandom(1000)
    ret, resp = a.mp().uploadstream(a.bucket, "m/x.bin", io.BytesIO(data), retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, "1-part multipart (3 requests) under a quota of 3 requests")
    assert_quota_ufile(a.raw("GET", "m/x.bin"), "the 4th request")
    set_quota(server, a.tenant.name, requests=2)
    ret, resp = a.mp().uploadstream(a.bucket, "m/y.bin", io.BytesIO(data), retrycount=1, retryinterval=0)
    assert_quota_sdk(ret, resp, "1-part multipart (3 requests) under a quota of 2 requests")
    set_quota(server, a.tenant.name)
    assert_no_s3_object(a, "m/y.bin", what="multipart cut short by the request quota")
    assert_exists(a, "m/x.bin", data, "multipart within the request quota")


def test_request_quota_concurrent_requests_never_exceed(server, make_ufile):
    a = make_ufile(server)
    a.put_bytes("c/x.bin", b"counted")
    s3 = a.s3()
    set_quota(server, a.tenant.name, requests=5)

    def get(i):
        if i % 2:
            return a.raw("GET", "c/x.bin").status_code
        return s3_status(lambda: s3.get_object(Bucket=a.bucket, Key="c/x.bin")["Body"].read())

    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        statuses = list(ex.map(get, range(12)))
    assert set(statuses) <= {200, 403}, f"concurrent requests under a request quota: {statuses}"
    ok = statuses.count(200)
    assert 1 <= ok <= 5, f"{ok} of 12 concurrent requests succeeded under a quota of 5 requests: {statuses}"
    extra = 0
    for _ in range(6):
        r = a.raw("GET", "c/x.bin")
        if r.status_code != 200:
            assert_quota_ufile(r, "sequential GET once the request allowance is used up")
            break
        extra += 1
    assert ok + extra == 5, f"{ok} concurrent + {extra} sequential requests passed a quota of 5 requests"


# ==========================================================================
# GetUFileQuota / GetUFileQuotaInfo


def test_get_quota_without_limits_is_unlimited(server, make_ufile):
    a = make_ufile(server)
    before = {q: left_quota(a, q) for q in QUOTA_TYPES}
    for q, v in before.items():
        assert is_unlimited(v), f"GetUFileQuota {q} without a quota: LeftQuota {v}, expected -1 or a very large number"
    info = quota_info(a)
    assert info["Owe"] == 0, f"a tenant without quotas owes: {info}"
    for q, field in zip(QUOTA_TYPES, ("Storage", "DownloadFlow", "RequestCnt")):
        v = float(info[field]["Left"])
        assert is_unlimited(v) and (v == -1) == (before[q] == -1), (
            f"GetUFileQuotaInfo {field}.Left {v} does not agree with GetUFileQuota {q} = {before[q]} (unlimited)"
        )
    data = os.urandom(200_000)
    a.put_bytes("u/x.bin", data)
    assert a.s3_bytes("u/x.bin") == data
    after = {q: left_quota(a, q) for q in QUOTA_TYPES}
    for q in QUOTA_TYPES:
        assert is_unlimited(after[q]) and (after[q] == -1) == (before[q] == -1), (
            f"GetUFileQuota {q} without a quota changed from {before[q]} to {after[q]}: not consistent with unlimited"
        )


def test_get_quota_left_decreases_with_usage(server, make_ufile):
    a = make_ufile(server)
    set_quota(server, a.tenant.name, storage_bytes=10_000_000, download_bytes=20_000_000, requests=1000)
    mgmt_calls = 0

    def left(q):
        nonlocal mgmt_calls
        mgmt_calls += 1
        return left_quota(a, q)

    s0, d0, r0 = left("storage-volume"), left("download-traffic"), left("request-count")
    assert close(s0, 10_000_000 / GB), f"storage LeftQuota {s0} GB, expected 0.01 (10 000 000 B, nothing stored)"
    assert close(d0, 20_000_000 / GB), f"download LeftQuota {d0} GB, expected 0.02"
    assert (1000 - mgmt_calls) / TEN_K - 1e-9 <= r0 <= 1000 / TEN_K + 1e-9, f"request LeftQuota {r0}, expected 0.1 (x 10k requests)"

    big, small = os.urandom(1_000_000), os.urandom(500_000)
    raw_ok(a.raw("PUT", "l/big.bin", data=big, content_type=OCT), "PUT 1 MB")  # 1
    a.s3().put_object(Bucket=a.bucket, Key="l/small.bin", Body=small)  # 2
    assert a.s3_bytes("l/big.bin") == big  # 3
    assert raw_ok(a.raw("GET", "l/small.bin"), "GET 500 kB").content == small  # 4
    k = 4
    want_s = (10_000_000 - 1_500_000) / GB
    want_d = (20_000_000 - 1_500_000) / GB
    s1 = poll(lambda: left("storage-volume"), lambda v: close(v, want_s))
    assert close(s1, want_s), f"storage LeftQuota {s1} GB after storing 1.5 MB of 10 MB, expected {want_s}"
    d1 = poll(lambda: left("download-traffic"), lambda v: close(v, want_d))
    assert close(d1, want_d), f"download LeftQuota {d1} GB after downloading 1.5 MB of 20 MB, expected {want_d}"
    r1 = poll(lambda: left("request-count"), lambda v: v <= r0 - k / TEN_K + 1e-9)
    assert r1 <= r0 - k / TEN_K + 1e-9, f"request LeftQuota {r0} -> {r1} after {k} requests: must drop by >= {k / TEN_K}"
    assert r1 >= (1000 - k - mgmt_calls) / TEN_K - 1e-9, f"request LeftQuota {r1} after {k} object requests: dropped too far"

    info = quota_info(a)
    mgmt_calls += 1
    assert info["Owe"] == 0, f"a tenant within its quotas owes: {info}"
    assert close(float(info["Storage"]["Left"]), want_s), f"GetUFileQuotaInfo Storage.Left {info['Storage']} != {want_s} GB"
    assert close(float(info["DownloadFlow"]["Left"]), want_d), f"GetUFileQuotaInfo DownloadFlow.Left {info['DownloadFlow']} != {want_d} GB"
    rl = float(info["RequestCnt"]["Left"])
    assert (1000 - k - mgmt_calls) / TEN_K - 1e-9 <= rl <= (1000 - k) / TEN_K + 1e-9, (
        f"GetUFileQuotaInfo RequestCnt.Left {rl}, expected about {(1000 - k) / TEN_K} (x 10k requests)"
    )

    # deleting gives storage back; downloads stay consumed
    a.s3().delete_object(Bucket=a.bucket, Key="l/big.bin")
    want_s2 = (10_000_000 - 500_000) / GB
    s2 = poll(lambda: left("storage-volume"), lambda v: close(v, want_s2))
    assert close(s2, want_s2), f"storage LeftQuota {s2} GB after deleting 1 MB, expected {want_s2}"
    assert close(left("download-traffic"), want_d), "a delete changed the download allowance"


# ==========================================================================
# GetUFileReport


def _report(ctx: UFileCtx, start: int, end: int) -> list[dict]:
    doc = mgmt_ok(ctx, "GetUFileReport", {"StartTime": start, "EndTime": end})
    ds = doc.get("DataSet")
    assert isinstance(ds, list), f"GetUFileReport: DataSet must be a list: {doc}"
    for row in ds:
        assert isinstance(row, dict), doc
        assert isinstance(row.get("Time"), int) and not isinstance(row.get("Time"), bool), f"GetUFileReport: Time must be an int: {row}"
        assert row["Time"] % 86400 == 0, f"GetUFileReport: Time must be the start of a day: {row}"
        for f in ("StorageVolume", "DownloadTraffic", "RequestCount"):
            assert isinstance(row.get(f), (int, float)) and not isinstance(row.get(f), bool), f"GetUFileReport: {f} must be a number: {row}"
        assert day_start(start) <= row["Time"] <= end, f"GetUFileReport row outside [{start}, {end}]: {row}"
    return ds


def _totals(rows: list[dict], since: int) -> tuple[float, float, float]:
    rows = [r for r in rows if r["Time"] >= since]
    dl = sum(float(r["DownloadTraffic"]) for r in rows)
    rc = sum(float(r["RequestCount"]) for r in rows)
    sv = float(max(rows, key=lambda r: r["Time"])["StorageVolume"]) if rows else 0.0
    return dl, rc, sv


def test_report_shows_real_counters(server, make_ufile, tmp_path):
    a = make_ufile(server)
    t0 = time.time()
    since = day_start(t0)
    one, two = os.urandom(2 * MiB), os.urandom(1 * MiB)
    a.put_bytes("rep/one.bin", one)  # 1
    a.s3().put_object(Bucket=a.bucket, Key="rep/two.bin", Body=two)  # 2
    assert a.s3_bytes("rep/one.bin") == one  # 3
    ret, resp = a.fm().download_file(a.bucket, "rep/one.bin", str(tmp_path / "one"))  # 4
    assert_sdk_ok(ret, resp, "download_file")
    r = raw_ok(a.raw("GET", "rep/two.bin", headers={"Range": "bytes=0-999"}), "ranged GET", statuses=(206,))  # 5
    assert r.content == two[:1000]
    a.s3().head_object(Bucket=a.bucket, Key="rep/two.bin")  # 6
    requests_made = 6
    downloaded = 2 * len(one) + 1000
    stored = len(one) + len(two)

    def fetch():
        return _report(a, since - 86400, int(time.time()) + 60)

    def done(rows):
        dl, rc, sv = _totals(rows, since)
        return close(dl, downloaded / GB) and rc >= requests_made / TEN_K - 1e-12 and close(sv, stored / GB)

    rows = poll(fetch, done)
    now = time.time()
    assert any(r["Time"] <= now < r["Time"] + 86400 for r in rows), f"GetUFileReport has no row for today: {rows}"
    dl, rc, sv = _totals(rows, since)
    assert close(dl, downloaded / GB), f"DownloadTraffic {dl} GB, expected {downloaded / GB} ({downloaded} B downloaded): {rows}"
    assert rc >= requests_made / TEN_K - 1e-12, f"RequestCount {rc} (x 10k), expected >= {requests_made / TEN_K}: {rows}"
    assert close(sv, stored / GB), f"StorageVolume {sv} GB, expected {stored / GB} ({stored} B stored): {rows}"

    # another tenant's report does not show A's traffic
    b = make_ufile(server)
    bdl, _, bsv = _totals(_report(b, since - 86400, int(time.time()) + 60), since)
    assert bdl == 0 and bsv == 0, f"an idle tenant's report shows DownloadTraffic {bdl} GB, StorageVolume {bsv} GB"

    # a range long before the tenant existed has nothing in it
    past = _report(a, int(t0) - 40 * 86400, int(t0) - 39 * 86400)
    assert all(float(r["DownloadTraffic"]) == 0 and float(r["RequestCount"]) == 0 and float(r["StorageVolume"]) == 0 for r in past), (
        f"GetUFileReport for 40 days ago shows usage of a tenant created today: {past}"
    )


# ==========================================================================
# GetUFileQuotaPrice


def test_quota_price(uf):
    doc = mgmt_ok(uf, "GetUFileQuotaPrice", {"StorageVolume": 200, "DownloadTraffic": 5, "RequestCount": 2})
    price = doc.get("Price")
    assert isinstance(price, (int, float)) and not isinstance(price, bool), f"GetUFileQuotaPrice: Price must be a number: {doc}"
    assert float(price) == 346, f"GetUFileQuotaPrice 200 GB-day + 5 GB + 20k requests: {price} fen, the spec example says 346"
    r = mgmt(uf, "GetUFileQuotaPrice", {"StorageVolume": 150, "DownloadTraffic": 5, "RequestCount": 2})
    assert_mgmt_error(r, CLIENT_ERRORS, "GetUFileQuotaPrice with StorageVolume not a multiple of 100")
