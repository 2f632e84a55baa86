"""6. Server-side copy and content deduplication (admin stats), and
7. multi-object delete.

The stats tests use their own server instance so no other test's objects
(or a background GC) can move the counters under them.
"""

import os

from compat_helpers import MiB, list_all_keys, md5_hex, unique_name

# How far physical_bytes may move for content that must be deduplicated.
# (Pure content addressing gives exactly 0; allow a little for accounting
# details such as per-blob headers, but far below the object size.)
DEDUP_SLACK = 64 * 1024


def _delta(before, after):
    return {k: after[k] - before[k] for k in ("logical_bytes", "physical_bytes", "objects", "blobs")}


def test_same_content_under_two_keys_is_stored_once(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    bucket = unique_name("dedup")
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(1 * MiB)

    before = srv.admin_stats()
    s3.put_object(Bucket=bucket, Key="one.bin", Body=data)
    s3.put_object(Bucket=bucket, Key="dir/two.bin", Body=data)
    d = _delta(before, srv.admin_stats())

    assert d["logical_bytes"] == 2 * MiB, d
    assert abs(d["physical_bytes"] - 1 * MiB) <= DEDUP_SLACK, d
    assert d["objects"] == 2, d
    assert d["blobs"] == 1, d
    assert s3.get_object(Bucket=bucket, Key="dir/two.bin")["Body"].read() == data


def test_copy_object_is_identical_and_deduplicated(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    src_bucket, dst_bucket = unique_name("src"), unique_name("dst")
    s3.create_bucket(Bucket=src_bucket)
    s3.create_bucket(Bucket=dst_bucket)
    data = os.urandom(4 * MiB)
    s3.put_object(
        Bucket=src_bucket,
        Key="orig.bin",
        Body=data,
        ContentType="application/x-chuan",
        Metadata={"colour": "blue"},
    )

    before = srv.admin_stats()
    s3.copy_object(Bucket=src_bucket, Key="same-bucket-copy.bin", CopySource={"Bucket": src_bucket, "Key": "orig.bin"})
    resp = s3.copy_object(Bucket=dst_bucket, Key="x/copy.bin", CopySource=f"{src_bucket}/orig.bin")
    d = _delta(before, srv.admin_stats())

    assert resp["CopyObjectResult"]["ETag"] == f'"{md5_hex(data)}"'
    for b, k in ((src_bucket, "same-bucket-copy.bin"), (dst_bucket, "x/copy.bin")):
        got = s3.get_object(Bucket=b, Key=k)
        assert got["Body"].read() == data
        assert got["ContentType"] == "application/x-chuan"
        assert got["Metadata"] == {"colour": "blue"}
    assert d["logical_bytes"] == 2 * len(data), d
    assert d["objects"] == 2, d
    assert d["physical_bytes"] <= DEDUP_SLACK, f"copy stored the data again: {d}"
    assert d["blobs"] == 0, d


def test_cli_cp_between_buckets_is_identical_and_deduplicated(fresh_server, tmp_path):
    srv = fresh_server
    s3 = srv.client()
    a, b = unique_name("clia"), unique_name("clib")
    s3.create_bucket(Bucket=a)
    s3.create_bucket(Bucket=b)
    # below the CLI's 8 MiB multipart threshold, so this is a CopyObject
    data = os.urandom(3 * MiB)
    s3.put_object(Bucket=a, Key="src/file.bin", Body=data)

    before = srv.admin_stats()
    srv.aws("s3", "cp", "--no-progress", f"s3://{a}/src/file.bin", f"s3://{b}/dst/file.bin")
    d = _delta(before, srv.admin_stats())

    assert s3.get_object(Bucket=b, Key="dst/file.bin")["Body"].read() == data
    assert d["logical_bytes"] == len(data), d
    assert d["physical_bytes"] <= DEDUP_SLACK, f"copy stored the data again: {d}"


def test_delete_objects_reports_all_including_missing(s3, bucket):
    keys = [f"del/k{i}" for i in range(5)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    victims = keys[:4] + ["del/never-existed"]

    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in victims]})

    assert sorted(d["Key"] for d in resp.get("Deleted", [])) == sorted(victims)
    assert resp.get("Errors", []) == []
    assert list_all_keys(s3, bucket, "del/") == ["del/k4"]
    assert s3.get_object(Bucket=bucket, Key="del/k4")["Body"].read() == b"del/k4"


def test_delete_objects_quiet_mode_lists_nothing_but_deletes(s3, bucket):
    keys = [f"quiet/k{i}" for i in range(3)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
    )
    assert resp.get("Deleted", []) == []
    assert resp.get("Errors", []) == []
    assert list_all_keys(s3, bucket, "quiet/") == []
