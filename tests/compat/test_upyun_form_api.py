"""UpYun with the real `upyun` 2.5.5 SDK: the parallel multipart uploader with its
default arguments (no X-Upyun-Multi-Length), the form API's `return-url`,
`notify-url`, `allow-file-type`, `content-length-range`, `content-type` and
`save-key`, and the content type UpYun derives from the file extension (REST PUT,
form, multipart). Raw `requests` only where the SDK cannot look: the 302 itself
(`allow_redirects=False`) and a local HTTP receiver for the callbacks.

Contract (research notes: /tmp/upyun-notes.md; sources below):
* `init_multi_uploader(key)` / `(key, part_size=n MiB)` (upyun 2.5.5 multi.py:25-37)
  sends `PUT /<svc>/<key>` with `X-Upyun-Multi-Stage: initiate`,
  `X-Upyun-Multi-Disorder: true` [+ `X-Upyun-Multi-Part-Size`] and NO
  `X-Upyun-Multi-Length` (only sent when file_size is given). UpYun accepts that
  (the parallel upload's length is only known at `complete`: apache/opendal
  services/upyun/core.rs initiates without it, dromara/x-file-storage
  UpyunUssFileStorage.java reads the length back from the complete response).
  Parts are part_size bytes (default 1 MiB), only the last may be shorter; the
  complete answer carries `X-Upyun-Multi-Length` / `X-Upyun-Multi-Type` /
  `X-Upyun-Multi-Uuid` (upyun/docs sources/api/rest_api.md, "结束断点续传").
* form API result (upyun/docs sources/api/form_api.md "通知规则",
  https://help.upyun.com/knowledge-base/form_api/): fields `code` (200),
  `message` ("ok"), `url` (the saved path), `time` (unix s) [+ `ext-param`]
  - no `return-url`: 200 + those fields as a JSON body;
  - `return-url`: 302, `Location: <return-url>?<fields, URL-encoded>`;
  - `notify-url`: the server POSTs the fields, `application/x-www-form-urlencoded`,
    with `Date`, `Content-MD5: md5hex(body)` and
    `Authorization: UPYUN <operator>:b64(HMAC-SHA1(md5hex(password), POST&<notify path>&<Date>&<Content-MD5>))`
    (sources/api/authorization.md "FORM API 回调通知签名"; the SDK's own checker is
    `UpYun.verify_signature`, upyun.py:67-78); retried when the receiver fails.
  (`sign` = md5(code&message&url&time&form_secret) belongs to the legacy
  secret-signed form: test_upyun_242.py.)
* errors (sources/api/errno.md): JSON {"msg", "code", "id"}; signature error
  401 40100005; `allow-file-type` refused 403 40300010 "file type error";
  `content-length-range`: 403 40300008 "file too small" / 40300009 "file too large".
* content type: "默认使用文件扩展名判断文件类型" (REST PUT `Content-Type`, form
  `content-type`); an explicit type wins.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.utils
import http.server
import io
import json
import os
import re
import secrets
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from adrive_helpers import env_server_factory  # noqa: F401  (fixture)
from compat_helpers import KiB, MiB, free_port, get_body
from upyun_helpers import (
    UpYunServiceException,
    assert_no_s3_object,
    assert_upyun_error_body,
    expect_upyun_error,
    make_account,
    md5_hex,
    record_requests,
    s3_key,
    upyun_signature,
)

# Callback retries within the test: 5 s -> 10 ms (crates/chuan/src/server.rs).
SCALE = {"CHUAN_CALLBACK_BACKOFF_SCALE": "0.002"}

RESULT_FIELDS = {"code", "message", "url", "time"}

# Unambiguous extension -> type pairs (the same in every common mime.types table).
EXTENSION_TYPES = [
    ("a.png", "image/png"),
    ("b.jpg", "image/jpeg"),
    ("c.txt", "text/plain"),
    ("d.json", "application/json"),
    ("e.pdf", "application/pdf"),
    ("noextension", "application/octet-stream"),
    ("f.qqqzzz", "application/octet-stream"),
]


# --------------------------------------------------------------------------
# a local receiver for return-url (GET) and notify-url (POST)


@dataclasses.dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None

    def form_fields(self) -> dict[str, str]:
        """The body as application/x-www-form-urlencoded, each field once."""
        pairs = parse_qsl(self.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        fields = dict(pairs)
        assert len(fields) == len(pairs), f"a field occurs twice in the callback body: {pairs}"
        return fields


class Receiver:
    """HTTP on 127.0.0.1: a GET (the client following a return-url) is answered
    with JSON {"path", "query"}; a POST (a notify-url callback) is recorded and
    answered 200, except the first `fail` POSTs, answered 500."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.attempts = 0
        self.gets: list[Received] = []
        self.posts: list[Received] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _record(self, method: str) -> Received:
                split = urlsplit(self.path)
                return Received(method, split.path, split.query, dict(self.headers.items()), self._body())

            def do_GET(self):  # noqa: N802
                rec = self._record("GET")
                with outer.lock:
                    outer.gets.append(rec)
                body = json.dumps({"path": rec.path, "query": rec.query}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                rec = self._record("POST")
                with outer.lock:
                    outer.attempts += 1
                    failing = outer.attempts <= outer.fail
                    if not failing:
                        outer.posts.append(rec)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_posts(self, n: int = 1, timeout: float = 6.0) -> list[Received]:
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.posts) >= n:
                    return list(self.posts)
            time.sleep(0.05)
        raise AssertionError(
            f"{len(self.posts)} notify callback(s) received within {timeout}s, expected {n} "
            f"({self.attempts} attempts)"
        )

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


