"""UFile (UCloud US3 / Inspur OSS) dialect, driven by the real `ufile` SDK
(3.2.11 from the venv; 3.2.7 for uploadhit/rename, see ufile_helpers) and,
for exact status/header/JSON checks, by raw `requests` calls.

Contract (see /work/shared/specs/client-sdks.md §1, inspur-oss-api.md):
* a tenant's S3 key pair (POST /_chuan/admin/tenants) is its UFile key pair
  (public = access key, private = secret key); root's pair works too;
  buckets and objects are shared with S3;
* bucket = first label of Host; the SDK is pointed at the server with suffix
  ".localhost:PORT" (+ resolver shim) or ".ufile.invalid" + HTTP_PROXY
  (absolute-form requests) - both are exercised (tests parametrized with
  [localhost]/[proxy]);
* object ETag = the ufile etag (spec §1.3) in double quotes on PUT/POST
  responses, HEAD, multipart finish and listings;
* errors: JSON {"RetCode": int != 0, "ErrMsg": str}, Content-Type exactly
  application/json, X-SessionId header, and the right status.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from urllib.parse import quote

import pytest
import requests

from compat_helpers import MiB, unique_name
from ufile_helpers import (  # noqa: F401  (fixtures: make_ufile, uf, uf_mode)
    EMPTY_ETAG,
    UFILE_BLOCK,
    UFileCtx,
    api_signature,
    assert_no_s3_object,
    assert_sdk_error,
    assert_sdk_ok,
    assert_ufile_error,
    authorization,
    make_ufile,
    md5_hex,
    pattern_bytes,
    presign_signature,
    quoted,
    string_to_sign,
    uf,
    uf_mode,
    ufile,
    ufile_etag,
)

SIZES = {
    "0B": 0,
    "11B": 11,
    "4MiB": 4 * MiB,
    "4MiB+1": 4 * MiB + 1,
    "10MiB": 10 * MiB,
}


def assert_unsigned_refused(ctx: UFileCtx, r: requests.Response, statuses, what: str) -> None:
    """A request without any UFile credential. Through the proxy suffix
    (Host *.ufile.invalid) it is unambiguously UFile and gets the full error
    contract; through *.localhost it carries nothing that tells it from an
    S3 virtual-host request, so only the status is required there."""
    if ctx.mode == "proxy":
        assert_ufile_error(r, statuses, what, body=r.request.method != "HEAD")
    else:
        assert r.status_code in statuses, f"{what}: expected HTTP {statuses}, got {r.status_code} {r.text[:300]}"


def write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def sdk_head(ctx: UFileCtx, key: str, bucket: str | None = None):
    ret, resp = ctx.fm().head_file(bucket or ctx.bucket, key)
    assert_sdk_ok(ret, resp, f"head_file {key}")
    return resp


def assert_stored(ctx: UFileCtx, key: str, data: bytes, content_type: str | None = None, what: str = "") -> None:
    """HEAD through the dialect (ETag, length, type) and bytes through S3."""
    resp = sdk_head(ctx, key)
    assert resp.etag == quoted(ufile_etag(data)), (
        f"{what}: HEAD ETag {resp.etag!r}, expected the ufile etag in quotes {quoted(ufile_etag(data))!r}"
    )
    assert resp.content_length == str(len(data)), f"{what}: HEAD Content-Length {resp.content_length}, expected {len(data)}"
    if content_type is not None:
        assert resp.content_type == content_type, f"{what}: HEAD Content-Type {resp.content_type!r}, expected {content_type!r}"
    got = ctx.s3_bytes(key)
    assert len(got) == len(data) and got == data, f"{what}: S3 GET {key} returned different bytes ({len(got)} vs {len(data)})"


# --------------------------------------------------------------------------
# the helpers agree with the spec's worked examples and with the SDK


def test_etag_helper_matches_spec_worked_examples(tmp_path):
    cases = {
        b"": "AAAAAA==",
        b"hello world": "AQAAACqubDXJT8-0FdvpX0CLnOke6Ebt",
        pattern_bytes(4 * MiB): "AQAAAAd8eREZ4FXnoK5eUHCJo_kRSDb1",
        pattern_bytes(4 * MiB + 1): "AgAAAAV4TNEnA2AXSRVyDqVW4bohMKad",
        pattern_bytes(10 * MiB): "AwAAAJWW94Kd7uuN_TCTi_xpbr4WtvSz",
    }
    for data, want in cases.items():
        assert ufile_etag(data) == want, (len(data), ufile_etag(data), want)
        p = write(tmp_path / f"e{len(data)}", data)
        assert ufile.util.file_etag(p, UFILE_BLOCK) == want, f"SDK file_etag disagrees for {len(data)} B"


def test_signature_helper_matches_spec_worked_examples():
    pub, priv = "TOKEN_PUBLIC_KEY", "PRIVATE_KEY_123"
    assert string_to_sign("PUT", "mybucket", "hello.txt", content_type="text/plain") == "PUT\n\ntext/plain\n\n/mybucket/hello.txt"
    assert authorization(pub, priv, "PUT\n\ntext/plain\n\n/mybucket/hello.txt") == "UCloud TOKEN_PUBLIC_KEY:fKSJ2e9wk/M5JFUXL+8wAIkuxv0="
    assert authorization(pub, priv, string_to_sign("DELETE", "mybucket", "hello.txt")) == (
        "UCloud TOKEN_PUBLIC_KEY:+vucBpVRWR+zMGa8/i0uB7fVSiI="
    )
    assert authorization(pub, priv, string_to_sign("GET", "mybucket", "")) == "UCloud TOKEN_PUBLIC_KEY:K+D3bxF1JFlfphJ6orQaolQ28ik="
    lo = {"delimiter": "/", "marker": "", "max-keys": "100", "prefix": "a/"}
    assert authorization(pub, priv, string_to_sign("GET", "mybucket", "", listobjects=lo)).endswith(":0af7nZctr5gB0QjUx21DVKxHsas=")
    assert presign_signature(priv, "mybucket", "hello.txt", 1700000000) == "2SPZRekbQANcOqpH58xZnp9M99U="
    # and the SDK computes the same
    fm = ufile.filemanager.FileManager(pub, priv)
    assert fm.authorization("put", "mybucket", "hello.txt", {"Content-Type": "text/plain"}) == (
        "UCloud TOKEN_PUBLIC_KEY:fKSJ2e9wk/M5JFUXL+8wAIkuxv0="
    )
    assert fm.signature("mybucket", "hello.txt", "get", {"Expires": "1700000000"}) == "2SPZRekbQANcOqpH58xZnp9M99U="


# --------------------------------------------------------------------------
# simple uploads


def test_putfile_head_download_delete(uf_mode, tmp_path):
    ctx = uf_mode
    fm = ctx.fm()
    data = b"hello world"
    path = write(tmp_path / "hello.txt", data)
    key = "docs/hello.txt"

    ret, resp = fm.putfile(ctx.bucket, key, path)
    assert_sdk_ok(ret, resp, "putfile")
    assert isinstance(ret, dict), ret
    assert resp.etag == quoted(ufile_etag(data)), f"PUT response ETag {resp.etag!r}, expected {quoted(ufile_etag(data))!r}"
    assert_stored(ctx, key, data, "text/plain", "after putfile")
    assert fm.compare_file_etag(ctx.bucket, key, path) is True

    out = tmp_path / "out.txt"
    ret, resp = fm.download_file(ctx.bucket, key, str(out))
    assert_sdk_ok(ret, resp, "download_file")
    assert out.read_bytes() == data
    assert resp.etag == quoted(ufile_etag(data)), f"GET ETag {resp.etag!r}"

    # overwrite
    data2 = os.urandom(3000)
    path2 = write(tmp_path / "hello2.txt", data2)
    ret, resp = fm.putfile(ctx.bucket, key, path2)
    assert_sdk_ok(ret, resp, "putfile overwrite")
    assert_stored(ctx, key, data2, "text/plain", "after overwrite")

    ret, resp = fm.deletefile(ctx.bucket, key)
    assert ret is not None and resp.status_code in (200, 204), f"deletefile: HTTP {resp.status_code} {resp.error}"
    ret, resp = fm.head_file(ctx.bucket, key)
    assert ret is None and resp.status_code == 404, f"HEAD after delete: HTTP {resp.status_code}"
    assert_no_s3_object(ctx, key, what="after deletefile")


def test_putfile_with_md5(uf, tmp_path):
    data = os.urandom(100_000)
    path = write(tmp_path / "blob.bin", data)
    fm = uf.fm()
    uf.configure(md5=True)
    try:
        ret, resp = fm.putfile(uf.bucket, "md5/blob.bin", path)
    finally:
        uf.configure(md5=False)
    assert_sdk_ok(ret, resp, "putfile with Content-MD5 (hex)")
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored(uf, "md5/blob.bin", data, "application/octet-stream", "putfile md5=True")


def test_putfile_unknown_mime_is_kept(uf, tmp_path):
    data = os.urandom(512)
    path = write(tmp_path / "data.chuanxyz", data)
    ret, resp = uf.fm().putfile(uf.bucket, "m/data.chuanxyz", path)
    assert_sdk_ok(ret, resp, "putfile with Content-Type application/unknowntype")
    assert_stored(uf, "m/data.chuanxyz", data, "application/unknowntype", "unknown mime")


def test_putfile_zero_bytes_uses_chunked_encoding(uf_mode, tmp_path):
    ctx = uf_mode
    path = write(tmp_path / "empty.txt", b"")
    ret, resp = ctx.fm().putfile(ctx.bucket, "empty.txt", path)
    assert_sdk_ok(ret, resp, "putfile of a 0-byte file (Transfer-Encoding: chunked, no Content-Length)")
    assert resp.etag == quoted(EMPTY_ETAG), f"PUT ETag of the empty object: {resp.etag!r}"
    assert_stored(ctx, "empty.txt", b"", "text/plain", "0-byte putfile")
    assert ctx.fm().compare_file_etag(ctx.bucket, "empty.txt", path) is True


def test_putstream_bytesio_with_md5_and_mime(uf):
    data = os.urandom(2 * MiB + 17)
    fm = uf.fm()
    uf.configure(md5=True)
    try:
        ret, resp = fm.putstream(uf.bucket, "stream/a.dat", io.BytesIO(data), mime_type="application/x-chuan-test")
    finally:
        uf.configure(md5=False)
    assert_sdk_ok(ret, resp, "putstream BytesIO md5=True")
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored(uf, "stream/a.dat", data, "application/x-chuan-test", "putstream")

    ret, resp = fm.putstream(uf.bucket, "stream/b.dat", io.BytesIO(b"xyz"))
    assert_sdk_ok(ret, resp, "putstream default mime")
    assert_stored(uf, "stream/b.dat", b"xyz", "application/octet-stream", "putstream default mime")


def test_putstream_chunked_generator(uf_mode):
    ctx = uf_mode
    chunks = [os.urandom(MiB), os.urandom(3 * MiB), os.urandom(1234)]
    data = b"".join(chunks)
    ret, resp = ctx.fm().putstream(ctx.bucket, "stream/chunked.bin", (c for c in chunks))
    assert_sdk_ok(ret, resp, "putstream of a generator (chunked request body)")
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored(ctx, "stream/chunked.bin", data, "application/octet-stream", "chunked putstream")


def test_postfile_form_without_closing_boundary(uf_mode, tmp_path):
    ctx = uf_mode
    data = os.urandom(300_000)
    path = write(tmp_path / "photo.jpg", data)
    key = "form/photo 1.jpg"
    ret, resp = ctx.fm().postfile(ctx.bucket, key, path)
    assert_sdk_ok(ret, resp, "postfile (multipart form, no closing --boundary--)")
    assert resp.etag == quoted(ufile_etag(data)), f"POST response ETag {resp.etag!r}"
    assert_stored(ctx, key, data, "image/jpeg", "postfile")


def test_raw_form_post_with_closing_boundary(uf_mode):
    uf = uf_mode
    data = os.urandom(1000) + b"\r\n--notaboundary\r\n"
    key = "form/raw.bin"
    boundary = "----ChuanBoundary" + secrets.token_hex(8)
    auth = authorization(uf.public_key, uf.private_key, string_to_sign("POST", uf.bucket, key, content_type="application/octet-stream"))
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"FileName\"\r\n\r\n{key}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"Authorization\"\r\n\r\n{auth}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"raw.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    r = uf.raw("POST", "", sign=False, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, f"well-formed form POST: HTTP {r.status_code} {r.text[:300]}"
    assert r.headers.get("ETag") == quoted(ufile_etag(data)), r.headers
    assert uf.s3_bytes(key) == data


def test_unicode_and_space_keys(uf_mode, tmp_path):
    ctx = uf_mode
    fm = ctx.fm()
    data = os.urandom(4096)
    path = write(tmp_path / "x.bin", data)
    key = "smoke/目录/中文 file+plus.bin"
    ret, resp = fm.putfile(ctx.bucket, key, path)
    assert_sdk_ok(ret, resp, "putfile with a non-ASCII key (signed over the decoded key)")
    assert_stored(ctx, key, data, None, "unicode key")
    out = tmp_path / "o.bin"
    ret, resp = fm.download_file(ctx.bucket, key, str(out))
    assert_sdk_ok(ret, resp, "download_file unicode key")
    assert out.read_bytes() == data
    ret, resp = fm.getfilelist(ctx.bucket, prefix="smoke/", limit=10)
    assert_sdk_ok(ret, resp, "getfilelist")
    assert [d["FileName"] for d in ret["DataSet"]] == [key], ret


def test_root_credentials_work(server, make_ufile, tmp_path):
    ctx = make_ufile(server, "localhost", root=True)
    data = os.urandom(777)
    ret, resp = ctx.fm().putfile(ctx.bucket, "root.bin", write(tmp_path / "root.bin", data))
    assert_sdk_ok(ret, resp, "putfile with the root key pair")
    assert_stored(ctx, "root.bin", data, None, "root")


# --------------------------------------------------------------------------
# shared with S3


def test_s3_objects_are_ufile_objects(uf, tmp_path):
    s3 = uf.s3()
    data = os.urandom(5 * MiB + 3)
    s3.put_object(Bucket=uf.bucket, Key="s3/obj.bin", Body=data, ContentType="application/x-from-s3")
    resp = sdk_head(uf, "s3/obj.bin")
    assert resp.etag == quoted(ufile_etag(data)), f"UFile HEAD of an S3-written object: ETag {resp.etag!r}"
    assert resp.content_type == "application/x-from-s3"
    local = write(tmp_path / "obj.bin", data)
    assert uf.fm().compare_file_etag(uf.bucket, "s3/obj.bin", local) is True
    out = tmp_path / "dl.bin"
    ret, resp = uf.fm().download_file(uf.bucket, "s3/obj.bin", str(out))
    assert_sdk_ok(ret, resp, "download of an S3-written object")
    assert out.read_bytes() == data
    ret, resp = uf.fm().getfilelist(uf.bucket, prefix="s3/")
    assert_sdk_ok(ret, resp, "getfilelist")
    assert [d["FileName"] for d in ret["DataSet"]] == ["s3/obj.bin"], ret
    # UFile delete is visible in S3
    ret, resp = uf.fm().deletefile(uf.bucket, "s3/obj.bin")
    assert ret is not None, f"deletefile: HTTP {resp.status_code}"
    assert_no_s3_object(uf, "s3/obj.bin", what="UFile delete of an S3 object")


def test_s3_multipart_object_has_content_defined_ufile_etag(uf, tmp_path):
    """The ufile etag depends on the bytes only, not on how they were uploaded
    (here: S3 multipart with 5 MiB + 3 MiB parts)."""
    s3 = uf.s3()
    parts = [os.urandom(5 * MiB), os.urandom(3 * MiB)]
    data = b"".join(parts)
    up = s3.create_multipart_upload(Bucket=uf.bucket, Key="s3/mp.bin")
    etags = []
    for i, p in enumerate(parts, 1):
        etags.append(s3.upload_part(Bucket=uf.bucket, Key="s3/mp.bin", UploadId=up["UploadId"], PartNumber=i, Body=p)["ETag"])
    s3.complete_multipart_upload(
        Bucket=uf.bucket,
        Key="s3/mp.bin",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i} for i, e in enumerate(etags, 1)]},
    )
    resp = sdk_head(uf, "s3/mp.bin")
    assert resp.etag == quoted(ufile_etag(data)), f"UFile ETag of an S3 multipart object: {resp.etag!r}"
    assert uf.fm().compare_file_etag(uf.bucket, "s3/mp.bin", write(tmp_path / "mp.bin", data)) is True


# --------------------------------------------------------------------------
# multipart


@pytest.mark.parametrize("size", [4 * MiB, 4 * MiB + 1, 10 * MiB], ids=["4MiB", "4MiB+1", "10MiB"])
def test_multipart_uploadfile(uf, tmp_path, size):
    data = os.urandom(size)
    path = write(tmp_path / "big.bin", data)
    mp = uf.mp()
    ret, resp = mp.uploadfile(uf.bucket, "mp/big.bin", path, maxthread=4, retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, f"uploadfile {size} B")
    assert mp.blocksize == UFILE_BLOCK and type(mp.blocksize) is int, f"BlkSize {mp.blocksize!r}, expected int 4194304"
    assert len(mp.etaglist) == -(-size // UFILE_BLOCK), mp.etaglist
    assert all(mp.etaglist), f"a part answered without an ETag header: {mp.etaglist}"
    assert ret.get("Bucket") == uf.bucket and ret.get("Key") == "mp/big.bin", ret
    assert ret.get("FileSize") == size, f"finish FileSize: {ret}"
    assert resp.etag == quoted(ufile_etag(data)), f"finish ETag {resp.etag!r}, expected {quoted(ufile_etag(data))!r}"
    # (no Content-Type check: the SDK sends text/plain on init/finish and the
    # file mime only on the parts; the contract does not say which one wins)
    assert_stored(uf, "mp/big.bin", data, None, "multipart uploadfile")
    assert uf.fm().compare_file_etag(uf.bucket, "mp/big.bin", path) is True


def test_multipart_uploadfile_via_proxy_parallel_parts(server, make_ufile, tmp_path):
    ctx = make_ufile(server, "proxy")
    data = os.urandom(5 * UFILE_BLOCK + 12345)  # 6 parts, 4 at a time
    path = write(tmp_path / "video.mp4", data)
    mp = ctx.mp()
    ret, resp = mp.uploadfile(ctx.bucket, "mp/video.mp4", path, maxthread=4, retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, "uploadfile through HTTP_PROXY (absolute-form requests)")
    assert ret.get("FileSize") == len(data), ret
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored(ctx, "mp/video.mp4", data, None, "multipart via proxy")


def test_multipart_uploadstream(uf_mode):
    ctx = uf_mode
    data = os.urandom(9 * MiB + 5)
    mp = ctx.mp()
    ret, resp = mp.uploadstream(
        ctx.bucket, "mp/stream.bin", io.BytesIO(data), maxthread=4, retrycount=1, retryinterval=0, mime_type="application/x-chuan"
    )
    assert_sdk_ok(ret, resp, "uploadstream")
    assert ret.get("FileSize") == len(data), ret
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored(ctx, "mp/stream.bin", data, None, "uploadstream")


def test_multipart_raw_protocol(uf):
    """Init / part / finish on the wire: JSON shapes, BlkSize, ETag headers,
    finish body = the part ETags verbatim (quotes included), comma-joined."""
    key = "mp/raw.bin"
    r = uf.raw("POST", key, query="uploads", content_type="text/plain", data=b"")
    assert r.status_code == 200, f"init: HTTP {r.status_code} {r.text[:300]}"
    assert (r.headers.get("Content-Type") or "").startswith("application/json"), r.headers
    init = r.json()
    assert isinstance(init.get("UploadId"), str) and init["UploadId"], init
    assert init.get("BlkSize") == UFILE_BLOCK and type(init["BlkSize"]) is int, init
    assert init.get("Bucket") == uf.bucket and init.get("Key") == key, init
    upload_id = init["UploadId"]

    parts = [os.urandom(UFILE_BLOCK), os.urandom(UFILE_BLOCK), os.urandom(100)]
    etags = [None] * len(parts)
    for n in (2, 0, 1):  # out of order, as parallel parts arrive
        pr = uf.raw(
            "PUT", key, query=f"uploadId={upload_id}&partNumber={n}", content_type="application/octet-stream", data=parts[n]
        )
        assert pr.status_code == 200, f"part {n}: HTTP {pr.status_code} {pr.text[:300]}"
        etags[n] = pr.headers.get("ETag")
        assert etags[n], f"part {n}: no ETag header: {dict(pr.headers)}"
    body = ",".join(etags)
    fr = uf.raw("POST", key, query=f"uploadId={upload_id}", content_type="text/plain", data=body.encode())
    assert fr.status_code == 200, f"finish: HTTP {fr.status_code} {fr.text[:300]}"
    data = b"".join(parts)
    fin = fr.json()
    assert fin.get("Bucket") == uf.bucket and fin.get("Key") == key and fin.get("FileSize") == len(data), fin
    assert fr.headers.get("ETag") == quoted(ufile_etag(data)), fr.headers
    assert_stored(uf, key, data, None, "raw multipart")


def test_init_resume_and_list_parts(uf, tmp_path):
    """3.2.11: init_multipart_upload, one part lands (the rest 'failed'),
    get_multi_upload_part lists it, resumeuploadstream continues sequentially
    from part 1 (URLs from the global suffix, Content-Type
    application/octec-stream) and finishes."""
    data = os.urandom(2 * UFILE_BLOCK + 777)
    key = "mp/resumed.bin"
    mp = uf.mp()
    ret, resp = mp.init_multipart_upload(uf.bucket, key, upload_suffix=uf.suffix)
    assert_sdk_ok(ret, resp, "init_multipart_upload")
    assert mp.uploadid and mp.blocksize == UFILE_BLOCK, (mp.uploadid, mp.blocksize)

    pr = uf.raw(
        "PUT", key, query=f"uploadId={mp.uploadid}&partNumber=0", content_type="application/octec-stream", data=data[:UFILE_BLOCK]
    )
    assert pr.status_code == 200 and pr.headers.get("ETag"), f"part 0: HTTP {pr.status_code} {pr.text[:300]}"
    etag0 = pr.headers["ETag"]

    lister = uf.mp()
    ret, resp = lister.get_multi_upload_part(uf.bucket, mp.uploadid, upload_suffix=uf.suffix)
    assert_sdk_ok(ret, resp, "get_multi_upload_part")
    assert ret.get("RetCode") == 0 and ret.get("UploadId") == mp.uploadid, ret
    assert ret.get("Key") == key and ret.get("Bucket") == uf.bucket, ret
    parts = ret.get("Parts")
    assert isinstance(parts, list) and len(parts) == 1, ret
    assert parts[0].get("PartNumber") == 0, ret
    assert str(parts[0].get("ETag", "")).strip('"') == etag0.strip('"'), (parts, etag0)
    # The spec's shape (§20) alongside: Action, Status 0 (not complete), PartNum and Etag.
    assert ret.get("Action") == "GetMultiUploadPartResponse" and ret.get("Status") == 0, ret
    assert parts[0].get("PartNum") == 0 and parts[0].get("Etag") == parts[0].get("ETag"), ret
    assert int(parts[0].get("Size", -1)) == UFILE_BLOCK, ret
    assert ret.get("IsTruncated") is False, ret

    stream = io.BytesIO(data)
    stream.seek(UFILE_BLOCK)
    ret, resp = mp.resumeuploadstream(
        retrycount=1, retryinterval=0, bucket=uf.bucket, key=key, uploadid=mp.uploadid,
        blocksize=UFILE_BLOCK, etaglist=[etag0], stream=stream, pausepartnumber=1,
    )
    assert_sdk_ok(ret, resp, "resumeuploadstream")
    assert ret.get("FileSize") == len(data), ret
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored(uf, key, data, None, "resumed multipart")


def test_upload_part_copy(uf, tmp_path):
    src = os.urandom(UFILE_BLOCK + 2 * MiB)
    ret, resp = uf.fm().putfile(uf.bucket, "src/part-copy.bin", write(tmp_path / "s.bin", src))
    assert_sdk_ok(ret, resp, "putfile source")
    mp = uf.mp()
    ret, resp = mp.init_multipart_upload(uf.bucket, "dst/part-copy.bin", upload_suffix=uf.suffix)
    assert_sdk_ok(ret, resp, "init_multipart_upload")
    # SDK bug (spec §1.4): the range sent is bytes=offset-(size-1), so pass
    # size = offset + length to get the intended range.
    ret, resp = mp.upload_part_copy(uf.bucket, "src/part-copy.bin", "application/octet-stream", 0, UFILE_BLOCK, 0, upload_suffix=uf.suffix)
    assert_sdk_ok(ret, resp, "upload_part_copy part 0 (X-Ufile-Copy-Source-Range: bytes=0-4194303)")
    ret, resp = mp.upload_part_copy(
        uf.bucket, "src/part-copy.bin", "application/octet-stream", UFILE_BLOCK, len(src), 1, upload_suffix=uf.suffix
    )
    assert_sdk_ok(ret, resp, "upload_part_copy part 1")
    assert len(mp.etaglist) == 2 and all(mp.etaglist), mp.etaglist
    # finish_upload re-sends the headers of the copy (X-Ufile-Copy-Source*), as the SDK does
    ret, resp = mp.finish_upload()
    assert_sdk_ok(ret, resp, "finish after upload_part_copy (request still carries X-Ufile-Copy-Source headers)")
    assert ret.get("FileSize") == len(src), ret
    assert resp.etag == quoted(ufile_etag(src))
    assert_stored(uf, "dst/part-copy.bin", src, None, "part copy")


# --------------------------------------------------------------------------
# etag comparison


@pytest.mark.parametrize("how", ["putfile", "multipart"])
@pytest.mark.parametrize("size_id", list(SIZES))
def test_compare_file_etag(uf, tmp_path, size_id, how):
    size = SIZES[size_id]
    data = os.urandom(size)
    path = write(tmp_path / "f.bin", data)
    key = f"cmp/{size_id}.bin"
    if how == "putfile":
        ret, resp = uf.fm().putfile(uf.bucket, key, path)
    else:
        ret, resp = uf.mp().uploadfile(uf.bucket, key, path, maxthread=4, retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, f"{how} {size} B")
    assert resp.etag == quoted(ufile_etag(data)), f"{how} {size} B: ETag {resp.etag!r}, expected {quoted(ufile_etag(data))!r}"
    assert uf.fm().compare_file_etag(uf.bucket, key, path) is True, f"compare_file_etag False after {how} of {size} B"
    assert uf.s3_bytes(key) == data


# --------------------------------------------------------------------------
# downloads


def test_download_ranges(uf_mode, tmp_path):
    ctx = uf_mode
    data = os.urandom(MiB + 99)
    size = len(data)
    ret, resp = ctx.fm().putfile(ctx.bucket, "dl/r.bin", write(tmp_path / "r.bin", data))
    assert_sdk_ok(ret, resp, "putfile")
    fm = ctx.fm()
    for a, z in [(0, 0), (100, 4095), (size - 10, size - 1), (0, size - 1)]:
        out = tmp_path / f"r-{a}-{z}"
        ret, resp = fm.download_file(ctx.bucket, "dl/r.bin", str(out), content_range=(a, z))
        assert_sdk_ok(ret, resp, f"download_file range {a}-{z}", statuses=(206,))
        assert resp.content_range == (a, z), f"Content-Range parsed by the SDK: {resp.content_range}"
        assert out.read_bytes() == data[a : z + 1]
    # exact header format, with a presigned URL and Range
    url = fm.private_download_url(ctx.bucket, "dl/r.bin")
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=60)
    assert r.status_code == 206, f"HTTP {r.status_code} {r.text[:200]}"
    assert r.headers.get("Content-Range") == f"bytes 10-19/{size}", r.headers
    assert r.content == data[10:20]


def test_private_download_url_with_raw_plus_slash_equals(uf, tmp_path):
    data = os.urandom(2000)
    key = "dl/presigned.bin"
    ret, resp = uf.fm().putfile(uf.bucket, key, write(tmp_path / "p.bin", data))
    assert_sdk_ok(ret, resp, "putfile")
    fm = uf.fm()
    seen = set()
    for expires in range(300, 600):
        url = fm.private_download_url(uf.bucket, key, expires=expires)
        sig = url.rsplit("Signature=", 1)[1]
        chars = {c for c in "+/" if c in sig}
        if not chars - seen:
            continue
        seen |= chars
        assert sig.endswith("="), url
        r = requests.get(url, timeout=60)
        assert r.status_code == 200, f"presigned URL with raw {sorted(chars)} in Signature: HTTP {r.status_code} {r.text[:300]}"
        assert r.content == data
        if seen == {"+", "/"}:
            break
    assert seen == {"+", "/"}, f"could not produce signatures with raw + and /: {seen}"
    # the percent-encoded form download_file uses
    r = requests.get(uf.presigned_url(key, int(time.time()) + 120, quote_sig=True), timeout=60)
    assert r.status_code == 200 and r.content == data, f"%-encoded Signature: HTTP {r.status_code} {r.text[:300]}"


def test_presigned_url_refusals(uf, tmp_path):
    key = "dl/guarded.bin"
    uf.put_bytes(key, b"secret bytes")
    now = int(time.time())
    # expired
    r = requests.get(uf.presigned_url(key, now - 10), timeout=30)
    assert_ufile_error(r, (401, 403), "expired presigned URL")
    # signature for another key
    sig = presign_signature(uf.private_key, uf.bucket, "dl/other.bin", now + 300)
    r = requests.get(uf.url(key, query=f"UCloudPublicKey={quote(uf.public_key, safe='')}&Expires={now + 300}&Signature={quote(sig, safe='')}"), timeout=30)
    assert_ufile_error(r, (401, 403), "presigned URL signed for another key")
    # Expires changed after signing
    url = uf.presigned_url(key, now + 300)
    r = requests.get(url.replace(f"Expires={now + 300}", f"Expires={now + 3000}"), timeout=30)
    assert_ufile_error(r, (401, 403), "presigned URL with a modified Expires")


# --------------------------------------------------------------------------
# listings


def test_getfilelist_paging(uf_mode):
    ctx = uf_mode
    keys = sorted(f"list/k{i:02d}.txt" for i in range(7))
    contents = {}
    for k in keys:
        contents[k] = os.urandom(10 + len(contents))
        ctx.put_bytes(k, contents[k], "text/plain")
    ctx.put_bytes("other/x.txt", b"x", "text/plain")

    fm = ctx.fm()
    got, marker, pages = [], "", 0
    while True:
        ret, resp = fm.getfilelist(ctx.bucket, prefix="list/", marker=marker, limit=3)
        assert_sdk_ok(ret, resp, f"getfilelist page {pages}")
        pages += 1
        assert ret.get("BucketName") == ctx.bucket, ret
        assert "BucketId" in ret and "NextMarker" in ret, ret
        ds = ret.get("DataSet")
        assert isinstance(ds, list) and len(ds) <= 3, ret
        for item in ds:
            name = item["FileName"]
            data = contents[name]
            assert item.get("BucketName") == ctx.bucket, item
            assert item.get("Size") == len(data), item
            assert str(item.get("Hash", "")).strip('"') == ufile_etag(data), item
            assert item.get("MimeType") == "text/plain", item
            for f in ("CreateTime", "ModifyTime"):
                assert isinstance(item.get(f), int) and abs(item[f] - time.time()) < 3600, item
        got.extend(i["FileName"] for i in ds)
        marker = ret["NextMarker"]
        if not marker:
            break
        assert pages < 10, f"no end of listing after {pages} pages: {got}"
    assert got == keys, f"paged getfilelist: {got}"
    assert pages >= 3, f"7 keys at limit=3 took only {pages} page(s)"


def test_listobjects_prefix_delimiter(uf_mode):
    ctx = uf_mode
    files = ["p/a.txt", "p/b.txt", "p/d1/x", "p/d1/y", "p/d2/z", "q/other"]
    for k in files:
        ctx.put_bytes(k, k.encode(), "text/plain")
    fm = ctx.fm()
    ret, resp = fm.listobjects(ctx.bucket, prefix="p/", marker="", maxkeys=100, delimiter="/")
    assert_sdk_ok(ret, resp, "listobjects delimiter=/")
    assert ret.get("Name") == ctx.bucket and ret.get("Prefix") == "p/" and ret.get("Delimiter") == "/", ret
    assert str(ret.get("MaxKeys")) == "100", ret
    assert ret.get("IsTruncated") is False, ret
    assert [c["Key"] for c in ret["Contents"]] == ["p/a.txt", "p/b.txt"], ret
    assert [c["Prefix"] for c in ret["CommonPrefixes"]] == ["p/d1/", "p/d2/"], ret
    for c in ret["Contents"]:
        assert c.get("Etag") == quoted(ufile_etag(c["Key"].encode())), f"listobjects Etag must be the quoted ufile etag: {c}"
        assert int(c.get("Size")) == len(c["Key"]), c
        assert c.get("MimeType") == "text/plain", c
        for f in ("LastModified", "CreateTime", "StorageClass", "UserMeta"):
            assert f in c, f"Contents item lacks {f}: {c}"

    # no delimiter: everything under the prefix, flat
    ret, resp = fm.listobjects(ctx.bucket, prefix="p/", marker="", maxkeys=100, delimiter="")
    assert_sdk_ok(ret, resp, "listobjects delimiter=''")
    assert [c["Key"] for c in ret["Contents"]] == files[:5], ret
    assert not ret.get("CommonPrefixes"), ret


def test_listobjects_paging(uf):
    files = ["p/a.txt", "p/b.txt", "p/d1/x", "p/d1/y", "p/d2/z", "p/e.txt"]
    for k in files:
        uf.put_bytes(k, b"1")
    fm = uf.fm()
    for delimiter, want_keys, want_prefixes in [
        ("", files[:5] + ["p/e.txt"], []),
        ("/", ["p/a.txt", "p/b.txt", "p/e.txt"], ["p/d1/", "p/d2/"]),
    ]:
        keys, prefixes, marker, pages = [], [], "", 0
        while True:
            ret, resp = fm.listobjects(uf.bucket, prefix="p/", marker=marker, maxkeys=2, delimiter=delimiter)
            assert_sdk_ok(ret, resp, f"listobjects page {pages} delimiter={delimiter!r}")
            pages += 1
            n = len(ret.get("Contents") or []) + len(ret.get("CommonPrefixes") or [])
            assert n <= 2, f"max-keys=2 but {n} entries: {ret}"
            keys += [c["Key"] for c in ret.get("Contents") or []]
            prefixes += [c["Prefix"] for c in ret.get("CommonPrefixes") or []]
            if not ret.get("IsTruncated"):
                break
            marker = ret.get("NextMarker")
            assert marker, f"IsTruncated without NextMarker: {ret}"
            assert pages < 10, (keys, prefixes)
        assert sorted(keys) == sorted(want_keys) and len(keys) == len(set(keys)), (delimiter, keys)
        assert sorted(prefixes) == want_prefixes and len(prefixes) == len(set(prefixes)), (delimiter, prefixes)
        assert pages >= 2, f"delimiter={delimiter!r}: paging with max-keys=2 ended after one page"


# --------------------------------------------------------------------------
# metadata, copy, archive stubs


def test_opmeta_set_user_meta(uf):
    uf.put_bytes("meta/a.txt", b"abc", "text/plain")
    fm = uf.fm()
    ret, resp = fm.opMeta(uf.bucket, "meta/a.txt", "color", "blue")
    assert_sdk_ok(ret, resp, "opMeta set color=blue")
    head = uf.raw("HEAD", "meta/a.txt")
    assert head.status_code == 200, head.status_code
    header_val = {k.lower(): v for k, v in head.headers.items()}.get("x-ufile-meta-color")
    ret, resp = fm.listobjects(uf.bucket, prefix="meta/", marker="", maxkeys=10, delimiter="")
    assert_sdk_ok(ret, resp, "listobjects")
    user_meta = ret["Contents"][0].get("UserMeta") or {}
    from_list = {str(k).lower(): v for k, v in user_meta.items()}.get("color") if isinstance(user_meta, dict) else None
    assert header_val == "blue" or from_list == "blue", (
        f"opMeta color=blue is visible neither as X-Ufile-Meta-Color on HEAD ({dict(head.headers)}) "
        f"nor in listobjects UserMeta ({user_meta!r})"
    )
    # the object itself is unchanged
    assert uf.s3_bytes("meta/a.txt") == b"abc"
    assert sdk_head(uf, "meta/a.txt").etag == quoted(ufile_etag(b"abc"))


def test_opmeta_mimetype_sets_content_type(uf):
    """inspur-oss-api.md §25: op "set", metak "mimetype" sets the file's mimetype."""
    uf.put_bytes("meta/b.bin", b"abc", "application/octet-stream")
    ret, resp = uf.fm().opMeta(uf.bucket, "meta/b.bin", "mimetype", "text/x-chuan")
    assert_sdk_ok(ret, resp, "opMeta set mimetype")
    assert sdk_head(uf, "meta/b.bin").content_type == "text/x-chuan"
    assert uf.s3().head_object(Bucket=uf.bucket, Key="meta/b.bin")["ContentType"] == "text/x-chuan"


