"""Tencent COS JSON API v3 (/files/v1), driven by the real `qcloud-cos` 3.3.6
SDK (ported to Python 3 by scripts/port-cos-sdk.py, see cos_helpers) and raw
signed requests (cos_helpers) for what the SDK cannot send.

Contract (see /work/shared/specs/client-sdks.md §3 and test_cos_v4.py): the
same files, signatures, envelope and error codes as v4, under /files/v1, plus
* list: `pattern` (eListBoth | eListDirOnly | eListFileOnly), `order` (0
  ascending, 1 descending), `prefix`, paging by `context` until `listover`;
* slice upload is one op, `upload_slice`: without `session` it is the control
  request (sha, filesize, slice_size, biz_attr, insertOnly) answering
  {session, slice_size, offset} (offset = first missing byte, so a re-sent
  control resumes an unfinished upload) or access_url (instant upload, same
  tenant only); with session+offset+filecontent a data slice; the answer to
  the slice that completes the file carries access_url (file created, sha
  verified, -174 otherwise);
* update carries `flag` (0x01 biz_attr, 0x40 custom_headers, 0x80
  authority): only flagged fields apply;
* move is POST JSON {"op":"move","dest_fileid","to_over_write"} with a
  multi-use (or once) signature.
"""

from __future__ import annotations

import os

from compat_helpers import KiB, MiB
from cos_helpers import (
    E_BAD_SIGN,
    E_DEST_EXISTS,
    E_DIR_NOT_EMPTY,
    E_EXISTS,
    E_EXPIRED,
    E_FILE_SHA,
    E_NO_PARENT,
    E_NO_SIGN,
    E_NOT_FOUND,
    assert_access_url,
    assert_code,
    assert_ok,
    assert_ts,
    cos,  # noqa: F401  (fixture)
    cos_json,
    import_cos_sdk,
    make_cos,  # noqa: F401  (fixture)
    no_proxy,  # noqa: F401  (fixture)
    ops,
    record_sdk_requests,
    sha1_hex,
    slices_of,
    tamper_mac,
    write_file,
)

API = "v1"


def sdk():
    return import_cos_sdk("v3")


def check_upload_answer(ctx, data: dict, cos_path: str, what: str) -> None:
    assert_access_url(ctx, data.get("access_url"), cos_path, what)
    assert data.get("resource_path") == ctx.resource_path(cos_path), f"{what}: resource_path: {data}"
    url = data.get("url")
    assert isinstance(url, str) and url.endswith(f"/{ctx.appid}/{ctx.bucket}{cos_path}"), f"{what}: url: {data}"
    assert "session" not in data, f"{what}: {data}"


def v3_upload(ctx, client, cos_path: str, data: bytes, tmp_path, biz_attr: str = "", insert_only: int = 1):
    local = write_file(tmp_path / f"v3-{os.urandom(4).hex()}.bin", data)
    return client.upload_single_file(sdk().UploadFileRequest(ctx.bucket, cos_path, local, biz_attr, insert_only))


def v3_slice(ctx, client, cos_path: str, local: str, slice_size: int = 1 * MiB, biz_attr: str = ""):
    return client.upload_slice_file(sdk().UploadSliceFileRequest(ctx.bucket, cos_path, local, slice_size, biz_attr))


def v3_list(ctx, client, path: str, num: int = 100, pattern: str = "eListBoth", prefix: str = "", order: int = 0):
    """All names through the SDK, paging by context."""
    names, context, pages = [], "", 0
    for _ in range(100):
        ret = client.list_folder(
            sdk().ListFolderRequest(ctx.bucket, path, num=num, pattern=pattern, prefix=prefix, context=context, order=order)
        )
        data = assert_ok(ret, f"v3 list {path} {pattern} order={order} prefix={prefix!r} page {pages}")
        infos = data.get("infos") or []
        assert len(infos) <= num, f"{len(infos)} entries for num={num}"
        names += [i["name"] for i in infos]
        pages += 1
        if data.get("listover") is True:
            return names, pages
        assert data.get("listover") is False, data
        context = data.get("context")
        assert isinstance(context, str) and context, data
    raise AssertionError("listing never over")


def raw_control(ctx, cos_path: str, data: bytes, slice_size: int, sha: str | None = None, **extra) -> dict:
    f = {
        "op": "upload_slice",
        "sha": sha if sha is not None else sha1_hex(data),
        "filesize": str(len(data)),
        "slice_size": str(slice_size),
        "biz_attr": "",
        "insertOnly": "1",
    }
    f.update(extra)
    return cos_json(ctx.post_form(cos_path, f, api=API), f"v3 control {cos_path}")


