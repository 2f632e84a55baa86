"""Helpers for the tus 1.0.0 endpoint tests (test_tus.py, test_tus_js.py).

* `TusApi`: raw tus requests with `requests` (Basic auth with a key pair,
  `Tus-Resumable: 1.0.0` unless told otherwise), and `expect` to check the
  status and the `Tus-Resumable` header every answer must carry;
* `encode_metadata` / `parse_metadata`: the `Upload-Metadata` format
  (comma-separated `key base64(value)`);
* raw-socket HTTP/1.1 requests for what `requests` cannot send: a body cut
  short, a chunked body with a trailer, two bodies interleaved;
* tenants with a bucket (`TusCtx`) and UFile scoped tokens (key pairs that
  are limited to buckets, prefixes and operations).

Spec: tus resumable upload protocol 1.0.0 (https://tus.io/protocols/resumable-upload).
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import socket
import time
import zlib
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from adrive_helpers import Tenant, create_tenant
from compat_helpers import recv_all, unique_name

TUS_PATH = "/_chuan/tus/"
TUS_VERSION = "1.0.0"
OCTET_OFFSET = "application/offset+octet-stream"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)
CHECKSUM_ALGORITHMS = ("md5", "sha1", "sha256", "crc32")

_DEFAULT: Any = object()


# --------------------------------------------------------------------------
# Upload-Metadata


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def encode_metadata(meta: dict[str, str | None] | list[tuple[str, str | None]]) -> str:
    """tus Upload-Metadata: `key base64(value)` pairs joined by commas; a None
    value is a key without a value (allowed by the spec)."""
    items = meta.items() if isinstance(meta, dict) else meta
    out = []
    for k, v in items:
        out.append(k if v is None else f"{k} {b64(v)}")
    return ",".join(out)


def parse_metadata(header: str) -> dict[str, str]:
    out = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        k, _, v = pair.partition(" ")
        out[k] = base64.b64decode(v).decode("utf-8", "replace") if v else ""
    return out


def digest_b64(alg: str, data: bytes) -> str:
    """Base64 of the raw digest, as Upload-Checksum wants it."""
    if alg == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    else:
        raw = hashlib.new(alg, data).digest()
    return base64.b64encode(raw).decode("ascii")


def checksum_header(alg: str, data: bytes) -> str:
    return f"{alg} {digest_b64(alg, data)}"


def basic(access_key: str, secret_key: str) -> str:
    return "Basic " + b64(f"{access_key}:{secret_key}")


def http_date(value: str) -> float:
    """Parse an RFC 7231 IMF-fixdate ("Wed, 25 Jun 2014 16:00:00 GMT") to epoch seconds."""
    assert value.endswith(" GMT"), f"not an HTTP date (IMF-fixdate, GMT): {value!r}"
    parsed = email.utils.parsedate_to_datetime(value)
    assert parsed is not None, f"not an HTTP date: {value!r}"
    return parsed.timestamp()


# --------------------------------------------------------------------------
# raw tus requests


def describe(r: requests.Response) -> str:
    hdrs = {k: v for k, v in r.headers.items() if k.lower() != "date"}
    return f"{r.request.method} {urlsplit(r.url).path}: HTTP {r.status_code} {hdrs} {r.text[:300]!r}"


def expect(r: requests.Response, status: int | tuple[int, ...], what: str = "",
           tus_header: bool = True) -> requests.Response:
    """Assert the status, and the Tus-Resumable header that every answer carries (unless
    tus_header=False: test_refusals_carry_tus_resumable checks that apart)."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, f"{what}: expected HTTP {'/'.join(map(str, statuses))}, got {describe(r)}"
    assert not tus_header or r.headers.get("Tus-Resumable") == TUS_VERSION, (
        f"{what}: every answer must carry Tus-Resumable: {TUS_VERSION}, got {describe(r)}"
    )
    return r


