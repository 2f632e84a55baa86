"""Aliyun Drive's file tree with the real aligo 6.2.8 (issue 11): move and copy of files
and whole folders (1,000 files in one call, no bytes copied), every batch call, listing in
every order, search, get_path, folder size, drives, starred and description, and the
recycle bin (trash, list, restore, delete, purge after the retention), with bad input
refused in Aliyun's own error format and nothing changed.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from adrive_helpers import (  # noqa: F401  (env_server_factory, redirect, drive, ali are fixtures)
    AdriveRaw,
    AliyunRedirect,
    ali,
    aligo_token,
    create_drive_tenant,
    drive,
    env_server_factory,
    import_aligo,
    make_aligo,
    redirect,
)
from compat_helpers import assert_no_object, get_body, list_all_keys

aligo = import_aligo()
BaseFile = aligo.BaseFile
Null = aligo.Null
from aligo.request import UpdateFileRequest  # noqa: E402


def _folder(ali, name: str, parent: str = "root") -> str:
    r = ali.create_folder(name, parent_file_id=parent, check_name_mode="refuse")
    assert r and r.file_id, f"create_folder({name!r}): {r!r}"
    return r.file_id


def _upload(ali, tmp_path: Path, name: str, data: bytes, parent: str) -> BaseFile:
    p = tmp_path / "src" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    f = ali.upload_file(str(p), parent_file_id=parent)
    if not isinstance(f, BaseFile) and getattr(f, "rapid_upload", False):
        # Content someone already stored (with aligo's proof): an instant upload.
        f = ali.get_file(f.file_id)
    assert isinstance(f, BaseFile), f"upload {name}: {f!r}"
    return f


def _names(ali, parent: str, **kw) -> list[str]:
    items = ali.get_file_list(parent_file_id=parent, **kw)
    assert not any(isinstance(i, Null) for i in items), items
    return [i.name for i in items]


def _raw(server, ali, drive) -> AdriveRaw:
    return AdriveRaw(server.endpoint, aligo_token(ali), drive.default_drive_id)


def _blob_count(server) -> int:
    """Blobs the server holds, in files or inline in its metadata (small ones)."""
    return server.admin_stats()["blobs"]


def _error_code(res) -> str:
    assert isinstance(res, Null), f"expected an error, got {res!r}"
    return res.code


def test_move_and_copy_files(server, drive, ali, tmp_path):
    src, dst = _folder(ali, "src"), _folder(ali, "dst")
    a = _upload(ali, tmp_path, "a.txt", b"alpha" * 100, src)

    moved = ali.move_file(a.file_id, to_parent_file_id=dst)
    assert moved and moved.file_id == a.file_id, repr(moved)
    assert _names(ali, dst) == ["a.txt"] and _names(ali, src) == []
    assert ali.get_file(a.file_id).parent_file_id == dst

    copy = ali.copy_file(a.file_id, to_parent_file_id=src)
    assert copy and copy.file_id and copy.file_id != a.file_id, repr(copy)
    c = ali.get_file(copy.file_id)
    assert (c.name, c.parent_file_id, c.content_hash) == ("a.txt", src, a.content_hash)

    # A taken name: refused with Aliyun's 409 AlreadyExist.File, nothing moved.
    assert _error_code(ali.move_file(copy.file_id, to_parent_file_id=dst)) == "AlreadyExist.File"
    assert _names(ali, src) == ["a.txt"]
    renamed = ali.copy_file(copy.file_id, to_parent_file_id=dst, auto_rename=True)
    assert ali.get_file(renamed.file_id).name == "a(1).txt"
    over = ali.move_file(copy.file_id, to_parent_file_id=dst, overwrite=True)
    assert over.file_id == copy.file_id
    assert sorted(_names(ali, dst)) == ["a(1).txt", "a.txt"]
    assert ali.get_file_by_path("dst/a.txt").file_id == copy.file_id
    named = ali.move_file(renamed.file_id, to_parent_file_id="root", new_name="top.txt")
    assert named.file_id == renamed.file_id
    assert get_body(drive.s3(server), drive.default_drive_id, "top.txt") == b"alpha" * 100


def test_folder_of_1000_files_moves_and_copies_in_one_call(server, drive, ali, redirect):
    """A folder implied by S3 keys is a folder to Aliyun Drive too; moving and copying it is
    one call each, and the copy shares every file's content."""
    s3, bucket = drive.s3(server), drive.default_drive_id
    data = {f"big/sub{i % 3}/f{i:04}.bin": os.urandom(64) + i.to_bytes(4, "big") for i in range(1000)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), data.items()))
    big = ali.get_folder_by_path("big")
    assert big and big.type == "folder", repr(big)
    dest = _folder(ali, "dest")

    mark = redirect.mark()
    moved = ali.move_file(big.file_id, to_parent_file_id=dest)
    assert moved and moved.file_id == big.file_id, repr(moved)
    assert len(redirect.calls("/v2/file/move", since=mark)) == 1
    keys = list_all_keys(s3, bucket, "dest/big/")
    assert sorted(keys) == sorted("dest/" + k for k in data)
    assert list_all_keys(s3, bucket, "big/") == []

    blobs = _blob_count(server)
    copy = ali.copy_file(big.file_id, to_parent_file_id="root", new_name="big-copy")
    assert copy and copy.file_id != big.file_id, repr(copy)
    assert len(list_all_keys(s3, bucket, "big-copy/")) == 1000
    assert _blob_count(server) == blobs, "a copy writes no bytes"
    assert get_body(s3, bucket, "big-copy/sub1/f0001.bin") == data["big/sub1/f0001.bin"]
    info = ali.get_folder_size_info(copy.file_id)
    assert (info.file_count, info.folder_count, info.size) == (1000, 3, sum(len(v) for v in data.values()))


