"""UFile dialect across SDK versions and across protocols.

* The same operations driven by the real `ufile` SDK **3.2.7** (the last one
  with uploadhit/rename, imported in isolation as `ufile327` by
  ufile_helpers) and **3.2.11** (the venv's): every test that uses the `sdk`
  fixture runs once per version. Both versions have putfile, putstream,
  postfile, download_file, private_download_url, head_file,
  compare_file_etag, getfilelist, listobjects (3.2.7 already has it, with
  the same signature as 3.2.11 - so it is tested, not asserted missing),
  copy, deletefile and MultipartUploadUFile.uploadfile.
* Objects written by one version are read by the other.
* A 50 MiB multipart upload (13 parts of 4 MiB, 4 in parallel) per version,
  verified byte for byte and with compare_file_etag.
* Cross protocol with the real aws CLI, signed with the tenant's S3 keys
  (= its UFile key pair): `aws s3 cp` up, then the 3.2.7 uploadhit finds the
  content (200, object created, no bytes stored) and UFile download_file
  reads it back; and UFile uploads downloaded with `aws s3 cp s3://...`.

Spec: /work/shared/specs/client-sdks.md §1.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from compat_helpers import MiB, unique_name
from ufile_helpers import (  # noqa: F401  (fixtures: make_ufile, uf, uf_mode)
    EMPTY_ETAG,
    UFILE327_VERSION,
    UFILE_BLOCK,
    UFILE_VERSION,
    UFileCtx,
    assert_no_s3_object,
    assert_sdk_error,
    assert_sdk_ok,
    import_ufile327,
    make_ufile,
    md5_hex,
    quoted,
    sdk_config,
    sdk_filemanager,
    sdk_multipart,
    uf,
    uf_mode,
    ufile,
    ufile_etag,
)

VERSIONS = (UFILE327_VERSION, UFILE_VERSION)
BIG = 50 * MiB  # 13 ufile blocks: 12 x 4 MiB + 2 MiB
UNICODE_KEY = "跨版本/目录 一/中文 文件 name+plus (1).bin"


def sdk_module(version: str):
    if version == UFILE327_VERSION:
        return import_ufile327()
    assert version == UFILE_VERSION, version
    return ufile


@pytest.fixture(params=VERSIONS, ids=[f"ufile-{v}" for v in VERSIONS])
def sdk(request):
    """The ufile SDK package, once 3.2.7 and once 3.2.11."""
    mod = sdk_module(request.param)
    assert mod.__version__ == request.param
    return mod


# --------------------------------------------------------------------------
# local helpers


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sdk_head(ctx: UFileCtx, mod, key: str, bucket: str | None = None):
    ret, resp = ctx.fm(mod=mod).head_file(bucket or ctx.bucket, key)
    assert_sdk_ok(ret, resp, f"ufile {mod.__version__} head_file {key}")
    return resp


def assert_stored_with(ctx: UFileCtx, mod, key: str, data: bytes, content_type: str | None = None, what: str = "", bucket: str | None = None) -> None:
    """Like test_ufile.assert_stored, but HEAD through the given SDK version:
    the quoted ufile etag, Content-Length, Content-Type; bytes through S3."""
    what = f"[ufile {mod.__version__}] {what}"
    resp = sdk_head(ctx, mod, key, bucket)
    assert resp.etag == quoted(ufile_etag(data)), (
        f"{what}: HEAD ETag {resp.etag!r}, expected the ufile etag in quotes {quoted(ufile_etag(data))!r}"
    )
    assert resp.content_length == str(len(data)), f"{what}: HEAD Content-Length {resp.content_length}, expected {len(data)}"
    if content_type is not None:
        assert resp.content_type == content_type, f"{what}: HEAD Content-Type {resp.content_type!r}, expected {content_type!r}"
    got = ctx.s3_bytes(key, bucket)
    assert len(got) == len(data) and got == data, f"{what}: S3 GET {key} returned different bytes ({len(got)} vs {len(data)})"


def download_and_check(ctx: UFileCtx, mod, key: str, data: bytes, out: Path, what: str = "") -> None:
    """download_file (whole object, presigned, %-encoded Signature) through
    the given SDK version, byte for byte."""
    ret, resp = ctx.fm(mod=mod).download_file(ctx.bucket, key, str(out))
    assert_sdk_ok(ret, resp, f"[ufile {mod.__version__}] download_file {key} {what}")
    got = out.read_bytes()
    assert len(got) == len(data) and sha256(got) == sha256(data), (
        f"[ufile {mod.__version__}] download_file {key} {what}: {len(got)} bytes, different from the {len(data)} uploaded"
    )
    assert resp.etag == quoted(ufile_etag(data)), f"download_file {key}: GET ETag {resp.etag!r}"


class md5_enabled:
    """config md5=True for one SDK version (set after creating the
    FileManager: UFileCtx.fm() resets md5 to False)."""

    def __init__(self, ctx: UFileCtx, mod):
        self.ctx, self.mod = ctx, mod

    def __enter__(self):
        self.ctx.configure(self.mod, md5=True)
        assert sdk_config(self.mod).get_default("md5") is True

    def __exit__(self, *exc):
        self.ctx.configure(self.mod, md5=False)


def aws_as(ctx: UFileCtx, *args: str, check: bool = True):
    """server.aws(...) (the venv's real aws CLI against the server), signed
    with the context's key pair: a tenant's UFile key pair is its S3 key pair."""
    srv = copy.copy(ctx.server)  # shallow: same process/port/config file, other credentials
    srv.access_key, srv.secret_key = ctx.public_key, ctx.private_key
    return srv.aws(*args, check=check)


def record_parts(monkeypatch, mod) -> dict:
    """Wrap the multipart module's part upload call: record part numbers and
    the highest number of part PUTs in flight at once."""
    m = sys.modules[f"{mod.__name__}.multipartuploadufile"]
    orig = m._shardingupload
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "parts": []}

    def wrapped(url, data, header):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["parts"].append(int(parse_qs(urlsplit(url).query)["partNumber"][0]))
        try:
            return orig(url, data, header)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(m, "_shardingupload", wrapped)
    return state


# --------------------------------------------------------------------------
# the two SDKs


def test_sdk_versions_and_surface():
    """Documents what differs between the versions (spec §1 table): 3.2.7
    has uploadhit/rename, 3.2.11 has opMeta and the resumable multipart
    calls; listobjects and everything else tested here exist in both."""
    old, new = import_ufile327(), ufile
    assert old.__version__ == "3.2.7" and new.__version__ == "3.2.11"
    assert old is not new and sdk_config(old) is not sdk_config(new), "the two versions must not share config"
    fm_old, fm_new = sdk_filemanager(old), sdk_filemanager(new)
    common = (
        "putfile", "putstream", "postfile", "download_file", "private_download_url", "head_file",
        "compare_file_etag", "getfilelist", "listobjects", "copy", "deletefile",
    )
    for name in common:
        assert callable(getattr(fm_old, name, None)), f"3.2.7 FileManager lacks {name}"
        assert callable(getattr(fm_new, name, None)), f"3.2.11 FileManager lacks {name}"
    for name in ("uploadhit", "rename"):
        assert hasattr(fm_old, name) and not hasattr(fm_new, name), name
    assert hasattr(fm_new, "opMeta") and not hasattr(fm_old, "opMeta")
    mp_old, mp_new = sdk_multipart(old), sdk_multipart(new)
    for name in ("uploadfile", "uploadstream"):
        assert hasattr(mp_old, name) and hasattr(mp_new, name), name
    for name in ("init_multipart_upload", "get_multi_upload_part", "upload_part_copy"):
        assert hasattr(mp_new, name) and not hasattr(mp_old, name), name
    # both support config md5 (Content-MD5 as lowercase hex on uploads)
    assert "md5" in sdk_config(old)._config and "md5" in sdk_config(new)._config


# --------------------------------------------------------------------------
# simple uploads, per version


@pytest.mark.parametrize("md5", [False, True], ids=["md5-off", "md5-on"])
def test_putfile_empty_and_small(uf_mode, sdk, tmp_path, md5):
    ctx = uf_mode
    v = sdk.__version__
    cases = [
        ("empty.txt", b"", "text/plain"),  # 0 B: Transfer-Encoding: chunked, no Content-Length
        ("one.bin", b"\x00", "application/octet-stream"),
        ("hello.txt", b"hello world", "text/plain"),
        ("small.bin", os.urandom(100_003), "application/octet-stream"),
    ]
    fm = ctx.fm(mod=sdk)
    for name, data, ctype in cases:
        key = f"put/{v}/{name}"
        path = write(tmp_path / name, data)
        sent: dict = {}  # the SDK fills in the headers it sends
        if md5:
            with md5_enabled(ctx, sdk):
                ret, resp = fm.putfile(ctx.bucket, key, path, header=sent)
            assert sent.get("Content-MD5") == md5_hex(data), f"SDK did not send the hex Content-MD5: {sent}"
        else:
            ret, resp = fm.putfile(ctx.bucket, key, path, header=sent)
            assert "Content-MD5" not in sent, sent
        assert ("Content-Length" in sent) == (len(data) > 0), sent
        assert_sdk_ok(ret, resp, f"[ufile {v}] putfile {len(data)} B md5={md5}")
        assert resp.etag == quoted(ufile_etag(data)), f"[ufile {v}] putfile {len(data)} B: PUT ETag {resp.etag!r}"
        if not data:
            assert resp.etag == quoted(EMPTY_ETAG)
        assert_stored_with(ctx, sdk, key, data, ctype, f"putfile {len(data)} B md5={md5}")
        assert fm.compare_file_etag(ctx.bucket, key, path) is True, f"[ufile {v}] compare_file_etag after putfile {len(data)} B"
        download_and_check(ctx, sdk, key, data, tmp_path / f"dl-{name}", "after putfile")


def test_putstream(uf_mode, sdk):
    ctx = uf_mode
    v = sdk.__version__
    fm = ctx.fm(mod=sdk)

    data = os.urandom(2 * MiB + 17)
    sent: dict = {}
    with md5_enabled(ctx, sdk):
        ret, resp = fm.putstream(ctx.bucket, f"stream/{v}/a.dat", io.BytesIO(data), mime_type="application/x-chuan-test", header=sent)
    assert sent.get("Content-MD5") == md5_hex(data), sent
    assert_sdk_ok(ret, resp, f"[ufile {v}] putstream BytesIO md5=True")
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored_with(ctx, sdk, f"stream/{v}/a.dat", data, "application/x-chuan-test", "putstream md5")

    ret, resp = fm.putstream(ctx.bucket, f"stream/{v}/empty", io.BytesIO(b""))
    assert_sdk_ok(ret, resp, f"[ufile {v}] putstream of an empty BytesIO")
    assert resp.etag == quoted(EMPTY_ETAG)
    assert_stored_with(ctx, sdk, f"stream/{v}/empty", b"", "application/octet-stream", "empty putstream")

    chunks = [os.urandom(MiB), os.urandom(3 * MiB + 1), os.urandom(999)]
    data = b"".join(chunks)
    ret, resp = fm.putstream(ctx.bucket, f"stream/{v}/chunked.bin", (c for c in chunks))
    assert_sdk_ok(ret, resp, f"[ufile {v}] putstream of a generator (chunked body)")
    assert resp.etag == quoted(ufile_etag(data))
    assert_stored_with(ctx, sdk, f"stream/{v}/chunked.bin", data, "application/octet-stream", "chunked putstream")


def test_postfile(uf_mode, sdk, tmp_path):
    ctx = uf_mode
    v = sdk.__version__
    data = os.urandom(300_001)
    path = write(tmp_path / "photo.jpg", data)
    for key in (f"form/{v}/photo 1.jpg", f"form/{v}/照片 二.jpg"):
        ret, resp = ctx.fm(mod=sdk).postfile(ctx.bucket, key, path)
        assert_sdk_ok(ret, resp, f"[ufile {v}] postfile {key!r} (form without closing boundary)")
        assert resp.etag == quoted(ufile_etag(data)), f"[ufile {v}] POST response ETag {resp.etag!r}"
        assert_stored_with(ctx, sdk, key, data, "image/jpeg", f"postfile {key!r}")
    empty = write(tmp_path / "empty.txt", b"")
    ret, resp = ctx.fm(mod=sdk).postfile(ctx.bucket, f"form/{v}/empty.txt", empty)
    assert_sdk_ok(ret, resp, f"[ufile {v}] postfile of a 0-byte file")
    assert_stored_with(ctx, sdk, f"form/{v}/empty.txt", b"", "text/plain", "empty postfile")


# --------------------------------------------------------------------------
# a unicode key with spaces through every call


def test_unicode_key_with_spaces_everywhere(uf_mode, sdk, tmp_path):
    ctx = uf_mode
    v = sdk.__version__
    fm = ctx.fm(mod=sdk)
    data = os.urandom(70_000)
    path = write(tmp_path / "u.bin", data)
    key = f"{v}/{UNICODE_KEY}"

    ret, resp = fm.putfile(ctx.bucket, key, path)
    assert_sdk_ok(ret, resp, f"[ufile {v}] putfile of a unicode key with spaces (signed over the decoded key)")
    assert_stored_with(ctx, sdk, key, data, "application/octet-stream", "unicode key")
    assert fm.compare_file_etag(ctx.bucket, key, path) is True
    download_and_check(ctx, sdk, key, data, tmp_path / "u-dl.bin", "unicode key")

    url = fm.private_download_url(ctx.bucket, key)  # raw key and raw Signature in the URL
    r = requests.get(url, timeout=60)
    assert r.status_code == 200, f"[ufile {v}] private_download_url of a unicode key: HTTP {r.status_code} {r.text[:300]}"
    assert r.content == data
    r = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=60)
    assert r.status_code == 206 and r.content == data[100:200], f"HTTP {r.status_code}"
    assert r.headers.get("Content-Range") == f"bytes 100-199/{len(data)}", r.headers

    ret, resp = fm.getfilelist(ctx.bucket, prefix=f"{v}/跨版本/", limit=10)
    assert_sdk_ok(ret, resp, f"[ufile {v}] getfilelist with a unicode prefix")
    assert [d["FileName"] for d in ret["DataSet"]] == [key], ret
    ret, resp = fm.listobjects(ctx.bucket, prefix=f"{v}/跨版本/", marker="", maxkeys=10, delimiter="/")
    assert_sdk_ok(ret, resp, f"[ufile {v}] listobjects with a unicode prefix")
    assert [c["Prefix"] for c in ret.get("CommonPrefixes") or []] == [f"{v}/跨版本/目录 一/"], ret
    assert not ret.get("Contents"), ret

    dst = f"{v}/副本 目录/拷贝 copy+1.bin"
    ret, resp = fm.copy(ctx.bucket, dst, ctx.bucket, key)
    assert_sdk_ok(ret, resp, f"[ufile {v}] copy from and to unicode keys with spaces")
    assert_stored_with(ctx, sdk, dst, data, None, "copy of a unicode key")

    for k in (key, dst):
        ret, resp = fm.deletefile(ctx.bucket, k)
        assert ret is not None and resp.status_code in (200, 204), f"[ufile {v}] deletefile {k!r}: HTTP {resp.status_code} {resp.error}"
        assert_no_s3_object(ctx, k, what=f"deletefile {k!r}")
        ret, resp = fm.head_file(ctx.bucket, k)
        assert_sdk_error(ret, resp, 404, f"[ufile {v}] head_file after deletefile", body=False)


# --------------------------------------------------------------------------
# downloads, head, compare


def test_download_whole_and_ranges_and_presigned(uf_mode, sdk, tmp_path):
    ctx = uf_mode
    v = sdk.__version__
    fm = ctx.fm(mod=sdk)
    data = os.urandom(MiB + 99)
    size = len(data)
    key = f"dl/{v}/r.bin"
    ret, resp = fm.putfile(ctx.bucket, key, write(tmp_path / "r.bin", data))
    assert_sdk_ok(ret, resp, "putfile")

    download_and_check(ctx, sdk, key, data, tmp_path / "whole.bin")
    for a, z in [(0, 0), (100, 4095), (size - 10, size - 1), (0, size - 1)]:
        out = tmp_path / f"r-{a}-{z}"
        ret, resp = fm.download_file(ctx.bucket, key, str(out), content_range=(a, z))
        assert_sdk_ok(ret, resp, f"[ufile {v}] download_file content_range=({a}, {z})", statuses=(206,))
        assert resp.content_range == (a, z), f"[ufile {v}] Content-Range parsed by the SDK: {resp.content_range}"
        assert out.read_bytes() == data[a : z + 1]

    url = fm.private_download_url(ctx.bucket, key)
    assert "UCloudPublicKey=" in url and "&Expires=" in url and "&Signature=" in url, url
    r = requests.get(url, timeout=60)
    assert r.status_code == 200, f"[ufile {v}] private_download_url: HTTP {r.status_code} {r.text[:300]}"
    assert r.content == data and r.headers.get("ETag") == quoted(ufile_etag(data)), r.headers
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=60)
    assert r.status_code == 206 and r.headers.get("Content-Range") == f"bytes 10-19/{size}", (r.status_code, r.headers)
    assert r.content == data[10:20]
    # a URL from the other version of the SDK works the same
    other = sdk_module(UFILE_VERSION if v == UFILE327_VERSION else UFILE327_VERSION)
    r = requests.get(ctx.fm(mod=other).private_download_url(ctx.bucket, key, expires=600), timeout=60)
    assert r.status_code == 200 and r.content == data, f"ufile {other.__version__} private_download_url: HTTP {r.status_code}"


@pytest.mark.parametrize("writer,reader", [(UFILE327_VERSION, UFILE_VERSION), (UFILE_VERSION, UFILE327_VERSION)], ids=["327-to-3211", "3211-to-327"])
def test_head_and_compare_file_etag_across_versions(uf, tmp_path, writer, reader):
    """Objects written by one SDK version (single PUT of 2 etag blocks,
    multipart of 3 parts) are seen identically by the other."""
    w, r = sdk_module(writer), sdk_module(reader)
    single = os.urandom(UFILE_BLOCK + 1)
    multi = os.urandom(2 * UFILE_BLOCK + 999)
    p_single = write(tmp_path / "single.bin", single)
    p_multi = write(tmp_path / "multi.bin", multi)
    ret, resp = uf.fm(mod=w).putfile(uf.bucket, "x/single.bin", p_single)
    assert_sdk_ok(ret, resp, f"[ufile {writer}] putfile")
    ret, resp = uf.mp(mod=w).uploadfile(uf.bucket, "x/multi.bin", p_multi, maxthread=4, retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, f"[ufile {writer}] multipart uploadfile")
    assert ret.get("FileSize") == len(multi), ret

    fm = uf.fm(mod=r)
    for key, data, path in (("x/single.bin", single, p_single), ("x/multi.bin", multi, p_multi)):
        # (Content-Type only for the single PUT: a multipart upload sends text/plain
        # on init/finish and the file's type on the parts; the contract leaves it open)
        ctype = "application/octet-stream" if key == "x/single.bin" else None
        assert_stored_with(uf, r, key, data, ctype, f"written by {writer}")
        assert fm.compare_file_etag(uf.bucket, key, path) is True, f"[ufile {reader}] compare_file_etag of {key} written by {writer}"
        differs = bytearray(data)
        differs[-1] ^= 0xFF
        other_path = write(tmp_path / f"differs-{Path(key).name}", bytes(differs))
        assert fm.compare_file_etag(uf.bucket, key, other_path) is False, f"[ufile {reader}] compare_file_etag True for different content"
        download_and_check(uf, r, key, data, tmp_path / f"dl-{Path(key).name}", f"written by {writer}")
    ret, resp = fm.getfilelist(uf.bucket, prefix="x/")
    assert_sdk_ok(ret, resp, f"[ufile {reader}] getfilelist")
    hashes = {d["FileName"]: (str(d.get("Hash", "")).strip('"'), d.get("Size")) for d in ret["DataSet"]}
    assert hashes == {
        "x/single.bin": (ufile_etag(single), len(single)),
        "x/multi.bin": (ufile_etag(multi), len(multi)),
    }, ret


# --------------------------------------------------------------------------
# listings


def test_getfilelist_paging(uf_mode, sdk):
    ctx = uf_mode
    v = sdk.__version__
    keys = sorted(f"list/k{i:02d}.txt" for i in range(7))
    contents = {}
    for k in keys:
        contents[k] = os.urandom(10 + len(contents))
        ctx.put_bytes(k, contents[k], "text/plain")
    ctx.put_bytes("other/x.txt", b"x", "text/plain")
    fm = ctx.fm(mod=sdk)
    got, marker, pages = [], "", 0
    while True:
        ret, resp = fm.getfilelist(ctx.bucket, prefix="list/", marker=marker, limit=3)
        assert_sdk_ok(ret, resp, f"[ufile {v}] getfilelist page {pages}")
        pages += 1
        assert ret.get("BucketName") == ctx.bucket and "BucketId" in ret and "NextMarker" in ret, ret
        ds = ret.get("DataSet")
        assert isinstance(ds, list) and len(ds) <= 3, ret
        for item in ds:
            data = contents[item["FileName"]]
            assert item.get("Size") == len(data), item
            assert str(item.get("Hash", "")).strip('"') == ufile_etag(data), item
            assert item.get("MimeType") == "text/plain", item
            for f in ("CreateTime", "ModifyTime"):
                assert isinstance(item.get(f), int) and abs(item[f] - time.time()) < 3600, item
        got.extend(i["FileName"] for i in ds)
        marker = ret["NextMarker"]
        if not marker:
            break
        assert pages < 10, f"no end of listing after {pages} pages: {got}"
    assert got == keys, f"[ufile {v}] paged getfilelist: {got}"
    assert pages >= 3, f"7 keys at limit=3 took only {pages} page(s)"


def test_listobjects_delimiter(uf_mode, sdk):
    """listobjects exists in 3.2.7 already (same signing, same parameters), so
    it is exercised with both versions."""
    ctx = uf_mode
    v = sdk.__version__
    files = ["p/a.txt", "p/b.txt", "p/d1/x", "p/d1/y", "p/d2/z", "p/e.txt", "q/other"]
    for k in files:
        ctx.put_bytes(k, k.encode(), "text/plain")
    fm = ctx.fm(mod=sdk)
    ret, resp = fm.listobjects(ctx.bucket, prefix="p/", marker="", maxkeys=100, delimiter="/")
    assert_sdk_ok(ret, resp, f"[ufile {v}] listobjects delimiter=/")
    assert ret.get("Name") == ctx.bucket and ret.get("Prefix") == "p/" and ret.get("Delimiter") == "/", ret
    assert ret.get("IsTruncated") is False, ret
    assert [c["Key"] for c in ret["Contents"]] == ["p/a.txt", "p/b.txt", "p/e.txt"], ret
    assert [c["Prefix"] for c in ret["CommonPrefixes"]] == ["p/d1/", "p/d2/"], ret
    for c in ret["Contents"]:
        assert c.get("Etag") == quoted(ufile_etag(c["Key"].encode())), c
        assert int(c.get("Size")) == len(c["Key"]) and c.get("MimeType") == "text/plain", c

    ret, resp = fm.listobjects(ctx.bucket, prefix="p/", marker="", maxkeys=100, delimiter="")
    assert_sdk_ok(ret, resp, f"[ufile {v}] listobjects delimiter=''")
    assert [c["Key"] for c in ret["Contents"]] == ["p/a.txt", "p/b.txt", "p/d1/x", "p/d1/y", "p/d2/z", "p/e.txt"], ret
    assert not ret.get("CommonPrefixes"), ret

    keys, prefixes, marker, pages = [], [], "", 0
    while True:
        ret, resp = fm.listobjects(ctx.bucket, prefix="p/", marker=marker, maxkeys=2, delimiter="/")
        assert_sdk_ok(ret, resp, f"[ufile {v}] listobjects page {pages}")
        pages += 1
        n = len(ret.get("Contents") or []) + len(ret.get("CommonPrefixes") or [])
        assert n <= 2, f"max-keys=2 but {n} entries: {ret}"
        keys += [c["Key"] for c in ret.get("Contents") or []]
        prefixes += [c["Prefix"] for c in ret.get("CommonPrefixes") or []]
        if not ret.get("IsTruncated"):
            break
        marker = ret.get("NextMarker")
        assert marker and pages < 10, ret
    assert sorted(keys) == ["p/a.txt", "p/b.txt", "p/e.txt"] and len(keys) == 3, keys
    assert sorted(prefixes) == ["p/d1/", "p/d2/"] and len(prefixes) == 2, prefixes
    assert pages >= 2, f"[ufile {v}] paging with max-keys=2 ended after one page"


# --------------------------------------------------------------------------
# copy and delete


def test_copy_and_deletefile(uf, sdk, tmp_path):
    v = sdk.__version__
    fm = uf.fm(mod=sdk)
    data = os.urandom(UFILE_BLOCK + 5)
    ret, resp = fm.putfile(uf.bucket, "c/src.txt", write(tmp_path / "src.txt", data))
    assert_sdk_ok(ret, resp, "putfile")
    second = uf.other(bucket=unique_name("uf2"))
    uf.s3().create_bucket(Bucket=second.bucket)

    ret, resp = fm.copy(uf.bucket, "c/dst.txt", uf.bucket, "c/src.txt")
    assert_sdk_ok(ret, resp, f"[ufile {v}] copy in the same bucket")
    ret, resp = fm.copy(second.bucket, "into/copy.txt", uf.bucket, "c/src.txt")
    assert_sdk_ok(ret, resp, f"[ufile {v}] copy into another bucket of the tenant")
    assert_stored_with(uf, sdk, "c/dst.txt", data, "text/plain", "copy")
    assert_stored_with(second, sdk, "into/copy.txt", data, "text/plain", "copy to another bucket")

    ret, resp = fm.copy(uf.bucket, "c/none.txt", uf.bucket, "c/does-not-exist")
    assert_sdk_error(ret, resp, 404, f"[ufile {v}] copy from a missing source")
    assert_no_s3_object(uf, "c/none.txt", what="failed copy")

    ret, resp = fm.deletefile(uf.bucket, "c/src.txt")
    assert ret is not None and resp.status_code in (200, 204), f"[ufile {v}] deletefile: HTTP {resp.status_code} {resp.error}"
    assert_no_s3_object(uf, "c/src.txt", what="deletefile")
    ret, resp = fm.head_file(uf.bucket, "c/src.txt")
    assert_sdk_error(ret, resp, 404, f"[ufile {v}] head_file after deletefile", body=False)
    ret, resp = fm.download_file(uf.bucket, "c/src.txt", str(tmp_path / "gone"))
    assert_sdk_error(ret, resp, 404, f"[ufile {v}] download_file after deletefile")
    # the copies do not depend on the deleted source
    assert_stored_with(uf, sdk, "c/dst.txt", data, None, "copy after the source was deleted")
    ret, resp = fm.getfilelist(uf.bucket, prefix="c/")
    assert_sdk_ok(ret, resp, "getfilelist")
    assert [d["FileName"] for d in ret["DataSet"]] == ["c/dst.txt"], ret


# --------------------------------------------------------------------------
# 50 MiB multipart, per version


def test_multipart_uploadfile_50mib(uf, sdk, tmp_path, monkeypatch):
    v = sdk.__version__
    data = os.urandom(BIG)
    nparts = -(-BIG // UFILE_BLOCK)
    assert nparts == 13
    path = write(tmp_path / "big 50MiB.mp4", data)
    key = f"mp50/{v}/big 50MiB.mp4"
    parts = record_parts(monkeypatch, sdk)

    mp = uf.mp(mod=sdk)
    t0 = time.monotonic()
    ret, resp = mp.uploadfile(uf.bucket, key, path, maxthread=4, retrycount=1, retryinterval=0)
    elapsed = time.monotonic() - t0
    assert_sdk_ok(ret, resp, f"[ufile {v}] multipart uploadfile of 50 MiB")
    assert mp.blocksize == UFILE_BLOCK and type(mp.blocksize) is int, f"BlkSize {mp.blocksize!r}"
    assert sorted(parts["parts"]) == list(range(nparts)), f"part numbers sent: {sorted(parts['parts'])}"
    assert 2 <= parts["max"] <= 4, f"[ufile {v}] at most {parts['max']} part PUT(s) in flight with maxthread=4 (not parallel?)"
    assert len(mp.etaglist) == nparts and all(mp.etaglist), f"a part answered without an ETag header: {mp.etaglist}"
    assert ret.get("Bucket") == uf.bucket and ret.get("Key") == key and ret.get("FileSize") == BIG, ret
    assert resp.etag == quoted(ufile_etag(data)), f"[ufile {v}] finish ETag {resp.etag!r}, expected {quoted(ufile_etag(data))!r}"
    assert elapsed < 30, f"50 MiB multipart upload took {elapsed:.1f}s"

    # HEAD and compare_file_etag through both versions
    for reader in VERSIONS:
        mod = sdk_module(reader)
        head = sdk_head(uf, mod, key)
        assert head.etag == quoted(ufile_etag(data)) and head.content_length == str(BIG), (reader, head.etag, head.content_length)
        assert uf.fm(mod=mod).compare_file_etag(uf.bucket, key, path) is True, f"[ufile {reader}] compare_file_etag of the 50 MiB object"

    # byte for byte, whole and across part boundaries
    download_and_check(uf, sdk, key, data, tmp_path / "dl.bin", "50 MiB multipart")
    fm = uf.fm(mod=sdk)
    for a, z in [(UFILE_BLOCK - 5, UFILE_BLOCK + 4), (3 * UFILE_BLOCK - 1, 5 * UFILE_BLOCK + 7), (BIG - 100, BIG - 1)]:
        out = tmp_path / f"r-{a}"
        ret, resp = fm.download_file(uf.bucket, key, str(out), content_range=(a, z))
        assert_sdk_ok(ret, resp, f"[ufile {v}] download_file range {a}-{z}", statuses=(206,))
        assert resp.content_range == (a, z), resp.content_range
        assert out.read_bytes() == data[a : z + 1], f"range {a}-{z} differs"
    ret, resp = fm.getfilelist(uf.bucket, prefix=f"mp50/{v}/")
    assert_sdk_ok(ret, resp, "getfilelist")
    assert [(d["FileName"], d["Size"]) for d in ret["DataSet"]] == [(key, BIG)], ret


# --------------------------------------------------------------------------
# cross protocol with the aws CLI


def test_aws_cli_upload_found_by_ufile327_uploadhit(server_factory, make_ufile, tmp_path):
    """`aws s3 cp` uploads (the 9 MiB one as an 8 MiB-part multipart upload);
    the 3.2.7 uploadhit (POST /uploadhit?Hash=<ufile etag>, no body) finds the
    content: 200, the object exists, no bytes stored; download_file of both
    versions reads it back byte for byte."""
    srv = server_factory()
    ctx = make_ufile(srv, "localhost")
    src = tmp_path / "cli-src"
    files = {"small.txt": os.urandom(100_003), "big video.mp4": os.urandom(9 * MiB + 123)}
    paths = {name: write(src / name, data) for name, data in files.items()}
    aws_as(ctx, "s3", "cp", "--recursive", "--no-progress", str(src), f"s3://{ctx.bucket}/cli/")

    s3 = ctx.s3()
    big_etag = s3.head_object(Bucket=ctx.bucket, Key="cli/big video.mp4")["ETag"]
    assert big_etag.endswith('-2"'), f"the CLI did not upload 9 MiB in two parts: ETag {big_etag}"
    for name, data in files.items():
        assert ctx.s3_bytes(f"cli/{name}") == data, f"aws s3 cp stored different bytes for {name}"
        # the UFile view of an object the CLI wrote: the content-defined ufile etag
        assert sdk_head(ctx, import_ufile327(), f"cli/{name}").etag == quoted(ufile_etag(data)), name

    fm327 = ctx.fm327()
    before = srv.admin_stats()
    for name, data in files.items():
        ret, resp = fm327.uploadhit(ctx.bucket, f"hit/{name}", paths[name])
        assert_sdk_ok(ret, resp, f"ufile 3.2.7 uploadhit of {name} uploaded by the aws CLI")
        assert resp.status_code == 200, f"uploadhit hit: HTTP {resp.status_code}"
    # a miss: same size, one byte different
    changed = bytearray(files["small.txt"])
    changed[0] ^= 0x01
    ret, resp = fm327.uploadhit(ctx.bucket, "hit/miss.txt", write(tmp_path / "miss.txt", bytes(changed)))
    assert_sdk_error(ret, resp, 404, "uploadhit of content nobody uploaded")
    after = srv.admin_stats()
    assert after["physical_bytes"] == before["physical_bytes"], f"uploadhit stored bytes: {before} -> {after}"
    assert after["objects"] - before["objects"] == 2, f"expected exactly 2 new objects: {before} -> {after}"
    assert after["logical_bytes"] - before["logical_bytes"] == sum(map(len, files.values())), (before, after)
    assert_no_s3_object(ctx, "hit/miss.txt", what="uploadhit miss")

    for version in VERSIONS:
        mod = sdk_module(version)
        for name, data in files.items():
            for key in (f"hit/{name}", f"cli/{name}"):
                download_and_check(ctx, mod, key, data, tmp_path / f"dl-{version}-{key.replace('/', '_')}", "(aws CLI content)")
            assert ctx.fm(mod=mod).compare_file_etag(ctx.bucket, f"hit/{name}", paths[name]) is True


def test_ufile_uploads_downloaded_with_aws_cli(uf, sdk, tmp_path):
    """Every kind of UFile upload of one SDK version, then `aws s3 cp`
    (recursive, and one object by name) with the tenant's keys, byte for byte."""
    v = sdk.__version__
    fm = uf.fm(mod=sdk)
    up = {
        "中文 目录/小 文件 a.txt": os.urandom(5000),
        "empty.txt": b"",
        "form post.jpg": os.urandom(200_000),
        "stream.bin": os.urandom(MiB + 3),
        "mp/big part.mp4": os.urandom(2 * UFILE_BLOCK + 1234567),  # 3 ufile parts; > the CLI's 8 MiB threshold
    }
    local = {name: write(tmp_path / "src" / name.replace("/", "_"), data) for name, data in up.items()}
    for name in ("中文 目录/小 文件 a.txt", "empty.txt"):
        ret, resp = fm.putfile(uf.bucket, f"up/{name}", local[name])
        assert_sdk_ok(ret, resp, f"[ufile {v}] putfile {name!r}")
    ret, resp = fm.postfile(uf.bucket, "up/form post.jpg", local["form post.jpg"])
    assert_sdk_ok(ret, resp, f"[ufile {v}] postfile")
    ret, resp = fm.putstream(uf.bucket, "up/stream.bin", io.BytesIO(up["stream.bin"]))
    assert_sdk_ok(ret, resp, f"[ufile {v}] putstream")
    ret, resp = uf.mp(mod=sdk).uploadfile(uf.bucket, "up/mp/big part.mp4", local["mp/big part.mp4"], maxthread=4, retrycount=1, retryinterval=0)
    assert_sdk_ok(ret, resp, f"[ufile {v}] multipart uploadfile")

    out = tmp_path / "cli-out"
    aws_as(uf, "s3", "cp", "--recursive", "--no-progress", f"s3://{uf.bucket}/up/", str(out))
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert sorted(got) == sorted(up), f"aws s3 cp --recursive fetched {sorted(got)}, expected {sorted(up)}"
    for name, data in up.items():
        assert len(got[name]) == len(data) and sha256(got[name]) == sha256(data), (
            f"[ufile {v}] {name!r}: aws s3 cp got {len(got[name])} bytes, different from the {len(data)} uploaded"
        )

    one = tmp_path / "one.mp4"
    aws_as(uf, "s3", "cp", "--no-progress", f"s3://{uf.bucket}/up/mp/big part.mp4", str(one))
    assert sha256(one.read_bytes()) == sha256(up["mp/big part.mp4"]), "aws s3 cp of the multipart object differs"
    one = tmp_path / "one.txt"
    aws_as(uf, "s3", "cp", "--no-progress", f"s3://{uf.bucket}/up/中文 目录/小 文件 a.txt", str(one))
    assert one.read_bytes() == up["中文 目录/小 文件 a.txt"], "aws s3 cp of the unicode key differs"
