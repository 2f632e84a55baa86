"""12. Bad input: wrong credentials, digest mismatches, truncated bodies,
malformed XML, hostile keys."""

import base64
import hashlib
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from compat_helpers import (
    KiB,
    MiB,
    HEALTH_PATH,
    assert_no_object,
    client_error,
    expect_s3_error,
    list_all_keys,
    s3_error_code,
    sha256_hex,
    snapshot_tree,
    unique_name,
)


# ------------------------------------------------------------ authentication


def test_wrong_secret_key_is_403_signature_does_not_match(server, s3, bucket):
    bad = server.client(secret_key=server.secret_key[:-1] + "X")
    with expect_s3_error(403, "SignatureDoesNotMatch"):
        bad.put_object(Bucket=bucket, Key="auth/wrong-secret.txt", Body=b"nope")
    assert_no_object(s3, bucket, "auth/wrong-secret.txt")
    with expect_s3_error(403, "SignatureDoesNotMatch"):
        bad.list_objects_v2(Bucket=bucket)


def test_unknown_access_key_is_403_invalid_access_key_id(server, s3, bucket):
    bad = server.client(access_key="AKIDOESNOTEXIST00000")
    with expect_s3_error(403, "InvalidAccessKeyId"):
        bad.put_object(Bucket=bucket, Key="auth/unknown-ak.txt", Body=b"nope")
    assert_no_object(s3, bucket, "auth/unknown-ak.txt")


def test_anonymous_request_is_403(server, bucket):
    r = requests.put(f"{server.endpoint}/{bucket}/auth/anon.txt", data=b"anon", timeout=30)
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied", r.text[:500]
    r = requests.get(f"{server.endpoint}/{bucket}?list-type=2", timeout=30)
    assert r.status_code == 403, r.text[:500]


# ------------------------------------------------------------ digests


def test_content_md5_mismatch_is_400_bad_digest(server, s3, bucket):
    strict = server.client(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    wrong_md5 = base64.b64encode(hashlib.md5(b"some other data").digest()).decode()
    with expect_s3_error(400, "BadDigest"):
        strict.put_object(Bucket=bucket, Key="digest/md5.bin", Body=os.urandom(4 * KiB), ContentMD5=wrong_md5)
    assert_no_object(s3, bucket, "digest/md5.bin")


def test_invalid_content_md5_is_400(server, s3, bucket):
    strict = server.client(request_checksum_calculation="when_required")
    with expect_s3_error(400, "InvalidDigest"):
        strict.put_object(Bucket=bucket, Key="digest/md5-garbage.bin", Body=b"data", ContentMD5="not-base64-md5")
    assert_no_object(s3, bucket, "digest/md5-garbage.bin")


def test_flexible_checksum_mismatch_is_400_bad_digest(server, s3, bucket):
    wrong = base64.b64encode((12345).to_bytes(4, "big")).decode()
    with expect_s3_error(400, "BadDigest"):
        s3.put_object(Bucket=bucket, Key="digest/crc32.bin", Body=os.urandom(4 * KiB), ChecksumCRC32=wrong)
    assert_no_object(s3, bucket, "digest/crc32.bin")


def test_payload_sha256_mismatch_is_400(server, s3, bucket):
    body = os.urandom(8 * KiB)
    r = server.signed_request(
        "PUT", bucket, "digest/sha256.bin", body=body, payload_hash=sha256_hex(b"different payload")
    )
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "XAmzContentSHA256Mismatch", r.text[:500]
    assert_no_object(s3, bucket, "digest/sha256.bin")
    # control: the same helper with the right hash succeeds
    ok = server.signed_request("PUT", bucket, "digest/sha256-ok.bin", body=body)
    assert ok.status_code == 200, ok.text[:500]
    assert s3.get_object(Bucket=bucket, Key="digest/sha256-ok.bin")["Body"].read() == body


# ------------------------------------------------------------ truncated body


def test_truncated_upload_leaves_no_object_and_gc_empties_tmp(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    bucket = unique_name("trunc")
    s3.create_bucket(Bucket=bucket)
    key = "trunc/partial.bin"
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    u = urlsplit(url)

    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(
            (
                f"PUT {u.path}?{u.query} HTTP/1.1\r\n"
                f"Host: {u.netloc}\r\n"
                f"Content-Length: {10 * MiB}\r\n"
                "Content-Type: application/octet-stream\r\n"
                "\r\n"
            ).encode()
        )
        try:
            sock.sendall(os.urandom(1 * MiB))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may already have answered; the checks below still apply
        time.sleep(0.3)  # let the server start spooling the body
    finally:
        sock.close()

    assert_no_object(s3, bucket, key)
    assert list_all_keys(s3, bucket) == []

    # The server should notice the EOF promptly; allow a few seconds, then
    # GC with zero grace must leave DIR/tmp empty.
    deadline = time.monotonic() + 5
    while True:
        srv.admin_gc(grace_secs=0)
        left = srv.tmp_entries()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == [], f"DIR/tmp not empty after GC: {left}"
    assert_no_object(s3, bucket, key)

    assert requests.get(srv.endpoint + HEALTH_PATH, timeout=5).status_code == 200
    s3.put_object(Bucket=bucket, Key="trunc/after.bin", Body=b"still works")
    assert s3.get_object(Bucket=bucket, Key="trunc/after.bin")["Body"].read() == b"still works"


# ------------------------------------------------------------ malformed XML


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>",
        b"this is not xml at all",
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
    ],
    ids=["truncated", "not-xml", "no-parts"],
)
def test_malformed_complete_multipart_xml_is_400_malformed_xml(server, s3, bucket, body):
    key = "xml/malformed.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"part one")

    r = server.signed_request("POST", bucket, key, params={"uploadId": upload_id}, body=body)
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "MalformedXML", r.text[:500]

    assert_no_object(s3, bucket, key)
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1], "a failed complete must keep the upload"
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


