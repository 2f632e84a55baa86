"""UpYun REST API and form API, driven by the real `upyun` 2.5.5 SDK and, for
what the SDK cannot send (a wrong Content-MD5, an out-of-sequence part id, a
tampered form policy), by raw signed `requests` calls (upyun_helpers).

Contract (see /work/shared/specs/client-sdks.md §2):
* operators: POST /_chuan/admin/upyun/operators?tenant=&bucket=&operator=&password=
  (HTTP Basic root) -> 201 {"operator", "bucket"}; an operator acts on its
  bucket only (UpYun "service" = bucket); path style /<bucket>/<key>; the
  UpYun path /a/b is S3 key a/b of the same bucket (shared with S3);
* REST auth: `Authorization: UPYUN op:b64(HMAC-SHA1(md5hex(pw), METHOD&URI&DATE[&Content-MD5]))`
  over the raw request target, `Date` within 30 minutes;
* put (bytes / file / Content-MD5 verified / Content-Secret), resumable
  sequential multipart (X-Upyun-Multi-Stage, "part id error" +
  X-Upyun-Next-Part-Id), parallel multipart (disorder) + cancel, get,
  getinfo (x-upyun-file-type/-size/-date), listing (text lines
  name\\ttype\\tsize\\tmtime, x-upyun-list-iter paging with end marker
  g2gCZAAEbmV4dGQAA2VvZg), mkdir, delete, copy, move, usage;
* errors: JSON {"msg": str, "code": int (starting with the HTTP status, as
  UpYun's 40400001), "id": str} with a 4xx status;
* form API: POST /<bucket>/ multipart policy + authorization + file, stored
  under the policy's save-key; content-length-range, expiration and the
  signature are enforced; the (stale) HTTP Date header of form requests is
  not what is validated.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import time

import pytest
import requests

from compat_helpers import KiB, MiB, get_body
from upyun_helpers import (
    LIST_END_MARKER,
    OPERATORS_PATH,
    UpYunServiceException,
    assert_no_s3_object,
    assert_raw_4xx,
    assert_raw_error,
    create_operator,
    create_tenant,
    expect_upyun_error,
    httpdate,
    make_account,
    md5_hex,
    new_operator_name,
    new_password,
    record_requests,
    request_uri,
    s3_key,
    upyun,
    upyun_signature,
)

RESUME_SIZE = 3 * MiB + 512 * KiB  # 4 parts of 1 MiB (last one 0.5 MiB)


@pytest.fixture
def acct(server):
    """A fresh tenant, its bucket and an UpYun operator on that bucket."""
    return make_account(server)


def unique_key(prefix: str = "/f", ext: str = ".bin") -> str:
    return f"{prefix}-{secrets.token_hex(4)}{ext}"


def write_file(path, data: bytes):
    path.write_bytes(data)
    return path


def sdk_get_bytes(up, key: str) -> bytes:
    buf = io.BytesIO()
    up.get(key, buf)
    return buf.getvalue()


def assert_stored(acct, key: str, data: bytes) -> None:
    """The object is readable byte for byte through UpYun (get to a file
    object), getinfo reports it, and S3 sees the same bytes."""
    up = acct.sdk()
    assert sdk_get_bytes(up, key) == data, f"upyun get {key}: content differs"
    info = up.getinfo(key)
    assert info.get("file-type") == "file", info
    assert info.get("file-size") == str(len(data)), info
    assert get_body(acct.s3(), acct.bucket, s3_key(key)) == data, f"S3 get {s3_key(key)}: content differs"


def assert_absent(acct, key: str) -> None:
    with expect_upyun_error(404, body=False):
        acct.sdk().getinfo(key)
    assert_no_s3_object(acct.s3(), acct.bucket, s3_key(key))


def multi_headers(sent):
    """(part id, stage, uuid) of every recorded request."""
    return [
        (r.header("X-Upyun-Part-Id"), r.header("X-Upyun-Multi-Stage"), r.header("X-Upyun-Multi-Uuid"))
        for r in sent
    ]


class Interrupted(Exception):
    pass


# --------------------------------------------------------------------------
# signature / operators


def test_signature_helper_matches_spec_and_sdk():
    """The independent signer used by the raw tests reproduces the spec's
    worked examples and the SDK's make_signature."""
    date = "Wed, 01 Nov 2023 00:00:00 GMT"
    assert upyun_signature("op", "password123", "PUT", "/mybucket/hello.txt", date) == (
        "UPYUN op:nb/IWz4K4IYbazbqX/e8TNP7M5Q="
    )
    assert upyun_signature(
        "op", "password123", "PUT", "/mybucket/hello.txt", date, content_md5="5eb63bbbe01eeed093cb22bb8f5acdc3"
    ) == "UPYUN op:DyMaMpSbgaUVxIZYKseLfVf06TY="
    sdk = upyun.make_signature(
        username="op", password=md5_hex(b"password123"), method="POST", uri="/mybucket/", date=date, policy="cG9s"
    )
    assert sdk == upyun_signature("op", "password123", "POST", "/mybucket/", date, policy="cG9s")