# --------------------------------------------------------------------------
# helpers


@pytest.fixture
def acct(server):
    return make_account(server)


def unique_key(prefix: str = "/fa", ext: str = ".bin") -> str:
    return f"{prefix}-{secrets.token_hex(4)}{ext}"


def sdk_get_bytes(up, key: str) -> bytes:
    buf = io.BytesIO()
    up.get(key, buf)
    return buf.getvalue()


def assert_stored(acct, key: str, data: bytes) -> None:
    up = acct.sdk()
    assert sdk_get_bytes(up, key) == data, f"upyun get {key}: content differs"
    info = up.getinfo(key)
    assert info.get("file-type") == "file" and info.get("file-size") == str(len(data)), info
    assert get_body(acct.s3(), acct.bucket, s3_key(key)) == data, f"S3 get {s3_key(key)}: content differs"


def assert_absent(acct, key: str) -> None:
    with expect_upyun_error(404, body=False):
        acct.sdk().getinfo(key)
    assert_no_s3_object(acct.s3(), acct.bucket, s3_key(key))


def essence(content_type: str | None) -> str | None:
    return content_type.split(";")[0].strip().lower() if content_type else content_type


def stored_type(acct, key: str) -> tuple[str | None, str | None]:
    """(UpYun HEAD Content-Type, S3 ContentType) of a stored file, without parameters."""
    r = acct.raw().request("HEAD", key)
    assert r.status_code == 200, f"HEAD {key}: HTTP {r.status_code}"
    head = acct.s3().head_object(Bucket=acct.bucket, Key=s3_key(key))
    return essence(r.headers.get("Content-Type")), essence(head.get("ContentType"))


def assert_type(acct, key: str, expected: str) -> None:
    """UpYun serves `expected`; S3 reports it too (for application/octet-stream
    S3 may also say binary/octet-stream, its name for "no type stored")."""
    upyun_type, s3_type = stored_type(acct, key)
    s3_ok = {expected, "binary/octet-stream"} if expected == "application/octet-stream" else {expected}
    assert upyun_type == expected and s3_type in s3_ok, (
        f"{key}: stored type (UpYun HEAD, S3) = {(upyun_type, s3_type)}, expected {expected}"
    )


def write_file(path, data: bytes):
    path.write_bytes(data)
    return path


