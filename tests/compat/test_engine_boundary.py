"""The engine boundary: rules the core decides once, for every protocol.

Each test is an attack or a bookkeeping check that used to pass through a side door in one
dialect: a scoped credential writing outside its scope through a multipart finish, claiming
or probing content outside its scope by hash, anonymous or refused requests spending a
tenant's request allowance, per-object access decided from user metadata, session and part
listings outside a scope, a tenant's own copy lost behind other tenants' copies in the hash
index, COS appids that betray tenant names, and abandoned upload sessions that never expire.
Every refusal is checked in the protocol's own error format, with the target untouched,
nothing stored and no allowance consumed. Real SDKs where one exists (ufile, the COS SDKs,
aligo, boto3), direct HTTP where none does (IoT devices, the native API).
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from adrive_helpers import (  # noqa: F401  (fixtures)
    AdriveRaw,
    AliyunRedirect,
    create_drive_tenant,
    create_tenant,
    env_server_factory,
    instant_challenge,
    instant_commit,
    make_aligo,
)
from compat_helpers import expect_s3_error, unique_name
from cos_helpers import (  # noqa: F401  (fixtures)
    E_SECRET_ID_OTHER_TENANT,
    api_fileid,
    cos_json,
    create_cos_tenant,
    import_cos_sdk,
    make_cos,
    new_cos_ctx,
    no_proxy,
    ops,
    record_sdk_requests,
    write_file,
)
from test_ufile_tokens_quotas import ALL_OPS, READ, WRITE, create_token, mgmt_ok, set_quota, with_token
from ufile_helpers import (  # noqa: F401  (fixtures)
    assert_ufile_error,
    check_iot_url_answer,
    iot_body,
    iot_put,
    iot_request_url,
    make_ufile,
    register_device,
    ufile_etag,
)

OCT = "application/octet-stream"


def mp_init(ctx, key: str) -> str:
    r = ctx.raw("POST", key, query="uploads", content_type="text/plain", data=b"")
    assert r.status_code == 200, f"init {key}: HTTP {r.status_code} {r.text[:300]}"
    return r.json()["UploadId"]


def mp_part(ctx, key: str, upload_id: str, n: int, data: bytes) -> str:
    r = ctx.raw("PUT", key, query=f"uploadId={upload_id}&partNumber={n}", content_type=OCT, data=data)
    assert r.status_code == 200, f"part {n} of {key}: HTTP {r.status_code} {r.text[:300]}"
    return r.headers["ETag"].strip('"')


def mp_finish(ctx, key: str, upload_id: str, etags: list[str], new_key: str | None = None):
    q = f"uploadId={upload_id}" + (f"&newKey={new_key}" if new_key else "")
    return ctx.raw("POST", key, query=q, content_type="text/plain", data=",".join(etags).encode())


def requests_today(ctx) -> float:
    """RequestCount of today in GetUFileReport (units of 10,000 requests)."""
    now = int(time.time())
    doc = mgmt_ok(ctx, "GetUFileReport", {"StartTime": now - now % 86400, "EndTime": now})
    return sum(float(d.get("RequestCount", 0)) for d in doc.get("DataSet", [])) * 1e4


# --------------------------------------------------------------------------
# writes outside a scope through a multipart finish


def test_ufile_token_cannot_finish_a_multipart_upload_outside_its_prefixes(server, make_ufile):
    uf = make_ufile(server)
    uf.put_bytes("secret/x.bin", b"precious")
    tok = create_token(uf, ALL_OPS, ["pub/"], [uf.bucket])
    t = with_token(uf, tok)
    # A direct PUT of the key is refused, as it always was ...
    assert_ufile_error(t.raw("PUT", "secret/x.bin", data=b"evil", content_type=OCT), 403, "direct PUT outside the prefix")
    # ... and so is the side door: a session inside the prefix finished under another key.
    upload_id = mp_init(t, "pub/mp")
    etag = mp_part(t, "pub/mp", upload_id, 0, b"evil")
    # `newKey` is used only when the session's key was taken meanwhile: take it.
    uf.put_bytes("pub/mp", b"taken meanwhile")
    r = mp_finish(t, "pub/mp", upload_id, [etag], new_key="secret/x.bin")
    assert_ufile_error(r, 403, "finish with newKey outside the token's prefixes")
    assert uf.s3_bytes("secret/x.bin") == b"precious", "the target was replaced"
    # The session is untouched: finished inside the prefix it still works.
    r = mp_finish(t, "pub/mp", upload_id, [etag], new_key="pub/renamed")
    assert r.status_code == 200, f"finish inside the prefix: HTTP {r.status_code} {r.text[:300]}"
    assert uf.s3_bytes("pub/renamed") == b"evil"


def test_iot_device_cannot_finish_a_ufile_upload_outside_its_folder(server, make_ufile):
    uf = make_ufile(server)
    dev = register_device(server, uf.tenant, uf.bucket)
    uf.put_bytes("other/x.bin", b"precious")
    d = uf.other(public_key=f"iot-device:{dev.product_sn}/{dev.device_sn}", private_key=dev.device_secret)
    folder = f"{dev.product_sn}/{dev.device_sn}/"
    upload_id = mp_init(d, folder + "mp")
    etag = mp_part(d, folder + "mp", upload_id, 0, b"evil")
    uf.put_bytes(folder + "mp", b"taken meanwhile")
    r = mp_finish(d, folder + "mp", upload_id, [etag], new_key="other/x.bin")
    assert_ufile_error(r, 403, "a device finishing outside its folder")
    assert uf.s3_bytes("other/x.bin") == b"precious"
    # Write-only: a device cannot read back, even inside its folder.
    assert_ufile_error(d.raw("GET", "other/x.bin"), 403, "a device reading")


# --------------------------------------------------------------------------
# instant upload within a credential's scope


def test_scoped_ufile_uploadhit_claims_only_what_the_token_could_read(server, make_ufile):
    uf = make_ufile(server)
    data = os.urandom(5000)
    uf.put_bytes("secret/f.bin", data)
    etag = ufile_etag(data)
    hit = lambda ctx, name, h=etag: ctx.raw(  # noqa: E731
        "POST", "uploadhit", query=f"Hash={h}&FileName={name}&FileSize={len(data)}", sign_key=name
    )
    # The owner's key hits (the content is its own).
    assert hit(uf, "copy.bin").status_code == 200
    # A token scoped to pub/ (all operations) gets a miss, like unknown content.
    t = with_token(uf, create_token(uf, ALL_OPS, ["pub/"], [uf.bucket]))
    known = hit(t, "pub/f.bin")
    unknown = hit(t, "pub/g.bin", h=ufile_etag(os.urandom(5000)))
    assert known.status_code == unknown.status_code == 404, (known.status_code, unknown.status_code)
    assert known.json()["RetCode"] == unknown.json()["RetCode"], (known.text, unknown.text)
    assert_ufile_error(t.raw("GET", "pub/f.bin"), 404, "nothing was created by the miss")
    # A write-only token inside the very prefix: no oracle either.
    w = with_token(uf, create_token(uf, [WRITE], ["secret/"], [uf.bucket]))
    assert hit(w, "secret/copy.bin").status_code == 404
    # The real SDK (3.2.7's uploadhit) says the same.
    ret, resp = t.fm327().uploadhit(uf.bucket, "pub/sdk.bin", _write(data))
    assert resp.status_code == 404, f"uploadhit through the SDK with a pub/ token: {resp.status_code} {resp.error!r}"
    # Inside its readable prefix a token hits.
    r = with_token(uf, create_token(uf, [READ, WRITE], ["secret/"], [uf.bucket]))
    assert hit(r, "secret/copy2.bin").status_code == 200


def _write(data: bytes) -> str:
    import tempfile

    f = tempfile.NamedTemporaryFile(delete=False)
    f.write(data)
    f.close()
    return f.name


def test_scoped_cos_slice_upload_is_no_instant_upload(server, make_ufile, make_cos, tmp_path):
    ct = create_cos_tenant(server)
    cos = new_cos_ctx(server, ct)
    data = os.urandom(2 * 1024 * 1024 + 1234)
    local = write_file(tmp_path / "f.bin", data)
    cos.s3_put("secret/f.bin", data)
    cos.mkdir("/pub/")
    # A UFile token of the tenant is also a COS SecretID/SecretKey pair: scoped to pub/.
    uf = make_ufile(server, tenant=create_tenant(server))
    owner = uf.other(public_key=ct.access_key, private_key=ct.secret_key, bucket=cos.bucket)
    tok = create_token(owner, ALL_OPS, ["pub/"], [cos.bucket])
    client = cos.v4(secret_id=tok.public_key, secret_key=tok.private_key)
    sdk = import_cos_sdk("v4")
    sent = record_sdk_requests(client)
    req = sdk.UploadSliceFileRequest(cos.bucket, "/pub/f.bin", local, 1024 * 1024, "", enable_sha1=True, max_con=1)
    ret = client.upload_slice_file(req)
    assert ret.get("code") == 0, ret
    # The SDK sent the file's sha at init; the token cannot read secret/, so no shortcut.
    assert ops(sent) == ["upload_slice_init"] + ["upload_slice_data"] * 3 + ["upload_slice_finish"], ops(sent)
    assert cos.s3_bytes("pub/f.bin") == data
    # The owner's key, same SDK call: the init alone creates the file.
    owner_client = cos.v4()
    sent = record_sdk_requests(owner_client)
    req = sdk.UploadSliceFileRequest(cos.bucket, "/pub/g.bin", local, 1024 * 1024, "", enable_sha1=True, max_con=1)
    assert owner_client.upload_slice_file(req).get("code") == 0
    assert ops(sent) == ["upload_slice_init"], ops(sent)


def test_native_challenge_with_a_scoped_token_requires_proof(server, make_ufile):
    uf = make_ufile(server)
    data = os.urandom(3000)
    uf.put_bytes("secret/f.bin", data)
    sha = hashlib.sha256(data).hexdigest()
    tok = create_token(uf, ALL_OPS, ["pub/"], [uf.bucket])
    r = instant_challenge(server, tok.keys, uf.bucket, "pub/f.bin", len(data), sha)
    assert r.status_code == 200, r.text
    assert r.json()["proof_required"] is True, f"the challenge told a pub/ token it holds secret/ content: {r.json()}"
    r = instant_commit(server, tok.keys, r.json()["challenge_id"])
    assert r.status_code == 200 and r.json() == {"hit": False}, r.text
    own = instant_challenge(server, (uf.public_key, uf.private_key), uf.bucket, "copy.bin", len(data), sha)
    assert own.json()["proof_required"] is False


# --------------------------------------------------------------------------
# the hash index finds the tenant's own copy first


def test_own_copy_is_found_whatever_other_tenants_hold(server, make_ufile):
    data = os.urandom(4000)
    for _ in range(17):
        other = make_ufile(server)
        other.put_bytes("f.bin", data)
    uf = make_ufile(server)
    uf.put_bytes("mine.bin", data)
    r = uf.raw("POST", "uploadhit", query=f"Hash={ufile_etag(data)}&FileName=again.bin&FileSize={len(data)}", sign_key="again.bin")
    assert r.status_code == 200, f"UploadHit of the tenant's own file behind 17 other tenants' copies: {r.status_code} {r.text}"
    c = instant_challenge(server, (uf.public_key, uf.private_key), uf.bucket, "n.bin", len(data), hashlib.sha256(data).hexdigest())
    assert c.json()["proof_required"] is False


# --------------------------------------------------------------------------
# metering after authorization


def test_anonymous_and_refused_requests_spend_nothing(server, make_ufile):
    uf = make_ufile(server)
    uf.put_bytes("private.bin", b"p")
    set_quota(server, uf.tenant.name, requests=30)
    stranger = make_ufile(server)
    anon = requests.Session()
    for _ in range(40):
        assert anon.get(f"{server.endpoint}/{uf.bucket}/private.bin", timeout=30).status_code == 403
        assert uf.raw("GET", "private.bin", sign=False).status_code in (401, 403)
        with expect_s3_error(403):
            stranger.s3().get_object(Bucket=uf.bucket, Key="private.bin")
    # The owner still has its whole allowance.
    for i in range(25):
        assert uf.s3_bytes("private.bin") == b"p", f"owner request {i} refused"
    assert requests_today(uf) < 40, "refused requests appear in the owner's usage report"


def test_aliyun_drive_and_iot_transfers_are_metered(server, make_ufile, tmp_path):
    drive = create_drive_tenant(server)
    uf = make_ufile(server, tenant=drive)
    before = requests_today(uf)
    with AliyunRedirect(server.endpoint):
        ali = make_aligo(drive, tmp_path / "aligo")
        f = tmp_path / "f.bin"
        f.write_bytes(os.urandom(300_000))
        up = ali.upload_file(str(f))
        assert up.file_id, up
        ali.download_file(file_id=up.file_id, local_folder=str(tmp_path / "dl"))
    dev = register_device(server, drive, uf.bucket)
    data = b"device log"
    url, auth = check_iot_url_answer(server, iot_request_url(server, iot_body(dev, "log.txt", data), dev.device_secret), dev, "log.txt")
    assert iot_put(url, auth, data).status_code == 200
    after = requests_today(uf)
    assert after - before >= 4, f"Aliyun Drive and IoT requests were not metered: {before} -> {after}"
    now = int(time.time())
    doc = mgmt_ok(uf, "GetUFileReport", {"StartTime": now - now % 86400, "EndTime": now})
    downloaded = sum(float(d.get("DownloadTraffic", 0)) for d in doc["DataSet"]) * 1e9
    assert downloaded >= 300_000, f"the Aliyun Drive download was not metered: {doc}"


# --------------------------------------------------------------------------
# per-object access is a system attribute


def test_cos_authority_is_not_user_metadata(server, make_cos):
    cos = make_cos()
    cos.s3_put("forged.txt", b"secret", Metadata={"cos-authority": "eWPrivateRPublic"})
    r = cos.download("/forged.txt", sign=None)
    assert r.status_code == 403, f"user metadata made a private file public: HTTP {r.status_code}"
    # The COS update sets the real flag, which S3 metadata does not show or change.
    cos.upload("/open.txt", b"open")
    body = {"op": "update", "authority": "eWPrivateRPublic"}
    assert cos_json(cos.post_json("/open.txt", body), "update authority").get("code") == 0
    r = cos.download("/open.txt", sign=None)
    assert r.status_code == 200 and r.content == b"open", r.status_code
    head = cos.s3().head_object(Bucket=cos.bucket, Key="open.txt")
    assert "cos-authority" not in head.get("Metadata", {}), head.get("Metadata")
    assert cos.stat_ok("/open.txt").get("authority") == "eWPrivateRPublic"


# --------------------------------------------------------------------------
# listings of sessions and parts stay inside a scope


def test_scoped_tokens_list_only_their_sessions_and_parts(server, make_ufile):
    uf = make_ufile(server)
    owner = uf.s3()
    secret_id = owner.create_multipart_upload(Bucket=uf.bucket, Key="secret/mp")["UploadId"]
    owner.create_multipart_upload(Bucket=uf.bucket, Key="pub/mp")
    tok = create_token(uf, ALL_OPS, ["pub/"], [uf.bucket])
    s3 = with_token(uf, tok).s3()
    with expect_s3_error(403):
        s3.list_multipart_uploads(Bucket=uf.bucket)
    listed = s3.list_multipart_uploads(Bucket=uf.bucket, Prefix="pub/").get("Uploads", [])
    assert [u["Key"] for u in listed] == ["pub/mp"], listed
    # UFile lists a session's parts by its id alone: another prefix's id is refused.
    r = with_token(uf, tok).raw("GET", "", query=f"muploadpart&uploadId={secret_id}")
    assert_ufile_error(r, 403, "?muploadpart of a session outside the token's prefixes")


# --------------------------------------------------------------------------
# the native API answers a storage quota with a quota error


def test_native_commit_over_the_storage_quota_is_a_quota_error(server, make_ufile):
    uf = make_ufile(server)
    data = os.urandom(10_000)
    uf.put_bytes("f.bin", data)
    set_quota(server, uf.tenant.name, storage_bytes=15_000)
    keys = (uf.public_key, uf.private_key)
    c = instant_challenge(server, keys, uf.bucket, "copy.bin", len(data), hashlib.sha256(data).hexdigest())
    r = instant_commit(server, keys, c.json()["challenge_id"])
    assert r.status_code == 403 and r.json().get("error") == "QuotaExceeded", f"HTTP {r.status_code} {r.text}"
    with expect_s3_error(404):
        uf.s3().head_object(Bucket=uf.bucket, Key="copy.bin")
    set_quota(server, uf.tenant.name)


# --------------------------------------------------------------------------
# COS appids say nothing of tenants


def test_cos_appids_are_random_and_unknown_ones_answer_like_known_ones(server, make_cos, server_factory):
    cos = make_cos()
    other = make_cos()

    def answer(appid) -> tuple:
        """A directory creation at `appid`, signed with `cos`'s own key for that appid."""
        path = "/probe/"
        sign = cos.sign_more(path, appid=appid, fileid=api_fileid(appid, cos.bucket, path))
        r = requests.post(
            cos.api_url(path, appid=appid), json={"op": "create"}, headers={"Authorization": sign}, timeout=30
        )
        doc = cos_json(r, f"create with appid {appid}")
        return r.status_code, doc["code"], doc["message"]

    unknown = next(a for a in range(1_250_000_001, 1_250_100_000) if a not in (cos.appid, other.appid))
    assert answer(other.appid) == answer(unknown), "an unknown appid is told apart from another tenant's"
    assert answer(unknown)[1] == E_SECRET_ID_OTHER_TENANT
    # The appid is not a function of the tenant's name: another server gives the same name another.
    name = unique_name("same")
    first = create_tenant(server, name).cos_appid
    fresh = server_factory()
    second = create_tenant(fresh, name).cos_appid
    assert first != second, f"tenant {name} got appid {first} on two servers: derived from its name"