def test_operator_admin_endpoint_requires_root(server):
    tenant = create_tenant(server)
    s3 = server.client(tenant.access_key, tenant.secret_key)
    bucket = f"upa-{secrets.token_hex(5)}"
    s3.create_bucket(Bucket=bucket)
    op, pw = new_operator_name(), new_password()

    r = create_operator(server, tenant.name, bucket, op, pw, auth=None)
    assert r.status_code == 401, f"POST {OPERATORS_PATH} without credentials: HTTP {r.status_code} {r.text[:300]}"
    r = create_operator(server, tenant.name, bucket, op, pw, auth=(tenant.access_key, tenant.secret_key))
    assert r.status_code == 401, f"POST {OPERATORS_PATH} with tenant keys: HTTP {r.status_code} {r.text[:300]}"
    # Not created by the refused calls.
    up = upyun.UpYun(bucket, op, pw, endpoint=f"127.0.0.1:{server.port}", timeout=30)
    with expect_upyun_error(401):
        up.put("/never.txt", b"x")

    r = create_operator(server, tenant.name, bucket, op, pw)
    assert r.status_code == 201, f"POST {OPERATORS_PATH}: HTTP {r.status_code} {r.text[:300]}"
    assert r.json() == {"operator": op, "bucket": bucket}
    up.put("/hello.txt", b"hello from an operator\n")
    assert get_body(s3, bucket, "hello.txt") == b"hello from an operator\n"


# --------------------------------------------------------------------------
# simple put / get / getinfo


def test_put_bytes_get_and_getinfo(acct):
    up = acct.sdk()
    key = unique_key("/a/hello", ".txt")
    data = b"hello upyun\n" * 3
    res = up.put(key, data)
    assert isinstance(res, dict), res
    assert up.get(key) == data.decode()
    assert sdk_get_bytes(up, key) == data
    info = up.getinfo(key)
    assert info.get("file-type") == "file", info
    assert info.get("file-size") == str(len(data)), info
    assert abs(int(info["file-date"]) - time.time()) < 300, info
    assert get_body(acct.s3(), acct.bucket, s3_key(key)) == data

    empty = unique_key("/a/empty", ".txt")
    up.put(empty, b"")
    assert_stored(acct, empty, b"")

    # Overwrite.
    up.put(key, b"v2")
    assert_stored(acct, key, b"v2")


def test_put_file_object(acct, tmp_path):
    data = os.urandom(300 * KiB + 17)
    path = write_file(tmp_path / "file.bin", data)
    key = unique_key("/files/obj")
    with open(path, "rb") as f:
        acct.sdk().put(key, f)
    assert_stored(acct, key, data)
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        acct.sdk().get(key, f)
    assert out.read_bytes() == data


def test_put_with_checksum_sends_and_passes_content_md5(acct, tmp_path):
    up = acct.sdk()
    sent = record_requests(up)
    data = os.urandom(64 * KiB)
    k1 = unique_key("/md5/bytes")
    up.put(k1, data, checksum=True)
    path = write_file(tmp_path / "c.bin", os.urandom(200 * KiB + 3))
    k2 = unique_key("/md5/file")
    with open(path, "rb") as f:
        up.put(k2, f, checksum=True)
    puts = [r for r in sent if r.method == "PUT"]
    assert [r.header("Content-MD5") for r in puts] == [md5_hex(data), md5_hex(path.read_bytes())]
    assert_stored(acct, k1, data)
    assert_stored(acct, k2, path.read_bytes())