def test_copy_shares_content(server_factory, make_ufile, tmp_path):
    srv = server_factory()
    ctx = make_ufile(srv, "localhost")
    data = os.urandom(2 * MiB + 1)
    ret, resp = ctx.fm().putfile(ctx.bucket, "c/src.bin", write(tmp_path / "src.bin", data))
    assert_sdk_ok(ret, resp, "putfile")
    second = ctx.other(bucket=unique_name("uf2"))
    ctx.s3().create_bucket(Bucket=second.bucket)
    before = srv.admin_stats()
    fm = ctx.fm()
    ret, resp = fm.copy(ctx.bucket, "c/dst.bin", ctx.bucket, "c/src.bin")
    assert_sdk_ok(ret, resp, "copy (X-Ufile-Copy-Source) in the same bucket")
    ret, resp = fm.copy(second.bucket, "into/other-bucket.bin", ctx.bucket, "c/src.bin")
    assert_sdk_ok(ret, resp, "copy into another bucket of the tenant")
    after = srv.admin_stats()
    assert after["physical_bytes"] == before["physical_bytes"], f"copy stored the bytes again: {before} -> {after}"
    assert after["logical_bytes"] - before["logical_bytes"] == 2 * len(data), (before, after)
    assert_stored(ctx, "c/dst.bin", data, None, "copy")
    assert_stored(second, "into/other-bucket.bin", data, None, "copy to other bucket")


