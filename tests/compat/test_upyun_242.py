"""UpYun with the real `upyun` 2.4.2 SDK (the last one before the 2.5 signature
change): its REST calls under the legacy MD5 authorization, its secret-signed
form upload (`return-url`, `notify-url`, `allow-file-type`, the `sign` of the
result) and its m0 block upload's content type. Raw `requests` only for the 302
itself, a stale Date and a tampered form; an independent implementation of both
legacy signatures checks what the SDK sends.

upyun 2.4.2 is imported in isolation with the Python 3 shims of
test_upyun_block.py (`import_upyun242`); `collections.Callable` is aliased for
its resumable upload (resume.py `upload`).

Contract (research notes: /tmp/upyun-notes.md):
* REST (2.4.2 rest.py:184-216, modules/sign.py:44-49, httpipe.py:95-98):
  `Authorization: UpYun <operator>:md5hex("METHOD&URI&DATE&CONTENT_LENGTH&" + md5hex(password))`,
  URI = quote('/<bucket>/<key>', safe='~/') + query (e.g. `/b/?usage`) exactly as
  sent, DATE = the `Date` header (RFC 1123 GMT), CONTENT_LENGTH = the body length
  (0 for GET/HEAD/DELETE/mkdir); no Content-MD5 in the signature. Doc example
  (upyun/docs sources/api/rest_api.md "签名认证"): `GET&/bucket/sub&Wed, 29 Oct
  2014 02:26:58 GMT&0&5f4dcc3b5aa765d61d8327deb882cf99` -> 03db45e2904663c5c9305a9c6ed62af3.
  Same operations and answers as 2.5.5: put, get (text / to a file), getinfo
  (x-upyun-file-type/-size/-date), delete, mkdir (`Folder: true`), getlist
  (`name\\ttype\\tsize\\tmtime` lines), usage (integer), resumable put.
  Bad signature: 401, JSON {"msg","code": 40100005,"id"}.
* form (2.4.2 form.py:18-35): `POST http://<endpoint>/<bucket>/` multipart
  `policy` = b64(JSON {"bucket", "expiration", "save-key", ...}),
  `signature` = md5hex(policy + "&" + form_secret), `file`. Result fields code,
  message, url, time [, ext-param] and `sign` = md5hex("code&message&url&time&form_secret[&ext-param]")
  with url decoded (upyun/docs form_api.md 注4 / "回调签名（旧）"; the SDK's
  checker `verify_put_sign`, upyun.py:171-191): JSON body, or 302 to
  `return-url?<fields>`, and POSTed (x-www-form-urlencoded) to `notify-url`.
  Refused type: 403 40300010; bad signature: 401 40100005.
* m0 block upload (2.4.2 multi.py): content_type from the extension unless the
  policy names one; an unknown bucket is 404 {"error_code": "40401",
  "message": "Bucket NotFound."} (upyun-form-block-upload.md error table).
"""

from __future__ import annotations

import base64
import collections
import collections.abc
import contextlib
import dataclasses
import io
import json
import os
import secrets
import sys
import time
from urllib.parse import parse_qsl

import pytest
import requests

from compat_helpers import KiB, MiB, get_body
from test_upyun_block import import_upyun242, new_form_secret, sdk_exc
from test_upyun_form_api import assert_type, parse_location, receiver  # noqa: F401  (receiver: fixture)
from upyun_helpers import (
    UpyunAccount,
    assert_no_s3_object,
    assert_upyun_error_body,
    httpdate,
    make_account,
    md5_hex,
    record_requests,
    request_uri,
    s3_key,
)

# upyun 2.4.2's resumable upload evaluates collections.Callable (gone in Python 3.10).
if not hasattr(collections, "Callable"):
    collections.Callable = collections.abc.Callable  # type: ignore[attr-defined]

SIGNED_FIELDS = ("code", "message", "url", "time")


# --------------------------------------------------------------------------
# the legacy signatures, independent of the SDK