def test_wrong_content_md5_is_refused_and_nothing_stored(acct):
    raw = acct.raw()
    data = os.urandom(10 * KiB)
    key = unique_key("/md5/bad")
    r = raw.request("PUT", key, body=data, content_md5=md5_hex(b"something else"))
    assert_raw_4xx(r)
    assert_absent(acct, key)

    # Through the SDK (a caller-supplied Content-MD5 header is signed as well).
    with expect_upyun_error(any_4xx=True):
        acct.sdk().put(key, data, headers={"Content-MD5": md5_hex(b"other")})
    assert_absent(acct, key)

    # A refused overwrite leaves the existing object untouched.
    acct.sdk().put(key, b"original")
    r = raw.request("PUT", key, body=data, content_md5=md5_hex(data[:-1]))
    assert_raw_4xx(r)
    assert_stored(acct, key, b"original")

    # The same raw request with the right Content-MD5 is accepted.
    r = raw.request("PUT", key, body=data, content_md5=md5_hex(data))
    assert 200 <= r.status_code < 300, f"HTTP {r.status_code}: {r.text[:300]}"
    assert_stored(acct, key, data)


def test_content_secret_header_is_accepted(acct):
    up = acct.sdk()
    sent = record_requests(up)
    key = unique_key("/secret/img", ".jpg")
    data = os.urandom(5 * KiB)
    up.put(key, data, secret="s3cretValue")
    assert sent[-1].header("Content-Secret") == "s3cretValue"
    assert_stored(acct, key, data)


def test_non_ascii_key_is_signed_over_the_raw_target(acct):
    up = acct.sdk()
    sent = record_requests(up)
    key = f"/文档/报告 v1+final(1) {secrets.token_hex(3)}.txt"
    data = "你好, UpYun\n".encode()
    up.put(key, data)
    assert request_uri(acct.bucket, key) in sent[-1].url
    assert "%E6%96%87%E6%A1%A3" in sent[-1].url and "%2B" in sent[-1].url
    assert up.get(key) == data.decode()
    assert_stored(acct, key, data)
    assert s3_key(key) in [o["Key"] for o in acct.s3().list_objects_v2(Bucket=acct.bucket).get("Contents", [])]


# --------------------------------------------------------------------------
# resumable (sequential) multipart


def test_resumable_put_interrupted_then_continued(acct, tmp_path):
    data = os.urandom(RESUME_SIZE)
    path = write_file(tmp_path / "resume.bin", data)
    store = upyun.FileStore(str(tmp_path / "store"))
    key = unique_key("/resume/big")

    up = acct.sdk()
    sent = record_requests(up)
    calls = []

    def reporter(uploaded, total, done):
        calls.append((uploaded, total, done))
        if len(calls) == 2:
            raise Interrupted()

    with open(path, "rb") as f, pytest.raises(Interrupted):
        up.put(key, f, checksum=True, need_resume=True, store=store, reporter=reporter, part_size=MiB)
    assert calls == [(MiB, RESUME_SIZE, False), (2 * MiB, RESUME_SIZE, False)]
    assert len(sent) == 2, multi_headers(sent)
    first, second = sent
    assert first.header("X-Upyun-Multi-Stage") == "initiate,upload"
    assert first.header("X-Upyun-Part-Id") == "0"
    assert first.header("X-Upyun-Multi-Length") == str(RESUME_SIZE)
    assert first.header("X-Upyun-Multi-Part-Size") == str(MiB)
    assert first.header("Content-MD5") == md5_hex(data[:MiB])
    uuid = second.header("X-Upyun-Multi-Uuid")
    assert uuid, "the SDK found no X-Upyun-Multi-Uuid in the initiate response"
    assert (second.header("X-Upyun-Part-Id"), second.header("X-Upyun-Multi-Stage")) == ("1", "upload")

    store_key = upyun.BaseStore.get_key(acct.bucket, key, str(path))
    record = store.get(store_key)
    assert record.get("next_id") == 2 and record.get("multi_uuid") == uuid, record
    # An unfinished upload is not an object.
    assert_absent(acct, key)

    # Continue with a new client (a restarted process) and the same store.
    up2 = acct.sdk()
    sent2 = record_requests(up2)
    calls2 = []
    with open(path, "rb") as f:
        up2.put(
            key, f, checksum=True, need_resume=True, store=store,
            reporter=lambda u, t, d: calls2.append((u, t, d)), part_size=MiB,
        )
    assert multi_headers(sent2) == [("2", "upload", uuid), ("3", "upload,complete", uuid)]
    assert sent2[-1].header("X-Upyun-Multi-MD5") == md5_hex(data)
    assert sent2[-1].header("Content-MD5") == md5_hex(data[3 * MiB:])
    assert calls2 and calls2[-1][2] is True, calls2
    assert store.get(store_key) == {}, "the SDK keeps a record of a completed upload"
    assert_stored(acct, key, data)


