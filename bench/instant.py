#!/usr/bin/env python3
"""Instant upload (秒传) vs a real upload of the same 1 GiB file, in one run.

1. PUT the file with curl to a presigned URL (as s3bench does) and time it.
2. As a *different* tenant (so a proof of possession is required), instant-upload the
   same file through Chuan's native challenge API: challenge, read the requested ranges
   of the local file, HMAC them with the nonce, commit. Repeated REPS times, each time as a
   new tenant (once a tenant holds the file it needs no proof), median: the headline figure.
   Then the same with `"prove": true` (a challenge that looks nothing up and always asks for
   the proof, checked at commit), REPS new tenants, median.
3. The last of those tenants instant-uploading the file again, REPS times (its tenant holds
   it now: no proof asked), median.
4. As yet another new tenant each time, the same instant upload through Aliyun Drive's API,
   as aligo sends it: one `createWithFolders` with the file's SHA-1 and a `proof_version v1`
   proof (8 bytes at an offset derived from the access token), REPS times, median.
5. Also time the client-side SHA-256 (and SHA-1) of the file, which a client that does not
   already know its hash must pay before asking.

Prints `RESULT <target> <figure> <value>` lines like s3bench.sh.
Env: ENDPOINT, ACCESS_KEY, SECRET_KEY (root), BUCKET, REGION, FILE, TARGET_NAME, REPS.
"""
import base64
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import boto3
import requests
from botocore.config import Config

E = os.environ
ENDPOINT, AK, SK = E["ENDPOINT"], E["ACCESS_KEY"], E["SECRET_KEY"]
BUCKET, REGION, FILE = E.get("BUCKET", "bench"), E.get("REGION", "us-east-1"), E["FILE"]
TARGET, REPS = E.get("TARGET_NAME", "chuan"), int(E.get("REPS", "5"))


def result(name, value):
    print(f"RESULT {TARGET:<12} {name:<26} {value}")


