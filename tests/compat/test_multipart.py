"""8. Multipart uploads: resume (also across a server restart), abort and
CompleteMultipartUpload validation; 9. UploadPartCopy."""

import hashlib
import os

import pytest

from compat_helpers import (
    KiB,
    MiB,
    assert_no_object,
    expect_s3_error,
    md5_hex,
    multipart_etag,
    unique_name,
)

PART = 5 * MiB
RESUME_KEY = "resume/dir/big.bin"


def _upload_part(s3, bucket, key, upload_id, number, data):
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)["ETag"]
    assert etag == f'"{md5_hex(data)}"', f"part {number} ETag {etag} is not the part's md5"
    return etag


def _complete(s3, bucket, key, upload_id, parts):
    return s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
    )


def _start_unfinished_upload(s3, bucket):
    """Create the upload on RESUME_KEY and send parts 1 and 2 of 3."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=RESUME_KEY)["UploadId"]
    parts = [os.urandom(PART) for _ in range(3)]
    for n in (1, 2):
        _upload_part(s3, bucket, RESUME_KEY, upload_id, n, parts[n - 1])
    return upload_id, parts


def _resume_and_complete(s3, bucket, upload_id, parts):
    # Find it again by prefix (not by exact key).
    found = s3.list_multipart_uploads(Bucket=bucket, Prefix="resume/")
    uploads = [(u["Key"], u["UploadId"]) for u in found.get("Uploads", [])]
    assert uploads == [(RESUME_KEY, upload_id)], found.get("Uploads")

    listed = s3.list_parts(Bucket=bucket, Key=RESUME_KEY, UploadId=upload_id)
    got = [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed.get("Parts", [])]
    assert got == [(n, f'"{md5_hex(parts[n - 1])}"', PART) for n in (1, 2)]

    etag3 = _upload_part(s3, bucket, RESUME_KEY, upload_id, 3, parts[2])
    done = _complete(
        s3, bucket, RESUME_KEY, upload_id, [(p[0], p[1]) for p in got] + [(3, etag3)]
    )
    expected_etag = multipart_etag(parts)
    assert done["ETag"] == expected_etag

    obj = s3.get_object(Bucket=bucket, Key=RESUME_KEY)
    body = obj["Body"].read()
    assert obj["ETag"] == expected_etag
    assert obj["ContentLength"] == 3 * PART
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix="resume/").get("Uploads", []) == []


def test_unfinished_multipart_upload_is_found_by_prefix_and_resumed(s3, bucket):
    # an unrelated upload outside the prefix must not show up
    other = s3.create_multipart_upload(Bucket=bucket, Key="other/thing.bin")["UploadId"]
    upload_id, parts = _start_unfinished_upload(s3, bucket)
    _resume_and_complete(s3, bucket, upload_id, parts)
    s3.abort_multipart_upload(Bucket=bucket, Key="other/thing.bin", UploadId=other)


def test_unfinished_multipart_upload_survives_server_restart(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    bucket = unique_name("mpu-restart")
    s3.create_bucket(Bucket=bucket)
    upload_id, parts = _start_unfinished_upload(s3, bucket)

    srv.restart()  # SIGTERM (must exit 0), start again on the same data dir

    _resume_and_complete(srv.client(), bucket, upload_id, parts)


def test_aborted_upload_is_gone(s3, bucket):
    key = "abort/me.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    _upload_part(s3, bucket, key, upload_id, 1, os.urandom(64 * KiB))
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    with expect_s3_error(404, "NoSuchUpload"):
        s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    with expect_s3_error(404, "NoSuchUpload"):
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"late")
    ids = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert upload_id not in ids
    assert_no_object(s3, bucket, key)


def test_complete_with_small_non_last_part_is_entity_too_small(s3, bucket):
    key = "mpu/too-small.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = _upload_part(s3, bucket, key, upload_id, 1, os.urandom(1 * MiB))
    e2 = _upload_part(s3, bucket, key, upload_id, 2, os.urandom(1 * MiB))
    with expect_s3_error(400, "EntityTooSmall"):
        _complete(s3, bucket, key, upload_id, [(1, e1), (2, e2)])
    assert_no_object(s3, bucket, key)


def test_complete_with_parts_out_of_order_is_invalid_part_order(s3, bucket):
    key = "mpu/order.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = _upload_part(s3, bucket, key, upload_id, 1, os.urandom(PART))
    e2 = _upload_part(s3, bucket, key, upload_id, 2, os.urandom(PART))
    with expect_s3_error(400, "InvalidPartOrder"):
        _complete(s3, bucket, key, upload_id, [(2, e2), (1, e1)])
    assert_no_object(s3, bucket, key)


@pytest.mark.parametrize("bad", ["wrong-etag", "missing-part-number"])
def test_complete_with_unknown_part_is_invalid_part(s3, bucket, bad):
    key = f"mpu/invalid-part-{bad}.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = _upload_part(s3, bucket, key, upload_id, 1, os.urandom(PART))
    e2 = _upload_part(s3, bucket, key, upload_id, 2, os.urandom(1 * KiB))
    if bad == "wrong-etag":
        parts = [(1, e1), (2, '"0123456789abcdef0123456789abcdef"')]
    else:
        parts = [(1, e1), (3, e2)]
    with expect_s3_error(400, "InvalidPart"):
        _complete(s3, bucket, key, upload_id, parts)
    assert_no_object(s3, bucket, key)
    # the upload itself is still there and can be completed properly
    done = _complete(s3, bucket, key, upload_id, [(1, e1), (2, e2)])
    assert done["ETag"].endswith('-2"')


def test_upload_part_copy_with_range(s3, bucket):
    src = os.urandom(12 * MiB)
    s3.put_object(Bucket=bucket, Key="upc/source.bin", Body=src)
    key = "upc/assembled.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    r1 = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "upc/source.bin"},
        CopySourceRange=f"bytes=0-{PART - 1}",
    )
    r2 = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=2,
        CopySource=f"{bucket}/upc/source.bin",
    )
    tail = os.urandom(100 * KiB)
    e3 = _upload_part(s3, bucket, key, upload_id, 3, tail)

    assert r1["CopyPartResult"]["ETag"] == f'"{md5_hex(src[:PART])}"'
    assert r2["CopyPartResult"]["ETag"] == f'"{md5_hex(src)}"'

    done = _complete(
        s3,
        bucket,
        key,
        upload_id,
        [(1, r1["CopyPartResult"]["ETag"]), (2, r2["CopyPartResult"]["ETag"]), (3, e3)],
    )
    expected = src[:PART] + src + tail
    assert done["ETag"] == multipart_etag([src[:PART], src, tail])
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(body) == len(expected)
    assert body == expected
