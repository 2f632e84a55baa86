"""Native instant upload (/_chuan/v1/instant): a client that knows size and
SHA-256 of content the server already stores gets the object created without
sending the bytes, after proving possession (HMAC-SHA256 over server-chosen
ranges, keyed with the server's nonce). A tenant that already holds the
content needs no proof; everybody else without the bytes learns nothing.

Contract:
  POST /_chuan/v1/instant/challenge {bucket,key,size,sha256[,content_type][,prove]}
       -> 200 {challenge_id, proof_required, nonce, ranges, expires_at}
  POST /_chuan/v1/instant/commit {challenge_id, proof}
       -> 200 {"hit": true, bucket, key, etag, size} | 200 {"hit": false}
       -> 409 {"error":"ChallengeUsed"} | 410 {"error":"ChallengeExpired"}
HTTP Basic auth with a tenant's S3 access key and secret. Each test keeps
well below the per-principal probe rate limit.
"""

from __future__ import annotations

import os
import secrets
import time

import requests

from adrive_helpers import (  # noqa: F401  (env_server_factory is a fixture)
    INSTANT_CHALLENGE_PATH,
    INSTANT_COMMIT_PATH,
    INSTANT_HITS_METRIC,
    check_challenge,
    create_tenant,
    env_server_factory,
    instant_challenge,
    instant_commit,
    instant_proof,
    metric_value,
)
from compat_helpers import MiB, assert_no_object, get_body, sha256_hex, unique_name


def _tenant_with_bucket(srv):
    t = create_tenant(srv)
    s3 = t.s3(srv)
    b = unique_name("inst")
    s3.create_bucket(Bucket=b)
    return t, s3, b


def _assert_miss(r: requests.Response, what: str) -> dict:
    assert r.status_code == 200, f"{what}: expected 200 {{\"hit\": false}}, got HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body.get("hit") is False, f"{what}: expected a miss, got {body}"
    leaked = {"bucket", "key", "etag", "size"} & set(body)
    assert not leaked, f"{what}: a miss must not describe an object, got {body}"
    return body


def _assert_error(r: requests.Response, status: int, code: str, what: str) -> None:
    assert r.status_code == status, f"{what}: expected HTTP {status} {code}, got {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body.get("error") == code, f"{what}: expected error {code}, got {body}"