def raw_slice(ctx, cos_path: str, session: str, offset: int, chunk: bytes) -> dict:
    f = {"op": "upload_slice", "filecontent": chunk, "session": session, "offset": str(offset)}
    return cos_json(ctx.post_form(cos_path, f, api=API), f"v3 slice {cos_path} @{offset}")


# --------------------------------------------------------------------------


def test_v3_folders_stat_and_list_pattern_order_prefix(cos, tmp_path):
    client = cos.v3()
    data = assert_ok(client.create_folder(sdk().CreateFolderRequest(cos.bucket, "/v3d/", "folder-attr")), "create")
    assert_ts(data.get("ctime"), "ctime")
    st = assert_ok(client.stat_folder(sdk().StatFolderRequest(cos.bucket, "/v3d/")), "stat folder")
    assert st.get("biz_attr") == "folder-attr", st
    assert_code(client.create_folder(sdk().CreateFolderRequest(cos.bucket, "/x/y/", "")), E_NO_PARENT, "no parent")

    dirs = ["a1", "c3", "e5", "g7"]
    files = ["b2.txt", "d4.txt", "f6.txt", "h8.txt", "i9.txt", "j0.txt", "ba.txt", "bb.txt"]
    for d in dirs:
        assert_ok(client.create_folder(sdk().CreateFolderRequest(cos.bucket, f"/v3d/{d}/", "")), f"create {d}")
    for f in files:
        assert_ok(v3_upload(cos, client, f"/v3d/{f}", f.encode(), tmp_path), f"upload {f}")
    both = sorted(dirs + files)

    names, pages = v3_list(cos, client, "/v3d/", num=100)
    assert names == both and pages == 1, names
    names, pages = v3_list(cos, client, "/v3d/", num=5)
    assert names == both and pages == 3, (names, pages)
    names, _ = v3_list(cos, client, "/v3d/", num=5, order=1)
    assert names == both[::-1], names
    names, _ = v3_list(cos, client, "/v3d/", num=3, pattern="eListDirOnly")
    assert names == sorted(dirs), names
    names, _ = v3_list(cos, client, "/v3d/", num=3, pattern="eListFileOnly")
    assert names == sorted(files), names
    names, _ = v3_list(cos, client, "/v3d/", num=2, pattern="eListFileOnly", order=1)
    assert names == sorted(files)[::-1], names
    names, _ = v3_list(cos, client, "/v3d/", num=100, prefix="b")
    assert names == ["b2.txt", "ba.txt", "bb.txt"], names
    names, _ = v3_list(cos, client, "/v3d/", num=1, prefix="b", order=1)
    assert names == ["bb.txt", "ba.txt", "b2.txt"], names

    ret = client.list_folder(sdk().ListFolderRequest(cos.bucket, "/v3d/", num=100, pattern="eListFileOnly"))
    info = {i["name"]: i for i in assert_ok(ret, "list files")["infos"]}["d4.txt"]
    assert info.get("sha") == sha1_hex(b"d4.txt") and info.get("filesize") == 6, info

    assert_code(client.del_folder(sdk().DelFolderRequest(cos.bucket, "/v3d/")), E_DIR_NOT_EMPTY, "delete non-empty")
    assert_ok(client.del_folder(sdk().DelFolderRequest(cos.bucket, "/v3d/a1/")), "delete empty sub")
    assert not cos.s3_exists("v3d/a1/")
    assert_ok(client.update_folder(sdk().UpdateFolderRequest(cos.bucket, "/v3d/", "new-attr")), "update folder")
    assert assert_ok(client.stat_folder(sdk().StatFolderRequest(cos.bucket, "/v3d/")), "stat")["biz_attr"] == "new-attr"


