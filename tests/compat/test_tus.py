"""tus 1.0.0 resumable uploads (/_chuan/tus/), with the real tuspy 1.1.0
client for the ordinary flows and raw `requests` / sockets for every rule.

Contract (tus 1.0.0, https://tus.io/protocols/resumable-upload, plus Chuan's
mapping onto buckets and objects):
* base URL /_chuan/tus/ (creation: POST there); Location /_chuan/tus/<id>;
* every request but OPTIONS: HTTP Basic with a key pair (tenant key pair or
  UFile scoped token): none / wrong -> 401, a token writing outside its scope
  -> 403; `Tus-Resumable: 1.0.0`, else 412 with Tus-Version; every answer
  carries `Tus-Resumable: 1.0.0`;
* OPTIONS -> 204, Tus-Version 1.0.0, Tus-Extension (creation,
  creation-with-upload, creation-defer-length, expiration, checksum,
  termination, concatenation [, checksum-trailer]), Tus-Max-Size,
  Tus-Checksum-Algorithm md5,sha1,sha256,crc32;
* Upload-Metadata: bucket (required), key else filename, filetype else
  contentType -> Content-Type, the rest -> x-amz-meta-*; malformed -> 400;
* creation: Upload-Length or Upload-Defer-Length: 1 (else 400), over
  Tus-Max-Size (CHUAN_TUS_MAX_SIZE) -> 413; creation-with-upload -> 201 +
  Upload-Offset;
* PATCH: Content-Type application/offset+octet-stream (else 415),
  Upload-Offset == current offset (else 409), past the length -> 413, -> 204
  + Upload-Offset; at offset == length the object exists at once;
* HEAD -> 200 Upload-Offset, Upload-Length | Upload-Defer-Length: 1,
  Upload-Metadata as sent, Cache-Control: no-store, Upload-Expires; unknown
  or another tenant's id -> 404;
* expiration (CHUAN_UPLOAD_TTL_SECS_TUS): expired -> 410, after GC -> 404;
* checksum: mismatch -> 460, unknown algorithm -> 400, offset unchanged;
* termination: DELETE -> 204, then 404;
* concatenation: partial / final (absolute or relative URLs), PATCH to a final
  -> 403, another tenant's partial -> 404, unfinished partial -> 400;
* instant upload: metadata `checksum` = `sha256 <base64>` of content the same
  tenant stores -> 201 with Upload-Offset == Upload-Length; another tenant's
  content -> an ordinary upload at offset 0 (no side channel);
* a PATCH cut mid-body keeps the bytes that arrived (unless it carried
  Upload-Checksum); two PATCHes at one offset: one 204, the other 409.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from compat_helpers import KiB, MiB, assert_no_object, get_body, md5_hex, unique_name
from tus_helpers import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    OCTET_OFFSET,
    TUS_PATH,
    TUS_VERSION,
    TusApi,
    auth_headers,
    basic,
    checksum_header,
    chunked,
    connect,
    create_scoped_token,
    describe,
    digest_b64,
    encode_metadata,
    expect,
    http_date,
    raw_exchange,
    read_response,
    request_head,
    send_cut_patch,
    tus_ctx,
    upload_path,
    uploads_count,
    wait_offset,
)


@pytest.fixture
def ctx(server):
    """A fresh tenant with one bucket on the shared server, and its tus client."""
    return tus_ctx(server)


def _assert_object(c, key: str, data: bytes, content_type: str | None = None, md5_etag: bool = False,
                   bucket: str | None = None) -> dict:
    bucket = bucket or c.bucket
    head = c.s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data), f"{key}: {head['ContentLength']} B, expected {len(data)}"
    if content_type is not None:
        assert head["ContentType"] == content_type, f"{key}: Content-Type {head['ContentType']!r}"
    if md5_etag:
        assert head["ETag"] == f'"{md5_hex(data)}"', f"{key}: ETag {head['ETag']}, expected MD5 {md5_hex(data)}"
    got = get_body(c.s3, bucket, key)
    assert got == data, f"{key}: stored bytes differ ({len(got)} B vs {len(data)} B)"
    return head


def _refused_creation(c, r: requests.Response, status, what: str, uploads_before: int,
                      tus_header: bool = True) -> None:
    expect(r, status, what, tus_header=tus_header)
    assert "Location" not in r.headers, f"{what}: a refused creation must not name an upload: {describe(r)}"
    assert uploads_count(c.server) == uploads_before, f"{what}: the refused creation left an upload behind"


# --------------------------------------------------------------------------
# discovery


def test_options_advertises_the_protocol(ctx):
    r = ctx.tus.options()  # no credentials, no Tus-Resumable
    expect(r, (200, 204), "OPTIONS /_chuan/tus/")
    assert r.status_code == 204, describe(r)
    versions = [v.strip() for v in r.headers.get("Tus-Version", "").split(",")]
    assert TUS_VERSION in versions, f"Tus-Version must list {TUS_VERSION}: {describe(r)}"
    ext = {e.strip() for e in r.headers.get("Tus-Extension", "").split(",")}
    missing = set(EXTENSIONS) - ext
    assert not missing, f"Tus-Extension lacks {sorted(missing)}: {describe(r)}"
    assert r.headers.get("Tus-Max-Size", "").isdigit() and int(r.headers["Tus-Max-Size"]) > 0, describe(r)
    algs = {a.strip() for a in r.headers.get("Tus-Checksum-Algorithm", "").split(",")}
    assert set(CHECKSUM_ALGORITHMS) <= algs, f"Tus-Checksum-Algorithm lacks some of {CHECKSUM_ALGORITHMS}: {describe(r)}"
    # The spec: the server MUST ignore Tus-Resumable on OPTIONS, whatever its value.
    r2 = ctx.tus.options(headers={"Tus-Resumable": "0.2.2"})
    assert r2.status_code == 204, f"OPTIONS with Tus-Resumable 0.2.2 must be answered as usual: {describe(r2)}"


# --------------------------------------------------------------------------
# tuspy 1.1.0: the ordinary flows


def _tuspy_client(c):
    from tusclient import client as tus_client

    return tus_client.TusClient(c.tus.base, headers={"Authorization": basic(*c.tenant.auth)})


def test_tuspy_whole_file(ctx, tmp_path):
    data = os.urandom(3 * MiB + 123)
    path = tmp_path / "whole.bin"
    path.write_bytes(data)
    meta = {"bucket": ctx.bucket, "key": "tuspy/whole.bin", "filetype": "image/png", "author": "Zhang San"}
    up = _tuspy_client(ctx).uploader(str(path), metadata=meta)
    up.upload()
    assert up.offset == len(data)
    assert urlsplit(up.url).path.startswith(TUS_PATH), up.url
    head = _assert_object(ctx, "tuspy/whole.bin", data, content_type="image/png")
    assert head["Metadata"].get("author") == "Zhang San", f"x-amz-meta-author missing: {head['Metadata']}"

    # The completed upload still answers HEAD (until it expires), with its metadata as sent.
    r = expect(ctx.tus.head(up.url), 200, "HEAD after completion")
    assert r.headers.get("Upload-Offset") == r.headers.get("Upload-Length") == str(len(data)), describe(r)
    assert r.headers.get("Upload-Metadata") == ",".join(up.encode_metadata()), describe(r)


def test_tuspy_chunks_and_checksums(ctx, tmp_path):
    data = os.urandom(MiB + 3 * 100 * KiB + 17)
    path = tmp_path / "chunks.bin"
    path.write_bytes(data)
    client = _tuspy_client(ctx)

    up = client.uploader(str(path), chunk_size=256 * KiB, metadata=ctx.meta("tuspy/chunked.bin"))
    up.upload()
    assert up.offset == len(data)
    _assert_object(ctx, "tuspy/chunked.bin", data)

    # upload_checksum=True: every PATCH carries `Upload-Checksum: sha1 <base64>`.
    up = client.uploader(str(path), chunk_size=300 * KiB, upload_checksum=True,
                         metadata=ctx.meta("tuspy/checksummed.bin", filetype="text/plain"))
    up.upload()
    assert up.offset == len(data)
    assert up.request._request_headers.get("upload-checksum", "").startswith("sha1 "), up.request._request_headers
    _assert_object(ctx, "tuspy/checksummed.bin", data, content_type="text/plain")


def test_tuspy_resume_with_stored_url(ctx, tmp_path):
    from tusclient.storage.filestorage import FileStorage

    data = os.urandom(2 * MiB + 5)
    path = tmp_path / "resume.bin"
    path.write_bytes(data)
    meta = ctx.meta("tuspy/resumed.bin")
    urls = tmp_path / "tus-urls.json"

    storage = FileStorage(str(urls))
    first = _tuspy_client(ctx).uploader(str(path), metadata=meta, store_url=True, url_storage=storage)
    stop = 700 * KiB + 1
    first.upload(stop_at=stop)
    assert first.offset == stop
    storage.close()
    assert_no_object(ctx.s3, ctx.bucket, "tuspy/resumed.bin")  # unfinished: invisible

    # A new process: the URL comes from the storage, the offset from HEAD.
    storage = FileStorage(str(urls))
    second = _tuspy_client(ctx).uploader(str(path), metadata=meta, store_url=True, url_storage=storage)
    assert second.url == first.url, "tuspy did not find the stored upload URL"
    assert second.offset == stop, f"resumed at {second.offset}, expected {stop}"
    second.upload()
    storage.close()
    assert second.offset == len(data)
    _assert_object(ctx, "tuspy/resumed.bin", data)


def test_single_patch_object_has_the_md5_etag(ctx):
    # Chuan's contract: an object written by one PATCH (or by the creation itself) has the
    # MD5 of its bytes as its ETag, as a single S3 PUT would.
    data = os.urandom(300 * KiB + 7)
    ctx.tus.upload(data, ctx.meta("etag/patch.bin"))
    _assert_object(ctx, "etag/patch.bin", data, md5_etag=True)
    expect(ctx.tus.create(len(data), ctx.meta("etag/creation.bin"), body=data), 201, "creation-with-upload")
    _assert_object(ctx, "etag/creation.bin", data, md5_etag=True)


def test_empty_upload_completes_at_creation(ctx, tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    up = _tuspy_client(ctx).uploader(str(path), metadata=ctx.meta("tuspy/empty.bin"))
    up.upload()  # only the POST: Upload-Length 0
    _assert_object(ctx, "tuspy/empty.bin", b"")
    # the same without tuspy, and with an empty creation-with-upload body
    ctx.tus.create_ok(0, ctx.meta("raw/empty.bin"))
    _assert_object(ctx, "raw/empty.bin", b"")
    expect(ctx.tus.create(0, ctx.meta("raw/empty-cwu.bin"), body=b""), 201, "empty creation-with-upload")
    _assert_object(ctx, "raw/empty-cwu.bin", b"")
    r = expect(ctx.tus.head(up.url), 200, "HEAD of an empty upload")
    assert r.headers.get("Upload-Offset") == r.headers.get("Upload-Length") == "0", describe(r)


# --------------------------------------------------------------------------
# credentials and protocol version


def test_credentials_are_required(ctx):
    t = ctx.tus
    data = os.urandom(1000)
    before = uploads_count(ctx.server)
    meta = ctx.meta("auth/x.bin")
    for auth, what in ((None, "no credentials"), ((t.auth[0], t.auth[1] + "x"), "wrong secret"),
                       (("NOSUCHACCESSKEY0000", "whatever"), "unknown access key")):
        _refused_creation(ctx, t.create(len(data), meta, auth=auth), 401, f"POST, {what}", before, tus_header=False)
    r = t.create(len(data), meta, headers={"Authorization": "Bearer abc"}, auth=None)
    _refused_creation(ctx, r, 401, "POST with a Bearer token", before, tus_header=False)

    url = t.create_ok(len(data), meta)
    t.patch_ok(url, 0, data[:100])
    for method in ("HEAD", "PATCH", "DELETE"):
        hdrs = {"Upload-Offset": "100", "Content-Type": OCTET_OFFSET} if method == "PATCH" else None
        body = data[100:] if method == "PATCH" else None
        r = t.request(method, url, headers=hdrs, data=body, auth=None)
        expect(r, 401, f"{method} without credentials", tus_header=False)
        assert "Upload-Offset" not in r.headers, f"{method} without credentials leaked the offset: {describe(r)}"
        r = t.request(method, url, headers=hdrs, data=body, auth=(t.auth[0], "wrong-secret"))
        expect(r, 401, f"{method} with a wrong secret", tus_header=False)
    assert t.offset(url) == 100, "a refused request changed the upload"
    t.patch_ok(url, 100, data[100:])
    _assert_object(ctx, "auth/x.bin", data)


def test_refusals_carry_tus_resumable(ctx):
    # "The Tus-Resumable header MUST be included in every request and response except for
    # OPTIONS requests": error answers too, 401 included.
    t = ctx.tus
    expect(t.create(10, ctx.meta("x.bin"), auth=None), 401, "POST without credentials")
    expect(t.head(t.base + "0" * 32, auth=("NOSUCHACCESSKEY0000", "x")), 401, "HEAD with an unknown key")
    expect(t.head(t.base + "0" * 32), 404, "HEAD of an unknown upload")
    expect(t.create(10, ctx.meta("x.bin"), tus=False), 412, "POST without Tus-Resumable")
    expect(t.create(10, "garbage ***"), 400, "POST with malformed metadata")


def test_tus_resumable_is_required(ctx):
    t = ctx.tus
    before = uploads_count(ctx.server)
    meta = ctx.meta("ver/x.bin")
    for value in (None, "0.2.2", "2.0.0"):
        hdrs = {} if value is None else {"Tus-Resumable": value}
        r = t.create(10, meta, headers=hdrs, tus=False)
        _refused_creation(ctx, r, 412, f"POST with Tus-Resumable {value}", before)
        assert TUS_VERSION in r.headers.get("Tus-Version", ""), f"412 must name Tus-Version: {describe(r)}"

    data = os.urandom(10)
    url = t.create_ok(10, meta)
    for method in ("HEAD", "PATCH", "DELETE"):
        hdrs = {"Upload-Offset": "0", "Content-Type": OCTET_OFFSET} if method == "PATCH" else {}
        r = t.request(method, url, headers=hdrs, data=data if method == "PATCH" else None, tus=False)
        expect(r, 412, f"{method} without Tus-Resumable")
        assert TUS_VERSION in r.headers.get("Tus-Version", ""), describe(r)
        hdrs["Tus-Resumable"] = "0.2.2"
        r = t.request(method, url, headers=hdrs, data=data if method == "PATCH" else None, tus=False)
        expect(r, 412, f"{method} with Tus-Resumable 0.2.2")
    assert t.offset(url) == 0, "a refused PATCH was applied"
    assert_no_object(ctx.s3, ctx.bucket, "ver/x.bin")
    t.patch_ok(url, 0, data)
    _assert_object(ctx, "ver/x.bin", data)


def test_scoped_token_writes_only_inside_its_scope(ctx):
    other_bucket = unique_name("tusother")
    ctx.s3.create_bucket(Bucket=other_bucket)
    pub, priv = create_scoped_token(ctx.server, ctx.tenant, ["TOKEN_ALLOW_READ", "TOKEN_ALLOW_WRITE"],
                                    buckets=[ctx.bucket], prefixes=["allowed/"])
    tok = TusApi(ctx.server, (pub, priv))
    before = uploads_count(ctx.server)
    data = os.urandom(4000)

    _refused_creation(ctx, tok.create(len(data), ctx.meta("elsewhere/x.bin")), 403, "key outside the prefix", before)
    _refused_creation(ctx, tok.create(len(data), {"bucket": other_bucket, "key": "allowed/x.bin"}), 403,
                      "bucket outside the token's buckets", before)
    _refused_creation(ctx, tok.create(len(data), {"bucket": ctx.bucket, "filename": "x.bin"}), 403,
                      "filename outside the prefix", before)

    url = tok.upload(data, ctx.meta("allowed/x.bin"))
    _assert_object(ctx, "allowed/x.bin", data)
    assert tok.offset(url) == len(data)

    ro_pub, ro_priv = create_scoped_token(ctx.server, ctx.tenant, ["TOKEN_ALLOW_READ"], buckets=[ctx.bucket])
    ro = TusApi(ctx.server, (ro_pub, ro_priv))
    before = uploads_count(ctx.server)
    _refused_creation(ctx, ro.create(len(data), ctx.meta("ro.bin")), 403, "read-only token", before)
    for key in ("elsewhere/x.bin", "x.bin", "ro.bin"):
        assert_no_object(ctx.s3, ctx.bucket, key)
    assert_no_object(ctx.s3, other_bucket, "allowed/x.bin")


def test_no_upload_into_another_tenants_bucket(server):
    a, b = tus_ctx(server), tus_ctx(server)
    before = uploads_count(server)
    r = b.tus.create(100, {"bucket": a.bucket, "key": "intruder.bin"})
    _refused_creation(b, r, (403, 404), "tenant B names tenant A's bucket", before)
    r = b.tus.create(100, {"bucket": unique_name("nosuch"), "key": "x.bin"})
    _refused_creation(b, r, (400, 403, 404), "a bucket that does not exist", before)
    assert_no_object(a.s3, a.bucket, "intruder.bin")


# --------------------------------------------------------------------------
# metadata


def test_metadata_maps_to_the_object(ctx):
    t = ctx.tus
    data = os.urandom(5000)
    # key wins over filename; filetype is the Content-Type; the rest is user metadata
    meta = {"bucket": ctx.bucket, "key": "dir/文件 name.bin", "filename": "ignored.bin",
            "filetype": "application/pdf", "project": "chuan"}
    url = t.upload(data, meta)
    head = _assert_object(ctx, "dir/文件 name.bin", data, content_type="application/pdf")
    assert head["Metadata"].get("project") == "chuan", head["Metadata"]
    assert_no_object(ctx.s3, ctx.bucket, "ignored.bin")
    r = expect(t.head(url), 200, "HEAD")
    assert r.headers.get("Upload-Metadata") == encode_metadata(meta), (
        f"HEAD must return Upload-Metadata as sent: {describe(r)}"
    )

    # filename when there is no key; contentType as the alternative to filetype
    t.upload(data, {"bucket": ctx.bucket, "filename": "by-filename.txt", "contentType": "text/csv"})
    _assert_object(ctx, "by-filename.txt", data, content_type="text/csv")

    # A key without a value is valid tus metadata (the spec: "the value MAY be empty ...
    # the space MAY be left out").
    raw = encode_metadata({"bucket": ctx.bucket, "key": "flag.bin"}) + ",is_confidential"
    url = t.create_ok(len(data), raw)
    t.patch_ok(url, 0, data)
    _assert_object(ctx, "flag.bin", data)
    r = expect(t.head(url), 200, "HEAD")
    assert r.headers.get("Upload-Metadata") == raw, describe(r)


def test_metadata_values_are_arbitrary_bytes(ctx):
    # "Since metadata can contain arbitrary binary values, Servers SHOULD carefully validate
    # metadata values or sanitize them before using them as header values to avoid header
    # smuggling": a pair that would become user metadata is either refused (400, nothing
    # created) or stored without ever reaching the object's headers raw.
    data = os.urandom(3000)
    for i, value in enumerate(["多字节 ✓", "\x00\xff\r\nX-Injected: 1"]):
        key = f"binary-meta-{i}.bin"
        raw = encode_metadata(ctx.meta(key)) + ",note " + base64.b64encode(value.encode("utf-8")).decode()
        before = uploads_count(ctx.server)
        r = ctx.tus.create(len(data), raw)
        if r.status_code == 400:
            _refused_creation(ctx, r, 400, f"metadata value {value!r}", before)
            assert_no_object(ctx.s3, ctx.bucket, key)
            continue
        url = ctx.tus.location(expect(r, 201, f"metadata value {value!r}"))
        ctx.tus.patch_ok(url, 0, data)
        head = _assert_object(ctx, key, data)
        assert "x-injected" not in {k.lower() for k in head["ResponseMetadata"]["HTTPHeaders"]}, "header smuggling"
        r = expect(ctx.tus.head(url), 200, "HEAD")
        assert r.headers.get("Upload-Metadata") == raw, describe(r)


@pytest.mark.parametrize(
    "case",
    ["no-bucket", "no-metadata", "bad-base64", "duplicate-key", "empty-key", "no-key-no-filename"],
)
def test_malformed_metadata_is_refused(ctx, case):
    good = encode_metadata({"bucket": ctx.bucket, "key": f"bad/{case}.bin"})
    raw = {
        "no-bucket": encode_metadata({"key": f"bad/{case}.bin"}),
        "no-metadata": None,
        "bad-base64": good + ",note !!!not*base64!!!",
        "duplicate-key": good + "," + encode_metadata({"key": "bad/other.bin"}),
        # An empty element between two commas: a pair whose key is empty. (A pair " dg==" is
        # not used: a server may read the space as optional whitespace after the comma.)
        "empty-key": good + ",," + encode_metadata({"note": "x"}),
        "no-key-no-filename": encode_metadata({"bucket": ctx.bucket, "filetype": "text/plain"}),
    }[case]
    before = uploads_count(ctx.server)
    r = ctx.tus.create(100, raw)
    _refused_creation(ctx, r, 400, f"Upload-Metadata {case}: {raw!r}", before)
    for key in (f"bad/{case}.bin", "bad/other.bin"):
        assert_no_object(ctx.s3, ctx.bucket, key)


# --------------------------------------------------------------------------
# creation


@pytest.mark.parametrize(
    "headers",
    [{}, {"Upload-Defer-Length": "0"}, {"Upload-Defer-Length": "2"}, {"Upload-Defer-Length": "yes"},
     {"Upload-Length": "-1"}, {"Upload-Length": "ten"}, {"Upload-Length": "1.5"}, {"Upload-Length": ""}],
    ids=["neither", "defer-0", "defer-2", "defer-yes", "negative", "word", "fraction", "empty"],
)
def test_creation_needs_a_length_or_deferral(ctx, headers):
    before = uploads_count(ctx.server)
    r = ctx.tus.create(meta=ctx.meta("len/x.bin"), headers=headers)
    _refused_creation(ctx, r, 400, f"POST with {headers}", before)


def test_max_size(server_factory):
    srv = server_factory(env={"CHUAN_TUS_MAX_SIZE": "1000"}, name="tusmax")
    c = tus_ctx(srv)
    r = c.tus.options()
    assert r.headers.get("Tus-Max-Size") == "1000", describe(r)
    before = uploads_count(srv)
    _refused_creation(c, c.tus.create(1001, c.meta("big.bin")), 413, "Upload-Length over Tus-Max-Size", before)
    data = os.urandom(1000)
    c.tus.upload(data, c.meta("max.bin"))
    _assert_object(c, "max.bin", data)

    # A deferred length over the maximum is refused when it is declared; nothing is stored.
    url = c.tus.create_ok(meta=c.meta("deferred.bin"), defer=True)
    c.tus.patch_ok(url, 0, data[:500])
    r = c.tus.patch(url, 500, data[500:], headers={"Upload-Length": "1001"})
    expect(r, (400, 413), "PATCH declaring Upload-Length over Tus-Max-Size")
    assert c.tus.offset(url) == 500
    # Bytes past the maximum on a deferred upload are refused as well.
    r = c.tus.patch(url, 500, os.urandom(600))
    expect(r, 413, "deferred upload growing past Tus-Max-Size")
    assert c.tus.offset(url) == 500
    assert_no_object(c.s3, c.bucket, "deferred.bin")


def test_creation_with_upload(ctx):
    t = ctx.tus
    data = os.urandom(300 * KiB + 11)
    r = expect(t.create(len(data), ctx.meta("cwu/whole.bin", filetype="video/mp4"), body=data), 201,
               "creation-with-upload, whole body")
    assert r.headers.get("Upload-Offset") == str(len(data)), describe(r)
    _assert_object(ctx, "cwu/whole.bin", data, content_type="video/mp4")

    r = expect(t.create(len(data), ctx.meta("cwu/part.bin"), body=data[:1000]), 201,
               "creation-with-upload, first part")
    assert r.headers.get("Upload-Offset") == "1000", describe(r)
    url = t.location(r)
    assert t.offset(url) == 1000
    assert_no_object(ctx.s3, ctx.bucket, "cwu/part.bin")
    t.patch_ok(url, 1000, data[1000:])
    _assert_object(ctx, "cwu/part.bin", data)

    # An empty body with the tus content type is a creation with nothing uploaded yet.
    r = expect(t.create(len(data), ctx.meta("cwu/empty-body.bin"), body=b""), 201, "creation-with-upload, 0 B")
    assert r.headers.get("Upload-Offset") == "0", describe(r)


def test_creation_with_upload_past_the_length_stores_nothing(ctx):
    # The body is refused as a whole (413), and the upload it was to start goes with it: no
    # Location, no session left behind, no object.
    before = uploads_count(ctx.server)
    r = ctx.tus.create(100, ctx.meta("cwu/over.bin"), body=os.urandom(150))
    _refused_creation(ctx, r, 413, "creation-with-upload with more bytes than Upload-Length", before)
    assert_no_object(ctx.s3, ctx.bucket, "cwu/over.bin")
    # A creation whose body fails its declared checksum is refused the same way.
    body = os.urandom(64)
    r = ctx.tus.create(100, ctx.meta("cwu/bad-sum.bin"), body=body,
                       headers={"Upload-Checksum": "sha1 " + base64.b64encode(b"\0" * 20).decode()})
    _refused_creation(ctx, r, 460, "creation-with-upload failing its Upload-Checksum", before)
    assert_no_object(ctx.s3, ctx.bucket, "cwu/bad-sum.bin")


def test_expiry_is_announced(ctx):
    # The spec (Expiration): "If the expiration is known at the creation, the Upload-Expires
    # header MUST be included in the response to the initial POST request" and "This header
    # MUST be included in every PATCH response if the upload is going to expire."
    r = expect(ctx.tus.create(10, ctx.meta("answers.bin")), 201, "POST")
    url = ctx.tus.location(r)
    assert "Upload-Expires" in r.headers, f"the creation must announce Upload-Expires: {describe(r)}"
    assert http_date(r.headers["Upload-Expires"]) > time.time()
    r = expect(ctx.tus.patch(url, 0, b"01234"), 204, "PATCH")
    assert "Upload-Expires" in r.headers, f"every PATCH answer must carry Upload-Expires: {describe(r)}"
    assert http_date(r.headers["Upload-Expires"]) > time.time()


# --------------------------------------------------------------------------
# PATCH


def test_patch_needs_the_tus_content_type(ctx):
    t = ctx.tus
    data = os.urandom(2000)
    url = t.create_ok(len(data), ctx.meta("ct.bin"))
    for ct in ("application/octet-stream", "text/plain", None):
        expect(t.patch(url, 0, data, content_type=ct), 415, f"PATCH with Content-Type {ct}")
    assert t.offset(url) == 0
    assert_no_object(ctx.s3, ctx.bucket, "ct.bin")
    t.patch_ok(url, 0, data)
    _assert_object(ctx, "ct.bin", data)


def test_patch_at_the_wrong_offset_conflicts(ctx):
    t = ctx.tus
    data = os.urandom(64 * KiB)
    url = t.create_ok(len(data), ctx.meta("off.bin"))
    expect(t.patch(url, 5, data[5:]), 409, "PATCH at 5 while the offset is 0")
    assert t.offset(url) == 0
    t.patch_ok(url, 0, data[:1000])
    for off in (0, 999, 1001):
        expect(t.patch(url, off, data[off:off + 10] or b"x"), 409, f"PATCH at {off} while the offset is 1000")
        assert t.offset(url) == 1000, f"a conflicting PATCH at {off} changed the upload"
    r = t.patch(url, None, data[1000:])
    expect(r, (400, 409), "PATCH without Upload-Offset")
    for bad in ("-1", "abc"):
        expect(t.patch(url, bad, data[1000:]), (400, 409), f"PATCH with Upload-Offset {bad}")
    assert t.offset(url) == 1000
    t.patch_ok(url, 1000, data[1000:])
    _assert_object(ctx, "off.bin", data)


def test_bytes_past_the_length_are_refused(ctx):
    t = ctx.tus
    data = os.urandom(100)
    url = t.create_ok(100, ctx.meta("over.bin"))
    expect(t.patch(url, 0, data + b"x" * 50), 413, "PATCH 150 B into a 100 B upload")
    assert t.offset(url) == 0
    t.patch_ok(url, 0, data[:60])
    expect(t.patch(url, 60, data[60:] + b"!"), 413, "PATCH 41 B at 60 of 100")
    assert t.offset(url) == 60
    assert_no_object(ctx.s3, ctx.bucket, "over.bin")

    # The same with a chunked body: the server only learns the size while reading.
    h = auth_headers(ctx.tenant.auth)
    h.update({"Content-Type": OCTET_OFFSET, "Upload-Offset": "60", "Transfer-Encoding": "chunked"})
    status, hdrs, _ = raw_exchange(ctx.server, "PATCH", upload_path(url), h,
                                   chunked(data[60:] + os.urandom(70000), 4096) + b"0\r\n\r\n")
    assert status == 413, f"chunked PATCH past the length: HTTP {status} {hdrs}"
    assert t.offset(url) == 60, "a refused chunked PATCH stored bytes"
    t.patch_ok(url, 60, data[60:])
    _assert_object(ctx, "over.bin", data)
    # A completed upload takes no more bytes.
    expect(t.patch(url, 100, b"more"), (403, 409, 413), "PATCH after completion")
    _assert_object(ctx, "over.bin", data)


def test_chunked_patch_and_empty_patch(ctx):
    t = ctx.tus
    data = os.urandom(200 * KiB + 3)
    url = t.create_ok(len(data), ctx.meta("chunked.bin"))
    h = auth_headers(ctx.tenant.auth)
    h.update({"Content-Type": OCTET_OFFSET, "Upload-Offset": "0", "Transfer-Encoding": "chunked"})
    status, hdrs, _ = raw_exchange(ctx.server, "PATCH", upload_path(url), h,
                                   chunked(data[:150 * KiB], 10000) + b"0\r\n\r\n")
    assert status == 204 and hdrs.get("upload-offset") == str(150 * KiB), f"chunked PATCH: {status} {hdrs}"
    # An empty PATCH changes nothing.
    r = expect(t.patch(url, 150 * KiB, b""), 204, "empty PATCH")
    assert r.headers.get("Upload-Offset") == str(150 * KiB), describe(r)
    t.patch_ok(url, 150 * KiB, data[150 * KiB:])
    _assert_object(ctx, "chunked.bin", data)


def test_x_http_method_override(ctx):
    # Core protocol: "The X-HTTP-Method-Override request header ... MUST be interpreted as the
    # request's method by the Server" (tus-js-client's overridePatchMethod sends POST + PATCH).
    t = ctx.tus
    data = os.urandom(3000)
    url = t.create_ok(len(data), ctx.meta("override.bin"))
    r = t.request("POST", url, headers={"X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0",
                                        "Content-Type": OCTET_OFFSET}, data=data)
    expect(r, 204, "POST with X-HTTP-Method-Override: PATCH")
    assert r.headers.get("Upload-Offset") == str(len(data)), describe(r)
    _assert_object(ctx, "override.bin", data)


# --------------------------------------------------------------------------
# HEAD


def test_head_reports_the_upload(ctx):
    t = ctx.tus
    data = os.urandom(10000)
    meta = ctx.meta("head.bin", filetype="text/plain", owner="x")
    url = t.create_ok(len(data), meta)
    t.patch_ok(url, 0, data[:4000])
    r = expect(t.head(url), 200, "HEAD")
    assert r.headers.get("Upload-Offset") == "4000", describe(r)
    assert r.headers.get("Upload-Length") == str(len(data)), describe(r)
    assert "Upload-Defer-Length" not in r.headers, describe(r)
    assert r.headers.get("Upload-Metadata") == encode_metadata(meta), describe(r)
    assert "no-store" in r.headers.get("Cache-Control", ""), describe(r)
    expires = http_date(r.headers.get("Upload-Expires", ""))
    assert expires > time.time(), f"Upload-Expires in the past: {describe(r)}"
    assert r.content == b"", "HEAD must not have a body"
    assert_no_object(ctx.s3, ctx.bucket, "head.bin")

    # Deferred length: Upload-Defer-Length: 1 and no Upload-Length.
    url2 = t.create_ok(meta=ctx.meta("head-deferred.bin"), defer=True)
    r = expect(t.head(url2), 200, "HEAD of a deferred upload")
    assert r.headers.get("Upload-Defer-Length") == "1", describe(r)
    assert "Upload-Length" not in r.headers and r.headers.get("Upload-Offset") == "0", describe(r)


def test_unknown_and_foreign_uploads_are_not_found(server):
    a, b = tus_ctx(server), tus_ctx(server)
    data = os.urandom(5000)
    url = a.tus.create_ok(len(data), a.meta("mine.bin"))
    a.tus.patch_ok(url, 0, data[:1000])

    for bogus, statuses in (("0" * 32, 404), ("no-such-upload", 404), ("..%2F..%2Fetc", (400, 404))):
        u = a.tus.base + bogus
        for method in ("HEAD", "PATCH", "DELETE"):
            hdrs = {"Upload-Offset": "0", "Content-Type": OCTET_OFFSET} if method == "PATCH" else None
            r = a.tus.request(method, u, headers=hdrs, data=b"x" if method == "PATCH" else None)
            expect(r, statuses, f"{method} of unknown upload {bogus}")
            assert "Upload-Offset" not in r.headers, describe(r)

    # Tenant B learns nothing about A's upload and cannot touch it.
    r = expect(b.tus.head(url), 404, "HEAD of another tenant's upload")
    assert "Upload-Offset" not in r.headers, describe(r)
    expect(b.tus.patch(url, 1000, data[1000:]), 404, "PATCH of another tenant's upload")
    expect(b.tus.delete(url), 404, "DELETE of another tenant's upload")
    assert a.tus.offset(url) == 1000
    a.tus.patch_ok(url, 1000, data[1000:])
    _assert_object(a, "mine.bin", data)


# --------------------------------------------------------------------------
# creation-defer-length


def test_deferred_length(ctx):
    t = ctx.tus
    data = os.urandom(700 * KiB + 9)
    url = t.create_ok(meta=ctx.meta("deferred/a.bin"), defer=True)
    t.patch_ok(url, 0, data[:300 * KiB])
    t.patch_ok(url, 300 * KiB, data[300 * KiB:600 * KiB])
    r = expect(t.head(url), 200, "HEAD")
    assert r.headers.get("Upload-Defer-Length") == "1" and "Upload-Length" not in r.headers, describe(r)
    assert_no_object(ctx.s3, ctx.bucket, "deferred/a.bin")
    # A declared length below what is already stored is refused.
    expect(t.patch(url, 600 * KiB, data[600 * KiB:], headers={"Upload-Length": str(500 * KiB)}), (400, 409, 413),
           "Upload-Length below the offset")
    assert t.offset(url) == 600 * KiB
    t.patch_ok(url, 600 * KiB, data[600 * KiB:], headers={"Upload-Length": str(len(data))})
    r = expect(t.head(url), 200, "HEAD after completion")
    assert r.headers.get("Upload-Length") == r.headers.get("Upload-Offset") == str(len(data)), describe(r)
    assert "Upload-Defer-Length" not in r.headers, describe(r)
    _assert_object(ctx, "deferred/a.bin", data)

    # The length may come with an empty last PATCH (tus-js-client does this for streams).
    url = t.create_ok(meta=ctx.meta("deferred/b.bin"), defer=True)
    t.patch_ok(url, 0, data)
    assert_no_object(ctx.s3, ctx.bucket, "deferred/b.bin")
    r = expect(t.patch(url, len(data), b"", headers={"Upload-Length": str(len(data))}), 204, "empty PATCH + length")
    assert r.headers.get("Upload-Offset") == str(len(data)), describe(r)
    _assert_object(ctx, "deferred/b.bin", data)

    # Once set, the length cannot change.
    url = t.create_ok(meta=ctx.meta("deferred/c.bin"), defer=True)
    t.patch_ok(url, 0, data[:1000], headers={"Upload-Length": "3000"})
    expect(t.patch(url, 1000, data[1000:2000], headers={"Upload-Length": "2500"}), (400, 409, 413),
           "changing a declared length")
    assert t.offset(url) == 1000
    t.patch_ok(url, 1000, data[1000:3000])
    _assert_object(ctx, "deferred/c.bin", data[:3000])


# --------------------------------------------------------------------------
# checksum


def test_checksums(ctx):
    t = ctx.tus
    data = os.urandom(6 * 64 * KiB)
    url = t.create_ok(len(data), ctx.meta("sum.bin"))
    step = 64 * KiB
    off = 0
    for alg in CHECKSUM_ALGORITHMS:
        chunk = data[off:off + step]
        off = t.patch_ok(url, off, chunk, checksum=checksum_header(alg, chunk))

    chunk = data[off:off + step]
    wrong = f"sha1 {digest_b64('sha1', chunk[:-1])}"
    r = expect(t.patch(url, off, chunk, checksum=wrong), 460, "PATCH with a wrong sha1")
    assert t.offset(url) == off, "a mismatching chunk was kept"
    for header in (f"sha512 {digest_b64('sha512', chunk)}", f"whirlpool {digest_b64('sha1', chunk)}"):
        expect(t.patch(url, off, chunk, checksum=header), 400, f"Upload-Checksum {header.split()[0]}")
        assert t.offset(url) == off, f"a chunk with checksum algorithm {header.split()[0]} was kept"
    for header in ("sha1", "sha1 not-base64!!", f"sha1 {digest_b64('md5', chunk)}"):
        r = t.patch(url, off, chunk, checksum=header)
        expect(r, (400, 460), f"malformed Upload-Checksum {header!r}")
        assert t.offset(url) == off
    assert_no_object(ctx.s3, ctx.bucket, "sum.bin")
    off = t.patch_ok(url, off, chunk, checksum=checksum_header("sha256", chunk))
    t.patch_ok(url, off, data[off:], checksum=checksum_header("md5", data[off:]))
    _assert_object(ctx, "sum.bin", data)


def test_checksum_trailer(ctx):
    r = ctx.tus.options()
    assert "checksum-trailer" in {e.strip() for e in r.headers.get("Tus-Extension", "").split(",")}, describe(r)
    t = ctx.tus
    data = os.urandom(100 * KiB + 1)
    url = t.create_ok(len(data), ctx.meta("trailer.bin"))

    def trailer_patch(offset: int, body: bytes, checksum: str):
        h = auth_headers(ctx.tenant.auth)
        h.update({"Content-Type": OCTET_OFFSET, "Upload-Offset": str(offset), "Transfer-Encoding": "chunked",
                  "Trailer": "Upload-Checksum"})
        payload = chunked(body, 8192) + f"0\r\nUpload-Checksum: {checksum}\r\n\r\n".encode()
        return raw_exchange(ctx.server, "PATCH", upload_path(url), h, payload)

    half = data[:50 * KiB]
    # Announced but never sent: refused, nothing stored.
    h = auth_headers(ctx.tenant.auth)
    h.update({"Content-Type": OCTET_OFFSET, "Upload-Offset": "0", "Transfer-Encoding": "chunked",
              "Trailer": "Upload-Checksum"})
    status, hdrs, _ = raw_exchange(ctx.server, "PATCH", upload_path(url), h, chunked(half, 8192) + b"0\r\n\r\n")
    assert status == 400, f"announced trailer missing: {status} {hdrs}"
    assert t.offset(url) == 0
    status, hdrs, _ = trailer_patch(0, half, checksum_header("sha1", half[1:]))
    assert status == 460, f"trailer with a wrong checksum: {status} {hdrs}"
    assert t.offset(url) == 0
    status, hdrs, _ = trailer_patch(0, half, checksum_header("sha1", half))
    assert status == 204 and hdrs.get("upload-offset") == str(len(half)), f"trailer checksum: {status} {hdrs}"
    status, hdrs, _ = trailer_patch(len(half), data[len(half):], checksum_header("crc32", data[len(half):]))
    assert status == 204, f"trailer crc32: {status} {hdrs}"
    _assert_object(ctx, "trailer.bin", data)


# --------------------------------------------------------------------------
# termination


def test_termination(ctx):
    t = ctx.tus
    data = os.urandom(50 * KiB)
    url = t.create_ok(len(data), ctx.meta("term.bin"))
    t.patch_ok(url, 0, data[:20 * KiB])
    expect(t.delete(url), 204, "DELETE")
    r = expect(t.head(url), (404, 410), "HEAD after DELETE")
    assert r.status_code == 404, describe(r)
    expect(t.patch(url, 20 * KiB, data[20 * KiB:]), (404, 410), "PATCH after DELETE")
    expect(t.delete(url), (404, 410), "second DELETE")
    assert_no_object(ctx.s3, ctx.bucket, "term.bin")


# --------------------------------------------------------------------------
# expiration


def test_expiration(server_factory):
    srv = server_factory(env={"CHUAN_UPLOAD_TTL_SECS_TUS": "2"}, name="tusttl")
    c = tus_ctx(srv)
    data = os.urandom(4000)
    t0 = time.time()
    open_url = c.tus.create_ok(len(data), c.meta("open.bin"))
    c.tus.patch_ok(open_url, 0, data[:1000])
    done_url = c.tus.upload(data, c.meta("done.bin"))
    r = expect(c.tus.head(open_url), 200, "HEAD before expiry")
    expires = http_date(r.headers.get("Upload-Expires", ""))
    assert t0 - 1 <= expires <= time.time() + 3, f"Upload-Expires {r.headers['Upload-Expires']} is not ~2 s away"
    r = expect(c.tus.head(done_url), 200, "HEAD of a completed upload before expiry")
    assert r.headers.get("Upload-Offset") == r.headers.get("Upload-Length") == str(len(data)), describe(r)

    time.sleep(3.5)
    expect(c.tus.head(open_url), 410, "HEAD of an expired upload (before GC)")
    expect(c.tus.patch(open_url, 1000, data[1000:]), 410, "PATCH of an expired upload")
    expect(c.tus.head(done_url), (404, 410), "HEAD of an expired completed upload")
    assert_no_object(c.s3, c.bucket, "open.bin")

    gc = srv.admin_gc(0)
    assert gc.get("uploads_expired", 0) >= 1, f"GC did not expire the tus upload: {gc}"
    expect(c.tus.head(open_url), 404, "HEAD of an expired upload after GC")
    expect(c.tus.head(done_url), 404, "HEAD of an expired completed upload after GC")
    assert srv.admin_stats()["uploads"] == 0
    _assert_object(c, "done.bin", data)  # the object outlives its upload


# --------------------------------------------------------------------------
# concatenation


def _partial(c, data: bytes, key: str = "parts/p.bin", complete: bool = True) -> str:
    url = c.tus.create_ok(len(data), c.meta(key), headers={"Upload-Concat": "partial"})
    if complete and data:
        c.tus.patch_ok(url, 0, data)
    return url


def test_concatenation(ctx):
    t = ctx.tus
    parts = [os.urandom(n) for n in (300 * KiB, 5, 1 * MiB + 3)]
    urls = [_partial(ctx, p, f"parts/{i}.bin") for i, p in enumerate(parts)]
    # absolute and path-absolute references
    refs = [urls[0], upload_path(urls[1]), urls[2]]
    r = t.create(meta=ctx.meta("concat/final.bin", filetype="text/plain"),
                 headers={"Upload-Concat": "final;" + " ".join(refs)})
    expect(r, 201, "final upload")
    final = t.location(r)
    whole = b"".join(parts)
    _assert_object(ctx, "concat/final.bin", whole, content_type="text/plain")
    r = expect(t.head(final), 200, "HEAD of the final upload")
    assert r.headers.get("Upload-Offset") == r.headers.get("Upload-Length") == str(len(whole)), describe(r)

    expect(t.patch(final, len(whole), b"more"), 403, "PATCH to a final upload")
    expect(t.patch(final, 0, b"x"), 403, "PATCH at 0 to a final upload")
    _assert_object(ctx, "concat/final.bin", whole)

    # The spec: partial uploads "MAY however be used multiple times to form a final resource".
    r = t.create(meta=ctx.meta("concat/reversed.bin"), headers={"Upload-Concat": f"final;{urls[2]} {urls[0]}"})
    if r.status_code == 201:
        _assert_object(ctx, "concat/reversed.bin", parts[2] + parts[0])


def test_concatenation_with_relative_path_references(ctx):
    # "The partial uploads URLs MAY be absolute or relative": a relative-path reference
    # ("<id>") resolves against the creation URL /_chuan/tus/.
    a = _partial(ctx, b"abc")
    b = _partial(ctx, b"defg")
    refs = [upload_path(u)[len(TUS_PATH):] for u in (a, b)]
    ctx.tus.create_ok(meta=ctx.meta("rel.bin"), headers={"Upload-Concat": "final;" + " ".join(refs)})
    _assert_object(ctx, "rel.bin", b"abcdefg")


def test_partials_are_not_objects(ctx):
    # The spec: "The Server SHOULD NOT process these partial uploads until they are concatenated".
    _partial(ctx, os.urandom(1000), "parts/lonely.bin")
    assert_no_object(ctx.s3, ctx.bucket, "parts/lonely.bin")


def test_concatenation_head_reports_upload_concat(ctx):
    # The spec: "Response to HEAD request against partial or final upload MUST include the
    # Upload-Concat header and its value as received in the upload creation request."
    a = _partial(ctx, b"hello")
    b = _partial(ctx, b" world")
    r = expect(ctx.tus.head(a), 200, "HEAD of a partial")
    assert r.headers.get("Upload-Concat") == "partial", describe(r)
    assert r.headers.get("Upload-Offset") == "5", describe(r)
    value = f"final;{a} {b}"
    final = ctx.tus.create_ok(meta=ctx.meta("hw.txt"), headers={"Upload-Concat": value})
    r = expect(ctx.tus.head(final), 200, "HEAD of the final")
    assert r.headers.get("Upload-Concat") == value, describe(r)
    _assert_object(ctx, "hw.txt", b"hello world")


def test_concatenation_refusals(server):
    a, b = tus_ctx(server), tus_ctx(server)
    mine = _partial(a, os.urandom(1000), "parts/a.bin")
    theirs = _partial(b, os.urandom(1000), "parts/b.bin")
    unfinished = _partial(a, os.urandom(1000), "parts/u.bin", complete=False)
    a.tus.patch_ok(unfinished, 0, os.urandom(10))
    regular = a.tus.upload(os.urandom(100), a.meta("regular.bin"))

    before = uploads_count(server)
    cases = [
        (f"final;{mine} {theirs}", 404, "another tenant's partial"),
        (f"final;{mine} {a.tus.base}{'0' * 32}", 404, "an unknown partial"),
        (f"final;{mine} {unfinished}", 400, "an unfinished partial"),
        (f"final;{mine} {regular}", (400, 404), "an upload that is not partial"),
        ("final;", 400, "no partials"),
        ("middle", 400, "neither partial nor final"),
    ]
    for value, status, what in cases:
        r = a.tus.create(meta=a.meta("concat/refused.bin"), headers={"Upload-Concat": value})
        _refused_creation(a, r, status, f"final with {what}", before)
        assert_no_object(a.s3, a.bucket, "concat/refused.bin")
    # The partials are untouched and still usable.
    assert a.tus.offset(unfinished) == 10
    r = expect(b.tus.head(theirs), 200, "HEAD of B's partial")
    assert r.headers.get("Upload-Offset") == "1000", describe(r)


# --------------------------------------------------------------------------
# instant upload (秒传) by declared checksum


def _declared(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_instant_upload_of_own_content(ctx):
    t = ctx.tus
    data = os.urandom(MiB + 77)
    ctx.s3.put_object(Bucket=ctx.bucket, Key="orig.bin", Body=data)
    stats0 = ctx.server.admin_stats()
    r = t.create(len(data), ctx.meta("instant/copy.bin", filetype="audio/ogg", checksum=_declared(data)))
    expect(r, 201, "creation declaring own content")
    assert r.headers.get("Upload-Offset") == str(len(data)), f"own content must complete at once: {describe(r)}"
    url = t.location(r)
    _assert_object(ctx, "instant/copy.bin", data, content_type="audio/ogg")
    r = expect(t.head(url), 200, "HEAD of the instant upload")
    assert r.headers.get("Upload-Offset") == r.headers.get("Upload-Length") == str(len(data)), describe(r)
    stats1 = ctx.server.admin_stats()
    assert stats1["physical_bytes"] == stats0["physical_bytes"], "an instant upload stored the bytes again"
    assert stats1["objects"] == stats0["objects"] + 1
    expect(t.patch(url, len(data), b"x"), (403, 409, 413), "PATCH to an instantly completed upload")

    # Right hash, wrong size: not a hit, an ordinary upload.
    r = expect(t.create(len(data) + 1, ctx.meta("instant/size.bin", checksum=_declared(data))), 201, "wrong size")
    assert r.headers.get("Upload-Offset", "0") == "0", describe(r)
    assert t.offset(t.location(r)) == 0
    assert_no_object(ctx.s3, ctx.bucket, "instant/size.bin")


def test_no_instant_upload_of_another_tenants_content(server):
    a, b = tus_ctx(server), tus_ctx(server)
    data = os.urandom(512 * KiB + 3)
    a.s3.put_object(Bucket=a.bucket, Key="secret.bin", Body=data)
    unknown = os.urandom(len(data))

    rk = expect(b.tus.create(len(data), b.meta("k.bin", checksum=_declared(data))), 201, "B declares A's content")
    ru = expect(b.tus.create(len(data), b.meta("u.bin", checksum=_declared(unknown))), 201,
                "B declares unknown content")
    volatile = {"location", "date", "upload-expires", "content-length"}
    shape = lambda r: sorted(k.lower() for k in r.headers if k.lower() not in volatile)  # noqa: E731
    assert shape(rk) == shape(ru), f"answers differ (side channel): {describe(rk)} vs {describe(ru)}"
    assert rk.headers.get("Upload-Offset", "0") == ru.headers.get("Upload-Offset", "0") == "0", (describe(rk),
                                                                                              describe(ru))
    kurl = b.tus.location(rk)
    assert b.tus.offset(kurl) == 0
    assert_no_object(b.s3, b.bucket, "k.bin")
    # B, who really has the bytes, uploads them normally.
    b.tus.patch_ok(kurl, 0, data)
    _assert_object(b, "k.bin", data)


# --------------------------------------------------------------------------
# a cut connection keeps its prefix


def test_cut_patch_keeps_what_arrived(ctx):
    t = ctx.tus
    data = os.urandom(2 * MiB)
    url = t.create_ok(len(data), ctx.meta("cut.bin"))
    sent = MiB
    send_cut_patch(ctx.server, ctx.tenant.auth, url, 0, len(data), data[:sent])
    off = wait_offset(t, url, lambda o: o > 0)
    assert 0 < off <= sent, f"after a cut PATCH that sent {sent} B, the offset is {off}"
    assert_no_object(ctx.s3, ctx.bucket, "cut.bin")
    # A second cut, from the kept offset.
    sent2 = 300 * KiB
    send_cut_patch(ctx.server, ctx.tenant.auth, url, off, len(data) - off, data[off:off + sent2])
    off2 = wait_offset(t, url, lambda o: o > off)
    assert off < off2 <= off + sent2, f"second cut: offset {off} -> {off2}"
    t.patch_ok(url, off2, data[off2:])
    _assert_object(ctx, "cut.bin", data)


def test_cut_patch_with_checksum_keeps_nothing(ctx):
    t = ctx.tus
    data = os.urandom(MiB)
    url = t.create_ok(len(data), ctx.meta("cut-sum.bin"))
    send_cut_patch(ctx.server, ctx.tenant.auth, url, 0, len(data), data[:len(data) // 2],
                   extra={"Upload-Checksum": checksum_header("sha1", data)})
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert t.offset(url) == 0, "a cut PATCH with Upload-Checksum kept unverified bytes"
        time.sleep(0.2)
    # The upload is not left locked: the full PATCH goes through.
    for _ in range(50):
        r = t.patch(url, 0, data, checksum=checksum_header("sha1", data))
        if r.status_code != 409:
            break
        assert t.offset(url) == 0
        time.sleep(0.2)
    expect(r, 204, "PATCH after the cut")
    _assert_object(ctx, "cut-sum.bin", data)


# --------------------------------------------------------------------------
# concurrency


def _race(ctx, key: str, size: int, slow: int | None = None) -> tuple[list, list[bytes], str]:
    """Two PATCHes at offset 0 of one upload, bodies (different bytes, the full length each)
    sent at the same time over two connections (the body of PATCH number `slow` trickles in
    over ~0.5 s, so that it ends well after the other); returns their statuses, bodies and the
    URL."""
    bodies = [os.urandom(size), os.urandom(size)]
    url = ctx.tus.create_ok(size, ctx.meta(key))
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(i: int) -> None:
        h = auth_headers(ctx.tenant.auth)
        h.update({"Content-Type": OCTET_OFFSET, "Upload-Offset": "0", "Content-Length": str(size),
                  "Connection": "close"})
        s = connect(ctx.server)
        try:
            s.sendall(request_head(ctx.server, "PATCH", upload_path(url), h))
            barrier.wait(timeout=30)
            try:
                for j in range(0, size, 64 * KiB):
                    s.sendall(bodies[i][j:j + 64 * KiB])
                    if i == slow:
                        time.sleep(0.5 * 64 * KiB / size)
            except OSError:
                pass  # answered (409) before the whole body was read
            try:
                results[i] = read_response(s)[0]
            except AssertionError:
                results[i] = "closed without an answer"
        finally:
            s.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    return results, bodies, url


def test_concurrent_patches_at_one_offset(ctx):
    # The spec: "If the offsets do not match, the Server MUST respond with the 409 Conflict
    # status without modifying the upload resource", and a 204 means "the new offset MUST be the
    # sum of the offset before the PATCH request and the number of bytes received and processed
    # or stored during the current PATCH request". So of two PATCHes at offset 0 exactly one
    # lands; the other is a 409. Rounds 0-3: the second body ends ~0.5 s after the first
    # (both requests were at offset 0 when they began); then both at full speed, several times
    # (a race).
    for round_ in range(16):
        size = MiB if round_ < 4 else 4 * MiB
        key = f"race-{round_}.bin"
        results, bodies, url = _race(ctx, key, size, slow=1 if round_ < 4 else None)
        ok = results.count(204) == 1 and all(r in (204, 409, "closed without an answer") for r in results)
        assert ok, (
            f"round {round_} ({'staggered' if round_ < 4 else 'simultaneous'}): two PATCHes at offset 0 "
            f"answered {results} (expected one 204 and one 409)"
        )
        winner = bodies[results.index(204)]
        assert ctx.tus.offset(url) == size
        _assert_object(ctx, key, winner)
