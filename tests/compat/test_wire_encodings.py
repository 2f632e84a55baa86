"""Names on the wire: every protocol, with its real SDKs, for names holding a
space, `+`, `%`, a literal `%20`, `&`/`=`, `#`, `?` (where the SDK can send
it) and CJK, in nested folders with such names.

Contract (the issue item "one query/form decoding per protocol"): each
protocol decodes its query strings and form bodies exactly one way, matching
what that protocol's SDKs send (`+` is a space where they encode with
quote_plus / urlencode, literal where they do not), `%XX` decoded exactly
once, names as UTF-8; every endpoint of the protocol uses that one decoding.
So whatever name an SDK call carries (path, query parameter, form field,
header, list cursor), the object is stored, found, listed, moved under
exactly that name: each test checks the stored name through a second path
(the tenant's S3 view, or the protocol's own listing) and the exact bytes.

Names an SDK cannot put on the wire at all are left out of that SDK's set
(and say why): UFile keys with `#`/`?` (the SDK formats the key into the URL
unquoted, so requests cuts the path there) or a literal `%20` (requests keeps
a valid `%XX` as is: the wire is that of "a b.txt" while the SDK signs
"a%20b.txt"); COS paths with `?` (the SDKs refuse them); UpYun copy/move
sources with CJK (the SDK sends the source header unencoded, requests cannot
send it).

Every test collects its failing steps (`Checks`) and reports each with the
requests the SDK sent for it (`Wire`, recorded at urllib3 level: method,
request target exactly as sent, the name-carrying headers, form fields).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import io
import json
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
import requests
import urllib3.connectionpool
from botocore.exceptions import ClientError

from adrive_helpers import AliyunRedirect, create_drive_tenant, import_aligo, make_aligo
from compat_helpers import KiB, MiB, list_all_keys, unique_name
from cos_helpers import (  # noqa: F401  (cos, no_proxy are fixtures)
    E_DEST_EXISTS,
    E_EXISTS,
    E_NOT_FOUND,
    assert_access_url,
    assert_ok,
    cos,
    import_cos_sdk,
    no_proxy,
    sha1_hex,
)
from ufile_helpers import (  # noqa: F401  (make_ufile, uf are fixtures)
    create_tenant,
    import_ufile327,
    install_localhost_resolver,
    iot_body,
    iot_request_url,
    make_ufile,
    md5_hex,
    quoted,
    register_device,
    uf,
    ufile_etag,
)
from upyun_helpers import LIST_END_MARKER, make_account

import ufile  # noqa: E402  (3.2.11, the venv's)

# --------------------------------------------------------------------------
# the names

NAMES = ["a b.txt", "a+b.txt", "100%.txt", "a%20b.txt", "a&b=c.txt", "a#b.txt", "中文 文件.txt"]
Q_NAME = "x?y.txt"
IDS = {
    "a b.txt": "space",
    "a+b.txt": "plus",
    "100%.txt": "pct",
    "a%20b.txt": "pct20",
    "a&b=c.txt": "amp-eq",
    "a#b.txt": "hash",
    "中文 文件.txt": "cjk",
    Q_NAME: "qmark",
}
# For each name, a prefix that ends right after its tricky character: listing
# with it must give exactly the entries starting with it (a '+' read as a space
# would turn "a+" into "a " and find "a b.txt" instead).
PREFIX = {
    "a b.txt": "a b",
    "a+b.txt": "a+",
    "100%.txt": "100%",
    "a%20b.txt": "a%2",
    "a&b=c.txt": "a&b=",
    "a#b.txt": "a#",
    "中文 文件.txt": "中文 ",
    Q_NAME: "x?",
}


def stem(name: str) -> str:
    return name[: -len(".txt")]


def ids(names):
    return [IDS[n] for n in names]


# COS: the SDKs refuse '?' (and * : | \ < > ") in paths.
COS_NAMES = NAMES
COS_DIR = "/d a+b%20c&d=e#f 中/"
# UFile 3.2.x formats the key into the URL unquoted: '#' and '?' cut the
# path, and a valid literal %XX is sent as is (wire "a b.txt", signature
# "a%20b.txt"), see the module docstring.
UF_NAMES = ["a b.txt", "a+b.txt", "100%.txt", "a&b=c.txt", "中文 文件.txt"]
UF_DIR = "u d+e&f=g 中%/"
UF_SUB = "sub a+b 中/"
# UpYun quotes the whole path (quote(safe='~/')): every name.
UP_NAMES = NAMES + [Q_NAME]
UP_DIR = "/d a+b%20c&d=e#f?g 中/"
UP_ASCII_DIR = "/s a+b&d=e#f?g/"  # no %: what the SDK can name unescaped
M0_DIR = "/m0 d+e%20f&g=h#i?j 中/"
ADRIVE_FOLDER = "d a+b%20c&d=e#f?g 中"
S3_DIR = "s d+e%20f&g=h#i?j 中/"
S3_SUB = "sub a+b 中/"


# --------------------------------------------------------------------------
# recording what goes on the wire


_NAME_HEADERS = (
    "X-Upyun-Copy-Source",
    "X-Upyun-Move-Source",
    "X-List-Iter",
    "X-Ufile-Copy-Source",
    "x-amz-copy-source",
)


def _multipart_fields(body: bytes, ctype: str) -> dict:
    m = re.search(r'boundary="?([^";]+)"?', ctype or "")
    if not m:
        return {}
    out = {}
    for part in body.split(b"--" + m.group(1).encode()):
        head, sep, val = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        nm = re.search(rb'name="([^"]*)"', head)
        if not nm:
            continue
        name = nm.group(1).decode("utf-8", "replace")
        if val.endswith(b"\r\n"):
            val = val[:-2]
        if name in ("filecontent", "file"):
            out[name] = f"<{len(val)} bytes>"
        else:
            out[name] = val[:160].decode("utf-8", "replace")
    return out


@dataclasses.dataclass
class Sent:
    method: str
    host: str
    port: int | None
    target: str
    headers: dict
    body: bytes | str | None

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None

    def line(self) -> str:
        s = f"{self.method} {self.target}"
        for h in _NAME_HEADERS:
            v = self.header(h)
            if v is not None:
                s += f"  [{h}: {v}]"
        body = self.body
        if isinstance(body, str):
            body = body.encode("utf-8", "replace")
        if isinstance(body, bytes) and body:
            ctype = (self.header("Content-Type") or "").lower()
            if "multipart/form-data" in ctype:
                s += f"  form={_multipart_fields(body, self.header('Content-Type'))}"
            elif "json" in ctype or "x-www-form-urlencoded" in ctype:
                s += f"  body={body[:300].decode('utf-8', 'replace')}"
        return s


class Wire:
    """Records every request sent through urllib3 (requests, boto3) while active."""

    def __init__(self):
        self.sent: list[Sent] = []
        self._orig = None

    def __enter__(self) -> "Wire":
        pool_cls = urllib3.connectionpool.HTTPConnectionPool
        self._orig = orig = pool_cls.urlopen
        wire = self

        def urlopen(pool, method, url, body=None, headers=None, *args, **kwargs):
            hdrs = {}
            for k, v in (headers or {}).items():
                hdrs[str(k)] = v.decode("latin-1") if isinstance(v, bytes) else str(v)
            wire.sent.append(
                Sent(method, pool.host, pool.port, url, hdrs, body if isinstance(body, (bytes, str)) else None)
            )
            return orig(pool, method, url, body, headers, *args, **kwargs)

        pool_cls.urlopen = urlopen
        return self

    def __exit__(self, *exc) -> None:
        urllib3.connectionpool.HTTPConnectionPool.urlopen = self._orig

    def mark(self) -> int:
        return len(self.sent)

    def describe(self, since: int = 0, last: int = 8) -> str:
        lines = [s.line() for s in self.sent[since:]]
        if len(lines) > last:
            lines = [f"... ({len(lines) - last} earlier)"] + lines[-last:]
        return "\n      ".join(lines) or "<nothing sent>"


@pytest.fixture
def wire():
    with Wire() as w:
        yield w


class Checks:
    """Runs every step of a test, collects the failing ones with what was sent."""

    def __init__(self, wire: Wire | None, what: str):
        self.wire = wire
        self.what = what
        self.failures: list[str] = []

    @contextlib.contextmanager
    def step(self, label: str):
        mark = self.wire.mark() if self.wire else 0
        try:
            yield
        except Exception as e:  # noqa: BLE001  (every failure is reported)
            msg = str(e)
            if len(msg) > 1500:
                msg = msg[:1500] + " ..."
            sent = self.wire.describe(mark) if self.wire else "<not recorded>"
            self.failures.append(f"[{label}] {type(e).__name__}: {msg}\n    sent:\n      {sent}")

    def finish(self) -> None:
        assert not self.failures, (
            f"{self.what}: {len(self.failures)} failing step(s):\n\n" + "\n\n".join(self.failures)
        )


# --------------------------------------------------------------------------
# the S3 view (the second path every test checks the stored name through)


def s3_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return list_all_keys(s3, bucket, prefix)


def assert_s3_object(s3, bucket: str, key: str, data: bytes, what: str = "") -> None:
    try:
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        code = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise AssertionError(
            f"{what}: S3 GET {key!r}: HTTP {code}, no such object; the bucket holds {s3_keys(s3, bucket)}"
        ) from None
    assert got == data, f"{what}: S3 object {key!r} has other bytes ({len(got)} vs {len(data)})"


def assert_s3_absent(s3, bucket: str, key: str, what: str = "") -> None:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        code = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert code == 404, f"{what}: S3 HEAD {key!r}: HTTP {code}"
        return
    raise AssertionError(f"{what}: S3 object {key!r} exists but must not; the bucket holds {s3_keys(s3, bucket)}")


def assert_names(got: list, expected, what: str) -> None:
    dups = sorted({n for n in got if got.count(n) > 1})
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not dups and not missing and not extra, (
        f"{what}: duplicates {dups}, missing {missing}, unexpected {extra}; got (in order) {got}"
    )


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def local_path(tmp_path: Path) -> Path:
    return tmp_path / f"l-{secrets.token_hex(4)}.bin"


# ==========================================================================
# Tencent COS, v4 (qcloud_cos_v4 0.0.9, /files/v2) and v3 (qcloud-cos 3.3.6, /files/v1)


def cos_list_all(client, sdk, flavor: str, bucket: str, path: str, num: int, prefix: str = "") -> tuple[list, int]:
    """Every entry name through the SDK's list_folder, paging with the
    context the server gave (sent back by the SDK through requests params=)."""
    names, ctx, pages = [], "", 0
    while pages < 60:
        if flavor == "v4":
            req = sdk.ListFolderRequest(bucket, path, num=num, prefix=prefix, context=ctx)
        else:
            req = sdk.ListFolderRequest(bucket, path, num=num, pattern="eListBoth", prefix=prefix, context=ctx, order=0)
        data = assert_ok(client.list_folder(req), f"list_folder {path!r} prefix={prefix!r} page {pages} context={ctx!r}")
        infos = data.get("infos") or []
        assert len(infos) <= num, f"{len(infos)} entries for num={num}: {infos}"
        names += [i.get("name") for i in infos]
        pages += 1
        if data.get("listover") is True:
            return names, pages
        assert data.get("listover") is False, f"listover is {data.get('listover')!r}"
        ctx = data.get("context")
        assert isinstance(ctx, str) and ctx, f"page {pages}: not over but no context: {data}"
    raise AssertionError(f"list_folder {path!r} prefix={prefix!r}: not over after {pages} pages: {names}")


def cos_client(ctx, flavor: str):
    return ctx.v4() if flavor == "v4" else ctx.v3()


@pytest.mark.parametrize("flavor", ["v4", "v3"])
@pytest.mark.parametrize("name", COS_NAMES, ids=ids(COS_NAMES))
def test_cos_file_calls(cos, wire, tmp_path, flavor, name):
    """create_folder, upload (simple, slice), stat, update, download (v4),
    insertOnly 1/0, delete: all on <tricky dir>/<tricky name>."""
    sdk = import_cos_sdk(flavor)
    client = cos_client(cos, flavor)
    s3, b = cos.s3(), cos.bucket
    chk = Checks(wire, f"COS {flavor} file calls on {COS_DIR + name!r}")
    path = COS_DIR + name
    key = path[1:]
    data, data2 = os.urandom(3000), os.urandom(2000)

    with chk.step(f"create_folder {COS_DIR!r}"):
        assert_ok(client.create_folder(sdk.CreateFolderRequest(b, COS_DIR, "")), "create_folder")
        assert_s3_object(s3, b, COS_DIR[1:], b"", "folder marker")
        assert_ok(client.stat_folder(sdk.StatFolderRequest(b, COS_DIR)), "stat_folder")

    with chk.step("upload_single_file (biz_attr = the name)"):
        up = assert_ok(
            client.upload_single_file(sdk.UploadFileRequest(b, path, write(local_path(tmp_path), data), name, 1)),
            "upload_single_file",
        )
        assert_access_url(cos, up.get("access_url"), path, "upload answer")
        assert_s3_object(s3, b, key, data, "after upload")

    with chk.step("stat_file"):
        st = assert_ok(client.stat_file(sdk.StatFileRequest(b, path)), "stat_file")
        assert st.get("filesize") == len(data) and st.get("sha") == sha1_hex(data), st
        assert st.get("biz_attr") == name, f"biz_attr {st.get('biz_attr')!r} != {name!r}"

    with chk.step("update_file biz_attr"):
        req = sdk.UpdateFileRequest(b, path)
        req.set_biz_attr("u:" + name)
        assert_ok(client.update_file(req), "update_file")
        st = assert_ok(client.stat_file(sdk.StatFileRequest(b, path)), "stat after update")
        assert st.get("biz_attr") == "u:" + name, st

    if flavor == "v4":
        with chk.step("download_file (v4 download URL, ?sign= raw base64)"):
            out = tmp_path / f"dl-{secrets.token_hex(3)}.bin"
            ret = client.download_file(sdk.DownloadFileRequest(b, path, str(out)))
            assert ret.get("code") == 0, ret
            got = out.read_bytes()
            assert got == data, f"downloaded {len(got)} bytes, not the file's {len(data)}: {got[:300]!r}"

    with chk.step("upload insertOnly=1 onto the existing file"):
        ret = client.upload_single_file(sdk.UploadFileRequest(b, path, write(local_path(tmp_path), data2), "", 1))
        assert ret.get("code") == E_EXISTS, f"expected {E_EXISTS}, got {ret}"
        assert_s3_object(s3, b, key, data, "refused overwrite")

    with chk.step("upload insertOnly=0 (overwrite)"):
        ret = client.upload_single_file(sdk.UploadFileRequest(b, path, write(local_path(tmp_path), data2), "", 0))
        assert_ok(ret, "upload insertOnly=0")
        assert_s3_object(s3, b, key, data2, "after overwrite")

    spath = COS_DIR + "slice " + name
    big = os.urandom(MiB + MiB // 2 + 11)
    with chk.step(f"upload_slice_file {spath!r}"):
        local = write(local_path(tmp_path), big)
        if flavor == "v4":
            req = sdk.UploadSliceFileRequest(b, spath, local, MiB, "", enable_sha1=False, max_con=1)
        else:
            req = sdk.UploadSliceFileRequest(b, spath, local, MiB, "")
        assert_ok(client.upload_slice_file(req), "upload_slice_file")
        assert_s3_object(s3, b, spath[1:], big, "after slice upload")
        st = assert_ok(client.stat_file(sdk.StatFileRequest(b, spath)), "stat slice file")
        assert st.get("sha") == sha1_hex(big), st

    with chk.step("del_file"):
        assert_ok(client.del_file(sdk.DelFileRequest(b, path)), "del_file")
        assert_s3_absent(s3, b, key, "deleted")
        ret = client.stat_file(sdk.StatFileRequest(b, path))
        assert ret.get("code") == E_NOT_FOUND, f"stat after delete: {ret}"
        assert_s3_object(s3, b, spath[1:], big, "the other file in the folder")

    chk.finish()


def cos_move(client, sdk, flavor, bucket, src, dst, overwrite: bool):
    if flavor == "v4":
        return client.move_file(sdk.MoveFileRequest(bucket, src, dst, overwrite=overwrite))
    return client.move_file(sdk.MoveFileRequest(bucket, src, dst, 1 if overwrite else 0))


@pytest.mark.parametrize("flavor", ["v4", "v3"])
@pytest.mark.parametrize("name", COS_NAMES, ids=ids(COS_NAMES))
def test_cos_move_file(cos, wire, flavor, name):
    """move_file (v4: dest_fileid in the query via requests params=; v3: in a
    JSON body) to <plain folder>/<tricky name>, from it (tricky source), to a
    bare tricky name (v4: same folder), and onto an existing tricky name with
    to_over_write 0 and 1."""
    sdk = import_cos_sdk(flavor)
    client = cos_client(cos, flavor)
    s3, b = cos.s3(), cos.bucket
    chk = Checks(wire, f"COS {flavor} move_file with {name!r}")
    a, o = os.urandom(1000), os.urandom(1100)
    for d in ("/p/", "/q/", "/r/", "/o/"):
        cos.mkdir(d)
    want = {"p/": a, "q/": None, "r/": a if flavor == "v4" else None, "o/": o}

    dst = "/p/" + name
    with chk.step(f"move_file /src1.bin -> {dst!r}"):
        cos.upload("/src1.bin", a)
        assert_ok(cos_move(client, sdk, flavor, b, "/src1.bin", dst, False), "move")
        assert_s3_object(s3, b, dst[1:], a, "moved")
        assert_s3_absent(s3, b, "src1.bin", "moved away")

    src = "/q/" + name
    with chk.step(f"move_file {src!r} -> /back.bin (tricky source)"):
        cos.upload(src, a)
        assert_ok(cos_move(client, sdk, flavor, b, src, "/back.bin", False), "move back")
        assert_s3_object(s3, b, "back.bin", a, "moved back")
        assert_s3_absent(s3, b, src[1:], "source of the move back")

    if flavor == "v4":
        with chk.step(f"move_file /r/plain.bin -> {name!r} (a bare name: same folder)"):
            cos.upload("/r/plain.bin", a)
            assert_ok(cos_move(client, sdk, flavor, b, "/r/plain.bin", name, False), "move to a bare name")
            assert_s3_object(s3, b, "r/" + name, a, "renamed in place")
            assert_s3_absent(s3, b, "r/plain.bin", "renamed away")

    odst = "/o/" + name
    cos.upload(odst, a)
    cos.upload("/other.bin", o)
    with chk.step(f"move_file /other.bin -> {odst!r} to_over_write=0 onto an existing file"):
        ret = cos_move(client, sdk, flavor, b, "/other.bin", odst, False)
        assert ret.get("code") == E_DEST_EXISTS, f"expected {E_DEST_EXISTS}, got {ret}"
        assert_s3_object(s3, b, odst[1:], a, "refused overwrite: destination")
        assert_s3_object(s3, b, "other.bin", o, "refused overwrite: source")

    with chk.step(f"move_file /other.bin -> {odst!r} to_over_write=1"):
        assert_ok(cos_move(client, sdk, flavor, b, "/other.bin", odst, True), "move with overwrite")
        assert_s3_object(s3, b, odst[1:], o, "overwritten")
        assert_s3_absent(s3, b, "other.bin", "moved with overwrite")

    with chk.step("every folder holds exactly the expected keys"):
        got = {d: sorted(s3_keys(s3, b, d)) for d in want}
        exp = {d: sorted([d] + ([d + name] if v is not None else [])) for d, v in want.items()}
        assert got == exp, f"S3 keys per folder {got}, expected {exp}"

    chk.finish()


@pytest.mark.parametrize("flavor", ["v4", "v3"])
def test_cos_move_file_into_tricky_folder(cos, wire, flavor):
    """move_file of plain files to <tricky folder>/<each tricky name>."""
    sdk = import_cos_sdk(flavor)
    client = cos_client(cos, flavor)
    s3, b = cos.s3(), cos.bucket
    chk = Checks(wire, f"COS {flavor} move_file into {COS_DIR!r}")
    cos.mkdir(COS_DIR)
    for i, name in enumerate(COS_NAMES):
        data = os.urandom(500 + i)
        dst = COS_DIR + name
        with chk.step(f"move_file /src{i}.bin -> {dst!r}"):
            cos.upload(f"/src{i}.bin", data)
            assert_ok(cos_move(client, sdk, flavor, b, f"/src{i}.bin", dst, False), "move")
            assert_s3_object(s3, b, dst[1:], data, "moved")
            assert_s3_absent(s3, b, f"src{i}.bin", "moved away")
    with chk.step("the folder holds exactly the moved files"):
        assert_names(s3_keys(s3, b, COS_DIR[1:]), [COS_DIR[1:]] + [COS_DIR[1:] + n for n in COS_NAMES], "S3 keys")
    chk.finish()


@pytest.mark.parametrize("flavor", ["v4", "v3"])
def test_cos_list_folder_paging_prefix_and_folders(cos, wire, flavor):
    """list_folder of a plain and of the tricky folder: num=1 (every entry
    needs a page; the context goes back through requests params=), num=3,
    of the root; with each tricky prefix in one page (v4: prefix only in the
    path; v3: in the path and as prefix= in the query) and paged; stat and
    delete of tricky folders."""
    sdk = import_cos_sdk(flavor)
    client = cos_client(cos, flavor)
    s3, b = cos.s3(), cos.bucket
    chk = Checks(wire, f"COS {flavor} listing")
    entries = set(COS_NAMES) | {stem(n) for n in COS_NAMES}
    for d in ("/p/", COS_DIR):
        s3.put_object(Bucket=b, Key=d[1:], Body=b"")
        for n in COS_NAMES:
            s3.put_object(Bucket=b, Key=d[1:] + n, Body=n.encode())
            s3.put_object(Bucket=b, Key=d[1:] + stem(n) + "/", Body=b"")

    for d in ("/p/", COS_DIR):
        with chk.step(f"list_folder {d!r} num=100 (one page)"):
            names, pages = cos_list_all(client, sdk, flavor, b, d, 100)
            assert_names(names, entries, "num=100")
        for num in (1, 3):
            with chk.step(f"list_folder {d!r} num={num}, paging by context"):
                names, pages = cos_list_all(client, sdk, flavor, b, d, num)
                assert_names(names, entries, f"num={num}")

    with chk.step("list_folder / num=1"):
        names, _ = cos_list_all(client, sdk, flavor, b, "/", 1)
        assert_names(names, {"p", COS_DIR.strip("/")}, "root")

    for d in ("/p/", COS_DIR):
        for n in COS_NAMES:
            p = PREFIX[n]
            want = {e for e in entries if e.startswith(p)}
            with chk.step(f"list_folder {d!r} prefix={p!r} num=100 (one page)"):
                names, _ = cos_list_all(client, sdk, flavor, b, d, 100, prefix=p)
                assert_names(names, want, f"prefix {p!r}")
            with chk.step(f"list_folder {d!r} prefix={p!r} num=1 (paged)"):
                names, _ = cos_list_all(client, sdk, flavor, b, d, 1, prefix=p)
                assert_names(names, want, f"prefix {p!r}")

    for n in COS_NAMES:
        d = COS_DIR + stem(n) + "/"
        with chk.step(f"stat_folder / del_folder {d!r}"):
            assert_ok(client.stat_folder(sdk.StatFolderRequest(b, d)), "stat_folder")
            assert_ok(client.del_folder(sdk.DelFolderRequest(b, d)), "del_folder")
            assert_s3_absent(s3, b, d[1:], "deleted folder")

    with chk.step("list_folder of the tricky folder after deleting its folders"):
        names, _ = cos_list_all(client, sdk, flavor, b, COS_DIR, 100)
        assert_names(names, set(COS_NAMES), "files only")

    chk.finish()


# ==========================================================================
# UFile (ufile 3.2.11 and 3.2.7)

UF_VERSIONS = ["3.2.11", "3.2.7"]


def uf_mod(version: str):
    return ufile if version == "3.2.11" else import_ufile327()


def uf_ok(ret, resp, what: str) -> None:
    assert ret is not None and resp.status_code in (200, 204, 206), (
        f"{what}: SDK call failed: HTTP {resp.status_code}, ret_code={resp.ret_code}, error={resp.error!r}"
    )


@pytest.mark.parametrize("version", UF_VERSIONS)
@pytest.mark.parametrize("name", UF_NAMES, ids=ids(UF_NAMES))
def test_ufile_object_calls(uf, wire, tmp_path, version, name):
    """putfile, head_file, download_file (urlencoded presigned query),
    private_download_url (raw '+' in Signature), putstream, postfile
    (FileName form field), multipart uploadstream, copy (X-Ufile-Copy-Source:
    quote()d source), 3.2.7: rename (newFileName via params=) and uploadhit
    (FileName via params=), deletefile."""
    mod = uf_mod(version)
    fm, mp = uf.fm(mod=mod), uf.mp(mod=mod)
    s3, b = uf.s3(), uf.bucket
    chk = Checks(wire, f"UFile {version} calls on {UF_DIR + name!r}")
    key = UF_DIR + name
    data = os.urandom(5000)
    local = write(tmp_path / "src" / "f.bin", data)

    with chk.step("putfile"):
        uf_ok(*fm.putfile(b, key, local), "putfile")
        assert_s3_object(s3, b, key, data, "putfile")

    with chk.step("head_file"):
        ret, resp = fm.head_file(b, key)
        uf_ok(ret, resp, "head_file")
        assert resp.etag == quoted(ufile_etag(data)), f"ETag {resp.etag!r}"

    with chk.step("download_file"):
        out = tmp_path / f"dl-{secrets.token_hex(3)}.bin"
        uf_ok(*fm.download_file(b, key, str(out)), "download_file")
        assert out.read_bytes() == data

    with chk.step("private_download_url + GET"):
        # The signature depends on the expiry: try expiries until it holds a raw '+' (the
        # case a '+'-as-space decoding would break); most do within a few tries.
        for expires in range(600, 1600):
            url = fm.private_download_url(b, key, expires=expires)
            if "+" in url.split("Signature=", 1)[1].split("&", 1)[0]:
                break
        assert "+" in url.split("Signature=", 1)[1].split("&", 1)[0], url
        r = requests.get(url, timeout=60)
        assert r.status_code == 200 and r.content == data, f"GET {url}: HTTP {r.status_code} {r.text[:300]!r}"

    skey = UF_DIR + "stream/" + name
    with chk.step(f"putstream {skey!r}"):
        uf_ok(*fm.putstream(b, skey, io.BytesIO(data)), "putstream")
        assert_s3_object(s3, b, skey, data, "putstream")

    pkey = UF_DIR + "post/" + name
    with chk.step(f"postfile {pkey!r}"):
        uf_ok(*fm.postfile(b, pkey, local), "postfile")
        assert_s3_object(s3, b, pkey, data, "postfile")

    mkey = UF_DIR + "mp/" + name
    big = os.urandom(4 * MiB + 7)
    with chk.step(f"multipart uploadstream {mkey!r}"):
        ret, resp = mp.uploadstream(b, mkey, io.BytesIO(big), maxthread=2, retrycount=1, retryinterval=0)
        uf_ok(ret, resp, "uploadstream")
        assert_s3_object(s3, b, mkey, big, "multipart")

    ckey = UF_DIR + "copy/" + name
    with chk.step(f"copy {key!r} -> {ckey!r}"):
        uf_ok(*fm.copy(b, ckey, b, key), "copy")
        assert_s3_object(s3, b, ckey, data, "copy")
        assert_s3_object(s3, b, key, data, "copy source")

    if version == "3.2.7":
        rkey = UF_DIR + "ren/" + name
        with chk.step(f"rename {ckey!r} -> {rkey!r}"):
            uf_ok(*fm.rename(b, ckey, rkey), "rename")
            assert_s3_object(s3, b, rkey, data, "renamed")
            assert_s3_absent(s3, b, ckey, "rename source")
        hkey = UF_DIR + "hit/" + name
        with chk.step(f"uploadhit {hkey!r}"):
            ret, resp = fm.uploadhit(b, hkey, local)
            assert resp.status_code == 200, f"uploadhit: HTTP {resp.status_code} {resp.error!r}"
            assert_s3_object(s3, b, hkey, data, "uploadhit")

    with chk.step("deletefile"):
        uf_ok(*fm.deletefile(b, key), "deletefile")
        assert_s3_absent(s3, b, key, "deleted")

    chk.finish()


def uf_getfilelist_all(fm, bucket: str, prefix: str, limit: int) -> list[str]:
    got, marker = [], ""
    for page in range(60):
        ret, resp = fm.getfilelist(bucket, prefix=prefix, marker=marker, limit=limit)
        uf_ok(ret, resp, f"getfilelist prefix={prefix!r} marker={marker!r} page {page}")
        ds = ret.get("DataSet") or []
        assert len(ds) <= limit, ret
        got += [d["FileName"] for d in ds]
        marker = ret.get("NextMarker")
        if not marker:
            return got
    raise AssertionError(f"getfilelist prefix={prefix!r}: no end after 60 pages: {got}")


def uf_listobjects_all(fm, bucket: str, prefix: str, maxkeys: int, delimiter: str) -> tuple[list, list]:
    keys, prefixes, marker = [], [], ""
    for page in range(60):
        ret, resp = fm.listobjects(bucket, prefix=prefix, marker=marker, maxkeys=maxkeys, delimiter=delimiter)
        uf_ok(ret, resp, f"listobjects prefix={prefix!r} marker={marker!r} delimiter={delimiter!r} page {page}")
        keys += [c["Key"] for c in ret.get("Contents") or []]
        prefixes += [c["Prefix"] for c in ret.get("CommonPrefixes") or []]
        if not ret.get("IsTruncated"):
            return keys, prefixes
        marker = ret.get("NextMarker")
        assert marker, f"IsTruncated without NextMarker: {ret}"
    raise AssertionError(f"listobjects prefix={prefix!r}: no end after 60 pages: {keys} {prefixes}")


@pytest.mark.parametrize("version", UF_VERSIONS)
def test_ufile_listing_prefix_and_marker(uf, wire, version):
    """getfilelist (?list) and listobjects (?listobjects) with a tricky prefix,
    limit 1 so every entry needs a page (NextMarker goes back via params=),
    delimiter '' and '/', and each tricky prefix."""
    fm = uf.fm(mod=uf_mod(version))
    s3, b = uf.s3(), uf.bucket
    chk = Checks(wire, f"UFile {version} listing of {UF_DIR!r}")
    files = [UF_DIR + n for n in UF_NAMES] + [UF_DIR + UF_SUB + "x.txt"]
    for k in files:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    s3.put_object(Bucket=b, Key="other.txt", Body=b"o")

    with chk.step(f"getfilelist prefix={UF_DIR!r} limit=1"):
        assert_names(uf_getfilelist_all(fm, b, UF_DIR, 1), files, "getfilelist")

    with chk.step(f"listobjects prefix={UF_DIR!r} maxkeys=1 delimiter=''"):
        keys, cps = uf_listobjects_all(fm, b, UF_DIR, 1, "")
        assert_names(keys, files, "listobjects")
        assert cps == [], cps

    with chk.step(f"listobjects prefix={UF_DIR!r} maxkeys=1 delimiter='/'"):
        keys, cps = uf_listobjects_all(fm, b, UF_DIR, 1, "/")
        assert_names(keys, [UF_DIR + n for n in UF_NAMES], "listobjects /: keys")
        assert_names(cps, [UF_DIR + UF_SUB], "listobjects /: common prefixes")

    for n in UF_NAMES:
        p = UF_DIR + PREFIX[n]
        want = [k for k in files if k.startswith(p)]
        with chk.step(f"getfilelist prefix={p!r}"):
            assert_names(uf_getfilelist_all(fm, b, p, 1), want, "getfilelist")
        with chk.step(f"listobjects prefix={p!r}"):
            keys, _ = uf_listobjects_all(fm, b, p, 1, "")
            assert_names(keys, want, "listobjects")

    chk.finish()


# ==========================================================================
# UpYun 2.5.5 (REST, form, resumable, parallel multipart) and 2.4.2 (m0 blocks)


@pytest.mark.parametrize("name", UP_NAMES, ids=ids(UP_NAMES))
def test_upyun_calls(server, wire, tmp_path, name):
    """put / getinfo / get / delete, form upload (save-key in the policy),
    resumable and parallel multipart, copy and move (X-Upyun-*-Source sent
    unencoded; CJK sources cannot be sent by the SDK, so only as
    destination), mkdir."""
    acct = make_account(server)
    up, s3, b = acct.sdk(), acct.s3(), acct.bucket
    chk = Checks(wire, f"UpYun 2.5.5 calls on {UP_DIR + name!r}")
    key = UP_DIR + name
    data = os.urandom(4000)

    with chk.step("put"):
        up.put(key, data)
        assert_s3_object(s3, b, key[1:], data, "put")

    with chk.step("getinfo"):
        info = up.getinfo(key)
        assert info.get("file-type") == "file" and info.get("file-size") == str(len(data)), info

    with chk.step("get"):
        buf = io.BytesIO()
        up.get(key, buf)
        assert buf.getvalue() == data

    fkey = UP_DIR + "form/" + name
    with chk.step(f"form upload save-key={fkey!r}"):
        with open(write(tmp_path / "form.bin", data), "rb") as f:
            res = up.put(fkey, f, form=True)
        assert isinstance(res, dict), res
        assert_s3_object(s3, b, fkey[1:], data, "form upload")

    rkey = UP_DIR + "resume/" + name
    big = os.urandom(MiB + 300 * KiB)
    with chk.step(f"resumable put {rkey!r}"):
        with open(write(tmp_path / "big.bin", big), "rb") as f:
            up.put(rkey, f, need_resume=True, part_size=MiB)
        assert_s3_object(s3, b, rkey[1:], big, "resumable put")

    mkey = UP_DIR + "multi/" + name
    with chk.step(f"init_multi_uploader {mkey!r}"):
        uploader = up.init_multi_uploader(mkey, part_size=MiB, file_size=len(big))
        uploader.upload(1, big[MiB:])
        uploader.upload(0, big[:MiB])
        uploader.complete(hashlib.md5(big).hexdigest())
        assert_s3_object(s3, b, mkey[1:], big, "parallel multipart")

    # The SDK sends X-Upyun-Copy/Move-Source unencoded (requests can only send
    # latin-1 there): the sources are ASCII, CJK names only destinations.
    src = "/src/" + name if name.isascii() else "/src/plain.bin"
    up.put(src, data)
    ckey = UP_DIR + "copy/" + name
    with chk.step(f"copy {src!r} -> {ckey!r}"):
        up.copy(upyun_source(src), ckey)
        assert_s3_object(s3, b, ckey[1:], data, "copy")
        assert_s3_object(s3, b, src[1:], data, "copy source")
    mv = UP_DIR + "moved/" + name
    with chk.step(f"move {src!r} -> {mv!r}"):
        up.move(upyun_source(src), mv)
        assert_s3_object(s3, b, mv[1:], data, "moved")
        assert_s3_absent(s3, b, src[1:], "move source")
    dkey = UP_DIR + "dir " + stem(name)
    with chk.step(f"mkdir {dkey!r}"):
        up.mkdir(dkey)
        info = up.getinfo(dkey)
        assert info.get("file-type") == "folder", info
        entries = {e["name"]: e["type"] for e in up.getlist(UP_DIR)}
        assert entries.get("dir " + stem(name)) == "F", entries

    with chk.step("delete"):
        up.delete(key)
        assert_s3_absent(s3, b, key[1:], "deleted")

    chk.finish()


def upyun_source(path: str) -> str:
    """An X-Upyun-Copy-Source/-Move-Source path as UpYun's own Go SDK sends it (escaped; the
    server decodes it once). upyun 2.5.5 puts the string given into the header as it is, so
    a caller escapes it: unescaped, a name holding a literal `%XX` would read as its escape,
    and a CJK name could not be sent at all (http.client headers are latin-1)."""
    return quote(path, safe="/~")


def test_upyun_copy_move_sources_in_a_tricky_folder(server, wire):
    """copy / move whose X-Upyun-*-Source names a file in a tricky folder: escaped as the Go
    SDK does, and unescaped (as the Python SDK passes a plain name) for names without `%`."""
    acct = make_account(server)
    up, s3, b = acct.sdk(), acct.s3(), acct.bucket
    chk = Checks(wire, f"UpYun copy/move from {UP_DIR!r}")
    for i, name in enumerate(UP_NAMES):
        data = os.urandom(300 + i)
        src = UP_DIR + name
        up.put(src, data)
        with chk.step(f"copy {src!r} -> /c{i}.bin"):
            up.copy(upyun_source(src), f"/c{i}.bin")
            assert_s3_object(s3, b, f"c{i}.bin", data, "copy")
        plain = UP_ASCII_DIR + name
        if plain.isascii() and "%" not in plain:
            up.put(plain, data)
            with chk.step(f"copy unescaped {plain!r} -> /u{i}.bin"):
                up.copy(plain, f"/u{i}.bin")
                assert_s3_object(s3, b, f"u{i}.bin", data, "copy")
        with chk.step(f"move {src!r} -> /m{i}.bin"):
            up.move(upyun_source(src), f"/m{i}.bin")
            assert_s3_object(s3, b, f"m{i}.bin", data, "move")
            assert_s3_absent(s3, b, src[1:], "move source")
    chk.finish()


@pytest.mark.parametrize("limit", [1, 3])
def test_upyun_listing(server, wire, limit):
    """getlist / iterlist / get_list_with_iter (X-List-Iter cursor sent back
    as a header) of a tricky folder, and of the root."""
    acct = make_account(server)
    up, s3, b = acct.sdk(), acct.s3(), acct.bucket
    chk = Checks(wire, f"UpYun listing of {UP_DIR!r}")
    for n in UP_NAMES:
        s3.put_object(Bucket=b, Key=UP_DIR[1:] + n, Body=n.encode())
    up.mkdir(UP_DIR + "sub a+b 中")
    entries = set(UP_NAMES) | {"sub a+b 中"}

    with chk.step("getlist"):
        got = up.getlist(UP_DIR)
        assert_names([e["name"] for e in got], entries, "getlist")
        sizes = {e["name"]: e["size"] for e in got}
        for n in UP_NAMES:
            assert sizes[n] == str(len(n.encode())), sizes

    with chk.step("iterlist"):
        assert_names([e["name"] for e in up.iterlist(UP_DIR)], entries, "iterlist")

    with chk.step(f"get_list_with_iter limit={limit}"):
        names, it = [], None
        for _ in range(30):
            r = up.get_list_with_iter(UP_DIR, limit=limit, begin=it)
            names += [e["name"] for e in r["files"]]
            assert len(r["files"]) <= limit, r
            it = r["iter"]
            assert it, f"no x-upyun-list-iter: {r}"
            if it == LIST_END_MARKER:
                break
        assert it == LIST_END_MARKER, f"listing did not end: {names}"
        assert_names(names, entries, "paged")

    with chk.step("getlist of the root"):
        assert {e["name"]: e["type"] for e in up.getlist("/")} == {UP_DIR.strip("/"): "F"}

    chk.finish()


@pytest.mark.parametrize("name", UP_NAMES, ids=ids(UP_NAMES))
def test_upyun242_block_upload_save_key(server, wire, tmp_path, name):
    """upyun 2.4.2 m0 block upload: the path is in the base64 policy (init
    urlencoded, blocks multipart, merge urlencoded)."""
    from test_upyun_block import make_m0_account

    acct = make_m0_account(server)
    chk = Checks(wire, f"UpYun 2.4.2 m0 upload to {M0_DIR + name!r}")
    path = M0_DIR + name
    data = os.urandom(250 * KiB)
    with chk.step("put(multipart=True)"):
        up = acct.sdk()
        with open(write(tmp_path / "m0.bin", data), "rb") as f:
            res = up.put(path, f, multipart=True, block_size=100 * KiB)
        assert isinstance(res, dict), f"the SDK gave up: {res!r}"
        assert res.get("path") == path, res
        assert_s3_object(acct.s3(), acct.bucket, path[1:], data, "m0 upload")
    chk.finish()


# ==========================================================================
# UCloud IoT device upload


@pytest.mark.parametrize("name", UP_NAMES, ids=ids(UP_NAMES))
def test_iot_device_upload_file_name(server, name):
    """FileName travels in the signed JSON body; the answered URL must be a
    valid request target (the device PUTs it verbatim) that names exactly
    <ProductSN>/<DeviceSN>/<FileName>."""
    install_localhost_resolver()
    t = create_tenant(server)
    b = unique_name("iot")
    s3 = t.s3(server)
    s3.create_bucket(Bucket=b)
    dev = register_device(server, t, b)
    chk = Checks(None, f"IoT upload of FileName {name!r}")
    data = os.urandom(3000)
    key = f"{dev.product_sn}/{dev.device_sn}/{name}"
    url = auth = None

    with chk.step("POST /api/v1/url"):
        r = iot_request_url(server, iot_body(dev, name, data), dev.device_secret)
        assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]}"
        body = r.json()
        url, auth = body.get("URL"), body.get("Authorization")
        assert isinstance(url, str) and isinstance(auth, str), body

    with chk.step(f"the URL {url!r} names the file"):
        assert url is not None
        parts = urlsplit(url)
        bad = re.findall(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]", parts.path)
        assert not bad, f"characters {bad} are not allowed unescaped in a URL path: {url!r}"
        assert not parts.fragment, f"the URL has a fragment {parts.fragment!r} (an unescaped '#'): {url!r}"
        assert unquote(parts.path).endswith("/" + key), (
            f"path {parts.path!r} decodes to {unquote(parts.path)!r}, not .../{key}; query {parts.query!r}"
        )

    with chk.step("PUT the URL verbatim"):
        assert url is not None
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            conn.request(
                "PUT",
                target,
                body=data,
                headers={"Host": parts.netloc, "Authorization": auth, "Content-Type": "plain/text", "Content-MD5": md5_hex(data)},
            )
            resp = conn.getresponse()
            text = resp.read()
        finally:
            conn.close()
        assert resp.status == 200, f"PUT {target!r}: HTTP {resp.status} {text[:300]!r}"
        assert_s3_object(s3, b, key, data, "IoT upload")

    chk.finish()


# ==========================================================================
# Aliyun Drive (aligo 6.2.8)


def test_adrive_aligo_tricky_names(server, tmp_path):
    """upload_folder of a tricky folder of tricky files, list, search
    (`name match "<name>"`), get_file_by_path, get_download_url + GET,
    download_file, rename, move with new_name."""
    aligo = import_aligo()
    drive = create_drive_tenant(server)
    s3, b = drive.s3(server), drive.default_drive_id
    chk = Checks(None, f"Aliyun Drive with {ADRIVE_FOLDER!r}")
    contents = {n: os.urandom(1500 + i) for i, n in enumerate(UP_NAMES)}
    src = tmp_path / "src" / ADRIVE_FOLDER
    for n, d in contents.items():
        write(src / n, d)
    with AliyunRedirect(server.endpoint) as rd:
        ali = make_aligo(drive, tmp_path / "cfg")
        files: dict[str, str] = {}
        folder_id = None

        with chk.step("upload_folder"):
            res = ali.upload_folder(str(src))
            assert all(isinstance(x, aligo.BaseFile) for x in res), f"{res!r}\n{rd.describe()}"
            top = [i for i in ali.get_file_list() if i.name == ADRIVE_FOLDER]
            assert len(top) == 1 and top[0].type == "folder", f"root holds {ali.get_file_list()!r}"
            folder_id = top[0].file_id
            for n, d in contents.items():
                assert_s3_object(s3, b, f"{ADRIVE_FOLDER}/{n}", d, "uploaded")

        with chk.step("get_file_list"):
            items = ali.get_file_list(parent_file_id=folder_id)
            assert_names([i.name for i in items], set(contents), "listing")
            files = {i.name: i.file_id for i in items}
            root = ali.get_file_list()
            assert [i.name for i in root] == [ADRIVE_FOLDER], [i.name for i in root]

        for n in contents:
            with chk.step(f"search_files({n!r})"):
                found = ali.search_files(n)
                assert isinstance(found, list), found
                assert_names([f.name for f in found], {x for x in contents if n.lower() in x.lower()}, "search")
            with chk.step(f"get_file_by_path({ADRIVE_FOLDER + '/' + n!r})"):
                f = ali.get_file_by_path(f"{ADRIVE_FOLDER}/{n}")
                assert f is not None and f.name == n and f.file_id == files.get(n), f

        for n, d in contents.items():
            fid = files.get(n)
            with chk.step(f"get_download_url {n!r} + GET"):
                assert fid, "no file id"
                u = ali.get_download_url(file_id=fid)
                r = requests.get(u.url, timeout=60)
                assert r.status_code in (200, 206) and r.content == d, f"GET {u.url}: HTTP {r.status_code}"
            with chk.step(f"download_file {n!r}"):
                assert fid, "no file id"
                out = ali.download_file(file_id=fid, local_folder=str(tmp_path / "dl" / secrets.token_hex(3)))
                assert Path(out).read_bytes() == d

        for n, d in contents.items():
            fid = files.get(n)
            new = "r " + n
            with chk.step(f"rename_file {n!r} -> {new!r}"):
                assert fid, "no file id"
                res = ali.rename_file(fid, new)
                assert getattr(res, "name", None) == new, repr(res)
                assert_s3_object(s3, b, f"{ADRIVE_FOLDER}/{new}", d, "renamed")
                assert_s3_absent(s3, b, f"{ADRIVE_FOLDER}/{n}", "rename source")
            moved = "m " + n
            with chk.step(f"move_file {new!r} -> root as {moved!r}"):
                assert fid, "no file id"
                res = ali.move_file(fid, to_parent_file_id="root", new_name=moved)
                assert getattr(res, "file_id", None) == fid, repr(res)
                assert_s3_object(s3, b, moved, d, "moved")
                assert ali.get_file_by_path(moved).file_id == fid
    chk.finish()


# ==========================================================================
# S3 (boto3 and the aws CLI)


def test_s3_boto3_tricky_keys(server, s3, bucket, wire, tmp_path):
    """put / list v2 (prefix, delimiter, MaxKeys=1 + continuation token,
    StartAfter) / list v1 (Marker) / copy with a tricky CopySource /
    presigned GET / delete_objects."""
    chk = Checks(wire, f"S3 boto3 on {S3_DIR!r}")
    contents = {S3_DIR + n: os.urandom(100 + i) for i, n in enumerate(UP_NAMES)}
    contents[S3_DIR + S3_SUB + "x.txt"] = b"nested"
    keys = sorted(contents)

    with chk.step("put_object"):
        for k, d in contents.items():
            s3.put_object(Bucket=bucket, Key=k, Body=d)
        for k, d in contents.items():
            assert_s3_object(s3, bucket, k, d, "put")

    with chk.step("list_objects_v2 MaxKeys=1, continuation tokens"):
        got, token = [], None
        for _ in range(30):
            kw = dict(Bucket=bucket, Prefix=S3_DIR, MaxKeys=1)
            if token:
                kw["ContinuationToken"] = token
            r = s3.list_objects_v2(**kw)
            got += [o["Key"] for o in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                break
            token = r["NextContinuationToken"]
        assert_names(got, keys, "list v2")

    with chk.step("list_objects_v2 Delimiter='/'"):
        r = s3.list_objects_v2(Bucket=bucket, Prefix=S3_DIR, Delimiter="/")
        assert_names([o["Key"] for o in r.get("Contents", [])], [S3_DIR + n for n in UP_NAMES], "keys")
        assert_names([p["Prefix"] for p in r.get("CommonPrefixes", [])], [S3_DIR + S3_SUB], "common prefixes")

    with chk.step("list_objects_v2 StartAfter"):
        after = S3_DIR + "a b.txt"
        r = s3.list_objects_v2(Bucket=bucket, Prefix=S3_DIR, StartAfter=after)
        assert_names([o["Key"] for o in r.get("Contents", [])], [k for k in keys if k > after], "start-after")

    with chk.step("list_objects (v1) MaxKeys=1, Marker"):
        got, marker = [], ""
        for _ in range(30):
            r = s3.list_objects(Bucket=bucket, Prefix=S3_DIR, MaxKeys=1, Marker=marker)
            page = [o["Key"] for o in r.get("Contents", [])]
            got += page
            if not r.get("IsTruncated"):
                break
            marker = r.get("NextMarker") or page[-1]
        assert_names(got, keys, "list v1")

    for n in UP_NAMES:
        p = S3_DIR + PREFIX[n]
        with chk.step(f"list_objects_v2 Prefix={p!r}"):
            r = s3.list_objects_v2(Bucket=bucket, Prefix=p)
            assert_names([o["Key"] for o in r.get("Contents", [])], [k for k in keys if k.startswith(p)], "prefix")

    for n in UP_NAMES:
        src, dst = S3_DIR + n, S3_DIR + "copy/" + n
        with chk.step(f"copy_object {src!r} -> {dst!r}"):
            s3.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src})
            assert_s3_object(s3, bucket, dst, contents[src], "copy")
        with chk.step(f"presigned GET {src!r}"):
            url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": src}, ExpiresIn=600)
            r = requests.get(url, timeout=60)
            assert r.status_code == 200 and r.content == contents[src], f"HTTP {r.status_code} {r.text[:300]}"

    with chk.step("delete_objects"):
        all_keys = s3_keys(s3, bucket)
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in all_keys]})
        assert not r.get("Errors"), r.get("Errors")
        assert_names([d["Key"] for d in r.get("Deleted", [])], all_keys, "deleted")
        assert s3_keys(s3, bucket) == []

    chk.finish()


def test_s3_aws_cli_tricky_keys(server, s3, bucket, tmp_path):
    """aws s3 cp --recursive up and down, aws s3 ls, aws s3api
    list-objects-v2 --prefix, aws s3 rm --recursive."""
    chk = Checks(None, f"aws CLI on {S3_DIR!r}")
    src = tmp_path / "up"
    contents = {n: os.urandom(200 + i) for i, n in enumerate(UP_NAMES)}
    for n, d in contents.items():
        write(src / n, d)
    write(src / S3_SUB / "x.txt", b"nested")
    keys = sorted([S3_DIR + n for n in contents] + [S3_DIR + S3_SUB + "x.txt"])

    with chk.step("aws s3 cp --recursive (upload)"):
        server.aws("s3", "cp", "--recursive", "--no-progress", str(src), f"s3://{bucket}/{S3_DIR}")
        assert_names(s3_keys(s3, bucket), keys, "uploaded keys")
        for n, d in contents.items():
            assert_s3_object(s3, bucket, S3_DIR + n, d, "aws s3 cp")

    with chk.step("aws s3 ls --recursive"):
        out = server.aws("s3", "ls", "--recursive", f"s3://{bucket}/").stdout
        listed = [re.split(r"\s+", line.strip(), maxsplit=3)[3] for line in out.splitlines() if line.strip()]
        assert_names(listed, keys, "aws s3 ls")

    for n in UP_NAMES:
        p = S3_DIR + PREFIX[n]
        with chk.step(f"aws s3api list-objects-v2 --prefix {p!r}"):
            out = server.aws("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", p).stdout
            got = [o["Key"] for o in (json.loads(out) if out.strip() else {}).get("Contents", [])]
            assert_names(got, [k for k in keys if k.startswith(p)], "s3api prefix")

    with chk.step("aws s3 cp --recursive (download)"):
        dst = tmp_path / "down"
        server.aws("s3", "cp", "--recursive", "--no-progress", f"s3://{bucket}/{S3_DIR}", str(dst))
        for n, d in contents.items():
            assert (dst / n).read_bytes() == d, n
        assert (dst / S3_SUB / "x.txt").read_bytes() == b"nested"

    with chk.step("aws s3 rm --recursive"):
        server.aws("s3", "rm", "--recursive", f"s3://{bucket}/{S3_DIR}")
        assert s3_keys(s3, bucket) == []

    chk.finish()
