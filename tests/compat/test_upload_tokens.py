"""Upload tokens: bearer credentials a tenant issues for a web page or an app
(`POST /_chuan/v1/tokens` with `"type": "upload"`), sent as `Authorization: Bearer <token>` to
tus (/_chuan/tus/), the IETF resumable uploads (/_chuan/resumable/) and the native
instant-upload API (/_chuan/v1/instant/). Held to their scope (one bucket, an optional prefix,
operations), always expiring (at most 30 days), revocable, shown once (the server keeps only
their SHA-256), and never a way to manage credentials. tus-js-client with a token:
test_tus_js.py::test_upload_token_as_bearer.
"""

from __future__ import annotations

import hashlib
import os
import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from compat_helpers import assert_no_object, get_body
from tus_helpers import OCTET_OFFSET, TUS_VERSION, encode_metadata, tus_ctx

TOKENS = "/_chuan/v1/tokens"


@pytest.fixture
def ctx(server):
    return tus_ctx(server)


def issue(ctx, expect_status: int = 201, **fields) -> dict:
    body = {"type": "upload", "label": "page", "bucket": ctx.bucket, "ops": ["write"], "ttl_secs": 600, **fields}
    r = requests.post(ctx.server.endpoint + TOKENS, auth=ctx.tenant.auth, json=body, timeout=30)
    assert r.status_code == expect_status, f"POST {TOKENS} {body}: HTTP {r.status_code} {r.text}"
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tus_upload(ctx, token: str, key: str, data: bytes, bucket: str | None = None) -> requests.Response:
    """One tus creation-with-upload of `data` with the token; the creation's answer."""
    meta = encode_metadata({"bucket": bucket or ctx.bucket, "key": key})
    h = {**bearer(token), "Tus-Resumable": TUS_VERSION, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
         "Content-Type": OCTET_OFFSET}
    return requests.post(ctx.tus.base, headers=h, data=data, timeout=60)


def test_issue_use_list_and_revoke(ctx):
    t = issue(ctx, prefix="inbox/")
    assert set(t) == {"token", "id", "expires_at"}, t
    assert t["id"] == "upload-token:" + hashlib.sha256(t["token"].encode()).hexdigest()
    assert 590_000 < t["expires_at"] - time.time() * 1000 <= 600_000, t
    data = os.urandom(5000)
    r = tus_upload(ctx, t["token"], "inbox/a.bin", data)
    assert r.status_code == 201 and r.headers["Upload-Offset"] == str(len(data)), (r.status_code, r.text)
    assert get_body(ctx.s3, ctx.bucket, "inbox/a.bin") == data
    # The listing shows the token's id and scope, never the token.
    listed = requests.get(ctx.server.endpoint + TOKENS, auth=ctx.tenant.auth, timeout=30)
    assert listed.status_code == 200
    mine = [x for x in listed.json() if x["access_key"] == t["id"]]
    assert len(mine) == 1 and mine[0]["type"] == "upload" and mine[0]["label"] == "page", listed.json()
    assert mine[0]["scope"] == {"ops": ["write"], "buckets": [ctx.bucket], "prefixes": ["inbox/"]}, mine[0]
    assert t["token"] not in listed.text
    # Revoked by its id, as a client that percent-encodes the path sends it: refused at once,
    # with the challenges of both schemes.
    encoded = t["id"].replace(":", "%3A")
    r = requests.delete(ctx.server.endpoint + f"{TOKENS}/{encoded}", auth=ctx.tenant.auth, timeout=30)
    assert r.status_code == 204, r.text
    r = tus_upload(ctx, t["token"], "inbox/b.bin", b"after revocation")
    assert r.status_code == 401, (r.status_code, r.text)
    assert "Bearer" in r.headers.get("WWW-Authenticate", "") and "Basic" in r.headers["WWW-Authenticate"]
    assert_no_object(ctx.s3, ctx.bucket, "inbox/b.bin")


