"""2. Ranged GETs and 3. conditional GETs / response header overrides."""

import datetime as dt
import os

import pytest
import requests

from compat_helpers import expect_s3_error

SIZE = 1024


@pytest.fixture
def obj(s3, bucket):
    data = os.urandom(SIZE)
    key = "get/object.bin"
    etag = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]
    return bucket, key, data, etag


@pytest.mark.parametrize(
    "range_header,start,end",
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=-100", SIZE - 100, SIZE - 1),
    ],
    ids=["first-100", "open-ended", "suffix-100"],
)
def test_ranged_get_returns_206_and_content_range(s3, obj, range_header, start, end):
    bucket, key, data, _ = obj
    resp = s3.get_object(Bucket=bucket, Key=key, Range=range_header)
    body = resp["Body"].read()
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert resp["ContentRange"] == f"bytes {start}-{end}/{SIZE}"
    assert resp["ContentLength"] == end - start + 1
    assert body == data[start : end + 1]


def test_unsatisfiable_range_is_416_invalid_range(s3, obj):
    bucket, key, _, _ = obj
    with expect_s3_error(416, "InvalidRange"):
        s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={SIZE + 10}-{SIZE + 100}")


def test_suffix_range_of_empty_object_is_the_whole_empty_object(s3, bucket):
    # RFC 9110 §14.1.1: a suffix range of a zero-length representation is satisfiable, and
    # selects nothing a Content-Range can name: 200 with the empty body. (Chuan once wrapped
    # `end - 1` and sent `bytes 0-18446744073709551615/0`; found by the http_fields fuzz target.)
    s3.put_object(Bucket=bucket, Key="get/empty", Body=b"")
    resp = s3.get_object(Bucket=bucket, Key="get/empty", Range="bytes=-5")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200, resp["ResponseMetadata"]
    assert "ContentRange" not in resp, resp.get("ContentRange")
    assert resp["Body"].read() == b""
    with expect_s3_error(416, "InvalidRange"):
        s3.get_object(Bucket=bucket, Key="get/empty", Range="bytes=0-")


def test_if_none_match_with_current_etag_is_304(s3, obj):
    bucket, key, data, etag = obj
    with expect_s3_error(304):
        s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
    # control: a different ETag does not match, full object is returned
    resp = s3.get_object(Bucket=bucket, Key=key, IfNoneMatch='"00000000000000000000000000000000"')
    assert resp["Body"].read() == data


def test_if_match_with_wrong_etag_is_412(s3, obj):
    bucket, key, data, etag = obj
    with expect_s3_error(412, "PreconditionFailed"):
        s3.get_object(Bucket=bucket, Key=key, IfMatch='"00000000000000000000000000000000"')
    # control: the right ETag matches
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read() == data


def test_if_modified_since_future_is_304(s3, obj):
    bucket, key, data, _ = obj
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    with expect_s3_error(304):
        s3.get_object(Bucket=bucket, Key=key, IfModifiedSince=future)
    # control: modified since long ago -> full object
    past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    assert s3.get_object(Bucket=bucket, Key=key, IfModifiedSince=past)["Body"].read() == data


def test_if_unmodified_since_past_is_412(s3, obj):
    bucket, key, data, _ = obj
    past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    with expect_s3_error(412, "PreconditionFailed"):
        s3.get_object(Bucket=bucket, Key=key, IfUnmodifiedSince=past)
    # control: unmodified since tomorrow -> full object
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key=key, IfUnmodifiedSince=future)["Body"].read() == data


def test_head_honours_conditionals_too(s3, obj):
    bucket, key, _, etag = obj
    with expect_s3_error(304):
        s3.head_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
    with expect_s3_error(412):
        s3.head_object(Bucket=bucket, Key=key, IfMatch='"00000000000000000000000000000000"')


def test_presigned_get_response_header_overrides(s3, obj):
    bucket, key, data, _ = obj
    content_type = "text/x-chuan-test; charset=utf-8"
    disposition = 'attachment; filename="renamed.txt"'
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ResponseContentType": content_type,
            "ResponseContentDisposition": disposition,
            "ResponseCacheControl": "no-store",
        },
        ExpiresIn=300,
    )
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.content == data
    assert r.headers.get("Content-Type") == content_type
    assert r.headers.get("Content-Disposition") == disposition
    assert r.headers.get("Cache-Control") == "no-store"