def test_resumable_put_recovers_from_part_id_error(acct, tmp_path):
    """A stale progress record (next_id too far) gets 'part id error' with
    X-Upyun-Next-Part-Id; the SDK continues from the part the server names."""
    data = os.urandom(RESUME_SIZE)
    path = write_file(tmp_path / "resume2.bin", data)
    store = upyun.FileStore(str(tmp_path / "store2"))
    key = unique_key("/resume/skip")
    n = []

    def reporter(uploaded, total, done):
        n.append(uploaded)
        if len(n) == 2:
            raise Interrupted()

    with open(path, "rb") as f, pytest.raises(Interrupted):
        acct.sdk().put(key, f, need_resume=True, store=store, reporter=reporter, part_size=MiB)
    store_key = upyun.BaseStore.get_key(acct.bucket, key, str(path))
    record = store.get(store_key)
    assert record.get("next_id") == 2, record
    record.update(next_id=3, start=3 * MiB, end=RESUME_SIZE)
    store.set(store_key, record)

    up = acct.sdk()
    sent = record_requests(up)
    with open(path, "rb") as f:
        up.put(key, f, need_resume=True, store=store, part_size=MiB)
    uuid = record["multi_uuid"]
    assert multi_headers(sent) == [
        ("3", "upload,complete", uuid),  # refused: part id error, next part 2
        ("2", "upload", uuid),
        ("3", "upload,complete", uuid),
    ]
    assert_stored(acct, key, data)


def test_resumable_put_zero_bytes(acct, tmp_path):
    path = write_file(tmp_path / "empty.bin", b"")
    key = unique_key("/resume/empty")
    up = acct.sdk()
    sent = record_requests(up)
    with open(path, "rb") as f:
        up.put(key, f, need_resume=True, store=upyun.FileStore(str(tmp_path / "s")))
    assert len(sent) == 1
    assert sent[0].header("X-Upyun-Multi-Stage") == "initiate,upload,complete"
    assert sent[0].header("X-Upyun-Multi-Length") == "0"
    assert_stored(acct, key, b"")


def test_resumable_put_default_part_size_without_checksum(acct, tmp_path):
    data = os.urandom(2 * MiB + 123)
    path = write_file(tmp_path / "r.txt", data)
    key = unique_key("/resume/plain", ".txt")
    up = acct.sdk()
    sent = record_requests(up)
    with open(path, "rb") as f:
        up.put(key, f, need_resume=True, store=upyun.FileStore(str(tmp_path / "s")))
    assert [(p, s) for p, s, _ in multi_headers(sent)] == [
        ("0", "initiate,upload"), ("1", "upload"), ("2", "upload,complete"),
    ]
    assert all(r.header("Content-MD5") is None for r in sent)
    assert_stored(acct, key, data)


def test_part_id_out_of_sequence_is_refused_with_next_part_id(acct):
    raw = acct.raw()
    key = unique_key("/seq/raw")
    parts = [os.urandom(MiB), os.urandom(MiB), os.urandom(300 * KiB)]
    size = sum(map(len, parts))
    r = raw.request(
        "PUT", key, body=parts[0],
        headers={
            "X-Upyun-Multi-Stage": "initiate,upload",
            "X-Upyun-Multi-Type": "application/octet-stream",
            "X-Upyun-Multi-Length": str(size),
            "X-Upyun-Multi-Part-Size": str(MiB),
            "X-Upyun-Part-Id": "0",
        },
    )
    assert 200 <= r.status_code < 300, f"initiate: HTTP {r.status_code} {r.text[:300]}"
    uuid = r.headers.get("X-Upyun-Multi-Uuid")
    assert uuid, f"no X-Upyun-Multi-Uuid in {dict(r.headers)}"

    # Part 2 before part 1.
    r = raw.request(
        "PUT", key, body=parts[2],
        headers={"X-Upyun-Multi-Stage": "upload,complete", "X-Upyun-Multi-Uuid": uuid, "X-Upyun-Part-Id": "2"},
    )
    body = assert_raw_error(r, 400)
    assert body["msg"] == "part id error", body
    assert r.headers.get("X-Upyun-Next-Part-Id") == "1", dict(r.headers)
    assert_absent(acct, key)

    for pid, stage in ((1, "upload"), (2, "upload,complete")):
        r = raw.request(
            "PUT", key, body=parts[pid],
            headers={"X-Upyun-Multi-Stage": stage, "X-Upyun-Multi-Uuid": uuid, "X-Upyun-Part-Id": str(pid)},
        )
        assert 200 <= r.status_code < 300, f"part {pid}: HTTP {r.status_code} {r.text[:300]}"
    assert_stored(acct, key, b"".join(parts))


