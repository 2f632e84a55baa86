"""`chuan admin` as README documents it: every command on a data directory (also while a
server runs on it), what a server then serves with what they issued, one
server per data directory, re-registration that never moves a credential to another tenant,
and start-up settings that do not parse stopping the start with the variable's name."""

import json
import os
import subprocess
import time

import pytest
import requests
import upyun

from compat_helpers import ChuanServer, chuan_bin, expect_s3_error, free_port, stores_env, unique_name


def admin(data, *args, check=True):
    env = {**os.environ, **stores_env(data)}
    env.pop("RUST_BACKTRACE", None)
    proc = subprocess.run([str(chuan_bin()), "admin", *args, "--data", str(data)], capture_output=True, text=True,
                          timeout=60, env=env)
    if check:
        assert proc.returncode == 0, f"chuan admin {' '.join(args)}: {proc.stderr}"
    return proc


@pytest.fixture
def served(tmp_path):
    srv = ChuanServer(data_dir=tmp_path / "data", work_dir=tmp_path, name="admincli")
    srv.start()
    yield srv
    if srv.running:
        srv.stop()


def test_every_admin_command_issues_what_the_server_serves(served):
    data = served.data_dir
    t = json.loads(admin(data, "create-tenant", "alice").stdout)
    assert {"tenant", "access_key", "secret_key", "cos_appid"} <= set(t), t
    s3 = served.client(t["access_key"], t["secret_key"])
    s3.create_bucket(Bucket="alice-photos")

    listed = admin(data, "list-credentials").stdout
    assert t["access_key"] in listed and t["secret_key"] not in listed, listed

    # An UpYun operator, issued by the CLI while the server runs, is served at once.
    admin(data, "upyun-operator", "alice", "alice-photos", "op1", "password123")
    up = upyun.UpYun("alice-photos", "op1", "password123", endpoint=f"127.0.0.1:{served.port}", timeout=30)
    up.put("/a.txt", b"hello")
    assert s3.get_object(Bucket="alice-photos", Key="a.txt")["Body"].read() == b"hello"

    secret = admin(data, "upyun-form-secret", "alice", "alice-photos").stdout.strip()
    assert len(secret) >= 16 and " " not in secret, secret

    dev = admin(data, "iot-device", "alice", "alice-photos", "PSN1", "DSN1").stdout
    assert dev.strip(), "iot-device prints the device secret"

    tok = admin(data, "adrive-token", "alice").stdout
    assert tok.strip(), "adrive-token prints a refresh token"

    appid = json.loads(admin(data, "cos-appid", "alice").stdout)
    assert appid == {"tenant": "alice", "cos_appid": t["cos_appid"]}, (appid, t)


def test_a_credential_never_moves_to_another_tenant(served):
    data = served.data_dir
    a = json.loads(admin(data, "create-tenant", "ann").stdout)
    b = json.loads(admin(data, "create-tenant", "bob").stdout)
    served.client(a["access_key"], a["secret_key"]).create_bucket(Bucket="ann-b")
    served.client(b["access_key"], b["secret_key"]).create_bucket(Bucket="bob-b")
    admin(data, "upyun-operator", "ann", "ann-b", "shared-op", "pw-one-123")
    # Re-issuing for the same tenant re-keys it; for another tenant it is refused.
    admin(data, "upyun-operator", "ann", "ann-b", "shared-op", "pw-two-456")
    moved = admin(data, "upyun-operator", "bob", "bob-b", "shared-op", "pw-bob-789", check=False)
    assert moved.returncode != 0
    assert "registered for tenant ann" in moved.stderr and "revoke" in moved.stderr, moved.stderr
    r = requests.post(f"{served.endpoint}/_chuan/admin/upyun/operators",
                      params={"tenant": "bob", "bucket": "bob-b", "operator": "shared-op", "password": "pw-bob-789"},
                      auth=(served.access_key, served.secret_key), timeout=30)
    assert r.status_code == 400 and "registered for tenant ann" in r.text, r.text
    # Revoked, the name is free for bob.
    r = requests.delete(f"{served.endpoint}/_chuan/admin/credentials", params={"access_key": "upyun:shared-op"},
                        auth=(served.access_key, served.secret_key), timeout=30)
    assert r.status_code == 200, r.text
    admin(data, "upyun-operator", "bob", "bob-b", "shared-op", "pw-bob-789")


def test_a_quota_set_by_the_cli_holds_in_the_running_server(served):
    data = served.data_dir
    t = json.loads(admin(data, "create-tenant", "carol").stdout)
    s3 = served.client(t["access_key"], t["secret_key"])
    s3.create_bucket(Bucket="carol-b")
    s3.put_object(Bucket="carol-b", Key="big", Body=b"x" * 5000)
    # The storage limit is read by each write transaction: it holds at once.
    assert json.loads(admin(data, "quota", "carol", "--storage-bytes", "6000").stdout)["storage_bytes"] == 6000
    with expect_s3_error(403, "QuotaExceeded"):
        s3.put_object(Bucket="carol-b", Key="more", Body=b"y" * 2000)
    s3.put_object(Bucket="carol-b", Key="small", Body=b"y" * 500)
    # A request allowance reaches the server's view at its next flush (every 2 s).
    assert json.loads(admin(data, "quota", "carol", "--requests", "3").stdout)["requests"] == 3
    time.sleep(2.5)
    for _ in range(3):
        s3.get_object(Bucket="carol-b", Key="big")["Body"].read()
    with expect_s3_error(403, "QuotaExceeded"):
        s3.get_object(Bucket="carol-b", Key="big")
    # The consumption is in the store, for the CLI and the server alike.
    served.stop()
    again = json.loads(admin(data, "quota", "carol", "--requests", "5").stdout)
    assert again["requests"] == 5 and again["used_requests"] == 0, again
    served.start()
    s3 = served.client(t["access_key"], t["secret_key"])
    s3.head_object(Bucket="carol-b", Key="big")


