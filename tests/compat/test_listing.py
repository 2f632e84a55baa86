"""4. Listing: pagination over 1,100 keys (v1 and v2), delimiters,
StartAfter, EncodingType=url, and `aws s3 ls`."""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_plus

import pytest

from compat_helpers import unique_name

N_KEYS = 1100


def _key(i: int) -> str:
    # 11 "directories" of 100 keys each: many/00/ .. many/10/
    return f"many/{i // 100:02d}/key-{i:04d}"


@pytest.fixture(scope="module")
def big_bucket(server):
    s3 = server.client()
    name = unique_name("list")
    s3.create_bucket(Bucket=name)
    keys = [_key(i) for i in range(N_KEYS)]

    def put(k):
        s3.put_object(Bucket=name, Key=k, Body=k.encode())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, keys))
    return name, sorted(keys)


def test_list_v2_paginates_1100_keys_exactly_once(s3, big_bucket):
    bucket, keys = big_bucket
    seen, pages, token = [], [], None
    while True:
        kw = dict(Bucket=bucket, MaxKeys=1000)
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        page = [o["Key"] for o in resp.get("Contents", [])]
        assert resp["KeyCount"] == len(page)
        pages.append(len(page))
        seen.extend(page)
        if not resp["IsTruncated"]:
            assert "NextContinuationToken" not in resp
            break
        token = resp["NextContinuationToken"]
        assert len(pages) < 10, "pagination does not terminate"
    assert pages == [1000, 100]
    assert seen == keys, "keys missing, duplicated or out of order"


def test_list_v1_paginates_with_marker(s3, big_bucket):
    bucket, keys = big_bucket
    seen, pages, marker = [], [], ""
    while True:
        resp = s3.list_objects(Bucket=bucket, MaxKeys=1000, Marker=marker)
        page = [o["Key"] for o in resp.get("Contents", [])]
        pages.append(len(page))
        seen.extend(page)
        if not resp["IsTruncated"]:
            break
        # Without a delimiter S3 need not send NextMarker; the last key is the marker.
        marker = resp.get("NextMarker") or page[-1]
        assert len(pages) < 10, "pagination does not terminate"
    assert pages == [1000, 100]
    assert seen == keys


def test_list_with_delimiter_returns_common_prefixes(s3, big_bucket):
    bucket, _ = big_bucket
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top.get("CommonPrefixes", [])] == ["many/"]
    assert top.get("Contents", []) == []

    resp = s3.list_objects_v2(Bucket=bucket, Prefix="many/", Delimiter="/")
    prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
    assert prefixes == [f"many/{d:02d}/" for d in range(11)]
    assert resp.get("Contents", []) == []
    assert resp["KeyCount"] == 11

    leaf = s3.list_objects_v2(Bucket=bucket, Prefix="many/03/", Delimiter="/")
    assert [o["Key"] for o in leaf["Contents"]] == [_key(i) for i in range(300, 400)]
    assert leaf.get("CommonPrefixes", []) == []


def test_list_with_delimiter_paginates_common_prefixes(s3, big_bucket):
    bucket, _ = big_bucket
    got, token = [], None
    for _ in range(10):
        kw = dict(Bucket=bucket, Prefix="many/", Delimiter="/", MaxKeys=4)
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        got.extend(p["Prefix"] for p in resp.get("CommonPrefixes", []))
        if not resp["IsTruncated"]:
            break
        token = resp["NextContinuationToken"]
    assert got == [f"many/{d:02d}/" for d in range(11)]


def test_list_v2_start_after(s3, big_bucket):
    bucket, keys = big_bucket
    resp = s3.list_objects_v2(Bucket=bucket, StartAfter=keys[549])
    assert [o["Key"] for o in resp["Contents"]] == keys[550:]
    assert resp["IsTruncated"] is False


def test_list_encoding_type_url(s3, bucket):
    odd = ["dir with space/ünï cødé+plus.txt", "dir with space/naïve 文件.bin", "plain.txt"]
    for k in odd:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")

    # Explicit EncodingType: botocore hands back the raw (encoded) values.
    resp = s3.list_objects_v2(Bucket=bucket, EncodingType="url")
    assert resp.get("EncodingType") == "url"
    raw = [o["Key"] for o in resp["Contents"]]
    for k in raw:
        assert " " not in k and k.isascii(), f"key not URL-encoded: {k!r}"
    assert sorted(unquote_plus(k) for k in raw) == sorted(odd)

    resp = s3.list_objects_v2(Bucket=bucket, EncodingType="url", Delimiter="/")
    prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
    assert [unquote_plus(p) for p in prefixes] == ["dir with space/"]
    assert all(" " not in p for p in prefixes)

    # Default calls: botocore requests url encoding itself and decodes it.
    v1 = s3.list_objects(Bucket=bucket)
    assert sorted(o["Key"] for o in v1["Contents"]) == sorted(odd)
    v2 = s3.list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in v2["Contents"]) == sorted(odd)


def _cli_ls_keys(stdout: str) -> list[str]:
    out = []
    for line in stdout.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4:
            out.append(parts[3])
    return out


def test_cli_ls_recursive_and_delimited(server, big_bucket):
    bucket, keys = big_bucket
    rec = server.aws("s3", "ls", "--recursive", f"s3://{bucket}/").stdout
    assert _cli_ls_keys(rec) == keys

    dirs = server.aws("s3", "ls", f"s3://{bucket}/many/").stdout
    pres = [line.split()[-1] for line in dirs.splitlines() if line.strip().startswith("PRE ")]
    assert pres == [f"{d:02d}/" for d in range(11)], dirs