# --------------------------------------------------------------------------
# parallel ("disorder") multipart


def test_parallel_multipart_in_reverse_order(acct):
    data = os.urandom(RESUME_SIZE)
    parts = [data[i:i + MiB] for i in range(0, len(data), MiB)]
    key = unique_key("/multi/rev")
    up = acct.sdk()
    uploader = up.init_multi_uploader(key, part_size=MiB, file_size=len(data))
    assert uploader.uuid
    for pid in reversed(range(len(parts))):
        uploader.upload(pid, parts[pid])
    assert_absent(acct, key)
    res = uploader.complete(md5_hex(data))
    assert isinstance(res, dict), res
    assert_stored(acct, key, data)


def test_parallel_multipart_complete_with_wrong_md5_is_refused(acct):
    data = os.urandom(2 * MiB + 5)
    key = unique_key("/multi/badmd5")
    uploader = acct.sdk().init_multi_uploader(key, part_size=MiB, file_size=len(data))
    for pid in (2, 0, 1):
        uploader.upload(pid, data[pid * MiB:(pid + 1) * MiB])
    with expect_upyun_error(any_4xx=True):
        uploader.complete(md5_hex(data + b"x"))
    assert_absent(acct, key)


def test_parallel_multipart_cancel(acct):
    key = unique_key("/multi/cancel")
    up = acct.sdk()
    uploader = up.init_multi_uploader(key, part_size=MiB, file_size=2 * MiB)
    uploader.upload(0, os.urandom(MiB))
    uploader.cancel()
    assert_absent(acct, key)
    with expect_upyun_error(any_4xx=True):
        uploader.upload(1, os.urandom(MiB))
    with expect_upyun_error(any_4xx=True):
        uploader.complete()
    assert_absent(acct, key)


# --------------------------------------------------------------------------
# listing, folders, copy / move / delete, usage


def test_listing_250_entries_with_paging(acct):
    up = acct.sdk()
    d = f"/list-{secrets.token_hex(3)}"
    files = {}
    for i in range(249):
        name = f"{i:03d}.txt"
        data = f"entry {i}\n".encode() * (i % 7)
        up.put(f"{d}/{name}", data)
        files[name] = data
    up.mkdir(f"{d}/zz-folder")
    names = set(files) | {"zz-folder"}

    def check(entries, where):
        seen = [e["name"] for e in entries]
        assert len(seen) == len(set(seen)), f"{where}: duplicates"
        for e in entries:
            assert set(e) == {"name", "type", "size", "time"}, f"{where}: {e}"
            if e["name"] == "zz-folder":
                assert e["type"] == "F", f"{where}: {e}"
            else:
                assert e["type"] == "N", f"{where}: {e}"
                assert e["size"] == str(len(files[e["name"]])), f"{where}: {e}"
            assert abs(int(e["time"]) - time.time()) < 600, f"{where}: {e}"
        return set(seen)

    full = up.getlist(d + "/", limit=1000)
    assert len(full) == 250, f"getlist returned {len(full)} entries: {full[:3]} ... {full[-3:]}"
    assert check(full, "getlist") == names

    it_entries = list(up.iterlist(d + "/", limit=1000))
    assert len(it_entries) == 250
    assert check(it_entries, "iterlist") == names

    pages, it = [], None
    for _ in range(10):
        r = up.get_list_with_iter(d + "/", limit=100, begin=it)
        pages.append(r["files"])
        it = r["iter"]
        assert it, f"page {len(pages)}: no x-upyun-list-iter header"
        if it == LIST_END_MARKER:
            break
    assert [len(p) for p in pages] == [100, 100, 50], [len(p) for p in pages]
    all_entries = [e for p in pages for e in p]
    assert check(all_entries, "paged") == names
    assert it == LIST_END_MARKER


