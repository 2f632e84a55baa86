"""Aliyun Drive dialect, driven by the real aligo 6.2.8 SDK (redirected
in-process to the test server, see adrive_helpers.AliyunRedirect) and, where
the SDK cannot express a case, by raw JSON requests.

Contract summary (see the issue / /work/shared/specs/client-sdks.md §4):
* POST /_chuan/admin/adrive/refresh-tokens?tenant=T issues a refresh token;
  the tenant's default drive is its S3 bucket named default_drive_id, and a
  file at folder path a/b/name is the S3 object "a/b/name" (folders are keys
  ending in "/").
* aligo's login, createWithFolders (pre_hash -> PreHashMatched ->
  content_hash + proof_code -> rapid_upload), part PUTs to presigned
  upload_urls, complete, list (marker paging, next_marker "" at the end),
  get, get_by_path, get_download_url (Range), rename, trash, delete.
* /_chuan/metrics: chuan_adrive_part_puts_total, chuan_instant_hits_total.
* Never 429/502/504 (aligo sleeps), errors are JSON {code, message} 4xx.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from adrive_helpers import (  # noqa: F401  (env_server_factory, redirect, drive, ali are fixtures)
    ALIGO_CHUNK,
    INSTANT_HITS_METRIC,
    PART_PUTS_METRIC,
    AdriveRaw,
    AliyunRedirect,
    DriveTenant,
    aligo_token,
    ali,
    assert_adrive_error,
    crc64_xz,
    create_drive_tenant,
    drive,
    env_server_factory,
    import_aligo,
    make_aligo,
    metrics,
    metrics_delta,
    pre_hash,
    proof_code,
    proof_offset,
    raw_client,
    raw_upload,
    redirect,
    sha1_upper,
    wrong_proof_code,
)
from compat_helpers import MiB, assert_no_object, expect_s3_error, get_body, list_all_keys

aligo = import_aligo()  # with HOME pointing at a temp dir (see import_aligo)
BaseFile = aligo.BaseFile
CreateFileResponse = aligo.CreateFileResponse
Null = aligo.Null
from aligo.error import AligoRefreshFailed  # noqa: E402


# --------------------------------------------------------------------------
# helpers


def _folders(ali, names: list[str], parent: str = "root") -> list[str]:
    """Create nested folders names[0]/names[1]/...; return their file_ids."""
    ids = []
    for n in names:
        r = ali.create_folder(n, parent_file_id=parent)
        assert isinstance(r, CreateFileResponse) and r.file_id, f"create_folder({n!r}) failed: {r!r}"
        assert r.type in (None, "folder"), r
        assert r.file_name in (None, n), f"folder {n!r} was created as {r.file_name!r}"
        parent = r.file_id
        ids.append(parent)
    return ids


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _upload(ali, redirect, path: Path, parent: str) -> BaseFile:
    """Normal aligo upload that must complete (not rapid); returns the file."""
    mark = redirect.mark()
    res = ali.upload_file(str(path), parent_file_id=parent)
    assert isinstance(res, BaseFile), (
        f"aligo upload of {path.name} did not complete: {res!r}\n{redirect.describe(mark)}"
    )
    return res


def _put_exchanges(redirect, since: int):
    return [e for e in redirect.since(since) if e.method == "PUT"]


def _names(items) -> list[str]:
    return [i.name if hasattr(i, "name") else i["name"] for i in items]


def _assert_no_nulls(items, redirect, mark):
    bad = [i for i in items if isinstance(i, Null)]
    assert not bad, f"aligo listing failed: {bad[0]!r}\n{redirect.describe(mark)}"


def _raw_for(server, ali, drive) -> AdriveRaw:
    return AdriveRaw(server.endpoint, aligo_token(ali), drive.default_drive_id)


# --------------------------------------------------------------------------
# login and tokens


def test_login_by_refresh_token(server, drive, redirect, tmp_path):
    cfg = tmp_path / "cfg"
    ali = make_aligo(drive, cfg, name="login")
    calls = redirect.calls("/v2/account/token", method="POST")
    assert len(calls) == 1, redirect.describe()
    call = calls[0]
    assert call.req_json == {"refresh_token": drive.refresh_token, "grant_type": "refresh_token"}, call.req_json
    assert call.status == 200, call.short()
    tok = call.resp_json
    assert isinstance(tok, dict), call.short()
    for field in ("access_token", "refresh_token", "user_id", "user_name", "nick_name", "default_drive_id"):
        assert isinstance(tok.get(field), str) and tok[field], f"token lacks {field}: {tok}"
    assert isinstance(tok.get("expires_in"), int) and tok["expires_in"] > 0, tok
    assert tok.get("token_type") == "Bearer", tok
    assert tok["default_drive_id"] == drive.default_drive_id, tok
    assert ali.default_drive_id == drive.default_drive_id
    saved = json.loads((cfg / "login.json").read_text())
    assert saved["access_token"] == tok["access_token"], "aligo did not save the token"
    # The token works, and a new tenant's drive is empty.
    mark = redirect.mark()
    files = ali.get_file_list()
    _assert_no_nulls(files, redirect, mark)
    assert files == [], files


def test_bad_refresh_token_is_refused(server, redirect, tmp_path):
    bogus = DriveTenant(name="nobody", access_key="", secret_key="", refresh_token="not-a-refresh-token")
    with pytest.raises(AligoRefreshFailed):
        make_aligo(bogus, tmp_path / "cfg")
    calls = redirect.calls("/v2/account/token")
    assert len(calls) == 1, redirect.describe()
    assert 400 <= calls[0].status < 500 and calls[0].status != 429, calls[0].short()
    assert isinstance(calls[0].resp_json, dict) and calls[0].resp_json.get("code"), calls[0].short()


def test_invalid_access_token_is_401_and_aligo_refreshes(server, drive, ali, redirect):
    raw = _raw_for(server, ali, drive)
    # raw token and "Bearer <token>" are both accepted
    assert raw.list_v3().status_code == 200
    raw.bearer = True
    r = raw.list_v3()
    assert r.status_code == 200, f"Bearer token refused: {r.status_code} {r.text[:300]}"
    # unknown token -> 401 AccessTokenInvalid
    bad = AdriveRaw(server.endpoint, "bogus-access-token", drive.default_drive_id)
    body = assert_adrive_error(bad.list_v3(), 401, "unknown access token")
    assert body["code"] == "AccessTokenInvalid", body
    assert_adrive_error(
        requests.post(server.endpoint + "/v2/file/get", json={"drive_id": drive.default_drive_id, "file_id": "x"},
                      timeout=10),
        401,
        "no Authorization header",
    )

    # aligo: a 401 makes it refresh with its refresh token and retry.
    ali._auth.session.headers["Authorization"] = "bogus-access-token"
    mark = redirect.mark()
    files = ali.get_file_list()
    _assert_no_nulls(files, redirect, mark)
    seq = [(e.path, e.status) for e in redirect.since(mark)]
    assert seq[:3] == [("/adrive/v3/file/list", 401), ("/v2/account/token", 200), ("/adrive/v3/file/list", 200)], seq
    assert redirect.since(mark)[0].resp_json.get("code") == "AccessTokenInvalid"


def test_unknown_file_is_404_not_found_file(server, drive, ali):
    raw = _raw_for(server, ali, drive)
    body = assert_adrive_error(raw.get("0123456789abcdef0123456789abcdef"), 404, "/v2/file/get of unknown id")
    assert body["code"] == "NotFound.File", body
    assert_adrive_error(raw.get_download_url("0123456789abcdef0123456789abcdef"), 404, "get_download_url unknown")


# --------------------------------------------------------------------------
# folders and uploads


def test_nested_folders(server, drive, ali, redirect):
    top, mid, leaf = f"top-{os.urandom(3).hex()}", "mid dir", "leaf"
    ids = _folders(ali, [top, mid, leaf])
    assert len(set(ids)) == 3
    # aligo resolves the path folder by folder
    found = ali.get_folder_by_path(f"{top}/{mid}/{leaf}")
    assert isinstance(found, BaseFile) and found.file_id == ids[2], f"get_folder_by_path: {found!r}"
    root_items = ali.get_file_list()
    assert [(i.name, i.type) for i in root_items] == [(top, "folder")], root_items
    got = ali.get_file(ids[1])
    assert isinstance(got, BaseFile) and got.type == "folder" and got.name == mid, repr(got)
    assert got.parent_file_id == ids[0], got.parent_file_id
    # folders are explicit keys in the drive bucket
    keys = list_all_keys(drive.s3(server), drive.default_drive_id)
    assert sorted(keys) == sorted([f"{top}/", f"{top}/{mid}/", f"{top}/{mid}/{leaf}/"]), keys


@pytest.mark.parametrize("size", [0, 500, 5 * MiB, 25 * MiB], ids=["0B", "500B", "5MiB", "25MiB"])
def test_upload_roundtrip(server, drive, ali, redirect, tmp_path, size):
    top, mid, leaf = "up", "a", "b"
    ids = _folders(ali, [top, mid, leaf])
    data = os.urandom(size)
    name = f"file-{size}.bin"
    path = _write(tmp_path / "src" / name, data)

    m0 = metrics(server)
    mark = redirect.mark()
    res = ali.upload_file(str(path), parent_file_id=ids[2])
    m1 = metrics(server)
    puts = _put_exchanges(redirect, mark)
    if isinstance(res, BaseFile):
        assert res.name == name and res.size == size, repr(res)
        assert res.type == "file" and res.parent_file_id == ids[2], repr(res)
        assert res.content_hash == sha1_upper(data), (res.content_hash, sha1_upper(data))
        assert (res.content_hash_name or "sha1") == "sha1"
        assert res.crc64_hash == str(crc64_xz(data)), (res.crc64_hash, crc64_xz(data))
        bad = [p.short() for p in puts if not 200 <= p.status < 300]
        assert not bad, f"part PUTs failed: {bad}"
        expected_parts = -(-size // ALIGO_CHUNK)
        if size:
            assert len(puts) == expected_parts, redirect.describe(mark)
        assert metrics_delta(m0, m1)[PART_PUTS_METRIC] == len(puts), (metrics_delta(m0, m1), len(puts))
        file_id = res.file_id
    else:
        # Only empty content may be "known" to everybody and hence instant.
        assert size == 0 and isinstance(res, CreateFileResponse) and res.rapid_upload is True, (
            f"upload of {size} B failed: {res!r}\n{redirect.describe(mark)}"
        )
        file_id = res.file_id

    # S3 view of the drive: bucket = drive id, key = folder path + name
    key = f"{top}/{mid}/{leaf}/{name}"
    s3 = drive.s3(server)
    assert get_body(s3, drive.default_drive_id, key) == data, "bytes read through S3 differ"
    # aligo download
    out = ali.download_file(file_id=file_id, local_folder=str(tmp_path / "dl"))
    assert Path(out).read_bytes() == data, "bytes downloaded by aligo differ"


def test_same_content_again_is_instant(server, drive, ali, redirect, tmp_path):
    (folder,) = _folders(ali, ["inst"])
    data = os.urandom(25 * MiB)
    first = _write(tmp_path / "orig.bin", data)
    _upload(ali, redirect, first, folder)

    again = _write(tmp_path / "again" / "copy.bin", data)
    m0 = metrics(server)
    mark = redirect.mark()
    res = ali.upload_file(str(again), parent_file_id=folder)
    m1 = metrics(server)
    creates = redirect.calls("/adrive/v2/file/createWithFolders", since=mark)
    assert isinstance(res, CreateFileResponse) and res.rapid_upload is True, (
        f"second upload of identical content was not instant: {res!r}\n{redirect.describe(mark)}"
    )
    # pre_hash -> 409 PreHashMatched -> content_hash + proof -> rapid_upload
    assert [c.status for c in creates] == [409, 201], redirect.describe(mark)
    assert creates[0].req_json.get("pre_hash") == pre_hash(data), creates[0].req_json
    assert creates[0].resp_json.get("code") == "PreHashMatched", creates[0].short()
    assert creates[1].req_json.get("content_hash") == sha1_upper(data)
    assert _put_exchanges(redirect, mark) == [], "bytes were sent for an instant upload"
    assert redirect.calls("/v2/file/complete", since=mark) == []
    d = metrics_delta(m0, m1)
    assert d[PART_PUTS_METRIC] == 0, d
    assert d[INSTANT_HITS_METRIC] == 1, d

    assert get_body(drive.s3(server), drive.default_drive_id, "inst/copy.bin") == data
    f = ali.get_file_by_path("inst/copy.bin")
    assert isinstance(f, BaseFile) and f.size == len(data) and f.content_hash == sha1_upper(data), repr(f)
    out = ali.download_file(file_id=res.file_id, local_folder=str(tmp_path / "dl"))
    assert Path(out).read_bytes() == data


def test_pre_hash_and_create_with_proof_path(server, drive, ali, redirect):
    """Raw protocol steps: PreHashMatched only for held content, and
    /v2/file/create_with_proof behaves like createWithFolders."""
    raw = _raw_for(server, ali, drive)
    data = os.urandom(300 * 1024 + 11)
    raw_upload(raw, "held.bin", data)
    other = os.urandom(len(data))

    r = raw.create_file("p1.bin", len(data), pre_hash=pre_hash(data))
    body = assert_adrive_error(r, 409, "pre_hash of held content")
    assert body["code"] == "PreHashMatched", body
    r = raw.create_file("p2.bin", len(data), pre_hash=pre_hash(other))
    assert r.status_code == 201, r.text[:500]
    assert r.json().get("rapid_upload") is not True and r.json().get("upload_id"), r.text[:500]

    for path in ("/v2/file/create_with_proof", "/adrive/v2/file/createWithFolders"):
        r = raw.create_file("p3.bin", len(data), path=path, content_hash=sha1_upper(data),
                            proof_code=proof_code(raw.access_token, data), proof_version="v1")
        assert r.status_code == 201 and r.json().get("rapid_upload") is True, f"{path}: {r.status_code} {r.text[:500]}"
    # a normal upload through create_with_proof
    r = raw.create_file("p4.bin", len(other), path="/v2/file/create_with_proof")
    assert r.status_code == 201, r.text[:500]
    b = r.json()
    put = requests.put(b["part_info_list"][0]["upload_url"], data=other, timeout=60)
    assert 200 <= put.status_code < 300, put.text[:300]
    c = raw.complete(b["file_id"], b["upload_id"])
    assert c.status_code == 200 and c.json().get("content_hash") == sha1_upper(other), c.text[:500]
    assert get_body(drive.s3(server), drive.default_drive_id, "p4.bin") == other


# --------------------------------------------------------------------------
# listing, get, download, rename, trash


def test_list_marker_paging_with_limit(server, drive, ali, redirect, tmp_path):
    (folder,) = _folders(ali, ["paging"])
    expected = {}
    for n in ("d1", "d2", "d3"):
        _folders(ali, [n], parent=folder)
        expected[n] = "folder"
    for n in ("f1.txt", "f2.txt"):
        _upload(ali, redirect, _write(tmp_path / n, os.urandom(100)), folder)
        expected[n] = "file"

    mark = redirect.mark()
    items = ali.get_file_list(parent_file_id=folder, limit=2)
    _assert_no_nulls(items, redirect, mark)
    assert sorted(_names(items)) == sorted(expected), _names(items)
    assert {i.name: i.type for i in items} == expected
    calls = redirect.calls("/adrive/v3/file/list", since=mark)
    assert len(calls) >= 3, f"limit=2 over 5 entries needs >= 3 pages:\n{redirect.describe(mark)}"
    for i, c in enumerate(calls):
        assert c.status == 200 and c.req_json.get("limit") == 2, c.short()
        assert len(c.resp_json["items"]) <= 2, c.short()
        if i:
            assert c.req_json.get("marker") == calls[i - 1].resp_json["next_marker"], (c.req_json, calls[i - 1].short())
    assert calls[-1].resp_json["next_marker"] == ""

    raw = _raw_for(server, ali, drive)
    for name, lister in (("/adrive/v3/file/list", raw.list_v3), ("/v2/file/list", raw.list_v2)):
        seen, marker, pages = [], None, 0
        while True:
            r = lister(folder, limit=2, marker=marker)
            assert r.status_code == 200, f"{name}: HTTP {r.status_code} {r.text[:300]}"
            body = r.json()
            assert len(body["items"]) <= 2, body
            if pages == 0:
                assert len(body["items"]) == 2 and body["next_marker"], f"{name} did not page: {body}"
            seen.extend(i["name"] for i in body["items"])
            pages += 1
            marker = body.get("next_marker")
            assert marker is not None, f"{name}: next_marker missing: {body}"
            if marker == "":
                break
            assert pages < 10, f"{name}: paging does not end"
        assert sorted(seen) == sorted(expected), f"{name}: {seen}"


def test_list_folder_with_more_than_200_entries(server, drive, ali, redirect):
    (folder,) = _folders(ali, ["many"])
    raw = _raw_for(server, ali, drive)
    names = [f"sub{i:03d}" for i in range(205)]
    for n in names:
        r = raw.create_folder(n, parent=folder)
        assert r.status_code == 201, f"create folder {n}: {r.status_code} {r.text[:300]}"
    mark = redirect.mark()
    items = ali.get_file_list(parent_file_id=folder)
    _assert_no_nulls(items, redirect, mark)
    assert sorted(_names(items)) == names, f"{len(items)} entries listed"
    assert len(redirect.calls("/adrive/v3/file/list", since=mark)) >= 2


def test_get_and_get_by_path(server, drive, ali, redirect, tmp_path):
    g1, g2 = _folders(ali, ["g1", "g2"])
    data = os.urandom(3000)
    up = _upload(ali, redirect, _write(tmp_path / "doc.bin", data), g2)

    f = ali.get_file(up.file_id)
    assert isinstance(f, BaseFile), repr(f)
    assert (f.file_id, f.name, f.type, f.size, f.parent_file_id) == (up.file_id, "doc.bin", "file", 3000, g2), repr(f)
    assert f.content_hash == sha1_upper(data) and f.drive_id == drive.default_drive_id, repr(f)

    p = ali.get_file_by_path("g1/g2/doc.bin")
    assert isinstance(p, BaseFile) and p.file_id == up.file_id, repr(p)
    assert ali.get_file_by_path("g1/nope.bin") is None
    folder = ali.get_folder_by_path("g1/g2")
    assert isinstance(folder, BaseFile) and folder.file_id == g2, repr(folder)

    raw = _raw_for(server, ali, drive)
    r = raw.post("/v2/file/get_by_path", {"drive_id": drive.default_drive_id, "file_path": "/g1/g2/doc.bin"})
    assert r.status_code == 200 and r.json().get("file_id") == up.file_id, f"{r.status_code} {r.text[:500]}"
    r = raw.post("/v2/file/get_by_path", {"drive_id": drive.default_drive_id, "file_path": "/g1/g2/missing.bin"})
    assert_adrive_error(r, 404, "get_by_path of a missing file")


def test_download_whole_resumed_and_ranged(server, drive, ali, redirect, tmp_path):
    (folder,) = _folders(ali, ["dl"])
    data = os.urandom(5 * MiB + 123)
    up = _upload(ali, redirect, _write(tmp_path / "src" / "big.bin", data), folder)

    whole = ali.download_file(file_id=up.file_id, local_folder=str(tmp_path / "whole"))
    assert Path(whole).read_bytes() == data

    # aligo resumes from "<path>.ali" with Range: bytes=<size>-
    resume_dir = tmp_path / "resume"
    n = MiB + 7
    _write(resume_dir / "big.bin.ali", data[:n])
    mark = redirect.mark()
    out = ali.download_file(file_id=up.file_id, local_folder=str(resume_dir))
    gets = [e for e in redirect.since(mark) if e.method == "GET"]
    assert gets, redirect.describe(mark)
    g = gets[-1]
    assert g.req_headers.get("range") == f"bytes={n}-", g.req_headers
    assert g.status == 206, g.short()
    assert g.resp_headers.get("accept-ranges") == "bytes", g.resp_headers
    assert g.resp_headers.get("content-range") == f"bytes {n}-{len(data) - 1}/{len(data)}", g.resp_headers
    assert Path(out).read_bytes() == data, "resumed download differs"
    assert not (resume_dir / "big.bin.ali").exists()

    # the download URL itself: presigned (no Authorization needed), ranges
    raw = _raw_for(server, ali, drive)
    r = raw.get_download_url(up.file_id)
    assert r.status_code == 200, r.text[:500]
    u = r.json()
    assert u.get("url") and u.get("size") == len(data), u
    full = requests.get(u["url"], timeout=60)
    assert full.status_code == 200 and full.content == data
    assert full.headers.get("Accept-Ranges") == "bytes", full.headers
    part = requests.get(u["url"], headers={"Range": "bytes=100-199"}, timeout=60)
    assert part.status_code == 206, part.status_code
    assert part.content == data[100:200]
    assert part.headers.get("Content-Range") == f"bytes 100-199/{len(data)}", part.headers

    # aligo's get_download_url(expire_sec=...): the link lives as long as asked, within the
    # server's longest (an hour by default).
    import datetime as _dt

    def lifetime(resp) -> float:
        exp = _dt.datetime.fromisoformat(str(resp.expiration).replace("Z", "+00:00"))
        return (exp - _dt.datetime.now(_dt.timezone.utc)).total_seconds()

    short = ali.get_download_url(file_id=up.file_id, expire_sec=600)
    assert 590 <= lifetime(short) <= 610, short.expiration
    assert requests.get(short.url, timeout=60).content == data
    assert 3590 <= lifetime(ali.get_download_url(file_id=up.file_id, expire_sec=14400)) <= 3610


def test_rename_with_aligo(server, drive, ali, redirect, tmp_path):
    (folder,) = _folders(ali, ["ren"])
    data = os.urandom(2048)
    up = _upload(ali, redirect, _write(tmp_path / "before.bin", data), folder)
    mark = redirect.mark()
    res = ali.rename_file(up.file_id, "after.bin")
    assert isinstance(res, BaseFile) and res.name == "after.bin", f"rename failed: {res!r}\n{redirect.describe(mark)}"
    assert res.file_id == up.file_id
    assert ali.get_file(up.file_id).name == "after.bin"
    assert ali.get_file_by_path("ren/before.bin") is None
    assert ali.get_file_by_path("ren/after.bin").file_id == up.file_id
    s3 = drive.s3(server)
    assert get_body(s3, drive.default_drive_id, "ren/after.bin") == data
    assert_no_object(s3, drive.default_drive_id, "ren/before.bin")


def test_rename_with_v2_file_update(server, drive, ali, redirect, tmp_path):
    (folder,) = _folders(ali, ["ren2"])
    data = os.urandom(1500)
    up = _upload(ali, redirect, _write(tmp_path / "old.bin", data), folder)
    raw = _raw_for(server, ali, drive)
    r = raw.post("/v2/file/update", {"drive_id": drive.default_drive_id, "file_id": up.file_id,
                                     "name": "new.bin", "check_name_mode": "refuse"})
    assert r.status_code == 200 and r.json().get("name") == "new.bin", f"{r.status_code} {r.text[:500]}"
    s3 = drive.s3(server)
    assert get_body(s3, drive.default_drive_id, "ren2/new.bin") == data
    assert_no_object(s3, drive.default_drive_id, "ren2/old.bin")
    # renaming onto an existing name with check_name_mode=refuse is refused
    other = _upload(ali, redirect, _write(tmp_path / "other.bin", os.urandom(10)), folder)
    r = raw.post("/v2/file/update", {"drive_id": drive.default_drive_id, "file_id": other.file_id,
                                     "name": "new.bin", "check_name_mode": "refuse"})
    assert_adrive_error(r, None, "rename onto an existing name (refuse)")
    assert get_body(s3, drive.default_drive_id, "ren2/new.bin") == data


def test_rename_folder_moves_its_files_in_the_s3_view(server, drive, ali, redirect, tmp_path):
    outer, inner = _folders(ali, ["old-dir", "inner"])
    data = os.urandom(777)
    _upload(ali, redirect, _write(tmp_path / "x.bin", data), inner)
    res = ali.rename_file(outer, "new-dir")
    assert isinstance(res, BaseFile) and res.name == "new-dir", repr(res)
    s3 = drive.s3(server)
    assert get_body(s3, drive.default_drive_id, "new-dir/inner/x.bin") == data
    assert_no_object(s3, drive.default_drive_id, "old-dir/inner/x.bin")
    f = ali.get_file_by_path("new-dir/inner/x.bin")
    assert isinstance(f, BaseFile) and f.size == 777, repr(f)


def test_trash_and_delete(server, drive, ali, redirect, tmp_path):
    (folder,) = _folders(ali, ["bin"])
    a = _upload(ali, redirect, _write(tmp_path / "a.bin", os.urandom(1200)), folder)
    b = _upload(ali, redirect, _write(tmp_path / "b.bin", os.urandom(1300)), folder)
    keep = _upload(ali, redirect, _write(tmp_path / "keep.bin", os.urandom(1400)), folder)

    mark = redirect.mark()
    res = ali.move_file_to_trash(a.file_id)
    assert not isinstance(res, Null), f"trash failed: {res!r}\n{redirect.describe(mark)}"
    assert redirect.calls("/v2/recyclebin/trash", since=mark)[0].status in (202, 204)
    assert ali.get_file_by_path("bin/a.bin") is None
    assert sorted(_names(ali.get_file_list(parent_file_id=folder))) == ["b.bin", "keep.bin"]

    raw = _raw_for(server, ali, drive)
    r = raw.post("/v2/file/delete", {"drive_id": drive.default_drive_id, "file_id": b.file_id})
    assert 200 <= r.status_code < 300, f"delete: {r.status_code} {r.text[:300]}"
    body = assert_adrive_error(raw.get(b.file_id), 404, "get after delete")
    assert body["code"] == "NotFound.File", body
    assert_no_object(drive.s3(server), drive.default_drive_id, "bin/b.bin")
    assert _names(ali.get_file_list(parent_file_id=folder)) == ["keep.bin"]
    assert ali.get_file(keep.file_id).name == "keep.bin"


# --------------------------------------------------------------------------
# cross-protocol


# 9 MiB: an S3 PUT past 4 MiB leaves its SHA-1 to the background job; aligo's lookup right
# after must settle it, not miss.
@pytest.mark.parametrize("size", [3 * MiB + 99, 9 * MiB + 99], ids=["3MiB", "9MiB"])
def test_s3_object_is_instant_uploaded_by_aligo(server, drive, ali, redirect, tmp_path, size):
    (folder,) = _folders(ali, ["xp"])  # also makes sure the drive bucket exists
    s3 = drive.s3(server)
    data = os.urandom(size)
    s3.put_object(Bucket=drive.default_drive_id, Key="xp/from-s3.bin", Body=data)

    m0 = metrics(server)
    mark = redirect.mark()
    res = ali.upload_file(str(_write(tmp_path / "via-aligo.bin", data)), parent_file_id=folder)
    m1 = metrics(server)
    assert isinstance(res, CreateFileResponse) and res.rapid_upload is True, (
        f"content stored through S3 was not instant for aligo: {res!r}\n{redirect.describe(mark)}"
    )
    assert _put_exchanges(redirect, mark) == []
    d = metrics_delta(m0, m1)
    assert d[PART_PUTS_METRIC] == 0 and d[INSTANT_HITS_METRIC] == 1, d
    assert get_body(s3, drive.default_drive_id, "xp/via-aligo.bin") == data
    assert get_body(s3, drive.default_drive_id, "xp/from-s3.bin") == data


def test_aligo_upload_is_readable_through_s3(server, drive, ali, redirect, tmp_path):
    ids = _folders(ali, ["p", "q"])
    data = os.urandom(11 * MiB + 5)  # two parts
    up = _upload(ali, redirect, _write(tmp_path / "r.bin", data), ids[1])
    s3 = drive.s3(server)
    obj = s3.get_object(Bucket=drive.default_drive_id, Key="p/q/r.bin")
    assert obj["ContentLength"] == len(data)
    assert obj["Body"].read() == data
    assert up.size == len(data)
    # the root credentials (admin) see it too; other tenants do not
    assert get_body(server.client(), drive.default_drive_id, "p/q/r.bin") == data
    other = create_drive_tenant(server)
    with expect_s3_error(403):
        other.s3(server).get_object(Bucket=drive.default_drive_id, Key="p/q/r.bin")


# --------------------------------------------------------------------------
# security


def _same_shape(known: requests.Response, unknown: requests.Response) -> None:
    assert known.status_code == unknown.status_code == 201, (
        f"known: {known.status_code} {known.text[:300]} / unknown: {unknown.status_code} {unknown.text[:300]}"
    )
    k, u = known.json(), unknown.json()
    assert set(k) == set(u), f"response fields differ: {sorted(k)} vs {sorted(u)}"
    for body in (k, u):
        assert body.get("rapid_upload") is False, body
        assert isinstance(body.get("upload_id"), str) and body["upload_id"], body
        assert body.get("file_id"), body
        assert body.get("exist") in (None, False), body
        parts = body.get("part_info_list")
        assert isinstance(parts, list) and parts and all(p.get("upload_url") for p in parts), body
    assert len(k["part_info_list"]) == len(u["part_info_list"])
    assert set(k["part_info_list"][0]) == set(u["part_info_list"][0])
    assert k.get("code") == u.get("code")


def test_content_hash_without_proof_reveals_nothing(server):
    a, b = create_drive_tenant(server), create_drive_tenant(server)
    ca, cb = raw_client(server, a), raw_client(server, b)
    x = os.urandom(300 * 1024 + 17)
    fa = raw_upload(ca, "secret.bin", x)
    y = os.urandom(len(x))
    m0 = metrics(server)

    known = cb.create_with_content_hash("probe-known.bin", x, wrong_proof_code(cb.access_token, x))
    unknown = cb.create_with_content_hash("probe-unknown.bin", y, proof_code(cb.access_token, y))
    _same_shape(known, unknown)
    # a proof computed with A's token (another offset) is wrong for B too
    if proof_offset(ca.access_token, len(x)) != proof_offset(cb.access_token, len(x)):
        r = cb.create_with_content_hash("probe-a-token.bin", x, proof_code(ca.access_token, x))
        _same_shape(r, unknown)
    assert metrics_delta(m0, metrics(server))[INSTANT_HITS_METRIC] == 0

    # B gains no access to A's file
    assert_adrive_error(cb.get(fa["file_id"], drive_id=a.default_drive_id), None, "B gets A's file")
    assert_adrive_error(cb.get_download_url(fa["file_id"], drive_id=a.default_drive_id), None,
                        "B gets a download URL for A's file")
    k = known.json()
    c = cb.complete(k["file_id"], k["upload_id"], parts=len(k["part_info_list"]))
    assert_adrive_error(c, None, "complete of the probe without any part")
    names = [i["name"] for i in cb.list_all("root") if i.get("status", "available") == "available"]
    assert "probe-known.bin" not in names, names
    assert_no_object(b.s3(server), b.default_drive_id, "probe-known.bin")
    with expect_s3_error(403):
        b.s3(server).get_object(Bucket=a.default_drive_id, Key="secret.bin")


def test_content_hash_with_correct_proof_is_instant_for_another_tenant(server):
    a, b = create_drive_tenant(server), create_drive_tenant(server)
    ca, cb = raw_client(server, a), raw_client(server, b)
    x = os.urandom(700 * 1024 + 3)
    raw_upload(ca, "shared.bin", x)
    m0 = metrics(server)
    r = cb.create_with_content_hash("got-it.bin", x, proof_code(cb.access_token, x))
    assert r.status_code == 201, r.text[:500]
    body = r.json()
    assert body.get("rapid_upload") is True, f"correct proof from B's own token not accepted: {body}"
    assert body.get("file_id"), body
    d = metrics_delta(m0, metrics(server))
    assert d[INSTANT_HITS_METRIC] == 1 and d[PART_PUTS_METRIC] == 0, d
    assert cb.download(body["file_id"]) == x
    assert get_body(b.s3(server), b.default_drive_id, "got-it.bin") == x
    f = cb.get(body["file_id"])
    assert f.status_code == 200 and f.json().get("size") == len(x), f.text[:500]
    assert f.json().get("content_hash") == sha1_upper(x)


def test_a_v1_proof_window_cannot_be_picked(server):
    """The v1 window's offset comes from the access token, and a client may buy more than
    one: a window that runs into the file's end (fewer than 8 bytes, guessable) proves
    nothing, and a refresh token buys a burst of 60 access tokens, then one a minute
    (429 TooManyRequests in Aliyun's format), so nobody picks the window it knows."""
    a, b = create_drive_tenant(server), create_drive_tenant(server)
    x = os.urandom(20)
    raw_upload(raw_client(server, a), "tiny.bin", x)
    bought, short, full = 0, None, None
    while (short is None or full is None) and bought < 50:
        c = raw_client(server, b)
        bought += 1
        if len(x) - proof_offset(c.access_token, len(x)) < 8:
            short = short or c
        else:
            full = full or c
    assert short and full, f"{bought} tokens gave no {'short' if short is None else 'full'} window"
    r = short.create_with_content_hash("short.bin", x, proof_code(short.access_token, x))
    assert r.status_code == 201 and r.json().get("rapid_upload") is False, r.text[:500]
    r = full.create_with_content_hash("full.bin", x, proof_code(full.access_token, x))
    assert r.status_code == 201 and r.json().get("rapid_upload") is True, r.text[:500]
    # Buying on: refused before the 61st, in the dialect's format.
    while True:
        got = requests.post(server.endpoint + "/v2/account/token", timeout=30,
                            json={"refresh_token": b.refresh_token, "grant_type": "refresh_token"})
        if got.status_code != 200:
            break
        bought += 1
        assert bought <= 60, "a refresh token bought more than 60 access tokens at once"
    assert got.status_code == 429, f"token purchase over the limit: HTTP {got.status_code} {got.text[:300]}"
    assert got.json().get("code") == "TooManyRequests" and got.json().get("message"), got.text[:300]


def test_big_s3_upload_is_instant_for_another_tenant_once_digested(server):
    """An S3 PUT past 4 MiB commits before its SHA-1 is known (the background job computes
    it); once the job has run, another tenant's content_hash with a correct proof hits."""
    a, b = create_drive_tenant(server), create_drive_tenant(server)
    ca, cb = raw_client(server, a), raw_client(server, b)
    raw_upload(ca, "warm.bin", b"makes the drive's bucket")
    x = os.urandom(6 * MiB + 5)
    a.s3(server).put_object(Bucket=a.default_drive_id, Key="big-from-s3.bin", Body=x)
    deadline = time.monotonic() + 20
    while server.admin_stats()["pending_digests"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.admin_stats()["pending_digests"] == 0, "the background digest job did not settle the upload"
    r = cb.create_with_content_hash("big-got-it.bin", x, proof_code(cb.access_token, x))
    assert r.status_code == 201, r.text[:500]
    body = r.json()
    assert body.get("rapid_upload") is True, f"correct proof not accepted after digesting: {body}"
    assert cb.download(body["file_id"]) == x
    assert cb.get(body["file_id"]).json().get("content_hash") == sha1_upper(x)


def _flip(s: str) -> str:
    """Change one alphanumeric character in the middle of s."""
    idx = [i for i, ch in enumerate(s) if ch.isalnum()]
    assert idx, f"nothing to tamper with in {s!r}"
    i = idx[len(idx) // 2]
    ch = s[i]
    new = "1" if ch == "0" else "0" if ch.isdigit() else ("B" if ch == "A" else "A")
    return s[:i] + new + s[i + 1:]


def _tampered_urls(url: str) -> dict[str, tuple[str, int]]:
    """Variants of a part-1 upload URL, each with the part number whose bytes
    fit it: a flipped signature, an extended expiry, another part number."""
    base, _, query = url.partition("?")
    params = query.split("&") if query else []
    out: dict[str, tuple[str, int]] = {}

    def with_value(i: int, k: str, v: str) -> str:
        return base + "?" + "&".join(params[:i] + [f"{k}={v}"] + params[i + 1:])

    for i, kv in enumerate(params):
        k, _, v = kv.partition("=")
        name = unquote(k).lower()
        if re.search(r"sig|token", name) and v:
            out[f"signature ({k})"] = (with_value(i, k, _flip(v)), 1)
        elif "expire" in name and v.isdigit():
            out[f"expiry ({k})"] = (with_value(i, k, str(int(v) + 86400)), 1)
        elif "part" in name and v == "1":
            out[f"part number ({k})"] = (with_value(i, k, "2"), 2)
    if not any(d.startswith("signature") for d in out):
        # no signature parameter: the signature must be in the path
        head, _, last = base.rpartition("/")
        out["signature (last path segment)"] = (f"{head}/{_flip(last)}" + (f"?{query}" if query else ""), 1)
    return out


def test_tampered_part_url_is_refused(server, drive):
    c = raw_client(server, drive)
    data = os.urandom(ALIGO_CHUNK + 300 * 1024)  # two parts, as aligo would cut them
    parts = {1: data[:ALIGO_CHUNK], 2: data[ALIGO_CHUNK:]}
    r = c.create_file("t.bin", len(data))
    assert r.status_code == 201, r.text[:500]
    body = r.json()
    assert [p["part_number"] for p in body["part_info_list"]] == [1, 2], body
    url1 = body["part_info_list"][0]["upload_url"]
    variants = _tampered_urls(url1)
    for what, (bad, part) in variants.items():
        p = requests.put(bad, data=parts[part], timeout=60)
        assert p.status_code == 403, f"tampered {what}: HTTP {p.status_code} {p.text[:300]}\n{bad}"
    lp = c.list_uploaded_parts(body["file_id"], body["upload_id"])
    assert lp.status_code == 200 and lp.json().get("uploaded_parts") == [], f"{lp.status_code} {lp.text[:500]}"
    # the genuine URLs work
    for i, part in enumerate(body["part_info_list"], start=1):
        p = requests.put(part["upload_url"], data=parts[i], timeout=60)
        assert 200 <= p.status_code < 300, p.text[:300]
    done = c.complete(body["file_id"], body["upload_id"], parts=2)
    assert done.status_code == 200 and done.json().get("content_hash") == sha1_upper(data), done.text[:500]
    assert get_body(drive.s3(server), drive.default_drive_id, "t.bin") == data


def test_expired_part_url_is_refused(env_server_factory, tmp_path):
    srv = env_server_factory(env={"CHUAN_ADRIVE_URL_TTL_SECS": "2"}, name="urlttl")
    t = create_drive_tenant(srv)
    c = raw_client(srv, t)
    folder = c.create_folder("ttl")
    assert folder.status_code == 201, folder.text[:500]
    fid = folder.json()["file_id"]
    data = os.urandom(700 * 1024)
    u1 = c.create_file("late1.bin", len(data), parent=fid)
    u2 = c.create_file("late2.bin", len(data), parent=fid)
    assert u1.status_code == 201 and u2.status_code == 201, (u1.text[:300], u2.text[:300])
    u1, u2 = u1.json(), u2.json()
    time.sleep(3.5)

    for u in (u1, u2):
        p = requests.put(u["part_info_list"][0]["upload_url"], data=data, timeout=60)
        assert p.status_code == 403, f"expired part URL: HTTP {p.status_code} {p.text[:300]}"
        lp = c.list_uploaded_parts(u["file_id"], u["upload_id"])
        assert lp.status_code == 200 and lp.json().get("uploaded_parts") == [], f"{lp.status_code} {lp.text[:500]}"

    # complete after the refused PUT fails and leaves no file
    assert_adrive_error(c.complete(u2["file_id"], u2["upload_id"]), None, "complete after a refused part")
    assert_no_object(t.s3(srv), t.default_drive_id, "ttl/late2.bin")

    # a fresh URL from get_upload_url works
    g = c.get_upload_url(u1["file_id"], u1["upload_id"], [1])
    assert g.status_code == 200, g.text[:500]
    new_url = g.json()["part_info_list"][0]["upload_url"]
    p = requests.put(new_url, data=data, timeout=60)
    assert 200 <= p.status_code < 300, p.text[:300]
    done = c.complete(u1["file_id"], u1["upload_id"])
    assert done.status_code == 200 and done.json().get("content_hash") == sha1_upper(data), done.text[:500]
    assert get_body(t.s3(srv), t.default_drive_id, "ttl/late1.bin") == data
    names = [i["name"] for i in c.list_all(fid)]
    assert names == ["late1.bin"], names

    # aligo's own recovery path: 403 on the part -> get_upload_url -> retry
    t2 = create_drive_tenant(srv)
    with AliyunRedirect(srv.endpoint) as rd:
        ali = make_aligo(t2, tmp_path / "cfg")
        delayed = []

        def slow_first_put(req):
            if req.method == "PUT" and not delayed:
                delayed.append(req.url)
                time.sleep(3.5)

        rd.before_send = slow_first_put
        path = _write(tmp_path / "retry.bin", os.urandom(600 * 1024))
        mark = rd.mark()
        res = ali.upload_file(str(path), parent_file_id="root")
        seq = [(e.method, e.path, e.status) for e in rd.since(mark)]
        rd.before_send = None
        assert isinstance(res, BaseFile), f"aligo upload failed: {res!r}\n{rd.describe(mark)}"
        puts = [s for m, _p, s in seq if m == "PUT"]
        assert puts[0] == 403 and 200 <= puts[-1] < 300 and len(puts) == 2, seq
        assert [s for _m, p, s in seq if p == "/v2/file/get_upload_url"] == [200], seq
        assert get_body(t2.s3(srv), t2.default_drive_id, "retry.bin") == path.read_bytes()
    rd.assert_no_throttling_or_server_errors()


def test_part_put_with_wrong_length_is_refused(server, drive):
    c = raw_client(server, drive)
    folder = c.create_folder("wrong-len")
    assert folder.status_code == 201, folder.text[:300]
    fid = folder.json()["file_id"]
    data = os.urandom(MiB)
    r = c.create_file("short.bin", len(data), parent=fid)
    assert r.status_code == 201, r.text[:500]
    body = r.json()
    url = body["part_info_list"][0]["upload_url"]
    m0 = metrics(server)
    for what, payload in (("short", data[:-1]), ("long", data + b"x")):
        p = requests.put(url, data=payload, timeout=60)
        assert 400 <= p.status_code < 500 and p.status_code != 429, f"{what} part: HTTP {p.status_code} {p.text[:300]}"
    assert metrics_delta(m0, metrics(server))[PART_PUTS_METRIC] == 2, "part PUTs that reached the server not counted"
    lp = c.list_uploaded_parts(body["file_id"], body["upload_id"])
    assert lp.status_code == 200 and lp.json().get("uploaded_parts") == [], f"{lp.status_code} {lp.text[:500]}"
    assert_adrive_error(c.complete(body["file_id"], body["upload_id"]), None, "complete without a valid part")
    assert c.list_all(fid) == [], "a failed upload left an entry in the folder"
    assert_no_object(drive.s3(server), drive.default_drive_id, "wrong-len/short.bin")


def test_complete_with_wrong_content_hash_leaves_no_file(server, drive):
    c = raw_client(server, drive)
    folder = c.create_folder("wrong-hash")
    assert folder.status_code == 201, folder.text[:300]
    fid = folder.json()["file_id"]
    data = os.urandom(300 * 1024)
    claimed = os.urandom(len(data))
    r = c.create_with_content_hash("liar.bin", claimed, proof_code(c.access_token, claimed), parent=fid)
    assert r.status_code == 201, r.text[:500]
    body = r.json()
    assert body.get("rapid_upload") is False, body
    requests.put(body["part_info_list"][0]["upload_url"], data=data, timeout=60)
    done = c.complete(body["file_id"], body["upload_id"], content_hash=sha1_upper(claimed))
    assert_adrive_error(done, None, "complete with bytes that do not match the declared content_hash")
    assert c.list_all(fid) == [], "a failed upload left an entry in the folder"
    assert_no_object(drive.s3(server), drive.default_drive_id, "wrong-hash/liar.bin")
    g = c.get(body["file_id"])
    assert g.status_code == 404 or g.json().get("status") != "available", g.text[:300]