def test_copy_source_key_is_percent_decoded(uf):
    src = "c/中文 源+file.txt"
    uf.put_bytes(src, b"copy me", "text/plain")
    ret, resp = uf.fm().copy(uf.bucket, "c/copied.txt", uf.bucket, src)  # sends /bucket/<url-quoted key>
    assert_sdk_ok(ret, resp, "copy from a non-ASCII source key")
    assert uf.s3_bytes("c/copied.txt") == b"copy me"
    ret, resp = uf.fm().copy(uf.bucket, "c/none.txt", uf.bucket, "c/does-not-exist")
    assert_sdk_error(ret, resp, 404, "copy from a missing source")
    assert_no_s3_object(uf, "c/none.txt", what="failed copy")


def test_restore_and_class_switch_answer_success(uf):
    uf.put_bytes("arch/a.bin", b"cold")
    fm = uf.fm()
    ret, resp = fm.restore_file(uf.bucket, "arch/a.bin")
    assert_sdk_ok(ret, resp, "restore_file")
    for cls in ("IA", "ARCHIVE", "STANDARD"):
        ret, resp = fm.class_switch_file(uf.bucket, "arch/a.bin", cls)
        assert_sdk_ok(ret, resp, f"class_switch_file {cls}")
    assert uf.s3_bytes("arch/a.bin") == b"cold"


