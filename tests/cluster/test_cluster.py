"""Two Chuan nodes sharing one PostgreSQL database and one S3 bucket (scripts/cluster.sh):
what one node began, the other continues (every protocol's resumable upload: S3 multipart,
UFile multipart, COS v4 and v3 slices, UpYun REST multipart and block upload, Aliyun Drive
parts); what one node stored, the other serves; what one node spent, the other refuses
(storage and request quotas, once-signatures); a queued callback is delivered once by one
of them; a node killed mid-upload leaves nothing half-written.

Run with the protocol suite's venv:  .venv/bin/python -m pytest tests/cluster -q
(scripts/test.sh does). The cluster is started once for the session in a temporary directory
and stopped at its end.
"""

from __future__ import annotations

import base64
import concurrent.futures
import ctypes
import ctypes.util
import dataclasses
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "compat"))

from adrive_helpers import (  # noqa: E402
    AdriveRaw,
    AliyunRedirect,
    create_drive_tenant,
    create_tenant,
    instant_challenge,
    instant_commit,
    instant_proof,
    proof_code,
    raw_client,
    sha1_upper,
)
from compat_helpers import ChuanServer, KiB, chuan_bin, free_port, unique_name  # noqa: E402
from cos_helpers import (  # noqa: E402
    E_REPLAYED,
    E_UNFINISHED,
    CosCtx,
    assert_access_url,
    assert_code,
    assert_ok,
    cos_json,
    import_cos_sdk,
    new_cos_ctx,
    ops,
    record_sdk_requests,
    sha1_hex,
    slices_of,
    uploadparts,
)
from test_hardening import s3_put_head  # noqa: E402
from test_upyun_block import (  # noqa: E402
    M0Account,
    assert_block,
    assert_init,
    assert_merge_result,
    make_m0_account,
    new_form_secret,
    record_m0,
    result_signature,
    split_blocks,
)
from ufile_helpers import UFILE_BLOCK, assert_sdk_ok, http_proxy, new_ufile_ctx, quoted, ufile_etag  # noqa: E402
from upyun_helpers import make_account, record_requests, upyun  # noqa: E402

MiB = 1 << 20


class Cluster:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.env = self._start()
        self.a = self._node("a", self.env["NODE_A"])
        self.b = self._node("b", self.env["NODE_B"])

    def _start(self) -> dict:
        # The callback test's receiver listens on 127.0.0.1: the nodes may deliver there.
        out = subprocess.run([str(REPO / "scripts" / "cluster.sh"), "start", str(self.dir)], check=True,
                             capture_output=True, text=True, timeout=900,
                             env={**os.environ, "CHUAN_BIN": str(chuan_bin()), "CHUAN_CALLBACK_ALLOW_PRIVATE": "true"})
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
    shutil.rmtree(c.dir, ignore_errors=True)


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


def test_an_iot_upload_token_issued_by_one_node_is_used_once_across_both(cluster):
    from ufile_helpers import (check_iot_url_answer, create_tenant as ufile_tenant, install_localhost_resolver,
                               iot_body, iot_put, iot_request_url, register_device)

    install_localhost_resolver()  # the URL may name the bucket's host (B.localhost:PORT)
    t = ufile_tenant(cluster.a)
    bucket = unique_name("iot")
    t.s3(cluster.a).create_bucket(Bucket=bucket)
    dev = register_device(cluster.a, t, bucket)
    data = os.urandom(70_000)
    r = iot_request_url(cluster.a, iot_body(dev, "f.bin", data, "plain/text"), dev.device_secret)
    url, auth = check_iot_url_answer(cluster.a, r, dev, "f.bin")
    port_a, port_b = (urllib.parse.urlsplit(n.endpoint).port for n in (cluster.a, cluster.b))
    on_b = url.replace(f":{port_a}/", f":{port_b}/", 1)
    assert on_b != url, url
    r = iot_put(on_b, auth, data)
    assert r.status_code == 200, f"the token issued by A, used on B: HTTP {r.status_code} {r.text[:300]}"
    r = iot_put(url, auth, os.urandom(70_000))
    assert r.status_code in (401, 403), f"the token replayed on A: HTTP {r.status_code} {r.text[:300]}"
    key = f"{dev.product_sn}/{dev.device_sn}/f.bin"
    assert t.s3(cluster.a).get_object(Bucket=bucket, Key=key)["Body"].read() == data


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