def legacy_authorization(operator: str, password: str, method: str, uri: str, date: str, length) -> str:
    """`UpYun op:md5hex(METHOD&URI&DATE&CONTENT_LENGTH&md5hex(password))`."""
    sig = md5_hex(f"{method}&{uri}&{date}&{length}&{md5_hex(password.encode())}".encode())
    return f"UpYun {operator}:{sig}"


def legacy_form_signature(policy_b64: str, form_secret: str) -> str:
    return md5_hex(f"{policy_b64}&{form_secret}".encode())


def result_sign(fields: dict, form_secret: str) -> str:
    """sign = md5hex(code&message&url&time&form_secret[&ext-param]), url decoded."""
    parts = [str(fields[k]) for k in SIGNED_FIELDS] + [form_secret]
    if "ext-param" in fields:
        parts.append(str(fields["ext-param"]))
    return md5_hex("&".join(parts).encode())


# --------------------------------------------------------------------------
# accounts


@dataclasses.dataclass
class Legacy:
    acct: UpyunAccount
    form_secret: str

    @property
    def bucket(self) -> str:
        return self.acct.bucket

    def sdk(self, bucket=None, operator=None, password=None, secret=None):
        """upyun 2.4.2 UpYun on the test server (REST + form via `endpoint`; the
        m0 host is hard-coded, set apart)."""
        mod = import_upyun242()
        up = mod.UpYun(
            bucket or self.acct.bucket,
            operator or self.acct.operator,
            password or self.acct.password,
            secret=secret or self.form_secret,
            endpoint=self.acct.endpoint,
            timeout=60,
        )
        up.up_multi.host = self.acct.endpoint
        return up

    def verify_put_sign(self, fields: dict) -> bool:
        """2.4.2's own checker of a form result's `sign`."""
        assert "sign" in fields, f"the result has no sign: {fields}"
        return import_upyun242().verify_put_sign(dict(fields), self.form_secret)


@pytest.fixture
def legacy(server):
    acct = make_account(server)
    return Legacy(acct=acct, form_secret=new_form_secret(server, acct.tenant.name, acct.bucket))


def unique_key(prefix: str = "/l", ext: str = ".bin") -> str:
    return f"{prefix}-{secrets.token_hex(4)}{ext}"


def write_file(path, data: bytes):
    path.write_bytes(data)
    return path


@contextlib.contextmanager
def expect_242_error(*statuses: int, code: int | None = None, body: bool = True):
    with pytest.raises(sdk_exc()) as info:
        yield info
    e = info.value
    assert e.status in statuses, f"expected HTTP {statuses}, got {e.status}: {e.err!r}"
    if body:
        parsed = assert_upyun_error_body(e.status, e.err)
        if code is not None:
            assert parsed["code"] == code, f"expected code {code}: {e.err}"


def assert_absent(legacy: Legacy, key: str) -> None:
    r = legacy.acct.raw().request("HEAD", key)
    assert r.status_code == 404, f"HEAD {key}: HTTP {r.status_code}"
    assert_no_s3_object(legacy.acct.s3(), legacy.bucket, s3_key(key))


def assert_stored(legacy: Legacy, key: str, data: bytes) -> None:
    """Checked with the 2.5.5 signature (raw) and S3, not with 2.4.2."""
    r = legacy.acct.raw().request("GET", key)
    assert r.status_code == 200 and r.content == data, f"GET {key}: HTTP {r.status_code}, content differs"
    assert get_body(legacy.acct.s3(), legacy.bucket, s3_key(key)) == data


def assert_legacy_wire(legacy: Legacy, sent) -> None:
    """Every request the 2.4.2 SDK sent carries the legacy authorization over
    its raw target, its Date header and its Content-Length (0 when absent)."""
    base = f"http://{legacy.acct.endpoint}"
    for req in sent:
        assert req.url.startswith(base), req.url
        target = req.url[len(base):]
        auth = req.header("Authorization")
        expected = legacy_authorization(
            legacy.acct.operator, legacy.acct.password, req.method, target, req.header("Date"),
            req.header("Content-Length") or 0,
        )
        assert auth == expected, f"{req.method} {target}: Authorization {auth!r}, independent {expected!r}"