# --------------------------------------------------------------------------
# ufile 3.2.7: uploadhit and rename


def _hit(ctx: UFileCtx, key: str, path: str):
    return ctx.fm327().uploadhit(ctx.bucket, key, path)


def test_uploadhit_same_tenant_creates_object_without_body(server_factory, make_ufile, tmp_path):
    srv = server_factory()
    ctx = make_ufile(srv, "localhost")
    data = os.urandom(MiB + 5)
    path = write(tmp_path / "hit.bin", data)
    ret, resp = ctx.fm().putfile(ctx.bucket, "orig/hit.bin", path)
    assert_sdk_ok(ret, resp, "putfile")
    before = srv.admin_stats()
    ret, resp = _hit(ctx, "copy/hit.bin", path)
    assert_sdk_ok(ret, resp, "uploadhit of content the tenant holds")
    after = srv.admin_stats()
    assert after["physical_bytes"] == before["physical_bytes"], f"uploadhit stored bytes: {before} -> {after}"
    assert after["objects"] - before["objects"] == 1, (before, after)
    assert_stored(ctx, "copy/hit.bin", data, None, "uploadhit")


def test_uploadhit_content_first_uploaded_via_s3(uf, tmp_path):
    data = os.urandom(5 * MiB + 1)  # 2 ufile blocks
    uf.s3().put_object(Bucket=uf.bucket, Key="s3/orig.bin", Body=data)
    ret, resp = _hit(uf, "hit/from-s3.bin", write(tmp_path / "x.bin", data))
    assert_sdk_ok(ret, resp, "uploadhit of content uploaded with boto3")
    assert_stored(uf, "hit/from-s3.bin", data, None, "uploadhit after S3 upload")