def test_nested_put_lists_parent_as_folder(acct):
    up = acct.sdk()
    d = f"/nest-{secrets.token_hex(3)}"
    up.put(f"{d}/sub/deeper/file.txt", b"deep")
    up.put(f"{d}/top.txt", b"top")
    entries = {e["name"]: e for e in up.getlist(d + "/")}
    assert set(entries) == {"sub", "top.txt"}, entries
    assert entries["sub"]["type"] == "F" and entries["top.txt"]["type"] == "N", entries
    assert up.getinfo(f"{d}/sub").get("file-type") == "folder"


def test_mkdir_getinfo_folder_and_delete_empty_folder(acct):
    up = acct.sdk()
    d = f"/dir-{secrets.token_hex(3)}"
    up.mkdir(f"{d}/sub")
    info = up.getinfo(f"{d}/sub")
    assert info.get("file-type") == "folder", info
    assert [(e["name"], e["type"]) for e in up.getlist(d + "/")] == [("sub", "F")]
    assert up.getlist(f"{d}/sub/") == []
    up.delete(f"{d}/sub/")
    with expect_upyun_error(404, body=False):
        up.getinfo(f"{d}/sub")
    assert "sub" not in [e["name"] for e in _list_or_empty(up, d + "/")]


def _list_or_empty(up, path):
    """getlist of a folder that may be gone (404) after its last entry was deleted."""
    try:
        return up.getlist(path)
    except UpYunServiceException as e:
        assert e.status == 404, (e.status, e.err)
        return []


def test_copy_and_move(acct):
    up = acct.sdk()
    sent = record_requests(up)
    d = f"/cm-{secrets.token_hex(3)}"
    data = os.urandom(40 * KiB)
    up.put(f"{d}/src.bin", data)
    up.copy(f"{d}/src.bin", f"{d}/copy.bin")
    assert sent[-1].header("X-Upyun-Copy-Source") == f"/{acct.bucket}{d}/src.bin"
    assert_stored(acct, f"{d}/src.bin", data)
    assert_stored(acct, f"{d}/copy.bin", data)

    up.move(f"{d}/copy.bin", f"{d}/moved.bin")
    assert sent[-1].header("X-Upyun-Move-Source") == f"/{acct.bucket}{d}/copy.bin"
    assert_absent(acct, f"{d}/copy.bin")
    assert_stored(acct, f"{d}/moved.bin", data)
    assert_stored(acct, f"{d}/src.bin", data)
    assert sorted(e["name"] for e in up.getlist(d + "/")) == ["moved.bin", "src.bin"]


def test_delete_file(acct):
    up = acct.sdk()
    d = f"/del-{secrets.token_hex(3)}"
    up.put(f"{d}/gone.txt", b"bye")
    up.put(f"{d}/stays.txt", b"hi")
    up.delete(f"{d}/gone.txt")
    assert_absent(acct, f"{d}/gone.txt")
    assert [e["name"] for e in up.getlist(d + "/")] == ["stays.txt"]
    with expect_upyun_error(404):
        up.delete(f"{d}/gone.txt")


def test_usage_is_an_integer_that_grows_with_uploads(acct):
    up = acct.sdk()
    before = up.usage()
    assert int(before) == 0, f"usage of a fresh bucket: {before!r}"
    up.put("/u/one.bin", os.urandom(300 * KiB))
    mid = int(up.usage())
    assert mid >= 300 * KiB, mid
    up.put("/u/two.bin", os.urandom(200 * KiB))
    after = int(up.usage())
    assert after >= mid + 200 * KiB, (mid, after)


# --------------------------------------------------------------------------
# errors and authorization


def test_missing_object_is_404_with_json_error(acct):
    up = acct.sdk()
    key = unique_key("/missing/none")
    with expect_upyun_error(404):
        up.get(key, io.BytesIO())
    with expect_upyun_error(404):
        up.get(key)
    with expect_upyun_error(404, body=False):
        up.getinfo(key)
    with expect_upyun_error(404):
        up.delete(key)


