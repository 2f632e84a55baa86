"""S3 Signature Version 2 (header auth with boto3 and the aws CLI, presigned URLs), POST Object
forms (hand-built SigV2 forms as S3's documentation shows them, SigV4 forms from boto3's
generate_presigned_post, unsigned forms to public-write buckets, a large streamed form), and
assorted S3 behaviours: chunked PUTs without a length, ListObjectVersions of an unversioned
bucket, re-creating a bucket, retried CompleteMultipartUpload, validators on 304, malformed and
wrong checksums, and the parts count of a one-part upload."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from adrive_helpers import create_tenant
from compat_helpers import (
    MiB,
    _ForcedPayloadSigner,
    assert_no_object,
    checksum_b64,
    expect_s3_error,
    file_sha256,
    get_body,
    md5_hex,
    quoted_etag,
    s3_error_code,
    unique_name,
    write_random_file,
)

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
# A key with a space, a '+' and CJK characters: the characters SigV2 canonicalisation and
# query-string encoding most often get wrong.
ODD_KEY = "dir/a b+c 中文 键.txt"


# --------------------------------------------------------------------------- helpers


def xml_values(body: bytes) -> dict[str, str]:
    """First text of every element, by local name."""
    out: dict[str, str] = {}
    for el in ET.fromstring(body).iter():
        out.setdefault(el.tag.split("}")[-1], (el.text or "").strip())
    return out


def error_message(body: bytes) -> str:
    try:
        return xml_values(body).get("Message", "")
    except ET.ParseError:
        return ""


def status_of(resp) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def v2_client(server, **kw):
    """A boto3 client signing with S3's Signature Version 2 (HmacV1), path style."""
    return server.client(signature_version="s3", **kw)


def iso_in(seconds: float) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def encode_policy(conditions: list, expiration: str | None = None) -> str:
    doc = {"expiration": expiration or iso_in(600), "conditions": conditions}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def v2_signature(secret: str, policy_b64: str) -> str:
    """SigV2 POST signature: base64(HMAC-SHA1(secret, base64 policy))."""
    return base64.b64encode(hmac.new(secret.encode(), policy_b64.encode(), hashlib.sha1).digest()).decode()


def bucket_url(server, bucket: str) -> str:
    return f"{server.endpoint}/{bucket}"


def post_form(url: str, fields: list[tuple[str, str]], file: tuple, **kw) -> requests.Response:
    """POST a multipart/form-data form: text fields in order (no filename), the file LAST."""
    payload = OrderedDict((name, (None, value)) for name, value in fields)
    payload["file"] = file
    return requests.post(url, files=payload, timeout=120, **kw)


def base_conditions(bucket: str, key_prefix: str = "", acl: str = "private") -> list:
    return [
        {"bucket": bucket},
        ["starts-with", "$key", key_prefix],
        {"acl": acl},
        ["starts-with", "$Content-Type", ""],
        ["content-length-range", 0, 1024],
    ]


def v2_form(
    server,
    bucket: str,
    key: str | None,
    conditions: list | None = None,
    extra: list[tuple[str, str]] = (),
    expiration: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    content_type: str = "text/plain",
    acl: str = "private",
) -> list[tuple[str, str]]:
    """The fields of a SigV2-signed POST Object form, in the order of S3's example."""
    conditions = base_conditions(bucket, acl=acl) if conditions is None else conditions
    policy = encode_policy(conditions, expiration)
    fields: list[tuple[str, str]] = []
    if key is not None:
        fields.append(("key", key))
    fields += [
        ("AWSAccessKeyId", access_key or server.access_key),
        ("acl", acl),
        ("signature", v2_signature(secret_key or server.secret_key, policy)),
        ("policy", policy),
        ("Content-Type", content_type),
    ]
    fields += list(extra)
    return fields


def assert_s3_error(r: requests.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, f"expected HTTP {status} {code or ''}, got {r.status_code}: {r.text[:600]}"
    if code is not None:
        assert s3_error_code(r.content) == code, f"expected {code}, got: {r.text[:600]}"


def tamper_query(url: str, name: str) -> str:
    parts = urlsplit(url)
    out = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k == name:
            raw = bytearray(base64.b64decode(v)) if name == "Signature" else None
            if raw is not None:
                raw[0] ^= 0x01
                v = base64.b64encode(bytes(raw)).decode()
            else:
                v = v[:-1] + ("0" if v[-1] != "0" else "1")
        out.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(out)))


# =========================================================================== 1. SigV2 header auth