def test_a_key_revoked_on_one_node_is_refused_by_the_other_at_once(cluster):
    """Each node caches the credentials it reads (a signed request looks its key up more than
    once); a change on one node is announced through PostgreSQL as it commits (a trigger's
    NOTIFY) and the other forgets the key then, not when its 1 s cache runs out. Node B reads
    the key just before the revocation, so without the announcement it would accept it for
    about a second."""
    t, bucket, a, _ = tenant_on(cluster)
    waits = []
    for _ in range(5):
        extra = create_tenant(cluster.a, t.name)  # another key of the same tenant
        kb = cluster.b.client(extra.access_key, extra.secret_key)
        assert kb.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # cached by node B now
        t0 = time.monotonic()
        r = requests.delete(f"{cluster.a.endpoint}/_chuan/admin/credentials", params={"access_key": extra.access_key},
                            auth=(cluster.a.access_key, cluster.a.secret_key), timeout=10)
        assert r.status_code == 200, r.text
        while True:
            try:
                kb.list_objects_v2(Bucket=bucket)
            except kb.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "InvalidAccessKeyId", e.response
                break
            waited = time.monotonic() - t0
            assert waited < 0.25, f"node B still accepted a key revoked on node A {waited:.3f} s before"
            time.sleep(0.005)
        waits.append(time.monotonic() - t0)
    print(f"revoked on A, refused by B after {', '.join(f'{w * 1000:.0f}' for w in waits)} ms")
    assert a.list_objects_v2(Bucket=bucket)["KeyCount"] == 0, "the tenant's first key is untouched"


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
        # Chuan's own APIs say the same: retry later, not "your request was wrong".
        r = requests.post(f"{cluster.a.endpoint}/_chuan/admin/tenants", params={"name": unique_name("t")},
                          auth=(cluster.a.access_key, cluster.a.secret_key), timeout=30)
        assert r.status_code == 503, (r.status_code, r.text)
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