def assert_result(fields: dict, key: str, t0: float, ext_param: str | None = None) -> None:
    """code/message/url/time of a form result (JSON body, return-url query or
    notify body; values may be strings there)."""
    missing = RESULT_FIELDS - fields.keys()
    assert not missing, f"form result lacks {sorted(missing)}: {fields}"
    assert str(fields["code"]) == "200", fields
    assert fields["message"] == "ok", fields
    assert fields["url"] == key, fields
    assert int(t0) - 5 <= int(fields["time"]) <= time.time() + 5, fields
    if ext_param is not None:
        assert fields.get("ext-param") == ext_param, fields


def raw_form_post(acct, key: str, data: bytes, filename: str, **policy_extra) -> requests.Response:
    """A form POST as upyun 2.5.5 sends it (policy + authorization + file), the
    302 not followed."""
    raw = acct.raw()
    policy, date = raw.form_policy(key, **policy_extra)
    return requests.post(
        f"{acct.server.endpoint}/{acct.bucket}/",
        files={"policy": policy.encode(), "authorization": raw.form_authorization(policy, date), "file": (filename, data)},
        allow_redirects=False,
        timeout=60,
    )


def parse_location(location: str, return_url: str) -> dict[str, str]:
    assert location and location.startswith(return_url + "?"), f"Location {location!r} is not {return_url}?<result>"
    pairs = parse_qsl(urlsplit(location).query, keep_blank_values=True, strict_parsing=True)
    fields = dict(pairs)
    assert len(fields) == len(pairs), f"a field occurs twice in the Location query: {pairs}"
    return fields


def assert_notify_signed_by_operator(acct, rec: Received, path: str) -> None:
    """The new (operator) callback signature: Date, Content-MD5 of the body,
    Authorization over POST&<path>&<Date>&<Content-MD5>."""
    assert rec.method == "POST" and rec.path == path, (rec.method, rec.path)
    ctype = essence(rec.header("Content-Type"))
    assert ctype == "application/x-www-form-urlencoded", f"notify Content-Type {rec.header('Content-Type')!r}"
    date = rec.header("Date")
    assert date, f"notify without Date: {rec.headers}"
    when = email.utils.parsedate_to_datetime(date)
    assert abs(when.timestamp() - time.time()) < 15 * 60, f"notify Date {date!r} is not now"
    content_md5 = rec.header("Content-MD5")
    assert content_md5 == md5_hex(rec.body), f"notify Content-MD5 {content_md5!r} != md5 of the body"
    auth = rec.header("Authorization")
    expected = upyun_signature(acct.operator, acct.password, "POST", path, date, content_md5=content_md5)
    assert auth == expected, f"notify Authorization {auth!r}, expected {expected!r} (POST&{path}&{date}&{content_md5})"
    # The SDK's own checker of callback signatures agrees.
    assert acct.sdk().verify_signature(auth, path, {"Date": date, "Content-MD5": content_md5})


# ==========================================================================
# 1. init_multi_uploader with its default arguments: no X-Upyun-Multi-Length


@pytest.mark.parametrize(
    "size,part_size,order,with_md5",
    [
        (2 * MiB + 512 * KiB, None, (2, 0, 1), False),  # SDK defaults: 1 MiB parts, last 0.5 MiB
        (2 * MiB, None, (1, 0), True),  # last part exactly full
        (1000, None, (0,), False),  # a single short part
        (5 * MiB + 123, 2 * MiB, (2, 1, 0), True),  # part_size given, length still not
    ],
    ids=["2.5MiB-defaults", "2MiB-full-last-part", "1000B-one-part", "5MiB-part_size-2MiB"],
)
def test_init_multi_uploader_without_length(acct, size, part_size, order, with_md5):
    data = os.urandom(size)
    ps = part_size or MiB
    parts = [data[i:i + ps] for i in range(0, len(data), ps)] or [b""]
    assert sorted(order) == list(range(len(parts)))
    key = unique_key("/multi/nolen")
    up = acct.sdk()
    sent = record_requests(up)
    uploader = up.init_multi_uploader(key, part_size=part_size) if part_size else up.init_multi_uploader(key)

    init = sent[0]
    assert init.method == "PUT" and init.header("X-Upyun-Multi-Stage") == "initiate", init
    assert init.header("X-Upyun-Multi-Disorder") == "true", init
    assert init.header("X-Upyun-Multi-Length") is None, "the SDK's defaults send no length"
    assert init.header("X-Upyun-Multi-Part-Size") == (str(part_size) if part_size else None), init
    assert uploader.uuid

    for pid in order:
        uploader.upload(pid, parts[pid])
    assert_absent(acct, key)
    res = uploader.complete(md5_hex(data)) if with_md5 else uploader.complete()
    assert isinstance(res, dict), res
    assert_stored(acct, key, data)