def client(ak, sk):
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, aws_access_key_id=ak,
                        aws_secret_access_key=sk, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def metric(name):
    """The sum of a counter or gauge's samples in Chuan's metrics (root credentials)."""
    r = requests.get(f"{ENDPOINT}/_chuan/metrics", auth=(AK, SK), timeout=30)
    r.raise_for_status()
    return sum(float(line.split()[-1]) for line in r.text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"))


def main():
    size = os.path.getsize(FILE)
    root = client(AK, SK)
    key = f"instant-src-{uuid.uuid4().hex[:8]}"
    url = root.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600)
    computed_before = metric("chuan_digests_computed_total")
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    out = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-H", "Expect:", "-T", FILE, url], capture_output=True)
    upload_s = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"instant.py: upload failed: {out.stderr.decode()[:300]}")

    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(FILE, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    sha256 = h.hexdigest()
    hash_s = time.perf_counter() - t0
    h1 = hashlib.sha1()
    with open(FILE, "rb") as f:
        while chunk := f.read(1 << 20):
            h1.update(chunk)
    sha1 = h1.hexdigest().upper()

    def new_tenant():
        """A fresh tenant with a bucket of its own (not timed)."""
        r = requests.post(f"{ENDPOINT}/_chuan/admin/tenants?name=bench-{uuid.uuid4().hex[:8]}", auth=(AK, SK), timeout=30)
        r.raise_for_status()
        auth = (r.json()["access_key"], r.json()["secret_key"])
        bucket = f"inst-{uuid.uuid4().hex[:10]}"
        client(*auth).create_bucket(Bucket=bucket)
        return auth, bucket

    def instant(s, f, auth, bucket, key, proof_required, prove=False):
        """One instant upload, challenge to commit; seconds. `prove`: ask for a challenge that
        looks nothing up (the client has the file and will prove it whoever holds it)."""
        ask = {"bucket": bucket, "key": key, "size": size, "sha256": sha256}
        if prove:
            ask["prove"] = True
        t0 = time.perf_counter()
        c = s.post(f"{ENDPOINT}/_chuan/v1/instant/challenge", auth=auth, timeout=30, json=ask).json()
        if c.get("proof_required") != proof_required:
            sys.exit(f"instant.py: expected proof_required={proof_required}: {json.dumps(c)}")
        mac = hmac.new(bytes.fromhex(c["nonce"]), digestmod=hashlib.sha256)
        for off, length in c["ranges"]:
            f.seek(off)
            mac.update(f.read(length))
        done = s.post(f"{ENDPOINT}/_chuan/v1/instant/commit", auth=auth, timeout=30,
                      json={"challenge_id": c["challenge_id"], "proof": mac.hexdigest()}).json()
        took = time.perf_counter() - t0
        if not done.get("hit"):
            sys.exit(f"instant.py: instant upload missed: {json.dumps(done)}")
        return took

    times, prove_times, own_times = [], [], []
    with open(FILE, "rb") as f, requests.Session() as s:
        for i in range(REPS):
            auth, bucket = new_tenant()
            times.append(instant(s, f, auth, bucket, "copy", True))
        for i in range(REPS):
            auth, bucket = new_tenant()
            prove_times.append(instant(s, f, auth, bucket, "copy", True, prove=True))
        for i in range(REPS):
            own_times.append(instant(s, f, auth, bucket, f"again-{i}", False))

    def adrive_instant(s, f, n):
        """Aliyun Drive's instant upload as another new tenant (login not timed); seconds."""
        r = requests.post(f"{ENDPOINT}/_chuan/admin/tenants?name=bench-{uuid.uuid4().hex[:8]}", auth=(AK, SK), timeout=30)
        r.raise_for_status()
        r = requests.post(f"{ENDPOINT}/_chuan/admin/adrive/refresh-tokens", params={"tenant": r.json()["tenant"]},
                          auth=(AK, SK), timeout=30)
        r.raise_for_status()
        tok = requests.post(f"{ENDPOINT}/v2/account/token", timeout=30,
                            json={"refresh_token": r.json()["refresh_token"], "grant_type": "refresh_token"}).json()
        token = tok["access_token"]
        # aligo's proof_version v1: 8 bytes at md5(access token)[:16] mod size.
        offset = int(hashlib.md5(token.encode()).hexdigest()[:16], 16) % size
        f.seek(offset)
        proof = base64.b64encode(f.read(min(8, size - offset))).decode()
        body = {"drive_id": tok["default_drive_id"], "parent_file_id": "root", "name": f"copy-{n}", "type": "file",
                "check_name_mode": "auto_rename", "size": size, "content_hash_name": "sha1", "content_hash": sha1,
                "proof_code": proof, "proof_version": "v1",
                "part_info_list": [{"part_number": i} for i in range(1, -(-size // (10 << 20)) + 1)]}
        t0 = time.perf_counter()
        done = s.post(f"{ENDPOINT}/adrive/v2/file/createWithFolders", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}).json()
        took = time.perf_counter() - t0
        if done.get("rapid_upload") is not True:
            sys.exit(f"instant.py: Aliyun Drive instant upload missed: {json.dumps(done)[:300]}")
        return took

    # Aliyun Drive claims by SHA-1, which the background digest job computes for a body over
    # 4 MiB: another tenant's claim finds the file once the job has settled it (seconds).
    deadline = time.monotonic() + 120
    while metric("chuan_digests_computed_total") <= computed_before or metric("chuan_digest_backlog") > 0:
        if time.monotonic() > deadline:
            sys.exit("instant.py: the digest job did not settle the file within 120 s")
        time.sleep(0.2)
    with open(FILE, "rb") as f, requests.Session() as s:
        adrive_times = [adrive_instant(s, f, i) for i in range(REPS)]
    instant_s = statistics.median(times)
    result("instant_upload_ms", f"{instant_s * 1000:.2f}")
    result("instant_own_ms", f"{statistics.median(own_times) * 1000:.2f}")
    result("full_upload_ms", f"{upload_s * 1000:.0f}")
    result("instant_speedup", f"{upload_s / instant_s:.0f}")
    result("instant_prove_ms", f"{statistics.median(prove_times) * 1000:.2f}")
    result("instant_prove_speedup", f"{upload_s / statistics.median(prove_times):.0f}")
    result("instant_own_speedup", f"{upload_s / statistics.median(own_times):.0f}")
    result("adrive_instant_ms", f"{statistics.median(adrive_times) * 1000:.2f}")
    result("adrive_instant_speedup", f"{upload_s / statistics.median(adrive_times):.0f}")
    result("client_sha256_ms", f"{hash_s * 1000:.0f}")
    result("instant_speedup_with_hash", f"{upload_s / (instant_s + hash_s):.1f}")
    root.delete_object(Bucket=BUCKET, Key=key)


if __name__ == "__main__":
    main()