def test_sigv2_header_auth_bucket_and_object_lifecycle(server):
    s3 = v2_client(server)
    sent = []
    s3.meta.events.register(
        "before-send.s3.*", lambda request, **_: sent.append(request.headers.get("Authorization"))
    )
    b = unique_name("v2")
    assert status_of(s3.create_bucket(Bucket=b)) == 200
    assert status_of(s3.head_bucket(Bucket=b)) == 200
    # The client really signed with SigV2 ("AWS <ak>:<sig>"), not SigV4.
    auth = sent[-1].decode() if isinstance(sent[-1], bytes) else sent[-1]
    assert auth.startswith(f"AWS {server.access_key}:"), auth

    body = b"sigv2 body \xe4\xb8\xad" * 100
    put = s3.put_object(Bucket=b, Key=ODD_KEY, Body=body, ContentType="text/plain; charset=utf-8")
    assert put["ETag"] == quoted_etag(md5_hex(body))
    got = s3.get_object(Bucket=b, Key=ODD_KEY)
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain; charset=utf-8"
    assert got["ETag"] == put["ETag"]
    s3.put_object(Bucket=b, Key="plain.txt", Body=b"plain")

    listed = s3.list_objects(Bucket=b)
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted([ODD_KEY, "plain.txt"])
    listed = s3.list_objects(Bucket=b, Prefix="dir/a b+c")
    assert [o["Key"] for o in listed["Contents"]] == [ODD_KEY]

    s3.put_bucket_acl(Bucket=b, ACL="public-read")
    acl = s3.get_bucket_acl(Bucket=b)
    perms = {(g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]}
    assert (ALL_USERS, "READ") in perms, acl["Grants"]
    assert any(p == "FULL_CONTROL" for _, p in perms), acl["Grants"]
    r = requests.get(bucket_url(server, b), timeout=30)
    assert r.status_code == 200, r.text[:500]
    s3.put_bucket_acl(Bucket=b, ACL="private")
    perms = {g["Permission"] for g in s3.get_bucket_acl(Bucket=b)["Grants"]}
    assert perms == {"FULL_CONTROL"}

    assert status_of(s3.delete_object(Bucket=b, Key=ODD_KEY)) == 204
    assert_no_object(s3, b, ODD_KEY)
    s3.delete_object(Bucket=b, Key="plain.txt")
    assert status_of(s3.delete_bucket(Bucket=b)) == 204
    with expect_s3_error(404):
        s3.head_bucket(Bucket=b)