def assert_form_result(fields: dict, key: str, t0: float, legacy: Legacy, ext_param: str | None = None) -> None:
    for k in SIGNED_FIELDS + ("sign",):
        assert k in fields, f"form result lacks {k}: {fields}"
    assert str(fields["code"]) == "200" and fields["message"] == "ok", fields
    assert fields["url"] == key, fields
    assert int(t0) - 5 <= int(fields["time"]) <= time.time() + 5, fields
    if ext_param is not None:
        assert fields.get("ext-param") == ext_param, fields
    assert fields["sign"] == result_sign(fields, legacy.form_secret), (
        f"sign is not md5(code&message&url&time&form_secret[&ext-param]): {fields}"
    )
    assert legacy.verify_put_sign(fields), f"upyun 2.4.2 verify_put_sign refuses {fields}"


def legacy_form_post(legacy: Legacy, key: str, data: bytes, filename: str, secret: str | None = None,
                     signed_policy: dict | None = None, **extra) -> requests.Response:
    """A secret-signed form POST as 2.4.2 sends it, the 302 not followed.
    `signed_policy`: sign that policy instead of the one sent (tampering)."""
    policy = {"bucket": legacy.bucket, "expiration": int(time.time()) + 600, "save-key": key, **extra}
    b64 = base64.b64encode(json.dumps(policy).encode()).decode()
    to_sign = base64.b64encode(json.dumps(signed_policy).encode()).decode() if signed_policy else b64
    return requests.post(
        f"{legacy.acct.server.endpoint}/{legacy.bucket}/",
        files={
            "policy": b64.encode(),
            "signature": legacy_form_signature(to_sign, secret or legacy.form_secret),
            "file": (filename, data),
        },
        allow_redirects=False,
        timeout=60,
    )


# ==========================================================================
# reference values


def test_legacy_signatures_reference_values():
    date = "Wed, 29 Oct 2014 02:26:58 GMT"
    assert legacy_authorization("operator", "password", "GET", "/bucket/sub", date, 0) == (
        "UpYun operator:03db45e2904663c5c9305a9c6ed62af3"
    )
    mod = import_upyun242()
    sign = sys.modules[f"{mod.__name__}.modules.sign"]
    assert sign.make_rest_signature("bucket", "operator", md5_hex(b"password"), "GET", "/bucket/sub", date, 0) == (
        legacy_authorization("operator", "password", "GET", "/bucket/sub", date, 0)
    )
    # form_api.md: legacy form signature and the result's sign.
    policy = "eyJidWNrZXQiOiJkZW1vYnVja2V0IiwiZXhwaXJhdGlvbiI6MTQwOTIwMDc1OCwic2F2ZS1rZXkiOiIvaW1nLmpwZyJ9"
    assert legacy_form_signature(policy, "cAnyet74l9hdUag34h2dZu8z7gU=") == "646a6a629c344ce0e6a10cadd49756d4"
    assert sign.make_content_md5(policy.encode() + b"&cAnyet74l9hdUag34h2dZu8z7gU=") == "646a6a629c344ce0e6a10cadd49756d4"
    fields = {"code": 200, "message": "ok", "time": 1434539183,
              "url": "/2015/06/17/190623/upload_QQ\u56fe\u7247201506011111206f7c696f0920f097d7eefd750334003e.png"}
    assert result_sign(fields, "lGetaXubhGezKp89+6iuOb5IaS3=") == "086c46cfedfc22bfa2e4971a77530a76"
    assert mod.verify_put_sign(dict(fields, sign="086c46cfedfc22bfa2e4971a77530a76"), "lGetaXubhGezKp89+6iuOb5IaS3=")
    with_ext = dict(fields, **{"ext-param": "client_1"})
    assert mod.verify_put_sign(dict(with_ext, sign=result_sign(with_ext, "s3cr3t")), "s3cr3t")


# ==========================================================================
# REST under the legacy authorization