def test_listing_in_every_order(server, drive, ali, tmp_path):
    folder = _folder(ali, "sorted")
    # Upload order b, c, a; sizes b > a > c.
    for name, size in [("b.bin", 300), ("c.bin", 100), ("a.bin", 200)]:
        _upload(ali, tmp_path, name, os.urandom(size), folder)
    assert _names(ali, folder) == ["a.bin", "c.bin", "b.bin"], "aligo's default: updated_at DESC"
    assert _names(ali, folder, order_by="name", order_direction="ASC") == ["a.bin", "b.bin", "c.bin"]
    assert _names(ali, folder, order_by="name", order_direction="DESC") == ["c.bin", "b.bin", "a.bin"]
    assert _names(ali, folder, order_by="size", order_direction="ASC") == ["c.bin", "a.bin", "b.bin"]
    assert _names(ali, folder, order_by="created_at", order_direction="ASC") == ["b.bin", "c.bin", "a.bin"]
    # One entry per page: aligo follows next_marker through every page.
    assert _names(ali, folder, order_by="size", order_direction="DESC", limit=1) == ["b.bin", "a.bin", "c.bin"]
    _folder(ali, "inner", folder)
    assert _names(ali, folder, type="folder") == ["inner"]
    assert sorted(_names(ali, folder, type="file")) == ["a.bin", "b.bin", "c.bin"]


def test_batch_calls(server, drive, ali, tmp_path):
    src, dst = _folder(ali, "bsrc"), _folder(ali, "bdst")
    files = [_upload(ali, tmp_path, f"f{i}.txt", f"file {i}".encode() * 50, src) for i in range(3)]
    ids = [f.file_id for f in files]

    got = ali.batch_get_files(ids)
    assert [r.status for r in got] == [200, 200, 200]
    assert [r.body.name for r in got] == ["f0.txt", "f1.txt", "f2.txt"]
    urls = ali.batch_download_url(ids)
    assert all(r.status == 200 and r.body.url for r in urls), urls

    moved = ali.batch_move_files(ids[:2], to_parent_file_id=dst)
    assert [(r.id, r.status) for r in moved] == [(ids[0], 200), (ids[1], 200)]
    assert sorted(_names(ali, dst)) == ["f0.txt", "f1.txt"]
    copied = ali.batch_copy_files(ids[:2], to_parent_file_id=dst)  # auto_rename by default
    assert [r.status for r in copied] == [201, 201]
    assert sorted(_names(ali, dst)) == ["f0(1).txt", "f0.txt", "f1(1).txt", "f1.txt"]

    trashed = ali.batch_move_to_trash([ids[2], "0" * 40])
    assert trashed[0].status == 204 and trashed[1].status == 404, [(r.status, r.body) for r in trashed]
    assert trashed[1].body.code == "NotFound.File"
    assert _names(ali, src) == []
    restored = ali.batch_restore_files([ids[2]])
    assert restored[0].status == 204
    assert _names(ali, src) == ["f2.txt"]