def test_sigv2_wrong_secret_is_403_signature_does_not_match(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k.txt", Body=b"secret content")
    bad = v2_client(server, secret_key=server.secret_key[:-1] + "X")
    with expect_s3_error(403, "SignatureDoesNotMatch"):
        bad.get_object(Bucket=bucket, Key="k.txt")
    with expect_s3_error(403, "SignatureDoesNotMatch"):
        bad.put_object(Bucket=bucket, Key="v2-wrong.txt", Body=b"nope")
    with expect_s3_error(403, "SignatureDoesNotMatch"):
        bad.list_objects(Bucket=bucket)
    assert_no_object(s3, bucket, "v2-wrong.txt")
    unknown = v2_client(server, access_key="AKIDOESNOTEXIST00000")
    with expect_s3_error(403, "InvalidAccessKeyId"):
        unknown.list_objects(Bucket=bucket)


def v2_header_auth(secret: str, method: str, resource: str, headers: dict[str, str]) -> str:
    """S3 SigV2 header signature, computed from AWS's documented StringToSign:
    VERB, Content-MD5, Content-Type, Date, CanonicalizedAmzHeaders, CanonicalizedResource
    (the un-decoded request path plus sub-resources)."""
    lower = {k.lower(): v for k, v in headers.items()}
    amz = "".join(f"{k}:{lower[k].strip()}\n" for k in sorted(k for k in lower if k.startswith("x-amz-")))
    sts = "\n".join([method, lower.get("content-md5", ""), lower.get("content-type", ""), lower.get("date", "")])
    sts += "\n" + amz + resource
    return base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()


def test_sigv2_header_auth_hand_signed_with_curl(server, s3, bucket, tmp_path):
    """An independent SigV2 signer (not botocore's) driving curl: x-amz-* headers, a key with a
    space, '+' and CJK characters, and the ?acl sub-resource."""
    key = "curl/x y+z 中文.txt"
    path = f"/{bucket}/{quote(key, safe='/~')}"
    src = tmp_path / "body.txt"
    src.write_bytes(b"hand-signed v2 body")

    def curl(method: str, resource: str, url_path: str, headers: dict[str, str], *extra: str):
        headers = dict(headers, Date=formatdate(usegmt=True))
        sig = v2_header_auth(server.secret_key, method, resource, headers)
        args = ["curl", "-sS", "-X", method, "-o", str(tmp_path / "out"), "-w", "%{http_code}"]
        for k, v in {**headers, "Authorization": f"AWS {server.access_key}:{sig}"}.items():
            args += ["-H", f"{k}: {v}"]
        res = subprocess.run([*args, *extra, server.endpoint + url_path], capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        return int(res.stdout), (tmp_path / "out").read_bytes()

    put_headers = {"Content-Type": "text/plain", "x-amz-meta-Colour": "blue", "x-amz-acl": "public-read"}
    status, body = curl("PUT", path, path, put_headers, "--data-binary", f"@{src}")
    assert status == 200, body[:500]
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"hand-signed v2 body"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"colour": "blue"}

    status, body = curl("GET", path + "?acl", path + "?acl", {})
    assert status == 200, body[:500]
    assert ALL_USERS.encode() in body, body[:1000]

    # The sub-resource is part of what is signed: a signature for the object, sent with ?acl.
    status, body = curl("GET", path, path + "?acl", {})
    assert status == 403, body[:500]
    assert s3_error_code(body) == "SignatureDoesNotMatch", body[:500]
    # So is every x-amz-* header: one the signature did not cover is refused.
    status, body = curl("GET", path, path, {}, "-H", "x-amz-meta-extra: sneaky")
    assert status == 403, body[:500]
    assert s3_error_code(body) == "SignatureDoesNotMatch", body[:500]


# =========================================================================== 2. SigV2 presigned URLs


def test_sigv2_presigned_get_put_and_listing(server, s3, bucket):
    v2 = v2_client(server)
    s3.put_object(Bucket=bucket, Key=ODD_KEY, Body=b"presigned v2 get")

    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": ODD_KEY}, ExpiresIn=300)
    q = dict(parse_qsl(urlsplit(url).query))
    assert {"AWSAccessKeyId", "Expires", "Signature"} <= set(q), url
    assert "X-Amz-Signature" not in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.content == b"presigned v2 get"

    put_key = "up/p q+r 上传.bin"
    data = os.urandom(5000)
    url = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": put_key}, ExpiresIn=300)
    r = requests.put(url, data=data, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.headers.get("ETag") == quoted_etag(md5_hex(data))
    assert get_body(s3, bucket, put_key) == data

    url = v2.generate_presigned_url("list_objects", Params={"Bucket": bucket}, ExpiresIn=300)
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text[:500]
    # botocore asks for encoding-type=url in the URL it signs, so the keys come back encoded.
    assert "encoding-type=url" in url, url
    keys = [unquote(el.text) for el in ET.fromstring(r.content).iter() if el.tag.split("}")[-1] == "Key"]
    assert sorted(keys) == sorted([ODD_KEY, put_key]), r.text[:1000]


def test_sigv2_presigned_expired_is_403_access_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="soon.txt", Body=b"soon gone")
    v2 = v2_client(server)
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "soon.txt"}, ExpiresIn=1)
    put_url = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "late.txt"}, ExpiresIn=1)
    time.sleep(2.2)
    r = requests.get(url, timeout=30)
    assert_s3_error(r, 403, "AccessDenied")
    assert b"soon gone" not in r.content
    r = requests.put(put_url, data=b"too late", timeout=30)
    assert_s3_error(r, 403, "AccessDenied")
    assert_no_object(s3, bucket, "late.txt")


def test_sigv2_presigned_tampered_signature_is_403(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="t.txt", Body=b"tamper target")
    v2 = v2_client(server)
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "t.txt"}, ExpiresIn=300)
    bad = tamper_query(url, "Signature")
    assert bad != url
    r = requests.get(bad, timeout=30)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    assert b"tamper target" not in r.content
    # Moving the expiry invalidates the signature too.
    parts = urlsplit(url)
    q = [(k, str(int(v) + 1000) if k == "Expires" else v) for k, v in parse_qsl(parts.query)]
    r = requests.get(urlunsplit(parts._replace(query=urlencode(q))), timeout=30)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    # Control: the untouched URL works.
    assert requests.get(url, timeout=30).status_code == 200


# =========================================================================== 3. SigV2 POST forms


def test_sigv2_form_upload_204_with_content_type(server, s3, bucket):
    content = b"hello form!"
    fields = v2_form(server, bucket, "form/plain.txt")
    r = post_form(bucket_url(server, bucket), fields, ("local.txt", content))
    assert r.status_code == 204, r.text[:500]
    assert r.content == b""
    assert r.headers.get("ETag") == quoted_etag(md5_hex(content)), dict(r.headers)
    got = s3.get_object(Bucket=bucket, Key="form/plain.txt")
    assert got["Body"].read() == content
    assert got["ContentType"] == "text/plain"
    assert got["ETag"] == quoted_etag(md5_hex(content))


