"""UpYun block upload `notify-url`: the merge result is POSTed (form-encoded, signed with the
bucket's form secret) to the URL the init policy named; a receiver that fails is retried with
back-off; queued callbacks survive a server restart. The server's back-off is shortened with
CHUAN_CALLBACK_BACKOFF_SCALE so retries happen within the test."""

import base64
import hashlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import requests

from adrive_helpers import env_server_factory  # noqa: F401  (fixture)
from compat_helpers import chuan_bin, free_port, unique_name

SCALE = {"CHUAN_CALLBACK_BACKOFF_SCALE": "0.002"}  # 5 s -> 10 ms, 30 s -> 60 ms, ...


def multi_signature(d: dict, secret: str) -> str:
    return hashlib.md5(("".join(k + str(d[k]) for k in sorted(d)) + secret).encode()).hexdigest()


def policy(d: dict) -> str:
    return base64.b64encode(json.dumps(d).encode()).decode()


class Receiver:
    """A local HTTP receiver that fails its first `fail` POSTs with 500."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.posts: list[dict] = []
        self.attempts = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                outer.attempts += 1
                if outer.attempts <= outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.posts.append({"content_type": self.headers.get("Content-Type"), "fields": dict(urllib.parse.parse_qsl(body))})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def wait(self, n: int = 1, timeout: float = 15.0) -> None:
        end = time.time() + timeout
        while len(self.posts) < n and time.time() < end:
            time.sleep(0.05)
        assert len(self.posts) >= n, f"{len(self.posts)} callbacks after {timeout}s (attempts {self.attempts})"

    def close(self):
        self.httpd.shutdown()


def setup(srv):
    name = unique_name("nt")
    r = requests.post(f"{srv.endpoint}/_chuan/admin/tenants", params={"name": name}, auth=(srv.access_key, srv.secret_key), timeout=30)
    assert r.status_code == 201, r.text
    keys = r.json()
    bucket = unique_name("ntb")
    srv.client(keys["access_key"], keys["secret_key"]).create_bucket(Bucket=bucket)
    r = requests.post(f"{srv.endpoint}/_chuan/admin/upyun/form-secrets", params={"tenant": name, "bucket": bucket},
                      auth=(srv.access_key, srv.secret_key), timeout=30)
    assert r.status_code == 201, r.text
    return bucket, r.json()["form_secret"], keys


def upload(srv, bucket: str, secret: str, path: str, data: bytes, **extra) -> requests.Response:
    url = f"{srv.endpoint}/{bucket}/"
    init = {"path": path, "expiration": int(time.time()) + 600, "file_blocks": 1,
            "file_hash": hashlib.md5(data).hexdigest(), "file_size": len(data), **extra}
    r = requests.post(url, data={"policy": policy(init), "signature": multi_signature(init, secret)}, timeout=30)
    assert r.status_code == 200, r.text
    ini = r.json()
    blk = {"save_token": ini["save_token"], "expiration": int(time.time()) + 600, "block_index": 0,
           "block_hash": hashlib.md5(data).hexdigest()}
    r = requests.post(url, data={"policy": policy(blk), "signature": multi_signature(blk, ini["token_secret"])},
                      files={"file": ("f", data)}, timeout=30)
    assert r.status_code == 200, r.text
    merge = {"save_token": ini["save_token"], "expiration": int(time.time()) + 600}
    return requests.post(url, data={"policy": policy(merge), "signature": multi_signature(merge, ini["token_secret"])},
                         allow_redirects=False, timeout=30)


def check_signed(fields: dict, secret: str, bucket: str, path: str, size: int) -> None:
    sig = fields.pop("signature")
    assert sig == multi_signature(fields, secret), f"callback signature does not verify: {fields}"
    assert fields["bucket_name"] == bucket and fields["path"] == path and int(fields["content_length"]) == size, fields


def test_notify_url_receives_the_signed_result(env_server_factory):  # noqa: F811
    srv = env_server_factory(env=SCALE, name="notify")
    rec = Receiver()
    try:
        bucket, secret, _ = setup(srv)
        data = os.urandom(70_000)
        r = upload(srv, bucket, secret, "/n/a.bin", data, **{"notify-url": rec.url, "ext-param": "order-42"})
        assert r.status_code == 200, r.text
        rec.wait(1)
        post = rec.posts[0]
        assert post["content_type"] == "application/x-www-form-urlencoded"
        fields = post["fields"]
        assert fields["ext-param"] == "order-42"
        check_signed(fields, secret, bucket, "/n/a.bin", len(data))
        time.sleep(0.5)
        assert len(rec.posts) == 1, "a delivered callback must not be sent again"
    finally:
        rec.close()


def test_a_failing_receiver_is_retried(env_server_factory):  # noqa: F811
    srv = env_server_factory(env=SCALE, name="notifyretry")
    rec = Receiver(fail=3)
    try:
        bucket, secret, _ = setup(srv)
        data = os.urandom(1000)
        assert upload(srv, bucket, secret, "/n/b.bin", data, **{"notify-url": rec.url}).status_code == 200
        rec.wait(1, timeout=20)
        assert rec.attempts == 4, f"3 failures then a success, got {rec.attempts} attempts"
        check_signed(rec.posts[0]["fields"], secret, bucket, "/n/b.bin", len(data))
    finally:
        rec.close()


def test_queued_callbacks_survive_a_restart(env_server_factory):  # noqa: F811
    srv = env_server_factory(env={"CHUAN_CALLBACK_BACKOFF_SCALE": "1"}, name="notifyrestart")
    port = free_port()
    url = f"http://127.0.0.1:{port}/notify"  # nothing listens yet: the first attempt fails
    bucket, secret, _ = setup(srv)
    data = os.urandom(5000)
    assert upload(srv, bucket, secret, "/n/c.bin", data, **{"notify-url": url}).status_code == 200
    time.sleep(1.0)  # the first attempt fails (connection refused); the retry is 5 s away
    srv.kill9()
    # Restarted with a short back-off, the queued callback is delivered once a receiver listens.
    srv.extra_env = {**srv.extra_env, **SCALE}
    srv.start()
    rec = Receiver()
    rec.port = port
    rec.httpd.server_close()
    rec.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), rec.httpd.RequestHandlerClass)
    threading.Thread(target=rec.httpd.serve_forever, daemon=True).start()
    try:
        rec.wait(1, timeout=20)
        check_signed(rec.posts[0]["fields"], secret, bucket, "/n/c.bin", len(data))
    finally:
        rec.close()


def test_notify_url_must_be_http_or_https(env_server_factory):  # noqa: F811
    srv = env_server_factory(env=SCALE, name="notifyscheme")
    bucket, secret, _ = setup(srv)
    data = b"x"
    bads = ("ftp://example.com/cb", "https:///cb", "http://h/a b", "https://h/" + "a" * 2100, "http://h:99999/",
            "http://h/\u4e2d")
    for name, bad in [(n, b) for n in ("notify-url", "return-url") for b in bads]:
        init = {"path": "/n/d.bin", "expiration": int(time.time()) + 600, "file_blocks": 1,
                "file_hash": hashlib.md5(data).hexdigest(), "file_size": 1, name: bad}
        r = requests.post(f"{srv.endpoint}/{bucket}/", data={"policy": policy(init), "signature": multi_signature(init, secret)}, timeout=30)
        assert r.status_code == 400 and r.json()["error_code"] == "40001", (name, bad, r.text)


def make_ca_and_leaf(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate it signed for 127.0.0.1 (openssl CLI): (ca, cert, key)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Chuan test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (tmp / "leaf.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                  "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    return tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"


def https_receiver(cert: Path, key: Path) -> Receiver:
    rec = Receiver()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    rec.httpd.socket = ctx.wrap_socket(rec.httpd.socket, server_side=True)
    return rec


def test_https_receivers_are_verified_against_the_trust_roots(env_server_factory, tmp_path):  # noqa: F811
    """An https:// notify-url is delivered when the receiver's certificate chains to a trusted
    CA (here a private one given with CHUAN_CALLBACK_CA_FILE), and never to a receiver the
    server cannot verify (the same receiver, a server without that CA)."""
    ca, cert, key = make_ca_and_leaf(tmp_path)
    rec = https_receiver(cert, key)
    url = f"https://127.0.0.1:{rec.port}/notify"
    try:
        trusting = env_server_factory(env={**SCALE, "CHUAN_CALLBACK_CA_FILE": str(ca)}, name="notifytls")
        bucket, secret, _ = setup(trusting)
        data = os.urandom(3000)
        assert upload(trusting, bucket, secret, "/n/tls.bin", data, **{"notify-url": url}).status_code == 200
        rec.wait(1, timeout=20)
        check_signed(rec.posts[0]["fields"], secret, bucket, "/n/tls.bin", len(data))

        untrusting = env_server_factory(env=SCALE, name="notifynotls")
        bucket, secret, _ = setup(untrusting)
        assert upload(untrusting, bucket, secret, "/n/no.bin", data, **{"notify-url": url}).status_code == 200
        # Each attempt fails verification and is retried (3 attempts take well under a second
        # at this back-off scale); none reaches the receiver.
        end = time.time() + 20
        while untrusting.log_tail(200_000).count("UnknownIssuer") < 3 and time.time() < end:
            time.sleep(0.1)
        log = untrusting.log_tail(200_000)
        assert log.count("invalid peer certificate: UnknownIssuer") >= 3, log[-3000:]
        assert len(rec.posts) == 1, "a receiver the server cannot verify must get no callback"
    finally:
        rec.close()


def test_an_unreadable_callback_ca_file_stops_the_start(tmp_path):
    """A CA file that does not exist or holds no certificate: the server refuses to start and
    names the option."""
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    for ca in (tmp_path / "missing.pem", empty):
        proc = subprocess.run([str(chuan_bin()), "serve", "--data", str(tmp_path / "d"), "--listen", f"127.0.0.1:{free_port()}"],
                              env={**os.environ, "CHUAN_CALLBACK_CA_FILE": str(ca)}, capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0
        assert "--callback-ca-file" in proc.stderr and str(ca) in proc.stderr, proc.stderr


def test_callbacks_reach_public_addresses_only_by_default(env_server_factory):  # noqa: F811
    """Callback URLs come from clients: by default the server delivers to public addresses
    only, so a notify-url cannot make it POST to its own network (an address in the URL, or a
    name that resolves to one). The upload itself is stored; the callback is refused at
    connect time and retried, never delivered. (Every other test server runs with
    CHUAN_CALLBACK_ALLOW_PRIVATE=true for its 127.0.0.1 receivers.)"""
    srv = env_server_factory(env={**SCALE, "CHUAN_CALLBACK_ALLOW_PRIVATE": "false"}, name="notifyssrf")
    rec = Receiver()
    try:
        bucket, secret, _ = setup(srv)
        for i, url in enumerate((rec.url, f"http://localhost:{rec.port}/notify")):
            assert upload(srv, bucket, secret, f"/n/s{i}.bin", b"x" * 10, **{"notify-url": url}).status_code == 200
        end = time.time() + 20
        log = ""
        while time.time() < end:
            log = srv.log_tail(200_000)
            if "is not a public address" in log and "resolves to non-public addresses only" in log:
                break
            time.sleep(0.1)
        assert "127.0.0.1 is not a public address" in log, log[-3000:]
        assert "localhost resolves to non-public addresses only" in log, log[-3000:]
        assert rec.attempts == 0, "nothing may reach a private address"
    finally:
        rec.close()