class TusApi:
    """tus requests against one server, signed with one key pair (HTTP Basic)."""

    def __init__(self, server, auth: tuple[str, str] | None):
        self.server = server
        self.auth = auth
        self.base = server.endpoint + TUS_PATH

    def request(self, method: str, url: str, headers: dict | None = None, data=None, auth=_DEFAULT,
                tus: bool = True, timeout: float = 120) -> requests.Response:
        h: dict[str, str] = {}
        if tus:
            h["Tus-Resumable"] = TUS_VERSION
        h.update(headers or {})
        return requests.request(method, url, headers=h, data=data,
                                auth=self.auth if auth is _DEFAULT else auth, timeout=timeout)

    def options(self, url: str | None = None, **kw) -> requests.Response:
        kw.setdefault("tus", False)
        kw.setdefault("auth", None)
        return self.request("OPTIONS", url or self.base, **kw)

    def create(self, length: int | None = None, meta: dict | list | str | None = None, defer: bool = False,
               body: bytes | None = None, headers: dict | None = None, **kw) -> requests.Response:
        h: dict[str, str] = {}
        if length is not None:
            h["Upload-Length"] = str(length)
        if defer:
            h["Upload-Defer-Length"] = "1"
        if meta is not None:
            h["Upload-Metadata"] = meta if isinstance(meta, str) else encode_metadata(meta)
        if body is not None:
            h["Content-Type"] = OCTET_OFFSET
        h.update(headers or {})
        return self.request("POST", self.base, headers=h, data=body, **kw)

    def location(self, r: requests.Response) -> str:
        loc = r.headers.get("Location")
        assert loc, f"creation answered without Location: {describe(r)}"
        url = urljoin(self.base, loc)
        assert urlsplit(url).path.startswith(TUS_PATH) and len(urlsplit(url).path) > len(TUS_PATH), (
            f"Location {loc!r} is not /_chuan/tus/<id>"
        )
        return url

    def create_ok(self, length: int | None = None, meta=None, **kw) -> str:
        r = expect(self.create(length, meta, **kw), 201, f"create (Upload-Length {length})")
        return self.location(r)

    def patch(self, url: str, offset: int | str | None, data: bytes, checksum: str | None = None,
              content_type: str | None = OCTET_OFFSET, headers: dict | None = None, **kw) -> requests.Response:
        h: dict[str, str] = {}
        if offset is not None:
            h["Upload-Offset"] = str(offset)
        if content_type is not None:
            h["Content-Type"] = content_type
        if checksum is not None:
            h["Upload-Checksum"] = checksum
        h.update(headers or {})
        return self.request("PATCH", url, headers=h, data=data, **kw)

    def patch_ok(self, url: str, offset: int, data: bytes, **kw) -> int:
        r = expect(self.patch(url, offset, data, **kw), 204, f"PATCH {len(data)} B at {offset}")
        new = int(r.headers["Upload-Offset"])
        assert new == offset + len(data), f"PATCH {len(data)} B at {offset}: Upload-Offset {new}, {describe(r)}"
        return new

    def head(self, url: str, **kw) -> requests.Response:
        return self.request("HEAD", url, **kw)

    def delete(self, url: str, **kw) -> requests.Response:
        return self.request("DELETE", url, **kw)

    def offset(self, url: str, what: str = "") -> int:
        r = expect(self.head(url), 200, f"HEAD {what}")
        assert r.headers.get("Upload-Offset", "").isdigit(), f"HEAD {what}: no Upload-Offset: {describe(r)}"
        return int(r.headers["Upload-Offset"])

    def upload(self, data: bytes, meta: dict, chunk: int | None = None) -> str:
        """Create an upload of `data` and send it in one PATCH (or in `chunk`-sized PATCHes)."""
        url = self.create_ok(len(data), meta)
        off = 0
        step = chunk or max(len(data), 1)
        while off < len(data):
            off = self.patch_ok(url, off, data[off:off + step])
        return url


# --------------------------------------------------------------------------
# raw sockets


def upload_path(url: str) -> str:
    return urlsplit(url).path