def test_sigv2_form_success_action_status_201_post_response(server, s3, bucket):
    content = b"201 please"
    conds = base_conditions(bucket) + [{"success_action_status": "201"}]
    fields = v2_form(server, bucket, "form/made.txt", conditions=conds, extra=[("success_action_status", "201")])
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", content))
    assert r.status_code == 201, r.text[:500]
    root = ET.fromstring(r.content)
    assert root.tag.split("}")[-1] == "PostResponse", r.text
    v = xml_values(r.content)
    assert v.get("Bucket") == bucket, r.text
    assert v.get("Key") == "form/made.txt", r.text
    assert v.get("ETag") == quoted_etag(md5_hex(content)), r.text
    loc = v.get("Location", "")
    assert loc.startswith("http"), r.text
    assert bucket in loc and (loc.endswith("/form/made.txt") or loc.endswith("form%2Fmade.txt")), loc
    assert get_body(s3, bucket, "form/made.txt") == content


def test_sigv2_form_success_action_redirect_303(server, s3, bucket):
    content = b"redirect me"
    redirect = "http://example.com/uploaded"
    conds = base_conditions(bucket) + [{"success_action_redirect": redirect}]
    fields = v2_form(server, bucket, "redir.txt", conditions=conds, extra=[("success_action_redirect", redirect)])
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", content), allow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    loc = r.headers.get("Location", "")
    etag_hex = md5_hex(content)
    assert loc.startswith(redirect + "?"), loc
    assert f"etag=%22{etag_hex}%22" in loc, loc
    q = parse_qs(urlsplit(loc).query)
    assert q == {"bucket": [bucket], "key": ["redir.txt"], "etag": [f'"{etag_hex}"']}, loc
    assert get_body(s3, bucket, "redir.txt") == content


def test_sigv2_form_key_filename_variable(server, s3, bucket):
    conds = base_conditions(bucket, key_prefix="uploads/")
    fields = v2_form(server, bucket, "uploads/${filename}", conditions=conds)
    r = post_form(bucket_url(server, bucket), fields, ("kitten photo.jpg", b"meow meow"))
    assert r.status_code == 204, r.text[:500]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/kitten photo.jpg"], keys
    assert get_body(s3, bucket, "uploads/kitten photo.jpg") == b"meow meow"


def test_sigv2_form_field_not_in_policy_is_403_extra_input_fields(server, s3, bucket):
    fields = v2_form(server, bucket, "extra.txt", extra=[("x-amz-meta-colour", "blue")])
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"extra field"))
    assert_s3_error(r, 403, "AccessDenied")
    assert "extra input fields" in error_message(r.content).lower(), r.text[:500]
    assert_no_object(s3, bucket, "extra.txt")


def test_sigv2_form_x_ignore_field_needs_no_condition(server, s3, bucket):
    fields = v2_form(server, bucket, "ignored.txt", extra=[("x-ignore-foo", "anything at all")])
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"ignore me"))
    assert r.status_code == 204, r.text[:500]
    assert get_body(s3, bucket, "ignored.txt") == b"ignore me"


def test_sigv2_form_condition_not_met_is_403(server, s3, bucket):
    conds = [c for c in base_conditions(bucket) if not (isinstance(c, list) and c[1] == "$key")]
    conds.append(["eq", "$key", "allowed.txt"])
    fields = v2_form(server, bucket, "other.txt", conditions=conds)
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"not allowed"))
    assert_s3_error(r, 403, "AccessDenied")
    assert_no_object(s3, bucket, "other.txt")
    # Control: the key the policy names is accepted.
    fields = v2_form(server, bucket, "allowed.txt", conditions=conds)
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"allowed"))
    assert r.status_code == 204, r.text[:500]


def test_sigv2_form_expired_policy_is_403(server, s3, bucket):
    fields = v2_form(server, bucket, "expired.txt", expiration=iso_in(-60))
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"too late"))
    assert_s3_error(r, 403, "AccessDenied")
    assert "expired" in error_message(r.content).lower(), r.text[:500]
    assert_no_object(s3, bucket, "expired.txt")


def test_sigv2_form_expiration_not_iso8601_is_400_invalid_policy_document(server, s3, bucket):
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    fields = v2_form(server, bucket, "badexp.txt", expiration=future)
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"bad expiration"))
    assert_s3_error(r, 400, "InvalidPolicyDocument")
    assert_no_object(s3, bucket, "badexp.txt")