# --------------------------------------------------------------------------
# abandoned Aliyun Drive sessions expire


def test_abandoned_aliyun_drive_sessions_expire(env_server_factory):
    srv = env_server_factory(env={"CHUAN_UPLOAD_TTL_SECS_ADRIVE": "2"})
    drive = create_drive_tenant(srv)
    r = requests.post(f"{srv.endpoint}/v2/account/token", json={"refresh_token": drive.refresh_token}, timeout=30)
    token = r.json()["access_token"]
    raw = AdriveRaw(srv.endpoint, token, drive.default_drive_id)
    body = {"drive_id": drive.default_drive_id, "parent_file_id": "root", "name": "abandoned.bin", "type": "file",
            "size": 100, "check_name_mode": "auto_rename", "part_info_list": [{"part_number": 1}]}
    created = raw.post("/adrive/v2/file/createWithFolders", body)
    assert created.status_code == 201, created.text
    upload = created.json()
    assert requests.put(upload["part_info_list"][0]["upload_url"], data=os.urandom(100), timeout=30).status_code == 200
    stats = requests.get(f"{srv.endpoint}/_chuan/admin/stats", auth=(srv.access_key, srv.secret_key), timeout=30).json()
    assert stats["uploads"] == 1
    time.sleep(3)
    # Expired: refused at once (before any GC pass) ...
    done = raw.post("/v2/file/complete", {"drive_id": drive.default_drive_id, "file_id": upload["file_id"],
                                         "upload_id": upload["upload_id"]})
    assert done.status_code == 404 and done.json().get("code") == "NotFound.UploadId", done.text
    # ... and GC removes it and its part.
    gc = requests.post(f"{srv.endpoint}/_chuan/admin/gc?grace_secs=0", auth=(srv.access_key, srv.secret_key), timeout=30)
    assert gc.json()["uploads_expired"] == 1, gc.text
    stats = requests.get(f"{srv.endpoint}/_chuan/admin/stats", auth=(srv.access_key, srv.secret_key), timeout=30).json()
    assert (stats["uploads"], stats["parts"], stats["blobs"]) == (0, 0, 0), stats