def test_v3_simple_upload_stat_and_insert_only(cos, tmp_path):
    client = cos.v3()
    data = os.urandom(50 * KiB)
    sent = record_sdk_requests(client)
    up = assert_ok(v3_upload(cos, client, "/v3.bin", data, tmp_path, biz_attr="b"), "v3 upload")
    check_upload_answer(cos, up, "/v3.bin", "v3 upload")
    assert ops(sent) == ["upload"] and sent[0].fields.get("sha") == sha1_hex(data), sent
    assert "/files/v1/" in sent[0].url, sent[0].url
    cos.assert_stored("/v3.bin", data, "v3 upload")

    st = assert_ok(client.stat_file(sdk().StatFileRequest(cos.bucket, "/v3.bin")), "v3 stat")
    assert st.get("name") == "v3.bin" and st.get("biz_attr") == "b", st
    assert st.get("filesize") == len(data) and st.get("filelen") == len(data) and st.get("sha") == sha1_hex(data), st
    assert st.get("authority") == "eInvalid" and isinstance(st.get("custom_headers"), dict), st

    assert_code(v3_upload(cos, client, "/v3.bin", b"other", tmp_path), E_EXISTS, "v3 insertOnly=1")
    cos.assert_stored("/v3.bin", data, "refused")
    del sent[:]
    assert_ok(v3_upload(cos, client, "/v3.bin", b"other", tmp_path, insert_only=0), "v3 insertOnly=0")
    assert ops(sent) == ["upload"], ops(sent)
    cos.assert_stored("/v3.bin", b"other", "overwritten")

    assert_code(v3_upload(cos, client, "/nodir/v3.bin", b"x", tmp_path), E_NO_PARENT, "v3 upload without parent")
    cos.assert_absent("/nodir/v3.bin", "no parent")


def test_v3_serial_slice_upload(cos, tmp_path):
    data = os.urandom(3 * MiB + 512 * KiB)
    local = write_file(tmp_path / "s.bin", data)
    client = cos.v3()
    sent = record_sdk_requests(client)
    ret = v3_slice(cos, client, "/v3-slices.bin", local, biz_attr="sl")
    done = assert_ok(ret, "v3 slice upload")
    assert_access_url(cos, done.get("access_url"), "/v3-slices.bin", "v3 slice upload")
    # control + 4 data slices; an access_url before the last slice would
    # have made the SDK stop early
    assert ops(sent) == ["upload_slice"] * 5, ops(sent)
    assert sent[0].fields.get("sha") == sha1_hex(data) and "session" not in sent[0].fields, sent[0].fields
    assert [int(r.fields["offset"]) for r in sent[1:]] == [0, MiB, 2 * MiB, 3 * MiB], [r.fields for r in sent]
    cos.assert_stored("/v3-slices.bin", data, "v3 slice upload")
    assert cos.stat_ok("/v3-slices.bin").get("biz_attr") == "sl"


def test_v3_resume_from_the_server_offset(cos, tmp_path):
    data = os.urandom(4 * MiB)
    path = "/v3-resume.bin"
    ctl = assert_ok(raw_control(cos, path, data, 1 * MiB), "control")
    session = ctl.get("session")
    assert isinstance(session, str) and session and ctl.get("offset") == 0 and ctl.get("slice_size") == MiB, ctl
    sl = slices_of(data, 1 * MiB)
    for off, chunk in sl[:2]:
        d = assert_ok(raw_slice(cos, path, session, off, chunk), f"slice @{off}")
        assert "access_url" not in d, f"access_url before the file is complete: {d}"
    cos.assert_absent(path, "unfinished v3 upload")

    local = write_file(tmp_path / "r.bin", data)
    client = cos.v3()
    sent = record_sdk_requests(client)
    ret = v3_slice(cos, client, path, local)
    assert_ok(ret, "v3 resumed upload")
    assert ops(sent) == ["upload_slice"] * 3, f"the SDK must resume at offset 2 MiB: {[r.fields for r in sent]}"
    assert [int(r.fields["offset"]) for r in sent[1:]] == [2 * MiB, 3 * MiB], [r.fields for r in sent]
    assert sent[1].fields.get("session") == session, sent[1].fields
    cos.assert_stored(path, data, "v3 resumed upload")


def test_v3_wrong_sha_refused_at_completion(cos):
    data = os.urandom(2 * 524288 + 99)
    path = "/v3-wrong-sha.bin"
    s = assert_ok(raw_control(cos, path, data, 524288, sha=sha1_hex(b"not this")), "control")["session"]
    sl = slices_of(data, 524288)
    for off, chunk in sl[:-1]:
        assert_ok(raw_slice(cos, path, s, off, chunk), f"slice @{off}")
    assert_code(raw_slice(cos, path, s, sl[-1][0], sl[-1][1]), E_FILE_SHA, "completing slice, wrong sha")
    cos.assert_absent(path, "v3 wrong sha")


