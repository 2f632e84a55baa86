"""Chaos: uploads in every protocol while the server is killed (-9) and restarted.

Workers upload unique keys with random contents through S3 (single and multipart), UFile,
UpYun, Tencent COS, Aliyun Drive, an IoT device and tus (resumed across the restarts), alongside clients that stall after one
byte and clients that trickle. The server is killed with SIGKILL at random moments and
restarted on the same data directory, several times. Afterwards:

* every upload the server acknowledged is there, byte for byte;
* an upload that was in flight at a kill is either absent or complete — no object anywhere
  holds anything but the whole content its key was uploaded with (nothing partial is visible);
* no staged data is left over, and `chuan fsck` is clean.

Bounded: 30 s of chaos, about a minute in all.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import threading
import time

import pytest
import requests

from adrive_helpers import AdriveRaw, create_drive_tenant, create_tenant
from compat_helpers import MiB, unique_name
from cos_helpers import new_cos_ctx, sha1_hex
from test_hardening import s3_put_head
from ufile_helpers import iot_body, iot_put, iot_request_url, new_ufile_ctx, register_device
from upyun_helpers import UpyunRaw, make_account

CHAOS_SECS = 30
KILLS = 4


class Ledger:
    """What was attempted (key → sha256 of its only content) and what was acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.expected: dict[tuple[str, str], str] = {}
        self.acked: set[tuple[str, str]] = set()
        self.errors: list[str] = []

    def attempt(self, bucket: str, key: str, data: bytes) -> None:
        with self.lock:
            assert (bucket, key) not in self.expected
            self.expected[(bucket, key)] = hashlib.sha256(data).hexdigest()

    def ack(self, bucket: str, key: str) -> None:
        with self.lock:
            self.acked.add((bucket, key))


def payload(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 777, 4096, 65_536, 300_000, 1_500_000])
    return rng.randbytes(size)


def worker(name, stop: threading.Event, ledger: Ledger, attempt_one) -> None:
    """Attempts uploads until stopped. Failing to reach the server (it is down, or was killed
    mid-request) is expected; any other failure is recorded."""
    from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    rng = random.Random(name)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            attempt_one(rng, f"{name}-{n}")
        except (requests.ConnectionError, requests.Timeout, OSError, EndpointConnectionError, ConnectionClosedError, ReadTimeoutError):
            time.sleep(0.05)
        except ClientError as e:
            ledger.errors.append(f"{name}: {e.response.get('Error')} HTTP {e.response.get('ResponseMetadata', {}).get('HTTPStatusCode')}")
        except Exception as e:  # noqa: BLE001
            if "Connection" in str(e) or "connect" in str(e):
                time.sleep(0.05)
            else:
                ledger.errors.append(f"{name}: {type(e).__name__}: {e}")