def request_head(server, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(server, timeout: float = 60) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response from a `Connection: close` exchange (until EOF)."""
    buf = recv_all(sock)
    head, sep, body = buf.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP response head: {buf[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def auth_headers(auth: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": basic(*auth), "Tus-Resumable": TUS_VERSION}


def chunked(data: bytes, size: int = 65536) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out


def raw_exchange(server, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                 timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    """Send one request exactly as given (headers verbatim, body verbatim) and read the answer."""
    h = dict(headers)
    h.setdefault("Connection", "close")
    with connect(server, timeout) as s:
        # No shutdown(SHUT_WR): a server may take a half-close for an aborted request.
        s.sendall(request_head(server, method, path, h) + body)
        return read_response(s)


def send_cut_patch(server, auth, url: str, offset: int, declared: int, sent: bytes,
                   extra: dict[str, str] | None = None) -> None:
    """A PATCH announcing `declared` bytes (Content-Length) whose connection is
    closed after only `sent` went out."""
    h = auth_headers(auth)
    h.update({"Content-Type": OCTET_OFFSET, "Upload-Offset": str(offset), "Content-Length": str(declared)})
    h.update(extra or {})
    s = connect(server)
    try:
        s.sendall(request_head(server, "PATCH", upload_path(url), h))
        for i in range(0, len(sent), 65536):
            s.sendall(sent[i:i + 65536])
        time.sleep(0.3)  # let the bytes reach the server before the cut
    finally:
        s.close()


def wait_offset(api: TusApi, url: str, pred, timeout: float = 15.0, settle: int = 3) -> int:
    """Poll HEAD until pred(offset) holds and the offset stayed the same for
    `settle` reads in a row (the server notices a cut connection
    asynchronously); return the last offset seen."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while True:
        off = api.offset(url)
        seen = (seen + [off])[-settle:]
        if pred(off) and len(seen) == settle and len(set(seen)) == 1:
            return off
        if time.monotonic() > deadline:
            return off
        time.sleep(0.25)


# --------------------------------------------------------------------------
# tenants, buckets, scoped key pairs


@dataclasses.dataclass
class TusCtx:
    server: Any
    tenant: Tenant
    s3: Any
    bucket: str
    tus: TusApi

    def meta(self, key: str, **extra) -> dict[str, str]:
        return {"bucket": self.bucket, "key": key, **extra}


def tus_ctx(server) -> TusCtx:
    t = create_tenant(server)
    s3 = t.s3(server)
    b = unique_name("tus")
    s3.create_bucket(Bucket=b)
    return TusCtx(server, t, s3, b, TusApi(server, t.auth))


def ufile_api_signature(params: dict, private_key: str) -> str:
    """UCloud API signature (management API): SHA1 hex over the sorted key+value pairs + private key."""
    s = "".join(f"{k}{params[k]}" for k in sorted(params)) + private_key
    return hashlib.sha1(s.encode()).hexdigest()


def create_scoped_token(server, tenant: Tenant, ops: list[str], buckets: list[str] | None = None,
                        prefixes: list[str] | None = None) -> tuple[str, str]:
    """A UFile token of the tenant (CreateUFileToken): a key pair limited to ops/buckets/prefixes."""
    p: dict[str, str] = {"Action": "CreateUFileToken", "PublicKey": tenant.access_key,
                         "TokenName": unique_name("tustok"), "ExpireTime": str(int(time.time()) + 3600)}
    for field, values in (("AllowedOps", ops), ("AllowedPrefixes", prefixes), ("AllowedBuckets", buckets)):
        for i, v in enumerate(values or []):
            p[f"{field}.{i}"] = v
    p["Signature"] = ufile_api_signature(p, tenant.secret_key)
    r = requests.post(server.endpoint + "/", params=p, timeout=30)
    assert r.status_code == 200, f"CreateUFileToken: HTTP {r.status_code} {r.text[:500]}"
    doc = r.json()
    assert doc.get("RetCode") == 0 and doc.get("PublicKey") and doc.get("PrivateKey"), doc
    return doc["PublicKey"], doc["PrivateKey"]


def uploads_count(server) -> int:
    return server.admin_stats().get("uploads", 0)