def test_v3_instant_upload_same_tenant_only(make_cos, tmp_path):
    a = make_cos()
    data = os.urandom(2 * MiB + 999)
    local = write_file(tmp_path / "i.bin", data)
    ca = a.v3()
    sent = record_sdk_requests(ca)
    assert_ok(v3_slice(a, ca, "/one.bin", local), "first upload")
    assert len(sent) == 4, ops(sent)

    del sent[:]
    hit = assert_ok(v3_slice(a, ca, "/two.bin", local), "instant upload")
    assert ops(sent) == ["upload_slice"], f"an instant upload sends the control request only: {[r.fields for r in sent]}"
    assert "session" not in hit, hit
    assert_access_url(a, hit.get("access_url"), "/two.bin", "v3 instant upload")
    a.assert_stored("/two.bin", data, "v3 instant upload")

    b = make_cos()
    cb = b.v3()
    sent_b = record_sdk_requests(cb)
    assert_ok(v3_slice(b, cb, "/mine.bin", local), "other tenant")
    assert len(sent_b) == 4, f"another tenant uploads everything: {ops(sent_b)}"
    b.assert_stored("/mine.bin", data, "other tenant")


def test_v3_update_applies_flagged_fields_only(cos, tmp_path):
    client = cos.v3()
    cos.upload("/upd.txt", b"update me", api=API, biz_attr="b0")

    req = sdk().UpdateFileRequest(cos.bucket, "/upd.txt")
    req.set_biz_attr("b1")
    sent = record_sdk_requests(client)
    assert_ok(client.update_file(req), "update biz_attr")
    assert sent[0].fields.get("flag") == "1", sent[0].fields
    st = cos.stat_ok("/upd.txt", api=API)
    assert st.get("biz_attr") == "b1" and st.get("authority") == "eInvalid", st

    # flag 0x01 only: the authority in the body must be ignored
    r = cos.post_json("/upd.txt", {"op": "update", "flag": "1", "biz_attr": "b2", "authority": "eWPrivateRPublic"}, api=API)
    assert_ok(cos_json(r, "raw update flag=1"), "raw update flag=1")
    st = cos.stat_ok("/upd.txt", api=API)
    assert st.get("biz_attr") == "b2" and st.get("authority") == "eInvalid", f"unflagged authority applied: {st}"
    # flag 0x80 only: biz_attr in the body is ignored
    r = cos.post_json("/upd.txt", {"op": "update", "flag": str(0x80), "biz_attr": "b3", "authority": "eWPrivateRPublic"}, api=API)
    assert_ok(cos_json(r, "raw update flag=0x80"), "raw update flag=0x80")
    st = cos.stat_ok("/upd.txt", api=API)
    assert st.get("biz_attr") == "b2" and st.get("authority") == "eWPrivateRPublic", st
    r = cos.download("/upd.txt", sign=None)
    assert r.status_code == 200 and r.content == b"update me", (r.status_code, r.text[:200])

    req = sdk().UpdateFileRequest(cos.bucket, "/upd.txt")
    req.set_content_type("text/plain")
    req.set_x_cos_meta("x-cos-meta-k", "v")
    req.set_authority("eWRPrivate")
    del sent[:]
    assert_ok(client.update_file(req), "update headers + authority")
    assert sent[0].fields.get("flag") == str(0x40 | 0x80), sent[0].fields
    st = cos.stat_ok("/upd.txt", api=API)
    ch = {k.lower(): v for k, v in (st.get("custom_headers") or {}).items()}
    assert ch.get("content-type") == "text/plain" and ch.get("x-cos-meta-k") == "v", st
    assert st.get("authority") == "eWRPrivate" and st.get("biz_attr") == "b2", st
    assert cos.download("/upd.txt", sign=None).status_code == 403
    h = cos.s3().head_object(Bucket=cos.bucket, Key="upd.txt")
    assert h.get("ContentType") == "text/plain" and h.get("Metadata", {}).get("k") == "v", h