def test_uploadhit_content_in_another_bucket_of_the_tenant(uf, tmp_path):
    data = os.urandom(300_000)
    other = unique_name("uf2")
    uf.s3().create_bucket(Bucket=other)
    uf.s3().put_object(Bucket=other, Key="elsewhere.bin", Body=data)
    ret, resp = _hit(uf, "hit/cross-bucket.bin", write(tmp_path / "x.bin", data))
    assert_sdk_ok(ret, resp, "uploadhit of content the tenant holds in another of its buckets")
    assert_stored(uf, "hit/cross-bucket.bin", data, None, "uploadhit across the tenant's buckets")


def test_uploadhit_miss_for_unknown_content(uf, tmp_path):
    data = os.urandom(12345)
    ret, resp = _hit(uf, "hit/unknown.bin", write(tmp_path / "u.bin", data))
    assert_sdk_error(ret, resp, 404, "uploadhit of unknown content")
    assert_no_s3_object(uf, "hit/unknown.bin", what="uploadhit miss")


def test_uploadhit_miss_for_another_tenants_content(server, make_ufile, tmp_path):
    a = make_ufile(server, "localhost")
    b = make_ufile(server, "localhost")
    data = os.urandom(700_000)
    path = write(tmp_path / "theirs.bin", data)
    a.put_bytes("mine.bin", data)
    a.s3().put_object(Bucket=a.bucket, Key="mine-s3.bin", Body=data)
    ret, resp = _hit(b, "stolen.bin", path)
    assert_sdk_error(ret, resp, 404, "uploadhit of content only ANOTHER tenant holds")
    assert_no_s3_object(b, "stolen.bin", what="cross-tenant uploadhit")
    # and the hit still works for the owner
    ret, resp = _hit(a, "again.bin", path)
    assert_sdk_ok(ret, resp, "uploadhit by the owner")