def test_242_put_getinfo_get_delete(legacy, tmp_path):
    up = legacy.sdk()
    sent = record_requests(up)
    key = unique_key("/l/rest", ".txt")
    t0 = time.time()
    res = up.put(key, b"hello from upyun 2.4.2\n")
    assert isinstance(res, dict), res
    info = up.getinfo(key)
    assert info.get("file-type") == "file", info
    assert info.get("file-size") == str(len(b"hello from upyun 2.4.2\n")), info
    assert int(t0) - 5 <= int(info.get("file-date", 0)) <= time.time() + 5, info
    assert up.get(key) == "hello from upyun 2.4.2\n"

    # a binary file object, read back into a file object
    data = os.urandom(300 * KiB + 7)
    key2 = unique_key("/l/rest", ".bin")
    with open(write_file(tmp_path / "bin.bin", data), "rb") as f:
        up.put(key2, f)
    buf = io.BytesIO()
    up.get(key2, buf)
    assert buf.getvalue() == data
    assert_stored(legacy, key2, data)

    up.delete(key)
    with expect_242_error(404, body=False):
        up.getinfo(key)
    assert_absent(legacy, key)
    assert [r.method for r in sent] == ["PUT", "HEAD", "GET", "PUT", "GET", "DELETE", "HEAD"], sent
    assert_legacy_wire(legacy, sent)


def test_242_mkdir_getlist_usage(legacy):
    up = legacy.sdk()
    sent = record_requests(up)
    d = f"/l/dir-{secrets.token_hex(3)}"
    up.mkdir(d + "/sub")
    up.put(d + "/a.txt", b"aaa")
    up.put(d + "/b.bin", b"bbbbb")
    info = up.getinfo(d + "/sub")
    assert info.get("file-type") == "folder", info
    entries = {e["name"]: e for e in up.getlist(d + "/")}
    assert set(entries) == {"sub", "a.txt", "b.bin"}, entries
    assert (entries["a.txt"]["type"], entries["a.txt"]["size"]) == ("N", "3"), entries
    assert (entries["b.bin"]["type"], entries["b.bin"]["size"]) == ("N", "5"), entries
    assert entries["sub"]["type"] == "F", entries
    assert all(e["time"].isdigit() for e in entries.values()), entries
    assert up.getlist(d + "/sub/") == []
    assert int(up.usage()) >= 8
    up.delete(d + "/sub/")
    assert {e["name"] for e in up.getlist(d + "/")} == {"a.txt", "b.bin"}
    assert_legacy_wire(legacy, sent)


def test_242_non_ascii_key(legacy):
    up = legacy.sdk()
    sent = record_requests(up)
    key = f"/l/报告 {secrets.token_hex(2)}+final (1).txt"
    up.put(key, "内容 content".encode())
    assert up.get(key) == "内容 content"
    assert sent[0].url.endswith(request_uri(legacy.bucket, key)), sent[0].url
    assert_stored(legacy, key, "内容 content".encode())
    assert_legacy_wire(legacy, sent)


def test_242_resumable_put(legacy, tmp_path):
    """need_resume=True on a file >= 5 MiB: 1 MiB parts (resume.py THRESHOLD /
    PART_SIZE), X-Upyun-Multi-Type from the local file name, legacy-signed."""
    data = os.urandom(6 * MiB + 5)
    key = unique_key("/l/resume", ".txt")
    up = legacy.sdk()
    sent = record_requests(up)
    with open(write_file(tmp_path / "notes.txt", data), "rb") as f:
        up.put(key, f, need_resume=True, checksum=True)
    assert sent[0].header("X-Upyun-Multi-Part-Size") == str(MiB), sent[0]
    assert sent[0].header("X-Upyun-Multi-Type") == "text/plain", sent[0]
    assert len(sent) == 7, [r.header("X-Upyun-Multi-Stage") for r in sent]
    assert_stored(legacy, key, data)
    assert_type(legacy.acct, key, "text/plain")
    assert_legacy_wire(legacy, sent)


