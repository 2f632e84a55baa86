"""A throwaway PostgreSQL server for running the suite on the PostgreSQL metadata store.

With CHUAN_TEST_META=postgres every `chuan` the suite starts (servers, fsck, admin commands)
gets CHUAN_META pointing at a database of its own data directory (the same directory gives
the same database, so restarts and offline commands see the server's metadata). The server
is Debian's PostgreSQL (scripts/test.sh installs it), started once per test session in a
temporary directory and stopped when the session ends.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_server: dict | None = None


def enabled() -> bool:
    return os.environ.get("CHUAN_TEST_META", "sqlite") == "postgres"


def _bin_dir() -> Path:
    if os.environ.get("CHUAN_PG_BIN"):
        return Path(os.environ["CHUAN_PG_BIN"])
    root = Path("/usr/lib/postgresql")
    dirs = sorted(
        (p / "bin" for p in root.iterdir() if (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    ) if root.exists() else []
    if not dirs:
        raise RuntimeError("PostgreSQL's server programs are not installed: apt-get install postgresql")
    return dirs[-1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _psql(port: int, sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "chuan", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
         "-q", "-c", sql],
        check=True, capture_output=True, timeout=30,
    )


def _start() -> dict:
    bin_dir = _bin_dir()
    work = Path(tempfile.mkdtemp(prefix="chuan-compat-pg-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    data = work / "data"
    subprocess.run(
        _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "chuan", "-E", "UTF8",
                         "--locale=C.UTF-8", "--no-sync"]),
        check=True, capture_output=True, timeout=120,
    )
    port = _free_port()
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen(
        _as_server_user([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(work),
                         "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=1000"]),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            _psql(port, "SELECT 1")
            break
        except subprocess.CalledProcessError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def stop() -> None:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=60)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    atexit.register(stop)
    return {"port": port, "databases": set()}


def meta_env(data_dir: Path) -> dict:
    """`{"CHUAN_META": url}` for the database of `data_dir`, or `{}` on SQLite runs."""
    global _server
    if not enabled():
        return {}
    if _server is None:
        _server = _start()
    name = "d" + hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    if name not in _server["databases"]:
        _psql(_server["port"], f"CREATE DATABASE {name}")
        _server["databases"].add(name)
    return {"CHUAN_META": f"postgres://chuan@127.0.0.1:{_server['port']}/{name}"}