def test_sigv2_form_content_length_range_too_large(server, s3, bucket):
    conds = base_conditions(bucket)[:-1] + [["content-length-range", 0, 5]]
    fields = v2_form(server, bucket, "large.txt", conditions=conds)
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"hello world"))
    assert_s3_error(r, 400, "EntityTooLarge")
    assert_no_object(s3, bucket, "large.txt")


def test_sigv2_form_content_length_range_too_small(server, s3, bucket):
    conds = base_conditions(bucket)[:-1] + [["content-length-range", 100, 200]]
    fields = v2_form(server, bucket, "small.txt", conditions=conds)
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"hello world"))
    assert_s3_error(r, 400, "EntityTooSmall")
    assert_no_object(s3, bucket, "small.txt")


def test_sigv2_form_without_key_is_400(server, s3, bucket):
    fields = v2_form(server, bucket, None)
    r = post_form(bucket_url(server, bucket), fields, ("nokey.txt", b"where do I go"))
    assert_s3_error(r, 400, "InvalidArgument")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_sigv2_form_wrong_signature_is_403(server, s3, bucket):
    fields = v2_form(server, bucket, "forged.txt", secret_key=server.secret_key[:-1] + "X")
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"forged"))
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    assert_no_object(s3, bucket, "forged.txt")


def test_sigv2_form_unknown_access_key_is_403(server, s3, bucket):
    fields = v2_form(server, bucket, "stranger.txt", access_key="AKIDOESNOTEXIST00000")
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", b"stranger"))
    assert_s3_error(r, 403, "InvalidAccessKeyId")
    assert_no_object(s3, bucket, "stranger.txt")