def test_wrong_password_and_unknown_operator_are_401(acct):
    key = unique_key("/auth/x")
    bad = acct.sdk(password=acct.password + "x")
    with expect_upyun_error(401):
        bad.put(key, b"data")
    with expect_upyun_error(401):
        bad.usage()
    with expect_upyun_error(401, body=False):
        bad.getinfo(key)
    with expect_upyun_error(401):
        acct.sdk(operator=new_operator_name()).put(key, b"data")
    assert_absent(acct, key)

    # A raw request with no Authorization at all.
    r = acct.raw().request("GET", "/", args="?usage")
    assert r.status_code == 200, r.text
    r = requests.put(f"{acct.server.endpoint}{request_uri(acct.bucket, key)}", data=b"x", headers={"Date": httpdate()}, timeout=30)
    assert 400 <= r.status_code < 500, r.status_code
    assert_absent(acct, key)


def test_date_must_be_within_30_minutes(acct, monkeypatch):
    up = acct.sdk()
    key = unique_key("/date/x")

    monkeypatch.setattr(upyun.rest, "cur_dt", lambda: httpdate(time.time() - 29 * 60))
    up.put(key, b"29 minutes late is fine")
    assert up.get(key) == "29 minutes late is fine"

    k2 = unique_key("/date/y")
    for skew in (-31 * 60, 31 * 60):
        monkeypatch.setattr(upyun.rest, "cur_dt", lambda s=skew: httpdate(time.time() + s))
        with expect_upyun_error(401):
            up.put(k2, b"too far off")
        with expect_upyun_error(401):
            up.get(key)
    monkeypatch.undo()
    assert_absent(acct, k2)

    # Same with a raw request: signature valid, Date 31 minutes old.
    r = acct.raw().request("PUT", k2, body=b"raw", date=httpdate(time.time() - 31 * 60))
    assert_raw_error(r, 401)
    assert_absent(acct, k2)


def test_operator_of_another_bucket_is_refused(server, acct):
    # A second bucket of the same tenant, with an object in it.
    s3 = acct.s3()
    other = f"upo-{secrets.token_hex(5)}"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="private.txt", Body=b"not for this operator")
    up = acct.sdk(bucket=other)
    with expect_upyun_error(401, 403):
        up.get("/private.txt", io.BytesIO())
    with expect_upyun_error(401, 403):
        up.put("/intruder.txt", b"x")
    with expect_upyun_error(401, 403):
        up.getlist("/")
    with expect_upyun_error(401, 403):
        up.delete("/private.txt")
    assert_no_s3_object(s3, other, "intruder.txt")
    assert get_body(s3, other, "private.txt") == b"not for this operator"

    # Another tenant's operator and bucket, both ways.
    acct2 = make_account(server)
    acct2.sdk().put("/theirs.txt", b"tenant 2")
    with expect_upyun_error(401, 403):
        acct.sdk(bucket=acct2.bucket).get("/theirs.txt", io.BytesIO())
    with expect_upyun_error(401, 403):
        acct2.sdk(bucket=acct.bucket).put("/intruder.txt", b"x")
    with expect_upyun_error(401, 403):
        acct.sdk(bucket=acct2.bucket).usage()
    assert_absent(acct, "/intruder.txt")
    assert_stored(acct2, "/theirs.txt", b"tenant 2")


# --------------------------------------------------------------------------
# form API


def test_form_upload_stores_under_save_key(acct, tmp_path):
    data = os.urandom(100 * KiB + 9)
    path = write_file(tmp_path / "photo.jpg", data)
    key = unique_key("/form/upload", ".jpg")
    up = acct.sdk()
    sent = record_requests(up)
    with open(path, "rb") as f:
        res = up.put(key, f, form=True)
    assert isinstance(res, dict), res
    assert sent[-1].method == "POST" and sent[-1].url.endswith(f"/{acct.bucket}/"), sent[-1]
    assert_stored(acct, key, data)

    # A raw form POST built by the independent helper works the same way.
    raw = acct.raw()
    k2 = unique_key("/form/raw")
    policy, date = raw.form_policy(k2)
    r = raw.form_post(policy, raw.form_authorization(policy, date), b"raw form body", "raw.bin")
    assert 200 <= r.status_code < 300, f"HTTP {r.status_code}: {r.text[:300]}"
    assert_stored(acct, k2, b"raw form body")