# --------------------------------------------------------------------------
# second keys of a request: copy and move sources, other tenants' drives


def test_upyun_operator_cannot_copy_or_move_from_another_bucket(server):
    from upyun_helpers import assert_raw_error, make_account

    a = make_account(server)
    theirs = make_account(server)  # another tenant
    sibling_bucket = unique_name("up")  # the same tenant's other bucket: outside the operator's scope
    a.s3().create_bucket(Bucket=sibling_bucket)
    theirs.s3().put_object(Bucket=theirs.bucket, Key="secret.bin", Body=b"theirs")
    a.s3().put_object(Bucket=sibling_bucket, Key="secret.bin", Body=b"sibling")
    raw = a.raw()
    for bucket in (theirs.bucket, sibling_bucket):
        for header in ("X-Upyun-Copy-Source", "X-Upyun-Move-Source"):
            r = raw.request("PUT", "/stolen.bin", headers={header: f"/{bucket}/secret.bin"})
            doc = assert_raw_error(r, 403)
            assert doc.get("code") == 40300011, f"{header} from {bucket}: {doc}"
    with expect_s3_error(404):
        a.s3().head_object(Bucket=a.bucket, Key="stolen.bin")
    assert theirs.s3().get_object(Bucket=theirs.bucket, Key="secret.bin")["Body"].read() == b"theirs"
    assert a.s3().get_object(Bucket=sibling_bucket, Key="secret.bin")["Body"].read() == b"sibling"