def test_multi_complete_reports_length_and_type(acct):
    """The complete answer carries X-Upyun-Multi-Length / -Type / -Uuid
    (rest_api.md "结束断点续传"; x-file-storage learns the size from it)."""
    data = os.urandom(MiB + 77)
    key = unique_key("/multi/report", ".txt")
    up = acct.sdk()
    uploader = up.init_multi_uploader(
        key, headers={"X-Upyun-Multi-Type": "text/plain"}, part_size=MiB, file_size=len(data)
    )
    uploader.upload(1, data[MiB:])
    uploader.upload(0, data[:MiB])
    res = uploader.complete()
    assert res.get("multi-length") == str(len(data)), f"complete answer: {res}"
    assert essence(res.get("multi-type")) == "text/plain", f"complete answer: {res}"
    assert res.get("multi-uuid") == uploader.uuid, f"complete answer: {res}"
    assert_stored(acct, key, data)
    assert_type(acct, key, "text/plain")


@pytest.mark.parametrize("case", ["gap", "short-middle-part", "oversized-part"])
def test_multi_without_length_refuses_inconsistent_parts(acct, case):
    """Without a declared length the parts themselves must add up: every part
    but the last is exactly part_size, none is missing, none is larger."""
    key = unique_key("/multi/bad")
    parts = {
        "gap": [(0, os.urandom(MiB)), (2, os.urandom(1000))],
        "short-middle-part": [(0, os.urandom(512 * KiB)), (1, os.urandom(MiB)), (2, os.urandom(10))],
        "oversized-part": [(0, os.urandom(MiB + 1)), (1, os.urandom(10))],
    }[case]
    uploader = acct.sdk().init_multi_uploader(key)
    for pid, blob in parts:
        try:
            uploader.upload(pid, blob)
        except UpYunServiceException as e:  # refusing a bad part right away is fine too
            assert 400 <= e.status < 500, f"part {pid}: HTTP {e.status} {e.err!r}"
            assert_upyun_error_body(e.status, e.err)
    with expect_upyun_error(any_4xx=True):
        uploader.complete()
    assert_absent(acct, key)


# ==========================================================================
# 2. form API: result, return-url, notify-url


def test_form_result_body(acct, tmp_path):
    data = os.urandom(3000)
    key = unique_key("/form/body", ".txt")
    t0 = time.time()
    with open(write_file(tmp_path / "body.txt", data), "rb") as f:
        res = acct.sdk().put(key, f, form=True, **{"ext-param": "order-7"})
    assert isinstance(res, dict), res
    assert_result(res, key, t0, ext_param="order-7")
    assert_stored(acct, key, data)


def test_form_return_url_redirects_with_the_result(acct, receiver, tmp_path):
    return_url = receiver.url("/cb/return")
    data = os.urandom(2000)

    # The 302 itself.
    key = unique_key("/form/ret", ".txt")
    t0 = time.time()
    r = raw_form_post(acct, key, data, "ret.txt", **{"return-url": return_url, "ext-param": "id 1/2"})
    assert r.status_code == 302, f"form with return-url: HTTP {r.status_code} {r.text[:300]}"
    assert_result(parse_location(r.headers.get("Location"), return_url), key, t0, ext_param="id 1/2")
    assert_stored(acct, key, data)

    # The SDK follows the redirect (requests does): what it returns is the
    # receiver's answer to GET <return-url>?<result>.
    key2 = unique_key("/form/ret-sdk", ".txt")
    t0 = time.time()
    with open(write_file(tmp_path / "sdk.txt", data), "rb") as f:
        res = acct.sdk().put(key2, f, form=True, **{"return-url": return_url})
    assert res.get("path") == "/cb/return", f"the SDK did not land on the return-url: {res}"
    fields = dict(parse_qsl(res["query"], keep_blank_values=True, strict_parsing=True))
    assert_result(fields, key2, t0)
    assert len(receiver.gets) == 1, receiver.gets
    assert_stored(acct, key2, data)


def test_form_notify_url_posts_the_result_signed_by_the_operator(acct, receiver, tmp_path):
    data = os.urandom(5000)
    key = unique_key("/form/notify", ".txt")
    t0 = time.time()
    with open(write_file(tmp_path / "n.txt", data), "rb") as f:
        res = acct.sdk().put(key, f, form=True, **{"notify-url": receiver.url("/hooks/upyun"), "ext-param": "client_42"})
    assert_result(res, key, t0, ext_param="client_42")
    rec = receiver.wait_posts(1)[0]
    assert_notify_signed_by_operator(acct, rec, "/hooks/upyun")
    assert_result(rec.form_fields(), key, t0, ext_param="client_42")
    assert_stored(acct, key, data)
    time.sleep(1.2)
    assert len(receiver.posts) == 1 and receiver.attempts == 1, "a delivered callback is not sent again"


def test_form_notify_url_is_retried_until_delivered(env_server_factory):  # noqa: F811
    srv = env_server_factory(env=SCALE, name="formnotify")
    a = make_account(srv)
    rec = Receiver(fail=2)
    try:
        key = unique_key("/form/retry", ".bin")
        data = os.urandom(777)
        t0 = time.time()
        r = raw_form_post(a, key, data, "retry.bin", **{"notify-url": rec.url("/retry")})
        assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]}"
        got = rec.wait_posts(1, timeout=8)[0]
        assert rec.attempts == 3, f"2 failures then a success, got {rec.attempts} attempts"
        assert_notify_signed_by_operator(a, got, "/retry")
        assert_result(got.form_fields(), key, t0)
    finally:
        rec.close()


# ==========================================================================
# 3. form API: allow-file-type, content-length-range, content-type, save-key


def test_form_allow_file_type(acct, tmp_path):
    data = os.urandom(1500)
    up = acct.sdk()
    refused = unique_key("/form/type", ".png")
    with open(write_file(tmp_path / "pic.png", data), "rb") as f, expect_upyun_error(403) as info:
        up.put(refused, f, form=True, **{"allow-file-type": "jpg,jpeg,gif"})
    assert json.loads(info.value.err)["code"] == 40300010, f"refused file type: {info.value.err}"
    assert_absent(acct, refused)

    allowed = unique_key("/form/type", ".png")
    with open(tmp_path / "pic.png", "rb") as f:
        res = up.put(allowed, f, form=True, **{"allow-file-type": "jpg,png"})
    assert res.get("url") == allowed, res
    assert_stored(acct, allowed, data)


@pytest.mark.parametrize(
    "size,limits,code",
    [(100, "200,1000", 40300008), (2000, "200,1000", 40300009)],
    ids=["too-small", "too-large"],
)
def test_form_content_length_range_codes(acct, tmp_path, size, limits, code):
    key = unique_key("/form/len")
    with open(write_file(tmp_path / "f.bin", os.urandom(size)), "rb") as f, expect_upyun_error(403) as info:
        acct.sdk().put(key, f, form=True, **{"content-length-range": limits})
    assert json.loads(info.value.err)["code"] == code, info.value.err
    assert_absent(acct, key)

    data = os.urandom(600)
    with open(write_file(tmp_path / "ok.bin", data), "rb") as f:
        acct.sdk().put(key, f, form=True, **{"content-length-range": limits})
    assert_stored(acct, key, data)


def test_form_content_type_field_is_the_stored_type(acct, tmp_path):
    key = unique_key("/form/ctype", ".png")
    data = os.urandom(900)
    with open(write_file(tmp_path / "x.png", data), "rb") as f:
        acct.sdk().put(key, f, form=True, **{"content-type": "text/plain"})
    assert_stored(acct, key, data)
    assert_type(acct, key, "text/plain")


@pytest.mark.parametrize("name,expected", EXTENSION_TYPES, ids=[n for n, _ in EXTENSION_TYPES])
def test_form_type_from_extension(acct, tmp_path, name, expected):
    """No content-type in the policy (and none on the file part: requests sends
    none): the saved file's extension decides."""
    key = f"/form/ext-{secrets.token_hex(3)}/{name}"
    data = os.urandom(700)
    with open(write_file(tmp_path / name, data), "rb") as f:
        acct.sdk().put(key, f, form=True)
    assert_stored(acct, key, data)
    assert_type(acct, key, expected)


def test_form_type_from_extension_ignores_a_generic_part_type(acct):
    """upyun/go-sdk form.go writes the file part with Go's CreateFormFile, i.e.
    `Content-Type: application/octet-stream` on every file: the type still
    comes from the extension ("默认使用文件扩展名作为文件类型")."""
    key = f"/form/gopart-{secrets.token_hex(3)}/photo.png"
    data = os.urandom(640)
    raw = acct.raw()
    policy, date = raw.form_policy(key)
    r = requests.post(
        f"{acct.server.endpoint}/{acct.bucket}",
        files={
            "policy": policy.encode(),
            "authorization": raw.form_authorization(policy, date),
            "file": ("photo.png", data, "application/octet-stream"),
        },
        allow_redirects=False,
        timeout=60,
    )
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]}"
    assert_stored(acct, key, data)
    assert_type(acct, key, "image/png")


def test_form_save_key_placeholders(acct, tmp_path):
    up = acct.sdk()
    data = os.urandom(1234)
    src = write_file(tmp_path / "sample.jpg", data)
    base = f"/sk-{secrets.token_hex(3)}"

    def upload(pattern: str) -> str:
        with open(src, "rb") as f:
            res = up.put(pattern, f, form=True)
        assert isinstance(res.get("url"), str), res
        assert_stored(acct, res["url"], data)
        return res["url"]

    def utc_day() -> str:
        return _dt.datetime.now(tz=_dt.timezone.utc).strftime("%Y/%m/%d")

    before = utc_day()
    url = upload(base + "/{year}/{mon}/{day}/{filename}{.suffix}")
    assert url in {f"{base}/{day}/sample.jpg" for day in (before, utc_day())}, url

    assert upload(base + "/{filemd5}.{suffix}") == f"{base}/{md5_hex(data)}.jpg"
    rnd = upload(base + "/r/{random32}{.suffix}")
    assert re.fullmatch(re.escape(base) + r"/r/[0-9A-Za-z]{32}\.jpg", rnd), rnd