def test_uploadhit_raw_wrong_size_is_a_miss(uf):
    data = os.urandom(4096)
    uf.put_bytes("orig.bin", data)
    for size in (len(data) + 1, len(data) - 1):
        r = uf.raw(
            "POST", "uploadhit", sign_key="hit/wrong-size.bin",
            query=f"Hash={quote(ufile_etag(data), safe='')}&FileName=hit/wrong-size.bin&FileSize={size}",
            content_type="application/octet-stream", data=b"",
        )
        assert r.status_code != 200, f"uploadhit with FileSize {size} != {len(data)} was a hit"
        assert_ufile_error(r, (400, 404), f"uploadhit FileSize {size}")
    assert_no_s3_object(uf, "hit/wrong-size.bin", what="wrong-size uploadhit")
    r = uf.raw(
        "POST", "uploadhit", sign_key="hit/ok.bin",
        query=f"Hash={quote(ufile_etag(data), safe='')}&FileName=hit/ok.bin&FileSize={len(data)}",
        content_type="application/octet-stream", data=b"",
    )
    assert r.status_code == 200, f"raw uploadhit: HTTP {r.status_code} {r.text[:300]}"
    assert uf.s3_bytes("hit/ok.bin") == data


def test_uploadhit_raw_path_is_uploadhit_not_a_key(uf):
    """POST /uploadhit is the operation; a signed POST must be signed over
    /bucket/<FileName>, so a signature over /bucket/uploadhit is refused."""
    data = os.urandom(100)
    uf.put_bytes("o.bin", data)
    q = f"Hash={quote(ufile_etag(data), safe='')}&FileName=x.bin&FileSize={len(data)}"
    auth = authorization(uf.public_key, uf.private_key, string_to_sign("POST", uf.bucket, "uploadhit", content_type="text/plain"))
    r = uf.raw("POST", "uploadhit", query=q, headers={"Authorization": auth, "Content-Type": "text/plain"}, data=b"")
    assert_ufile_error(r, (401, 403), "uploadhit signed over /bucket/uploadhit instead of /bucket/FileName")
    assert_no_s3_object(uf, "x.bin", what="mis-signed uploadhit")