def test_aliyun_drive_token_cannot_reach_another_tenants_drive(server, tmp_path):
    mine = create_drive_tenant(server)
    theirs = create_drive_tenant(server)
    theirs.s3(server).put_object(Bucket=theirs.default_drive_id, Key="secret.txt", Body=b"theirs")
    token = requests.post(f"{server.endpoint}/v2/account/token", json={"refresh_token": mine.refresh_token}, timeout=30)
    raw = AdriveRaw(server.endpoint, token.json()["access_token"], theirs.default_drive_id)
    calls = [
        ("/adrive/v3/file/list", {"drive_id": theirs.default_drive_id, "parent_file_id": "root"}),
        ("/v2/file/get_by_path", {"drive_id": theirs.default_drive_id, "file_path": "/secret.txt"}),
        ("/adrive/v2/file/createWithFolders", {"drive_id": theirs.default_drive_id, "parent_file_id": "root",
                                               "name": "planted.txt", "type": "file", "size": 3}),
    ]
    for path, body in calls:
        r = raw.post(path, body)
        assert r.status_code == 403 and r.json().get("code") == "Forbidden", f"{path}: HTTP {r.status_code} {r.text}"
    keys = [o["Key"] for o in theirs.s3(server).list_objects_v2(Bucket=theirs.default_drive_id).get("Contents", [])]
    assert keys == ["secret.txt"], keys