def test_search_path_size_and_drives(server, drive, ali, tmp_path):
    top = _folder(ali, "Photos")
    year = _folder(ali, "2026", top)
    f = _upload(ali, tmp_path, "Summer-Beach.jpg", os.urandom(500), year)
    _upload(ali, tmp_path, "notes.txt", os.urandom(70), top)

    found = ali.search_files("beach")
    assert [x.name for x in found] == ["Summer-Beach.jpg"], found
    assert [x.name for x in ali.search_files("2026")] == ["2026"]
    assert [x.name for x in ali.search_files(category="image")] == ["Summer-Beach.jpg"]
    assert [x.name for x in ali.search_files("o", parent_file_id=top)] == ["notes.txt"]

    path = ali.get_path(f.file_id)
    assert [i.name for i in path.items] == ["Summer-Beach.jpg", "2026", "Photos"]
    assert path.items[1].file_id == year and path.items[2].parent_file_id == "root"

    info = ali.get_folder_size_info(top)
    assert (info.size, info.file_count, info.folder_count) == (570, 2, 1)

    d = ali.get_drive()
    assert d.drive_id == drive.default_drive_id and d.used_size == 570, repr(d)
    assert ali.get_default_drive().drive_id == drive.default_drive_id
    assert [x.drive_id for x in ali.list_my_drives()] == [drive.default_drive_id]


def test_starred_and_description_are_kept_through_moves(server, drive, ali, tmp_path):
    folder = _folder(ali, "attrs")
    f = _upload(ali, tmp_path, "doc.txt", b"x" * 10, folder)
    res = ali.starred_file(f.file_id, True)
    assert res.starred is True, repr(res)
    res = ali.update_file(UpdateFileRequest(file_id=f.file_id, description="quarterly report"))
    assert res.description == "quarterly report", repr(res)
    res = ali.update_file(UpdateFileRequest(file_id=f.file_id, user_meta='{"project": "q3", "rev": 2}'))
    assert json.loads(res.user_meta) == {"project": "q3", "rev": "2"}, repr(res)
    ali.starred_file(folder, True)
    ali.move_file(folder, to_parent_file_id="root", new_name="attrs2")
    again = ali.get_file(f.file_id)
    assert (again.starred, again.description) == (True, "quarterly report"), repr(again)
    assert json.loads(again.user_meta)["project"] == "q3"
    assert ali.get_file(folder).starred is True
    assert sorted(x.name for x in ali.get_starred_list()) == ["attrs2", "doc.txt"]
    assert ali.starred_file(f.file_id, False).starred is False
    assert [x.name for x in ali.get_starred_list()] == ["attrs2"]


