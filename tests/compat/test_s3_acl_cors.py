"""S3 access control lists (canned and explicit grants, bucket and object, across tenants)
and bucket CORS (configuration, preflight, headers of actual requests), driven with boto3,
the aws CLI, curl and plain `requests` (anonymous and SigV4-signed)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from adrive_helpers import create_tenant
from compat_helpers import aws_cli, expect_s3_error, get_body, s3_error_code, unique_name

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def alice(server):
    return create_tenant(server, unique_name("alice"))


@pytest.fixture
def bob(server):
    return create_tenant(server, unique_name("bob"))


def anon(server, method: str, bucket: str, key: str | None = None, **kw) -> requests.Response:
    """An unsigned (anonymous) path-style request."""
    path = "/" + quote(bucket, safe="")
    if key is not None:
        path += "/" + quote(key, safe="/~")
    return requests.request(method, server.endpoint + path, timeout=30, **kw)


def signed(server, tenant, method, bucket, key=None, params=None, headers=None, body=b""):
    """A SigV4-signed path-style request with a tenant's (or, tenant=None, the root's) keys."""
    ak, sk = (tenant.access_key, tenant.secret_key) if tenant else (server.access_key, server.secret_key)
    path = "/" + quote(bucket, safe="")
    if key is not None:
        path += "/" + quote(key, safe="/~")
    req = AWSRequest(method=method, url=server.endpoint + path, params=params or {}, data=body, headers=headers or {})
    S3SigV4Auth(Credentials(ak, sk), "s3", server.region).add_auth(req)
    prepared = req.prepare()
    return requests.request(method, prepared.url, headers=dict(prepared.headers.items()), data=body, timeout=30)


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def aws_as(server, tenant, *args: str) -> subprocess.CompletedProcess:
    env = server.aws_env()
    env.update(AWS_ACCESS_KEY_ID=tenant.access_key, AWS_SECRET_ACCESS_KEY=tenant.secret_key)
    res = subprocess.run(
        [str(aws_cli()), *args, "--endpoint-url", server.endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, f"aws {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def grants_set(acl: dict) -> set[tuple]:
    """The grants of a Get*Acl answer as comparable tuples."""
    out = set()
    for g in acl.get("Grants", []):
        ge = g["Grantee"]
        who = ge.get("ID") or ge.get("URI") or ge.get("EmailAddress")
        out.add((ge["Type"], who, g["Permission"]))
    return out


def owner_grant(tenant_name: str) -> tuple:
    return ("CanonicalUser", tenant_name, "FULL_CONTROL")


def curl_headers(*args: str) -> tuple[int, dict[str, str], bytes]:
    """Run `curl -sS -i ...`; return (status, lower-cased headers of the last response, body)."""
    res = subprocess.run(["curl", "-sS", "-i", "--max-time", "60", *args], capture_output=True, timeout=90)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    raw = res.stdout
    # Skip interim responses (100 Continue).
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 100") and rest:
            raw = rest
            continue
        break
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def split_list(value: str | None) -> list[str]:
    return [p.strip().lower() for p in (value or "").split(",") if p.strip()]


# =========================================================================== 1. canned object ACLs


def test_cli_cp_public_read_object_is_anonymously_readable_private_one_is_not(server, alice, tmp_path):
    s3a = alice.s3(server)
    b = unique_name("acl")
    s3a.create_bucket(Bucket=b)
    src = tmp_path / "pub.bin"
    data = os.urandom(4321)
    src.write_bytes(data)
    aws_as(server, alice, "s3", "cp", str(src), f"s3://{b}/pub/file.bin", "--acl", "public-read")
    aws_as(server, alice, "s3", "cp", str(src), f"s3://{b}/priv/file.bin")

    r = anon(server, "GET", b, "pub/file.bin")
    assert r.status_code == 200, r.text[:500]
    assert r.content == data

    r = anon(server, "GET", b, "priv/file.bin")
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied", r.text[:500]
    assert data not in r.content


def test_put_object_public_read_acl_rendered_and_revoked(server, alice):
    s3a = alice.s3(server)
    b = unique_name("acl")
    s3a.create_bucket(Bucket=b)
    s3a.put_object(Bucket=b, Key="k.txt", Body=b"hello public", ACL="public-read")

    acl = s3a.get_object_acl(Bucket=b, Key="k.txt")
    assert acl["Owner"]["ID"] == alice.name, acl["Owner"]
    assert acl["Owner"].get("DisplayName") == alice.name, acl["Owner"]
    assert grants_set(acl) == {owner_grant(alice.name), ("Group", ALL_USERS, "READ")}, acl["Grants"]
    owner_grants = [g for g in acl["Grants"] if g["Grantee"].get("ID") == alice.name]
    assert owner_grants[0]["Grantee"].get("DisplayName") == alice.name, owner_grants

    r = anon(server, "GET", b, "k.txt")
    assert r.status_code == 200, r.text[:500]
    assert r.content == b"hello public"

    s3a.put_object_acl(Bucket=b, Key="k.txt", ACL="private")
    acl = s3a.get_object_acl(Bucket=b, Key="k.txt")
    assert grants_set(acl) == {owner_grant(alice.name)}, acl["Grants"]
    r = anon(server, "GET", b, "k.txt")
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied", r.text[:500]
    # The owner still reads it.
    assert get_body(s3a, b, "k.txt") == b"hello public"


# =========================================================================== 2. bucket ACLs


def test_bucket_canned_acls_open_and_close_anonymous_list_and_write(server, alice):
    s3a = alice.s3(server)
    b = unique_name("acl")
    s3a.create_bucket(Bucket=b, ACL="public-read")
    s3a.put_object(Bucket=b, Key="listed.txt", Body=b"x")

    r = anon(server, "GET", b)
    assert r.status_code == 200, r.text[:500]
    assert b"<Key>listed.txt</Key>" in r.content, r.text[:500]
    # Bucket READ lists keys; it does not grant reading objects (their ACL is private).
    r = anon(server, "GET", b, "listed.txt")
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied", r.text[:500]
    acl = s3a.get_bucket_acl(Bucket=b)
    assert acl["Owner"]["ID"] == alice.name
    assert grants_set(acl) == {owner_grant(alice.name), ("Group", ALL_USERS, "READ")}, acl["Grants"]

    # public-read does not let anonymous callers write.
    r = anon(server, "PUT", b, "anon-denied.txt", data=b"nope")
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied"

    s3a.put_bucket_acl(Bucket=b, ACL="public-read-write")
    acl = s3a.get_bucket_acl(Bucket=b)
    assert grants_set(acl) == {
        owner_grant(alice.name),
        ("Group", ALL_USERS, "READ"),
        ("Group", ALL_USERS, "WRITE"),
    }, acl["Grants"]
    r = anon(server, "PUT", b, "anon-wrote.txt", data=b"written anonymously")
    assert r.status_code == 200, r.text[:500]
    assert get_body(s3a, b, "anon-wrote.txt") == b"written anonymously"

    s3a.put_bucket_acl(Bucket=b, ACL="private")
    assert grants_set(s3a.get_bucket_acl(Bucket=b)) == {owner_grant(alice.name)}
    r = anon(server, "GET", b)
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied", r.text[:500]
    r = anon(server, "PUT", b, "anon-again.txt", data=b"nope")
    assert r.status_code == 403, r.text[:500]
    # The owner's access is untouched.
    keys = [o["Key"] for o in s3a.list_objects_v2(Bucket=b).get("Contents", [])]
    assert sorted(keys) == ["anon-wrote.txt", "listed.txt"]


# =========================================================================== 3. cross-tenant grants


def test_grant_read_by_canonical_id_lets_other_tenant_list_not_write(server, alice, bob):
    s3a, s3b = alice.s3(server), bob.s3(server)
    b = unique_name("xt")
    s3a.create_bucket(Bucket=b)
    s3a.put_object(Bucket=b, Key="a.txt", Body=b"alice's")

    with expect_s3_error(403, "AccessDenied"):
        s3b.list_objects_v2(Bucket=b)

    s3a.put_bucket_acl(Bucket=b, GrantRead=f'id="{bob.name}"', GrantFullControl=f'id="{alice.name}"')
    acl = s3a.get_bucket_acl(Bucket=b)
    assert grants_set(acl) == {owner_grant(alice.name), ("CanonicalUser", bob.name, "READ")}, acl["Grants"]

    keys = [o["Key"] for o in s3b.list_objects_v2(Bucket=b).get("Contents", [])]
    assert keys == ["a.txt"]
    with expect_s3_error(403, "AccessDenied"):
        s3b.put_object(Bucket=b, Key="b.txt", Body=b"bob's")
    # Bucket READ does not reach the objects: a.txt's own ACL is private to alice.
    with expect_s3_error(403, "AccessDenied"):
        s3b.get_object(Bucket=b, Key="a.txt")


def test_grant_write_objects_owned_by_writer_and_bucket_owner_canned_acls(server, alice, bob):
    s3a, s3b = alice.s3(server), bob.s3(server)
    b = unique_name("xt")
    s3a.create_bucket(Bucket=b)
    s3a.put_bucket_acl(
        Bucket=b,
        GrantRead=f'id="{bob.name}"',
        GrantWrite=f'id="{bob.name}"',
        GrantFullControl=f'id="{alice.name}"',
    )

    s3b.put_object(Bucket=b, Key="bob-private.txt", Body=b"bob private")
    s3b.put_object(Bucket=b, Key="bob-bor.txt", Body=b"bob bor", ACL="bucket-owner-read")
    s3b.put_object(Bucket=b, Key="bob-bofc.txt", Body=b"bob bofc", ACL="bucket-owner-full-control")

    acl = s3b.get_object_acl(Bucket=b, Key="bob-private.txt")
    assert acl["Owner"]["ID"] == bob.name, acl
    assert grants_set(acl) == {owner_grant(bob.name)}, acl["Grants"]

    # The bucket owner cannot read an object another tenant wrote privately...
    with expect_s3_error(403, "AccessDenied"):
        s3a.get_object(Bucket=b, Key="bob-private.txt")
    # ...but can when the writer granted the bucket owner access.
    assert get_body(s3a, b, "bob-bor.txt") == b"bob bor"
    assert get_body(s3a, b, "bob-bofc.txt") == b"bob bofc"

    acl = s3b.get_object_acl(Bucket=b, Key="bob-bor.txt")
    assert acl["Owner"]["ID"] == bob.name
    assert grants_set(acl) == {owner_grant(bob.name), ("CanonicalUser", alice.name, "READ")}, acl["Grants"]
    acl = s3b.get_object_acl(Bucket=b, Key="bob-bofc.txt")
    assert acl["Owner"]["ID"] == bob.name
    assert grants_set(acl) == {owner_grant(bob.name), ("CanonicalUser", alice.name, "FULL_CONTROL")}, acl["Grants"]
    # Bob reads his own objects.
    assert get_body(s3b, b, "bob-private.txt") == b"bob private"


def test_put_object_acl_access_control_policy_round_trips(server, alice, bob):
    s3a, s3b = alice.s3(server), bob.s3(server)
    b = unique_name("xt")
    s3a.create_bucket(Bucket=b)
    s3a.put_object(Bucket=b, Key="shared.txt", Body=b"shared with bob")
    with expect_s3_error(403, "AccessDenied"):
        s3b.get_object(Bucket=b, Key="shared.txt")

    policy = {
        "Owner": {"ID": alice.name},
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": alice.name}, "Permission": "FULL_CONTROL"},
            {"Grantee": {"Type": "CanonicalUser", "ID": bob.name}, "Permission": "READ"},
            {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ_ACP"},
        ],
    }
    s3a.put_object_acl(Bucket=b, Key="shared.txt", AccessControlPolicy=policy)
    acl = s3a.get_object_acl(Bucket=b, Key="shared.txt")
    assert acl["Owner"]["ID"] == alice.name
    assert grants_set(acl) == {
        owner_grant(alice.name),
        ("CanonicalUser", bob.name, "READ"),
        ("Group", ALL_USERS, "READ_ACP"),
    }, acl["Grants"]
    assert get_body(s3b, b, "shared.txt") == b"shared with bob"
    # READ_ACP to everyone: an anonymous caller reads the ACL but not the object.
    r = anon(server, "GET", b, "shared.txt", params={"acl": ""})
    assert r.status_code == 200, r.text[:500]
    assert bob.name.encode() in r.content
    r = anon(server, "GET", b, "shared.txt")
    assert r.status_code == 403, r.text[:500]


# =========================================================================== 4. bad input


def test_grant_to_unknown_canonical_id_is_400_and_acl_unchanged(server, alice):
    s3a = alice.s3(server)
    b = unique_name("bad")
    s3a.create_bucket(Bucket=b, ACL="public-read")
    before = s3a.get_bucket_acl(Bucket=b)
    with expect_s3_error(400, "InvalidArgument"):
        s3a.put_bucket_acl(Bucket=b, GrantRead='id="nobody-here"')
    after = s3a.get_bucket_acl(Bucket=b)
    assert grants_set(after) == grants_set(before) == {owner_grant(alice.name), ("Group", ALL_USERS, "READ")}
    s3a.put_object(Bucket=b, Key="o", Body=b"o")
    with expect_s3_error(400, "InvalidArgument"):
        s3a.put_object_acl(Bucket=b, Key="o", GrantRead='id="nobody-here"')
    assert grants_set(s3a.get_object_acl(Bucket=b, Key="o")) == {owner_grant(alice.name)}


def test_grant_by_email_is_400_unresolvable(server, alice):
    s3a = alice.s3(server)
    b = unique_name("bad")
    s3a.create_bucket(Bucket=b)
    with expect_s3_error(400, "UnresolvableGrantByEmailAddress"):
        s3a.put_bucket_acl(Bucket=b, GrantRead='emailAddress="someone@example.com"')
    assert grants_set(s3a.get_bucket_acl(Bucket=b)) == {owner_grant(alice.name)}


def test_canned_acl_together_with_grant_headers_is_400_invalid_request(server, alice, bob):
    s3a = alice.s3(server)
    b = unique_name("bad")
    s3a.create_bucket(Bucket=b)
    with expect_s3_error(400, "InvalidRequest"):
        s3a.put_bucket_acl(Bucket=b, ACL="public-read", GrantRead=f'id="{bob.name}"')
    with expect_s3_error(400, "InvalidRequest"):
        s3a.put_object(Bucket=b, Key="both", Body=b"x", ACL="public-read", GrantRead=f'id="{bob.name}"')
    assert grants_set(s3a.get_bucket_acl(Bucket=b)) == {owner_grant(alice.name)}
    assert s3a.list_objects_v2(Bucket=b).get("KeyCount") == 0


@pytest.mark.parametrize(
    "body",
    [
        b"<AccessControlPolicy><Owner><ID>x</ID></Owner><AccessControlList><Grant>",
        b"this is not xml at all",
        b'<?xml version="1.0"?><AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<AccessControlList><Grant><Permission>READ</Permission></Grant></AccessControlList>"
        b"</AccessControlPolicy>",
    ],
    ids=["truncated", "not-xml", "grant-without-grantee"],
)
def test_malformed_acl_xml_is_400(server, alice, body):
    s3a = alice.s3(server)
    b = unique_name("bad")
    s3a.create_bucket(Bucket=b)
    r = signed(server, alice, "PUT", b, params={"acl": ""}, headers={"Content-MD5": content_md5(body)}, body=body)
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) in ("MalformedXML", "MalformedACLError"), r.text[:500]
    assert grants_set(s3a.get_bucket_acl(Bucket=b)) == {owner_grant(alice.name)}


def test_put_bucket_acl_without_write_acp_is_403(server, alice, bob):
    s3a, s3b = alice.s3(server), bob.s3(server)
    b = unique_name("bad")
    s3a.create_bucket(Bucket=b)
    # Even READ + WRITE on the bucket do not include WRITE_ACP (or READ_ACP).
    s3a.put_bucket_acl(
        Bucket=b, GrantRead=f'id="{bob.name}"', GrantWrite=f'id="{bob.name}"', GrantFullControl=f'id="{alice.name}"'
    )
    before = grants_set(s3a.get_bucket_acl(Bucket=b))
    with expect_s3_error(403, "AccessDenied"):
        s3b.put_bucket_acl(Bucket=b, ACL="public-read-write")
    with expect_s3_error(403, "AccessDenied"):
        s3b.get_bucket_acl(Bucket=b)
    assert grants_set(s3a.get_bucket_acl(Bucket=b)) == before
    r = anon(server, "GET", b)
    assert r.status_code == 403


# =========================================================================== 5. CORS

CORS_RULES = [
    {"AllowedMethods": ["GET"], "AllowedOrigins": ["*suffix"]},
    {"AllowedMethods": ["GET"], "AllowedOrigins": ["start*end"]},
    {
        "AllowedMethods": ["PUT"],
        "AllowedOrigins": ["prefix*"],
        "AllowedHeaders": ["x-amz-*", "content-type"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 600,
    },
]


def normalized_rules(rules):
    out = []
    for r in rules:
        out.append(
            {
                "AllowedMethods": r["AllowedMethods"],
                "AllowedOrigins": r["AllowedOrigins"],
                "AllowedHeaders": r.get("AllowedHeaders", []),
                "ExposeHeaders": r.get("ExposeHeaders", []),
                "MaxAgeSeconds": r.get("MaxAgeSeconds"),
            }
        )
    return out


@pytest.fixture
def cors_bucket(server, s3):
    b = unique_name("cors")
    s3.create_bucket(Bucket=b)
    s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": CORS_RULES})
    s3.put_object(Bucket=b, Key="obj.txt", Body=b"cors object")
    return b


def test_cors_configuration_put_get_delete(s3, cors_bucket):
    got = s3.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]
    assert normalized_rules(got) == normalized_rules(CORS_RULES), got
    s3.delete_bucket_cors(Bucket=cors_bucket)
    with expect_s3_error(404, "NoSuchCORSConfiguration"):
        s3.get_bucket_cors(Bucket=cors_bucket)
    # Preflights now fail: CORS is not enabled for the bucket.
    status, _, _ = curl_headers(
        "-X", "OPTIONS", "-H", "Origin: foo.suffix", "-H", "Access-Control-Request-Method: GET",
        f"{s3.meta.endpoint_url}/{cors_bucket}/obj.txt",
    )
    assert status == 403


def test_get_bucket_cors_without_configuration_is_404(s3, bucket):
    with expect_s3_error(404, "NoSuchCORSConfiguration"):
        s3.get_bucket_cors(Bucket=bucket)


def _vhost_args(server, bucket, key):
    return ["-H", f"Host: {bucket}.localhost:{server.port}", f"{server.endpoint}/{key}"]


def _path_args(server, bucket, key):
    return [f"{server.endpoint}/{bucket}/{key}"]


@pytest.mark.parametrize("style", ["path", "vhost"])
def test_cors_preflight(server, cors_bucket, style):
    target = (_path_args if style == "path" else _vhost_args)(server, cors_bucket, "obj.txt")

    def preflight(origin, method=None, req_headers=None):
        args = ["-X", "OPTIONS"]
        if origin is not None:
            args += ["-H", f"Origin: {origin}"]
        if method is not None:
            args += ["-H", f"Access-Control-Request-Method: {method}"]
        if req_headers is not None:
            args += ["-H", f"Access-Control-Request-Headers: {req_headers}"]
        return curl_headers(*args, *target)

    status, h, body = preflight("foo.suffix", "GET")
    assert status == 200, (h, body[:500])
    assert h.get("access-control-allow-origin") == "foo.suffix", h
    assert split_list(h.get("access-control-allow-methods")) == ["get"], h

    status, h, body = preflight("startXYZend", "GET")
    assert status == 200, (h, body[:500])
    assert h.get("access-control-allow-origin") == "startXYZend", h

    for origin in ("foo.bla", "startXYZendX", "suffix.foo"):
        status, h, body = preflight(origin, "GET")
        assert status == 403, (origin, h, body[:500])
        assert "access-control-allow-origin" not in h, (origin, h)

    # Method not allowed for the matching origin.
    status, h, _ = preflight("foo.suffix", "PUT")
    assert status == 403, h

    status, h, body = preflight("foo.suffix", None)
    assert status == 400, (h, body[:500])

    status, h, body = preflight("prefix.x", "PUT", "x-amz-date, content-type")
    assert status == 200, (h, body[:500])
    assert h.get("access-control-allow-origin") == "prefix.x", h
    assert split_list(h.get("access-control-allow-methods")) == ["put"], h
    assert split_list(h.get("access-control-allow-headers")) == ["x-amz-date", "content-type"], h
    assert h.get("access-control-max-age") == "600", h

    status, h, body = preflight("prefix.x", "PUT", "x-amz-date, authorization")
    assert status == 403, (h, body[:500])
    assert "access-control-allow-origin" not in h, h


def test_cors_actual_presigned_put_with_origin_gets_cors_headers(server, s3, cors_bucket, tmp_path):
    url = s3.generate_presigned_url("put_object", Params={"Bucket": cors_bucket, "Key": "up.txt"}, ExpiresIn=300)
    r = requests.put(url, data=b"uploaded from a browser", headers={"Origin": "prefix.x"}, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.headers.get("Access-Control-Allow-Origin") == "prefix.x", dict(r.headers)
    assert split_list(r.headers.get("Access-Control-Expose-Headers")) == ["etag"], dict(r.headers)
    assert "ETag" in r.headers
    assert get_body(s3, cors_bucket, "up.txt") == b"uploaded from a browser"

    # Same upload through curl, virtual-host style.
    src = tmp_path / "curl-up.txt"
    src.write_bytes(b"curl upload")
    from compat_helpers import virtual_host_client

    v = virtual_host_client(server)
    url = v.generate_presigned_url("put_object", Params={"Bucket": cors_bucket, "Key": "curl-up.txt"}, ExpiresIn=300)
    status, h, body = curl_headers(
        "--resolve", f"{cors_bucket}.localhost:{server.port}:127.0.0.1", "-H", "Origin: prefix.x", "-T", str(src), url
    )
    assert status == 200, (h, body[:500])
    assert h.get("access-control-allow-origin") == "prefix.x", h
    assert get_body(s3, cors_bucket, "curl-up.txt") == b"curl upload"

    # A GET from an origin whose rules allow only PUT gets no CORS headers (but is served).
    url = s3.generate_presigned_url("get_object", Params={"Bucket": cors_bucket, "Key": "obj.txt"}, ExpiresIn=300)
    r = requests.get(url, headers={"Origin": "prefix.x"}, timeout=30)
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers, dict(r.headers)
    r = requests.get(url, headers={"Origin": "a.suffix"}, timeout=30)
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin") == "a.suffix", dict(r.headers)


def test_no_cors_headers_on_bucket_without_cors(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain.txt", Body=b"plain")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "plain.txt"}, ExpiresIn=300)
    r = requests.get(url, headers={"Origin": "https://example.com"}, timeout=30)
    assert r.status_code == 200
    assert r.content == b"plain"
    assert not any(k.lower().startswith("access-control-") for k in r.headers), dict(r.headers)


def test_cors_rule_with_unsupported_method_is_400_and_rules_unchanged(s3, cors_bucket):
    bad = [{"AllowedMethods": ["PATCH"], "AllowedOrigins": ["*"]}]
    with expect_s3_error(400, "InvalidRequest"):
        s3.put_bucket_cors(Bucket=cors_bucket, CORSConfiguration={"CORSRules": bad})
    got = s3.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]
    assert normalized_rules(got) == normalized_rules(CORS_RULES)


@pytest.mark.parametrize(
    "body",
    [
        b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>",
        b"definitely not xml",
    ],
    ids=["truncated", "not-xml"],
)
def test_malformed_cors_xml_is_400_malformed_xml(server, s3, cors_bucket, body):
    r = signed(server, None, "PUT", cors_bucket, params={"cors": ""}, headers={"Content-MD5": content_md5(body)}, body=body)
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "MalformedXML", r.text[:500]
    got = s3.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]
    assert normalized_rules(got) == normalized_rules(CORS_RULES)


# =========================================================================== 6. browser-style POST


def test_browser_style_post_upload_with_preflight(server, s3):
    b = unique_name("cors")
    s3.create_bucket(Bucket=b)
    rules = CORS_RULES + [
        {"AllowedMethods": ["POST"], "AllowedOrigins": ["prefix*"], "ExposeHeaders": ["ETag", "Location"]}
    ]
    s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": rules})

    status, h, body = curl_headers(
        "-X", "OPTIONS", "-H", "Origin: prefix.x", "-H", "Access-Control-Request-Method: POST",
        f"{server.endpoint}/{b}",
    )
    assert status == 200, (h, body[:500])
    assert h.get("access-control-allow-origin") == "prefix.x", h
    assert split_list(h.get("access-control-allow-methods")) == ["post"], h

    post = s3.generate_presigned_post(Bucket=b, Key="form/${filename}", ExpiresIn=300)
    r = requests.post(
        post["url"],
        data={**post["fields"], "key": "form/browser.txt"},
        files={"file": ("browser.txt", b"from a form")},
        headers={"Origin": "prefix.x"},
        timeout=30,
    )
    assert r.status_code == 204, r.text[:500]
    assert r.headers.get("Access-Control-Allow-Origin") == "prefix.x", dict(r.headers)
    assert set(split_list(r.headers.get("Access-Control-Expose-Headers"))) == {"etag", "location"}, dict(r.headers)
    assert get_body(s3, b, "form/browser.txt") == b"from a form"

    # From an origin no rule allows, the upload still works (CORS is the browser's check) but
    # carries no Access-Control-Allow-Origin.
    r = requests.post(
        post["url"],
        data={**post["fields"], "key": "form/other.txt"},
        files={"file": ("other.txt", b"other origin")},
        headers={"Origin": "evil.example"},
        timeout=30,
    )
    assert r.status_code == 204, r.text[:500]
    assert "Access-Control-Allow-Origin" not in r.headers, dict(r.headers)
    assert get_body(s3, b, "form/other.txt") == b"other origin"