# --------------------------------------------------------------------------
# credentials sign only what their kind is for; replays spend nothing


def test_upyun_form_secret_signs_only_block_uploads(server):
    from upyun_helpers import make_account

    a = make_account(server)
    a.s3().put_object(Bucket=a.bucket, Key="k.bin", Body=b"k")
    r = requests.post(
        f"{server.endpoint}/_chuan/admin/upyun/form-secrets",
        params={"tenant": a.tenant.name, "bucket": a.bucket},
        auth=(server.access_key, server.secret_key),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    secret = r.json()["form_secret"]
    s3 = server.client(f"upyun-form:{a.bucket}", secret)
    with expect_s3_error(403, "InvalidAccessKeyId"):
        s3.list_objects_v2(Bucket=a.bucket)
    with expect_s3_error(403, "InvalidAccessKeyId"):
        s3.delete_object(Bucket=a.bucket, Key="k.bin")
    assert a.s3().get_object(Bucket=a.bucket, Key="k.bin")["Body"].read() == b"k"


def test_replayed_cos_once_signatures_spend_nothing(server, make_cos):
    cos = make_cos()
    cos.upload("/a.txt", b"a")
    set_quota(server, cos.tenant.name, requests=15)
    sign = cos.sign_once("/a.txt")
    assert cos_json(cos.post_json("/a.txt", {"op": "delete"}, auth=sign), "delete").get("code") == 0
    for _ in range(30):
        doc = cos_json(cos.post_json("/a.txt", {"op": "delete"}, auth=sign), "replayed delete")
        assert doc.get("code") == -77, doc
    # The owner's allowance is intact: ten more requests pass.
    for i in range(10):
        assert cos.stat("/").get("code") == 0, f"owner request {i} after the replays"
    set_quota(server, cos.tenant.name)


def test_ufile_new_key_applies_only_when_the_key_was_taken(server, make_ufile):
    """The spec (finish multipart upload): `newKey` is the file's key only if its own key was
    taken while it was uploaded; a free key is used as it is. Both paths, and an empty file."""
    uf = make_ufile(server)
    upload_id = mp_init(uf, "free.bin")
    etag = mp_part(uf, "free.bin", upload_id, 0, b"first")
    r = mp_finish(uf, "free.bin", upload_id, [etag], new_key="spare.bin")
    assert r.status_code == 200 and r.json().get("Key") == "free.bin", r.text[:300]
    assert uf.s3_bytes("free.bin") == b"first"
    assert uf.raw("HEAD", "spare.bin").status_code == 404, "newKey was used for a free key"

    upload_id = mp_init(uf, "busy.bin")
    etag = mp_part(uf, "busy.bin", upload_id, 0, b"second")
    uf.put_bytes("busy.bin", b"someone else's")
    r = mp_finish(uf, "busy.bin", upload_id, [etag], new_key="busy-2.bin")
    assert r.status_code == 200 and r.json().get("Key") == "busy-2.bin", r.text[:300]
    assert uf.s3_bytes("busy.bin") == b"someone else's", "the taken key was overwritten"
    assert uf.s3_bytes("busy-2.bin") == b"second"

    upload_id = mp_init(uf, "empty.bin")
    uf.put_bytes("empty.bin", b"x")
    r = mp_finish(uf, "empty.bin", upload_id, [], new_key="empty-2.bin")
    assert r.status_code == 200 and r.json().get("Key") == "empty-2.bin", r.text[:300]
    assert uf.s3_bytes("empty.bin") == b"x" and uf.s3_bytes("empty-2.bin") == b""