def test_rename(uf_mode):
    ctx = uf_mode
    fm = ctx.fm327()
    ctx.put_bytes("r/a.txt", b"AAA", "text/plain")
    ctx.put_bytes("r/b.txt", b"BBB", "text/plain")

    ret, resp = fm.rename(ctx.bucket, "r/a.txt", "r/a2.txt", force="false")
    assert_sdk_ok(ret, resp, "rename to a free key (force=false)")
    assert_no_s3_object(ctx, "r/a.txt", what="rename source")
    assert ctx.s3_bytes("r/a2.txt") == b"AAA"
    assert sdk_head(ctx, "r/a2.txt").etag == quoted(ufile_etag(b"AAA"))

    ret, resp = fm.rename(ctx.bucket, "r/a2.txt", "r/b.txt", force="false")
    assert_sdk_error(ret, resp, tuple(range(400, 500)), "rename force=false onto an existing key")
    assert ctx.s3_bytes("r/a2.txt") == b"AAA" and ctx.s3_bytes("r/b.txt") == b"BBB", "failed rename changed objects"

    ret, resp = fm.rename(ctx.bucket, "r/a2.txt", "r/b.txt", force="true")
    assert_sdk_ok(ret, resp, "rename onto an existing key with force=true")
    assert_no_s3_object(ctx, "r/a2.txt", what="forced rename source")
    assert ctx.s3_bytes("r/b.txt") == b"AAA"

    ret, resp = fm.rename(ctx.bucket, "r/missing.txt", "r/c.txt")
    assert_sdk_error(ret, resp, 404, "rename of a missing key")
    assert_no_s3_object(ctx, "r/c.txt", what="rename of a missing key")


# --------------------------------------------------------------------------
# errors


def test_wrong_signature(uf, tmp_path):
    data = b"x" * 10
    path = write(tmp_path / "w.txt", data)
    bad = uf.fm(private_key=uf.private_key + "x")
    ret, resp = bad.putfile(uf.bucket, "bad/w.txt", path)
    assert_sdk_error(ret, resp, (401, 403), "putfile with a wrong private key")
    assert_no_s3_object(uf, "bad/w.txt", what="wrongly signed putfile")
    ret, resp = bad.getfilelist(uf.bucket)
    assert_sdk_error(ret, resp, (401, 403), "getfilelist with a wrong private key")
    ret, resp = bad.listobjects(uf.bucket, prefix="", marker="", maxkeys=10, delimiter="/")
    assert_sdk_error(ret, resp, (401, 403), "listobjects with a wrong private key")
    ret, resp = uf.mp(private_key=uf.private_key + "x").uploadstream(
        uf.bucket, "bad/mp.bin", io.BytesIO(b"z" * 10), retrycount=1, retryinterval=0
    )
    assert_sdk_error(ret, resp, (401, 403), "multipart init with a wrong private key")

    r = uf.raw("PUT", "bad/raw.txt", data=data, content_type="text/plain", keys=(uf.public_key, "wrong-secret"))
    assert_ufile_error(r, (401, 403), "raw PUT with a wrong signature")
    # signed for another key / another content type / another method
    auth = authorization(uf.public_key, uf.private_key, string_to_sign("PUT", uf.bucket, "bad/other.txt", content_type="text/plain"))
    r = uf.raw("PUT", "bad/raw.txt", data=data, headers={"Authorization": auth, "Content-Type": "text/plain"})
    assert_ufile_error(r, (401, 403), "PUT signed over another key")
    auth = authorization(uf.public_key, uf.private_key, string_to_sign("PUT", uf.bucket, "bad/raw.txt", content_type="text/plain"))
    r = uf.raw("PUT", "bad/raw.txt", data=data, headers={"Authorization": auth, "Content-Type": "image/png"})
    assert_ufile_error(r, (401, 403), "PUT whose Content-Type differs from the signed one")
    auth = authorization(uf.public_key, uf.private_key, string_to_sign("DELETE", uf.bucket, "bad/raw.txt"))
    r = uf.raw("PUT", "bad/raw.txt", data=data, headers={"Authorization": auth})
    assert_ufile_error(r, (401, 403), "PUT with a DELETE signature")
    assert_no_s3_object(uf, "bad/raw.txt", what="wrongly signed raw PUTs")


def test_unknown_public_key_and_missing_authorization(uf_mode, tmp_path):
    uf = uf_mode
    path = write(tmp_path / "w.txt", b"0123")
    ret, resp = uf.fm(public_key="NO-SUCH-PUBLIC-KEY", private_key="whatever").putfile(uf.bucket, "bad/u.txt", path)
    assert_sdk_error(ret, resp, (401, 403), "putfile with an unknown public key")
    r = uf.raw("PUT", "bad/u.txt", data=b"0123", headers={"Authorization": "UCloud garbage", "Content-Type": "text/plain"})
    assert_ufile_error(r, (401, 403), "PUT with a malformed UCloud Authorization")
    r = uf.raw("PUT", "bad/u.txt", data=b"0123", content_type="text/plain", sign=False)
    assert_unsigned_refused(uf, r, (401, 403), "PUT without Authorization")
    assert_no_s3_object(uf, "bad/u.txt", what="unauthenticated PUTs")
    r = uf.raw("GET", "", query="list", sign=False)
    assert_unsigned_refused(uf, r, (401, 403), "unsigned ?list")


def test_missing_object(uf_mode, tmp_path):
    ctx = uf_mode
    fm = ctx.fm()
    ret, resp = fm.head_file(ctx.bucket, "nope/missing.bin")
    assert_sdk_error(ret, resp, 404, "head_file of a missing key", body=False)
    ret, resp = fm.download_file(ctx.bucket, "nope/missing.bin", str(tmp_path / "m"))
    assert_sdk_error(ret, resp, 404, "download_file of a missing key")
    assert not (tmp_path / "m").exists(), "download_file wrote an error body to the local file"
    r = requests.get(fm.private_download_url(ctx.bucket, "nope/missing.bin"), timeout=30)
    assert_ufile_error(r, 404, "presigned GET of a missing key")
    r = ctx.raw("HEAD", "nope/missing.bin")
    assert_ufile_error(r, 404, "HEAD of a missing key", body=False)
    ret, resp = fm.opMeta(ctx.bucket, "nope/missing.bin", "color", "red")
    assert_sdk_error(ret, resp, 404, "opMeta on a missing key")


def test_content_md5_mismatch_stores_nothing(uf):
    data = os.urandom(5000)
    r = uf.raw("PUT", "md5/bad.bin", data=data, content_type="application/octet-stream", content_md5=md5_hex(data + b"!"))
    assert_ufile_error(r, 400, "PUT whose Content-MD5 does not match the body")
    assert_no_s3_object(uf, "md5/bad.bin", what="Content-MD5 mismatch")
    # an existing object is left as it was
    uf.put_bytes("md5/keep.bin", b"original")
    r = uf.raw("PUT", "md5/keep.bin", data=data, content_type="application/octet-stream", content_md5=md5_hex(b"other"))
    assert_ufile_error(r, 400, "overwrite whose Content-MD5 does not match")
    assert uf.s3_bytes("md5/keep.bin") == b"original"
    # the correct hex MD5 is accepted
    r = uf.raw("PUT", "md5/good.bin", data=data, content_type="application/octet-stream", content_md5=md5_hex(data))
    assert r.status_code == 200, f"PUT with the correct hex Content-MD5: HTTP {r.status_code} {r.text[:300]}"
    assert uf.s3_bytes("md5/good.bin") == data