def test_242_wrong_password_unknown_operator_and_stale_date(legacy):
    key = unique_key("/l/auth")
    with expect_242_error(401, code=40100005):
        legacy.sdk(password=legacy.acct.password + "x").put(key, b"data")
    with expect_242_error(401):
        legacy.sdk(password=legacy.acct.password + "x").get("/")
    with expect_242_error(401, body=False):
        legacy.sdk(password=legacy.acct.password + "x").getinfo(key)
    with expect_242_error(401):
        legacy.sdk(operator="op" + secrets.token_hex(5)).put(key, b"data")
    assert_absent(legacy, key)

    # Raw, with the independent signer: a fresh Date works, one 31 minutes old does not.
    acct = legacy.acct
    uri = request_uri(acct.bucket, key)
    for date, ok in ((httpdate(), True), (httpdate(time.time() - 31 * 60), False)):
        r = requests.put(
            f"{acct.server.endpoint}{uri}",
            data=b"raw legacy",
            headers={"Date": date, "Authorization": legacy_authorization(acct.operator, acct.password, "PUT", uri, date, 10)},
            timeout=30,
        )
        if ok:
            assert r.status_code == 200, f"legacy PUT: HTTP {r.status_code} {r.text[:300]}"
        else:
            assert r.status_code == 401, f"legacy PUT with a stale Date: HTTP {r.status_code} {r.text[:300]}"
            assert_upyun_error_body(401, r.text)
    assert_stored(legacy, key, b"raw legacy")
    # The legacy signature covers the query too: GET /<bucket>/?usage.
    date = httpdate()
    uri = f"/{acct.bucket}/?usage"
    r = requests.get(
        f"{acct.server.endpoint}{uri}",
        headers={"Date": date, "Authorization": legacy_authorization(acct.operator, acct.password, "GET", uri, date, 0)},
        timeout=30,
    )
    assert r.status_code == 200 and r.text.strip().isdigit(), f"legacy usage: HTTP {r.status_code} {r.text[:300]}"


# ==========================================================================
# the secret-signed form API of 2.4.2


def test_242_form_upload_signed_result(legacy, tmp_path):
    data = os.urandom(4000)
    key = unique_key("/l/form", ".bin")
    up = legacy.sdk()
    sent = record_requests(up)
    t0 = time.time()
    with open(write_file(tmp_path / "form.bin", data), "rb") as f:
        res = up.put(key, f, form=True, **{"ext-param": "order 9"})
    assert sent[-1].method == "POST" and sent[-1].url == f"http://{legacy.acct.endpoint}/{legacy.bucket}/", sent[-1]
    assert isinstance(res, dict), res
    assert_form_result(res, key, t0, legacy, ext_param="order 9")
    assert_stored(legacy, key, data)


@pytest.mark.parametrize(
    "name,expected",
    [("a.png", "image/png"), ("b.txt", "text/plain"), ("noextension", "application/octet-stream")],
)
def test_242_form_type_from_extension(legacy, tmp_path, name, expected):
    key = f"/l/ftype-{secrets.token_hex(3)}/{name}"
    data = os.urandom(500)
    with open(write_file(tmp_path / name, data), "rb") as f:
        legacy.sdk().put(key, f, form=True)
    assert_stored(legacy, key, data)
    assert_type(legacy.acct, key, expected)


def test_242_form_return_url(legacy, receiver, tmp_path):
    return_url = receiver.url("/cb/return")
    data = os.urandom(2500)

    key = unique_key("/l/ret", ".txt")
    t0 = time.time()
    r = legacy_form_post(legacy, key, data, "ret.txt", **{"return-url": return_url, "ext-param": "a&b=c"})
    assert r.status_code == 302, f"legacy form with return-url: HTTP {r.status_code} {r.text[:300]}"
    assert_form_result(parse_location(r.headers.get("Location"), return_url), key, t0, legacy, ext_param="a&b=c")
    assert_stored(legacy, key, data)

    # The SDK follows the 302: it returns the receiver's answer.
    key2 = unique_key("/l/ret-sdk", ".txt")
    t0 = time.time()
    with open(write_file(tmp_path / "r.txt", data), "rb") as f:
        res = legacy.sdk().put(key2, f, form=True, **{"return-url": return_url})
    assert res.get("path") == "/cb/return", f"the SDK did not land on the return-url: {res}"
    assert_form_result(dict(parse_qsl(res["query"], keep_blank_values=True, strict_parsing=True)), key2, t0, legacy)
    assert_stored(legacy, key2, data)


