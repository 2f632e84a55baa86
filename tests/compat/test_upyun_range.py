"""UpYun REST GET with Range (the SDK's get() sends none, so raw signed requests), and the
block upload's `content-md5` policy option."""

import base64
import hashlib
import json
import os
import time

import requests

from upyun_helpers import make_account


def test_ranged_get(server):
    acct = make_account(server)
    raw = acct.raw()
    data = os.urandom(100_000)
    assert raw.request("PUT", "/r/data.bin", body=data).status_code == 200
    for rng, want, first, last in [
        ("bytes=0-99", data[:100], 0, 99),
        ("bytes=99000-", data[99000:], 99000, 99999),
        ("bytes=-10", data[-10:], 99990, 99999),
    ]:
        r = raw.request("GET", "/r/data.bin", headers={"Range": rng})
        assert r.status_code == 206, (rng, r.status_code, r.text[:200])
        assert r.content == want, rng
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}", r.headers
    r = raw.request("GET", "/r/data.bin")
    assert r.status_code == 200 and r.content == data and r.headers.get("Accept-Ranges") == "bytes"
    r = raw.request("GET", "/r/data.bin", headers={"Range": "bytes=200000-"})
    assert r.status_code == 416, r.status_code
    assert json.loads(r.text)["code"] // 100000 == 416, r.text
    # A suffix range of an empty file: the whole, empty, file with 200 (no Content-Range can
    # name an empty range; the shared range parser once answered 206 with a wrapped end).
    assert raw.request("PUT", "/r/empty.bin", body=b"").status_code == 200
    r = raw.request("GET", "/r/empty.bin", headers={"Range": "bytes=-5"})
    assert r.status_code == 200 and r.content == b"" and "Content-Range" not in r.headers, (r.status_code, r.headers)


def _sig(d: dict, secret: str) -> str:
    return hashlib.md5(("".join(k + str(d[k]) for k in sorted(d)) + secret).encode()).hexdigest()


def _policy(d: dict) -> str:
    return base64.b64encode(json.dumps(d).encode()).decode()


def test_block_upload_content_md5_option(server):
    acct = make_account(server)
    r = requests.post(f"{server.endpoint}/_chuan/admin/upyun/form-secrets",
                      params={"tenant": acct.tenant.name, "bucket": acct.bucket},
                      auth=(server.access_key, server.secret_key), timeout=30)
    assert r.status_code == 201, r.text
    secret = r.json()["form_secret"]
    url = f"{server.endpoint}/{acct.bucket}/"

    def upload(path: str, data: bytes, content_md5: str) -> requests.Response:
        init = {"path": path, "expiration": int(time.time()) + 600, "file_blocks": 1,
                "file_hash": hashlib.md5(data).hexdigest(), "file_size": len(data), "content-md5": content_md5}
        ini = requests.post(url, data={"policy": _policy(init), "signature": _sig(init, secret)}, timeout=30).json()
        blk = {"save_token": ini["save_token"], "expiration": int(time.time()) + 600, "block_index": 0,
               "block_hash": hashlib.md5(data).hexdigest()}
        r = requests.post(url, data={"policy": _policy(blk), "signature": _sig(blk, ini["token_secret"])},
                          files={"file": ("f", data)}, timeout=30)
        assert r.status_code == 200, r.text
        merge = {"save_token": ini["save_token"], "expiration": int(time.time()) + 600}
        return requests.post(url, data={"policy": _policy(merge), "signature": _sig(merge, ini["token_secret"])}, timeout=30)

    data = os.urandom(5000)
    r = upload("/md5/ok.bin", data, hashlib.md5(data).hexdigest())
    assert r.status_code == 200, r.text
    r = upload("/md5/bad.bin", data, "0" * 32)
    assert r.status_code == 403 and r.json()["error_code"] == "40306", r.text
    s3 = acct.s3()
    assert s3.get_object(Bucket=acct.bucket, Key="md5/ok.bin")["Body"].read() == data
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=acct.bucket, Prefix="md5/").get("Contents", [])]
    assert keys == ["md5/ok.bin"], keys


def test_block_upload_image_ranges(server):
    """image-width-range / image-height-range: checked from the image header at merge."""
    import io

    from PIL import Image

    acct = make_account(server)
    r = requests.post(f"{server.endpoint}/_chuan/admin/upyun/form-secrets",
                      params={"tenant": acct.tenant.name, "bucket": acct.bucket},
                      auth=(server.access_key, server.secret_key), timeout=30)
    secret = r.json()["form_secret"]
    url = f"{server.endpoint}/{acct.bucket}/"
    buf = io.BytesIO()
    Image.new("RGB", (320, 200), (10, 20, 30)).save(buf, "PNG")
    png = buf.getvalue()

    def upload(path: str, data: bytes, **extra) -> requests.Response:
        init = {"path": path, "expiration": int(time.time()) + 600, "file_blocks": 1,
                "file_hash": hashlib.md5(data).hexdigest(), "file_size": len(data), **extra}
        ini = requests.post(url, data={"policy": _policy(init), "signature": _sig(init, secret)}, timeout=30).json()
        blk = {"save_token": ini["save_token"], "expiration": int(time.time()) + 600, "block_index": 0,
               "block_hash": hashlib.md5(data).hexdigest()}
        requests.post(url, data={"policy": _policy(blk), "signature": _sig(blk, ini["token_secret"])},
                      files={"file": ("f", data)}, timeout=30).raise_for_status()
        merge = {"save_token": ini["save_token"], "expiration": int(time.time()) + 600}
        return requests.post(url, data={"policy": _policy(merge), "signature": _sig(merge, ini["token_secret"])}, timeout=30)

    r = upload("/img/ok.png", png, **{"image-width-range": "100,400", "image-height-range": "0,200"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["image_width"], body["image_height"]) == (320, 200), body
    r = upload("/img/wide.png", png, **{"image-width-range": "0,300"})
    assert r.status_code == 403 and r.json()["error_code"] == "40307", r.text
    r = upload("/img/notimage.bin", os.urandom(3000), **{"image-height-range": "0,100"})
    assert r.status_code == 403 and r.json()["error_code"] == "40307", r.text
    keys = [o["Key"] for o in acct.s3().list_objects_v2(Bucket=acct.bucket, Prefix="img/").get("Contents", [])]
    assert keys == ["img/ok.png"], keys