def _form(boundary: str, fields: list[tuple[str, str]], file: tuple[str, str, bytes] | None, close: bool = True) -> bytes:
    out = b""
    for name, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    if file is not None:
        fname, ctype, data = file
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fname}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode() if close else f"--{boundary}\r\n".encode()
    return out


def test_malformed_form_post(uf_mode):
    uf = uf_mode
    key = "form/bad.bin"
    auth = authorization(uf.public_key, uf.private_key, string_to_sign("POST", uf.bucket, key, content_type="application/octet-stream"))
    b = "b" + secrets.token_hex(8)
    ct = {"Content-Type": f"multipart/form-data; boundary={b}"}
    cases = {
        "no file part": _form(b, [("FileName", key), ("Authorization", auth)], None),
        "no FileName": _form(b, [("Authorization", auth)], ("x", "application/octet-stream", b"data")),
        "garbage body": os.urandom(200),
        "truncated inside the file part": _form(b, [("FileName", key), ("Authorization", auth)], ("x", "application/octet-stream", b"data"))[:-30],
    }
    for what, body in cases.items():
        r = uf.raw("POST", "", sign=False, headers=ct, data=body)
        if what == "garbage body":  # nothing in it says UFile
            assert_unsigned_refused(uf, r, (400,), f"malformed form POST ({what})")
        else:
            assert_ufile_error(r, 400, f"malformed form POST ({what})")
    r = uf.raw("POST", "", sign=False, headers={"Content-Type": "multipart/form-data"}, data=cases["no file part"])
    assert_unsigned_refused(uf, r, (400,), "form POST without a boundary parameter")
    assert_no_s3_object(uf, key, what="malformed forms")


def test_unknown_bucket(uf, tmp_path):
    nx = unique_name("nx")
    ret, resp = uf.fm().putfile(nx, "a.txt", write(tmp_path / "a.txt", b"a"))
    assert_sdk_error(ret, resp, (400, 404), "putfile into a bucket that does not exist")
    r = uf.raw("GET", "", bucket=nx, query="list")
    assert_ufile_error(r, (400, 404), "?list of a bucket that does not exist")
    r = uf.raw("HEAD", "a.txt", bucket=nx)
    assert_ufile_error(r, (400, 404), "HEAD in a bucket that does not exist", body=False)


def test_another_tenants_bucket_is_forbidden(server, make_ufile, tmp_path):
    a = make_ufile(server, "localhost")
    b = make_ufile(server, "localhost")
    a.put_bytes("private.bin", b"A's data")
    path = write(tmp_path / "b.txt", b"B's data")
    fm_b = b.fm()
    ret, resp = fm_b.putfile(a.bucket, "intrude.txt", path)
    assert_sdk_error(ret, resp, 403, "putfile into another tenant's bucket")
    assert_no_s3_object(a, "intrude.txt", what="cross-tenant putfile")
    ret, resp = fm_b.head_file(a.bucket, "private.bin")
    assert_sdk_error(ret, resp, 403, "head_file in another tenant's bucket", body=False)
    ret, resp = fm_b.download_file(a.bucket, "private.bin", str(tmp_path / "x"))
    assert_sdk_error(ret, resp, 403, "download_file from another tenant's bucket")
    ret, resp = fm_b.getfilelist(a.bucket)
    assert_sdk_error(ret, resp, 403, "getfilelist of another tenant's bucket")
    ret, resp = fm_b.deletefile(a.bucket, "private.bin")
    assert_sdk_error(ret, resp, 403, "deletefile in another tenant's bucket")
    ret, resp = fm_b.copy(b.bucket, "stolen.bin", a.bucket, "private.bin")
    assert_sdk_error(ret, resp, 403, "copy from another tenant's bucket")
    assert_no_s3_object(b, "stolen.bin", what="cross-tenant copy")
    ret, resp = b.mp().uploadstream(a.bucket, "mp.bin", io.BytesIO(b"z" * 10), retrycount=1, retryinterval=0)
    assert_sdk_error(ret, resp, 403, "multipart init in another tenant's bucket")
    assert a.s3_bytes("private.bin") == b"A's data"


def test_private_bucket_refuses_unsigned_get(uf_mode):
    uf = uf_mode
    uf.put_bytes("p.bin", b"private")
    r = uf.raw("GET", "p.bin", sign=False)
    assert_unsigned_refused(uf, r, (401, 403), "unsigned GET from a private bucket")
    ret, resp = uf.fm().download_file(uf.bucket, "p.bin", "/dev/null", isprivate=False)
    if uf.mode == "proxy":
        assert_sdk_error(ret, resp, (401, 403), "public download_file from a private bucket")
    else:  # unsigned via *.localhost: only the status is required (see assert_unsigned_refused)
        assert ret is None and resp.status_code in (401, 403), f"public download_file from a private bucket: HTTP {resp.status_code}"


# --------------------------------------------------------------------------
# management API (may not be implemented yet)


def _update_bucket(ctx: UFileCtx, typ: str) -> requests.Response:
    params = {"Action": "UpdateBucket", "BucketName": ctx.bucket, "Type": typ, "PublicKey": ctx.public_key}
    params["Signature"] = api_signature(params, ctx.private_key)
    return requests.post(ctx.server.endpoint + "/", params=params, timeout=30)


def test_mgmt_update_bucket_public_and_back(uf):
    """POST /?Action=UpdateBucket&BucketName=B&Type=public|private on the
    server's own address, signed like the UCloud API (PublicKey + SHA1
    Signature over the sorted parameters, as ufile's BucketManager does)."""
    uf.put_bytes("pub/hello.txt", b"hello public", "text/plain")
    r = _update_bucket(uf, "public")
    assert r.status_code == 200, f"UpdateBucket Type=public: HTTP {r.status_code} {r.text[:300]}"
    body = r.json()
    assert body.get("RetCode", body.get("Retcode")) == 0, body
    g = uf.raw("GET", "pub/hello.txt", sign=False)
    assert g.status_code == 200 and g.content == b"hello public", f"unsigned GET from a public bucket: HTTP {g.status_code} {g.text[:200]}"
    ret, resp = uf.fm().download_file(uf.bucket, "pub/hello.txt", "/dev/null", isprivate=False)
    assert_sdk_ok(ret, resp, "download_file(isprivate=False) from a public bucket")
    # writes still need a signature
    w = uf.raw("PUT", "pub/evil.txt", sign=False, data=b"x", content_type="text/plain")
    assert_unsigned_refused(uf, w, (401, 403), "unsigned PUT into a public bucket")
    # and back to private
    r = _update_bucket(uf, "private")
    assert r.status_code == 200 and r.json().get("RetCode", r.json().get("Retcode")) == 0, r.text[:300]
    g = uf.raw("GET", "pub/hello.txt", sign=False)
    assert_unsigned_refused(uf, g, (401, 403), "unsigned GET after Type=private")


def test_mgmt_update_bucket_refusals(server, make_ufile):
    a = make_ufile(server, "localhost")
    b = make_ufile(server, "localhost")
    a.put_bytes("k", b"v")
    r = _update_bucket(b.other(bucket=a.bucket), "public")
    assert r.status_code in (401, 403), f"UpdateBucket of another tenant's bucket: HTTP {r.status_code} {r.text[:300]}"
    params = {"Action": "UpdateBucket", "BucketName": a.bucket, "Type": "public", "PublicKey": a.public_key, "Signature": "0" * 40}
    r = requests.post(server.endpoint + "/", params=params, timeout=30)
    assert r.status_code in (401, 403), f"UpdateBucket with a bad signature: HTTP {r.status_code} {r.text[:300]}"
    g = a.raw("GET", "k", sign=False)
    assert g.status_code in (401, 403), f"bucket became public after refused UpdateBucket calls: HTTP {g.status_code}"