def test_sigv2_form_checksum_sha256_field(server, s3, bucket):
    content = b"checksummed form body"
    conds = base_conditions(bucket) + [["starts-with", "$x-amz-checksum-sha256", ""]]

    right = checksum_b64("SHA256", content)
    fields = v2_form(server, bucket, "sum-ok.txt", conditions=conds, extra=[("x-amz-checksum-sha256", right)])
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", content))
    assert r.status_code == 204, r.text[:500]
    assert get_body(s3, bucket, "sum-ok.txt") == content
    head = s3.head_object(Bucket=bucket, Key="sum-ok.txt", ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256") == right, head

    wrong = checksum_b64("SHA256", content + b"!")
    fields = v2_form(server, bucket, "sum-bad.txt", conditions=conds, extra=[("x-amz-checksum-sha256", wrong)])
    r = post_form(bucket_url(server, bucket), fields, ("f.txt", content))
    assert_s3_error(r, 400, "BadDigest")
    assert_no_object(s3, bucket, "sum-bad.txt")


# =========================================================================== 4. SigV4 and unsigned forms


def test_sigv4_form_public_read_acl_makes_object_anonymously_readable(server, s3, bucket):
    post = s3.generate_presigned_post(
        Bucket=bucket, Key="pub/${filename}", Fields={"acl": "public-read"},
        Conditions=[{"acl": "public-read"}, ["starts-with", "$key", "pub/"]], ExpiresIn=300,
    )
    r = requests.post(post["url"], data=post["fields"], files={"file": ("open.txt", b"for everyone")}, timeout=30)
    assert r.status_code == 204, r.text[:500]
    r = requests.get(f"{server.endpoint}/{bucket}/pub/open.txt", timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.content == b"for everyone"
    # Control: a form without the acl leaves the object private.
    post = s3.generate_presigned_post(Bucket=bucket, Key="priv.txt", ExpiresIn=300)
    r = requests.post(post["url"], data=post["fields"], files={"file": ("p.txt", b"mine")}, timeout=30)
    assert r.status_code == 204, r.text[:500]
    r = requests.get(f"{server.endpoint}/{bucket}/priv.txt", timeout=30)
    assert_s3_error(r, 403, "AccessDenied")


def test_unsigned_form_to_public_write_bucket_only(server, s3):
    open_b, closed_b = unique_name("pw"), unique_name("pv")
    s3.create_bucket(Bucket=open_b, ACL="public-read-write")
    s3.create_bucket(Bucket=closed_b)

    r = post_form(bucket_url(server, open_b), [("key", "anon.txt")], ("anon.txt", b"anonymous upload"))
    assert r.status_code == 204, r.text[:500]
    assert get_body(s3, open_b, "anon.txt") == b"anonymous upload"

    r = post_form(bucket_url(server, closed_b), [("key", "anon.txt")], ("anon.txt", b"anonymous upload"))
    assert_s3_error(r, 403, "AccessDenied")
    assert_no_object(s3, closed_b, "anon.txt")


def test_sigv4_form_20_mib_file_streamed_with_curl(server, s3, bucket, tmp_path):
    src = tmp_path / "big.bin"
    digest = write_random_file(src, 20 * MiB)
    post = s3.generate_presigned_post(
        Bucket=bucket, Key="big/${filename}",
        Conditions=[["content-length-range", 0, 64 * MiB], ["starts-with", "$key", "big/"]], ExpiresIn=300,
    )
    args = []
    for name, value in post["fields"].items():
        args += ["--form-string", f"{name}={value}"]
    args += ["-F", f"file=@{src};filename=big.bin"]
    res = subprocess.run(
        ["curl", "-sS", "--max-time", "240", "-o", "/dev/null", "-w", "%{http_code}", *args, post["url"]],
        capture_output=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert res.stdout == b"204", res.stdout
    head = s3.head_object(Bucket=bucket, Key="big/big.bin")
    assert head["ContentLength"] == 20 * MiB
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "big/big.bin", str(dst))
    assert file_sha256(dst) == digest
    # And through requests (a whole multipart body in one go).
    data = src.read_bytes()
    r = requests.post(post["url"], data=post["fields"], files={"file": ("big2.bin", data)}, timeout=240)
    assert r.status_code == 204, r.text[:500]
    assert hashlib.sha256(get_body(s3, bucket, "big/big2.bin")).hexdigest() == digest


# =========================================================================== 5. misc S3 behaviours


def test_put_with_transfer_encoding_chunked_through_boto3(server, s3, bucket):
    client = server.client()
    seen = []

    def chunked(params, **_):
        params["headers"]["Transfer-Encoding"] = "chunked"

    client.meta.events.register("before-call.s3.PutObject", chunked)
    client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: seen.append(dict(request.headers.items()))
    )
    data = os.urandom(300_000)
    resp = client.put_object(Bucket=bucket, Key="chunked.bin", Body=data)
    assert status_of(resp) == 200
    hdrs = {k.lower(): v for k, v in seen[-1].items()}
    assert hdrs.get("transfer-encoding") in ("chunked", b"chunked"), hdrs
    assert "content-length" not in hdrs, hdrs
    assert resp["ETag"] == quoted_etag(md5_hex(data))
    assert get_body(s3, bucket, "chunked.bin") == data


def test_put_with_transfer_encoding_chunked_unsigned_payload_raw(server, s3, bucket):
    """A SigV4 UNSIGNED-PAYLOAD PUT whose body comes in HTTP chunks, with no Content-Length."""
    key = "raw chunked+键.bin"
    pieces = [os.urandom(n) for n in (1, 65536, 100_000, 7)]
    data = b"".join(pieces)
    path = f"/{bucket}/{quote(key, safe='/~')}"
    req = AWSRequest(method="PUT", url=server.endpoint + path, headers={"Content-Type": "application/x-test"})
    _ForcedPayloadSigner(Credentials(server.access_key, server.secret_key), "s3", server.region,
                         "UNSIGNED-PAYLOAD").add_auth(req)
    headers = dict(req.headers.items())
    headers["Transfer-Encoding"] = "chunked"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("PUT", path, body=iter(pieces), headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, body[:500]
    assert resp.getheader("ETag") == quoted_etag(md5_hex(data))
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "application/x-test"


def test_list_object_versions_of_unversioned_bucket(s3, bucket):
    keys = ["a.txt", "b/c.txt", "d.txt"]
    etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"] for k in keys}

    resp = s3.list_object_versions(Bucket=bucket)
    versions = resp.get("Versions", [])
    assert [v["Key"] for v in versions] == keys, versions
    for v in versions:
        assert v["VersionId"] == "null", v
        assert v["IsLatest"] is True, v
        assert v["ETag"] == etags[v["Key"]], v
        assert v["Size"] == len(v["Key"])
    assert resp.get("DeleteMarkers", []) == []
    assert resp.get("IsTruncated") is False

    seen, kw, pages = [], {}, 0
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=1, **kw)
        pages += 1
        assert len(page.get("Versions", [])) <= 1, page
        seen.extend(v["Key"] for v in page.get("Versions", []))
        if not page.get("IsTruncated"):
            break
        assert page.get("NextKeyMarker"), page
        kw = {"KeyMarker": page["NextKeyMarker"]}
        assert pages <= 10, "paging does not end"
    assert seen == keys
    assert pages >= 3

    assert get_body(s3, bucket, "a.txt", VersionId="null") == b"a.txt"
    with expect_s3_error(400, "InvalidArgument"):
        s3.get_object(Bucket=bucket, Key="a.txt", VersionId="abc")

    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a.txt", "VersionId": "null"}]})
    assert not resp.get("Errors"), resp
    assert [(d["Key"], d.get("VersionId")) for d in resp.get("Deleted", [])] == [("a.txt", "null")], resp
    assert_no_object(s3, bucket, "a.txt")
    left = [v["Key"] for v in s3.list_object_versions(Bucket=bucket).get("Versions", [])]
    assert left == ["b/c.txt", "d.txt"]


def test_recreate_bucket(server, s3):
    b = unique_name("re")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="kept.txt", Body=b"still here")
    # Your own bucket again in us-east-1, no ACL: 200 and nothing changes.
    assert status_of(s3.create_bucket(Bucket=b)) == 200
    assert get_body(s3, b, "kept.txt") == b"still here"
    # Chuan's documented choice: another ACL on re-creation is refused.
    with expect_s3_error(409, "BucketAlreadyExists"):
        s3.create_bucket(Bucket=b, ACL="public-read")
    perms = {g["Permission"] for g in s3.get_bucket_acl(Bucket=b)["Grants"]}
    assert perms == {"FULL_CONTROL"}
    other = create_tenant(server, unique_name("other")).s3(server)
    with expect_s3_error(409, "BucketAlreadyExists"):
        other.create_bucket(Bucket=b)
    assert get_body(s3, b, "kept.txt") == b"still here"


