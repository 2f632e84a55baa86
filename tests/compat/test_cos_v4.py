"""Tencent COS JSON API v4 (/files/v2), driven by the real `qcloud_cos_v4`
0.0.9 SDK (ported to Python 3 by scripts/port-cos-sdk.py, see cos_helpers)
and, for what the SDK cannot send (no sha, a wrong sha, a replayed or
tampered signature, copy, upload_slice_list, a partial slice upload), by raw
requests signed with an independent signer (cos_helpers).

Contract (summary; see /work/shared/specs/client-sdks.md §3):
* tenants: POST /_chuan/admin/tenants answers `cos_appid` (int >= 1e9); COS
  appid = cos_appid, SecretID/SecretKey = the tenant's S3 keys; buckets are
  created through S3; COS path /a/b.txt == S3 key a/b.txt, dir /a/ == 0-byte
  key a/;
* auth: Authorization = base64(HMAC-SHA1(secret, plain) || plain), plain
  `a=&k=&e=&t=&r=&f=&b=`; multi-use (e > now) for create/list/stat/upload/
  slices; once (e = 0, f bound, single use) for delete/update/move/copy;
* envelope: HTTP 200 {"code": 0, ...} or HTTP 400 {"code": <negative>, ...}
  with the contract's codes (cos_helpers.E_*);
* directories (create with biz_attr, stat, list with num/context/listover
  paging and a prefix, delete only when empty), simple upload (sha optional
  but verified, insertOnly), slice upload (init/data/finish/list, uploadparts
  SHA-1 chain states, -4019 resume, parallel slices), instant upload by
  sha+filesize for the same tenant only, stat/update/move/copy/delete,
  downloads on <bucket>-<appid>.<host> with a download sign (small `e`
  relative: the SDK's 300-second bug), Range, public-read authority;
* the same objects through S3 (boto3), byte for byte, with the SHA-1 in stat.
"""

from __future__ import annotations

import json
import os
import threading
import time
import types

import pytest
import requests
from boto3.s3.transfer import TransferConfig

from adrive_helpers import metric_value
from compat_helpers import KiB, MiB
from cos_helpers import (
    E_APPID_MISMATCH,
    E_BAD_FORM,
    E_BAD_JSON,
    E_BAD_NUM,
    E_BAD_PATH,
    E_BAD_SIGN,
    E_BUCKET_MISMATCH,
    E_DEST_EXISTS,
    E_DIR_EXISTS,
    E_DIR_NOT_EMPTY,
    E_EXISTS,
    E_FILE_PATH_SLASH,
    E_EXPIRED,
    E_FILE_SHA,
    E_FILEID_MISMATCH,
    E_MULTI_NEEDED,
    E_NO_FILECONTENT,
    E_NO_OP,
    E_NO_PARENT,
    E_NO_SESSION,
    E_NO_SIGN,
    E_NOT_FOUND,
    E_ONCE_NEEDED,
    E_REPLAYED,
    E_SECRET_ID_OTHER_TENANT,
    E_SHA_MISMATCH,
    E_SLICE_RANGE,
    E_SLICE_SHA,
    E_SLICE_SIZE,
    E_SLICES_MISSING,
    E_TOO_BIG,
    E_UNFINISHED,
    E_UNKNOWN_OP,
    E_UNKNOWN_SECRET_ID,
    api_fileid,
    assert_access_url,
    assert_code,
    assert_int,
    assert_ok,
    assert_ts,
    cos,  # noqa: F401  (fixture)
    cos_json,
    cos_sign,
    cos_sign_plain,
    create_cos_tenant,
    decode_sign,
    import_cos_sdk,
    make_cos,  # noqa: F401  (fixture)
    no_proxy,  # noqa: F401  (fixture)
    ops,
    pattern_bytes,
    record_sdk_requests,
    sdk_module,
    sha1_hex,
    sign_plain,
    slices_of,
    tamper_mac,
    uploadparts,
    write_file,
)

DEDUP_SLACK = 64 * KiB

# client-sdks.md §3.3 worked example
EX_APPID, EX_SID, EX_SKEY, EX_BUCKET, EX_PATH = 1250000000, "AKIDexample", "secretKEY", "mybucket", "/dir/hello.txt"
EX_T, EX_R = 1700000000, 123456789
EX_SIGN_MORE = (
    "bZTQ7KifeX4HKi6myFpbdJQ2y6BhPTEyNTAwMDAwMDAmaz1BS0lEZXhhbXBsZSZlPTE3MDAwMDAzMDAmdD0xNzAwMDAwMDAwJnI9MTIz"
    "NDU2Nzg5JmY9LzEyNTAwMDAwMDAvbXlidWNrZXQvZGlyL2hlbGxvLnR4dCZiPW15YnVja2V0"
)
EX_SIGN_ONCE = (
    "QETRr28f+I37R0LVPxweVUfC7dxhPTEyNTAwMDAwMDAmaz1BS0lEZXhhbXBsZSZlPTAmdD0xNzAwMDAwMDAwJnI9MTIzNDU2Nzg5JmY9"
    "LzEyNTAwMDAwMDAvbXlidWNrZXQvZGlyL2hlbGxvLnR4dCZiPW15YnVja2V0"
)


def sdk():
    return import_cos_sdk("v4")


def upload_sdk(ctx, cos_path: str, data: bytes, tmp_path, biz_attr: str = "", insert_only: int = 1, client=None):
    local = write_file(tmp_path / f"up-{os.urandom(4).hex()}.bin", data)
    client = client or ctx.v4()
    return client.upload_single_file(sdk().UploadFileRequest(ctx.bucket, cos_path, local, biz_attr, insert_only))


def slice_request(ctx, cos_path: str, local: str, enable_sha1: bool = True, max_con: int = 1, biz_attr: str = ""):
    return sdk().UploadSliceFileRequest(
        ctx.bucket, cos_path, local, 1 * MiB, biz_attr, enable_sha1=enable_sha1, max_con=max_con
    )


def check_upload_answer(ctx, data: dict, cos_path: str, what: str, api: str = "v2") -> None:
    """access_url / resource_path / source_url / url of an upload answer."""
    assert_access_url(ctx, data.get("access_url"), cos_path, what)
    assert data.get("resource_path") == ctx.resource_path(cos_path), f"{what}: resource_path: {data}"
    assert data.get("url") == ctx.api_url(cos_path, api), f"{what}: url: {data}"
    assert isinstance(data.get("source_url"), str) and data["source_url"], f"{what}: source_url: {data}"
    assert "session" not in data, f"{what}: an upload answer must not carry a session: {data}"


def test_upload_answer_urls_follow_the_contract(cos):
    """access_url = http://<bucket>-<appid>.<request Host><cos_path> (the Host
    the client used; `localhost` with the same port when that Host is an IP
    address, since `<bucket>-<appid>.127.0.0.1` names no host),
    resource_path = /<appid>/<bucket><cos_path>,
    url = http://<Host>/files/v2/<appid>/<bucket><cos_path>."""
    r = requests.post(
        cos.api_url("/urls2.txt"),
        files={"op": "upload", "filecontent": b"v", "sha": sha1_hex(b"v")},
        headers={"Authorization": cos.sign_more("/urls2.txt"), "Host": f"cos.example.test:{cos.server.port}"},
        timeout=30,
    )
    up = assert_ok(cos_json(r, "upload with Host cos.example.test"), "upload with Host cos.example.test")
    assert up.get("access_url") == f"http://{cos.bucket}-{cos.appid}.cos.example.test:{cos.server.port}/urls2.txt", up
    assert up.get("url") == f"http://cos.example.test:{cos.server.port}/files/v2/{cos.appid}/{cos.bucket}/urls2.txt", up
    assert up.get("resource_path") == f"/{cos.appid}/{cos.bucket}/urls2.txt", up

    # the Host the SDKs send here: 127.0.0.1:PORT
    up = cos.upload("/urls.txt", b"u")
    assert up.get("resource_path") == f"/{cos.appid}/{cos.bucket}/urls.txt", up
    assert up.get("url") == f"http://127.0.0.1:{cos.server.port}/files/v2/{cos.appid}/{cos.bucket}/urls.txt", up
    assert up.get("access_url") == f"http://{cos.bucket}-{cos.appid}.localhost:{cos.server.port}/urls.txt", up
    # ... and that download URL serves the file (the test process resolves *.localhost).
    got = requests.get(up["access_url"] + "?sign=" + cos.sign_download("/urls.txt"), timeout=30)
    assert got.status_code == 200 and got.content == b"u", (got.status_code, got.text[:200])


