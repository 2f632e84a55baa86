"""Helpers for the UpYun REST / form API dialect tests (test_upyun_rest.py).

* the real `upyun` 2.5.5 SDK from the venv, imported after the one-line
  `collections.Callable` alias it needs on Python >= 3.10 (resume.py
  evaluates `isinstance(reporter, collections.Callable)` after every part);
* operators: tenant (POST /_chuan/admin/tenants) -> bucket (boto3 with the
  tenant's S3 keys) -> operator (POST /_chuan/admin/upyun/operators), bundled
  as an `UpyunAccount`;
* an independent implementation of the REST / form signature (spec §2.3), so
  raw requests do not only check the SDK against itself;
* `UpyunRaw`: signed raw `requests` calls for what the SDK cannot send (a
  wrong Content-MD5, an out-of-sequence part id, a skewed Date, a tampered
  form policy) and exact status / header / JSON checks;
* `record_requests`: records every request an SDK instance sends (method,
  URL, headers) by wrapping its requests.Session;
* assertions for the UpYun error contract: JSON {"msg","code","id"} with a
  4xx status.

Spec: /work/shared/specs/client-sdks.md §2.
"""

from __future__ import annotations

import base64
import collections
import collections.abc
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import quote

import pytest
import requests

from adrive_helpers import Tenant, create_tenant  # noqa: F401  (re-exported)
from compat_helpers import MiB, unique_name

# upyun 2.5.5 uses collections.Callable (removed in Python 3.10) in its
# resumable upload loop; alias it before the SDK is imported.
if not hasattr(collections, "Callable"):
    collections.Callable = collections.abc.Callable  # type: ignore[attr-defined]

import upyun  # noqa: E402
import upyun.modules.httpipe  # noqa: E402
import upyun.modules.sign  # noqa: E402
import upyun.rest  # noqa: E402
import upyun.resume  # noqa: E402
from upyun.modules.exception import UpYunServiceException  # noqa: E402,F401

UPYUN_VERSION = "2.5.5"
assert upyun.__version__ == UPYUN_VERSION, (
    f"the venv holds upyun {upyun.__version__}, expected {UPYUN_VERSION}: run scripts/setup-venv.sh"
)

OPERATORS_PATH = "/_chuan/admin/upyun/operators"
# x-upyun-list-iter value that marks the last page of a listing.
LIST_END_MARKER = "g2gCZAAEbmV4dGQAA2VvZg"


# --------------------------------------------------------------------------
# dates and signatures (independent of the SDK)


def httpdate(ts: float | None = None) -> str:
    """RFC 1123 GMT date, e.g. 'Wed, 01 Nov 2023 00:00:00 GMT'."""
    dt = _dt.datetime.fromtimestamp(time.time() if ts is None else ts, tz=_dt.timezone.utc)
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        days[dt.weekday()], dt.day, months[dt.month - 1], dt.year, dt.hour, dt.minute, dt.second,
    )


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def upyun_signature(
    operator: str,
    password: str,
    method: str,
    uri: str,
    date: str,
    policy: str | None = None,
    content_md5: str | None = None,
) -> str:
    """`UPYUN op:b64(HMAC-SHA1(md5hex(password), METHOD&URI&DATE[&policy][&content-md5]))`."""
    key = md5_hex(password.encode()).encode()
    parts = [method, uri, date]
    if policy:
        parts.append(policy)
    if content_md5:
        parts.append(content_md5)
    sig = base64.b64encode(hmac.new(key, "&".join(parts).encode(), hashlib.sha1).digest()).decode()
    return f"UPYUN {operator}:{sig}"


def request_uri(bucket: str, key: str, args: str = "") -> str:
    """The request target the SDK sends: quote('/<bucket>/<key>', safe='~/') + args."""
    path = "/%s/%s" % (bucket, key[1:] if key.startswith("/") else key)
    return quote(path.encode(), safe="~/") + args


def s3_key(key: str) -> str:
    """The S3 key of an UpYun path: the same path without the leading slash."""
    return key[1:] if key.startswith("/") else key


# --------------------------------------------------------------------------
# operators / accounts


ROOT = object()


def create_operator(server, tenant: str, bucket: str, operator: str, password: str, auth=ROOT) -> requests.Response:
    """POST the operator; `auth` is HTTP Basic (user, password), root's by
    default, None for no Authorization header."""
    return requests.post(
        f"{server.endpoint}{OPERATORS_PATH}",
        params={"tenant": tenant, "bucket": bucket, "operator": operator, "password": password},
        auth=(server.access_key, server.secret_key) if auth is ROOT else auth,
        timeout=30,
    )


def new_operator_name() -> str:
    return "op" + secrets.token_hex(5)


def new_password() -> str:
    return "Pw" + secrets.token_hex(10)


@dataclasses.dataclass
class UpyunAccount:
    server: object
    tenant: Tenant
    bucket: str
    operator: str
    password: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def sdk(self, bucket: str | None = None, operator: str | None = None, password: str | None = None):
        """A fresh upyun.UpYun pointed at the test server."""
        return upyun.UpYun(
            bucket or self.bucket,
            operator or self.operator,
            password or self.password,
            endpoint=self.endpoint,
            timeout=60,
        )

    def s3(self):
        """boto3 client with the tenant's S3 keys."""
        return self.server.client(self.tenant.access_key, self.tenant.secret_key)

    def raw(self, bucket: str | None = None, operator: str | None = None, password: str | None = None) -> "UpyunRaw":
        return UpyunRaw(
            self.server.endpoint,
            bucket or self.bucket,
            operator or self.operator,
            password or self.password,
        )


def make_account(server, tenant: Tenant | None = None) -> UpyunAccount:
    """Tenant (new unless given) + bucket created with its S3 keys + operator on that bucket."""
    tenant = tenant or create_tenant(server, unique_name("upt"))
    bucket = unique_name("up")
    server.client(tenant.access_key, tenant.secret_key).create_bucket(Bucket=bucket)
    op, pw = new_operator_name(), new_password()
    r = create_operator(server, tenant.name, bucket, op, pw)
    assert r.status_code == 201, f"POST {OPERATORS_PATH}: HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body == {"operator": op, "bucket": bucket}, body
    return UpyunAccount(server=server, tenant=tenant, bucket=bucket, operator=op, password=pw)


# --------------------------------------------------------------------------
# raw signed requests


class UpyunRaw:
    def __init__(self, endpoint: str, bucket: str, operator: str, password: str):
        self.endpoint = endpoint
        self.bucket = bucket
        self.operator = operator
        self.password = password

    def request(
        self,
        method: str,
        key: str,
        headers: dict | None = None,
        body: bytes = b"",
        args: str = "",
        date: str | None = None,
        content_md5: str | None = None,
    ) -> requests.Response:
        """A REST request signed like upyun 2.5.5 signs it. `content_md5` is
        sent as Content-MD5 and signed."""
        uri = request_uri(self.bucket, key, args)
        date = date or httpdate()
        h = {
            "Date": date,
            "Authorization": upyun_signature(
                self.operator, self.password, method, uri, date, content_md5=content_md5
            ),
            "Content-Length": str(len(body)),
        }
        if content_md5:
            h["Content-MD5"] = content_md5
        h.update(headers or {})
        return requests.request(method, self.endpoint + uri, headers=h, data=body, timeout=60)

    def form_policy(self, key: str, expiration_in: int = 1800, **extra) -> tuple[str, str]:
        """(policy b64, date) as upyun 2.5.5 form.py builds them."""
        date = httpdate()
        data = {
            "service": self.bucket,
            "expiration": int(time.time()) + expiration_in,
            "save-key": key,
            "date": date,
        }
        data.update(extra)
        return base64.b64encode(json.dumps(data).encode()).decode(), date

    def form_post(self, policy: str, authorization: str, data: bytes, filename: str = "file.bin") -> requests.Response:
        """POST /<bucket>/ multipart exactly as requests encodes the SDK's
        `files=` dict (policy/authorization as parts named after the field)."""
        return requests.post(
            f"{self.endpoint}/{self.bucket}/",
            files={
                "policy": policy.encode(),
                "authorization": authorization,
                "file": (filename, data),
            },
            headers={"Date": httpdate()},
            timeout=60,
        )

    def form_authorization(self, policy: str, date: str) -> str:
        return upyun_signature(self.operator, self.password, "POST", f"/{self.bucket}/", date, policy=policy)