def test_instant_upload_across_tenants_with_proof(fresh_server):
    srv = fresh_server
    a, s3a, bucket_a = _tenant_with_bucket(srv)
    b, s3b, bucket_b = _tenant_with_bucket(srv)
    data = os.urandom(3 * MiB + 12345)
    s3a.put_object(Bucket=bucket_a, Key="orig.bin", Body=data)

    stats0 = srv.admin_stats()
    hits0 = metric_value(srv, INSTANT_HITS_METRIC)

    key = "copy/of/orig.bin"
    c = check_challenge(instant_challenge(srv, b.auth, bucket_b, key, len(data), sha256_hex(data)), len(data))
    assert c["proof_required"] is True, f"tenant B does not hold the content, yet no proof required: {c}"
    r = instant_commit(srv, b.auth, c["challenge_id"], instant_proof(c["nonce"], c["ranges"], data))
    assert r.status_code == 200, f"commit: HTTP {r.status_code} {r.text[:500]}"
    hit = r.json()
    assert hit.get("hit") is True, f"correct proof was not accepted: {hit}"
    assert hit.get("bucket") == bucket_b and hit.get("key") == key, hit
    assert hit.get("size") == len(data), hit
    assert isinstance(hit.get("etag"), str) and hit["etag"].strip('"'), hit

    head = s3b.head_object(Bucket=bucket_b, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"') == hit["etag"].strip('"'), (head["ETag"], hit["etag"])
    assert get_body(s3b, bucket_b, key) == data, "instant-created object has different bytes"
    assert get_body(s3a, bucket_a, "orig.bin") == data

    stats1 = srv.admin_stats()
    d = {k: stats1[k] - stats0[k] for k in ("logical_bytes", "physical_bytes", "objects", "blobs")}
    assert d["physical_bytes"] == 0, f"instant upload stored data again: {d}"
    assert d["blobs"] == 0, d
    assert d["objects"] == 1, d
    assert d["logical_bytes"] == len(data), d
    assert metric_value(srv, INSTANT_HITS_METRIC) - hits0 == 1, f"{INSTANT_HITS_METRIC} did not grow by 1"


def test_same_tenant_needs_no_proof(server):
    a, s3a, bucket = _tenant_with_bucket(server)
    other_bucket = unique_name("inst2")
    s3a.create_bucket(Bucket=other_bucket)
    data = os.urandom(256 * 1024 + 7)
    s3a.put_object(Bucket=bucket, Key="src.bin", Body=data)
    hits0 = metric_value(server, INSTANT_HITS_METRIC)

    # proof omitted
    c = check_challenge(instant_challenge(server, a.auth, bucket, "dup1.bin", len(data), sha256_hex(data)), len(data))
    assert c["proof_required"] is False, f"own content must not need a proof: {c}"
    r = instant_commit(server, a.auth, c["challenge_id"])
    assert r.status_code == 200 and r.json().get("hit") is True, f"commit without proof: {r.status_code} {r.text[:500]}"
    assert get_body(s3a, bucket, "dup1.bin") == data

    # proof: null, into another bucket of the same tenant
    c = check_challenge(
        instant_challenge(server, a.auth, other_bucket, "x/dup2.bin", len(data), sha256_hex(data)), len(data)
    )
    assert c["proof_required"] is False, c
    r = instant_commit(server, a.auth, c["challenge_id"], None)
    assert r.status_code == 200 and r.json().get("hit") is True, f"commit with proof null: {r.status_code} {r.text[:500]}"
    assert get_body(s3a, other_bucket, "x/dup2.bin") == data

    assert metric_value(server, INSTANT_HITS_METRIC) - hits0 == 2


def test_a_hit_takes_the_content_type_named_in_the_challenge(server):
    """The web console names the file's type with the challenge; the object gets it on a hit;
    a type with control characters is refused before any lookup."""
    a, s3a, bucket = _tenant_with_bucket(server)
    data = os.urandom(100 * 1024)
    s3a.put_object(Bucket=bucket, Key="typed-src.bin", Body=data)
    body = {"bucket": bucket, "key": "typed.png", "size": len(data), "sha256": sha256_hex(data),
            "content_type": "image/png"}
    r = requests.post(server.endpoint + "/_chuan/v1/instant/challenge", json=body, auth=a.auth, timeout=30)
    c = check_challenge(r, len(data))
    r = instant_commit(server, a.auth, c["challenge_id"])
    assert r.status_code == 200 and r.json().get("hit") is True, r.text
    assert s3a.head_object(Bucket=bucket, Key="typed.png")["ContentType"] == "image/png"
    r = requests.post(server.endpoint + "/_chuan/v1/instant/challenge", json={**body, "content_type": "a\u0001b"},
                      auth=a.auth, timeout=30)
    assert r.status_code == 400, r.text


def test_wrong_or_missing_proof_is_a_miss(server):
    a, s3a, bucket_a = _tenant_with_bucket(server)
    b, s3b, bucket_b = _tenant_with_bucket(server)
    data = os.urandom(MiB + 3)
    s3a.put_object(Bucket=bucket_a, Key="secret.bin", Body=data)
    sha, size = sha256_hex(data), len(data)
    hits0 = metric_value(server, INSTANT_HITS_METRIC)

    misses = []
    # 1. proof over the wrong bytes (one bit flipped in every range)
    c = check_challenge(instant_challenge(server, b.auth, bucket_b, "w1.bin", size, sha), size)
    assert c["proof_required"] is True, c
    tampered = bytearray(data)
    for off, _length in c["ranges"]:
        tampered[off] ^= 0x01
    misses.append(_assert_miss(
        instant_commit(server, b.auth, c["challenge_id"], instant_proof(c["nonce"], c["ranges"], bytes(tampered))),
        "proof over wrong bytes",
    ))
    assert_no_object(s3b, bucket_b, "w1.bin")

    # 2. right bytes, wrong key (another nonce)
    c = check_challenge(instant_challenge(server, b.auth, bucket_b, "w2.bin", size, sha), size)
    other_nonce = secrets.token_hex(len(c["nonce"]) // 2)
    misses.append(_assert_miss(
        instant_commit(server, b.auth, c["challenge_id"], instant_proof(other_nonce, c["ranges"], data)),
        "proof with another nonce",
    ))
    assert_no_object(s3b, bucket_b, "w2.bin")

    # 3. no proof at all although one is required
    c = check_challenge(instant_challenge(server, b.auth, bucket_b, "w3.bin", size, sha), size)
    misses.append(_assert_miss(instant_commit(server, b.auth, c["challenge_id"]), "commit without proof"))
    assert_no_object(s3b, bucket_b, "w3.bin")

    # 4. garbage proof
    c = check_challenge(instant_challenge(server, b.auth, bucket_b, "w4.bin", size, sha), size)
    misses.append(_assert_miss(instant_commit(server, b.auth, c["challenge_id"], "zz" * 32), "non-hex proof"))
    assert_no_object(s3b, bucket_b, "w4.bin")

    assert all(set(m) == set(misses[0]) for m in misses), f"misses differ in shape: {misses}"
    assert metric_value(server, INSTANT_HITS_METRIC) == hits0, "a miss was counted as an instant hit"
    assert get_body(s3a, bucket_a, "secret.bin") == data


def test_unknown_content_is_answered_like_known_content(server):
    a, s3a, bucket_a = _tenant_with_bucket(server)
    b, s3b, bucket_b = _tenant_with_bucket(server)
    data = os.urandom(512 * 1024)
    s3a.put_object(Bucket=bucket_a, Key="known.bin", Body=data)
    unknown = os.urandom(len(data))
    size = len(data)

    rk = instant_challenge(server, b.auth, bucket_b, "k.bin", size, sha256_hex(data))
    ru = instant_challenge(server, b.auth, bucket_b, "u.bin", size, sha256_hex(unknown))
    assert rk.status_code == ru.status_code == 200, (rk.status_code, rk.text[:300], ru.status_code, ru.text[:300])
    known, unk = check_challenge(rk, size), check_challenge(ru, size)
    assert set(known) == set(unk), f"challenge answers differ in fields: {sorted(known)} vs {sorted(unk)}"
    assert known["proof_required"] is True and unk["proof_required"] is True, (known, unk)
    assert len(known["nonce"]) == len(unk["nonce"]), (known, unk)
    assert rk.headers.get("Content-Type") == ru.headers.get("Content-Type")

    # The holder of the unknown bytes proves correctly, but nobody has them: miss.
    miss_unknown = _assert_miss(
        instant_commit(server, b.auth, unk["challenge_id"], instant_proof(unk["nonce"], unk["ranges"], unknown)),
        "commit for unknown content",
    )
    assert_no_object(s3b, bucket_b, "u.bin")

    # Right hash, wrong size: also unknown content.
    rs = instant_challenge(server, b.auth, bucket_b, "s.bin", size + 1, sha256_hex(data))
    ws = check_challenge(rs, size + 1)
    assert set(ws) == set(known) and ws["proof_required"] is True, ws
    padded = data + b"\0"
    miss_size = _assert_miss(
        instant_commit(server, b.auth, ws["challenge_id"], instant_proof(ws["nonce"], ws["ranges"], padded)),
        "commit with right sha256 and wrong size",
    )
    assert_no_object(s3b, bucket_b, "s.bin")
    assert set(miss_unknown) == set(miss_size)

    # For contrast, the known content with a correct proof is a hit.
    r = instant_commit(server, b.auth, known["challenge_id"], instant_proof(known["nonce"], known["ranges"], data))
    assert r.status_code == 200 and r.json().get("hit") is True, r.text[:500]
    assert get_body(s3b, bucket_b, "k.bin") == data


def test_a_caller_that_will_prove_gets_a_challenge_that_looks_nothing_up(server):
    """`"prove": true`: the challenge always asks for a proof, even of the content's own
    tenant, and is shaped alike for held and unknown content; the commit checks the proof
    against the stored bytes: right is a hit (for another tenant too), anything else a miss
    that creates nothing."""
    a, s3a, bucket_a = _tenant_with_bucket(server)
    b, s3b, bucket_b = _tenant_with_bucket(server)
    data = os.urandom(2 * MiB + 77)
    s3a.put_object(Bucket=bucket_a, Key="orig.bin", Body=data)
    sha, size = sha256_hex(data), len(data)
    unknown = os.urandom(size)

    held = check_challenge(instant_challenge(server, b.auth, bucket_b, "copy.bin", size, sha, prove=True), size)
    unk = check_challenge(
        instant_challenge(server, b.auth, bucket_b, "u.bin", size, sha256_hex(unknown), prove=True), size
    )
    own = check_challenge(instant_challenge(server, a.auth, bucket_a, "again.bin", size, sha, prove=True), size)
    for c in (held, unk, own):
        assert c["proof_required"] is True and len(c["ranges"]) == len(held["ranges"]) > 0, c

    # Wrong proofs (other bytes; none) are misses and create nothing; the challenge is spent.
    wrong = check_challenge(instant_challenge(server, b.auth, bucket_b, "w.bin", size, sha, prove=True), size)
    tampered = bytearray(data)
    for off, _length in wrong["ranges"]:
        tampered[off] ^= 0x80
    tampered_proof = instant_proof(wrong["nonce"], wrong["ranges"], bytes(tampered))
    _assert_miss(instant_commit(server, b.auth, wrong["challenge_id"], tampered_proof), "wrong proof")
    none = check_challenge(instant_challenge(server, b.auth, bucket_b, "n.bin", size, sha, prove=True), size)
    _assert_miss(instant_commit(server, b.auth, none["challenge_id"]), "no proof")
    for key in ("w.bin", "n.bin"):
        assert_no_object(s3b, bucket_b, key)
    # Unknown content proved right is still a miss: nobody holds it.
    unknown_proof = instant_proof(unk["nonce"], unk["ranges"], unknown)
    _assert_miss(instant_commit(server, b.auth, unk["challenge_id"], unknown_proof), "unknown content")
    assert_no_object(s3b, bucket_b, "u.bin")

    # Right proofs: another tenant's content and the tenant's own.
    r = instant_commit(server, b.auth, held["challenge_id"], instant_proof(held["nonce"], held["ranges"], data))
    assert r.status_code == 200 and r.json().get("hit") is True, r.text[:500]
    assert get_body(s3b, bucket_b, "copy.bin") == data
    r = instant_commit(server, a.auth, own["challenge_id"], instant_proof(own["nonce"], own["ranges"], data))
    assert r.status_code == 200 and r.json().get("hit") is True, r.text[:500]
    assert get_body(s3a, bucket_a, "again.bin") == data
    again = instant_commit(server, b.auth, held["challenge_id"], instant_proof(held["nonce"], held["ranges"], data))
    _assert_error(again, 409, "ChallengeUsed", "second commit")


def test_challenge_is_single_use(server):
    a, s3a, bucket_a = _tenant_with_bucket(server)
    b, s3b, bucket_b = _tenant_with_bucket(server)
    data = os.urandom(200 * 1024 + 1)
    s3a.put_object(Bucket=bucket_a, Key="d.bin", Body=data)
    size, sha = len(data), sha256_hex(data)

    # A challenge burnt by a wrong proof cannot be retried with the right one.
    # (First, while B does not hold the content yet and a proof is required.)
    c = check_challenge(instant_challenge(server, b.auth, bucket_b, "burnt.bin", size, sha), size)
    assert c["proof_required"] is True, c
    _assert_miss(instant_commit(server, b.auth, c["challenge_id"], "00" * 32), "wrong proof")
    _assert_error(
        instant_commit(server, b.auth, c["challenge_id"], instant_proof(c["nonce"], c["ranges"], data)),
        409,
        "ChallengeUsed",
        "retry after a miss",
    )
    assert_no_object(s3b, bucket_b, "burnt.bin")

    # A hit cannot be replayed either.
    c = check_challenge(instant_challenge(server, b.auth, bucket_b, "once.bin", size, sha), size)
    proof = instant_proof(c["nonce"], c["ranges"], data)
    r1 = instant_commit(server, b.auth, c["challenge_id"], proof)
    assert r1.status_code == 200 and r1.json().get("hit") is True, r1.text[:500]
    _assert_error(instant_commit(server, b.auth, c["challenge_id"], proof), 409, "ChallengeUsed", "second commit")
    assert get_body(s3b, bucket_b, "once.bin") == data


def test_challenge_expires(env_server_factory):
    srv = env_server_factory(env={"CHUAN_CHALLENGE_TTL_SECS": "1"}, name="ttl")
    a, s3a, bucket_a = _tenant_with_bucket(srv)
    b, s3b, bucket_b = _tenant_with_bucket(srv)
    data = os.urandom(100 * 1024)
    s3a.put_object(Bucket=bucket_a, Key="d.bin", Body=data)
    size, sha = len(data), sha256_hex(data)

    c = check_challenge(instant_challenge(srv, b.auth, bucket_b, "late.bin", size, sha), size, ttl_ms=1000)
    time.sleep(2.5)
    _assert_error(
        instant_commit(srv, b.auth, c["challenge_id"], instant_proof(c["nonce"], c["ranges"], data)),
        410,
        "ChallengeExpired",
        "commit 2.5 s after a 1 s challenge",
    )
    assert_no_object(s3b, bucket_b, "late.bin")

    # Committed in time, the same exchange succeeds on this server.
    c = check_challenge(instant_challenge(srv, b.auth, bucket_b, "prompt.bin", size, sha), size, ttl_ms=1000)
    r = instant_commit(srv, b.auth, c["challenge_id"], instant_proof(c["nonce"], c["ranges"], data))
    assert r.status_code == 200 and r.json().get("hit") is True, r.text[:500]
    assert get_body(s3b, bucket_b, "prompt.bin") == data


def test_instant_endpoints_require_credentials(server):
    a, s3a, bucket = _tenant_with_bucket(server)
    data = os.urandom(4096)
    s3a.put_object(Bucket=bucket, Key="d.bin", Body=data)
    body = {"bucket": bucket, "key": "x.bin", "size": len(data), "sha256": sha256_hex(data)}
    url = server.endpoint + INSTANT_CHALLENGE_PATH
    r = requests.post(url, json=body, timeout=10)
    assert r.status_code in (401, 403), f"no credentials: HTTP {r.status_code} {r.text[:300]}"
    r = requests.post(url, json=body, auth=(a.access_key, a.secret_key + "x"), timeout=10)
    assert r.status_code in (401, 403), f"wrong secret: HTTP {r.status_code} {r.text[:300]}"
    r = requests.post(url, json=body, auth=("NOSUCHACCESSKEY", "whatever"), timeout=10)
    assert r.status_code in (401, 403), f"unknown key: HTTP {r.status_code} {r.text[:300]}"

    c = check_challenge(instant_challenge(server, a.auth, bucket, "x.bin", len(data), sha256_hex(data)), len(data))
    r = requests.post(server.endpoint + INSTANT_COMMIT_PATH, json={"challenge_id": c["challenge_id"]}, timeout=10)
    assert r.status_code in (401, 403), f"commit without credentials: HTTP {r.status_code} {r.text[:300]}"
    assert_no_object(s3a, bucket, "x.bin")


def test_no_instant_write_into_another_tenants_bucket(server):
    a, s3a, bucket_a = _tenant_with_bucket(server)
    b, s3b, bucket_b = _tenant_with_bucket(server)
    c_t, s3c, bucket_c = _tenant_with_bucket(server)
    data = os.urandom(64 * 1024 + 5)
    s3a.put_object(Bucket=bucket_a, Key="d.bin", Body=data)
    s3b.put_object(Bucket=bucket_b, Key="b-own.bin", Body=data)
    size, sha = len(data), sha256_hex(data)

    # B (who holds the bytes) targets A's bucket.
    r = instant_challenge(server, b.auth, bucket_a, "intruder.bin", size, sha)
    if r.status_code == 200:
        c = r.json()
        proof = instant_proof(c["nonce"], c["ranges"], data) if c.get("ranges") else None
        r2 = instant_commit(server, b.auth, c["challenge_id"], proof)
        assert not (r2.status_code == 200 and r2.json().get("hit") is True), (
            f"tenant B instant-created an object in tenant A's bucket: {r2.text[:500]}"
        )
    else:
        assert 400 <= r.status_code < 500 and r.status_code != 429, f"HTTP {r.status_code} {r.text[:300]}"
    assert_no_object(s3a, bucket_a, "intruder.bin")

    # C cannot commit a challenge that was issued to B.
    c = check_challenge(instant_challenge(server, b.auth, bucket_b, "b-copy.bin", size, sha), size)
    proof = instant_proof(c["nonce"], c["ranges"], data) if c["ranges"] else None
    r3 = instant_commit(server, c_t.auth, c["challenge_id"], proof)
    assert not (r3.status_code == 200 and r3.json().get("hit") is True), (
        f"a challenge issued to B was committed by C: {r3.text[:500]}"
    )
    assert_no_object(s3b, bucket_b, "b-copy.bin")
    assert "Contents" not in s3c.list_objects_v2(Bucket=bucket_c)
