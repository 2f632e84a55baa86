"""UpYun's folders over the core's file tree, with the real `upyun` 2.5.5 SDK (issue 11):
folder move and copy carry everything under them in one call, a name is a file or a folder
(406 40600001 otherwise), non-empty folders are not deleted (403 40300005), `x-upyun-meta-*`
metadata is kept and returned and `PATCH ?metadata=merge|replace|delete` changes it,
listings page in both orders, and names longer than UpYun's 255 bytes are refused.
"""

from __future__ import annotations

import io
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from compat_helpers import get_body, list_all_keys
from upyun_helpers import expect_upyun_error, make_account


@pytest.fixture
def acct(server):
    return make_account(server)


def _names(up, folder: str, **kw) -> list[str]:
    return [e["name"] for e in up.getlist(folder, **kw)]


def test_folder_move_and_copy_carry_everything(acct):
    up, s3 = acct.sdk(), acct.s3()
    base = f"/m-{secrets.token_hex(3)}"
    files = {f"{base}/src/sub{i % 4}/f{i:04}.txt": f"file {i}".encode() for i in range(1000)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: up.put(kv[0], kv[1]), files.items()))
    up.mkdir(f"{base}/empty")

    up.move(f"{base}/src", f"{base}/dst")
    assert list_all_keys(s3, acct.bucket, f"{base[1:]}/src/") == []
    moved = list_all_keys(s3, acct.bucket, f"{base[1:]}/dst/")
    assert len(moved) == 1000
    assert get_body(s3, acct.bucket, f"{base[1:]}/dst/sub2/f0002.txt") == b"file 2"
    assert sorted(_names(up, f"{base}/")) == ["dst", "empty"]

    # Blobs in files or inline in the metadata (these files are small): a copy adds none.
    blobs_before = acct.server.admin_stats()["blobs"]
    up.copy(f"{base}/dst", f"{base}/copy")
    assert len(list_all_keys(s3, acct.bucket, f"{base[1:]}/copy/")) == 1000
    assert acct.server.admin_stats()["blobs"] == blobs_before, "no bytes copied"
    assert up.getinfo(f"{base}/copy/sub3")["file-type"] == "folder"

    # Onto a folder that exists: refused, nothing changes.
    with expect_upyun_error(409):
        up.move(f"{base}/copy", f"{base}/empty")
    assert _names(up, f"{base}/empty/") == []
    # Into itself: refused.
    with expect_upyun_error(400):
        up.move(f"{base}/dst", f"{base}/dst/sub0/inside")
    assert len(list_all_keys(s3, acct.bucket, f"{base[1:]}/dst/")) == 1000


def test_a_name_is_a_file_or_a_folder(acct):
    up = acct.sdk()
    base = f"/k-{secrets.token_hex(3)}"
    up.put(f"{base}/file", b"data")
    up.mkdir(f"{base}/dir")
    up.put(f"{base}/dir/inner.txt", b"x")
    with expect_upyun_error(406) as e:
        up.mkdir(f"{base}/file")
    assert e.value.err and "40600001" in str(e.value.err)
    with expect_upyun_error(406):
        up.put(f"{base}/dir", b"over a folder")
    with expect_upyun_error(406):
        up.put(f"{base}/file/under", b"under a file")
    with expect_upyun_error(406):
        up.move(f"{base}/file", f"{base}/dir")
    listed = sorted((e["name"], e["type"]) for e in up.getlist(f"{base}/"))
    assert listed == [("dir", "F"), ("file", "N")]
    # A folder goes only when empty.
    with expect_upyun_error(403) as e:
        up.delete(f"{base}/dir")
    assert "40300005" in str(e.value.err)
    up.delete(f"{base}/dir/inner.txt")
    up.delete(f"{base}/dir")
    assert _names(up, f"{base}/") == ["file"]
    # Folders an upload makes stay when emptied, as UpYun's do (S3 sees no key for them).
    up.put(f"{base}/auto/deeper/x.txt", b"x")
    up.delete(f"{base}/auto/deeper/x.txt")
    assert _names(up, f"{base}/auto/") == ["deeper"]
    assert up.getinfo(f"{base}/auto/deeper")["file-type"] == "folder"
    assert list_all_keys(acct.s3(), acct.bucket, f"{base[1:]}/auto/") == []
    up.delete(f"{base}/auto/deeper")
    up.delete(f"{base}/auto")
    assert "auto" not in _names(up, f"{base}/")
    # mkdir of an existing folder is fine.
    up.mkdir(f"{base}/again")
    up.mkdir(f"{base}/again")


def test_metadata_headers_and_patch(acct):
    up = acct.sdk()
    key = f"/meta-{secrets.token_hex(3)}.txt"
    up.put(key, b"hello", headers={"x-upyun-meta-color": "blue", "x-upyun-meta-size": "L"})
    info = up.getinfo(key)
    assert (info.get("meta-color"), info.get("meta-size")) == ("blue", "L"), info
    rest = up.up_rest

    def patch(mode: str, headers: dict[str, str]):
        rest.do_http_request("PATCH", key, headers=headers, args=f"?metadata={mode}")

    patch("merge", {"x-upyun-meta-shape": "round", "x-upyun-meta-color": "red"})
    info = up.getinfo(key)
    assert (info.get("meta-color"), info.get("meta-size"), info.get("meta-shape")) == ("red", "L", "round")
    patch("delete", {"x-upyun-meta-size": "x"})
    assert "meta-size" not in up.getinfo(key)
    patch("replace", {"x-upyun-meta-only": "1"})
    info = up.getinfo(key)
    assert {k: v for k, v in info.items() if k.startswith("meta-")} == {"meta-only": "1"}
    # The body is untouched, metadata comes back on GET too, and survives a move.
    up.move(key, key + ".moved")
    buf = io.BytesIO()
    up.get(key + ".moved", buf)
    assert buf.getvalue() == b"hello"
    assert up.getinfo(key + ".moved").get("meta-only") == "1"
    with expect_upyun_error(400):
        patch("sideways", {"x-upyun-meta-a": "b"})
    with expect_upyun_error(404, body=True):
        rest.do_http_request("PATCH", "/no-such-file", headers={"x-upyun-meta-a": "b"}, args="?metadata=merge")


def test_listing_orders_and_pages(acct):
    up = acct.sdk()
    base = f"/l-{secrets.token_hex(3)}"
    names = [f"n{i:02}" for i in range(25)]
    for n in names:
        up.put(f"{base}/{n}", b"x")
    up.mkdir(f"{base}/n05a")
    expected = sorted(names + ["n05a"])
    assert _names(up, f"{base}/") == expected
    assert _names(up, f"{base}/", order="desc") == expected[::-1]
    assert _names(up, base) == expected, "a folder path lists without its trailing slash too"
    # Paged with the iterator, 10 at a time, descending.
    seen, it = [], None
    while True:
        page = up.get_list_with_iter(f"{base}/", limit=10, order="desc", begin=it)
        seen += [f["name"] for f in page["files"]]
        it = page["iter"]
        if it == "g2gCZAAEbmV4dGQAA2VvZg":
            break
    assert seen == expected[::-1]


def test_long_names_are_refused(acct):
    up = acct.sdk()
    with expect_upyun_error(403) as e:
        up.put("/" + "n" * 256, b"x")
    assert "40300003" in str(e.value.err)
    up.put("/" + "n" * 255, b"x")
    with expect_upyun_error(403):
        up.mkdir("/d/" + "d" * 300)
    assert os.path.basename("/" + "n" * 255) in _names(up, "/")