def test_complete_multipart_retried(s3, bucket):
    key = "retry.bin"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    uid = up["UploadId"]
    p1, p2 = os.urandom(5 * MiB), os.urandom(1000)
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    parts = [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
    first = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
    assert status_of(again) == 200
    assert again["ETag"] == first["ETag"]
    assert again["Key"] == key and again["Bucket"] == bucket
    with expect_s3_error(404, "NoSuchUpload"):
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]}
        )
    assert get_body(s3, bucket, key) == p1 + p2
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == first["ETag"]


def test_304_carries_etag_and_last_modified(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="v.txt", Body=b"validators")
    head = server.signed_request("HEAD", bucket, "v.txt")
    etag, last_modified = head.headers["ETag"], head.headers["Last-Modified"]
    for method in ("GET", "HEAD"):
        r = server.signed_request(method, bucket, "v.txt", headers={"If-None-Match": etag})
        assert r.status_code == 304, (method, r.status_code, r.text[:300])
        assert r.headers.get("ETag") == etag, (method, dict(r.headers))
        assert r.headers.get("Last-Modified") == last_modified, (method, dict(r.headers))
        assert r.content == b""
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    r = server.signed_request("GET", bucket, "v.txt", headers={"If-Modified-Since": future})
    assert r.status_code == 304
    assert r.headers.get("ETag") == etag
    assert parsedate_to_datetime(r.headers["Last-Modified"]) == parsedate_to_datetime(last_modified)


def test_put_object_checksum_sha256_malformed_and_wrong(s3, bucket):
    data = b"checksum me"
    with expect_s3_error(400, "InvalidRequest"):
        s3.put_object(Bucket=bucket, Key="bad-sum.txt", Body=data, ChecksumSHA256="bad")
    assert_no_object(s3, bucket, "bad-sum.txt")
    with expect_s3_error(400, "BadDigest"):
        s3.put_object(Bucket=bucket, Key="wrong-sum.txt", Body=data,
                      ChecksumSHA256=checksum_b64("SHA256", data + b"x"))
    assert_no_object(s3, bucket, "wrong-sum.txt")
    resp = s3.put_object(Bucket=bucket, Key="ok-sum.txt", Body=data, ChecksumSHA256=checksum_b64("SHA256", data))
    assert resp.get("ChecksumSHA256") == checksum_b64("SHA256", data)


def test_part_number_of_one_part_multipart_upload(s3, bucket):
    key = "one-part.bin"
    data = os.urandom(12345)
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    e = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=data)["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]}
    )
    assert done["ETag"].endswith('-1"'), done["ETag"]
    head = s3.head_object(Bucket=bucket, Key=key, PartNumber=1)
    assert head.get("PartsCount") == 1, head
    assert head["ContentLength"] == len(data)
    got = s3.get_object(Bucket=bucket, Key=key, PartNumber=1)
    assert got.get("PartsCount") == 1, {k: v for k, v in got.items() if k != "Body"}
    assert got["Body"].read() == data


