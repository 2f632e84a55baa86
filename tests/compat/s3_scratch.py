"""A throwaway S3 store (Ceph's RADOS Gateway) for running the suite on the S3 BlobStore.

With CHUAN_TEST_BLOBS=s3 every `chuan` the suite starts gets CHUAN_BLOBS pointing at a bucket
of its own data directory (the same directory gives the same bucket), with the gateway's keys
in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. The gateway is started once per test session by
scripts/ceph-rgw.sh (which installs Debian's radosgw and a one-OSD Ceph cluster) in a
temporary directory, and stopped when the session ends.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
_gateway: dict | None = None


def enabled() -> bool:
    return os.environ.get("CHUAN_TEST_BLOBS", "files") == "s3"


def _start() -> dict:
    work = Path(tempfile.mkdtemp(prefix="chuan-compat-rgw-"))
    out = subprocess.run([str(REPO / "scripts" / "ceph-rgw.sh"), "start", str(work)], check=True,
                         capture_output=True, text=True, timeout=600)
    env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def stop() -> None:
        subprocess.run([str(REPO / "scripts" / "ceph-rgw.sh"), "stop", str(work)], capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)

    atexit.register(stop)
    client = boto3.client(
        "s3", endpoint_url=env["S3_ENDPOINT"], aws_access_key_id=env["S3_ACCESS_KEY"],
        aws_secret_access_key=env["S3_SECRET_KEY"], region_name=env["S3_REGION"],
        config=Config(s3={"addressing_style": "path"}),
    )
    return {"env": env, "client": client, "buckets": set()}


def blobs_env(data_dir: Path) -> dict:
    """CHUAN_BLOBS and the gateway's keys for `data_dir`'s bucket, or `{}` on file runs."""
    global _gateway
    if not enabled():
        return {}
    if _gateway is None:
        _gateway = _start()
    env = _gateway["env"]
    bucket = "chuan-" + hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]
    if bucket not in _gateway["buckets"]:
        try:
            _gateway["client"].create_bucket(Bucket=bucket)
        except _gateway["client"].exceptions.BucketAlreadyOwnedByYou:
            pass
        _gateway["buckets"].add(bucket)
    return {
        "CHUAN_BLOBS": f"s3://{bucket}?endpoint={env['S3_ENDPOINT']}&region={env['S3_REGION']}",
        "AWS_ACCESS_KEY_ID": env["S3_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": env["S3_SECRET_KEY"],
    }
