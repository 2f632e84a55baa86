"""Shared helpers for the Chuan S3 protocol compatibility suite.

Everything here is plain Python (boto3, requests, subprocess); the pytest
fixtures that use it live in conftest.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import pg_scratch
import s3_scratch

KiB = 1024
MiB = 1024 * KiB

REGION = "us-east-1"
# Fixed test credentials. The secret deliberately contains '/' and '+', as real
# AWS secrets do, so signing code that mishandles them is caught.
ACCESS_KEY = "CHUANTESTACCESSKEY01"
SECRET_KEY = "chuan/test+secret/0123456789abcdefghijkl"

REPO_ROOT = Path(__file__).resolve().parents[2]

HEALTH_PATH = "/_chuan/health"
METRICS_PATH = "/_chuan/metrics"
STATS_PATH = "/_chuan/admin/stats"
GC_PATH = "/_chuan/admin/gc"

_BOTO_SESSION = boto3.session.Session()


# --------------------------------------------------------------------------
# locations of the things under test


def stores_env(data_dir: Path) -> dict:
    """The environment a `chuan` of `data_dir` needs for this run's stores: the metadata in
    PostgreSQL (CHUAN_TEST_META=postgres) and the blobs in S3 (CHUAN_TEST_BLOBS=s3), or
    nothing for the embedded defaults."""
    return {**pg_scratch.meta_env(data_dir), **s3_scratch.blobs_env(data_dir)}


def chuan_bin() -> Path:
    return Path(os.environ.get("CHUAN_BIN", REPO_ROOT / "target" / "release" / "chuan"))


def aws_cli() -> Path:
    return Path(os.environ.get("CHUAN_AWS_CLI", REPO_ROOT / ".venv" / "bin" / "aws"))


# --------------------------------------------------------------------------
# small data helpers


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`, return their sha256 hex."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MiB))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def quoted_etag(hexdigest: str) -> str:
    return f'"{hexdigest}"'


def multipart_etag(parts: list[bytes]) -> str:
    """S3 multipart ETag: md5 of the concatenated binary part md5s, '-N'."""
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def multipart_etag_of_file(path: Path, part_size: int) -> str:
    digests = []
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(part_size), b""):
            digests.append(hashlib.md5(chunk).digest())
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def checksum_b64(algorithm: str, data: bytes) -> str:
    """Independent computation of the S3 x-amz-checksum-* value."""
    alg = algorithm.upper()
    if alg == "CRC32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif alg == "CRC32C":
        from awscrt import checksums

        raw = checksums.crc32c(data).to_bytes(4, "big")
    elif alg == "CRC64NVME":
        from awscrt import checksums

        raw = checksums.crc64nvme(data).to_bytes(8, "big")
    elif alg == "SHA1":
        raw = hashlib.sha1(data).digest()
    elif alg == "SHA256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


def recv_all(sock) -> bytes:
    """Everything a socket delivers until the peer closes it (or resets it, or it times out)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return out
        if not chunk:
            return out
        out += chunk


def unique_name(prefix: str = "t") -> str:
    """A fresh, valid bucket name."""
    return f"{prefix}-{secrets.token_hex(6)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# S3 error helpers


def s3_error_code(body: bytes | str) -> str | None:
    """Return <Code> of an S3 XML error document, or None if unparsable."""
    if isinstance(body, str):
        body = body.encode()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.split("}")[-1] == "Code":
            return (el.text or "").strip()
    return None


def client_error(exc: ClientError) -> tuple[int, str]:
    return (
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        exc.response.get("Error", {}).get("Code"),
    )


@contextlib.contextmanager
def expect_s3_error(status: int, code: str | None = None):
    """Assert that the block raises a botocore ClientError with this HTTP
    status and (if given) this S3 error code."""
    with pytest.raises(ClientError) as info:
        yield info
    got_status, got_code = client_error(info.value)
    assert got_status == status, (
        f"expected HTTP {status} {code or ''}, got HTTP {got_status} {got_code}: "
        f"{info.value.response.get('Error')}"
    )
    if code is not None:
        assert got_code == code, (
            f"expected error code {code}, got {got_code} (HTTP {got_status}): "
            f"{info.value.response.get('Error')}"
        )


def assert_no_object(s3, bucket: str, key: str) -> None:
    with expect_s3_error(404):
        s3.head_object(Bucket=bucket, Key=key)