def test_recycle_bin(server, drive, ali, tmp_path):
    keep = _folder(ali, "keep")
    box = _folder(ali, "box", keep)
    inner_data = os.urandom(300)
    inner = _upload(ali, tmp_path, "in.bin", inner_data, box)
    loose = _upload(ali, tmp_path, "loose.bin", os.urandom(200), keep)
    s3, bucket = drive.s3(server), drive.default_drive_id

    res = ali.move_file_to_trash(box)
    assert not isinstance(res, Null), repr(res)
    assert _names(ali, keep) == ["loose.bin"]
    assert list_all_keys(s3, bucket, "keep/box/") == [], "trash is not in S3 listings"
    assert ali.get_drive().used_size == 500, "trashed bytes still count"
    ali.move_file_to_trash(loose.file_id)
    listed = ali.get_recyclebin_list()
    assert [(i.name, i.type, i.trashed) for i in listed] == [("loose.bin", "file", True), ("box", "folder", True)]

    # Restore puts it back with everything in it and its ids.
    res = ali.restore_file(box)
    assert not isinstance(res, Null), repr(res)
    assert ali.get_file_by_path("keep/box/in.bin").file_id == inner.file_id
    assert get_body(s3, bucket, "keep/box/in.bin") == inner_data
    assert [i.name for i in ali.get_recyclebin_list()] == ["loose.bin"]
    # A name taken meanwhile: restored beside it, auto-renamed.
    _upload(ali, tmp_path, "loose.bin", b"new", keep)
    assert _error_code(ali.restore_file("f" * 40)) == "NotFound.File"
    ali.restore_file(loose.file_id)
    assert sorted(_names(ali, keep)) == ["box", "loose(1).bin", "loose.bin"]

    # The folder it was in deleted: refused, the item stays in the bin.
    ali.move_file_to_trash(inner.file_id)
    raw = _raw(server, ali, drive)
    r = raw.post("/v2/file/delete", {"drive_id": bucket, "file_id": box})
    assert r.status_code == 202, r.text
    assert _error_code(ali.restore_file(inner.file_id)) == "NotFound.ParentFileId"
    assert [i.name for i in ali.get_recyclebin_list()] == ["in.bin"]
    # Deleting a trashed id purges it for good.
    r = raw.post("/v2/file/delete", {"drive_id": bucket, "file_id": inner.file_id})
    assert r.status_code == 204, r.text
    assert ali.get_recyclebin_list() == []
    assert ali.get_drive().used_size == 203
    assert_no_object(s3, bucket, "keep/box/in.bin")


def test_trash_is_purged_after_the_retention(env_server_factory, tmp_path):
    srv = env_server_factory({"CHUAN_TRASH_RETENTION_SECS": "1"}, name="retention")
    drive = create_drive_tenant(srv)
    with AliyunRedirect(srv.endpoint):
        ali = make_aligo(drive, tmp_path / "cfg")
        f = _upload(ali, tmp_path, "old.bin", os.urandom(4096), "root")
        ali.move_file_to_trash(f.file_id)
        assert len(ali.get_recyclebin_list()) == 1
        blobs = _blob_count(srv)
        time.sleep(1.5)
        report = srv.admin_gc(grace_secs=0)
        assert report["trash_purged"] == 1, report
        assert ali.get_recyclebin_list() == []
        time.sleep(0.01)
        srv.admin_gc(grace_secs=0)
        assert _blob_count(srv) == blobs - 1, "the purged file's blob is freed"
        assert ali.get_drive().used_size == 0


def test_bad_moves_are_refused_and_change_nothing(server, drive, ali, tmp_path):
    outer = _folder(ali, "outer")
    inner = _folder(ali, "inner", outer)
    f = _upload(ali, tmp_path, "f.txt", os.urandom(64), outer)
    assert _error_code(ali.move_file(outer, to_parent_file_id=inner)) == "InvalidParameter.ToParentFileId"
    assert _error_code(ali.move_file(outer, to_parent_file_id=outer)) == "InvalidParameter.ToParentFileId"
    assert _error_code(ali.move_file(f.file_id, new_name="a/b")) == "InvalidParameter"
    assert _error_code(ali.move_file(f.file_id, new_name="x" * 1025)) == "InvalidParameter.Name"
    assert _error_code(ali.move_file(f.file_id, new_name="..")) == "InvalidParameter"
    assert _error_code(ali.move_file(f.file_id, new_name="")) == "InvalidParameter"
    assert _error_code(ali.copy_file(f.file_id, to_parent_file_id=f.file_id)) == "InvalidParameter.ParentFileId"
    other = create_drive_tenant(server)
    assert _error_code(ali.move_file(f.file_id, to_drive_id=other.default_drive_id)) == "InvalidParameter.ToDriveId"
    assert sorted(_names(ali, outer)) == ["f.txt", "inner"]
    assert _names(ali, inner) == []
    # A folder cannot take a file's name (nor the reverse).
    r = _raw(server, ali, drive).post(
        "/adrive/v2/file/createWithFolders",
        {"drive_id": drive.default_drive_id, "parent_file_id": outer, "name": "f.txt", "type": "folder",
         "check_name_mode": "refuse"},
    )
    assert (r.status_code, r.json()["code"]) == (409, "AlreadyExist.File"), r.text
    assert sorted(_names(ali, outer)) == ["f.txt", "inner"]
