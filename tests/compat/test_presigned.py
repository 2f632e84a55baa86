"""5. Presigned GET/PUT URLs driven with curl, and 10. browser POST-policy uploads."""

import base64
import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from compat_helpers import KiB, MiB, assert_no_object, file_sha256, s3_error_code, write_random_file


def curl(*args: str) -> tuple[int, bytes]:
    """Run curl, return (HTTP status, body written to stdout)."""
    marker = b"\n--chuan-http-status:"
    res = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "-w", marker.decode() + "%{http_code}", *args],
        capture_output=True,
        timeout=150,
    )
    assert res.returncode == 0, f"curl failed ({res.returncode}): {res.stderr.decode(errors='replace')}"
    body, _, status = res.stdout.rpartition(marker)
    return int(status), body


def test_presigned_put_with_curl_then_presigned_get(s3, bucket, tmp_path):
    src = tmp_path / "upload.bin"
    digest = write_random_file(src, 3 * MiB + 123)
    key = "presigned/curl upload.bin"

    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    status, body = curl("-T", str(src), put_url)
    assert status == 200, body[:500]

    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    dst = tmp_path / "download.bin"
    status, body = curl("-o", str(dst), get_url)
    assert status == 200, dst.read_bytes()[:500]
    assert file_sha256(dst) == digest


def test_expired_presigned_url_is_403(s3, bucket):
    s3.put_object(Bucket=bucket, Key="presigned/expiring.txt", Body=b"soon gone")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "presigned/expiring.txt"}, ExpiresIn=1
    )
    time.sleep(2.2)
    status, body = curl(url)
    assert status == 403, body[:500]
    assert s3_error_code(body) == "AccessDenied", body[:500]


def _tamper_signature(url: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    out = []
    for k, v in query:
        if k == "X-Amz-Signature":
            v = v[:-1] + ("0" if v[-1] != "0" else "1")
        out.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(out)))


def test_tampered_presigned_signature_is_403_signature_does_not_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="presigned/tamper.txt", Body=b"secret")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "presigned/tamper.txt"}, ExpiresIn=300
    )
    bad = _tamper_signature(url)
    assert bad != url
    status, body = curl(bad)
    assert status == 403, body[:500]
    assert s3_error_code(body) == "SignatureDoesNotMatch", body[:500]
    assert b"secret" not in body


def test_presigned_url_cannot_be_reused_for_other_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key="presigned/a.txt", Body=b"a")
    s3.put_object(Bucket=bucket, Key="presigned/b.txt", Body=b"b")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned/a.txt"}, ExpiresIn=300)
    status, body = curl(url.replace("/presigned/a.txt?", "/presigned/b.txt?"))
    assert status == 403, body[:500]
    assert s3_error_code(body) == "SignatureDoesNotMatch", body[:500]


# ---------------------------------------------------------------- POST policy

POLICY_CONDITIONS = [
    ["content-length-range", 1, 1000],
    ["starts-with", "$key", "uploads/"],
]


def _presigned_post(s3, bucket, extra_fields=None, extra_conditions=()):
    # Key ending in ${filename}: botocore then adds only a starts-with
    # condition on $key (no exact-key condition), so the form may name any
    # key under uploads/.
    return s3.generate_presigned_post(
        Bucket=bucket,
        Key="uploads/${filename}",
        Fields=extra_fields or None,
        Conditions=POLICY_CONDITIONS + list(extra_conditions),
        ExpiresIn=300,
    )


def _post(post, key, content, filename="file.txt"):
    fields = dict(post["fields"])
    fields["key"] = key
    return requests.post(post["url"], data=fields, files={"file": (filename, content)}, timeout=60)


def test_post_policy_upload_returns_204_and_stores_object(s3, bucket):
    post = _presigned_post(s3, bucket)
    content = os.urandom(700)
    r = _post(post, "uploads/form-204.bin", content)
    assert r.status_code == 204, r.text[:500]
    assert s3.get_object(Bucket=bucket, Key="uploads/form-204.bin")["Body"].read() == content


def test_post_policy_success_action_status_201(s3, bucket):
    post = _presigned_post(
        s3,
        bucket,
        extra_fields={"success_action_status": "201"},
        extra_conditions=[{"success_action_status": "201"}],
    )
    content = os.urandom(10)
    r = _post(post, "uploads/form-201.bin", content)
    assert r.status_code == 201, r.text[:500]
    doc = ET.fromstring(r.content)
    values = {el.tag.split("}")[-1]: (el.text or "") for el in doc.iter()}
    assert values.get("Key") == "uploads/form-201.bin", r.text
    assert values.get("Bucket") == bucket, r.text
    assert s3.get_object(Bucket=bucket, Key="uploads/form-201.bin")["Body"].read() == content


def test_post_policy_too_large_is_400_entity_too_large(s3, bucket):
    post = _presigned_post(s3, bucket)
    r = _post(post, "uploads/too-large.bin", os.urandom(1 * KiB + 1))
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "EntityTooLarge", r.text[:500]
    assert_no_object(s3, bucket, "uploads/too-large.bin")


def test_post_policy_too_small_is_400_entity_too_small(s3, bucket):
    post = _presigned_post(s3, bucket)
    r = _post(post, "uploads/empty.bin", b"")
    assert r.status_code == 400, r.text[:500]
    assert s3_error_code(r.content) == "EntityTooSmall", r.text[:500]
    assert_no_object(s3, bucket, "uploads/empty.bin")


def test_post_policy_key_outside_starts_with_is_403(s3, bucket):
    post = _presigned_post(s3, bucket)
    r = _post(post, "elsewhere/evil.bin", b"not allowed here")
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "AccessDenied", r.text[:500]
    assert_no_object(s3, bucket, "elsewhere/evil.bin")


def test_post_policy_tampered_policy_is_403(s3, bucket):
    post = _presigned_post(s3, bucket)
    fields = dict(post["fields"])
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")]
    fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    fields["key"] = "uploads/forged.bin"
    r = requests.post(post["url"], data=fields, files={"file": ("f", os.urandom(2000))}, timeout=60)
    assert r.status_code == 403, r.text[:500]
    assert s3_error_code(r.content) == "SignatureDoesNotMatch", r.text[:500]
    assert_no_object(s3, bucket, "uploads/forged.bin")