def test_malformed_delete_objects_xml_is_400_malformed_xml(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="xml/keep.txt", Body=b"keep")
    body = b"<Delete><Object><Key>xml/keep.txt</Key></Object"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = server.signed_request("POST", bucket, params={"delete": ""}, body=body, headers={"Content-MD5": md5})
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "MalformedXML", r.text[:500]
    assert s3.get_object(Bucket=bucket, Key="xml/keep.txt")["Body"].read() == b"keep"


# ------------------------------------------------------------ hostile keys

TRAVERSAL_KEYS = [
    "../../etc/passwd",
    "a/../../b",
    "../escape-{tag}.txt",
    "../../../../../../../../../../tmp/chuan-escape-{tag}",
    "./dot/./segments",
    "x/../../../../y-{tag}",
    "..",
    "../",
    "...",
    "a//double//slash",
]


def _file_fingerprint(path: Path):
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())


def test_dot_dot_keys_never_escape_the_data_dir(server_factory, tmp_path):
    # Data dir nested a few levels deep so that relative escapes land in
    # directories we snapshot.
    base = tmp_path / "jail"
    data_dir = base / "l1" / "l2" / "l3" / "data"
    srv = server_factory(data_dir=data_dir, name="traversal")
    s3 = srv.client()
    bucket = unique_name("dots")
    s3.create_bucket(Bucket=bucket)

    tag = os.urandom(4).hex()
    tree_before = snapshot_tree(tmp_path, exclude=data_dir)
    parent_before = set(os.listdir(tmp_path.parent))
    passwd_before = _file_fingerprint(Path("/etc/passwd"))

    stored = {}
    for template in TRAVERSAL_KEYS:
        key = template.format(tag=tag)
        body = f"payload for {key}".encode()
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        except ClientError as e:
            status, code = client_error(e)
            assert 400 <= status < 500, f"{key!r}: rejected with HTTP {status} {code} (expected 4xx)"
            continue
        stored[key] = body

    # Whatever was accepted is an opaque key: readable under exactly that name.
    for key, body in stored.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    assert sorted(list_all_keys(s3, bucket)) == sorted(stored)

    new_in_tree = sorted(set(snapshot_tree(tmp_path, exclude=data_dir)) - set(tree_before))
    assert new_in_tree == [], f"files appeared outside the data dir: {new_in_tree}"
    new_in_parent = sorted(set(os.listdir(tmp_path.parent)) - parent_before)
    assert new_in_parent == [], f"files appeared next to the test dir: {new_in_parent}"
    assert _file_fingerprint(Path("/etc/passwd")) == passwd_before, "/etc/passwd changed!"
    for top in (Path("/"), Path("/tmp"), Path("/etc"), tmp_path.parent):
        leaked = [p.name for p in top.iterdir() if tag in p.name]
        assert leaked == [], f"files named after test keys appeared in {top}: {leaked}"


def test_key_length_limit_is_1024_bytes(s3, bucket):
    ok_key = "k" * 1024
    s3.put_object(Bucket=bucket, Key=ok_key, Body=b"max length key")
    assert s3.get_object(Bucket=bucket, Key=ok_key)["Body"].read() == b"max length key"

    too_long = "k" * 1025
    with expect_s3_error(400, "KeyTooLongError"):
        s3.put_object(Bucket=bucket, Key=too_long, Body=b"x")
    # multi-byte characters: 1,025 bytes in 513 characters
    with expect_s3_error(400, "KeyTooLongError"):
        s3.put_object(Bucket=bucket, Key="é" * 512 + "k", Body=b"x")
    assert list_all_keys(s3, bucket) == [ok_key]


def test_key_with_nul_byte_is_rejected_400(s3, bucket):
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="nul\x00byte", Body=b"x")
    status, code = client_error(info.value)
    assert status == 400, f"HTTP {status} {code}"
    assert list_all_keys(s3, bucket) == []
