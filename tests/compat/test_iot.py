"""UCloud IoT device file upload (/work/shared/specs/ucloud-iot-device-file-upload.md).

Contract:
* POST /_chuan/admin/iot/devices?tenant=T&bucket=B&product_sn=P&device_sn=D
  (HTTP Basic root) -> 201 {"product_sn","device_sn","device_secret"}: a
  device bound to bucket B (which must exist and belong to T);
* POST /api/v1/url, Authorization: hex(HMAC-SHA256(device_secret, raw body)),
  JSON body {ProductSN, DeviceSN, FileName, FileSize, MD5 (hex), Content-Type}
  -> 200 {"RetCode":0, "URL": "http://<Chuan>/.../P/D/FileName",
  "Authorization": "Ucloud <token>"};
* PUT <URL> with that Authorization, Content-Type, Content-MD5 (hex) and the
  bytes -> 200 (empty JSON); the object is then S3 object B/"P/D/FileName";
* refusals are JSON {"RetCode": != 0, "ErrMsg"} and store nothing: wrong HMAC
  401/403, unknown device 401/403/404, size or MD5 other than declared 400,
  token used for another path 401/403, reused token 401/403, expired token
  (CHUAN_IOT_TOKEN_TTL_SECS=1) 401/403.
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import requests

from adrive_helpers import env_server_factory  # noqa: F401  (fixture)
from compat_helpers import MiB, unique_name
from ufile_helpers import (
    Device,
    assert_ufile_error,
    check_iot_url_answer,
    create_tenant,
    install_localhost_resolver,
    iot_body,
    iot_put,
    iot_request_url,
    md5_hex,
    register_device,
    register_device_raw,
)


@pytest.fixture(autouse=True)
def _resolver():
    # the returned URL may name the bucket host (B.localhost:PORT)
    install_localhost_resolver()


def _tenant_bucket(srv):
    t = create_tenant(srv)
    b = unique_name("iot")
    t.s3(srv).create_bucket(Bucket=b)
    return t, b


@pytest.fixture
def device(server) -> Device:
    t, b = _tenant_bucket(server)
    return register_device(server, t, b)


def _object_key(dev: Device, name: str) -> str:
    return f"{dev.product_sn}/{dev.device_sn}/{name}"


def _s3_body(srv, dev: Device, key: str) -> bytes:
    return dev.tenant.s3(srv).get_object(Bucket=dev.bucket, Key=key)["Body"].read()


def _assert_absent(srv, dev: Device, key: str, what: str) -> None:
    from botocore.exceptions import ClientError

    try:
        dev.tenant.s3(srv).head_object(Bucket=dev.bucket, Key=key)
    except ClientError as e:
        code = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert code == 404, f"{what}: S3 HEAD {key}: HTTP {code}"
        return
    raise AssertionError(f"{what}: {dev.bucket}/{key} exists but nothing may be stored")


def _get_url(srv, dev: Device, name: str, data: bytes, content_type: str = "plain/text", **override):
    r = iot_request_url(srv, iot_body(dev, name, data, content_type, **override), dev.device_secret)
    return check_iot_url_answer(srv, r, dev, name)


# --------------------------------------------------------------------------
# the happy path


@pytest.mark.parametrize("size", [11, 102654, 5 * MiB + 3], ids=["11B", "100KiB", "5MiB"])
def test_device_upload_flow(server, device, size):
    data = os.urandom(size)
    name = f"file-{size}.txt"
    url, auth = _get_url(server, device, name, data, "plain/text")
    r = iot_put(url, auth, data, "plain/text")
    assert r.status_code == 200, f"PUT {url}: HTTP {r.status_code} {r.text[:500]}"
    # The spec: a stored file is answered with an empty JSON object.
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    assert r.json() == {}, f"success body must be empty JSON: {r.text[:300]}"
    key = _object_key(device, name)
    assert _s3_body(server, device, key) == data, "S3 object has different bytes"
    head = device.tenant.s3(server).head_object(Bucket=device.bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ContentType"] == "plain/text", f"declared Content-Type not kept: {head['ContentType']}"


def test_device_upload_zip_and_second_file(server, device):
    d1, d2 = os.urandom(4000), os.urandom(5000)
    u1, a1 = _get_url(server, device, "logs.zip", d1, "application/zip")
    u2, a2 = _get_url(server, device, "snap.jpg", d2, "image/jpeg")
    assert a1 != a2, "two upload grants got the same token"
    # in reverse order
    r = iot_put(u2, a2, d2, "image/jpeg")
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]}"
    r = iot_put(u1, a1, d1, "application/zip")
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]}"
    assert _s3_body(server, device, _object_key(device, "logs.zip")) == d1
    assert _s3_body(server, device, _object_key(device, "snap.jpg")) == d2


# --------------------------------------------------------------------------
# registration


def test_register_device_refusals(server):
    t, b = _tenant_bucket(server)
    other, ob = _tenant_bucket(server)
    r = register_device_raw(server, t.name, unique_name("nx"), "P1", "D1")
    assert 400 <= r.status_code < 500, f"device bound to a missing bucket: HTTP {r.status_code} {r.text[:300]}"
    r = register_device_raw(server, t.name, ob, "P1", "D1")
    assert 400 <= r.status_code < 500, f"device bound to another tenant's bucket: HTTP {r.status_code} {r.text[:300]}"
    r = register_device_raw(server, unique_name("nobody"), b, "P1", "D1")
    assert 400 <= r.status_code < 500, f"device for a missing tenant: HTTP {r.status_code} {r.text[:300]}"
    r = register_device_raw(server, t.name, b, "P1", "D1", auth=t.auth)
    assert r.status_code in (401, 403), f"registration with tenant (non-root) credentials: HTTP {r.status_code}"
    r = requests.post(
        server.endpoint + "/_chuan/admin/iot/devices",
        params={"tenant": t.name, "bucket": b, "product_sn": "P1", "device_sn": "D1"},
        timeout=30,
    )
    assert r.status_code in (401, 403), f"registration without credentials: HTTP {r.status_code}"


def test_two_devices_get_different_secrets(server):
    t, b = _tenant_bucket(server)
    d1 = register_device(server, t, b)
    d2 = register_device(server, t, b)
    assert d1.device_secret != d2.device_secret
    data = b"abc"
    # d2's secret does not sign for d1
    r = iot_request_url(server, iot_body(d1, "a.txt", data), d2.device_secret)
    assert_ufile_error(r, (401, 403), "URL request for device 1 signed with device 2's secret")


# --------------------------------------------------------------------------
# URL request refusals


def test_wrong_hmac_is_refused(server, device):
    data = os.urandom(100)
    body = iot_body(device, "w.txt", data)
    r = iot_request_url(server, body, device.device_secret + "x")
    assert_ufile_error(r, (401, 403), "HMAC with a wrong secret")
    raw = json.dumps(body, separators=(",", ":")).encode()
    # HMAC over other bytes than the ones sent (same JSON, other spacing)
    import hashlib
    import hmac

    sig = hmac.new(device.device_secret.encode(), raw, hashlib.sha256).hexdigest()
    r = requests.post(
        server.endpoint + "/api/v1/url",
        data=json.dumps(body, indent=1).encode(),
        headers={"Content-Type": "application/json", "Authorization": sig},
        timeout=30,
    )
    assert_ufile_error(r, (401, 403), "HMAC computed over differently formatted JSON")
    r = requests.post(server.endpoint + "/api/v1/url", data=raw, headers={"Content-Type": "application/json"}, timeout=30)
    assert_ufile_error(r, (401, 403), "URL request without Authorization")
    _assert_absent(server, device, _object_key(device, "w.txt"), "refused URL requests")


def test_unknown_device_is_refused(server, device):
    data = os.urandom(10)
    for what, ov in [
        ("unknown DeviceSN", {"DeviceSN": device.device_sn + "0"}),
        ("unknown ProductSN", {"ProductSN": device.product_sn + "0"}),
    ]:
        body = iot_body(device, "u.txt", data, **ov)
        r = iot_request_url(server, body, device.device_secret)
        assert_ufile_error(r, (401, 403, 404), what)


# --------------------------------------------------------------------------
# PUT refusals


def test_put_with_other_size_than_declared(server, device):
    data = os.urandom(1000)
    name = "size.bin"
    url, auth = _get_url(server, device, name, data, FileSize=len(data) + 1)
    r = iot_put(url, auth, data)
    assert_ufile_error(r, 400, "PUT of 1000 bytes after declaring 1001")
    _assert_absent(server, device, _object_key(device, name), "size mismatch")

    url, auth = _get_url(server, device, "size2.bin", data)
    r = iot_put(url, auth, data + b"!", content_md5=md5_hex(data))
    assert_ufile_error(r, 400, "PUT of one byte more than declared")
    _assert_absent(server, device, _object_key(device, "size2.bin"), "size mismatch (longer body)")


def test_put_with_other_md5_than_declared(server, device):
    data = os.urandom(1000)
    other = os.urandom(1000)
    # declared MD5 is of other bytes; the PUT is honest about its own bytes
    url, auth = _get_url(server, device, "md5a.bin", data, MD5=md5_hex(other))
    r = iot_put(url, auth, data, content_md5=md5_hex(data))
    assert_ufile_error(r, 400, "PUT whose bytes do not match the declared MD5")
    _assert_absent(server, device, _object_key(device, "md5a.bin"), "MD5 mismatch")
    # Content-MD5 header repeats the declared MD5, but the body differs (same size)
    url, auth = _get_url(server, device, "md5b.bin", data)
    r = iot_put(url, auth, other, content_md5=md5_hex(data))
    assert_ufile_error(r, 400, "PUT whose body does not match its Content-MD5")
    _assert_absent(server, device, _object_key(device, "md5b.bin"), "body/Content-MD5 mismatch")


def _with_path(url: str, new_tail: str, segments: int = 1) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/").split("/")
    path = path[: len(path) - segments] + [quote(s, safe="") for s in new_tail.split("/")]
    return urlunsplit((parts.scheme, parts.netloc, "/".join(path), parts.query, parts.fragment))


def test_token_is_bound_to_its_path(server, device):
    t, b = device.tenant, device.bucket
    other_dev = register_device(server, t, b)
    data = os.urandom(500)
    url, auth = _get_url(server, device, "granted.bin", data)
    # another FileName of the same device
    r = iot_put(_with_path(url, "other.bin"), auth, data)
    assert_ufile_error(r, (401, 403), "token used for another FileName")
    # another device's path
    r = iot_put(_with_path(url, f"{other_dev.device_sn}/granted.bin", 2), auth, data)
    assert_ufile_error(r, (401, 403), "token used for another device's path")
    _assert_absent(server, device, _object_key(device, "other.bin"), "token for other FileName")
    _assert_absent(server, device, _object_key(other_dev, "granted.bin"), "token for other device")


def test_put_without_or_with_a_forged_token(server, device):
    data = os.urandom(64)
    url, auth = _get_url(server, device, "forged.bin", data)
    r = iot_put(url, None, data)
    assert_ufile_error(r, (401, 403), "PUT without Authorization")
    token = auth.split(" ", 1)[1]
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    r = iot_put(url, "Ucloud " + flipped, data)
    assert_ufile_error(r, (401, 403), "PUT with a modified token")
    r = iot_put(url, "Ucloud eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA", data)
    assert_ufile_error(r, (401, 403), "PUT with a foreign token")
    _assert_absent(server, device, _object_key(device, "forged.bin"), "forged tokens")


def test_token_is_single_use(server, device):
    data = os.urandom(300)
    url, auth = _get_url(server, device, "once.bin", data)
    r = iot_put(url, auth, data)
    assert r.status_code == 200, f"first PUT: HTTP {r.status_code} {r.text[:300]}"
    r = iot_put(url, auth, data)
    assert_ufile_error(r, (401, 403), "second PUT with the same token")
    assert _s3_body(server, device, _object_key(device, "once.bin")) == data


def test_token_expires(env_server_factory):
    srv = env_server_factory(env={"CHUAN_IOT_TOKEN_TTL_SECS": "1"}, name="iotttl")
    t, b = _tenant_bucket(srv)
    dev = register_device(srv, t, b)
    data = os.urandom(200)
    url, auth = _get_url(srv, dev, "late.bin", data)
    time.sleep(2.5)
    r = iot_put(url, auth, data)
    assert_ufile_error(r, (401, 403), "PUT 2.5 s after the URL with CHUAN_IOT_TOKEN_TTL_SECS=1")
    _assert_absent(srv, dev, _object_key(dev, "late.bin"), "expired token")
    # a fresh grant used at once works on the same server
    url, auth = _get_url(srv, dev, "prompt.bin", data)
    r = iot_put(url, auth, data)
    assert r.status_code == 200, f"prompt PUT with TTL 1 s: HTTP {r.status_code} {r.text[:300]}"
    assert _s3_body(srv, dev, _object_key(dev, "prompt.bin")) == data