def test_v3_move_with_and_without_overwrite(cos, tmp_path):
    client = cos.v3()
    cos.mkdir("/m3/", api=API)
    a, d = os.urandom(4000), os.urandom(6000)
    cos.upload("/m3/a.bin", a, api=API)
    cos.upload("/m3/d.bin", d, api=API)

    def mv(src, dst, over=0):
        return client.move_file(sdk().MoveFileRequest(cos.bucket, src, dst, over))

    sent = record_sdk_requests(client)
    assert_ok(mv("/m3/a.bin", "/m3/b.bin"), "v3 move")
    assert sent[0].op == "move" and sent[0].fields.get("to_over_write") == 0, sent[0].fields
    cos.assert_absent("/m3/a.bin", "moved away")
    cos.assert_stored("/m3/b.bin", a, "moved")
    # the SDK insists on an absolute dest_fileid; a bare name (same dir) raw, multi-signed
    assert_code(mv("/m3/b.bin", "c.bin"), -1, "the v3 SDK refuses a relative dest itself")
    r = cos.post_json("/m3/b.bin", {"op": "move", "dest_fileid": "c.bin", "to_over_write": 0}, auth="more", api=API)
    assert_ok(cos_json(r, "v3 move to a name"), "v3 move to a name")
    cos.assert_absent("/m3/b.bin", "renamed away")
    cos.assert_stored("/m3/c.bin", a, "renamed")
    assert_code(mv("/m3/c.bin", "/m3/d.bin"), E_DEST_EXISTS, "v3 move onto existing")
    cos.assert_stored("/m3/c.bin", a, "refused move")
    cos.assert_stored("/m3/d.bin", d, "refused move")
    assert_ok(mv("/m3/c.bin", "/m3/d.bin", 1), "v3 move with overwrite")
    cos.assert_absent("/m3/c.bin", "moved")
    cos.assert_stored("/m3/d.bin", a, "overwritten")
    assert_code(mv("/m3/d.bin", "/gone/x.bin"), E_NO_PARENT, "v3 move into a missing dir")
    assert_code(mv("/m3/none.bin", "/m3/x.bin"), E_NOT_FOUND, "v3 move a missing file")

    # a once signature is accepted for the v3 move as well
    r = cos.post_json("/m3/d.bin", {"op": "move", "dest_fileid": "/m3/e.bin", "to_over_write": 0}, auth="once", api=API)
    assert_ok(cos_json(r, "v3 move with a once sign"), "v3 move with a once sign")
    cos.assert_stored("/m3/e.bin", a, "moved with a once sign")


def test_v3_delete_file(cos, tmp_path):
    client = cos.v3()
    cos.upload("/del3.txt", b"x", api=API)
    assert_ok(client.del_file(sdk().DelFileRequest(cos.bucket, "/del3.txt")), "v3 delete")
    cos.assert_absent("/del3.txt", "v3 delete")
    assert_code(client.del_file(sdk().DelFileRequest(cos.bucket, "/del3.txt")), E_NOT_FOUND, "v3 delete again")
    assert_code(client.stat_file(sdk().StatFileRequest(cos.bucket, "/del3.txt")), E_NOT_FOUND, "v3 stat deleted")


def test_v3_auth_refusals_store_nothing(cos):
    data = b"refused v3"
    fields = {"op": "upload", "filecontent": data, "sha": sha1_hex(data), "biz_attr": "", "insertOnly": "1"}
    for what, auth, code in (
        ("no sign", None, E_NO_SIGN),
        ("tampered sign", tamper_mac(cos.sign_more("/r3.bin")), E_BAD_SIGN),
        ("expired sign", cos.sign_more("/r3.bin", expires_in=-60), E_EXPIRED),
    ):
        r = cos.post_form("/r3.bin", fields, auth=auth, api=API)
        assert_code(cos_json(r, f"v3 upload, {what}"), code, f"v3 upload, {what}")
    cos.assert_absent("/r3.bin", "v3 refusals")
    # the SDK with a wrong secret
    client = cos.v3(secret_key=cos.secret_key + "x")
    assert_code(client.stat_folder(sdk().StatFolderRequest(cos.bucket, "/")), E_BAD_SIGN, "v3 SDK with a wrong secret")


def test_v3_v4_and_s3_share_files(cos, tmp_path):
    client = cos.v3()
    data = os.urandom(70 * KiB)
    assert_ok(v3_upload(cos, client, "/shared.bin", data, tmp_path), "v3 upload")
    st4 = cos.stat_ok("/shared.bin", api="v2")
    assert st4.get("sha") == sha1_hex(data), st4
    assert cos.s3_bytes("shared.bin") == data
    cos.s3_put("from-s3/f.txt", b"made by s3")
    st = assert_ok(client.stat_file(sdk().StatFileRequest(cos.bucket, "/from-s3/f.txt")), "v3 stat of an S3 object")
    assert st.get("sha") == sha1_hex(b"made by s3") and st.get("filesize") == 10, st
    names, _ = v3_list(cos, client, "/", num=10)
    assert names == ["from-s3", "shared.bin"], names
