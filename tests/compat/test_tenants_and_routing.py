"""Tenants created through the admin API, and the HTTP forms the dispatcher must accept:
virtual-host buckets, absolute-form request targets, Expect: 100-continue."""

import os
import socket
import subprocess
from urllib.parse import urlsplit

import requests

from compat_helpers import expect_s3_error, get_body, unique_name

TENANTS_PATH = "/_chuan/admin/tenants"


def create_tenant(server, name):
    r = requests.post(f"{server.endpoint}{TENANTS_PATH}?name={name}", auth=(server.access_key, server.secret_key), timeout=30)
    assert r.status_code == 201, r.text
    cred = r.json()
    assert cred["tenant"] == name and cred["access_key"] and cred["secret_key"]
    return cred


def test_admin_api_refuses_non_root_credentials(server):
    cred = create_tenant(server, unique_name("t"))
    r = requests.post(f"{server.endpoint}{TENANTS_PATH}?name=x", auth=(cred["access_key"], cred["secret_key"]), timeout=30)
    assert r.status_code == 401
    r = requests.post(f"{server.endpoint}{TENANTS_PATH}?name=x", timeout=30)
    assert r.status_code == 401


def test_tenants_see_and_touch_only_their_own_buckets(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="root-secret.txt", Body=b"root data")
    alice = create_tenant(server, unique_name("alice"))
    a = server.client(alice["access_key"], alice["secret_key"])
    own = unique_name("ab")
    a.create_bucket(Bucket=own)
    a.put_object(Bucket=own, Key="mine.txt", Body=b"alice data")
    names = [b["Name"] for b in a.list_buckets()["Buckets"]]
    assert names == [own], names
    with expect_s3_error(403, "AccessDenied"):
        a.get_object(Bucket=bucket, Key="root-secret.txt")
    with expect_s3_error(403, "AccessDenied"):
        a.put_object(Bucket=bucket, Key="intruder.txt", Body=b"x")
    with expect_s3_error(409, "BucketAlreadyExists"):
        a.create_bucket(Bucket=bucket)
    # A second tenant cannot read the first one's bucket either; root (admin) can.
    bob = create_tenant(server, unique_name("bob"))
    b = server.client(bob["access_key"], bob["secret_key"])
    with expect_s3_error(403, "AccessDenied"):
        b.list_objects_v2(Bucket=own)
    assert get_body(s3, own, "mine.txt") == b"alice data"
    assert "intruder.txt" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_virtual_host_bucket_addressing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="vh/obj.txt", Body=b"virtual host")
    # boto3 builds <bucket>.localhost:<port>; curl resolves that name to loopback explicitly.
    from compat_helpers import virtual_host_client

    v = virtual_host_client(server)
    url = v.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "vh/obj.txt"}, ExpiresIn=300)
    host = urlsplit(url).netloc
    assert host == f"{bucket}.localhost:{server.port}", url
    out = subprocess.run(
        ["curl", "-sS", "-f", "--resolve", f"{host}:127.0.0.1", url], capture_output=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"virtual host"


def test_absolute_form_request_target(server, s3, bucket):
    """Clients behind HTTP_PROXY send `GET http://host/path HTTP/1.1`."""
    s3.put_object(Bucket=bucket, Key="abs.txt", Body=b"absolute form")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "abs.txt"}, ExpiresIn=300)
    u = urlsplit(url)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert body == b"absolute form"


def test_expect_100_continue_upload(server, s3, bucket, tmp_path):
    path = tmp_path / "expect.bin"
    data = os.urandom(3 * 1024 * 1024)
    path.write_bytes(data)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "expect.bin"}, ExpiresIn=300)
    out = subprocess.run(
        ["curl", "-sS", "-f", "-v", "-H", "Expect: 100-continue", "-T", str(path), url],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert b"HTTP/1.1 100 Continue" in out.stderr, "the server did not grant 100-continue"
    assert get_body(s3, bucket, "expect.bin") == data


def test_a_second_key_pair_and_its_revocation(server):
    """POSTing an existing tenant adds a key pair; DELETE on the admin credentials endpoint
    revokes one at once, leaving the other working; only the root may do either."""
    from adrive_helpers import create_tenant

    first = create_tenant(server)
    second = create_tenant(server, first.name)
    assert second.access_key != first.access_key
    bucket = unique_name("rv")
    first.s3(server).create_bucket(Bucket=bucket)
    assert second.s3(server).list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    url = f"{server.endpoint}/_chuan/admin/credentials"
    r = requests.delete(url, params={"access_key": first.access_key}, auth=first.auth, timeout=10)
    assert r.status_code == 401, f"a tenant key revoked a key: {r.status_code} {r.text}"
    r = requests.delete(url, params={"access_key": first.access_key}, auth=(server.access_key, server.secret_key), timeout=10)
    assert r.status_code == 200, r.text
    with expect_s3_error(403, "InvalidAccessKeyId"):
        first.s3(server).list_objects_v2(Bucket=bucket)
    assert second.s3(server).list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    listed = requests.get(url, auth=(server.access_key, server.secret_key), timeout=10).json()
    assert first.access_key not in {c["access_key"] for c in listed}
    r = requests.delete(url, params={"access_key": first.access_key}, auth=(server.access_key, server.secret_key), timeout=10)
    assert r.status_code == 404
