"""14. Health, metrics and admin endpoints; reserved bucket names."""

import re

import pytest
import requests

from compat_helpers import GC_PATH, HEALTH_PATH, METRICS_PATH, STATS_PATH, expect_s3_error

SAMPLE_LINE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?\s+\S+(\s+\d+)?$")


def test_health_endpoint_is_200(server):
    r = requests.get(server.endpoint + HEALTH_PATH, timeout=5)
    assert r.status_code == 200


def test_metrics_endpoint_serves_prometheus_text(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="metrics/poke", Body=b"x")  # make sure something was counted
    r = requests.get(server.endpoint + METRICS_PATH, auth=(server.access_key, server.secret_key), timeout=5)
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith(("text/plain", "application/openmetrics-text")), r.headers
    lines = [line for line in r.text.splitlines() if line.strip()]
    assert any(line.startswith("# TYPE ") for line in lines), r.text[:1000]
    samples = [line for line in lines if not line.startswith("#")]
    assert samples, "no metric samples"
    bad = [line for line in samples if not SAMPLE_LINE.match(line)]
    assert bad == [], f"lines that are not Prometheus samples: {bad[:5]}"


def test_admin_stats_requires_root_credentials(server):
    url = server.endpoint + STATS_PATH
    assert requests.get(url, timeout=5).status_code in (401, 403)
    assert requests.get(url, auth=(server.access_key, "wrong"), timeout=5).status_code in (401, 403)
    stats = server.admin_stats()
    for field in ("logical_bytes", "physical_bytes", "objects", "blobs"):
        assert isinstance(stats[field], int) and stats[field] >= 0, stats


def test_admin_gc_requires_root_credentials(server):
    url = server.endpoint + GC_PATH + "?grace_secs=0"
    assert requests.post(url, timeout=30).status_code in (401, 403)
    assert requests.post(url, auth=("nobody", server.secret_key), timeout=30).status_code in (401, 403)
    assert isinstance(server.admin_gc(grace_secs=0), dict)


@pytest.mark.parametrize("name", ["_chuan", "_reserved-bucket"])
def test_bucket_names_starting_with_underscore_are_refused(server, s3, name):
    with expect_s3_error(400, "InvalidBucketName"):
        s3.create_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    res = server.aws("s3", "mb", f"s3://{name}", check=False)
    assert res.returncode != 0
    assert "InvalidBucketName" in res.stderr, res.stderr
    # the reserved namespace still works afterwards
    assert requests.get(server.endpoint + HEALTH_PATH, timeout=5).status_code == 200