# --------------------------------------------------------------------------
# helpers checked against the spec's worked examples and the SDK


def test_signer_matches_spec_worked_example_and_both_sdks(monkeypatch):
    fileid = api_fileid(EX_APPID, EX_BUCKET, EX_PATH)
    assert fileid == "/1250000000/mybucket/dir/hello.txt"
    more = cos_sign(EX_APPID, EX_SID, EX_SKEY, EX_BUCKET, fileid, EX_T + 300, EX_T, EX_R)
    once = cos_sign(EX_APPID, EX_SID, EX_SKEY, EX_BUCKET, fileid, 0, EX_T, EX_R)
    assert more == EX_SIGN_MORE
    assert once == EX_SIGN_ONCE
    mac, plain = decode_sign(more)
    assert mac.hex() == "6d94d0eca89f797e072a2ea6c85a5b749436cba0"
    assert plain == (
        "a=1250000000&k=AKIDexample&e=1700000300&t=1700000000&r=123456789"
        "&f=/1250000000/mybucket/dir/hello.txt&b=mybucket"
    )
    assert sign_plain(EX_APPID, EX_SID, EX_T + 300, EX_T, EX_R, "/dir/hello.txt", EX_BUCKET) == (
        "a=1250000000&k=AKIDexample&e=1700000300&t=1700000000&r=123456789&f=/dir/hello.txt&b=mybucket"
    )
    # tamper_mac changes the MAC only
    t_mac, t_plain = decode_sign(tamper_mac(more))
    assert t_plain == plain and t_mac != mac

    # The ported SDKs (v4 and v3) sign byte-identically, also for a path
    # that needs quoting.
    path = "/目录 a/file name~+.txt"
    for flavor in ("v4", "v3"):
        mod = import_cos_sdk(flavor)
        auth_mod = sdk_module(flavor, "cos_auth")
        monkeypatch.setattr(auth_mod, "time", types.SimpleNamespace(time=lambda: EX_T))
        monkeypatch.setattr(auth_mod, "random", types.SimpleNamespace(randint=lambda a, b: EX_R))
        auth = mod.Auth(mod.CredInfo(EX_APPID, EX_SID, EX_SKEY))
        assert auth.sign_more(EX_BUCKET, EX_PATH, EX_T + 300) == EX_SIGN_MORE, flavor
        assert auth.sign_once(EX_BUCKET, EX_PATH) == EX_SIGN_ONCE, flavor
        fid = api_fileid(EX_APPID, EX_BUCKET, path)
        assert "%20" in fid and "~" in fid and "%2B" in fid, fid
        assert auth.sign_more(EX_BUCKET, path, EX_T + 60) == cos_sign(
            EX_APPID, EX_SID, EX_SKEY, EX_BUCKET, fid, EX_T + 60, EX_T, EX_R
        ), flavor
        if flavor == "v4":
            dl = auth.sign_download(EX_BUCKET, EX_PATH, EX_T + 300)
            assert decode_sign(dl)[1] == sign_plain(EX_APPID, EX_SID, EX_T + 300, EX_T, EX_R, "/dir/hello.txt", EX_BUCKET)
            assert dl == cos_sign_plain(EX_SKEY, decode_sign(dl)[1])
        monkeypatch.undo()


def test_uploadparts_helper_matches_spec_and_sdk(tmp_path):
    data = pattern_bytes(2 * MiB + 512 * KiB)
    parts = uploadparts(data, 1 * MiB)
    assert parts == [
        {"offset": 0, "datalen": 1048576, "datasha": "463935c7eea4ca2705d0f481ecedb31f4d0f3a96"},
        {"offset": 1048576, "datalen": 1048576, "datasha": "657c72d675f1e792607e5c0a7405f66cbdb8c290"},
        {"offset": 2097152, "datalen": 524288, "datasha": "d08b7e21afb7bc45b7bc7e265d812094252a14ac"},
    ]
    assert parts[-1]["datasha"] == sha1_hex(data)
    local = write_file(tmp_path / "p.bin", data)
    assert sdk_module("v4", "cos_common").Sha1Util.get_sha1_by_slice(local, 1 * MiB) == parts


def test_tenants_get_distinct_cos_appids(server, no_proxy):
    a, b = create_cos_tenant(server), create_cos_tenant(server)
    assert a.appid != b.appid, (a, b)


# --------------------------------------------------------------------------
# directories


def test_create_dir_with_biz_attr_stat_and_refusals(cos):
    client = cos.v4()
    ret = client.create_folder(sdk().CreateFolderRequest(cos.bucket, "/docs/", "attr-docs"))
    data = assert_ok(ret, "create /docs/")
    assert_ts(data.get("ctime"), "create /docs/: ctime")
    assert cos.s3().head_object(Bucket=cos.bucket, Key="docs/")["ContentLength"] == 0

    st = assert_ok(client.stat_folder(sdk().StatFolderRequest(cos.bucket, "/docs/")), "stat /docs/")
    assert st.get("biz_attr") == "attr-docs", st
    assert_ts(st.get("ctime"), "stat /docs/: ctime")
    assert_ts(st.get("mtime"), "stat /docs/: mtime")

    # nested
    assert_ok(client.create_folder(sdk().CreateFolderRequest(cos.bucket, "/docs/sub/", "")), "create /docs/sub/")
    assert cos.s3_exists("docs/sub/")

    # exists
    assert_code(client.create_folder(sdk().CreateFolderRequest(cos.bucket, "/docs/", "x")), E_DIR_EXISTS, "create /docs/ again")
    st = assert_ok(client.stat_folder(sdk().StatFolderRequest(cos.bucket, "/docs/")), "stat /docs/")
    assert st.get("biz_attr") == "attr-docs", f"a refused create changed biz_attr: {st}"

    # parent missing
    assert_code(
        client.create_folder(sdk().CreateFolderRequest(cos.bucket, "/nope/sub/", "")), E_NO_PARENT, "create /nope/sub/"
    )
    assert cos.s3_keys("nope") == [], "a refused create stored something"

    # stat of a missing dir
    assert_code(client.stat_folder(sdk().StatFolderRequest(cos.bucket, "/absent/")), E_NOT_FOUND, "stat /absent/")


def test_list_paging_over_250_entries(cos):
    client = cos.v4()
    cos.mkdir("/many/", "many")
    dirs = [f"d{i}" for i in range(6)]
    for d in dirs:
        cos.mkdir(f"/many/{d}/")
    files = {f"f{i:03d}.txt": f"file {i}\n".encode() for i in range(250)}
    s3 = cos.s3()
    for name, body in files.items():
        s3.put_object(Bucket=cos.bucket, Key=f"many/{name}", Body=body)
    expected = sorted(dirs + list(files))
    assert len(expected) == 256

    got, context, pages = [], "", []
    for _ in range(10):
        ret = client.list_folder(sdk().ListFolderRequest(cos.bucket, "/many/", num=100, context=context))
        data = assert_ok(ret, f"list /many/ page {len(pages)}")
        infos = data.get("infos") or []
        pages.append((len(infos), data.get("listover")))
        assert len(infos) <= 100, f"page {len(pages)}: {len(infos)} entries for num=100"
        assert_int(data.get("dircount"), "dircount")
        assert_int(data.get("filecount"), "filecount")
        got.extend(infos)
        if data.get("listover") is True:
            break
        assert data.get("listover") is False, data.get("listover")
        context = data.get("context")
        assert isinstance(context, str) and context, f"list not over but no context: {data}"
    else:
        raise AssertionError(f"listing never over: {pages}")
    names = [i.get("name") for i in got]
    assert names == expected, f"paged listing differs (pages {pages}): {names[:5]}... vs {expected[:5]}..."
    assert [p[0] for p in pages] == [100, 100, 56], f"pages (size, listover): {pages}"

    by_name = {i["name"]: i for i in got}
    for d in dirs:
        info = by_name[d]
        assert "filesize" not in info and "sha" not in info, f"dir entry with file fields: {info}"
        assert_ts(info.get("ctime"), f"{d}: ctime")
        assert_ts(info.get("mtime"), f"{d}: mtime")
    info = by_name["f007.txt"]
    assert info.get("filesize") == len(files["f007.txt"]) and info.get("filelen") == len(files["f007.txt"]), info
    assert info.get("sha") == sha1_hex(files["f007.txt"]), info
    assert_access_url(cos, info.get("access_url"), "/many/f007.txt", "list f007.txt")
    assert isinstance(info.get("source_url"), str), info
    assert "authority" in info, info
    assert_ts(info.get("mtime"), "f007: mtime")

    # num outside 1..1000
    for num in (0, 1001):
        assert_code(cos.list("/many/", num=num), E_BAD_NUM, f"list num={num}")


