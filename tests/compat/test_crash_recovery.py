"""13. kill -9 during concurrent uploads, restart, verify durability and
consistency (read-back, listing, fsck, GC of temp files)."""

import hashlib
import os
import random
import threading
import time

from compat_helpers import MiB, list_all_keys, unique_name

N_UPLOADS = 20
MIN_WAIT = 0.3  # seconds to let uploads get going before the kill (first round)
MAX_ROUNDS = 3


def _run_round(srv, bucket, round_no, wait_at_least):
    """Start N_UPLOADS concurrent put_objects, SIGKILL the server once at least
    one has succeeded (and `wait_at_least` s have passed). Returns
    (bodies_started, keys_that_got_200)."""
    rng = random.Random()
    bodies = {
        f"crash/r{round_no}/obj-{i:02d}.bin": os.urandom(rng.randint(1 * MiB, 8 * MiB))
        for i in range(N_UPLOADS)
    }
    client = srv.client(read_timeout=30)
    results: dict[str, tuple[str, str]] = {}
    lock = threading.Lock()

    def upload(key, body):
        try:
            etag = client.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            outcome = ("ok", etag)
        except Exception as e:  # connection reset / refused after the kill
            outcome = ("err", repr(e))
        with lock:
            results[key] = outcome

    threads = [threading.Thread(target=upload, args=kv, daemon=True) for kv in bodies.items()]
    start = time.monotonic()
    for t in threads:
        t.start()
    while time.monotonic() - start < 60:
        with lock:
            n_ok = sum(1 for v in results.values() if v[0] == "ok")
        if n_ok >= 1 and time.monotonic() - start >= wait_at_least:
            break
        time.sleep(0.005)
    srv.kill9()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "uploads still hanging 60 s after the kill"
    ok = {k for k, v in results.items() if v[0] == "ok"}
    for k in ok:
        assert results[k][1] == f'"{hashlib.md5(bodies[k]).hexdigest()}"', (k, results[k])
    return bodies, ok


def test_kill9_during_uploads_loses_nothing_acknowledged(server_factory):
    srv = server_factory(name="crash")
    bucket = unique_name("crash")
    srv.client().create_bucket(Bucket=bucket)

    started: dict[str, bytes] = {}
    acknowledged: set[str] = set()
    interrupted = 0
    for round_no in range(MAX_ROUNDS):
        bodies, ok = _run_round(srv, bucket, round_no, MIN_WAIT if round_no == 0 else 0)
        started.update(bodies)
        acknowledged |= ok
        interrupted += len(bodies) - len(ok)
        srv.start()  # restart on the same data dir after the SIGKILL
        if acknowledged and interrupted:
            break
    assert acknowledged, "no upload got a 200 before the kill in any round"
    assert interrupted, (
        f"all uploads finished before the kill in {MAX_ROUNDS} rounds; "
        "the crash window was never exercised"
    )

    s3 = srv.client()
    # Every acknowledged upload is durable and intact.
    for key in sorted(acknowledged):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(body) == len(started[key]), f"{key}: {len(body)} bytes, expected {len(started[key])}"
        assert hashlib.md5(body).digest() == hashlib.md5(started[key]).digest(), f"{key}: content differs"

    # No listed key has partial or foreign content.
    listed = list_all_keys(s3, bucket, "crash/")
    assert acknowledged <= set(listed), f"acknowledged but not listed: {sorted(acknowledged - set(listed))}"
    for key in listed:
        assert key in started, f"unexpected key {key}"
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == len(started[key]), f"{key}: listed with a truncated length"
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(body).digest() == hashlib.md5(started[key]).digest(), f"{key}: incomplete body"

    srv.assert_fsck_clean()  # while running

    srv.admin_gc(grace_secs=0)
    assert srv.tmp_entries() == [], f"temp files of killed uploads survive GC: {srv.tmp_entries()}"
    for key in acknowledged:  # GC must not have eaten live data
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(started[key])

    srv.stop_expect_clean_exit()
    srv.assert_fsck_clean()  # while stopped


def test_kill9_during_a_large_folder_move_leaves_the_old_tree_or_the_new(server_factory):
    """Issue 11: a folder move is one metadata transaction. Killed at any moment, the
    restarted server shows every file under the old folder or every file under the new one
    (never some of each), and fsck finds nothing wrong."""
    from upyun_helpers import make_account

    srv = server_factory(name="treecrash")
    acct = make_account(srv)
    s3 = srv.client(acct.tenant.access_key, acct.tenant.secret_key)
    n = 3000
    keys = [f"big/s{i % 7}/f{i:05d}" for i in range(n)]

    def put(k):
        s3.put_object(Bucket=acct.bucket, Key=k, Body=k.encode())

    threads_pool = __import__("concurrent.futures").futures.ThreadPoolExecutor(8)
    list(threads_pool.map(put, keys))
    # How long one move takes here, so the kills land before, during and after its commit.
    started = time.monotonic()
    r = acct.raw().request("PUT", "/timed", headers={"X-Upyun-Move-Source": f"/{acct.bucket}/big"})
    assert r.status_code == 200, r.text
    took = time.monotonic() - started
    where = "timed"
    outcomes = []
    for round_no, fraction in enumerate([0.1, 0.4, 0.7, 0.9, 1.1, 1.5]):
        delay = took * fraction
        target = f"moved{round_no}"
        raw = acct.raw()
        result = {}

        def move():
            try:
                r = raw.request("PUT", f"/{target}", headers={"X-Upyun-Move-Source": f"/{acct.bucket}/{where}"})
                result["status"] = r.status_code
            except Exception as e:  # the connection dies with the server
                result["error"] = repr(e)

        t = threading.Thread(target=move, daemon=True)
        t.start()
        time.sleep(delay)
        srv.kill9()
        t.join(timeout=30)
        srv.start()
        s3 = srv.client(acct.tenant.access_key, acct.tenant.secret_key)
        old = list_all_keys(s3, acct.bucket, f"{where}/")
        new = list_all_keys(s3, acct.bucket, f"{target}/")
        assert (len(old), len(new)) in ((n, 0), (0, n)), f"round {round_no}: {len(old)} old, {len(new)} new"
        if result.get("status") == 200:
            assert len(new) == n, f"round {round_no}: acknowledged but not moved"
        outcomes.append("new" if new else "old")
        if new:
            where = target
        srv.assert_fsck_clean()
    print(f"folder-move crash outcomes (one move took {took * 1000:.0f} ms):", outcomes)
    assert len(list_all_keys(s3, acct.bucket, f"{where}/s3/")) == len([k for k in keys if "/s3/" in k])
    srv.stop_expect_clean_exit()
    srv.assert_fsck_clean()
