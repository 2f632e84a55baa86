"""1. Bucket create/remove and `aws s3 cp` round trips with the aws CLI."""

import re

import pytest

from compat_helpers import (
    KiB,
    MiB,
    expect_s3_error,
    file_sha256,
    multipart_etag_of_file,
    unique_name,
    write_random_file,
)

CLI_MULTIPART_CHUNK = 8 * MiB  # aws CLI default multipart_chunksize / threshold


def test_cli_mb_creates_and_rb_removes_empty_bucket(server, s3):
    name = unique_name("mb")
    server.aws("s3", "mb", f"s3://{name}")
    s3.head_bucket(Bucket=name)
    listed = server.aws("s3", "ls").stdout
    assert re.search(rf"\s{re.escape(name)}$", listed, re.M), f"`aws s3 ls` lacks {name}:\n{listed}"

    server.aws("s3", "rb", f"s3://{name}")
    with expect_s3_error(404):
        s3.head_bucket(Bucket=name)
    assert name not in server.aws("s3", "ls").stdout


@pytest.mark.parametrize(
    "size",
    [0, 1 * KiB, 100 * MiB],
    ids=["0B", "1KiB", "100MiB-multipart"],
)
def test_cli_cp_upload_download_roundtrip(server, s3, bucket, tmp_path, size):
    src = tmp_path / "src.bin"
    dst = tmp_path / "dst.bin"
    digest = write_random_file(src, size)
    key = f"cli/cp-{size}.bin"

    server.aws("s3", "cp", "--no-progress", str(src), f"s3://{bucket}/{key}")

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size
    if size > CLI_MULTIPART_CHUNK:
        # The CLI used multipart upload with 8 MiB parts: the ETag must be
        # the S3 multipart ETag over those parts.
        assert head["ETag"] == multipart_etag_of_file(src, CLI_MULTIPART_CHUNK), head["ETag"]

    server.aws("s3", "cp", "--no-progress", f"s3://{bucket}/{key}", str(dst))
    assert dst.stat().st_size == size
    assert file_sha256(dst) == digest, "downloaded bytes differ from uploaded bytes"


def test_cli_rb_refuses_non_empty_bucket(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep/me.txt", Body=b"still here")

    res = server.aws("s3", "rb", f"s3://{bucket}", check=False)
    assert res.returncode != 0, "aws s3 rb removed a non-empty bucket"
    assert "BucketNotEmpty" in res.stderr, res.stderr

    with expect_s3_error(409, "BucketNotEmpty"):
        s3.delete_bucket(Bucket=bucket)

    s3.head_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="keep/me.txt")["Body"].read() == b"still here"
