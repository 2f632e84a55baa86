"""IETF "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload-13, interop 10) with
curl and a raw socket (the 104 interim response), and CORS on Chuan's upload endpoints (`--upload-origins`).

Creation at `/_chuan/resumable/{bucket}/{key}`; the upload resource is `/_chuan/tus/{id}` (the
same sessions as tus). Each refusal checks that nothing was stored.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time

import pytest
import requests

from compat_helpers import assert_no_object, unique_name
from tus_helpers import tus_ctx, uploads_count

DRAFT = {"Upload-Draft-Interop-Version": "10"}


def curl(server, auth, method: str, path: str, headers: dict[str, str], data: bytes | None = None,
         extra: list[str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request with curl; returns (status, lower-cased headers of the last response, body)."""
    cmd = ["curl", "-sS", "-D", "-", "-o", "-", "-X", method, "-u", f"{auth[0]}:{auth[1]}"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if data is not None:
        cmd += ["--data-binary", "@-"]
    cmd += extra or []
    cmd.append(f"http://127.0.0.1:{server.port}{path}")
    out = subprocess.run(cmd, input=data, capture_output=True, check=True, timeout=60).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    # An interim response (100 Continue) comes first: keep the last header block.
    while body.startswith(b"HTTP/1.1 ") and head.split(b" ")[1].startswith(b"1"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


@pytest.fixture
def ctx(server):
    return tus_ctx(server)


def test_one_request_upload_and_careful_creation_then_appends(server, ctx):
    auth = ctx.tenant.auth
    status, h, body = curl(server, auth, "PUT", f"/_chuan/resumable/{ctx.bucket}/one%20shot.bin",
                           {**DRAFT, "Upload-Complete": "?1", "Content-Type": "text/plain"}, b"x" * 1000)
    assert status == 201, body
    assert h["upload-complete"] == "?1" and h["upload-offset"] == "1000"
    assert json.loads(body)["size"] == 1000
    obj = ctx.s3.get_object(Bucket=ctx.bucket, Key="one shot.bin")
    assert obj["Body"].read() == b"x" * 1000 and obj["ContentType"] == "text/plain"

    # Careful creation: empty, incomplete; the answer carries the upload URL and the limits.
    status, h, _ = curl(server, auth, "POST", f"/_chuan/resumable/{ctx.bucket}/dir/big.bin",
                        {**DRAFT, "Upload-Complete": "?0"})
    assert status == 201
    url = h["location"]
    assert url.startswith("/_chuan/tus/") and "max-size=" in h["upload-limit"] and h["upload-offset"] == "0"
    part = bytes(range(256)) * 4096  # 1 MiB
    append = {**DRAFT, "Content-Type": "application/partial-upload"}
    status, h, _ = curl(server, auth, "PATCH", url, {**append, "Upload-Offset": "0", "Upload-Complete": "?0"}, part)
    assert status == 204 and h["upload-offset"] == str(len(part)) and h["upload-complete"] == "?0"
    # Offset retrieval.
    status, h, _ = curl(server, auth, "HEAD", url, DRAFT, extra=["-I"])
    assert status == 204 and h["upload-offset"] == str(len(part)) and h["upload-complete"] == "?0"
    assert h["cache-control"] == "no-store" and "max-age=" in h["upload-limit"]
    # A wrong offset: 409 with the right one and a problem document; nothing stored.
    status, h, body = curl(server, auth, "PATCH", url, {**append, "Upload-Offset": "5", "Upload-Complete": "?1"},
                           b"zz")
    assert status == 409 and h["upload-offset"] == str(len(part)) and h["upload-complete"] == "?0"
    problem = json.loads(body)
    assert problem["type"].endswith("#mismatching-upload-offset")
    assert (problem["expected-offset"], problem["provided-offset"]) == (len(part), 5)
    # The last append completes the object.
    status, h, body = curl(server, auth, "PATCH", url,
                           {**append, "Upload-Offset": str(len(part)), "Upload-Complete": "?1"}, b"end")
    assert status == 200 and h["upload-complete"] == "?1", body
    assert ctx.s3.get_object(Bucket=ctx.bucket, Key="dir/big.bin")["Body"].read() == part + b"end"
    # Nothing more goes into a complete upload.
    status, _, body = curl(server, auth, "PATCH", url,
                           {**append, "Upload-Offset": str(len(part) + 3), "Upload-Complete": "?1"}, b"more")
    assert status == 400 and json.loads(body)["type"].endswith("#inconsistent-upload-length")
    assert ctx.s3.head_object(Bucket=ctx.bucket, Key="dir/big.bin")["ContentLength"] == len(part) + 3


def test_bad_appends_and_cancellation(server, ctx):
    auth = ctx.tenant.auth
    status, h, _ = curl(server, auth, "POST", f"/_chuan/resumable/{ctx.bucket}/k.bin",
                        {**DRAFT, "Upload-Complete": "?0", "Upload-Length": "4"})
    assert status == 201
    url = h["location"]
    append = {**DRAFT, "Upload-Offset": "0", "Upload-Complete": "?0"}
    # Wrong media type, missing headers, more than the declared length: refused, nothing stored.
    assert curl(server, auth, "PATCH", url, {**append, "Content-Type": "application/octet-stream"}, b"ab")[0] == 415
    assert curl(server, auth, "PATCH", url, {**DRAFT, "Content-Type": "application/partial-upload"}, b"ab")[0] == 400
    status, _, _ = curl(server, auth, "PATCH", url, {**append, "Content-Type": "application/partial-upload"},
                        b"abcdefgh")
    assert status in (400, 413)
    # Completing short of the declared length is inconsistent.
    status, _, body = curl(server, auth, "PATCH", url,
                           {**DRAFT, "Upload-Offset": "0", "Upload-Complete": "?1",
                            "Content-Type": "application/partial-upload"}, b"ab")
    assert status == 400 and json.loads(body)["type"].endswith("#inconsistent-upload-length")
    status, h, _ = curl(server, auth, "HEAD", url, DRAFT, extra=["-I"])
    assert status == 204 and h["upload-offset"] == "0", "a refused last append stores nothing"
    # Cancellation, then the upload is gone; no object was made.
    assert curl(server, auth, "DELETE", url, DRAFT)[0] == 204
    assert curl(server, auth, "HEAD", url, DRAFT, extra=["-I"])[0] == 404
    assert_no_object(ctx.s3, ctx.bucket, "k.bin")
    # OPTIONS tells the limits; another tenant cannot see the upload (404, as unknown).
    status, h, _ = curl(server, auth, "OPTIONS", f"/_chuan/resumable/{ctx.bucket}/x", DRAFT)
    assert status == 204 and h["upload-limit"].startswith("max-size=")
    other = tus_ctx(server)
    status, h, _ = curl(server, auth, "POST", f"/_chuan/resumable/{ctx.bucket}/y.bin",
                        {**DRAFT, "Upload-Complete": "?0"})
    assert curl(server, other.tenant.auth, "HEAD", h["location"], DRAFT, extra=["-I"])[0] == 404
    # No credentials: 401 with a challenge.
    r = requests.post(f"http://127.0.0.1:{server.port}/_chuan/resumable/{ctx.bucket}/z", headers=DRAFT)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")


def test_a_refused_creation_leaves_no_upload(server, ctx):
    # A creation whose content is over its declared length is refused as a whole: the upload
    # it would have started (announced by the 104 to a client that asked) is removed with it.
    auth = ctx.tenant.auth
    before = uploads_count(server)
    for interop in ({}, DRAFT):
        status, h, body = curl(server, auth, "POST", f"/_chuan/resumable/{ctx.bucket}/over.bin",
                               {**interop, "Upload-Complete": "?0", "Upload-Length": "4"}, b"abcdefgh")
        assert status in (400, 413), (status, h, body)
        assert "location" not in h, f"a refused creation names no upload: {h}"
        assert uploads_count(server) == before, "the refused creation left an upload behind"
    assert_no_object(ctx.s3, ctx.bucket, "over.bin")


def test_a_tus_upload_continues_with_the_draft_and_back(server, ctx):
    """One session, two wire formats: created with tus, appended with the draft, read with tus."""
    r = ctx.tus.create(6, ctx.meta("mixed.txt"))
    url = r.headers["Location"]
    status, h, _ = curl(server, ctx.tenant.auth, "PATCH", url,
                        {**DRAFT, "Content-Type": "application/partial-upload", "Upload-Offset": "0",
                         "Upload-Complete": "?0"}, b"abc")
    assert status == 204 and h["upload-offset"] == "3"
    r = ctx.tus.patch(ctx.tus.location(r), 3, b"def")
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "6"
    assert ctx.s3.get_object(Bucket=ctx.bucket, Key="mixed.txt")["Body"].read() == b"abcdef"


def test_cors_on_upload_endpoints(server, server_factory):
    srv = server_factory(env={"CHUAN_UPLOAD_ORIGINS": "https://app.example.com,https://*.good.test"})
    base = f"http://127.0.0.1:{srv.port}"
    for origin in ("https://app.example.com", "https://x.good.test"):
        for path in ("/_chuan/tus/", "/_chuan/resumable/b/k", "/_chuan/v1/instant/challenge"):
            r = requests.options(base + path, headers={
                "Origin": origin, "Access-Control-Request-Method": "PATCH" if "tus" in path else "POST",
                "Access-Control-Request-Headers": "authorization, tus-resumable, upload-offset, content-type"})
            assert r.status_code == 204, (path, r.status_code, r.text)
            assert r.headers["Access-Control-Allow-Origin"] == origin
            assert "PATCH" in r.headers["Access-Control-Allow-Methods"]
            assert "upload-offset" in r.headers["Access-Control-Allow-Headers"]
            # Header-authenticated endpoints: never credentialed cross-origin requests.
            assert "Access-Control-Allow-Credentials" not in r.headers
    # The actual response lets the page read the tus headers.
    r = requests.options(base + "/_chuan/tus/", headers={"Origin": "https://app.example.com"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Upload-Offset" in r.headers["Access-Control-Expose-Headers"]
    assert "Location" in r.headers["Access-Control-Expose-Headers"]
    # Token management and the account are for the console only (same origin).
    r = requests.options(base + "/_chuan/v1/tokens", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in r.headers, r.headers
    # Other origins are refused at preflight and get no CORS headers.
    r = requests.options(base + "/_chuan/tus/", headers={
        "Origin": "https://evil.test", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.post(base + "/_chuan/tus/", headers={"Origin": "https://evil.test", "Tus-Resumable": "1.0.0"})
    assert r.status_code == 401 and "Access-Control-Allow-Origin" not in r.headers
    # Without the setting (the shared server), no origin is let in.
    r = requests.options(f"http://127.0.0.1:{server.port}/_chuan/tus/{unique_name('o')}",
                         headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "PATCH"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers


def send_head_until_104(server, ctx, key: str, fields: str) -> tuple[socket.socket, dict[str, str], bytes]:
    """Opens a raw connection, sends only the head of a creation of `key` (Basic auth, interop
    version 10, then `fields`: CRLF-ended header lines) and reads up to the end of the first
    interim answer, which must be a 104: (the socket, its fields lowercased, bytes after it)."""
    auth = base64.b64encode(f"{ctx.tenant.auth[0]}:{ctx.tenant.auth[1]}".encode()).decode()
    head = (f"POST /_chuan/resumable/{ctx.bucket}/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            f"Upload-Draft-Interop-Version: 10\r\n{fields}\r\n")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before an interim response: {got!r}"
        got += chunk
    interim, _, rest = got.partition(b"\r\n\r\n")
    lines = interim.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 104 Upload Resumption Supported", lines
    return sock, {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}, rest


def test_104_carries_the_upload_url_before_the_body_is_sent(server, ctx):
    """A creation with content (interop 10): `104 Upload Resumption Supported` with the upload
    URL arrives while the client has sent only the head; the client drops the connection after
    half the body, resumes at the URL the 104 gave, and completes."""
    body = bytes(range(256)) * 2048  # 512 KiB
    sock, fields, _ = send_head_until_104(server, ctx, "early.bin",
                                          f"Upload-Complete: ?1\r\nContent-Length: {len(body)}\r\n")
    assert fields["upload-draft-interop-version"] == "10" and "max-size=" in fields["upload-limit"]
    url = fields["location"]
    assert url.startswith("/_chuan/tus/")
    sock.sendall(body[: len(body) // 2])
    time.sleep(0.3)
    sock.close()
    # The bytes that arrived are kept; the rest goes to the URL the 104 named.
    deadline = time.monotonic() + 10
    while True:
        status, h, _ = curl(server, ctx.tenant.auth, "HEAD", url, DRAFT, extra=["-I"])
        if status == 204 and int(h["upload-offset"]) > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    offset = int(h["upload-offset"])
    assert 0 < offset <= len(body) // 2 and h["upload-complete"] == "?0", h
    status, h, _ = curl(server, ctx.tenant.auth, "PATCH", url,
                        {**DRAFT, "Content-Type": "application/partial-upload", "Upload-Offset": str(offset),
                         "Upload-Complete": "?1"}, body[offset:])
    assert status == 200 and h["upload-complete"] == "?1"
    assert ctx.s3.get_object(Bucket=ctx.bucket, Key="early.bin")["Body"].read() == body


def test_the_url_of_a_104_is_gone_after_a_refused_creation(server, ctx):
    """The 104 names the upload before the body is read; when the body is then refused (more
    bytes than `Upload-Length`), that upload goes with the refusal: its URL answers 404."""
    body = b"x" * 64
    sock, fields, rest = send_head_until_104(
        server, ctx, "refused.bin",
        f"Upload-Complete: ?0\r\nUpload-Length: 16\r\nContent-Length: {len(body)}\r\nConnection: close\r\n")
    url = fields["location"]
    with sock:
        sock.sendall(body)
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
    status_line = rest.split(b"\r\n", 1)[0].decode()
    assert status_line.split(" ")[1] in ("400", "413"), status_line
    assert curl(server, ctx.tenant.auth, "HEAD", url, DRAFT, extra=["-I"])[0] == 404
    assert_no_object(ctx.s3, ctx.bucket, "refused.bin")


def test_no_104_without_the_interop_version(server, ctx):
    """Without `Upload-Draft-Interop-Version: 10` no interim response is sent (draft: MUST NOT)."""
    status, h, body = curl(server, ctx.tenant.auth, "POST", f"/_chuan/resumable/{ctx.bucket}/plain.bin",
                           {"Upload-Complete": "?1", "Upload-Draft-Interop-Version": "6"}, b"abc",
                           extra=["-H", "Expect:"])
    assert status == 201 and h["upload-complete"] == "?1"
    out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-u", ":".join(ctx.tenant.auth), "-H",
                          "Upload-Complete: ?1", "-H", "Expect:", "--data-binary", "xyz",
                          f"http://127.0.0.1:{server.port}/_chuan/resumable/{ctx.bucket}/plain2.bin"],
                         capture_output=True, check=True).stdout
    assert b" 104 " not in out and out.startswith(b"HTTP/1.1 201"), out


def test_a_completion_refused_by_the_quota_is_retried_and_never_reported_done_before(server, ctx):
    """The last append lands but the object cannot be written (storage quota): the offset
    is not reported as complete while no object exists; once the quota allows it, asking
    again completes the upload."""
    from test_ufile_tokens_quotas import set_quota

    data = b"q" * 5000
    r = ctx.tus.create(len(data), ctx.meta("quota.bin"))
    url = ctx.tus.location(r)
    set_quota(server, ctx.tenant.name, storage_bytes=1000)
    r = ctx.tus.patch(url, 0, data)
    assert r.status_code == 403, r.text  # QuotaExceeded: the bytes are in, the object is not
    assert_no_object(ctx.s3, ctx.bucket, "quota.bin")
    r = ctx.tus.head(url)
    assert r.status_code == 403, f"HEAD must not report a finished upload without its object: {r.headers}"
    set_quota(server, ctx.tenant.name, storage_bytes=10**9)
    r = ctx.tus.head(url)
    assert r.status_code == 200 and r.headers["Upload-Offset"] == str(len(data)), r.headers
    assert ctx.s3.get_object(Bucket=ctx.bucket, Key="quota.bin")["Body"].read() == data


def test_empty_uploads_and_finished_uploads(server, ctx):
    auth = ctx.tenant.auth
    # An empty upload in one request: complete at once.
    status, h, body = curl(server, auth, "PUT", f"/_chuan/resumable/{ctx.bucket}/empty.bin",
                           {**DRAFT, "Upload-Complete": "?1"}, b"")
    assert status == 201 and h["upload-complete"] == "?1" and h["upload-offset"] == "0", body
    assert ctx.s3.get_object(Bucket=ctx.bucket, Key="empty.bin")["Body"].read() == b""
    # Re-sending the last, empty append of a finished upload is answered with the final answer.
    status, h, _ = curl(server, auth, "PUT", f"/_chuan/resumable/{ctx.bucket}/done.bin",
                        {**DRAFT, "Upload-Complete": "?1"}, b"abc")
    url = h["location"]
    append = {**DRAFT, "Content-Type": "application/partial-upload", "Upload-Offset": "3", "Upload-Complete": "?1"}
    status, h, _ = curl(server, auth, "PATCH", url, append, b"")
    assert status == 200 and h["upload-complete"] == "?1", h
    # A tus final upload takes no PATCH at all, not even an empty one (tus 1.0: 403).
    parts = []
    for i in range(2):
        r = ctx.tus.create(2, ctx.meta(f"part{i}"), headers={"Upload-Concat": "partial"})
        parts.append(ctx.tus.location(r))
        ctx.tus.patch_ok(parts[-1], 0, b"xy")
    r = ctx.tus.create(None, ctx.meta("final.bin"), headers={"Upload-Concat": "final;" + " ".join(parts)})
    assert r.status_code == 201, r.text
    final = ctx.tus.location(r)
    assert ctx.tus.patch(final, 4, b"").status_code == 403
    assert ctx.tus.patch(final, 4, b"z").status_code == 403