def test_the_blob_store_down_is_a_503_and_service_resumes_by_itself(cluster):
    t, bucket, a, b = tenant_on(cluster)
    body = os.urandom(300_000)  # over the inline limit: its bytes live in the S3 backend
    a.put_object(Bucket=bucket, Key="k", Body=body)
    pid = int((cluster.dir / "rgw" / "run" / "client.rgw.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    try:
        for client, key in ((a, "during-a"), (b, "during-b")):
            for call in (lambda: client.put_object(Bucket=bucket, Key=key, Body=os.urandom(300_000)),
                         lambda: client.get_object(Bucket=bucket, Key="k")):
                started = time.monotonic()
                with pytest.raises(client.exceptions.ClientError) as e:
                    call()
                err = e.value.response
                assert err["ResponseMetadata"]["HTTPStatusCode"] == 503, err
                assert err["Error"]["Code"] == "ServiceUnavailable", err
                # Retried briefly (object_store's default would retry for 3 minutes).
                assert time.monotonic() - started < 20, "answered late"
        # Small objects live in the database with their metadata: they keep being served.
        small = os.urandom(2000)
        a.put_object(Bucket=bucket, Key="small", Body=small)
        assert b.get_object(Bucket=bucket, Key="small")["Body"].read() == small
        listed = [o["Key"] for o in b.list_objects_v2(Bucket=bucket)["Contents"]]
        assert listed == ["k", "small"], "a refused PUT left something listed: %s" % listed
    finally:
        cluster.restart()
    deadline = time.monotonic() + 30
    while True:
        try:
            assert b.get_object(Bucket=bucket, Key="k")["Body"].read() == body
            break
        except b.exceptions.ClientError:
            assert time.monotonic() < deadline, "service did not resume"
            time.sleep(0.3)
    after = os.urandom(300_000)
    a.put_object(Bucket=bucket, Key="after", Body=after)
    assert b.get_object(Bucket=bucket, Key="after")["Body"].read() == after
    keys = [o["Key"] for o in a.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["after", "k", "small"], "nothing half-written listed: %s" % keys


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


# --------------------------------------------------------------------------
# every protocol's resumable upload: begun on node A, resumed and completed on node B


def assert_s3_on_both(cluster, keys: tuple[str, str], bucket: str, key: str, data: bytes) -> None:
    """The object reads back byte for byte through S3 on each node (and a range of it)."""
    for node in (cluster.a, cluster.b):
        s3 = node.client(*keys)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert got == data, f"S3 GET {bucket}/{key} on {node.name}: {len(got)} bytes, expected {len(data)} (or content differs)"
        mid = len(data) // 2
        got = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={mid - 10}-{mid + 9}")["Body"].read()
        assert got == data[mid - 10 : mid + 10], f"S3 ranged GET {bucket}/{key} on {node.name}"


def test_a_tus_upload_begun_on_one_node_is_finished_on_the_other(cluster):
    """tus: created and half sent through A; two PATCHes at one offset race on A and B (one
    lands, the other gets 409); the rest goes through B with the IETF draft's append; every
    HEAD agrees on the offset."""
    t, bucket, _, _ = tenant_on(cluster)
    auth = (t.access_key, t.secret_key)
    tus = {"Tus-Resumable": "1.0.0"}
    data = os.urandom(3 * MiB + 11)
    meta = f"bucket {base64.b64encode(bucket.encode()).decode()},key {base64.b64encode(b'tus/big.bin').decode()}"
    r = requests.post(f"{cluster.a.endpoint}/_chuan/tus/", auth=auth,
                      headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    assert r.status_code == 201, r.text
    path = r.headers["Location"]
    octets = {**tus, "Content-Type": "application/offset+octet-stream"}
    r = requests.patch(cluster.a.endpoint + path, auth=auth, data=data[:MiB], headers={**octets, "Upload-Offset": "0"})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(MiB)
    for node in (cluster.a, cluster.b):
        r = requests.head(node.endpoint + path, auth=auth, headers=tus)
        assert r.status_code == 200 and r.headers["Upload-Offset"] == str(MiB), (node.name, r.headers)

    def patch(node):
        return requests.patch(node.endpoint + path, auth=auth, data=data[MiB:2 * MiB],
                              headers={**octets, "Upload-Offset": str(MiB)}).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(patch, (cluster.a, cluster.b)))
    assert codes == [204, 409], f"two PATCHes at one offset on two nodes: {codes}"
    r = requests.head(cluster.b.endpoint + path, auth=auth, headers=tus)
    offset = int(r.headers["Upload-Offset"])
    assert offset == 2 * MiB, r.headers
    r = requests.patch(cluster.b.endpoint + path, auth=auth, data=data[offset:], headers={
        "Upload-Draft-Interop-Version": "10", "Content-Type": "application/partial-upload",
        "Upload-Offset": str(offset), "Upload-Complete": "?1"})
    assert r.status_code == 200 and r.headers["Upload-Complete"] == "?1", r.text
    assert_s3_on_both(cluster, auth, bucket, "tus/big.bin", data)
    r = requests.head(cluster.a.endpoint + path, auth=auth, headers=tus)
    assert r.headers["Upload-Offset"] == r.headers["Upload-Length"] == str(len(data))


def test_a_ufile_multipart_upload_begun_on_one_node_is_resumed_on_the_other(cluster):
    with http_proxy(None):
        ua = new_ufile_ctx(cluster.a)
        ub = ua.other(server=cluster.b)
        key = "cluster/mp.bin"
        data = os.urandom(3 * UFILE_BLOCK + 777)  # parts 0 and 1 on A, 2 and 3 on B
        blocks = [data[i : i + UFILE_BLOCK] for i in range(0, len(data), UFILE_BLOCK)]
        mp_a = ua.mp()
        ret, resp = mp_a.init_multipart_upload(ua.bucket, key, upload_suffix=ua.suffix)
        assert_sdk_ok(ret, resp, "init_multipart_upload on A")
        upload_id, block_size = mp_a.uploadid, mp_a.blocksize
        assert upload_id and block_size == UFILE_BLOCK, (upload_id, block_size)
        etags_a = []
        for n in (0, 1):
            r = ua.raw("PUT", key, query=f"uploadId={upload_id}&partNumber={n}",
                       content_type="application/octec-stream", data=blocks[n])
            assert r.status_code == 200 and r.headers.get("ETag"), f"part {n} on A: HTTP {r.status_code} {r.text[:300]}"
            etags_a.append(r.headers["ETag"])

        # On B the client asks which parts landed, then continues after them (3.2.11's
        # get_multi_upload_part and resumeuploadstream, every request recorded).
        mp_b = ub.mp()
        with AliyunRedirect(cluster.b.endpoint) as seen:  # rewrites none of these URLs, records them
            listed, resp = mp_b.get_multi_upload_part(ub.bucket, upload_id, upload_suffix=ub.suffix)
            assert_sdk_ok(listed, resp, "get_multi_upload_part on B")
            assert listed.get("UploadId") == upload_id and listed.get("Key") == key, listed
            parts = listed.get("Parts")
            assert isinstance(parts, list), listed
            assert [(p.get("PartNumber"), int(p.get("Size", -1))) for p in parts] == [(0, UFILE_BLOCK), (1, UFILE_BLOCK)], listed
            assert [p["ETag"].strip('"') for p in parts] == [e.strip('"') for e in etags_a], (parts, etags_a)
            stream = io.BytesIO(data)
            stream.seek(len(parts) * block_size)
            ret, resp = mp_b.resumeuploadstream(
                retrycount=1, retryinterval=0, bucket=ub.bucket, key=key, uploadid=upload_id, blocksize=block_size,
                etaglist=[p["ETag"] for p in parts], stream=stream, pausepartnumber=len(parts),
            )
        assert_sdk_ok(ret, resp, "resumeuploadstream (parts 2, 3 and finish) on B")
        sent = [(e.method, urllib.parse.urlsplit(e.url).netloc, e.query.get("partNumber")) for e in seen.exchanges]
        on_b = f"{ub.bucket}.localhost:{cluster.b.port}"
        assert sent == [("GET", on_b, None), ("PUT", on_b, "2"), ("PUT", on_b, "3"), ("POST", on_b, None)], sent
        assert ret.get("FileSize") == len(data), ret
        assert resp.etag == quoted(ufile_etag(data)), f"finish ETag {resp.etag!r}"

        for ctx in (ua, ub):
            ret, resp = ctx.fm().head_file(ctx.bucket, key)
            assert_sdk_ok(ret, resp, f"head_file on {ctx.server.name}")
            assert resp.etag == quoted(ufile_etag(data)) and resp.content_length == str(len(data)), (
                ctx.server.name, resp.etag, resp.content_length)
            g = ctx.raw("GET", key)
            assert g.status_code == 200 and g.content == data, (
                f"UFile GET on {ctx.server.name}: HTTP {g.status_code}, {len(g.content)} bytes (or content differs)")
        assert_s3_on_both(cluster, (ua.public_key, ua.private_key), ua.bucket, key, data)


def fast_uploadparts(data: bytes, slice_size: int) -> list[dict]:
    """cos_helpers.uploadparts (the v4 SHA-1 chain states), from libcrypto's SHA1_Update when
    it is there (the pure-Python one takes over a second per MiB), checked against it on a
    small sample."""
    lib = ctypes.util.find_library("crypto")
    if lib is None:
        return uploadparts(data, slice_size)

    class ShaCtx(ctypes.Structure):
        _fields_ = [("h", ctypes.c_uint32 * 5), ("nl", ctypes.c_uint32), ("nh", ctypes.c_uint32),
                    ("data", ctypes.c_uint32 * 16), ("num", ctypes.c_uint32)]

    crypto = ctypes.CDLL(lib)

    def chain(data: bytes, slice_size: int) -> list[dict]:
        ctx = ShaCtx()
        assert crypto.SHA1_Init(ctypes.byref(ctx)) == 1
        parts = []
        for off in range(0, len(data), slice_size):
            chunk = data[off : off + slice_size]
            assert crypto.SHA1_Update(ctypes.byref(ctx), chunk, ctypes.c_size_t(len(chunk))) == 1
            parts.append({"offset": off, "datalen": len(chunk), "datasha": struct.pack("<5I", *ctx.h).hex()})
        parts[-1]["datasha"] = hashlib.sha1(data).hexdigest()
        return parts

    sample = os.urandom(3000)
    assert chain(sample, 1024) == uploadparts(sample, 1024), "libcrypto's SHA-1 states differ from the helper's"
    return chain(data, slice_size)


def cos_pair(cluster) -> tuple[CosCtx, CosCtx]:
    ca = new_cos_ctx(cluster.a)
    return ca, CosCtx(server=cluster.b, tenant=ca.tenant, bucket=ca.bucket)


def assert_cos_on_both(cluster, ca: CosCtx, cb: CosCtx, path: str, data: bytes) -> None:
    for ctx in (ca, cb):
        ctx.assert_stored(path, data, f"COS stat + S3 on {ctx.server.name}")
        r = ctx.download(path)
        assert r.status_code == 200 and r.content == data, (
            f"COS download on {ctx.server.name}: HTTP {r.status_code}, {len(r.content)} bytes (or content differs)")


def test_a_cos_v4_slice_upload_begun_on_one_node_is_resumed_on_the_other(cluster):
    with http_proxy(None):
        ca, cb = cos_pair(cluster)
        path = "/cluster-v4.bin"
        data = os.urandom(4 * MiB + 512 * KiB)  # 5 slices of 1 MiB: 2 on A, 3 on B
        sl = slices_of(data, MiB)
        fields = dict(sha=sha1_hex(data), uploadparts=json.dumps(fast_uploadparts(data, MiB)))
        init = assert_ok(ca.slice_init(path, len(data), MiB, **fields), "upload_slice_init on A")
        session = init.get("session")
        assert isinstance(session, str) and session and init.get("slice_size") == MiB, init
        for off, chunk in sl[:2]:
            d = assert_ok(ca.slice_data(path, session, off, chunk), f"slice @{off} on A")
            assert "access_url" not in d, d

        # On B: the client's init meets the unfinished session (-4019) and the slice list says
        # which slices are there.
        again = assert_code(cb.slice_init(path, len(data), MiB, **fields), E_UNFINISHED, "upload_slice_init on B")
        assert again.get("data", {}).get("session") == session, f"-4019 on B must give A's session: {again}"
        lst = assert_ok(cb.slice_list(path), "upload_slice_list on B")
        assert lst.get("session") == session, lst
        assert lst.get("slice_size") == MiB and lst.get("filesize") == len(data), lst
        have = sorted((p.get("offset"), p.get("datalen")) for p in lst.get("listparts") or [])
        assert have == [(0, MiB), (MiB, MiB)], lst
        for off, chunk in sl:
            if (off, len(chunk)) not in have:
                d = assert_ok(cb.slice_data(path, session, off, chunk), f"slice @{off} on B")
                assert "access_url" not in d, d
        fin = assert_ok(cb.slice_finish(path, session, len(data), sha=sha1_hex(data)), "upload_slice_finish on B")
        assert_access_url(cb, fin.get("access_url"), path, "finish on B")
        assert_cos_on_both(cluster, ca, cb, path, data)


def test_a_cos_v3_slice_upload_begun_on_one_node_is_resumed_by_the_sdk_on_the_other(cluster, tmp_path):
    with http_proxy(None):
        ca, cb = cos_pair(cluster)
        path = "/cluster-v3.bin"
        data = os.urandom(4 * MiB + 512 * KiB)  # 5 slices of 1 MiB: 2 on A, 3 on B
        control = {"op": "upload_slice", "sha": sha1_hex(data), "filesize": str(len(data)), "slice_size": str(MiB),
                   "biz_attr": "", "insertOnly": "1"}
        ctl = assert_ok(cos_json(ca.post_form(path, control, api="v1"), "v3 control on A"), "v3 control on A")
        session = ctl.get("session")
        assert isinstance(session, str) and session and ctl.get("offset") == 0, ctl
        for off, chunk in slices_of(data, MiB)[:2]:
            f = {"op": "upload_slice", "filecontent": chunk, "session": session, "offset": str(off)}
            d = assert_ok(cos_json(ca.post_form(path, f, api="v1"), f"v3 slice @{off} on A"), f"v3 slice @{off} on A")
            assert "access_url" not in d, d

        # The v3 SDK on B: its control request learns the offset from B and it sends the rest.
        local = tmp_path / "v3.bin"
        local.write_bytes(data)
        client = cb.v3()
        sent = record_sdk_requests(client)
        sdk = import_cos_sdk("v3")
        ret = client.upload_slice_file(sdk.UploadSliceFileRequest(cb.bucket, path, str(local), MiB, ""))
        done = assert_ok(ret, "v3 SDK slice upload resumed on B")
        assert_access_url(cb, done.get("access_url"), path, "v3 resumed on B")
        assert all(r.url.startswith(f"http://{cb.host}/") for r in sent), [r.url for r in sent]
        assert ops(sent) == ["upload_slice"] * 4, [r.fields for r in sent]
        assert [int(r.fields["offset"]) for r in sent[1:]] == [2 * MiB, 3 * MiB, 4 * MiB], [r.fields for r in sent]
        assert all(r.fields.get("session") == session for r in sent[1:]), [r.fields for r in sent]
        assert_cos_on_both(cluster, ca, cb, path, data)


class Interrupted(Exception):
    pass


def test_an_upyun_resumable_put_begun_on_one_node_is_resumed_on_the_other(cluster, tmp_path):
    acct_a = make_account(cluster.a)
    acct_b = dataclasses.replace(acct_a, server=cluster.b)
    data = os.urandom(4 * MiB + 300 * KiB)  # 5 parts of 1 MiB: 0, 1 on A; 2, 3, 4 on B
    local = tmp_path / "resume.bin"
    local.write_bytes(data)
    store = upyun.FileStore(str(tmp_path / "store"))
    key = f"/cluster/resume-{os.urandom(4).hex()}.bin"

    up_a = acct_a.sdk()
    sent_a = record_requests(up_a)
    done_parts = []

    def reporter(uploaded, total, done):
        done_parts.append(uploaded)
        if len(done_parts) == 2:
            raise Interrupted()

    with open(local, "rb") as f, pytest.raises(Interrupted):
        up_a.put(key, f, checksum=True, need_resume=True, store=store, reporter=reporter, part_size=MiB)
    assert [s.header("X-Upyun-Part-Id") for s in sent_a] == ["0", "1"], [s.headers for s in sent_a]
    assert all(s.url.startswith(f"http://{acct_a.endpoint}/") for s in sent_a), [s.url for s in sent_a]
    store_key = upyun.BaseStore.get_key(acct_a.bucket, key, str(local))
    record = store.get(store_key)
    uuid = record.get("multi_uuid")
    assert record.get("next_id") == 2 and uuid, record
    # The client's record has run ahead of what the server holds (say it was saved before the
    # part's answer came): B must tell it where to continue (part id error + X-Upyun-Next-Part-Id).
    record.update(next_id=3, start=3 * MiB, end=4 * MiB)
    store.set(store_key, record)

    up_b = acct_b.sdk()
    sent_b = record_requests(up_b)
    with open(local, "rb") as f:
        up_b.put(key, f, checksum=True, need_resume=True, store=store, part_size=MiB)
    assert all(s.url.startswith(f"http://{acct_b.endpoint}/") for s in sent_b), [s.url for s in sent_b]
    seen = [(s.header("X-Upyun-Part-Id"), s.header("X-Upyun-Multi-Stage"), s.header("X-Upyun-Multi-Uuid")) for s in sent_b]
    assert seen == [("3", "upload", uuid), ("2", "upload", uuid), ("3", "upload", uuid), ("4", "upload,complete", uuid)], seen
    assert store.get(store_key) == {}, "the SDK keeps a record of a completed upload"

    for acct in (acct_a, acct_b):
        up = acct.sdk()
        buf = io.BytesIO()
        up.get(key, buf)
        assert buf.getvalue() == data, f"upyun get on {acct.server.name}: {len(buf.getvalue())} bytes (or content differs)"
        info = up.getinfo(key)
        assert info.get("file-type") == "file" and info.get("file-size") == str(len(data)), (acct.server.name, info)
    assert_s3_on_both(cluster, (acct_a.tenant.access_key, acct_a.tenant.secret_key), acct_a.bucket, key[1:], data)


def test_an_upyun_block_upload_begun_on_one_node_is_resumed_by_the_sdk_on_the_other(cluster, tmp_path):
    ma = make_m0_account(cluster.a)
    mb = dataclasses.replace(ma, server=cluster.b)
    bs = MiB
    data = os.urandom(4 * MiB + 200 * KiB)  # 5 blocks: 0, 1 on A; 2, 3, 4 on B
    blocks = split_blocks(data, bs)
    assert len(blocks) == 5
    path = f"/cluster/m0-{os.urandom(4).hex()}.bin"
    r, _ = ma.init(path, data, bs)
    ini = assert_init(r, ma.bucket, 5)
    for i in (0, 1):
        body = assert_block(ma.block(ini["save_token"], ini["token_secret"], i, blocks[i]), ma.bucket, ini, i)
    assert body["status"] == [1, 1, 0, 0, 0], body

    # B answers a re-init of the same upload with A's save_token and what A received.
    r, _ = mb.init(path, data, bs, expiration_in=2400)
    again = assert_init(r, mb.bucket, 5)
    assert again["save_token"] == ini["save_token"], (ini, again)
    assert again["status"] == [1, 1, 0, 0, 0], again

    # The 2.4.2 SDK pointed at B: its init sees that status, it sends the missing blocks, merges.
    local = tmp_path / "m0.bin"
    local.write_bytes(data)
    up = mb.sdk()
    sent = record_m0(up)
    t0 = time.time()
    with open(local, "rb") as f:
        res = up.put(path, f, multipart=True, block_size=bs)
    assert res is not None, f"the SDK gave up on B: {sent}"
    assert_merge_result(res, mb, path, len(data), t0)
    assert [s for s, _ in sent][0] == "init" and [s for s, _ in sent][-1] == "merge", sent
    assert sorted(d["block_index"] for s, d in sent if s == "block") == [2, 3, 4], sent
    assert all(d["save_token"] == ini["save_token"] for s, d in sent if s != "init"), sent
    assert_s3_on_both(cluster, (ma.tenant.access_key, ma.tenant.secret_key), ma.bucket, path[1:], data)


def test_an_aliyun_drive_upload_begun_on_one_node_is_completed_on_the_other(cluster):
    t = create_drive_tenant(cluster.a)
    ca = raw_client(cluster.a, t)  # signed in on A
    cb = AdriveRaw(cluster.b.endpoint, ca.access_token, ca.drive_id)  # the same session, on B
    data = os.urandom(4 * MiB + 300 * KiB)  # 5 parts of 1 MiB: 1, 2 on A; 3, 4, 5 on B
    chunks = [data[i : i + MiB] for i in range(0, len(data), MiB)]
    assert len(chunks) == 5
    folder = ca.create_folder("cluster")
    assert folder.status_code == 201, folder.text[:500]
    fid = folder.json()["file_id"]
    r = ca.create_file("big.bin", len(data), parent=fid, parts=5, content_hash=sha1_upper(data),
                       proof_code=proof_code(ca.access_token, data), proof_version="v1")
    assert r.status_code == 201, f"create on A: HTTP {r.status_code} {r.text[:500]}"
    created = r.json()
    assert created.get("rapid_upload") is False, created
    file_id, upload_id = created["file_id"], created["upload_id"]
    urls = {p["part_number"]: p["upload_url"] for p in created["part_info_list"]}
    assert sorted(urls) == [1, 2, 3, 4, 5], created
    for n in (1, 2):
        assert urls[n].startswith(cluster.a.endpoint + "/"), urls[n]
        p = requests.put(urls[n], data=chunks[n - 1], timeout=60)
        assert 200 <= p.status_code < 300, f"part {n} on A: HTTP {p.status_code} {p.text[:300]}"

    # On B: which parts are there, fresh URLs for the others, then complete.
    lp = cb.list_uploaded_parts(file_id, upload_id)
    assert lp.status_code == 200, f"list_uploaded_parts on B: HTTP {lp.status_code} {lp.text[:500]}"
    uploaded = lp.json().get("uploaded_parts")
    assert [(p.get("part_number"), p.get("part_size")) for p in uploaded or []] == [(1, MiB), (2, MiB)], lp.text[:500]
    missing = [n for n in range(1, 6) if n not in {p["part_number"] for p in uploaded}]
    g = cb.get_upload_url(file_id, upload_id, missing)
    assert g.status_code == 200, f"get_upload_url on B: HTTP {g.status_code} {g.text[:500]}"
    fresh = {p["part_number"]: p["upload_url"] for p in g.json()["part_info_list"]}
    assert sorted(fresh) == [3, 4, 5], g.text[:500]
    for n in missing:
        assert fresh[n].startswith(cluster.b.endpoint + "/"), fresh[n]
        p = requests.put(fresh[n], data=chunks[n - 1], timeout=60)
        assert 200 <= p.status_code < 300, f"part {n} on B: HTTP {p.status_code} {p.text[:300]}"
    done = cb.complete(file_id, upload_id, parts=5)
    assert done.status_code == 200, f"complete on B: HTTP {done.status_code} {done.text[:500]}"
    assert done.json().get("content_hash") == sha1_upper(data) and done.json().get("size") == len(data), done.text[:500]

    for c in (ca, cb):
        got = c.download(file_id)
        assert got == data, f"download through {c.endpoint}: {len(got)} bytes (or content differs)"
    assert_s3_on_both(cluster, (t.access_key, t.secret_key), t.default_drive_id, "cluster/big.bin", data)


# --------------------------------------------------------------------------
# callbacks: one queue, two delivering nodes, each callback delivered once


class SlowReceiver:
    """Answers every POST 200 after `delay` seconds (so a delivery is still in flight when the
    other node's worker looks at the queue); records every POST's form fields."""

    def __init__(self, delay: float):
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with outer.lock:
                    outer.posts.append(dict(urllib.parse.parse_qsl(body)))
                time.sleep(delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_queued_callbacks_are_delivered_once_with_two_nodes(cluster):
    rec = SlowReceiver(delay=0.8)
    try:
        t = create_tenant(cluster.a)
        bucket = unique_name("cb")
        cluster.a.client(t.access_key, t.secret_key).create_bucket(Bucket=bucket)
        acct = M0Account(server=cluster.a, tenant=t, bucket=bucket, form_secret=new_form_secret(cluster.a, t.name, bucket))
        paths = [f"/cb/{i}.bin" for i in range(6)]
        sizes = {}
        for i, path in enumerate(paths):
            data = os.urandom(1000 + i)
            sizes[path] = len(data)
            m = acct.upload_raw(path, data, MiB, **{"notify-url": rec.url, "ext-param": f"n{i}"})
            assert m.status_code == 200, f"merge of {path} on A: HTTP {m.status_code} {m.text[:300]}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with rec.lock:
                if {p.get("path") for p in rec.posts} >= set(paths):
                    break
            time.sleep(0.1)
        # Several more ticks of both nodes' workers (every 0.5 s) after the last delivery.
        time.sleep(3)
        with rec.lock:
            posts = list(rec.posts)
        counts = {path: sum(1 for p in posts if p.get("path") == path) for path in paths}
        assert counts == {path: 1 for path in paths}, f"deliveries per upload (want exactly 1 each): {counts}"
        assert len(posts) == len(paths), posts
        for p in posts:
            assert p.get("signature") == result_signature(p, acct.form_secret), p
            assert int(p["content_length"]) == sizes[p["path"]] and p["bucket_name"] == bucket, p
            assert p.get("ext-param") == f"n{paths.index(p['path'])}", p
    finally:
        rec.close()


# --------------------------------------------------------------------------
# a request allowance spent on both nodes


def test_a_request_allowance_is_shared_by_both_nodes(cluster):
    """Two tenants with an allowance of 40 requests: one alternates S3 GETs between A and B until
    refused, the other makes one GET on B (which takes a small lease beyond it) and then spends
    on A only until refused (B may hold an unspent lease then). Neither exceeds its allowance;
    after the nodes' flush (every 2 s: unspent leases go back), GETs on B are served until
    exactly the allowance has been served in all."""
    allowance = 40
    spenders = []
    for _ in range(2):
        t, bucket, a, b = tenant_on(cluster)
        a.put_object(Bucket=bucket, Key="k", Body=b"v")
        r = requests.post(f"{cluster.a.endpoint}/_chuan/admin/quotas", params={"tenant": t.name, "requests": allowance},
                          auth=(cluster.a.access_key, cluster.a.secret_key), timeout=30)
        assert r.status_code == 200, r.text
        spenders.append({"bucket": bucket, "a": a, "b": b, "served": 0, "log": []})

    def get(sp: dict, node: str) -> bool:
        """One GET on node "a" or "b": True if served, False if refused with QuotaExceeded."""
        client = sp[node]
        try:
            body = client.get_object(Bucket=sp["bucket"], Key="k")["Body"].read()
        except client.exceptions.ClientError as e:
            err = e.response
            assert err["ResponseMetadata"]["HTTPStatusCode"] == 403 and err["Error"]["Code"] == "QuotaExceeded", err
            sp["log"].append(f"{node}:refused")
            return False
        assert body == b"v"
        sp["served"] += 1
        sp["log"].append(node)
        assert sp["served"] <= allowance, f"more than the allowance served: {sp['log']}"
        return True

    alternating, a_only = spenders
    i = 0
    while get(alternating, "ab"[i % 2]):
        i += 1
    assert get(a_only, "b"), a_only["log"]
    while get(a_only, "a"):
        pass
    time.sleep(2.5)  # past both nodes' next flush
    for sp in spenders:
        before = sp["served"]
        while get(sp, "b"):
            pass
        assert sp["served"] == allowance, (
            f"served {sp['served']} GETs in all ({before} before the flush, then {sp['served'] - before} on B); "
            f"the allowance is {allowance}: {sp['log']}")
        assert not get(sp, "a") and not get(sp, "b"), "a spent allowance must stay spent on both nodes"