def test_list_with_prefix(cos):
    client = cos.v4()
    cos.mkdir("/pre/")
    for name in ("apple1", "apple2", "banana", "zap"):
        cos.upload(f"/pre/{name}", name.encode())
    cos.mkdir("/pre/apricot/")
    cos.mkdir("/pre/cherry/")
    ret = client.list_folder(sdk().ListFolderRequest(cos.bucket, "/pre/", num=100, prefix="ap"))
    data = assert_ok(ret, "list /pre/ prefix ap")
    assert [i["name"] for i in data.get("infos") or []] == ["apple1", "apple2", "apricot"], data
    assert data.get("listover") is True, data

    # paging inside a prefix
    names, ctx = [], ""
    for _ in range(5):
        data = assert_ok(
            client.list_folder(sdk().ListFolderRequest(cos.bucket, "/pre/", num=1, prefix="ap", context=ctx)),
            "list /pre/ prefix ap num=1",
        )
        names += [i["name"] for i in data.get("infos") or []]
        if data.get("listover"):
            break
        ctx = data["context"]
    assert names == ["apple1", "apple2", "apricot"], names

    data = assert_ok(client.list_folder(sdk().ListFolderRequest(cos.bucket, "/pre/", prefix="nothing")), "list none")
    assert (data.get("infos") or []) == [] and data.get("listover") is True, data


def test_list_shows_s3_keys_and_implicit_dirs(cos):
    s3 = cos.s3()
    s3.put_object(Bucket=cos.bucket, Key="imp/a/b.txt", Body=b"deep")
    s3.put_object(Bucket=cos.bucket, Key="imp/c.txt", Body=b"cc")
    infos = cos.list_all("/imp/")
    assert [i["name"] for i in infos] == ["a", "c.txt"], infos
    assert "filesize" not in infos[0], infos[0]
    assert infos[1].get("sha") == sha1_hex(b"cc") and infos[1].get("filesize") == 2, infos[1]
    root = [i["name"] for i in cos.list_all("/")]
    assert root == ["imp"], root


def test_delete_dir_only_when_empty(cos, tmp_path):
    client = cos.v4()
    cos.mkdir("/rm/")
    cos.upload("/rm/x.txt", b"x")
    assert_code(client.del_folder(sdk().DelFolderRequest(cos.bucket, "/rm/")), E_DIR_NOT_EMPTY, "delete non-empty /rm/")
    assert cos.s3_exists("rm/") and cos.s3_exists("rm/x.txt")
    assert_ok(client.del_file(sdk().DelFileRequest(cos.bucket, "/rm/x.txt")), "delete /rm/x.txt")
    assert_ok(client.del_folder(sdk().DelFolderRequest(cos.bucket, "/rm/")), "delete empty /rm/")
    assert cos.s3_keys("rm") == []
    assert_code(cos.stat("/rm/"), E_NOT_FOUND, "stat deleted /rm/")
    assert_code(client.del_folder(sdk().DelFolderRequest(cos.bucket, "/rm/")), E_NOT_FOUND, "delete /rm/ again")


def test_update_dir_biz_attr(cos):
    client = cos.v4()
    cos.mkdir("/ud/", "before")
    assert_ok(client.update_folder(sdk().UpdateFolderRequest(cos.bucket, "/ud/", "after")), "update /ud/")
    st = assert_ok(client.stat_folder(sdk().StatFolderRequest(cos.bucket, "/ud/")), "stat /ud/")
    assert st.get("biz_attr") == "after", st


# --------------------------------------------------------------------------
# simple upload


def test_simple_upload_sdk_answer_stat_and_s3(cos, tmp_path):
    data = os.urandom(100 * KiB + 3)
    client = cos.v4()
    sent = record_sdk_requests(client)
    ret = upload_sdk(cos, "/hello.bin", data, tmp_path, biz_attr="attr-1", client=client)
    up = assert_ok(ret, "upload /hello.bin")
    check_upload_answer(cos, up, "/hello.bin", "upload")
    assert "vid" in up, up
    assert ops(sent) == ["upload"] and sent[0].fields.get("sha") == sha1_hex(data), sent

    cos.assert_stored("/hello.bin", data, "sdk upload")
    st = assert_ok(client.stat_file(sdk().StatFileRequest(cos.bucket, "/hello.bin")), "stat /hello.bin")
    assert st.get("name") == "hello.bin", st
    assert st.get("biz_attr") == "attr-1", st
    assert st.get("filesize") == len(data) and st.get("filelen") == len(data), st
    assert st.get("sha") == sha1_hex(data), st
    assert_ts(st.get("ctime"), "ctime")
    assert_ts(st.get("mtime"), "mtime")
    assert_access_url(cos, st.get("access_url"), "/hello.bin", "stat")
    assert isinstance(st.get("source_url"), str) and st["source_url"], st
    assert st.get("authority") == "eInvalid", st
    assert isinstance(st.get("custom_headers"), dict), f"custom_headers must be a JSON object: {st}"

    # upload_file (the SDK's < 8 MiB path is the same single upload), unicode name
    local = write_file(tmp_path / "u.txt", b"unicode name")
    ret = client.upload_file(sdk().UploadFileRequest(cos.bucket, "/目录 x.txt", local))
    up = assert_ok(ret, "upload /目录 x.txt")
    assert up.get("resource_path") == cos.resource_path("/目录 x.txt"), up
    assert cos.s3_bytes("目录 x.txt") == b"unicode name"

    # empty file
    assert_ok(upload_sdk(cos, "/empty.bin", b"", tmp_path, client=client), "upload empty")
    cos.assert_stored("/empty.bin", b"", "empty upload")


def test_simple_upload_without_sha_and_with_wrong_sha(cos):
    data = os.urandom(20 * KiB)
    r = cos.post_form("/nosha.bin", {"op": "upload", "filecontent": data, "biz_attr": "", "insertOnly": "1"})
    check_upload_answer(cos, assert_ok(cos_json(r, "upload without sha"), "upload without sha"), "/nosha.bin", "no sha")
    cos.assert_stored("/nosha.bin", data, "upload without sha")

    r = cos.post_form(
        "/badsha.bin", {"op": "upload", "filecontent": data, "sha": sha1_hex(data + b"x"), "biz_attr": "", "insertOnly": "1"}
    )
    assert_code(cos_json(r, "upload with a wrong sha"), E_SHA_MISMATCH, "upload with a wrong sha")
    cos.assert_absent("/badsha.bin", "upload with a wrong sha")

    # a refused overwrite keeps the old content
    r = cos.post_form(
        "/nosha.bin", {"op": "upload", "filecontent": b"new", "sha": sha1_hex(b"other"), "biz_attr": "", "insertOnly": "0"}
    )
    assert_code(cos_json(r, "overwrite with a wrong sha"), E_SHA_MISMATCH, "overwrite with a wrong sha")
    cos.assert_stored("/nosha.bin", data, "refused overwrite")


def test_insert_only(cos, tmp_path):
    client = cos.v4()
    assert_ok(upload_sdk(cos, "/io.txt", b"version 1", tmp_path, client=client), "first upload")

    sent = record_sdk_requests(client)
    ret = upload_sdk(cos, "/io.txt", b"version 2", tmp_path, client=client)  # insert_only=1 (default)
    assert_code(ret, E_EXISTS, "insertOnly=1 on an existing file")
    cos.assert_stored("/io.txt", b"version 1", "insertOnly=1")

    del sent[:]
    ret = upload_sdk(cos, "/io.txt", b"version 3", tmp_path, insert_only=0, client=client)
    assert_ok(ret, "insertOnly=0 overwrite")
    # the server overwrote: the SDK did not need its delete-and-retry fallback
    assert ops(sent) == ["upload"], f"insertOnly=0 must overwrite in one request: {ops(sent)}"
    cos.assert_stored("/io.txt", b"version 3", "insertOnly=0")

    # slice init with insertOnly=1 on an existing file
    assert_code(cos.slice_init("/io.txt", 3 * MiB, 1 * MiB), E_EXISTS, "upload_slice_init insertOnly=1 on existing")
    # without insertOnly (default 1)
    r = cos.post_form("/io.txt", {"op": "upload", "filecontent": b"v4", "sha": sha1_hex(b"v4")})
    assert_code(cos_json(r, "upload without insertOnly"), E_EXISTS, "insertOnly defaults to 1")
    cos.assert_stored("/io.txt", b"version 3", "refused")


