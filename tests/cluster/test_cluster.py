"""Two Chuan nodes sharing one PostgreSQL database and one S3 bucket (scripts/cluster.sh):
what one node began, the other continues; what one node stored, the other serves; what
one node spent, the other refuses; a node killed mid-upload leaves nothing half-written.

Run with the protocol suite's venv:  .venv/bin/python -m pytest tests/cluster -q
(scripts/test.sh does). The cluster is started once for the session in a temporary directory
and stopped at its end.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "compat"))

from adrive_helpers import create_tenant, instant_challenge, instant_commit, instant_proof  # noqa: E402
from compat_helpers import ChuanServer, chuan_bin, unique_name  # noqa: E402
from cos_helpers import E_REPLAYED, assert_code, assert_ok, cos_json, new_cos_ctx  # noqa: E402
from test_hardening import s3_put_head  # noqa: E402

MiB = 1 << 20


class Cluster:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.env = self._start()
        self.a = self._node("a", self.env["NODE_A"])
        self.b = self._node("b", self.env["NODE_B"])

    def _start(self) -> dict:
        out = subprocess.run([str(REPO / "scripts" / "cluster.sh"), "start", str(self.dir)], check=True,
                             capture_output=True, text=True, timeout=900,
                             env={**os.environ, "CHUAN_BIN": str(chuan_bin())})
        lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        assert set(lines) == {"NODE_A", "NODE_B", "ROOT_AK", "ROOT_SK"}, out.stdout
        return lines

    def _node(self, name: str, url: str) -> ChuanServer:
        node = ChuanServer(data_dir=self.dir / f"node-{name}", work_dir=self.dir, name=f"node-{name}")
        node.port = int(url.rsplit(":", 1)[1])
        node.access_key, node.secret_key = self.env["ROOT_AK"], self.env["ROOT_SK"]
        return node

    def restart(self) -> None:
        self.env = self._start()

    def stop(self) -> None:
        subprocess.run([str(REPO / "scripts" / "cluster.sh"), "stop", str(self.dir)], capture_output=True, timeout=300)

    def pid(self, name: str) -> int:
        return int((self.dir / f"node-{name}" / "pid").read_text())

    def fsck(self) -> subprocess.CompletedProcess:
        """`chuan fsck` over the shared stores, run as a third process beside the nodes."""
        conf = dict(line.split("=", 1) for line in (self.dir / "rgw" / "s3.env").read_text().splitlines() if "=" in line)
        rgw_port = next(
            line.split(":")[-1].split()[0] for line in (self.dir / "rgw" / "ceph.conf").read_text().splitlines()
            if line.startswith("rgw frontends")
        )
        pg_port = (self.dir / "pg.port").read_text().strip()
        env = {
            **os.environ,
            "CHUAN_META": f"postgres://chuan@127.0.0.1:{pg_port}/chuan",
            "CHUAN_BLOBS": f"s3://chuan-blobs?endpoint=http://127.0.0.1:{rgw_port}&region={conf['S3_REGION']}",
            "AWS_ACCESS_KEY_ID": conf["S3_ACCESS_KEY"],
            "AWS_SECRET_ACCESS_KEY": conf["S3_SECRET_KEY"],
        }
        return subprocess.run([str(chuan_bin()), "fsck", "--data", str(self.dir / "fsck")], capture_output=True,
                              text=True, timeout=300, env=env)


@pytest.fixture(scope="session")
def cluster():
    c = Cluster(Path(tempfile.mkdtemp(prefix="chuan-cluster-")))
    yield c
    c.stop()


def tenant_on(cluster):
    """A new tenant and a bucket of its, created through node A; S3 clients for both nodes."""
    t = create_tenant(cluster.a)
    bucket = unique_name("cl")
    a = cluster.a.client(t.access_key, t.secret_key)
    b = cluster.b.client(t.access_key, t.secret_key)
    a.create_bucket(Bucket=bucket)
    return t, bucket, a, b


def test_an_s3_multipart_upload_begun_on_one_node_is_completed_on_the_other(cluster):
    _, bucket, a, b = tenant_on(cluster)
    p1, p2 = os.urandom(5 * MiB), os.urandom(3 * MiB + 7)
    up = a.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    e1 = a.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = b.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    listed = [p["PartNumber"] for p in b.list_parts(Bucket=bucket, Key="big", UploadId=up)["Parts"]]
    assert listed == [1, 2]
    b.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    for client in (a, b):
        assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == p1 + p2
        got = client.get_object(Bucket=bucket, Key="big", Range="bytes=5242870-5242889")["Body"].read()
        assert got == (p1 + p2)[5242870:5242890]


def test_instant_upload_on_one_node_of_content_stored_through_the_other(cluster):
    t1, bucket1, a1, _ = tenant_on(cluster)
    t2, bucket2, _, b2 = tenant_on(cluster)
    data = os.urandom(2 * MiB + 3)
    sha = hashlib.sha256(data).hexdigest()
    a1.put_object(Bucket=bucket1, Key="orig", Body=data)
    # The owner on node B: its own content, no proof needed.
    r = instant_challenge(cluster.b, (t1.access_key, t1.secret_key), bucket1, "again", len(data), sha)
    assert r.status_code == 200, r.text
    r = instant_commit(cluster.b, (t1.access_key, t1.secret_key), r.json()["challenge_id"])
    assert r.status_code == 200 and r.json().get("hit") is True, r.text
    # Another tenant on node B: a wrong proof misses, the right one hits.
    keys2 = (t2.access_key, t2.secret_key)
    c = instant_challenge(cluster.b, keys2, bucket2, "mine", len(data), sha).json()
    r = instant_commit(cluster.b, keys2, c["challenge_id"], proof="00" * 32)
    assert r.json() == {"hit": False}, r.text
    c = instant_challenge(cluster.b, keys2, bucket2, "mine", len(data), sha).json()
    r = instant_commit(cluster.b, keys2, c["challenge_id"], proof=instant_proof(c["nonce"], c["ranges"], data))
    assert r.status_code == 200 and r.json().get("hit") is True, r.text
    assert b2.get_object(Bucket=bucket2, Key="mine")["Body"].read() == data
    # A challenge issued by node A is answered on node B (challenges live in the database).
    c = instant_challenge(cluster.a, keys2, bucket2, "via-a", len(data), sha).json()
    r = instant_commit(cluster.b, keys2, c["challenge_id"], proof=instant_proof(c["nonce"], c["ranges"], data))
    assert r.json().get("hit") is True, r.text
    # ... once: replayed on node A it is spent.
    r = instant_commit(cluster.a, keys2, c["challenge_id"], proof=instant_proof(c["nonce"], c["ranges"], data))
    assert r.json().get("hit") is not True, r.text


def test_a_once_signature_used_on_one_node_is_refused_on_the_other(cluster):
    ctx_a = new_cos_ctx(cluster.a)
    ctx_b = new_cos_ctx(cluster.b, ctx_a.tenant)
    ctx_b.bucket = ctx_a.bucket
    ctx_a.upload("/once.txt", b"one")
    sign = ctx_a.sign_once("/once.txt")
    assert_ok(cos_json(ctx_a.post_json("/once.txt", {"op": "delete"}, auth=sign), "delete on A"), "delete on A")
    ctx_a.upload("/once.txt", b"two")
    r = ctx_b.post_json("/once.txt", {"op": "delete"}, auth=sign)
    assert_code(cos_json(r, "replayed on B"), E_REPLAYED, "a once signature replayed on the other node")
    ctx_b.assert_stored("/once.txt", b"two", "replayed delete")


def test_a_storage_quota_holds_under_concurrent_writes_split_over_both_nodes(cluster):
    t, bucket, a, b = tenant_on(cluster)
    quota = 10 * MiB
    r = requests.post(f"{cluster.a.endpoint}/_chuan/admin/quotas", params={"tenant": t.name, "storage_bytes": quota},
                      auth=(cluster.a.access_key, cluster.a.secret_key), timeout=30)
    assert r.status_code == 200, r.text
    body = os.urandom(MiB // 2)

    def put(i: int) -> bool:
        client = a if i % 2 else b
        try:
            client.put_object(Bucket=bucket, Key=f"k{i}", Body=body[: MiB // 2 - i])
            return True
        except client.exceptions.ClientError:
            return False

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        stored = sum(pool.map(put, range(40)))
    total = sum(o["Size"] for o in a.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert 0 < stored < 40 and total <= quota, (stored, total)
    assert total > quota - MiB // 2, f"writes were refused while room was left: {total}"


def test_the_database_down_is_a_503_and_service_resumes_by_itself(cluster):
    t, bucket, a, b = tenant_on(cluster)
    a.put_object(Bucket=bucket, Key="k", Body=b"v")
    pg_bin = max(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    stop = [str(pg_bin), "-D", str(cluster.dir / "pg"), "-m", "fast", "-w", "stop"]
    subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + stop, check=True,
                   capture_output=True, timeout=60)
    try:
        time.sleep(1.5)  # past the nodes' 1 s credential cache
        for client, key in ((a, "during-a"), (b, "during-b")):
            with pytest.raises(client.exceptions.ClientError) as e:
                client.put_object(Bucket=bucket, Key=key, Body=b"x")
            err = e.value.response
            assert err["ResponseMetadata"]["HTTPStatusCode"] == 503, err
            assert err["Error"]["Code"] == "ServiceUnavailable", err
    finally:
        cluster.restart()
    # Back by itself: the nodes reconnect on their next request.
    deadline = time.monotonic() + 20
    while True:
        try:
            assert a.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
            break
        except a.exceptions.ClientError:
            assert time.monotonic() < deadline, "service did not resume"
            time.sleep(0.2)
    b.put_object(Bucket=bucket, Key="after", Body=b"w")
    keys = [o["Key"] for o in a.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["after", "k"], keys


def test_a_node_killed_mid_upload_leaves_nothing_and_the_other_keeps_serving(cluster):
    t, bucket, a, b = tenant_on(cluster)
    b.put_object(Bucket=bucket, Key="before", Body=b"x" * 1000)
    # An upload to node A that has sent part of its body when A is killed.
    s = socket.create_connection(("127.0.0.1", cluster.a.port))
    head = s3_put_head(cluster.a, bucket, "partial", 20 * MiB, keys=(t.access_key, t.secret_key))
    s.sendall(head + os.urandom(3 * MiB))
    time.sleep(0.5)
    os.kill(cluster.pid("a"), signal.SIGKILL)
    s.close()
    # Node B serves on, reads and writes.
    assert b.get_object(Bucket=bucket, Key="before")["Body"].read() == b"x" * 1000
    b.put_object(Bucket=bucket, Key="after", Body=b"y" * 200_000)
    assert "partial" not in [o["Key"] for o in b.list_objects_v2(Bucket=bucket).get("Contents", [])]
    cluster.restart()
    a.put_object(Bucket=bucket, Key="restarted", Body=b"z")
    assert a.get_object(Bucket=bucket, Key="after")["Body"].read() == b"y" * 200_000
    res = cluster.fsck()
    assert res.returncode == 0 and "clean" in res.stdout, res.stdout + res.stderr
