"""Fixtures for the Chuan S3 protocol compatibility suite.

Run with:  scripts/setup-venv.sh && .venv/bin/pytest tests/compat -q

The server binary is taken from $CHUAN_BIN, default <repo>/target/release/chuan.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep the host's AWS configuration (profiles, endpoint overrides, checksum
# settings, IMDS lookups) out of the in-process boto3 clients. Must happen
# before any boto3 client is created.
for _var in [v for v in os.environ if v.startswith("AWS_")]:
    del os.environ[_var]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from compat_helpers import ChuanServer, unique_name  # noqa: E402

_LOG_TAIL = 3000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the log of every server the test used to failures."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    servers = []
    if "server" in item.fixturenames and "server" in getattr(item, "funcargs", {}):
        servers.append(item.funcargs["server"])
    servers.extend(getattr(item, "_chuan_servers", []))
    for srv in servers:
        report.sections.append((f"chuan log: {srv.name} (tail)", srv.log_tail(_LOG_TAIL)))


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The shared server: fresh data dir, fixed credentials, loopback port.

    Stopped with SIGTERM at the end of the session; it must exit 0 within 10 s.
    """
    work = tmp_path_factory.mktemp("chuan-session")
    srv = ChuanServer(data_dir=work / "data", work_dir=work, name="session")
    srv.start()
    yield srv
    srv.stop_expect_clean_exit()


@pytest.fixture
def s3(server):
    """A boto3 S3 client for the shared server (default checksum settings)."""
    return server.client()


@pytest.fixture
def bucket(s3):
    """A new, empty bucket on the shared server."""
    name = unique_name("b")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def server_factory(request, tmp_path):
    """Start separate server instances (for crash/restart/stats tests).

    `server_factory(data_dir=None, name="fresh", env=None)` starts one (with `env`
    added to its environment: limits, lifetimes) and returns its
    ChuanServer. Every instance still running at the end of the test is
    stopped with SIGTERM and must exit 0 within 10 s.
    """
    created: list[ChuanServer] = []
    request.node._chuan_servers = created

    def make(data_dir: Path | None = None, name: str = "fresh", env: dict | None = None) -> ChuanServer:
        name = f"{name}{len(created)}"
        srv = ChuanServer(
            data_dir=Path(data_dir) if data_dir else tmp_path / f"{name}-data",
            work_dir=tmp_path,
            name=name,
            env=env,
        )
        created.append(srv)
        srv.start()
        return srv

    yield make

    problems = []
    for srv in created:
        if srv.proc is None:
            continue
        try:
            rc = srv.stop()
        except AssertionError as e:
            problems.append(str(e))
            continue
        if rc != 0:
            problems.append(
                f"{srv.name}: exit code {rc} after SIGTERM (expected 0)\n{srv.log_tail()}"
            )
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def fresh_server(server_factory):
    """One separate server instance with its own empty data dir."""
    return server_factory()