def test_upload_needs_parent_dir_and_a_file_path(cos):
    data = b"parent?"
    r = cos.post_form("/nodir/x.bin", {"op": "upload", "filecontent": data, "sha": sha1_hex(data), "insertOnly": "1"})
    assert_code(cos_json(r, "upload into a missing dir"), E_NO_PARENT, "upload into a missing dir")
    cos.assert_absent("/nodir/x.bin", "upload into a missing dir")
    assert cos.s3_keys("nodir") == []
    assert_code(cos.slice_init("/nodir/y.bin", 2 * MiB, 1 * MiB), E_NO_PARENT, "slice init into a missing dir")

    cos.mkdir("/nodir/")
    cos.upload("/nodir/x.bin", data)
    cos.assert_stored("/nodir/x.bin", data)
    # a parent that exists only implicitly (S3 key below it) is a directory too
    cos.s3_put("implicit/deeper/k.txt", b"k")
    cos.upload("/implicit/new.txt", b"n")
    cos.assert_stored("/implicit/new.txt", b"n")

    r = cos.post_form("/nodir/sub/", {"op": "upload", "filecontent": data, "sha": sha1_hex(data), "insertOnly": "1"})
    assert_code(cos_json(r, "upload to a path ending with /"), E_FILE_PATH_SLASH, "upload to a path ending with /")
    assert not cos.s3_exists("nodir/sub/")


def test_simple_upload_over_20_mib_refused(cos):
    data = b"\0" * (20 * MiB + 1)
    try:
        r = cos.post_form("/big.bin", {"op": "upload", "filecontent": data, "insertOnly": "1"})
    except requests.ConnectionError as e:  # pragma: no cover - reported as a failure with context
        raise AssertionError(f"simple upload > 20 MiB: the server dropped the connection instead of answering -285: {e}")
    assert_code(cos_json(r, "simple upload > 20 MiB"), E_TOO_BIG, "simple upload > 20 MiB")
    cos.assert_absent("/big.bin", "simple upload > 20 MiB")


# --------------------------------------------------------------------------
# slice upload


def test_slice_upload_30_mib_parallel_sdk(cos, tmp_path):
    data = os.urandom(30 * MiB)
    local = write_file(tmp_path / "big.bin", data)
    client = cos.v4()
    sent = record_sdk_requests(client)
    ret = client.upload_slice_file(slice_request(cos, "/big.bin", local, enable_sha1=True, max_con=4, biz_attr="big"))
    fin = assert_ok(ret, "parallel slice upload")
    check_upload_answer(cos, fin, "/big.bin", "finish")

    o = ops(sent)
    assert o[0] == "upload_slice_init" and o[-1] == "upload_slice_finish", o
    assert o.count("upload_slice_data") == 30, o
    offsets = sorted(int(r.fields["offset"]) for r in sent if r.op == "upload_slice_data")
    assert offsets == [i * MiB for i in range(30)], offsets
    init = sent[0].fields
    assert init.get("sha") == sha1_hex(data) and "uploadparts" in init, init

    # the SDK's pool threads never exit; cos_helpers made them daemon threads
    # so that this process can still end
    workers = [t for t in threading.enumerate() if type(t).__name__ == "WorkerThread"]
    assert workers and all(t.daemon for t in workers), workers

    cos.assert_stored("/big.bin", data, "parallel slice upload")
    st = cos.stat_ok("/big.bin")
    assert st.get("biz_attr") == "big", st

    out = tmp_path / "big.out"
    ret = client.download_file(sdk().DownloadFileRequest(cos.bucket, "/big.bin", str(out)))
    assert ret.get("code") == 0, ret
    got = out.read_bytes()
    assert got == data, f"SDK download: {len(got)} bytes, first bytes {got[:200]!r}"


def test_slice_upload_serial_sdk_without_sha(cos, tmp_path):
    data = os.urandom(2 * MiB + 1000)
    local = write_file(tmp_path / "s.bin", data)
    client = cos.v4()
    sent = record_sdk_requests(client)
    ret = client.upload_slice_file(slice_request(cos, "/serial.bin", local, enable_sha1=False, max_con=1))
    check_upload_answer(cos, assert_ok(ret, "serial slice upload"), "/serial.bin", "serial")
    assert ops(sent) == ["upload_slice_init"] + ["upload_slice_data"] * 3 + ["upload_slice_finish"], ops(sent)
    assert "sha" not in sent[0].fields, sent[0].fields
    cos.assert_stored("/serial.bin", data, "serial slice upload")


def test_interrupted_slice_upload_is_resumed(cos, tmp_path):
    data = os.urandom(3 * MiB + 512 * KiB)  # 4 slices of 1 MiB, the last 0.5 MiB
    local = write_file(tmp_path / "r.bin", data)
    path = "/resume.bin"
    client = cos.v4()
    fop = client._file_op
    req = slice_request(cos, path, local, enable_sha1=True)
    parts = sdk_module("v4", "cos_common").Sha1Util.get_sha1_by_slice(local, 1 * MiB)
    req.sha1_list, req.sha1_content = parts, parts[-1]["datasha"]
    sl = slices_of(data, 1 * MiB)

    init = assert_ok(fop._upload_slice_control(req), "init")
    session = init.get("session")
    assert isinstance(session, str) and session, init
    assert init.get("slice_size") == 1 * MiB, init
    assert init.get("serial_upload", 0) == 0, init
    assert "access_url" not in init, init
    for i in (0, 2):
        d = assert_ok(fop._upload_slice_data(req, sl[i][1], session, sl[i][0], retry=1), f"slice {i}")
        assert d.get("offset") == sl[i][0] and d.get("datalen") == len(sl[i][1]), d
        assert "access_url" not in d, f"a data slice answer must not carry access_url before finish: {d}"

    # -- the client dies here --
    cos.assert_absent(path, "unfinished slice upload")

    again = fop._upload_slice_control(req)
    assert_code(again, E_UNFINISHED, "init of an unfinished upload")
    assert again.get("data", {}).get("session") == session, f"-4019 must give the unfinished session: {again}"

    lst = assert_ok(cos.slice_list(path), "upload_slice_list")
    assert lst.get("session") == session, lst
    assert lst.get("slice_size") == 1 * MiB and lst.get("filesize") == len(data), lst
    parts_listed = sorted((p.get("offset"), p.get("datalen")) for p in lst.get("listparts") or [])
    assert parts_listed == [(0, MiB), (2 * MiB, MiB)], lst

    for i in (3, 1):
        assert_ok(fop._upload_slice_data(req, sl[i][1], session, sl[i][0], retry=1), f"missing slice {i}")
    fin = assert_ok(fop._upload_slice_finish(req, session, len(data)), "finish")
    check_upload_answer(cos, fin, path, "finish")
    cos.assert_stored(path, data, "resumed slice upload")

    done = assert_ok(cos.slice_list(path), "upload_slice_list after finish")
    assert "session" not in done, done
    assert_access_url(cos, done.get("access_url"), path, "upload_slice_list after finish")
    assert_code(cos.slice_list("/never-uploaded.bin"), E_NOT_FOUND, "upload_slice_list of nothing")
    # the finished session is gone
    assert_code(cos.slice_data(path, session, 0, sl[0][1]), E_NO_SESSION, "data for a finished session")


def test_resent_slice_replaces_it_and_slices_in_any_order(cos):
    data = os.urandom(1 * MiB + 100)
    path = "/anyorder.bin"
    init = assert_ok(cos.slice_init(path, len(data), 524288), "init")
    s = init["session"]
    sl = slices_of(data, 524288)
    assert_ok(cos.slice_data(path, s, sl[2][0], sl[2][1]), "slice 2")
    assert_ok(cos.slice_data(path, s, sl[0][0], os.urandom(524288)), "slice 0 (wrong bytes)")
    assert_ok(cos.slice_data(path, s, sl[1][0], sl[1][1]), "slice 1")
    assert_ok(cos.slice_data(path, s, sl[0][0], sl[0][1]), "slice 0 again (right bytes)")
    fin = assert_ok(cos.slice_finish(path, s, len(data), sha=sha1_hex(data)), "finish")
    check_upload_answer(cos, fin, path, "finish")
    cos.assert_stored(path, data, "slices in any order")


def test_finish_with_missing_slices_is_refused(cos):
    data = os.urandom(3 * 524288)
    path = "/missing-slices.bin"
    s = assert_ok(cos.slice_init(path, len(data), 524288), "init")["session"]
    sl = slices_of(data, 524288)
    for i in (0, 2):
        assert_ok(cos.slice_data(path, s, sl[i][0], sl[i][1]), f"slice {i}")
    assert_code(cos.slice_finish(path, s, len(data)), E_SLICES_MISSING, "finish with a slice missing")
    cos.assert_absent(path, "finish with a slice missing")
    assert_code(cos.slice_finish(path, s, len(data) - 1), E_SLICES_MISSING, "finish with another filesize")
    cos.assert_absent(path, "finish with another filesize")


# --------------------------------------------------------------------------
# instant upload (秒传)


def test_instant_upload_same_tenant_only(make_cos, server, tmp_path):
    a = make_cos()
    data = os.urandom(2 * MiB + 4321)
    local = write_file(tmp_path / "inst.bin", data)

    client = a.v4()
    sent = record_sdk_requests(client)
    assert_ok(client.upload_slice_file(slice_request(a, "/first.bin", local)), "first upload")
    assert ops(sent).count("upload_slice_data") == 3, ops(sent)

    # the same tenant again: the init answers with the file, nothing is sent
    del sent[:]
    before = server.admin_stats()
    slices_before = metric_value(server, "chuan_cos_slices_total")
    ret = client.upload_slice_file(slice_request(a, "/second.bin", local))
    hit = assert_ok(ret, "instant upload")
    assert ops(sent) == ["upload_slice_init"], f"instant upload must send no slices: {ops(sent)}"
    assert "session" not in hit, hit
    check_upload_answer(a, hit, "/second.bin", "instant")
    a.assert_stored("/second.bin", data, "instant upload")
    after = server.admin_stats()
    assert after["physical_bytes"] - before["physical_bytes"] <= DEDUP_SLACK, (before, after)
    assert metric_value(server, "chuan_cos_slices_total") == slices_before, "the server stored slices"

    # raw init with sha+filesize only (no uploadparts) is a hit as well
    r = a.slice_init("/third.bin", len(data), 1 * MiB, sha=sha1_hex(data))
    hit = assert_ok(r, "raw instant init")
    assert "session" not in hit, hit
    assert_access_url(a, hit.get("access_url"), "/third.bin", "raw instant init")
    a.assert_stored("/third.bin", data, "raw instant init")
    # the right sha with another filesize is not
    r = assert_ok(a.slice_init("/fourth.bin", len(data) + 1, 1 * MiB, sha=sha1_hex(data)), "init, other size")
    assert r.get("session") and "access_url" not in r, r

    # another tenant (own bucket): no shortcut, a normal full upload
    b = make_cos()
    cb = b.v4()
    sent_b = record_sdk_requests(cb)
    assert_ok(cb.upload_slice_file(slice_request(b, "/mine.bin", local)), "other tenant's upload")
    assert ops(sent_b) == ["upload_slice_init"] + ["upload_slice_data"] * 3 + ["upload_slice_finish"], ops(sent_b)
    assert metric_value(server, "chuan_cos_slices_total") == slices_before + 3
    b.assert_stored("/mine.bin", data, "other tenant")

    # ... and it cannot claim the file by its hash alone
    c = make_cos()
    init = assert_ok(c.slice_init("/claim.bin", len(data), 1 * MiB, sha=sha1_hex(data)), "claim init")
    assert init.get("session") and "access_url" not in init, init
    assert_code(c.slice_finish("/claim.bin", init["session"], len(data), sha=sha1_hex(data)), E_SLICES_MISSING, "claim finish")
    c.assert_absent("/claim.bin", "claim by hash")


# --------------------------------------------------------------------------
# update / move / copy / delete


def test_update_file_attributes_and_custom_headers(cos, tmp_path):
    client = cos.v4()
    data = b"<p>hello</p>\n"
    cos.upload("/page.html", data, biz_attr="v0")
    req = sdk().UpdateFileRequest(cos.bucket, "/page.html")
    req.set_biz_attr("v1")
    req.set_authority("eWPrivateRPublic")
    req.set_content_type("text/html; charset=utf-8")
    req.set_cache_control("max-age=60")
    req.set_content_disposition('attachment; filename="page.html"')
    req.set_content_language("de")
    req.set_x_cos_meta("x-cos-meta-color", "blue")
    sent = record_sdk_requests(client)
    assert_ok(client.update_file(req), "update")
    assert ops(sent) == ["update"] and "custom_headers" in sent[0].fields, sent

    st = cos.stat_ok("/page.html")
    assert st.get("biz_attr") == "v1" and st.get("authority") == "eWPrivateRPublic", st
    ch = st.get("custom_headers")
    assert isinstance(ch, dict), st
    want = {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "max-age=60",
        "Content-Disposition": 'attachment; filename="page.html"',
        "Content-Language": "de",
        "x-cos-meta-color": "blue",
    }
    lower = {k.lower(): v for k, v in ch.items()}
    for k, v in want.items():
        assert lower.get(k.lower()) == v, f"custom_headers lacks {k}: {ch}"

    # served on download (public now: no sign) and through S3
    r = cos.download("/page.html", sign=None)
    assert r.status_code == 200 and r.content == data, (r.status_code, r.text[:300])
    for k, v in want.items():
        assert r.headers.get(k) == v, f"download header {k}: {r.headers.get(k)!r}, headers {dict(r.headers)}"
    h = cos.s3().head_object(Bucket=cos.bucket, Key="page.html")
    assert h.get("ContentType") == "text/html; charset=utf-8", h
    assert h.get("CacheControl") == "max-age=60", h
    assert h.get("ContentDisposition") == 'attachment; filename="page.html"', h
    assert h.get("Metadata", {}).get("color") == "blue", h
    assert cos.s3_bytes("page.html") == data

    # a biz_attr-only update keeps the rest
    req = sdk().UpdateFileRequest(cos.bucket, "/page.html")
    req.set_biz_attr("v2")
    assert_ok(client.update_file(req), "update biz_attr only")
    st = cos.stat_ok("/page.html")
    assert st.get("biz_attr") == "v2" and st.get("authority") == "eWPrivateRPublic", st
    assert {k.lower(): v for k, v in st.get("custom_headers", {}).items()}.get("cache-control") == "max-age=60", st
    cos.assert_stored("/page.html", data, "after updates")

    req = sdk().UpdateFileRequest(cos.bucket, "/absent.html")
    req.set_biz_attr("x")
    assert_code(client.update_file(req), E_NOT_FOUND, "update a missing file")


def move(client, bucket, src, dst, overwrite=False):
    return client.move_file(sdk().MoveFileRequest(bucket, src, dst, overwrite=overwrite))


def test_move_with_and_without_overwrite(cos):
    client = cos.v4()
    cos.mkdir("/mv/")
    a, d = os.urandom(5000), os.urandom(7000)
    cos.upload("/mv/a.txt", a, biz_attr="attr-a")
    cos.upload("/mv/d.txt", d)

    sent = record_sdk_requests(client)
    assert_ok(move(client, cos.bucket, "/mv/a.txt", "/mv/b.txt"), "move to an absolute path")
    assert sent[0].method == "POST" and sent[0].fields.get("to_over_write") == "0", sent
    cos.assert_absent("/mv/a.txt", "moved away")
    cos.assert_stored("/mv/b.txt", a, "moved")
    assert cos.stat_ok("/mv/b.txt").get("biz_attr") == "attr-a"

    assert_ok(move(client, cos.bucket, "/mv/b.txt", "c.txt"), "move to a name in the same dir")
    cos.assert_absent("/mv/b.txt", "renamed away")
    cos.assert_stored("/mv/c.txt", a, "renamed")

    assert_code(move(client, cos.bucket, "/mv/c.txt", "/mv/d.txt"), E_DEST_EXISTS, "move onto an existing file")
    cos.assert_stored("/mv/c.txt", a, "refused move: source")
    cos.assert_stored("/mv/d.txt", d, "refused move: destination")

    assert_ok(move(client, cos.bucket, "/mv/c.txt", "/mv/d.txt", overwrite=True), "move with overwrite")
    cos.assert_absent("/mv/c.txt", "moved with overwrite")
    cos.assert_stored("/mv/d.txt", a, "overwritten")

    assert_ok(move(client, cos.bucket, "/mv/d.txt", "/top.txt"), "move to the root")
    cos.assert_stored("/top.txt", a, "moved to the root")

    assert_code(move(client, cos.bucket, "/top.txt", "/nodir/x.txt"), E_NO_PARENT, "move into a missing dir")
    cos.assert_stored("/top.txt", a, "refused move into a missing dir")
    assert_code(move(client, cos.bucket, "/mv/none.txt", "/mv/y.txt"), E_NOT_FOUND, "move a missing file")


def copy(ctx, src, dst, overwrite: int | None = 0, auth="once"):
    fields = {"op": "copy", "dest_fileid": dst}
    if overwrite is not None:
        fields["to_over_write"] = str(overwrite)
    return cos_json(ctx.post_form(src, fields, auth=auth), f"copy {src} -> {dst}")


def test_copy_with_and_without_overwrite_shares_content(cos, server):
    cos.mkdir("/cp/")
    src = os.urandom(1 * MiB)
    other = os.urandom(3000)
    cos.upload("/cp/src.bin", src, biz_attr="s")
    cos.upload("/cp/other.bin", other)

    before = server.admin_stats()
    assert_ok(copy(cos, "/cp/src.bin", "/cp/dst.bin"), "copy")
    after = server.admin_stats()
    assert after["physical_bytes"] - before["physical_bytes"] <= DEDUP_SLACK, f"copy stored the bytes again: {before} {after}"
    cos.assert_stored("/cp/src.bin", src, "copy source")
    cos.assert_stored("/cp/dst.bin", src, "copy destination")

    assert_ok(copy(cos, "/cp/src.bin", "named.bin"), "copy to a name in the same dir")
    cos.assert_stored("/cp/named.bin", src, "copy by name")

    assert_code(copy(cos, "/cp/src.bin", "/cp/other.bin"), E_DEST_EXISTS, "copy onto an existing file")
    cos.assert_stored("/cp/other.bin", other, "refused copy")
    assert_ok(copy(cos, "/cp/src.bin", "/cp/other.bin", overwrite=1), "copy with overwrite")
    cos.assert_stored("/cp/other.bin", src, "copy with overwrite")
    cos.assert_stored("/cp/src.bin", src, "copy source after overwrite")

    assert_code(copy(cos, "/cp/src.bin", "/none/x.bin"), E_NO_PARENT, "copy into a missing dir")
    assert cos.s3_keys("none") == []
    assert_code(copy(cos, "/cp/absent.bin", "/cp/y.bin"), E_NOT_FOUND, "copy a missing file")
    cos.assert_absent("/cp/y.bin", "copy of a missing file")


def test_delete_file(cos):
    client = cos.v4()
    cos.upload("/del.txt", b"bye")
    assert_ok(client.del_file(sdk().DelFileRequest(cos.bucket, "/del.txt")), "delete")
    cos.assert_absent("/del.txt", "deleted")
    assert_code(client.del_file(sdk().DelFileRequest(cos.bucket, "/del.txt")), E_NOT_FOUND, "delete again")


# --------------------------------------------------------------------------
# download