def test_form_signature_error_is_40100005(acct, tmp_path):
    key = unique_key("/form/sig")
    with open(write_file(tmp_path / "s.bin", os.urandom(100)), "rb") as f, expect_upyun_error(401) as info:
        acct.sdk(password=acct.password + "x").put(key, f, form=True)
    assert json.loads(info.value.err)["code"] == 40100005, info.value.err

    # authorization of one policy, sent with another
    raw = acct.raw()
    policy, date = raw.form_policy(key)
    other, _ = raw.form_policy(unique_key("/form/sig-other"))
    r = requests.post(
        f"{acct.server.endpoint}/{acct.bucket}/",
        files={"policy": other.encode(), "authorization": raw.form_authorization(policy, date), "file": ("s.bin", b"x")},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 401, f"tampered policy: HTTP {r.status_code} {r.text[:300]}"
    assert assert_upyun_error_body(401, r.text)["code"] == 40100005, r.text
    assert_absent(acct, key)


def test_signature_refusals_do_not_tell_which_operators_exist(acct, tmp_path):
    """An unknown operator and a known one with a wrong password get the same answer (status
    and body but for the request id), over REST and in the form API, so operator names cannot
    be probed."""
    def bodies(sdk_call):
        out = []
        for up in (acct.sdk(password=acct.password + "x"), acct.sdk(operator="nosuch" + secrets.token_hex(4))):
            with expect_upyun_error(401) as info:
                sdk_call(up)
            body = json.loads(info.value.err)
            body.pop("id", None)
            out.append((info.value.status, body))
        return out

    rest = bodies(lambda up: up.put(unique_key("/probe"), b"x"))
    assert rest[0] == rest[1], rest
    path = write_file(tmp_path / "p.bin", b"x")

    def form(up):
        with open(path, "rb") as f:
            up.put(unique_key("/probe-form"), f, form=True)
    forms = bodies(form)
    assert forms[0] == forms[1] == rest[0], (forms, rest)


# ==========================================================================
# 4. content type from the extension: REST PUT and multipart


@pytest.mark.parametrize("name,expected", EXTENSION_TYPES, ids=[n for n, _ in EXTENSION_TYPES])
def test_rest_put_type_from_extension(acct, name, expected):
    key = f"/rest/ext-{secrets.token_hex(3)}/{name}"
    data = os.urandom(333)
    up = acct.sdk()
    sent = record_requests(up)
    up.put(key, data)
    assert sent[-1].header("Content-Type") is None, "the SDK sent a Content-Type of its own"
    assert_stored(acct, key, data)
    assert_type(acct, key, expected)
    r = acct.raw().request("GET", key)
    assert r.status_code == 200 and r.content == data
    assert essence(r.headers.get("Content-Type")) == expected, r.headers


def test_rest_put_explicit_content_type_wins(acct):
    up = acct.sdk()
    key = unique_key("/rest/explicit", ".png")
    up.put(key, b"not really a png", headers={"Content-Type": "application/x-chuan-test"})
    assert_type(acct, key, "application/x-chuan-test")
    key2 = unique_key("/rest/explicit", ".bin")
    up.put(key2, b"text", headers={"Content-Type": "text/plain"})
    assert_type(acct, key2, "text/plain")


def test_resumable_put_type_is_what_the_sdk_sends(acct, tmp_path):
    """The resumable upload sends X-Upyun-Multi-Type = guess_content_type(local
    file name) (resume.py init_headers); that is the stored type, even when the
    key's extension says otherwise."""
    data = os.urandom(MiB + 10)
    up = acct.sdk()
    key = unique_key("/resume/type", ".png")
    sent = record_requests(up)
    with open(write_file(tmp_path / "photo.png", data), "rb") as f:
        up.put(key, f, need_resume=True)
    assert sent[0].header("X-Upyun-Multi-Type") == "image/png", sent[0]
    assert_stored(acct, key, data)
    assert_type(acct, key, "image/png")

    key2 = unique_key("/resume/type", ".png")
    with open(write_file(tmp_path / "data.bin", data), "rb") as f:
        up.put(key2, f, need_resume=True)
    assert_stored(acct, key2, data)
    assert_type(acct, key2, "application/octet-stream")


def test_parallel_multipart_type_header_is_the_stored_type(acct):
    data = os.urandom(1500)
    key = unique_key("/multi/type", ".png")
    uploader = acct.sdk().init_multi_uploader(
        key, headers={"X-Upyun-Multi-Type": "text/plain"}, part_size=MiB, file_size=len(data)
    )
    uploader.upload(0, data)
    uploader.complete()
    assert_stored(acct, key, data)
    assert_type(acct, key, "text/plain")


@pytest.mark.parametrize("field,value", [
    ("content-type", "text/plain\u0001"),
    ("return-url", "http://example.com/back\nX-Injected: 1"),
    ("notify-url", "http://例え.jp/cb"),
])
def test_form_policy_values_that_could_not_be_served_are_refused(acct, tmp_path, field, value):
    """A type or URL that could not go back out as a header (control characters, a raw
    newline, non-ASCII) is refused before anything is stored, so no stored object is
    unservable and no answer carries an injected header."""
    key = unique_key("/form/bad-value", ".txt")
    with open(write_file(tmp_path / "v.txt", b"hello"), "rb") as f, expect_upyun_error(400, 403) as info:
        acct.sdk().put(key, f, form=True, **{field: value})
    assert json.loads(info.value.err)["code"] in (40000001, 40000003, 40300001), info.value.err
    assert_absent(acct, key)