def test_one_server_per_data_directory(served):
    proc = subprocess.run([str(chuan_bin()), "serve", "--data", str(served.data_dir), "--listen", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "another `chuan serve` is running" in proc.stderr, proc.stderr
    assert requests.get(f"{served.endpoint}/_chuan/health", timeout=10).status_code == 200, "the first one keeps serving"


@pytest.mark.parametrize("name,value,flag", [
    ("CHUAN_UPLOAD_TTL_SECS_COS", "a day", "--upload-ttl-secs-cos"),
    ("CHUAN_UPLOAD_TTL_SECS_S3", "999999999999999", "--upload-ttl-secs-s3"),
    ("CHUAN_CHALLENGE_TTL_SECS", "0", "--challenge-ttl-secs"),
    ("CHUAN_IOT_TOKEN_TTL_SECS", "-5", "--iot-token-ttl-secs"),
    ("CHUAN_ADRIVE_URL_TTL_SECS", "1h", "--adrive-url-ttl-secs"),
    ("CHUAN_CALLBACK_BACKOFF_SCALE", "1e300", "--callback-backoff-scale"),
    ("CHUAN_CALLBACK_ALLOW_PRIVATE", "maybe", "--callback-allow-private"),
])
def test_a_setting_that_does_not_parse_stops_the_start(tmp_path, name, value, flag):
    env = {**os.environ, name: value}
    env.pop("RUST_BACKTRACE", None)
    proc = subprocess.run([str(chuan_bin()), "serve", "--data", str(tmp_path / "d"), "--listen", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert f"'{value}'" in proc.stderr and f"'{flag}" in proc.stderr, proc.stderr
    assert not (tmp_path / "d").exists(), "refused before the data directory is touched"


def test_settings_are_listed_in_serve_help():
    text = subprocess.run([str(chuan_bin()), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    for var in ("CHUAN_UPLOAD_TTL_SECS_UPYUN_BLOCK", "CHUAN_CHALLENGE_TTL_SECS", "CHUAN_IOT_TOKEN_TTL_SECS",
                "CHUAN_ADRIVE_URL_TTL_SECS", "CHUAN_CALLBACK_BACKOFF_SCALE", "CHUAN_COS_DOWNLOAD_DOMAIN",
                "CHUAN_CALLBACK_CA_FILE", "CHUAN_TRASH_RETENTION_SECS"):
        assert var in text, f"{var} missing from `chuan serve --help`"


def test_revoking_a_refresh_token_revokes_its_access_tokens(served):
    data = served.data_dir
    admin(data, "create-tenant", "dave")
    issued = json.loads(admin(data, "adrive-token", "dave").stdout)
    assert issued["credential_id"].startswith("adrive-refresh:"), issued

    def access_token():
        r = requests.post(served.endpoint + "/v2/account/token",
                          json={"refresh_token": issued["refresh_token"], "grant_type": "refresh_token"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def list_root(token):
        return requests.post(served.endpoint + "/adrive/v3/file/list",
                             json={"drive_id": issued["default_drive_id"], "parent_file_id": "root"},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)

    tokens = [access_token(), access_token()]
    assert all(list_root(t).status_code == 200 for t in tokens)
    r = requests.delete(f"{served.endpoint}/_chuan/admin/credentials", params={"access_key": issued["credential_id"]},
                        auth=(served.access_key, served.secret_key), timeout=30)
    assert r.status_code == 200, r.text
    for t in tokens:
        r = list_root(t)
        assert r.status_code == 401 and r.json()["code"] == "AccessTokenInvalid", r.text
    r = requests.post(served.endpoint + "/v2/account/token", json={"refresh_token": issued["refresh_token"],
                                                                    "grant_type": "refresh_token"}, timeout=30)
    assert r.status_code == 400, r.text


def test_a_refused_start_is_not_taken_for_a_crash(served, tmp_path):
    """A start refused for its settings (a missing CA file, half a root key pair) leaves the
    data directory as it was: the next start does not run a crash recovery."""
    data = served.data_dir
    served.stop()
    env = {**os.environ, "CHUAN_ACCESS_KEY": "ONLYTHEACCESSKEY0001"}
    env.pop("CHUAN_SECRET_KEY", None)
    env.pop("RUST_BACKTRACE", None)
    for extra, args in (({}, ["--callback-ca-file", str(tmp_path / "missing.pem")]), (env, [])):
        proc = subprocess.run([str(chuan_bin()), "serve", "--data", str(data), "--listen", f"127.0.0.1:{free_port()}", *args],
                              capture_output=True, text=True, timeout=30, env=extra or None)
        assert proc.returncode != 0, proc.stderr
    assert "set together or not at all" in proc.stderr, proc.stderr
    served.start()
    assert "recovered from an unclean shutdown" not in served.log_tail(100_000).split("===== start on port")[-1]