def test_download_sdk_range_private_and_public(cos, tmp_path):
    data = os.urandom(300 * KiB + 11)
    cos.upload("/dl.bin", data)
    client = cos.v4()

    # the SDK signs with e=300 (its absolute-expiry bug): accepted as relative
    out = tmp_path / "dl.out"
    ret = client.download_file(sdk().DownloadFileRequest(cos.bucket, "/dl.bin", str(out)))
    assert ret.get("code") == 0, ret
    got = out.read_bytes()
    assert got == data, f"SDK download wrote {len(got)} bytes: {got[:300]!r}"

    r = cos.download("/dl.bin")
    assert r.status_code == 200 and r.content == data, (r.status_code, r.text[:300])
    r = cos.download("/dl.bin", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206, (r.status_code, r.text[:300])
    assert r.content == data[100:200]
    assert r.headers.get("Content-Range") == f"bytes 100-199/{len(data)}", dict(r.headers)
    r = cos.download("/dl.bin", headers={"Range": f"bytes={len(data) - 10}-"})
    assert r.status_code == 206 and r.content == data[-10:], (r.status_code, r.headers)

    # the sign goes into the query unencoded (as the SDK sends it): '+' and
    # '/' in it must be taken literally, not as a space
    for ch in "+/":
        sign = next(
            sg for sg in (cos.sign_download("/dl.bin", rand=i) for i in range(1, 10000)) if ch in sg
        )
        r = cos.download("/dl.bin", sign=sign)
        assert r.status_code == 200 and r.content == data, f"sign with {ch!r}: HTTP {r.status_code} {r.text[:200]}"

    # private: no sign / a tampered sign / a really expired sign / another path's sign
    for what, sign in (
        ("no sign", None),
        ("tampered sign", tamper_mac(cos.sign_download("/dl.bin"))),
        ("expired sign", cos.sign_download("/dl.bin", expires_in=-3600)),
        ("sign of another path", cos.sign_download("/other.bin")),
        ("sign with a wrong secret", cos.sign_download("/dl.bin", secret_key="not-the-secret")),
    ):
        r = cos.download("/dl.bin", sign=sign)
        assert r.status_code == 403, f"download with {what}: HTTP {r.status_code} {r.text[:200]!r}"
        assert r.json().get("code") == -403, f"download with {what}: {r.text[:300]}"

    r = cos.download("/absent.bin")
    assert r.status_code == 404 and r.json().get("code") == -404, (r.status_code, r.text[:300])

    req = sdk().UpdateFileRequest(cos.bucket, "/dl.bin")
    req.set_authority("eWPrivateRPublic")
    assert_ok(client.update_file(req), "make public-read")
    r = cos.download("/dl.bin", sign=None)
    assert r.status_code == 200 and r.content == data, (r.status_code, r.text[:300])
    r = cos.download("/dl.bin", sign=None, headers={"Range": "bytes=0-0"})
    assert r.status_code == 206 and r.content == data[:1], (r.status_code, r.headers)

    req = sdk().UpdateFileRequest(cos.bucket, "/dl.bin")
    req.set_authority("eWRPrivate")
    assert_ok(client.update_file(req), "make private again")
    assert cos.download("/dl.bin", sign=None).status_code == 403


# --------------------------------------------------------------------------
# refusals (nothing stored)


def test_replayed_once_signature_is_refused(cos):
    cos.upload("/once.txt", b"one")
    sign = cos.sign_once("/once.txt")
    assert_ok(cos_json(cos.post_json("/once.txt", {"op": "delete"}, auth=sign), "delete"), "delete with a once sign")
    cos.assert_absent("/once.txt", "deleted")
    cos.upload("/once.txt", b"two")
    r = cos.post_json("/once.txt", {"op": "delete"}, auth=sign)
    assert_code(cos_json(r, "replayed delete"), E_REPLAYED, "replayed once signature")
    cos.assert_stored("/once.txt", b"two", "replayed delete")

    # an update: the replay with another body changes nothing
    sign = cos.sign_once("/once.txt")
    assert_ok(cos_json(cos.post_json("/once.txt", {"op": "update", "biz_attr": "first"}, auth=sign), "update"), "update")
    r = cos.post_json("/once.txt", {"op": "update", "biz_attr": "second"}, auth=sign)
    assert_code(cos_json(r, "replayed update"), E_REPLAYED, "replayed update")
    assert cos.stat_ok("/once.txt").get("biz_attr") == "first"

    # the v4 SDK's move is once-signed: replaying its request is refused too
    client = cos.v4()
    sent_auth = []
    orig = client._http_session.request

    def capture(method, url, *a, **kw):
        sent_auth.append((method, url, dict(kw.get("headers") or {}), dict(kw.get("params") or {})))
        return orig(method, url, *a, **kw)

    client._http_session.request = capture
    assert_ok(move(client, cos.bucket, "/once.txt", "/moved.txt"), "sdk move")
    method, url, headers, params = sent_auth[-1]
    cos.upload("/once.txt", b"three")
    r = requests.post(url, params=params, headers=headers, timeout=30)
    assert_code(cos_json(r, "replayed move"), E_REPLAYED, "replayed move")
    cos.assert_stored("/once.txt", b"three", "replayed move: source")
    cos.assert_stored("/moved.txt", b"two", "replayed move: destination")


@pytest.mark.parametrize(
    "case",
    [
        "no-authorization",
        "empty",
        "not-base64",
        "tampered-mac",
        "wrong-secret",
        "expired",
        "unknown-secret-id",
        "appid-mismatch",
        "other-tenants-secret-id",
        "bucket-mismatch",
        "once-sign-for-upload",
        "unknown-appid-in-url",
    ],
)
def test_upload_auth_refusals_store_nothing(cos, make_cos, case):
    path = f"/auth-{case}.bin"
    data = b"must not be stored " + case.encode()
    fields = {"op": "upload", "filecontent": data, "sha": sha1_hex(data), "biz_attr": "", "insertOnly": "1"}
    now = int(time.time())
    appid = None
    if case == "no-authorization":
        auth, code = None, E_NO_SIGN
    elif case == "empty":
        auth, code = "", E_NO_SIGN
    elif case == "not-base64":
        auth, code = "!!!not*base64***", E_BAD_SIGN
    elif case == "tampered-mac":
        auth, code = tamper_mac(cos.sign_more(path)), E_BAD_SIGN
    elif case == "wrong-secret":
        auth, code = cos.sign_more(path, secret_key=cos.secret_key + "x"), E_BAD_SIGN
    elif case == "expired":
        auth, code = cos.sign_more(path, expired=now - 10, now=now - 400), E_EXPIRED
    elif case == "unknown-secret-id":
        auth, code = cos.sign_more(path, secret_id="AKIDunknown0000000000"), E_UNKNOWN_SECRET_ID
    elif case == "appid-mismatch":
        auth, code = cos.sign_more(path, appid=cos.appid + 1), E_APPID_MISMATCH
    elif case == "other-tenants-secret-id":
        other = make_cos()
        auth = cos.sign_more(path, secret_id=other.secret_id, secret_key=other.secret_key)
        code = E_SECRET_ID_OTHER_TENANT
    elif case == "bucket-mismatch":
        auth, code = cos.sign_more(path, bucket=cos.bucket + "x"), E_BUCKET_MISMATCH
    elif case == "once-sign-for-upload":
        auth, code = cos.sign_once(path), E_MULTI_NEEDED
    elif case == "unknown-appid-in-url":
        appid = 1999999999 if cos.appid != 1999999999 else 1999999998
        auth = cos.sign_more(path, appid=appid, fileid=api_fileid(appid, cos.bucket, path))
        # Answered as another tenant's appid: the answers never say which appids exist.
        code = E_SECRET_ID_OTHER_TENANT
    else:  # pragma: no cover
        raise AssertionError(case)
    r = cos.post_form(path, fields, auth=auth, appid=appid)
    assert_code(cos_json(r, f"upload with {case}"), code, f"upload with {case}")
    cos.assert_absent(path, case)


def test_once_signature_rules(cos):
    cos.upload("/keep.txt", b"keep")
    # a multi-use signature for delete
    r = cos.post_json("/keep.txt", {"op": "delete"}, auth=cos.sign_more("/keep.txt"))
    assert_code(cos_json(r, "delete with a multi sign"), E_ONCE_NEEDED, "delete with a multi sign")
    # a once signature bound to another file
    r = cos.post_json("/keep.txt", {"op": "delete"}, auth=cos.sign_once("/other.txt"))
    assert_code(cos_json(r, "delete with another file's sign"), E_FILEID_MISMATCH, "once sign of another file")
    # a once signature made 20 minutes ago
    r = cos.post_json("/keep.txt", {"op": "delete"}, auth=cos.sign_once("/keep.txt", now=int(time.time()) - 1200))
    assert_code(cos_json(r, "delete with an old once sign"), E_EXPIRED, "old once sign")
    # a multi-use signature for a v4 move, and for copy
    r = cos.post_query("/keep.txt", {"op": "move", "dest_fileid": "/moved.txt", "to_over_write": "0"}, auth="more")
    assert_code(cos_json(r, "move with a multi sign"), E_ONCE_NEEDED, "v4 move with a multi sign")
    assert_code(copy(cos, "/keep.txt", "/copied.txt", auth="more"), E_ONCE_NEEDED, "copy with a multi sign")
    cos.assert_stored("/keep.txt", b"keep", "refused once-sign operations")
    cos.assert_absent("/moved.txt", "refused move")
    cos.assert_absent("/copied.txt", "refused copy")
    # a multi-use sign may leave f empty
    r = cos.get_op("/keep.txt", {"op": "stat"}, auth=cos.sign_more("/keep.txt", fileid=""))
    assert_ok(cos_json(r, "stat with f empty"), "multi sign with an empty f")


def test_wrong_slice_sha_is_refused(cos):
    data = os.urandom(3 * 524288)
    path = "/wrong-slice-sha.bin"
    sl = slices_of(data, 524288)
    parts = uploadparts(data, 524288)
    # slice i is checked from the chain state of entry i-1 to entry i's
    # datasha: a wrong datasha for the middle entry makes the middle slice fail
    bad = [dict(p) for p in parts]
    bad[1]["datasha"] = "0" * 40
    init = assert_ok(
        cos.slice_init(path, len(data), 524288, sha=sha1_hex(data), uploadparts=json.dumps(bad)), "init"
    )
    s = init["session"]
    assert_ok(cos.slice_data(path, s, 0, sl[0][1], sha=sha1_hex(data)), "slice 0 (its datasha is right)")
    assert_code(cos.slice_data(path, s, sl[1][0], sl[1][1], sha=sha1_hex(data)), E_SLICE_SHA, "slice with a wrong datasha")
    lst = assert_ok(cos.slice_list(path), "list parts")
    assert sorted(p.get("offset") for p in lst.get("listparts") or []) == [0], f"the refused slice was kept: {lst}"
    assert_code(cos.slice_finish(path, s, len(data), sha=sha1_hex(data)), E_SLICES_MISSING, "finish without slices")
    cos.assert_absent(path, "wrong slice sha")

    # right uploadparts, wrong bytes in the middle slice
    path2 = "/wrong-slice-bytes.bin"
    s2 = assert_ok(
        cos.slice_init(path2, len(data), 524288, sha=sha1_hex(data), uploadparts=json.dumps(parts)), "init 2"
    )["session"]
    assert_ok(cos.slice_data(path2, s2, 0, sl[0][1]), "slice 0")
    assert_code(cos.slice_data(path2, s2, 524288, os.urandom(524288)), E_SLICE_SHA, "slice with wrong bytes")
    lst = assert_ok(cos.slice_list(path2), "list parts 2")
    assert sorted(p.get("offset") for p in lst.get("listparts") or []) == [0], lst
    # the right bytes are then accepted and the file completes
    for off, chunk in sl[1:]:
        assert_ok(cos.slice_data(path2, s2, off, chunk), f"slice @{off}")
    assert_ok(cos.slice_finish(path2, s2, len(data), sha=sha1_hex(data)), "finish 2")
    cos.assert_stored(path2, data, "after the refused slice was re-sent")


def test_wrong_whole_file_sha_is_refused_at_finish(cos):
    data = os.urandom(2 * 524288 + 77)
    sl = slices_of(data, 524288)
    # sha given at finish
    path = "/wrong-file-sha.bin"
    s = assert_ok(cos.slice_init(path, len(data), 524288), "init")["session"]
    for off, chunk in sl:
        assert_ok(cos.slice_data(path, s, off, chunk), f"slice @{off}")
    assert_code(cos.slice_finish(path, s, len(data), sha=sha1_hex(data[::-1])), E_FILE_SHA, "finish with a wrong sha")
    cos.assert_absent(path, "finish with a wrong sha")
    # sha given at init
    path2 = "/wrong-init-sha.bin"
    s2 = assert_ok(cos.slice_init(path2, len(data), 524288, sha=sha1_hex(b"something else")), "init 2")["session"]
    for off, chunk in sl:
        assert_ok(cos.slice_data(path2, s2, off, chunk), f"slice 2 @{off}")
    assert_code(cos.slice_finish(path2, s2, len(data)), E_FILE_SHA, "finish, init sha wrong")
    cos.assert_absent(path2, "init sha wrong")


def test_slice_protocol_errors(cos):
    path = "/slice-errors.bin"
    assert_code(cos.slice_init(path, 3 * MiB, 1000), E_SLICE_SIZE, "slice_size 1000")
    assert_code(cos.slice_init(path, 3 * MiB, 4 * MiB), E_SLICE_SIZE, "slice_size 4 MiB")
    assert_code(cos.slice_data(path, "no-such-session", 0, b"x" * 524288), E_NO_SESSION, "unknown session")
    assert_code(cos.slice_finish(path, "no-such-session", 3 * MiB), E_NO_SESSION, "finish unknown session")
    s = assert_ok(cos.slice_init(path, 1 * MiB + 10, 524288), "init")["session"]
    assert_code(cos.slice_data(path, s, 0, b"x" * 1000), E_SLICE_RANGE, "short slice")
    assert_code(cos.slice_data(path, s, 1000, b"x" * 524288), E_SLICE_RANGE, "unaligned offset")
    assert_code(cos.slice_data(path, s, 2 * 524288, b"x" * 11), E_SLICE_RANGE, "last slice too long")
    assert_code(cos.slice_data(path, s, 3 * 524288, b"x" * 10), E_SLICE_RANGE, "offset beyond filesize")
    assert_ok(cos.slice_data(path, s, 2 * 524288, b"x" * 10), "right last slice")
    cos.assert_absent(path, "slice errors")


def test_request_format_errors(cos):
    data = b"fmt"
    r = cos.post_form("/fmt.bin", {"filecontent": data, "insertOnly": "1"})
    assert_code(cos_json(r, "no op"), E_NO_OP, "missing op")
    r = cos.post_form("/fmt.bin", {"op": "frobnicate", "filecontent": data})
    assert_code(cos_json(r, "unknown op"), E_UNKNOWN_OP, "unknown op")
    r = cos.get_op("/fmt.bin", {"op": "frobnicate"})
    assert_code(cos_json(r, "unknown GET op"), E_UNKNOWN_OP, "unknown GET op")
    r = cos.post_form("/fmt.bin", {"op": "upload", "sha": sha1_hex(data), "insertOnly": "1"})
    assert_code(cos_json(r, "no filecontent"), E_NO_FILECONTENT, "missing filecontent")
    r = cos.post_json("/fmtdir/", None, auth="more", raw_body=b'{"op": "create", biz_attr')
    assert_code(cos_json(r, "malformed JSON"), E_BAD_JSON, "malformed JSON")
    r = requests.post(
        cos.api_url("/fmt.bin"),
        data=b"--xyz\r\nContent-Disposition: form-data; name=\"op\"\r\n\r\nupl",
        headers={"Authorization": cos.sign_more("/fmt.bin"), "Content-Type": "multipart/form-data; boundary=abc"},
        timeout=30,
    )
    assert_code(cos_json(r, "malformed multipart"), E_BAD_FORM, "malformed multipart")
    cos.assert_absent("/fmt.bin", "format errors")
    assert not cos.s3_exists("fmtdir/")


# --------------------------------------------------------------------------
# cross-protocol


def test_s3_objects_are_cos_files(cos):
    s3 = cos.s3()
    small = os.urandom(12345)
    s3.put_object(Bucket=cos.bucket, Key="x/y.bin", Body=small)
    st = cos.stat_ok("/x/y.bin")
    assert st.get("sha") == sha1_hex(small) and st.get("filesize") == len(small), st
    infos = cos.list_all("/x/")
    assert [(i["name"], i.get("sha"), i.get("filesize")) for i in infos] == [("y.bin", sha1_hex(small), len(small))], infos
    r = cos.download("/x/y.bin")
    assert r.status_code == 200 and r.content == small

    # a multipart S3 object: stat gives the SHA-1 of the whole content (not an ETag)
    big = os.urandom(11 * MiB)
    import io

    s3.upload_fileobj(
        io.BytesIO(big), cos.bucket, "x/multi.bin",
        Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB),
    )
    assert s3.head_object(Bucket=cos.bucket, Key="x/multi.bin")["ETag"].endswith('-3"')
    st = cos.stat_ok("/x/multi.bin")
    assert st.get("sha") == sha1_hex(big) and st.get("filesize") == len(big), st

    # one S3 PUT past 4 MiB (its SHA-1 left to the background job): stat right after has it
    single = os.urandom(6 * MiB + 1)
    s3.put_object(Bucket=cos.bucket, Key="x/single.bin", Body=single)
    st = cos.stat_ok("/x/single.bin")
    assert st.get("sha") == sha1_hex(single) and st.get("filesize") == len(single), st

    # COS operations act on S3-made objects
    assert_ok(copy(cos, "/x/y.bin", "/x/z.bin"), "copy an S3 object")
    assert s3.get_object(Bucket=cos.bucket, Key="x/z.bin")["Body"].read() == small
    assert_ok(cos.delete("/x/y.bin"), "delete an S3 object")
    assert not cos.s3_exists("x/y.bin")