def test_kill_9_during_uploads_in_every_protocol_loses_only_unanswered_writes(server_factory):
    srv = server_factory(env={"CHUAN_BODY_TIMEOUT_SECS": "3", "CHUAN_BODY_MIN_BYTES": "1024"}, name="chaos")
    ledger = Ledger()
    tenant = create_tenant(srv)
    s3_bucket = unique_name("chaos")
    srv.client(tenant.access_key, tenant.secret_key).create_bucket(Bucket=s3_bucket)
    uf = new_ufile_ctx(srv)
    up = make_account(srv)
    cos = new_cos_ctx(srv)
    drive = create_drive_tenant(srv)
    dev = register_device(srv, tenant, s3_bucket)

    def s3_once(rng, key):
        data = payload(rng)
        ledger.attempt(s3_bucket, key, data)
        srv.client(tenant.access_key, tenant.secret_key).put_object(Bucket=s3_bucket, Key=key, Body=data)
        ledger.ack(s3_bucket, key)

    def s3_multipart(rng, key):
        parts = [rng.randbytes(5 * MiB), rng.randbytes(rng.randrange(1, 300_000))]
        ledger.attempt(s3_bucket, key, b"".join(parts))
        c = srv.client(tenant.access_key, tenant.secret_key)
        up_id = c.create_multipart_upload(Bucket=s3_bucket, Key=key)["UploadId"]
        etags = [c.upload_part(Bucket=s3_bucket, Key=key, UploadId=up_id, PartNumber=i + 1, Body=p)["ETag"] for i, p in enumerate(parts)]
        c.complete_multipart_upload(
            Bucket=s3_bucket,
            Key=key,
            UploadId=up_id,
            MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]},
        )
        ledger.ack(s3_bucket, key)

    def ufile_once(rng, key):
        data = payload(rng)
        ledger.attempt(uf.bucket, key, data)
        r = uf.raw("PUT", key, data=data, content_type="application/octet-stream", timeout=20)
        if r.status_code == 200:
            ledger.ack(uf.bucket, key)

    def upyun_once(rng, key):
        data = payload(rng)
        ledger.attempt(up.bucket, key, data)
        r = UpyunRaw(srv.endpoint, up.bucket, up.operator, up.password).request("PUT", key, body=data)
        if r.status_code == 200:
            ledger.ack(up.bucket, key)

    def cos_once(rng, key):
        data = payload(rng)[:1_000_000]
        ledger.attempt(cos.bucket, key, data)
        f = {"op": "upload", "filecontent": data, "sha": sha1_hex(data), "biz_attr": "", "insertOnly": "1"}
        r = cos.post_form("/" + key, f, timeout=20)
        if r.status_code == 200 and r.json().get("code") == 0:
            ledger.ack(cos.bucket, key)

    def adrive_once(rng, key):
        data = payload(rng)
        raw = AdriveRaw(srv.endpoint, access_token(), drive.default_drive_id, bearer=True)
        r = raw.create_file(key, len(data), parts=1)
        if r.status_code != 201:
            return
        created = r.json()
        ledger.attempt(drive.default_drive_id, created["file_name"], data)
        url = created["part_info_list"][0]["upload_url"]
        if requests.put(url, data=data, timeout=20).status_code != 200:
            return
        if raw.complete(created["file_id"], created["upload_id"]).status_code == 200:
            ledger.ack(drive.default_drive_id, created["file_name"])

    tokens: dict[str, str] = {}

    def access_token() -> str:
        if "t" not in tokens:
            r = requests.post(
                srv.endpoint + "/v2/account/token",
                json={"refresh_token": drive.refresh_token, "grant_type": "refresh_token"},
                timeout=10,
            )
            tokens["t"] = r.json()["access_token"]
        return tokens["t"]

    def iot_once(rng, key):
        data = payload(rng)[:200_000]
        name = key + ".log"
        r = iot_request_url(srv, iot_body(dev, name, data), dev.device_secret)
        if r.status_code != 200:
            return
        body = r.json()
        ledger.attempt(s3_bucket, f"{dev.product_sn}/{dev.device_sn}/{name}", data)
        if iot_put(body["URL"], body["Authorization"], data).status_code == 200:
            ledger.ack(s3_bucket, f"{dev.product_sn}/{dev.device_sn}/{name}")

    def tus_once(rng, key):
        """tus: created, then sent in pieces; across kills it resumes from the offset a HEAD
        reports (only durable bytes count), so an acknowledged upload went through restarts."""
        data = payload(rng) + rng.randbytes(rng.randrange(1, 400_000))
        key = "tus-" + key
        base = srv.endpoint + "/_chuan/tus/"
        auth = (tenant.access_key, tenant.secret_key)
        tus = {"Tus-Resumable": "1.0.0"}
        meta = f"bucket {base64.b64encode(s3_bucket.encode()).decode()},key {base64.b64encode(key.encode()).decode()}"
        ledger.attempt(s3_bucket, key, data)
        r = requests.post(base, auth=auth, headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
                          timeout=10)
        if r.status_code != 201:
            return
        url = srv.endpoint + r.headers["Location"]
        offset, piece = 0, max(1, len(data) // 3)
        for _ in range(60):
            try:
                r = requests.patch(url, auth=auth, data=data[offset:offset + piece], timeout=10, headers={
                    **tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
                if r.status_code not in (204, 409):
                    return  # e.g. 503 while restarting: the upload is abandoned, never visible
                if r.status_code == 204:
                    offset = int(r.headers["Upload-Offset"])
                else:
                    offset = int(requests.head(url, auth=auth, headers=tus, timeout=10).headers["Upload-Offset"])
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.3)
                try:
                    h = requests.head(url, auth=auth, headers=tus, timeout=10)
                    if h.status_code != 200:
                        return
                    offset = int(h.headers["Upload-Offset"])
                except (requests.ConnectionError, requests.Timeout):
                    continue
            if offset == len(data):
                ledger.ack(s3_bucket, key)
                return

    def stalled_client(rng, key):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        # Past the in-memory head (96 KiB), so a temporary file is being written when it stalls.
        head = s3_put_head(srv, s3_bucket, "stalled-" + key, 1 * MiB, keys=(tenant.access_key, tenant.secret_key))
        s.sendall(head + b"x" * rng.choice([1, 200 * 1024]))
        time.sleep(rng.uniform(0.5, 5))
        s.close()

    def slow_client(rng, key):
        # 10 KiB/s: slow, but within the body rule (1 KiB per 3 s), so it may complete.
        ledger.attempt(s3_bucket, "slow-" + key, b"s" * 64 * 1024)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(s3_put_head(srv, s3_bucket, "slow-" + key, 64 * 1024, keys=(tenant.access_key, tenant.secret_key)))
        for _ in range(64):
            s.sendall(b"s" * 1024)
            time.sleep(0.1)
        s.settimeout(10)
        if s.recv(64).startswith(b"HTTP/1.1 200"):
            ledger.ack(s3_bucket, "slow-" + key)
        s.close()

    stop = threading.Event()
    kinds = {
        "s3": s3_once,
        "s3mp": s3_multipart,
        "ufile": ufile_once,
        "upyun": upyun_once,
        "cos": cos_once,
        "adrive": adrive_once,
        "iot": iot_once,
        "tus": tus_once,
        "stall": stalled_client,
        "slow": slow_client,
    }
    threads = [threading.Thread(target=worker, args=(k, stop, ledger, f), daemon=True) for k, f in kinds.items()]
    for t in threads:
        t.start()
    rng = random.Random(12)
    started = time.monotonic()
    for _ in range(KILLS):
        time.sleep(rng.uniform(2, CHAOS_SECS / KILLS - 2))
        srv.kill9()
        time.sleep(rng.uniform(0, 0.5))
        tokens.clear()
        srv.start()
    time.sleep(max(0.0, CHAOS_SECS - (time.monotonic() - started)))
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not ledger.errors, "unexpected client errors:\n" + "\n".join(ledger.errors[:20])

    # Every acknowledged upload is intact; every object is whole.
    root = srv.client()
    by_bucket: dict[str, dict[str, str]] = {}
    for (bucket, key), sha in ledger.expected.items():
        by_bucket.setdefault(bucket, {})[key] = sha
    missing, partial, strays = [], [], []
    for bucket, keys in by_bucket.items():
        listed = set()
        for page in root.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            listed.update(o["Key"] for o in page.get("Contents", []))
        for key in listed:
            if key not in keys:
                strays.append((bucket, key))  # a stalled body stored, or a key nobody sent
                continue
            got = hashlib.sha256(root.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
            if got != keys[key]:
                partial.append((bucket, key, got))
        for key in keys:
            if (bucket, key) in ledger.acked and key not in listed:
                missing.append((bucket, key))
    acked = len(ledger.acked)
    print(f"chaos: {len(ledger.expected)} uploads attempted, {acked} acknowledged, over {KILLS} kills; "
          f"per bucket: { {b: sum(1 for x, _ in ledger.acked if x == b) for b in by_bucket} }")
    assert acked >= 30, f"only {acked} uploads were acknowledged in {CHAOS_SECS} s: the chaos tested little"
    assert not missing, f"{len(missing)} acknowledged uploads lost: {missing[:10]}"
    assert not partial, f"objects with other bytes than their upload's: {partial[:10]}"
    assert not strays, f"objects nobody uploaded: {strays[:10]}"
    protocols = {b for b, _ in ledger.acked}
    assert len(protocols) >= 5, f"acknowledged uploads came from only {protocols}"
    tus_acked = sum(1 for _, k in ledger.acked if k.startswith("tus-"))
    print(f"chaos: {tus_acked} tus uploads acknowledged")
    assert tus_acked >= 5, f"only {tus_acked} tus uploads were acknowledged"

    srv.stop_expect_clean_exit()
    srv.assert_fsck_clean()
    assert srv.tmp_entries() == [], f"staged data left after a clean restart: {srv.tmp_entries()[:10]}"
    srv.start()  # the fixture stops it