def test_held_to_its_scope(ctx, server):
    t = issue(ctx, prefix="inbox/")["token"]
    other = tus_ctx(server)  # another tenant's bucket
    mine2 = f"{ctx.bucket}-2"
    ctx.s3.create_bucket(Bucket=mine2)  # the same tenant's other bucket
    for bucket, key in ((ctx.bucket, "outside/x.bin"), (mine2, "inbox/x.bin"), (other.bucket, "inbox/x.bin")):
        r = tus_upload(ctx, t, key, b"out of scope", bucket=bucket)
        assert r.status_code in (403, 404), f"{bucket}/{key}: HTTP {r.status_code} {r.text}"
        assert "Location" not in r.headers
    assert_no_object(ctx.s3, ctx.bucket, "outside/x.bin")
    assert_no_object(ctx.s3, mine2, "inbox/x.bin")
    assert_no_object(other.s3, other.bucket, "inbox/x.bin")
    # A token that could not upload is not issued; no token manages credentials.
    for ops in (["read"], [], ["list", "delete"]):
        r = issue(ctx, expect_status=400, ops=ops)
        assert "write" in str(r), r
    # Nor anything else: the account, its own revocation, the admin API, metrics.
    own_id = "upload-token:" + hashlib.sha256(t.encode()).hexdigest()
    for method, path, body in (("POST", TOKENS, {"type": "upload", "bucket": ctx.bucket, "ttl_secs": 60}),
                               ("GET", TOKENS, None),
                               ("DELETE", f"{TOKENS}/{own_id}", None),
                               ("GET", "/_chuan/v1/account", None),
                               ("GET", "/_chuan/admin/tenants", None),
                               ("POST", "/_chuan/admin/tenants", {"name": "evil"}),
                               ("GET", "/_chuan/admin/credentials", None),
                               ("GET", "/_chuan/metrics", None)):
        r = requests.request(method, server.endpoint + path, headers=bearer(t), json=body, timeout=30)
        # (A credential the caller may not manage is answered as one that does not exist.)
        refused = (401, 403, 404) if method == "DELETE" else (401, 403)
        assert r.status_code in refused, f"{method} {path} with an upload token: HTTP {r.status_code} {r.text}"
    r = tus_upload(ctx, t, "inbox/still.bin", b"still valid")
    assert r.status_code == 201, "the refused self-revocation left the token as it was"
    # It is not a key pair: S3 does not know it.
    s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=t, aws_secret_access_key="x",
                      region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=ctx.bucket)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_type_is_required_and_fields_are_checked(ctx):
    """A request without `type` is refused, not read as a key pair (the stronger credential);
    an unknown field or operation is named in the answer; nothing is issued."""
    before = requests.get(ctx.server.endpoint + TOKENS, auth=ctx.tenant.auth, timeout=30).json()
    for body, named in (({"bucket": ctx.bucket, "ttl_secs": 60}, "type"),
                        ({"type": "upload", "buckets": [ctx.bucket], "bucket": ctx.bucket, "ttl_secs": 60}, "buckets"),
                        ({"type": "upload", "bucket": ctx.bucket, "ttl_secs": 60, "ops": ["upload"]}, "upload"),
                        ({"type": "bearer", "bucket": ctx.bucket, "ttl_secs": 60}, "bearer"),
                        ({"type": "upload", "bucket": ctx.bucket, "ttl_secs": -5}, "ttl_secs")):
        r = requests.post(ctx.server.endpoint + TOKENS, auth=ctx.tenant.auth, json=body, timeout=30)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert named in r.text and "type" in r.text, (body, r.text)
    after = requests.get(ctx.server.endpoint + TOKENS, auth=ctx.tenant.auth, timeout=30).json()
    assert after == before


def test_lifetime_is_required_and_bounded_and_ends(ctx):
    r = requests.post(ctx.server.endpoint + TOKENS, auth=ctx.tenant.auth, timeout=30,
                      json={"type": "upload", "bucket": ctx.bucket})
    assert r.status_code == 400 and "ttl_secs" in r.text, r.text
    issue(ctx, expect_status=400, ttl_secs=31 * 86400)
    issue(ctx, expect_status=400, ttl_secs=0)
    short = issue(ctx, ttl_secs=1)["token"]
    time.sleep(1.3)
    assert tus_upload(ctx, short, "late.bin", b"too late").status_code == 401
    assert_no_object(ctx.s3, ctx.bucket, "late.bin")