def test_parts_count_only_when_part_number_is_asked(s3, bucket):
    """HeadObject/GetObject: x-amz-mp-parts-count "is only returned if you specify partNumber in
    your request and the object was uploaded as a multipart upload" (AWS API reference)."""
    key = "counted.bin"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    e = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 100)["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]}
    )
    head = s3.head_object(Bucket=bucket, Key=key)
    assert "PartsCount" not in head, head["ResponseMetadata"]["HTTPHeaders"]
    got = s3.get_object(Bucket=bucket, Key=key)
    assert "PartsCount" not in got, got["ResponseMetadata"]["HTTPHeaders"]


def test_form_with_its_file_first_is_answered_by_s3(server, s3, bucket):
    """S3 reads a form's fields up to its file: a form that starts with the file has no key,
    and S3 says so in its own XML (not another protocol's JSON)."""
    r = requests.post(bucket_url(server, bucket), files=OrderedDict([("file", ("f.txt", b"hi")), ("key", "k")]), timeout=10)
    assert_s3_error(r, 400, "InvalidArgument")
    assert "key" in error_message(r.content)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_sigv2_virtual_host_key_keeps_its_path(server, s3, bucket, tmp_path):
    """A SigV2 request on the virtual host of a bucket signs `/<bucket>/<key>`; its path is the
    key, which a bare-bucket path rule must not touch (a top-level key has no `/` in its path)."""
    s3.put_object(Bucket=bucket, Key="top.txt", Body=b"at the top")
    headers = {"Date": formatdate(usegmt=True), "Host": f"{bucket}.localhost:{server.port}"}
    sig = v2_header_auth(server.secret_key, "GET", f"/{bucket}/top.txt", headers)
    r = requests.get(
        f"{server.endpoint}/top.txt",
        headers={**headers, "Authorization": f"AWS {server.access_key}:{sig}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text[:500]
    assert r.content == b"at the top"


def test_repeated_form_field_is_refused(server, s3, bucket):
    """A field given twice could pass the policy with one value and be stored with the other:
    refused, nothing stored."""
    conditions = base_conditions(bucket, key_prefix="") + [["eq", "$x-amz-meta-tag", "safe"]]
    fields = v2_form(server, bucket, "dup.txt", conditions, extra=[("x-amz-meta-tag", "safe"), ("x-amz-meta-tag", "evil")])
    # A list, not a dict, so both values are sent.
    parts = [(name, (None, value)) for name, value in fields] + [("file", ("f.txt", b"x"))]
    r = requests.post(bucket_url(server, bucket), files=parts, timeout=30)
    assert_s3_error(r, 400, "InvalidArgument")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_unsigned_chunked_put_is_refused_before_its_body(server, bucket):
    """A PUT without any length is staged only for a request whose SigV4 signature holds; an
    unsigned one is refused 411 without its body being stored anywhere."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("PUT", f"/{bucket}/anon.bin")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n0\r\n\r\n")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 411, body[:300]
    assert s3_error_code(body) == "MissingContentLength"
    assert not any(server.tmp_dir.iterdir()), "nothing of the body was staged"


def test_sigv2_bucket_requests_signed_with_or_without_the_trailing_slash(server, s3, bucket):
    """SigV2 clients differ on a path-style bucket request's canonical resource: `/<bucket>`
    (older botocore) or `/<bucket>/` (newer botocore, s3cmd). Both are taken, and a signature
    for neither is refused."""
    s3.put_object(Bucket=bucket, Key="listed.txt", Body=b"x")
    for resource in (f"/{bucket}", f"/{bucket}/"):
        headers = {"Date": formatdate(usegmt=True)}
        sig = v2_header_auth(server.secret_key, "GET", resource + "?acl", headers)
        r = requests.get(
            f"{server.endpoint}/{bucket}?acl",
            headers={**headers, "Authorization": f"AWS {server.access_key}:{sig}"},
            timeout=10,
        )
        assert r.status_code == 200, (resource, r.text[:300])
        assert b"AccessControlPolicy" in r.content
        sig = v2_header_auth(server.secret_key, "GET", resource, headers)
        r = requests.get(
            f"{server.endpoint}/{bucket}",
            headers={**headers, "Authorization": f"AWS {server.access_key}:{sig}"},
            timeout=10,
        )
        assert r.status_code == 200 and b"listed.txt" in r.content, (resource, r.text[:300])
    sig = v2_header_auth(server.secret_key, "GET", f"/{bucket}//", {"Date": formatdate(usegmt=True)})
    r = requests.get(
        f"{server.endpoint}/{bucket}",
        headers={"Date": formatdate(usegmt=True), "Authorization": f"AWS {server.access_key}:{sig}"},
        timeout=10,
    )
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
