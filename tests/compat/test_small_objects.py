"""Small objects (issue 15): bodies of at most 96 KiB are kept inline in the metadata store and
commit in the same group-committed transaction as their object row.

* kill -9 during a burst of 10,000 small PUTs (boto3, 16 connections): every acknowledged
  object is intact after the restart, nothing partial is listed or readable, no staged data is
  left behind and `chuan fsck` is clean;
* a small body that lies about its length (shorter than declared and cut off; longer than
  declared with a digest of what was sent) is refused and stores nothing: no object, no blob,
  no bytes counted against the bucket;
* small objects are stored once whatever protocol writes them, read back whole and in ranges,
  and the boundary sizes (96 KiB, 96 KiB + 1) land on each side of it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from compat_helpers import HEALTH_PATH, KiB, assert_no_object, list_all_keys, recv_all, s3_error_code, unique_name

INLINE_MAX = 96 * KiB  # --inline-max-bytes default
BURST = 10_000
CONNECTIONS = 16
# Sizes of the burst's bodies: mostly 4 KiB, with the edges of the inline threshold and a few
# that go to files.
SIZES = [4096] * 12 + [0, 1, 1000, 50_000, INLINE_MAX, INLINE_MAX + 1, 300_000]


def content(key: str, size: int) -> bytes:
    """The only content `key` is ever uploaded with (reproducible from the key)."""
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def size_of(i: int) -> int:
    return SIZES[i % len(SIZES)]


def test_kill9_during_a_burst_of_small_puts_loses_only_unanswered_writes(server_factory):
    srv = server_factory(name="burst", env={"CHUAN_TENANT_REQUESTS_PER_SEC": "0", "CHUAN_TENANT_UPLOADS": "0"})
    bucket = unique_name("burst")
    s3 = srv.client(max_pool_connections=CONNECTIONS, read_timeout=30)
    s3.create_bucket(Bucket=bucket)
    key_of = lambda i: f"small/{i:05d}"  # noqa: E731

    acked: set[int] = set()
    lock = threading.Lock()
    next_i = iter(range(BURST))
    # Killed once a random share of the burst has been acknowledged.
    kill_after = random.Random().randint(BURST // 5, BURST // 2)
    killed = threading.Event()

    def worker():
        while not killed.is_set():
            with lock:
                i = next(next_i, None)
            if i is None:
                return
            body = content(key_of(i), size_of(i))
            try:
                r = s3.put_object(Bucket=bucket, Key=key_of(i), Body=body)
            except Exception:  # noqa: BLE001 - the server was killed mid-request
                return
            assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', (i, r["ETag"])
            with lock:
                acked.add(i)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(CONNECTIONS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    while time.monotonic() - start < 240:
        with lock:
            if len(acked) >= kill_after:
                break
        if not any(t.is_alive() for t in threads):
            break
        time.sleep(0.002)
    srv.kill9()
    killed.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "PUTs still hanging 60 s after the kill"
    with lock:
        attempted = BURST - sum(1 for _ in next_i)
        acknowledged = set(acked)
    assert len(acknowledged) >= kill_after, f"only {len(acknowledged)} PUTs acknowledged before the kill"
    assert attempted < BURST, "the burst finished before the kill: the crash window was never exercised"

    srv.start()
    s3 = srv.client(max_pool_connections=CONNECTIONS)
    listed = list_all_keys(s3, bucket, "small/")
    listed_i = {int(k.split("/")[1]) for k in listed}
    lost = sorted(acknowledged - listed_i)
    assert not lost, f"{len(lost)} acknowledged PUTs lost, e.g. {[key_of(i) for i in lost[:5]]}"
    assert listed_i <= set(range(attempted)), "a key that was never sent is listed"

    def check(i: int) -> str | None:
        key = key_of(i)
        want = content(key, size_of(i))
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return None if got == want else f"{key}: {len(got)} bytes, expected {len(want)} (content differs)"

    # Every listed object (acknowledged or in flight at the kill) is whole.
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        bad = [m for m in pool.map(check, sorted(listed_i)) if m]
    assert not bad, f"{len(bad)} objects are not their whole content: {bad[:5]}"
    assert srv.tmp_entries() == [], f"staged data left after the restart: {srv.tmp_entries()[:5]}"
    stats = srv.admin_stats()
    assert stats["inline_blobs"] > 0, stats
    srv.assert_fsck_clean()  # while running
    srv.stop_expect_clean_exit()
    srv.assert_fsck_clean()  # while stopped


# ------------------------------------------------------------ bodies that lie


def stored(srv) -> tuple[int, int, int]:
    s = srv.admin_stats()
    return s["objects"], s["blobs"], s["physical_bytes"]


def raw_exchange(srv, head: bytes, body: bytes) -> bytes:
    """Sends `head` and `body` on one connection, half-closes it, returns what came back."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        try:
            sock.sendall(head + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before taking it all: what it said is read below
        return recv_all(sock)
    finally:
        sock.close()


def signed_head(srv, bucket: str, key: str, body: bytes, declared: int, extra: dict | None = None) -> bytes:
    """A SigV4-signed PUT head whose x-amz-content-sha256 is `body`'s but whose Content-Length
    says `declared`."""
    req = AWSRequest(method="PUT", url=f"{srv.endpoint}/{bucket}/{key}", data=body, headers=dict(extra or {}))
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(srv.access_key, srv.secret_key), "s3", srv.region).add_auth(req)
    lines = [f"PUT /{bucket}/{key} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() not in ("host", "content-length")]
    lines += [f"Content-Length: {declared}", "", ""]
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize("size", [4096, INLINE_MAX])
def test_small_bodies_that_lie_about_their_length_store_nothing(server_factory, size):
    srv = server_factory(name="lying")
    s3 = srv.client()
    bucket = unique_name("lie")
    s3.create_bucket(Bucket=bucket)
    before = stored(srv)
    body = os.urandom(size)

    # Shorter than declared, then the connection closes: a cut-off body.
    out = raw_exchange(srv, signed_head(srv, bucket, "short", body, declared=size + 1000), body)
    assert not out.startswith(b"HTTP/1.1 200"), out[:300]
    assert_no_object(s3, bucket, "short")

    # Longer than declared: the signed payload hash is that of everything sent, so the body the
    # server takes (the declared length) does not match it.
    out = raw_exchange(srv, signed_head(srv, bucket, "long", body, declared=size // 2), body)
    assert out.startswith(b"HTTP/1.1 400"), out[:300]
    assert s3_error_code(out.split(b"\r\n\r\n", 1)[1]) == "XAmzContentSHA256Mismatch", out[:600]
    assert_no_object(s3, bucket, "long")

    # Longer than declared with a Content-MD5 of everything sent (presigned, unsigned payload).
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "md5"}, ExpiresIn=300)
    u = urlsplit(url)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    head = (
        f"PUT {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-MD5: {md5}\r\n"
        f"Content-Length: {size - 1}\r\n\r\n"
    ).encode()
    out = raw_exchange(srv, head, body)
    assert out.startswith(b"HTTP/1.1 400"), out[:300]
    assert s3_error_code(out.split(b"\r\n\r\n", 1)[1]) == "BadDigest", out[:600]
    assert_no_object(s3, bucket, "md5")

    assert list_all_keys(s3, bucket) == []
    assert stored(srv) == before, "a refused body left an object, a blob or counted bytes"
    srv.admin_gc(grace_secs=0)
    assert srv.tmp_entries() == []
    # The server kept serving.
    assert s3.get_bucket_location(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert requests.get(srv.endpoint + HEALTH_PATH, timeout=5).status_code == 200
    s3.put_object(Bucket=bucket, Key="after", Body=body)
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == body
    srv.assert_fsck_clean()


def test_small_objects_are_stored_once_and_read_whole_and_in_ranges(server_factory):
    srv = server_factory(name="inline")
    s3 = srv.client()
    bucket = unique_name("inl")
    s3.create_bucket(Bucket=bucket)
    sizes = [0, 1, 4096, INLINE_MAX, INLINE_MAX + 1]
    datas = {f"k{n}": os.urandom(n) for n in sizes}
    for k, d in datas.items():
        s3.put_object(Bucket=bucket, Key=k, Body=d)
        s3.put_object(Bucket=bucket, Key=k + "-copy", Body=d)  # the same bytes again
    st = srv.admin_stats()
    # Five distinct contents, each stored once; four of them small enough to be inline.
    assert (st["blobs"], st["inline_blobs"]) == (5, 4), st
    assert st["inline_bytes"] == 1 + 4096 + INLINE_MAX, st
    assert st["physical_bytes"] == sum(sizes), st
    for k, d in datas.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == d
        if len(d) > 10:
            a, b = len(d) // 3, len(d) * 2 // 3
            got = s3.get_object(Bucket=bucket, Key=k, Range=f"bytes={a}-{b}")["Body"].read()
            assert got == d[a : b + 1], k
    # Durable across a restart.
    srv.restart()
    s3 = srv.client()
    for k, d in datas.items():
        assert s3.get_object(Bucket=bucket, Key=k + "-copy")["Body"].read() == d
    for k in list(datas) + [k + "-copy" for k in datas]:
        s3.delete_object(Bucket=bucket, Key=k)
    gc = srv.admin_gc(grace_secs=0)
    assert gc["blobs_freed"] == 5 and gc["bytes_freed"] == sum(sizes), gc
    st = srv.admin_stats()
    assert (st["blobs"], st["inline_blobs"], st["physical_bytes"]) == (0, 0, 0), st
    srv.assert_fsck_clean()