def test_resumable_draft_and_instant_api_take_it(ctx, server):
    t = issue(ctx, ops=["write", "read"])["token"]
    data = os.urandom(3000)
    # (No interop version 10: Python's http.client takes a 104 for the final answer.)
    r = requests.post(server.endpoint + f"/_chuan/resumable/{ctx.bucket}/draft.bin", data=data, timeout=60,
                      headers={**bearer(t), "Upload-Complete": "?1"})
    assert r.status_code in (200, 201) and r.headers.get("Upload-Complete") == "?1", (r.status_code, r.text)
    assert get_body(ctx.s3, ctx.bucket, "draft.bin") == data
    # The instant-upload API: a challenge for content the tenant holds needs no proof.
    body = {"bucket": ctx.bucket, "key": "draft-copy.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    r = requests.post(server.endpoint + "/_chuan/v1/instant/challenge", headers=bearer(t), json=body, timeout=30)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["proof_required"] is False, c
    r = requests.post(server.endpoint + "/_chuan/v1/instant/commit", headers=bearer(t),
                      json={"challenge_id": c["challenge_id"]}, timeout=30)
    assert r.status_code == 200 and r.json()["hit"] is True, r.text
    assert get_body(ctx.s3, ctx.bucket, "draft-copy.bin") == data
    # An unknown token is refused.
    r = requests.post(server.endpoint + "/_chuan/v1/instant/challenge", headers=bearer("0" * 48), json=body, timeout=30)
    assert r.status_code == 401


def test_write_only_by_default_and_gone_with_the_issuing_key(ctx, server):
    from adrive_helpers import create_tenant

    # A second key of the same tenant issues the token (a key a page's server holds).
    key = create_tenant(server, ctx.tenant.name)
    r = requests.post(server.endpoint + TOKENS, auth=key.auth, timeout=30,
                      json={"type": "upload", "label": "app", "bucket": ctx.bucket, "ttl_secs": 600})
    assert r.status_code == 201, r.text
    t = r.json()
    listed = requests.get(server.endpoint + TOKENS, auth=ctx.tenant.auth, timeout=30).json()
    mine = [x for x in listed if x["access_key"] == t["id"]]
    assert len(mine) == 1 and mine[0]["label"] == "app", listed
    assert mine[0]["scope"]["ops"] == ["write"], mine[0]
    assert mine[0]["issued_by"] == key.access_key, mine[0]
    assert tus_upload(ctx, t["token"], "w.bin", b"written").status_code == 201
    # Writing is all the instant-upload API needs.
    r = requests.post(server.endpoint + "/_chuan/v1/instant/challenge", headers=bearer(t["token"]), timeout=30,
                      json={"bucket": ctx.bucket, "key": "w2.bin", "size": 7,
                            "sha256": hashlib.sha256(b"written").hexdigest()})
    assert r.status_code == 200, r.text
    # Revoking the key that issued it revokes the token, and the tenant's other key keeps working.
    r = requests.delete(f"{server.endpoint}/_chuan/admin/credentials", params={"access_key": key.access_key},
                        auth=(server.access_key, server.secret_key), timeout=10)
    assert r.status_code == 200, r.text
    r = tus_upload(ctx, t["token"], "after.bin", b"after the key went")
    assert r.status_code == 401, (r.status_code, r.text)
    assert_no_object(ctx.s3, ctx.bucket, "after.bin")
    listed = requests.get(server.endpoint + TOKENS, auth=ctx.tenant.auth, timeout=30).json()
    assert t["id"] not in {x["access_key"] for x in listed}, "deleted with its issuer, not only refused"
    assert get_body(ctx.s3, ctx.bucket, "w.bin") == b"written"