def test_cos_uploads_are_s3_objects(cos, tmp_path):
    data = os.urandom(2 * MiB + 5)
    local = write_file(tmp_path / "c.bin", data)
    client = cos.v4()
    assert_ok(client.upload_slice_file(slice_request(cos, "/via-cos.bin", local, enable_sha1=False)), "slice upload")
    assert_ok(upload_sdk(cos, "/via-cos-small.txt", b"small", tmp_path, client=client), "simple upload")
    s3 = cos.s3()
    got = s3.get_object(Bucket=cos.bucket, Key="via-cos.bin")
    assert got["ContentLength"] == len(data) and got["Body"].read() == data
    assert s3.get_object(Bucket=cos.bucket, Key="via-cos-small.txt")["Body"].read() == b"small"
    r = s3.get_object(Bucket=cos.bucket, Key="via-cos.bin", Range="bytes=5-14")
    assert r["Body"].read() == data[5:15]
    keys = cos.s3_keys()
    assert "via-cos.bin" in keys and "via-cos-small.txt" in keys, keys


def test_a_path_is_a_file_or_a_directory(cos):
    """Issue 11: in the file tree a name is a file or a directory, never both (-178)."""
    cos.mkdir("/kind/")
    cos.upload("/kind/f", b"f")
    cos.mkdir("/kind/d/")
    r = cos.post_json("/kind/f/", {"op": "create", "biz_attr": ""}, auth="more")
    assert_code(cos_json(r, "create /kind/f/"), E_DIR_EXISTS, "a directory over a file")
    f = {"op": "upload", "filecontent": b"x", "sha": sha1_hex(b"x"), "biz_attr": "", "insertOnly": "0"}
    assert_code(cos_json(cos.post_form("/kind/d", f), "upload /kind/d"), E_DIR_EXISTS, "a file over a directory")
    assert_code(cos_json(cos.post_form("/kind/f/x", f), "upload /kind/f/x"), E_NO_PARENT, "a file under a file")
    assert [(i["name"], "filesize" in i) for i in cos.list_all("/kind/")] == [("d", False), ("f", True)]


def test_list_pages_are_stable_while_entries_are_added(cos):
    """Issue 11: paging by the core's cursor neither repeats nor skips an entry when others
    are added between pages."""
    client = cos.v4()
    cos.mkdir("/stable/")
    first = [f"e{i:02}" for i in range(0, 40, 2)]
    for n in first:
        cos.upload(f"/stable/{n}", n.encode())
    got, context = [], ""
    for page in range(100):
        data = assert_ok(
            client.list_folder(sdk().ListFolderRequest(cos.bucket, "/stable/", num=3, context=context)), "list"
        )
        got += [i["name"] for i in data.get("infos") or []]
        # Entries before and after the cursor appear meanwhile.
        cos.upload(f"/stable/e{2 * page + 1:02}", b"new")
        if data.get("listover"):
            break
        context = data["context"]
    assert len(got) == len(set(got)), f"repeated: {got}"
    assert set(first) <= set(got), f"skipped: {sorted(set(first) - set(got))}"
    assert got == sorted(got)
