"""tus 1.0.0 (/_chuan/tus/) with the real tus-js-client 4.3.1 under Node.js.

tests/compat/tusjs/upload.mjs runs one tus.Upload from a JSON description
and prints what happened (status, upload URL, every request with the tus
headers sent and received); scripts/setup-venv.sh installs the client with
`npm ci` from tests/compat/tusjs/package-lock.json. Contract: see
test_tus.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from compat_helpers import KiB, MiB, assert_no_object, get_body, md5_hex
from tus_helpers import OCTET_OFFSET, TUS_VERSION, expect, tus_ctx, wait_offset

TUSJS = Path(__file__).resolve().parent / "tusjs"
SCRIPT = TUSJS / "upload.mjs"
TUSJS_VERSION = "4.3.1"


@pytest.fixture(scope="module")
def node() -> str:
    exe = shutil.which("node")
    assert exe, "node is not installed: run scripts/setup-venv.sh"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 18, f"tus-js-client {TUSJS_VERSION} needs Node.js >= 18: {version}"
    pkg = TUSJS / "node_modules" / "tus-js-client" / "package.json"
    assert pkg.is_file(), f"{pkg} missing: run scripts/setup-venv.sh (npm ci in tests/compat/tusjs)"
    got = json.loads(pkg.read_text())["version"]
    assert got == TUSJS_VERSION, f"tus-js-client {got} installed, expected {TUSJS_VERSION}: run scripts/setup-venv.sh"
    return exe


@pytest.fixture
def ctx(server):
    return tus_ctx(server)


def run_tusjs(node: str, c, file: Path, timeout: float = 240, **cfg) -> dict:
    spec = {
        "endpoint": c.tus.base,
        "accessKey": c.tenant.access_key,
        "secretKey": c.tenant.secret_key,
        "file": str(file),
        "timeoutMs": int((timeout - 20) * 1000),
        **cfg,
    }
    res = subprocess.run([node, str(SCRIPT)], input=json.dumps(spec), capture_output=True, text=True,
                         timeout=timeout, cwd=TUSJS)
    assert res.returncode == 0, f"upload.mjs exited {res.returncode}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"upload.mjs printed no result\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
    out = json.loads(lines[-1])
    out["stderr"] = res.stderr
    return out


def summary(out: dict) -> str:
    reqs = [
        f"{r['method']} {r['url'].rsplit('/', 1)[-1][:12]} {r['headers']} -> {r['status']} {r['response']}"
        for r in out["requests"]
    ]
    return f"status={out['status']} error={out['error']!r}\n  " + "\n  ".join(reqs)


def assert_success(out: dict) -> None:
    assert out["status"] == "success", f"tus-js-client did not succeed: {summary(out)}"
    for r in out["requests"]:
        assert r["headers"].get("Tus-Resumable") == TUS_VERSION, r
        if r["status"] is not None:
            assert (r["response"] or {}).get("Tus-Resumable") == TUS_VERSION, f"answer without Tus-Resumable: {r}"


def of(out: dict, method: str) -> list[dict]:
    return [r for r in out["requests"] if r["method"] == method]


def write(tmp_path: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    p = tmp_path / name
    p.write_bytes(data)
    return p, data


def assert_object(c, key: str, data: bytes, content_type: str | None = None, md5_etag: bool = False) -> dict:
    head = c.s3.head_object(Bucket=c.bucket, Key=key)
    assert head["ContentLength"] == len(data), f"{key}: {head['ContentLength']} B, expected {len(data)}"
    if content_type:
        assert head["ContentType"] == content_type, head["ContentType"]
    if md5_etag:
        assert head["ETag"] == f'"{md5_hex(data)}"', head["ETag"]
    assert get_body(c.s3, c.bucket, key) == data, f"{key}: stored bytes differ"
    return head


# --------------------------------------------------------------------------


def test_default_upload(node, ctx, tmp_path):
    f, data = write(tmp_path, "default.bin", 2 * MiB + 5)
    meta = {"bucket": ctx.bucket, "key": "js/default.bin", "filetype": "image/jpeg", "project": "chuan",
            "filename": "default.bin"}
    out = run_tusjs(node, ctx, f, metadata=meta)
    assert_success(out)
    posts, patches = of(out, "POST"), of(out, "PATCH")
    assert len(posts) == 1 and posts[0]["status"] == 201, summary(out)
    assert "Upload-Length" in posts[0]["headers"] and posts[0]["headers"]["Upload-Length"] == str(len(data))
    assert len(patches) == 1 and patches[0]["status"] == 204, summary(out)
    assert patches[0]["headers"]["Upload-Offset"] == "0"
    assert patches[0]["headers"]["Content-Type"] == OCTET_OFFSET
    assert patches[0]["response"]["Upload-Offset"] == str(len(data)), summary(out)
    assert out["url"].startswith(ctx.tus.base), out["url"]
    head = assert_object(ctx, "js/default.bin", data, "image/jpeg")
    assert head["Metadata"].get("project") == "chuan", head["Metadata"]
    r = expect(ctx.tus.head(out["url"]), 200, "HEAD after tus-js-client finished")
    assert r.headers["Upload-Offset"] == r.headers["Upload-Length"] == str(len(data))
    assert r.headers.get("Upload-Metadata") == posts[0]["headers"]["Upload-Metadata"]


def test_chunk_size(node, ctx, tmp_path):
    chunk = 256 * KiB
    f, data = write(tmp_path, "chunks.bin", 4 * chunk + 100)
    out = run_tusjs(node, ctx, f, metadata=ctx.meta("js/chunks.bin"), chunkSize=chunk)
    assert_success(out)
    patches = of(out, "PATCH")
    assert [p["headers"]["Upload-Offset"] for p in patches] == [str(i * chunk) for i in range(5)], summary(out)
    assert all(p["status"] == 204 for p in patches), summary(out)
    assert out["chunks"] == 5
    assert_object(ctx, "js/chunks.bin", data)


def test_upload_data_during_creation(node, ctx, tmp_path):
    f, data = write(tmp_path, "cwu.bin", 700 * KiB + 1)
    out = run_tusjs(node, ctx, f, metadata=ctx.meta("js/cwu-whole.bin"), uploadDataDuringCreation=True)
    assert_success(out)
    posts = of(out, "POST")
    assert len(posts) == 1 and posts[0]["headers"].get("Content-Type") == OCTET_OFFSET, summary(out)
    assert posts[0]["response"].get("Upload-Offset") == str(len(data)), summary(out)
    assert of(out, "PATCH") == [], f"everything went with the POST, yet: {summary(out)}"
    assert_object(ctx, "js/cwu-whole.bin", data)

    chunk = 300 * KiB
    out = run_tusjs(node, ctx, f, metadata=ctx.meta("js/cwu-chunked.bin"), uploadDataDuringCreation=True,
                    chunkSize=chunk)
    assert_success(out)
    posts, patches = of(out, "POST"), of(out, "PATCH")
    assert posts[0]["response"].get("Upload-Offset") == str(chunk), summary(out)
    assert [p["headers"]["Upload-Offset"] for p in patches] == [str(chunk), str(2 * chunk)], summary(out)
    assert_object(ctx, "js/cwu-chunked.bin", data)


def test_deferred_length_stream(node, ctx, tmp_path):
    # Not a multiple of chunkSize: tus-js-client 4.3.1 itself hangs after the last chunk of a
    # stream whose length is an exact multiple of chunkSize (tus/tus-js-client#779).
    size = 3 * 200 * KiB + 4321
    f, data = write(tmp_path, "stream.bin", size)
    key = f"js/stream-{size}.bin"
    out = run_tusjs(node, ctx, f, input="stream", metadata=ctx.meta(key, filetype="text/plain"),
                    uploadLengthDeferred=True, chunkSize=200 * KiB)
    assert_success(out)
    post = of(out, "POST")[0]
    assert post["headers"].get("Upload-Defer-Length") == "1" and "Upload-Length" not in post["headers"], summary(out)
    with_length = [p for p in of(out, "PATCH") if "Upload-Length" in p["headers"]]
    assert len(with_length) == 1 and with_length[0]["headers"]["Upload-Length"] == str(size), summary(out)
    assert of(out, "PATCH")[-1]["response"]["Upload-Offset"] == str(size), summary(out)
    assert_object(ctx, key, data, "text/plain")


def test_parallel_uploads(node, ctx, tmp_path):
    f, data = write(tmp_path, "parallel.bin", 3 * MiB + 1)
    out = run_tusjs(node, ctx, f, parallelUploads=3,
                    metadata=ctx.meta("js/parallel.bin", filetype="application/zip"),
                    metadataForPartialUploads=ctx.meta("js/parallel.part"))
    assert_success(out)
    posts = of(out, "POST")
    partials = [p for p in posts if p["headers"].get("Upload-Concat") == "partial"]
    finals = [p for p in posts if p["headers"].get("Upload-Concat", "").startswith("final;")]
    assert len(partials) == 3 and all(p["status"] == 201 for p in partials), summary(out)
    assert len(finals) == 1 and finals[0]["status"] == 201, summary(out)
    assert len(finals[0]["headers"]["Upload-Concat"][len("final;"):].split(" ")) == 3
    assert_object(ctx, "js/parallel.bin", data, "application/zip")
    r = expect(ctx.tus.head(out["url"]), 200, "HEAD of the final upload")
    assert r.headers.get("Upload-Offset") == r.headers.get("Upload-Length") == str(len(data)), r.headers


def test_abort_between_chunks_then_resume(node, ctx, tmp_path):
    chunk = 512 * KiB
    f, data = write(tmp_path, "resume.bin", 5 * chunk + 77)
    storage = tmp_path / "tus-urls.json"
    meta = ctx.meta("js/resumed.bin")
    out = run_tusjs(node, ctx, f, metadata=meta, chunkSize=chunk, urlStorage=str(storage),
                    abort={"afterChunks": 3})
    assert out["status"] == "aborted", summary(out)
    url = out["url"]
    assert ctx.tus.offset(url) == 3 * chunk
    assert_no_object(ctx.s3, ctx.bucket, "js/resumed.bin")

    out = run_tusjs(node, ctx, f, metadata=meta, chunkSize=chunk, urlStorage=str(storage), resume=True)
    assert_success(out)
    assert out["resumed"] is True and out["url"] == url, summary(out)
    assert out["requests"][0]["method"] == "HEAD", summary(out)
    assert of(out, "POST") == [], f"the resumed upload created another one: {summary(out)}"
    assert of(out, "PATCH")[0]["headers"]["Upload-Offset"] == str(3 * chunk), summary(out)
    assert_object(ctx, "js/resumed.bin", data)


def test_abort_mid_request_keeps_the_prefix(node, ctx, tmp_path):
    f, data = write(tmp_path, "midway.bin", 48 * MiB)
    storage = tmp_path / "tus-urls.json"
    meta = ctx.meta("js/midway.bin")
    out = run_tusjs(node, ctx, f, metadata=meta, urlStorage=str(storage),
                    abort={"afterBytes": 1, "delayMs": 40})
    if out["status"] == "success":
        pytest.skip("the 48 MiB PATCH finished before abort() (machine too fast for this race)")
    assert out["status"] == "aborted", summary(out)
    url = out["url"]
    kept = wait_offset(ctx.tus, url, lambda o: o > 0)
    assert 0 < kept < len(data), f"after abort() mid-PATCH the offset is {kept} (expected the bytes that arrived)"
    assert_no_object(ctx.s3, ctx.bucket, "js/midway.bin")

    out = run_tusjs(node, ctx, f, metadata=meta, urlStorage=str(storage), resume=True)
    assert_success(out)
    assert out["resumed"] is True and out["url"] == url, summary(out)
    assert of(out, "PATCH")[0]["headers"]["Upload-Offset"] == str(kept), summary(out)
    assert_object(ctx, "js/midway.bin", data)


def test_abort_and_terminate(node, ctx, tmp_path):
    chunk = 256 * KiB
    f, data = write(tmp_path, "terminate.bin", 4 * chunk)
    out = run_tusjs(node, ctx, f, metadata=ctx.meta("js/terminated.bin"), chunkSize=chunk,
                    abort={"afterChunks": 1, "terminate": True})
    assert out["status"] == "aborted", summary(out)
    deletes = of(out, "DELETE")
    assert len(deletes) == 1 and deletes[0]["status"] == 204, summary(out)
    expect(ctx.tus.head(out["url"]), 404, "HEAD after abort(true)")
    assert_no_object(ctx.s3, ctx.bucket, "js/terminated.bin")


def _declared(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_instant_upload_by_declared_checksum(node, server, tmp_path):
    a, b = tus_ctx(server), tus_ctx(server)
    f, data = write(tmp_path, "instant.bin", 2 * MiB + 3)
    a.s3.put_object(Bucket=a.bucket, Key="orig.bin", Body=data)
    stats0 = server.admin_stats()

    # Tenant A holds the bytes: the creation completes the upload. tus-js-client's default
    # options (retries on) then find the upload complete (PATCH at 0 -> 409, HEAD -> done).
    out = run_tusjs(node, a, f, metadata=a.meta("js/instant.bin", checksum=_declared(data)),
                    retryDelays="default")
    assert_success(out)
    post = of(out, "POST")[0]
    assert post["status"] == 201 and post["response"].get("Upload-Offset") == str(len(data)), summary(out)
    assert not [p for p in of(out, "PATCH") if p["status"] == 204], f"bytes were accepted again: {summary(out)}"
    assert_object(a, "js/instant.bin", data)
    assert server.admin_stats()["physical_bytes"] == stats0["physical_bytes"]

    # Tenant B declares the same content: no shortcut, the bytes are really uploaded.
    out = run_tusjs(node, b, f, metadata=b.meta("js/not-instant.bin", checksum=_declared(data)))
    assert_success(out)
    post = of(out, "POST")[0]
    assert post["response"].get("Upload-Offset", "0") == "0", summary(out)
    patches = of(out, "PATCH")
    assert len(patches) == 1 and patches[0]["status"] == 204 and patches[0]["headers"]["Upload-Offset"] == "0", (
        summary(out)
    )
    assert_object(b, "js/not-instant.bin", data)


def test_empty_file(node, ctx, tmp_path):
    # tus-js-client sends only the POST (Upload-Length: 0) for an empty input and reports success.
    f, data = write(tmp_path, "empty.bin", 0)
    out = run_tusjs(node, ctx, f, metadata=ctx.meta("js/empty.bin"))
    assert_success(out)
    assert [r["method"] for r in out["requests"]] == ["POST"], summary(out)
    assert_object(ctx, "js/empty.bin", b"")


def test_upload_token_as_bearer(node, ctx, tmp_path):
    # The way a web page uploads without a key pair: its server issues an upload token
    # (POST /_chuan/v1/tokens, type "upload") and the page sends it as a Bearer token.
    r = requests.post(ctx.server.endpoint + "/_chuan/v1/tokens", auth=ctx.tenant.auth, timeout=30,
                      json={"type": "upload", "label": "page", "bucket": ctx.bucket, "prefix": "inbox/",
                            "ops": ["write"], "ttl_secs": 600})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    f, data = write(tmp_path, "page.bin", 300 * KiB + 3)
    out = run_tusjs(node, ctx, f, bearer=token, chunkSize=100 * KiB,
                    metadata={"bucket": ctx.bucket, "key": "inbox/page.bin"})
    assert_success(out)
    assert len(of(out, "PATCH")) == 4, summary(out)
    assert_object(ctx, "inbox/page.bin", data)
    # Held to its scope: outside its prefix it is refused, nothing stored.
    out = run_tusjs(node, ctx, f, bearer=token, metadata={"bucket": ctx.bucket, "key": "elsewhere/page.bin"})
    assert out["status"] == "error" and out["errorStatus"] == 403, summary(out)
    assert_no_object(ctx.s3, ctx.bucket, "elsewhere/page.bin")