# --------------------------------------------------------------------------
# request recording


@dataclasses.dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


def record_requests(up) -> list[SentRequest]:
    """Return a list that receives every request `up` (an upyun.UpYun) sends."""
    sent: list[SentRequest] = []
    session = up.hp.session
    orig = session.request

    def request(method, url, *args, **kwargs):
        hdrs = kwargs.get("headers") or {}
        sent.append(SentRequest(method, url, {str(k): str(v) for k, v in hdrs.items()}))
        return orig(method, url, *args, **kwargs)

    session.request = request
    return sent


# --------------------------------------------------------------------------
# error assertions


def assert_upyun_error_body(status: int, text: str) -> dict:
    """UpYun error body: JSON {"msg": str, "code": int, "id": str}; the code
    starts with the HTTP status (e.g. 40400001 for 404), as UpYun's do."""
    try:
        body = json.loads(text)
    except ValueError:
        raise AssertionError(f"HTTP {status}: error body is not JSON: {text[:500]!r}")
    assert isinstance(body, dict), f"HTTP {status}: error body is not a JSON object: {text[:500]!r}"
    missing = {"msg", "code", "id"} - body.keys()
    assert not missing, f"HTTP {status}: error body lacks {sorted(missing)}: {body}"
    assert isinstance(body["msg"], str) and body["msg"], body
    assert isinstance(body["code"], int) and not isinstance(body["code"], bool), body
    assert str(body["code"]).startswith(str(status)), (
        f"error code {body['code']} does not start with the HTTP status {status}: {body}"
    )
    assert isinstance(body["id"], str) and body["id"], body
    return body


def assert_raw_error(resp: requests.Response, *statuses: int) -> dict:
    assert resp.status_code in statuses, (
        f"expected HTTP {' or '.join(map(str, statuses))}, got {resp.status_code}: {resp.text[:500]}"
    )
    return assert_upyun_error_body(resp.status_code, resp.text)


def assert_raw_4xx(resp: requests.Response) -> dict:
    assert 400 <= resp.status_code < 500, f"expected a 4xx, got HTTP {resp.status_code}: {resp.text[:500]}"
    return assert_upyun_error_body(resp.status_code, resp.text)


@contextlib.contextmanager
def expect_upyun_error(*statuses: int, body: bool = True, any_4xx: bool = False):
    """Assert that the block raises UpYunServiceException with one of
    `statuses` (or any 4xx with any_4xx=True) and, unless `body=False` (HEAD
    responses have none), an UpYun JSON error body."""
    with pytest.raises(UpYunServiceException) as info:
        yield info
    e = info.value
    if any_4xx:
        assert 400 <= e.status < 500, f"expected a 4xx, got HTTP {e.status}: {e.err!r}"
    else:
        assert e.status in statuses, (
            f"expected HTTP {' or '.join(map(str, statuses))}, got {e.status}: {e.err!r}"
        )
    if body:
        assert_upyun_error_body(e.status, e.err)


def exc_header(e: UpYunServiceException, name: str) -> str | None:
    for k, v in e.headers or []:
        if k.lower() == name.lower():
            return v
    return None


# --------------------------------------------------------------------------
# misc


def assert_no_s3_object(s3, bucket: str, key: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=bucket, Key=key)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, info.value.response


__all__ = [
    "LIST_END_MARKER",
    "MiB",
    "OPERATORS_PATH",
    "SentRequest",
    "UpYunServiceException",
    "UpyunAccount",
    "UpyunRaw",
    "assert_no_s3_object",
    "assert_raw_4xx",
    "assert_raw_error",
    "assert_upyun_error_body",
    "create_operator",
    "create_tenant",
    "exc_header",
    "expect_upyun_error",
    "httpdate",
    "make_account",
    "md5_hex",
    "new_operator_name",
    "new_password",
    "record_requests",
    "request_uri",
    "s3_key",
    "upyun",
    "upyun_signature",
]