def list_all_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    token = None
    while True:
        kw = dict(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        keys.extend(o["Key"] for o in resp.get("Contents", []))
        if not resp.get("IsTruncated"):
            return keys
        token = resp["NextContinuationToken"]


def get_body(s3, bucket: str, key: str, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def snapshot_tree(root: Path, exclude: Path | None = None) -> dict[str, tuple[int, int]]:
    """Map every file/dir under root (except `exclude`) to (size, mtime_ns)."""
    out: dict[str, tuple[int, int]] = {}
    exclude = exclude.resolve() if exclude else None
    for dirpath, dirnames, filenames in os.walk(root):
        dp = Path(dirpath)
        if exclude is not None:
            dirnames[:] = [d for d in dirnames if (dp / d).resolve() != exclude]
        for name in dirnames + filenames:
            p = dp / name
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


# --------------------------------------------------------------------------
# botocore tweaks used by the checksum tests


def force_trailer_checksums(client) -> None:
    """Make botocore send flexible checksums as an aws-chunked trailer
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER), exactly as it does by default over
    HTTPS. Over plain http botocore would otherwise put the checksum in a
    header, so without this the trailer code path of the server is never hit.
    """

    def to_trailer(params, **_):
        alg = params.get("context", {}).get("checksum", {}).get("request_algorithm")
        if isinstance(alg, dict) and alg.get("in") == "header":
            alg["in"] = "trailer"

    for op in ("PutObject", "UploadPart"):
        client.meta.events.register(f"before-call.s3.{op}", to_trailer)


def record_sent_headers(client, operation: str) -> list[dict[str, str]]:
    """Return a list that receives the (lower-cased) headers of every request
    of `operation` sent by `client`."""
    sent: list[dict[str, str]] = []

    def rec(request, **_):
        sent.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
        )

    client.meta.events.register(f"before-send.s3.{operation}", rec)
    return sent


class _ForcedPayloadSigner(S3SigV4Auth):
    def __init__(self, creds, service, region, payload_hash):
        super().__init__(creds, service, region)
        self._forced = payload_hash

    def payload(self, request):
        if self._forced is not None:
            return self._forced
        return super().payload(request)


# --------------------------------------------------------------------------
# the server process


class ServerStartError(RuntimeError):
    pass


class ChuanServer:
    """One `chuan serve` process on a loopback port with its own data dir."""

    def __init__(self, data_dir: Path, work_dir: Path, name: str = "chuan", env: dict | None = None):
        self.data_dir = Path(data_dir)
        self.extra_env = dict(env or {})
        self.work_dir = Path(work_dir)
        self.name = name
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path = self.work_dir / f"{name}.log"
        self.aws_config_path = self.work_dir / f"{name}-aws-config"
        self.aws_config_path.write_text(
            "[default]\n"
            f"region = {REGION}\n"
            "s3 =\n"
            "    addressing_style = path\n"
        )

    # ---- process control -------------------------------------------------

    @property
    def endpoint(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    def log_tail(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log>"
        return text[-limit:]

    def start(self, timeout: float = 20.0) -> None:
        binary = chuan_bin()
        if not binary.is_file():
            raise ServerStartError(
                f"chuan binary not found at {binary}; build it with "
                "`cargo build --release` or point CHUAN_BIN at it"
            )
        assert not self.running, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            CHUAN_ACCESS_KEY=self.access_key,
            CHUAN_SECRET_KEY=self.secret_key,
            RUST_BACKTRACE="1",
            # The tests' callback receivers listen on 127.0.0.1 (test_upyun_notify.py checks
            # the default, public addresses only, with a server started without this).
            CHUAN_CALLBACK_ALLOW_PRIVATE="true",
        )
        env.update(stores_env(self.data_dir))
        env.update(self.extra_env)
        last_error = ""
        for _attempt in range(3):
            port = free_port()
            with open(self.log_path, "ab") as log:
                log.write(f"\n===== start on port {port} =====\n".encode())
                log.flush()
                proc = subprocess.Popen(
                    [
                        str(binary),
                        "serve",
                        "--data",
                        str(self.data_dir),
                        "--listen",
                        f"127.0.0.1:{port}",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = requests.get(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=1)
                    if r.status_code == 200:
                        self.proc, self.port = proc, port
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                raise ServerStartError(
                    f"{self.name}: GET {HEALTH_PATH} did not return 200 within "
                    f"{timeout}s\n--- server log ---\n{self.log_tail()}"
                )
            last_error = f"exited with code {proc.returncode}"
            if "in use" not in self.log_tail(2000).lower():
                break  # not a port race: do not retry
        raise ServerStartError(
            f"{self.name}: server {last_error} during startup\n"
            f"--- server log ---\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to `timeout` s, return the exit code. A server that
        does not exit in time is SIGKILLed and an AssertionError raised."""
        assert self.proc is not None, "not running"
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"{self.name}: did not exit within {timeout}s of SIGTERM\n"
                f"--- server log ---\n{self.log_tail()}"
            )

    def stop_expect_clean_exit(self) -> None:
        rc = self.stop()
        assert rc == 0, (
            f"{self.name}: exit code {rc} after SIGTERM (expected 0)\n"
            f"--- server log ---\n{self.log_tail()}"
        )

    def kill9(self) -> None:
        assert self.proc is not None, "not running"
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()

    def restart(self) -> None:
        self.stop_expect_clean_exit()
        self.start()

    # ---- clients ---------------------------------------------------------

    def client(self, access_key: str | None = None, secret_key: str | None = None, **config):
        cfg = dict(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
        )
        cfg.update(config)
        return _BOTO_SESSION.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(**cfg),
        )

    def aws_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION=self.region,
            AWS_CONFIG_FILE=str(self.aws_config_path),
            AWS_SHARED_CREDENTIALS_FILE=str(self.work_dir / "no-such-credentials-file"),
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def aws(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run the venv's aws CLI against this server."""
        cli = aws_cli()
        assert cli.is_file(), f"aws CLI not found at {cli}: run scripts/setup-venv.sh"
        cmd = [str(cli), *args, "--endpoint-url", self.endpoint]
        res = subprocess.run(
            cmd, env=self.aws_env(), capture_output=True, text=True, timeout=timeout
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"`aws {' '.join(args)}` exited {res.returncode}\n"
                f"stdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
            )
        return res

    # ---- admin / maintenance --------------------------------------------

    def admin_stats(self) -> dict:
        r = requests.get(self.endpoint + STATS_PATH, auth=(self.access_key, self.secret_key), timeout=30)
        assert r.status_code == 200, f"GET {STATS_PATH}: HTTP {r.status_code} {r.text[:500]}"
        stats = r.json()
        for field in ("logical_bytes", "physical_bytes", "objects", "blobs"):
            assert field in stats, f"admin stats lack {field!r}: {stats}"
        return stats

    def admin_gc(self, grace_secs: int = 0) -> dict:
        r = requests.post(
            f"{self.endpoint}{GC_PATH}?grace_secs={grace_secs}",
            auth=(self.access_key, self.secret_key),
            timeout=120,
        )
        assert r.status_code == 200, f"POST {GC_PATH}: HTTP {r.status_code} {r.text[:500]}"
        return r.json()

    def fsck(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(chuan_bin()), "fsck", "--data", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, **stores_env(self.data_dir)},
        )

    def assert_fsck_clean(self) -> None:
        res = self.fsck()
        out = res.stdout + res.stderr
        assert res.returncode == 0, f"fsck exited {res.returncode}:\n{out[-4000:]}"
        assert re.search(r"\bclean\b", res.stdout, re.IGNORECASE), (
            f"fsck exited 0 but printed no line containing 'clean':\n{out[-4000:]}"
        )

    def tmp_entries(self) -> list[str]:
        if not self.tmp_dir.exists():
            return []
        return sorted(str(p.relative_to(self.tmp_dir)) for p in self.tmp_dir.rglob("*"))

    # ---- raw signed requests --------------------------------------------

    def signed_request(
        self,
        method: str,
        bucket: str,
        key: str | None = None,
        params: dict | None = None,
        headers: dict | None = None,
        body: bytes = b"",
        payload_hash: str | None = None,
        timeout: float = 60,
    ) -> requests.Response:
        """Send an arbitrary SigV4-signed request (path style) with `requests`.

        `payload_hash` overrides the signed x-amz-content-sha256 value."""
        path = "/" + quote(bucket, safe="")
        if key is not None:
            path += "/" + quote(key, safe="/~")
        req = AWSRequest(
            method=method,
            url=self.endpoint + path,
            params=params or {},
            data=body,
            headers=headers or {},
        )
        creds = Credentials(self.access_key, self.secret_key)
        _ForcedPayloadSigner(creds, "s3", self.region, payload_hash).add_auth(req)
        prepared = req.prepare()
        return requests.request(
            method,
            prepared.url,
            headers=dict(prepared.headers.items()),
            data=body,
            timeout=timeout,
        )


def virtual_host_client(server):
    """A boto3 S3 client of the root key that addresses buckets as `<bucket>.localhost:<port>`
    (SigV4); requests to such URLs need the name resolved to loopback (curl `--resolve`)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://localhost:{server.port}",
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )
