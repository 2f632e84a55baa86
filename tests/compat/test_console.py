"""The web console (console/, served by the server at /_chuan/console/) end to end in Debian's
Chromium: tests/console/e2e.mjs (playwright-core) signs in with a tenant key pair, creates a
bucket, uploads a folder (the folder picker, and a folder dragged in through the browser's
native drag path), dropped files with tus, survives a network cut and two page reloads in the
middle of uploads (continued by itself from a copy kept in IndexedDB, and with copies off from
the "interrupted uploads" list), makes instant uploads (own content, and another tenant's content with
a proof of possession), shares, downloads, filters, sorts, pages, renames, moves, deletes,
uses the account page (usage, scoped tokens) and checks the 375 px layout and keyboard focus.

This test then checks the outcome with boto3 against the same server: every object the
console says it stored has the right bytes, every object it removed is gone, the scoped token
it created works within its scope only, and the token it revoked no longer works.

Screenshots stay in the test's tmp dir (path printed). Prerequisites (console/dist,
tests/console/node_modules, /usr/bin/chromium) come from scripts/setup-venv.sh; the test runs
tests/console/prepare.sh, which only builds what is missing or stale.

CHUAN_CONSOLE_VIA_DEV_SERVER=1 puts tests/console/dev-server.mjs (console/dist at
/_chuan/console/, everything else proxied to the server) in front of the server: for working
on the console with a server binary that does not embed it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from adrive_helpers import create_tenant

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = ROOT / "tests" / "console"
CHROMIUM = Path("/usr/bin/chromium")
CONSOLE_PATH = "/_chuan/console/"


def _prepare() -> None:
    missing = [what for what, ok in (("node", shutil.which("node")), (str(CHROMIUM), CHROMIUM.exists())) if not ok]
    assert not missing, f"missing {', '.join(missing)}: run scripts/setup-venv.sh"
    r = subprocess.run([str(E2E_DIR / "prepare.sh")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"tests/console/prepare.sh failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def _s3(server, ak: str, sk: str):
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class _DevServer:
    """tests/console/dev-server.mjs in front of `server` (CHUAN_CONSOLE_VIA_DEV_SERVER=1)."""

    def __init__(self, upstream: str, log: Path):
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            ["node", str(E2E_DIR / "dev-server.mjs"), "--upstream", upstream, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=ROOT,
        )
        line = self.proc.stdout.readline().decode()
        assert line, f"dev-server.mjs did not start (log: {log})"
        self.url = json.loads(line)["url"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def test_web_console_end_to_end(server_factory, tmp_path, capsys):
    _prepare()
    srv = server_factory(name="console")
    alice = create_tenant(srv)
    bob = create_tenant(srv)
    artifacts = tmp_path / "console-artifacts"
    artifacts.mkdir()
    with capsys.disabled():
        print(f"\n[test_console] screenshots and downloads: {artifacts}", file=sys.stderr)

    dev = None
    base = srv.endpoint
    if os.environ.get("CHUAN_CONSOLE_VIA_DEV_SERVER") == "1":
        dev = _DevServer(srv.endpoint, tmp_path / "dev-server.log")
        base = dev.url
    try:
        page = requests.get(base + CONSOLE_PATH, timeout=10)
        assert page.status_code == 200 and "<div id=\"app\">" in page.text, (
            f"GET {CONSOLE_PATH}: HTTP {page.status_code}: the server does not serve the web console "
            f"(console/dist) there yet. Body: {page.text[:300]!r}"
        )
        started = time.monotonic()
        r = subprocess.run(
            [
                "node",
                str(E2E_DIR / "e2e.mjs"),
                "--base", base,
                "--ak", alice.access_key, "--sk", alice.secret_key,
                "--ak2", bob.access_key, "--sk2", bob.secret_key,
                "--artifacts", str(artifacts),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=E2E_DIR,
        )
        elapsed = time.monotonic() - started
    finally:
        if dev:
            dev.stop()

    (artifacts / "e2e-stderr.log").write_text(r.stderr)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"e2e.mjs printed no result (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    result = json.loads(lines[-1])
    (artifacts / "result.json").write_text(json.dumps(result, indent=2))
    failed = [s for s in result["steps"] if not s["ok"]]
    summary = "\n".join(f"  {'ok ' if s['ok'] else 'FAIL'} {s['name']} ({s['ms']} ms)" for s in result["steps"])
    with capsys.disabled():
        print(f"[test_console] {len(result['steps'])} steps in {elapsed:.0f} s, Chromium {result.get('chromium')}:\n{summary}", file=sys.stderr)
    assert not failed, (
        "console e2e steps failed:\n"
        + "\n".join(f"- {s['name']}: {s['detail']}" for s in failed)
        + f"\nscreenshots: {artifacts}\n{r.stderr[-3000:]}"
    )
    pageerrors = [e for e in result["errors"] if e.startswith("pageerror")]
    assert not pageerrors, f"uncaught errors in the page: {pageerrors}"
    assert result["ok"] and r.returncode == 0, f"e2e.mjs exit {r.returncode}: {result['errors']}"

    # What the console did, checked independently with boto3 (root key pair sees every bucket).
    root = srv.client()
    present = result["expect"]["present"]
    assert len(present) >= 9, present
    for path, digest in present.items():
        bucket, key = path.split("/", 1)
        body = root.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, f"{path}: stored bytes differ from the file uploaded"
    for path in result["expect"]["absent"]:
        bucket, key = path.split("/", 1)
        with pytest.raises(ClientError) as e:
            root.head_object(Bucket=bucket, Key=key)
        assert _status(e.value) == 404, f"{path} should be gone, HEAD answered {_status(e.value)}"

    assert result["network"]["posts"] == 1 and result["network"]["resumed_at"] > 0, result["network"]
    assert result["instant"]["same_tenant"] == {"proof_required": False, "hit": True}, result["instant"]
    assert result["instant"]["other_tenant"]["proof_required"] is True, result["instant"]

    # The scoped token made in the console: read + list on <bucket>/album/ only, one day.
    tokens = result["tokens"]
    kept = _s3(srv, tokens["kept"]["access_key"], tokens["kept"]["secret"])
    listed = kept.list_objects_v2(Bucket=tokens["bucket"], Prefix=tokens["prefix"])
    assert listed.get("KeyCount", 0) > 0, listed
    kept.get_object(Bucket=tokens["bucket"], Key=tokens["prefix"] + "a.txt")["Body"].read()
    with pytest.raises(ClientError) as e:
        kept.put_object(Bucket=tokens["bucket"], Key=tokens["prefix"] + "nope.txt", Body=b"x")
    assert _status(e.value) == 403, "a read/list token could write"
    revoked = _s3(srv, tokens["revoked"]["access_key"], tokens["revoked"]["secret"])
    with pytest.raises(ClientError) as e:
        revoked.list_objects_v2(Bucket=tokens["bucket"], Prefix=tokens["prefix"])
    assert _status(e.value) == 403, "a revoked token still works"