def test_242_form_notify_url(legacy, receiver, tmp_path):
    data = os.urandom(3333)
    key = unique_key("/l/notify", ".txt")
    t0 = time.time()
    with open(write_file(tmp_path / "n.txt", data), "rb") as f:
        res = legacy.sdk().put(key, f, form=True, **{"notify-url": receiver.url("/legacy/notify"), "ext-param": "u-77"})
    assert_form_result(res, key, t0, legacy, ext_param="u-77")
    rec = receiver.wait_posts(1)[0]
    assert rec.method == "POST" and rec.path == "/legacy/notify", (rec.method, rec.path)
    ctype = (rec.header("Content-Type") or "").split(";")[0].strip().lower()
    assert ctype == "application/x-www-form-urlencoded", rec.headers
    assert_form_result(rec.form_fields(), key, t0, legacy, ext_param="u-77")
    assert_stored(legacy, key, data)


def test_242_form_allow_file_type(legacy, tmp_path):
    data = os.urandom(800)
    src = write_file(tmp_path / "doc.pdf", data)
    refused = unique_key("/l/ftype", ".pdf")
    with open(src, "rb") as f, expect_242_error(403, code=40300010):
        legacy.sdk().put(refused, f, form=True, **{"allow-file-type": "jpg,png"})
    assert_absent(legacy, refused)
    allowed = unique_key("/l/ftype", ".pdf")
    with open(src, "rb") as f:
        res = legacy.sdk().put(allowed, f, form=True, **{"allow-file-type": "png,pdf"})
    assert res.get("url") == allowed, res
    assert_stored(legacy, allowed, data)


def test_242_form_bad_signature(legacy, tmp_path):
    key = unique_key("/l/fsig")
    with open(write_file(tmp_path / "s.bin", b"x" * 100), "rb") as f, expect_242_error(401, code=40100005):
        legacy.sdk(secret="not-the-form-secret").put(key, f, form=True)
    # signed for one save-key, sent with another
    r = legacy_form_post(legacy, key, b"tampered", "t.bin",
                         signed_policy={"bucket": legacy.bucket, "expiration": int(time.time()) + 600, "save-key": "/other"})
    assert r.status_code == 401, f"tampered legacy form: HTTP {r.status_code} {r.text[:300]}"
    assert assert_upyun_error_body(401, r.text)["code"] == 40100005, r.text
    assert_absent(legacy, key)


# ==========================================================================
# the m0 block upload of 2.4.2: content type, unknown bucket


@pytest.mark.parametrize(
    "name,expected",
    [("a.png", "image/png"), ("b.txt", "text/plain"), ("c.qqqzzz", "application/octet-stream")],
)
def test_242_block_upload_type_from_extension(legacy, tmp_path, name, expected):
    data = os.urandom(250 * KiB)
    key = f"/l/m0-{secrets.token_hex(3)}/{name}"
    with open(write_file(tmp_path / "src.bin", data), "rb") as f:
        res = legacy.sdk().put(key, f, multipart=True, block_size=100 * KiB)
    assert res is not None, "the SDK gave up"
    assert res.get("content_type") == expected, res
    assert_stored(legacy, key, data)
    assert_type(legacy.acct, key, expected)


def test_242_block_upload_to_an_unknown_bucket_answers_as_one_without_a_form_secret(legacy, tmp_path, server):
    """UpYun answers 404 40401 "Bucket NotFound." here; Chuan answers an unknown bucket exactly
    as an existing bucket whose form API is off (no form secret): 403 40301, so an anonymous
    caller cannot tell which bucket names exist (no side channels)."""
    other = make_account(server)  # a real bucket, no form secret issued for it
    answers = []
    for bucket in ("nosuch-" + secrets.token_hex(5), other.bucket):
        with open(write_file(tmp_path / "x.bin", os.urandom(1000)), "rb") as f:
            with pytest.raises(sdk_exc()) as info:
                legacy.sdk(bucket=bucket).put("/x.bin", f, multipart=True)
        answers.append((info.value.status, json.loads(info.value.err)))
    assert answers[0] == answers[1], answers
    assert answers[0][0] == 403 and answers[0][1]["error_code"] == "40301", answers
