"""S3 fidelity details: GetObjectAttributes, GET/HEAD by part number, multipart checksum
types (COMPOSITE, FULL_OBJECT), conditional completes/puts/copies, header edge cases,
presigned URL limits, bucket deletion with pending uploads, bucket listing pages, listing
owners and encodings, and request ids in every answer."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
import xml.etree.ElementTree as ET
import zlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from adrive_helpers import create_tenant
from compat_helpers import (
    KiB,
    MiB,
    checksum_b64,
    expect_s3_error,
    get_body,
    multipart_etag,
    s3_error_code,
    unique_name,
)

PART_SIZES = [5 * MiB, 5 * MiB, 1 * KiB]


def xml_values(body: bytes) -> dict[str, str]:
    """First text of every element, by local name."""
    out: dict[str, str] = {}
    for el in ET.fromstring(body).iter():
        out.setdefault(el.tag.split("}")[-1], (el.text or "").strip())
    return out


def xml_has(body: bytes, name: str) -> bool:
    return any(el.tag.split("}")[-1] == name for el in ET.fromstring(body).iter())


def status_of(resp) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def composite_b64(algorithm: str, parts: list[bytes]) -> str:
    """S3 COMPOSITE checksum: the checksum of the concatenated binary part checksums."""
    raw = b"".join(base64.b64decode(checksum_b64(algorithm, p)) for p in parts)
    return checksum_b64(algorithm, raw)


def upload_parts(s3, bucket, key, upload_id, parts, algorithm=None):
    out = []
    for n, data in enumerate(parts, start=1):
        kw = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data, **kw)
        entry = {"PartNumber": n, "ETag": r["ETag"]}
        if algorithm:
            field = f"Checksum{algorithm}"
            assert r.get(field) == checksum_b64(algorithm, data), (n, r.get(field))
            entry[field] = r[field]
        out.append(entry)
    return out


def multipart_object(s3, bucket, key, parts, algorithm=None, **create_kw):
    kw = dict(create_kw)
    if algorithm:
        kw["ChecksumAlgorithm"] = algorithm
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)
    done = upload_parts(s3, bucket, key, up["UploadId"], parts, algorithm)
    resp = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": done}
    )
    return resp


@pytest.fixture(scope="module")
def mpu(server):
    """A 3-part (5 MiB, 5 MiB, 1 KiB) CRC32 multipart object and a single-part one."""
    s3 = server.client()
    b = unique_name("fid")
    s3.create_bucket(Bucket=b)
    parts = [os.urandom(n) for n in PART_SIZES]
    resp = multipart_object(s3, b, "mpu.bin", parts, algorithm="CRC32")
    single = os.urandom(3000)
    s3.put_object(Bucket=b, Key="single.bin", Body=single)
    return {"bucket": b, "key": "mpu.bin", "parts": parts, "complete": resp, "single": single}


# =========================================================================== 1. GetObjectAttributes


def test_get_object_attributes_of_multipart_object(server, mpu):
    s3 = server.client()
    parts = mpu["parts"]
    total = sum(len(p) for p in parts)
    attrs = s3.get_object_attributes(
        Bucket=mpu["bucket"],
        Key=mpu["key"],
        ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
    )
    assert attrs["ObjectSize"] == total
    assert attrs["StorageClass"] == "STANDARD"
    # GetObjectAttributes renders the ETag without the quotes of the ETag header.
    assert attrs["ETag"] == multipart_etag(parts).strip('"'), attrs["ETag"]
    assert attrs["Checksum"].get("ChecksumType") == "COMPOSITE", attrs["Checksum"]
    crc = attrs["Checksum"]["ChecksumCRC32"]
    assert crc.split("-")[0] == composite_b64("CRC32", parts), crc
    op = attrs["ObjectParts"]
    assert op["TotalPartsCount"] == 3, op
    assert op.get("IsTruncated") is False, op
    got = [(p["PartNumber"], p["Size"], p.get("ChecksumCRC32")) for p in op["Parts"]]
    want = [(n, len(p), checksum_b64("CRC32", p)) for n, p in enumerate(parts, start=1)]
    assert got == want


def test_get_object_attributes_parts_paging(server, mpu):
    s3 = server.client()
    parts = mpu["parts"]
    first = s3.get_object_attributes(
        Bucket=mpu["bucket"], Key=mpu["key"], ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert first["IsTruncated"] is True, first
    assert first["NextPartNumberMarker"] == 2, first
    assert first["MaxParts"] == 2, first
    assert first["TotalPartsCount"] == 3, first
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    second = s3.get_object_attributes(
        Bucket=mpu["bucket"], Key=mpu["key"], ObjectAttributes=["ObjectParts"], MaxParts=2, PartNumberMarker=2
    )["ObjectParts"]
    assert second.get("IsTruncated") is False, second
    assert second["PartNumberMarker"] == 2, second
    assert [(p["PartNumber"], p["Size"]) for p in second["Parts"]] == [(3, len(parts[2]))]


def test_get_object_attributes_only_what_is_asked(server, mpu):
    s3 = server.client()
    attrs = s3.get_object_attributes(Bucket=mpu["bucket"], Key=mpu["key"], ObjectAttributes=["ObjectSize"])
    assert attrs["ObjectSize"] == sum(PART_SIZES)
    for absent in ("ETag", "Checksum", "ObjectParts", "StorageClass"):
        assert absent not in attrs, (absent, attrs)
    # Last-Modified is always returned.
    assert isinstance(attrs.get("LastModified"), dt.datetime)


def test_get_object_attributes_unknown_attribute_is_400(server, mpu):
    r = server.signed_request(
        "GET", mpu["bucket"], mpu["key"], params={"attributes": ""},
        headers={"x-amz-object-attributes": "ETag,Bogus"},
    )
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "InvalidArgument", r.text[:500]


def test_get_object_attributes_of_missing_key_is_404(server, mpu):
    s3 = server.client()
    with expect_s3_error(404, "NoSuchKey"):
        s3.get_object_attributes(Bucket=mpu["bucket"], Key="nope", ObjectAttributes=["ETag"])


# =========================================================================== 2. partNumber


def _check_part_answer(resp, parts, n):
    total = sum(len(p) for p in parts)
    start = sum(len(p) for p in parts[: n - 1])
    end = start + len(parts[n - 1]) - 1
    assert resp["ContentLength"] == len(parts[n - 1])
    assert resp["ContentRange"] == f"bytes {start}-{end}/{total}"
    assert resp["PartsCount"] == 3
    assert resp["ETag"] == multipart_etag(parts)
    # A part is a ranged answer: 206 Partial Content, as for a Range header.
    assert status_of(resp) == 206, resp["ResponseMetadata"]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_get_by_part_number(server, mpu, n):
    s3 = server.client()
    resp = s3.get_object(Bucket=mpu["bucket"], Key=mpu["key"], PartNumber=n)
    assert resp["Body"].read() == mpu["parts"][n - 1]
    _check_part_answer(resp, mpu["parts"], n)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_head_by_part_number(server, mpu, n):
    s3 = server.client()
    resp = s3.head_object(Bucket=mpu["bucket"], Key=mpu["key"], PartNumber=n)
    _check_part_answer(resp, mpu["parts"], n)


def test_head_with_range_is_206(server, mpu):
    s3 = server.client()
    resp = s3.head_object(Bucket=mpu["bucket"], Key=mpu["key"], Range="bytes=0-9")
    assert resp["ContentLength"] == 10
    assert resp["ContentRange"] == f"bytes 0-9/{sum(PART_SIZES)}"
    assert status_of(resp) == 206, resp["ResponseMetadata"]


def test_part_number_beyond_parts_is_400_invalid_part(server, mpu):
    s3 = server.client()
    with expect_s3_error(400, "InvalidPart"):
        s3.get_object(Bucket=mpu["bucket"], Key=mpu["key"], PartNumber=4)
    with expect_s3_error(400):
        s3.head_object(Bucket=mpu["bucket"], Key=mpu["key"], PartNumber=4)


def test_part_number_of_single_part_object(server, mpu):
    s3 = server.client()
    data = mpu["single"]
    resp = s3.get_object(Bucket=mpu["bucket"], Key="single.bin", PartNumber=1)
    assert resp["Body"].read() == data
    assert resp["ContentLength"] == len(data)
    with expect_s3_error(400, "InvalidPart"):
        s3.get_object(Bucket=mpu["bucket"], Key="single.bin", PartNumber=2)


def test_part_number_one_of_single_part_object_is_a_ranged_answer(server, mpu):
    # S3 answers partNumber=1 of a single-part object as a range covering it all.
    s3 = server.client()
    n = len(mpu["single"])
    for op in (s3.get_object, s3.head_object):
        resp = op(Bucket=mpu["bucket"], Key="single.bin", PartNumber=1)
        assert status_of(resp) == 206, (op.__name__, resp["ResponseMetadata"])
        assert resp.get("ContentRange") == f"bytes 0-{n - 1}/{n}", op.__name__
        assert "PartsCount" not in resp, op.__name__


def test_range_and_part_number_together_is_400(server, mpu):
    s3 = server.client()
    with expect_s3_error(400):
        s3.get_object(Bucket=mpu["bucket"], Key=mpu["key"], PartNumber=1, Range="bytes=0-9")


# =========================================================================== 3. checksum types


def _two_parts():
    return [os.urandom(5 * MiB), os.urandom(777 * KiB + 3)]


@pytest.mark.parametrize("send_whole", [True, False], ids=["whole-checksum-sent", "whole-checksum-computed"])
def test_full_object_crc32_multipart(s3, bucket, send_whole):
    parts = _two_parts()
    whole = b"".join(parts)
    up = s3.create_multipart_upload(Bucket=bucket, Key="full.bin", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    assert up.get("ChecksumAlgorithm") == "CRC32", up
    assert up.get("ChecksumType") == "FULL_OBJECT", up
    done = upload_parts(s3, bucket, "full.bin", up["UploadId"], parts, "CRC32")
    kw = {"ChecksumCRC32": crc32_b64(whole), "ChecksumType": "FULL_OBJECT"} if send_whole else {}
    resp = s3.complete_multipart_upload(
        Bucket=bucket, Key="full.bin", UploadId=up["UploadId"], MultipartUpload={"Parts": done}, **kw
    )
    assert resp.get("ChecksumType") == "FULL_OBJECT", resp
    assert resp.get("ChecksumCRC32") == crc32_b64(whole), resp
    head = s3.head_object(Bucket=bucket, Key="full.bin", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32") == crc32_b64(whole), head
    assert head.get("ChecksumType") == "FULL_OBJECT", head
    got = s3.get_object(Bucket=bucket, Key="full.bin", ChecksumMode="ENABLED")
    assert got.get("ChecksumCRC32") == crc32_b64(whole)
    assert got["Body"].read() == whole


def test_default_crc32_multipart_is_composite(s3, bucket):
    parts = _two_parts()
    up = s3.create_multipart_upload(Bucket=bucket, Key="comp.bin", ChecksumAlgorithm="CRC32")
    assert up.get("ChecksumType") in (None, "COMPOSITE"), up
    done = upload_parts(s3, bucket, "comp.bin", up["UploadId"], parts, "CRC32")
    resp = s3.complete_multipart_upload(
        Bucket=bucket, Key="comp.bin", UploadId=up["UploadId"], MultipartUpload={"Parts": done}
    )
    want = f"{composite_b64('CRC32', parts)}-2"
    assert resp.get("ChecksumType") == "COMPOSITE", resp
    assert resp.get("ChecksumCRC32") == want, resp
    head = s3.head_object(Bucket=bucket, Key="comp.bin", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32") == want, head
    assert head.get("ChecksumType") == "COMPOSITE", head


def test_crc64nvme_multipart_defaults_to_full_object(s3, bucket):
    parts = _two_parts()
    whole = b"".join(parts)
    up = s3.create_multipart_upload(Bucket=bucket, Key="nvme.bin", ChecksumAlgorithm="CRC64NVME")
    assert up.get("ChecksumType") == "FULL_OBJECT", up
    done = upload_parts(s3, bucket, "nvme.bin", up["UploadId"], parts, "CRC64NVME")
    resp = s3.complete_multipart_upload(
        Bucket=bucket, Key="nvme.bin", UploadId=up["UploadId"], MultipartUpload={"Parts": done}
    )
    assert resp.get("ChecksumType") == "FULL_OBJECT", resp
    assert resp.get("ChecksumCRC64NVME") == checksum_b64("CRC64NVME", whole), resp
    head = s3.head_object(Bucket=bucket, Key="nvme.bin", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC64NVME") == checksum_b64("CRC64NVME", whole), head
    assert head.get("ChecksumType") == "FULL_OBJECT", head


def test_sha256_full_object_is_400_invalid_request(s3, bucket):
    with expect_s3_error(400, "InvalidRequest"):
        s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_sha256_upload_refuses_parts_without_sha256(server, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="sha.bin", ChecksumAlgorithm="SHA256")
    uid = up["UploadId"]
    data = os.urandom(5 * MiB)
    with expect_s3_error(400, "InvalidRequest"):
        s3.upload_part(Bucket=bucket, Key="sha.bin", UploadId=uid, PartNumber=1, Body=data, ChecksumAlgorithm="CRC32")
    r = server.signed_request("PUT", bucket, "sha.bin", params={"partNumber": "1", "uploadId": uid}, body=data)
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "InvalidRequest", r.text[:500]
    assert s3.list_parts(Bucket=bucket, Key="sha.bin", UploadId=uid).get("Parts", []) == []
    # With SHA256 the part is accepted.
    r = s3.upload_part(Bucket=bucket, Key="sha.bin", UploadId=uid, PartNumber=1, Body=data, ChecksumAlgorithm="SHA256")
    assert r.get("ChecksumSHA256") == checksum_b64("SHA256", data)
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="sha.bin", UploadId=uid)["Parts"]] == [1]


def test_complete_with_wrong_full_object_checksum_is_bad_digest(s3, bucket):
    parts = _two_parts()
    whole = b"".join(parts)
    up = s3.create_multipart_upload(Bucket=bucket, Key="bad.bin", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    uid = up["UploadId"]
    done = upload_parts(s3, bucket, "bad.bin", uid, parts, "CRC32")
    wrong = crc32_b64(whole + b"x")
    with expect_s3_error(400, "BadDigest"):
        s3.complete_multipart_upload(
            Bucket=bucket, Key="bad.bin", UploadId=uid, MultipartUpload={"Parts": done},
            ChecksumCRC32=wrong, ChecksumType="FULL_OBJECT",
        )
    with expect_s3_error(404):
        s3.head_object(Bucket=bucket, Key="bad.bin")
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="bad.bin", UploadId=uid)["Parts"]] == [1, 2]
    # The upload can still be completed with the right value.
    resp = s3.complete_multipart_upload(
        Bucket=bucket, Key="bad.bin", UploadId=uid, MultipartUpload={"Parts": done},
        ChecksumCRC32=crc32_b64(whole), ChecksumType="FULL_OBJECT",
    )
    assert resp.get("ChecksumCRC32") == crc32_b64(whole)
    assert get_body(s3, bucket, "bad.bin") == whole


# =========================================================================== 4. conditionals


def _small_mpu(s3, bucket, key):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    data = os.urandom(1000)
    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=data)
    return up["UploadId"], [{"PartNumber": 1, "ETag": r["ETag"]}], data


def test_complete_multipart_if_none_match_on_existing_key_is_412(s3, bucket):
    s3.put_object(Bucket=bucket, Key="exists.bin", Body=b"old content")
    uid, done, _ = _small_mpu(s3, bucket, "exists.bin")
    with expect_s3_error(412, "PreconditionFailed"):
        s3.complete_multipart_upload(
            Bucket=bucket, Key="exists.bin", UploadId=uid, MultipartUpload={"Parts": done}, IfNoneMatch="*"
        )
    assert get_body(s3, bucket, "exists.bin") == b"old content"
    # On a new key it succeeds.
    uid, done, data = _small_mpu(s3, bucket, "new.bin")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="new.bin", UploadId=uid, MultipartUpload={"Parts": done}, IfNoneMatch="*"
    )
    assert get_body(s3, bucket, "new.bin") == data


def test_complete_multipart_if_match(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="m.bin", Body=b"version 1")["ETag"]
    uid, done, _ = _small_mpu(s3, bucket, "m.bin")
    with expect_s3_error(412, "PreconditionFailed"):
        s3.complete_multipart_upload(
            Bucket=bucket, Key="m.bin", UploadId=uid, MultipartUpload={"Parts": done},
            IfMatch='"0123456789abcdef0123456789abcdef"',
        )
    assert get_body(s3, bucket, "m.bin") == b"version 1"
    uid, done, data = _small_mpu(s3, bucket, "m.bin")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="m.bin", UploadId=uid, MultipartUpload={"Parts": done}, IfMatch=etag
    )
    assert get_body(s3, bucket, "m.bin") == data


def test_put_object_if_match_on_missing_key_is_404(s3, bucket):
    with expect_s3_error(404, "NoSuchKey"):
        s3.put_object(Bucket=bucket, Key="missing.bin", Body=b"x", IfMatch='"0123456789abcdef0123456789abcdef"')
    with expect_s3_error(404):
        s3.head_object(Bucket=bucket, Key="missing.bin")


def test_copy_source_time_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src.bin", Body=b"copy me")
    mtime = s3.head_object(Bucket=bucket, Key="src.bin")["LastModified"]
    time.sleep(2.1)
    after = mtime + dt.timedelta(seconds=1)  # later than the object, earlier than now
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    src = {"Bucket": bucket, "Key": "src.bin"}

    for since in (after, future):
        with expect_s3_error(412, "PreconditionFailed"):
            s3.copy_object(Bucket=bucket, Key="dst1.bin", CopySource=src, CopySourceIfModifiedSince=since)
    with expect_s3_error(412, "PreconditionFailed"):
        s3.copy_object(Bucket=bucket, Key="dst2.bin", CopySource=src, CopySourceIfUnmodifiedSince=past)
    with expect_s3_error(404):
        s3.head_object(Bucket=bucket, Key="dst1.bin")
    with expect_s3_error(404):
        s3.head_object(Bucket=bucket, Key="dst2.bin")

    s3.copy_object(Bucket=bucket, Key="dst1.bin", CopySource=src, CopySourceIfModifiedSince=past)
    s3.copy_object(Bucket=bucket, Key="dst2.bin", CopySource=src, CopySourceIfUnmodifiedSince=future)
    s3.copy_object(Bucket=bucket, Key="dst3.bin", CopySource=src, CopySourceIfUnmodifiedSince=after)
    for k in ("dst1.bin", "dst2.bin", "dst3.bin"):
        assert get_body(s3, bucket, k) == b"copy me"


def _get_with_header(server, s3, bucket, key, header, value, signed):
    """GET with an extra header: signed into a SigV4 header signature (as every SDK and the
    CLI send it), or sent unsigned alongside a presigned URL."""
    if signed:
        return server.signed_request("GET", bucket, key, headers={header: value})
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    return requests.get(url, headers={header: value}, timeout=30)


@pytest.mark.parametrize("signed", [False, True], ids=["presigned", "header-signed"])
def test_if_modified_since_not_an_http_date_is_ignored(server, s3, bucket, signed):
    s3.put_object(Bucket=bucket, Key="d.txt", Body=b"dated")
    r = _get_with_header(server, s3, bucket, "d.txt", "If-Modified-Since", "2015-05-03T10:10:00Z", signed)
    assert r.status_code == 200, r.text[:500]
    assert r.content == b"dated"
    # Control: a real HTTP date in the future is honoured (304).
    r = _get_with_header(server, s3, bucket, "d.txt", "If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT", signed)
    assert r.status_code == 304


@pytest.mark.parametrize("signed", [False, True], ids=["presigned", "header-signed"])
def test_multi_range_is_ignored_with_whole_object(server, s3, bucket, signed):
    s3.put_object(Bucket=bucket, Key="r.txt", Body=b"0123456789")
    r = _get_with_header(server, s3, bucket, "r.txt", "Range", "bytes=0-1,3-4", signed)
    assert r.status_code == 200, r.text[:500]
    assert r.content == b"0123456789"
    assert "Content-Range" not in r.headers


def test_multi_range_through_boto3(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r2.txt", Body=b"0123456789")
    resp = s3.get_object(Bucket=bucket, Key="r2.txt", Range="bytes=0-1,3-4")
    assert status_of(resp) == 200
    assert resp["Body"].read() == b"0123456789"


def test_suffix_range_on_empty_object(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    r = server.signed_request("GET", bucket, "empty", headers={"Range": "bytes=-5"})
    assert r.status_code == 200, r.text[:500]
    assert r.content == b""
    assert "Content-Range" not in r.headers, r.headers


# =========================================================================== 5. presigned limits


def _drop_query(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_presigned_expiry_over_seven_days_is_400(s3, bucket):
    s3.put_object(Bucket=bucket, Key="p.txt", Body=b"p")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.txt"}, ExpiresIn=604801)
    r = requests.get(url, timeout=30)
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "AuthorizationQueryParametersError", r.text[:500]
    # The limit itself is fine.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.txt"}, ExpiresIn=604800)
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text[:500]


def test_expired_presigned_url_says_expired(s3, bucket):
    s3.put_object(Bucket=bucket, Key="e.txt", Body=b"e")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "e.txt"}, ExpiresIn=1)
    time.sleep(2.2)
    r = requests.get(url, timeout=30)
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied", r.text[:500]
    assert "expired" in xml_values(r.content).get("Message", "").lower(), r.text[:500]


def test_presigned_url_without_expires_is_400(s3, bucket):
    s3.put_object(Bucket=bucket, Key="n.txt", Body=b"n")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "n.txt"}, ExpiresIn=300)
    bad = _drop_query(url, "X-Amz-Expires")
    assert "X-Amz-Expires" not in bad
    r = requests.get(bad, timeout=30)
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "AuthorizationQueryParametersError", r.text[:500]


# =========================================================================== 6. buckets & listings


def test_delete_bucket_with_only_pending_multipart_upload(s3):
    b = unique_name("del")
    s3.create_bucket(Bucket=b)
    up = s3.create_multipart_upload(Bucket=b, Key="pending.bin")
    s3.upload_part(Bucket=b, Key="pending.bin", UploadId=up["UploadId"], PartNumber=1, Body=os.urandom(1000))
    resp = s3.delete_bucket(Bucket=b)
    assert status_of(resp) == 204
    with expect_s3_error(404):
        s3.head_bucket(Bucket=b)
    with expect_s3_error(404, "NoSuchBucket"):
        s3.list_objects_v2(Bucket=b)
    s3.create_bucket(Bucket=b)
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []
    with expect_s3_error(404, "NoSuchUpload"):
        s3.list_parts(Bucket=b, Key="pending.bin", UploadId=up["UploadId"])
    s3.delete_bucket(Bucket=b)


def test_list_buckets_pages_and_prefix(server):
    t = create_tenant(server, unique_name("lb"))
    s3 = t.s3(server)
    tag = unique_name("pg")
    names = sorted([f"{tag}-a", f"{tag}-b", f"{tag}-c", f"other-{tag}"])
    for n in names:
        s3.create_bucket(Bucket=n)

    seen, token, pages = [], None, 0
    while True:
        kw = {"MaxBuckets": 1}
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_buckets(**kw)
        pages += 1
        assert len(resp["Buckets"]) <= 1, resp["Buckets"]
        seen.extend(b["Name"] for b in resp["Buckets"])
        token = resp.get("ContinuationToken")
        if not token:
            break
        assert pages <= 10, "list_buckets paging does not end"
    assert seen == names, seen
    assert pages >= 4

    resp = s3.list_buckets(Prefix=f"{tag}-")
    assert sorted(b["Name"] for b in resp["Buckets"]) == sorted(n for n in names if n.startswith(f"{tag}-"))
    assert resp.get("Prefix") == f"{tag}-", resp
    resp = s3.list_buckets(Prefix=f"{tag}-", MaxBuckets=2)
    assert [b["Name"] for b in resp["Buckets"]] == [f"{tag}-a", f"{tag}-b"]
    resp = s3.list_buckets(Prefix=f"{tag}-", MaxBuckets=2, ContinuationToken=resp["ContinuationToken"])
    assert [b["Name"] for b in resp["Buckets"]] == [f"{tag}-c"]
    assert not resp.get("ContinuationToken")


def test_listing_owner_fields(server):
    t = create_tenant(server, unique_name("own"))
    s3 = t.s3(server)
    b = unique_name("own")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"k")
    with_owner = s3.list_objects_v2(Bucket=b, FetchOwner=True)["Contents"][0]
    assert with_owner.get("Owner", {}).get("ID") == t.name, with_owner
    without = s3.list_objects_v2(Bucket=b)["Contents"][0]
    assert "Owner" not in without, without
    v1 = s3.list_objects(Bucket=b)["Contents"][0]
    assert v1.get("Owner", {}).get("ID") == t.name, v1


def test_list_v2_empty_delimiter_is_not_echoed(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    r = server.signed_request("GET", bucket, params={"list-type": "2", "delimiter": ""})
    assert r.status_code == 200, r.text[:500]
    assert not xml_has(r.content, "Delimiter"), r.text[:1000]
    assert not xml_has(r.content, "CommonPrefixes"), r.text[:1000]
    assert b"<Key>a/b</Key>" in r.content


def test_key_with_newline_and_carriage_return(server, s3, bucket):
    key = "a\nb\rc"
    s3.put_object(Bucket=bucket, Key=key, Body=b"control chars")
    # boto3 asks for url encoding itself (and then decodes the keys) when the caller does not.
    sent = []
    s3.meta.events.register("before-send.s3.ListObjectsV2", lambda request, **_: sent.append(request.url))
    resp = s3.list_objects_v2(Bucket=bucket)
    assert "encoding-type=url" in sent[-1], sent
    assert [o["Key"] for o in resp["Contents"]] == [key]
    resp = s3.list_objects(Bucket=bucket)
    assert [o["Key"] for o in resp["Contents"]] == [key]
    # Asked for explicitly, boto3 hands back the encoded form.
    resp = s3.list_objects_v2(Bucket=bucket, EncodingType="url")
    assert [o["Key"] for o in resp["Contents"]] == ["a%0Ab%0Dc"]
    r = server.signed_request("GET", bucket, params={"list-type": "2", "encoding-type": "url"})
    assert r.status_code == 200
    assert xml_values(r.content).get("Key") == "a%0Ab%0Dc", r.text[:1000]
    assert get_body(s3, bucket, key) == b"control chars"


def _assert_request_id_matches(r: requests.Response):
    rid = r.headers.get("x-amz-request-id")
    assert rid, dict(r.headers)
    assert xml_values(r.content).get("RequestId") == rid, (rid, r.text[:500])


def test_error_request_ids_match_body(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="ok.txt", Body=b"ok")
    errors = [
        server.signed_request("GET", bucket, "missing.txt"),
        server.signed_request("GET", unique_name("nobucket"), "x"),
        server.signed_request("GET", bucket, "ok.txt", headers={"Range": "bytes=100-200"}),
        server.signed_request("PUT", bucket, params={"cors": ""}, body=b"not xml"),
        requests.get(f"{server.endpoint}/{bucket}/ok.txt", timeout=30),
        server.client(server.access_key, "wrong/secret+0123456789abcdefghijklmnop")
        .generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "ok.txt"}, ExpiresIn=300),
    ]
    errors[-1] = requests.get(errors[-1], timeout=30)
    codes = []
    for r in errors:
        assert r.status_code >= 400, r.status_code
        codes.append(s3_error_code(r.content))
        _assert_request_id_matches(r)
    assert codes == ["NoSuchKey", "NoSuchBucket", "InvalidRange", "MalformedXML", "AccessDenied", "SignatureDoesNotMatch"], codes
    ids = [r.headers["x-amz-request-id"] for r in errors]
    assert len(set(ids)) == len(ids), ids


def test_success_responses_carry_request_id(server, s3, bucket):
    for r in (
        server.signed_request("PUT", bucket, "s.txt", body=b"s"),
        server.signed_request("GET", bucket, "s.txt"),
        server.signed_request("HEAD", bucket, "s.txt"),
        server.signed_request("GET", bucket, params={"list-type": "2"}),
        server.signed_request("DELETE", bucket, "s.txt"),
    ):
        assert r.status_code < 300, r.status_code
        assert r.headers.get("x-amz-request-id"), (r.request.method, dict(r.headers))


# =========================================================================== extra: POST form ${filename}


def test_post_form_key_filename_variable_is_substituted(s3, bucket):
    """AWS POST Object: a key field containing ${filename} is replaced by the uploaded file's name."""
    post = s3.generate_presigned_post(Bucket=bucket, Key="form/${filename}", ExpiresIn=300)
    r = requests.post(post["url"], data=post["fields"], files={"file": ("lolcatz.jpg", b"meow")}, timeout=30)
    assert r.status_code == 204, r.text[:500]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["form/lolcatz.jpg"], keys