def test_form_content_length_range(acct, tmp_path):
    up = acct.sdk()
    big = write_file(tmp_path / "big.bin", os.urandom(2048))
    key = unique_key("/form/range")
    with open(big, "rb") as f, expect_upyun_error(any_4xx=True, body=False):
        up.put(key, f, form=True, **{"content-length-range": "0,1024"})
    assert_absent(acct, key)

    small_data = os.urandom(1000)
    small = write_file(tmp_path / "small.bin", small_data)
    with open(small, "rb") as f:
        up.put(key, f, form=True, **{"content-length-range": "0,1024"})
    assert_stored(acct, key, small_data)


def test_form_expired_policy_is_refused(acct, tmp_path):
    path = write_file(tmp_path / "late.bin", os.urandom(3000))
    key = unique_key("/form/expired")
    with open(path, "rb") as f, expect_upyun_error(any_4xx=True, body=False):
        acct.sdk().put(key, f, form=True, expiration=-60)
    assert_absent(acct, key)


def test_form_wrong_signature_is_refused(acct, tmp_path):
    path = write_file(tmp_path / "sig.bin", os.urandom(3000))
    key = unique_key("/form/badsig")
    with open(path, "rb") as f, expect_upyun_error(any_4xx=True, body=False):
        acct.sdk(password=acct.password + "x").put(key, f, form=True)
    assert_absent(acct, key)

    # A valid authorization for one policy, sent with another (save-key changed).
    raw = acct.raw()
    signed_policy, date = raw.form_policy(key)
    other_key = unique_key("/form/tampered")
    tampered, _ = raw.form_policy(other_key)
    r = raw.form_post(tampered, raw.form_authorization(signed_policy, date), b"tampered")
    assert 400 <= r.status_code < 500, f"tampered policy: HTTP {r.status_code} {r.text[:300]}"
    assert_absent(acct, key)
    assert_absent(acct, other_key)


def test_form_ignores_the_stale_http_date_header(acct, tmp_path):
    """upyun 2.5.5 sends form requests with the Date header of its first form
    request ever (mutable default argument of do_http_pipe); the policy's date
    and expiration are what count."""
    defaults = upyun.modules.httpipe.UpYunHttp.do_http_pipe.__defaults__
    shared = next(d for d in defaults if isinstance(d, dict))
    saved = dict(shared)
    stale = httpdate(time.time() - 2 * 3600)
    shared["Date"] = stale
    try:
        data = os.urandom(4000)
        path = write_file(tmp_path / "stale.bin", data)
        key = unique_key("/form/stale")
        up = acct.sdk()
        sent = record_requests(up)
        with open(path, "rb") as f:
            up.put(key, f, form=True)
        assert sent[-1].header("Date") == stale
        assert_stored(acct, key, data)
    finally:
        shared.clear()
        shared.update(saved)


# --------------------------------------------------------------------------
# cross-protocol


def test_cross_protocol_with_s3(acct, tmp_path):
    up = acct.sdk()
    s3 = acct.s3()
    d = f"/xp-{secrets.token_hex(3)}"

    data = os.urandom(777 * KiB)
    path = write_file(tmp_path / "up.bin", data)
    with open(path, "rb") as f:
        up.put(f"{d}/from-upyun.bin", f)
    obj = s3.get_object(Bucket=acct.bucket, Key=f"{d[1:]}/from-upyun.bin")
    assert obj["Body"].read() == data
    assert obj["ContentLength"] == len(data)

    s3_data = os.urandom(123 * KiB + 1)
    s3.put_object(Bucket=acct.bucket, Key=f"{d[1:]}/from-s3.bin", Body=s3_data)
    assert sdk_get_bytes(up, f"{d}/from-s3.bin") == s3_data
    info = up.getinfo(f"{d}/from-s3.bin")
    assert info.get("file-type") == "file" and info.get("file-size") == str(len(s3_data)), info
    listed = {e["name"]: e for e in up.getlist(d + "/")}
    assert set(listed) == {"from-upyun.bin", "from-s3.bin"}, listed
    assert listed["from-s3.bin"]["size"] == str(len(s3_data))

    # A resumable upload and a parallel one are S3 objects too.
    big = os.urandom(RESUME_SIZE)
    bpath = write_file(tmp_path / "big.bin", big)
    with open(bpath, "rb") as f:
        up.put(f"{d}/resumed.bin", f, need_resume=True, part_size=MiB, store=upyun.FileStore(str(tmp_path / "s")))
    assert hashlib.sha256(get_body(s3, acct.bucket, f"{d[1:]}/resumed.bin")).digest() == hashlib.sha256(big).digest()
