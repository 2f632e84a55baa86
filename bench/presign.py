#!/usr/bin/env python3
# Copied from ../shared/bench/presign.py (2026-11-22, sha256 6c16ef1e31df356d); changed: check_fast_signer compares query parameters regardless of order (boto3 1.44).
"""URL helper for s3bench.sh (needs boto3 only in MODE=s3).

Environment: ENDPOINT (http://127.0.0.1:PORT), ACCESS_KEY, SECRET_KEY, BUCKET,
REGION (default us-east-1), MODE (s3 | plain), EXPIRES (default 7200 s).

Sub-commands
  url METHOD KEY
      Print one full URL. MODE=s3: presigned by boto3 (SigV4, query auth,
      path-style). MODE=plain: ENDPOINT/BUCKET/KEY, unsigned.
  bulk METHOD PREFIX THREADS COUNTS OUTBASE
      Write OUTBASE.<t> for t in 0..THREADS-1; file t holds the request
      targets (path?query, no scheme/host) for keys PREFIX/t<t>/<j:08d>,
      j < COUNTS[t]. COUNTS is one number (same for every thread) or a
      comma list. In MODE=s3 the URLs are signed by a local SigV4 query
      signer (boto3 costs ~0.5 ms/URL, far too slow for 10^5 URLs) that is
      checked against boto3 before any URL is written: the run aborts if
      the two disagree.
  ensure-bucket
      MODE=s3: HEAD the bucket, create it if missing. MODE=plain: no-op.
  getlist PREFIX THREADS ISSUED TAIL OUTBASE
      After a bulk PUT phase that issued ISSUED[t] requests per thread
      (comma list): the keys of thread t below ISSUED[t]-TAIL are taken as
      written; the last TAIL are checked with HEAD (requests still in flight
      when wrk stopped may not have been written), and so are the first 64
      (wrk consumes one target to validate the script and never sends it). Writes GET targets of the
      written keys to OUTBASE.<t> and prints "counts=c0,c1,.. missing=N".
  cleanup PREFIX THREADS COUNTS [EXTRA_KEY...]
      Delete the keys written by a bulk PUT phase (and EXTRA_KEYs).
      MODE=s3: DeleteObjects in batches of 1000 (if the server rejects it:
      single DELETEs). MODE=plain: HTTP DELETE. Keep-alive connections.
"""
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse

ENDPOINT = os.environ.get("ENDPOINT", "").rstrip("/")
ACCESS_KEY = os.environ.get("ACCESS_KEY", "")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
BUCKET = os.environ.get("BUCKET", "")
REGION = os.environ.get("REGION", "us-east-1")
MODE = os.environ.get("MODE", "s3")
EXPIRES = int(os.environ.get("EXPIRES", "7200"))


def die(msg):
    print("presign.py: " + msg, file=sys.stderr)
    sys.exit(2)


def host_of_endpoint():
    u = urllib.parse.urlsplit(ENDPOINT)
    if u.scheme != "http":
        die("ENDPOINT must be http://127.0.0.1:PORT, got %r" % ENDPOINT)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        die("refusing non-loopback ENDPOINT %r" % ENDPOINT)
    return u


def boto_client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )


def boto_url(method, key):
    op = {"PUT": "put_object", "GET": "get_object", "DELETE": "delete_object", "HEAD": "head_object"}[method]
    return boto_client().generate_presigned_url(
        op, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=EXPIRES, HttpMethod=method
    )


def quote_path(s):
    return urllib.parse.quote(s, safe="/-_.~")


class FastSigner:
    """SigV4 query-string presigner (UNSIGNED-PAYLOAD, SignedHeaders=host)."""

    def __init__(self, amz_date=None):
        u = host_of_endpoint()
        self.host = u.netloc
        if amz_date is None:
            amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.amz_date = amz_date
        day = amz_date[:8]
        self.scope = "%s/%s/s3/aws4_request" % (day, REGION)
        k = hmac.new(("AWS4" + SECRET_KEY).encode(), day.encode(), hashlib.sha256).digest()
        k = hmac.new(k, REGION.encode(), hashlib.sha256).digest()
        k = hmac.new(k, b"s3", hashlib.sha256).digest()
        self.key = hmac.new(k, b"aws4_request", hashlib.sha256).digest()
        cred = urllib.parse.quote(ACCESS_KEY + "/" + self.scope, safe="-_.~")
        self.query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s"
            "&X-Amz-Expires=%d&X-Amz-SignedHeaders=host" % (cred, amz_date, EXPIRES)
        )
        self.sts_head = "AWS4-HMAC-SHA256\n%s\n%s\n" % (amz_date, self.scope)
        self.tail = "\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD" % (self.query, self.host)

    def target(self, method, key):
        path = "/" + quote_path(BUCKET) + "/" + quote_path(key)
        creq = method + "\n" + path + self.tail
        sts = self.sts_head + hashlib.sha256(creq.encode()).hexdigest()
        sig = hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()
        return path + "?" + self.query + "&X-Amz-Signature=" + sig


def check_fast_signer():
    """Compare the local signer with boto3 for PUT and GET; abort on mismatch."""
    for method in ("PUT", "GET"):
        key = "s3bench-signcheck/obj-%s" % method
        ref = boto_url(method, key)
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(ref).query))
        mine = ENDPOINT + FastSigner(q["X-Amz-Date"]).target(method, key)
        # Compare path and query parameters, not their order: boto3 1.44 orders the
        # presigned query differently from older releases (the signature is the same).
        def parts(url):
            u = urllib.parse.urlsplit(url)
            return (u.scheme, u.netloc, u.path, sorted(urllib.parse.parse_qsl(u.query)))
        if parts(mine) != parts(ref):
            die("local SigV4 signer disagrees with boto3:\n  boto3: %s\n  local: %s" % (ref, mine))


def plain_target(key):
    return "/" + quote_path(BUCKET) + "/" + quote_path(key)


def parse_counts(counts, threads):
    parts = [int(x) for x in str(counts).split(",")]
    if len(parts) == 1:
        parts = parts * threads
    if len(parts) != threads:
        die("COUNTS has %d entries for %d threads" % (len(parts), threads))
    return parts


def small_key(prefix, t, j):
    return "%s/t%d/%08d" % (prefix, t, j)


def cmd_url(method, key):
    host_of_endpoint()
    if MODE == "plain":
        print(ENDPOINT + plain_target(key))
    else:
        print(boto_url(method, key))


def target_maker(method):
    """fn(key) -> request target (path?query) for METHOD in the current MODE."""
    if MODE == "s3":
        signer = FastSigner()
        return lambda k: signer.target(method, k)
    return plain_target


def cmd_bulk(method, prefix, threads, counts, outbase):
    host_of_endpoint()
    threads = int(threads)
    counts = parse_counts(counts, threads)
    if MODE == "s3":
        check_fast_signer()
    mk = target_maker(method)
    for t in range(threads):
        with open("%s.%d" % (outbase, t), "w") as f:
            f.writelines(mk(small_key(prefix, t, j)) + "\n" for j in range(counts[t]))


def run_requests(method, keys, ok_status, nconn=4):
    """Send METHOD for each key over NCONN keep-alive connections; return the
    list of keys whose status was not in OK_STATUS."""
    import threading

    u = host_of_endpoint()
    mk = target_maker(method)
    bad = []
    lock = threading.Lock()

    def worker(part):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        mine = []
        for k in part:
            try:
                conn.request(method, mk(k))
                r = conn.getresponse()
                r.read()
                st = r.status
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                st = -1
            if st not in ok_status:
                mine.append(k)
        conn.close()
        with lock:
            bad.extend(mine)

    parts = [keys[i::nconn] for i in range(nconn)]
    ths = [threading.Thread(target=worker, args=(p,)) for p in parts if p]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return bad


def cmd_getlist(prefix, threads, issued, tail, outbase):
    threads = int(threads)
    tail = int(tail)
    issued = parse_counts(issued, threads)
    if MODE == "s3":
        check_fast_signer()
    # wrk 4.x calls request() once on thread 0 to validate the script before
    # the run: that target is consumed but never sent. So the first HEAD_N
    # keys of each thread are HEAD-checked too.
    head_n = 64
    check = [
        small_key(prefix, t, j)
        for t in range(threads)
        for j in sorted(set(range(min(head_n, issued[t]))) | set(range(max(0, issued[t] - tail), issued[t])))
    ]
    missing = set(run_requests("HEAD", check, (200,)))
    mk = target_maker("GET")
    counts = []
    for t in range(threads):
        n = 0
        with open("%s.%d" % (outbase, t), "w") as f:
            for j in range(issued[t]):
                k = small_key(prefix, t, j)
                if k not in missing:
                    f.write(mk(k) + "\n")
                    n += 1
        if n == 0:
            die("thread %d: no object was written" % t)
        counts.append(n)
    print("counts=%s missing=%d" % (",".join(map(str, counts)), len(missing)))


def cmd_ensure_bucket():
    host_of_endpoint()
    if MODE != "s3":
        return
    import botocore.exceptions

    c = boto_client()
    try:
        c.head_bucket(Bucket=BUCKET)
    except botocore.exceptions.ClientError:
        c.create_bucket(Bucket=BUCKET)
        c.head_bucket(Bucket=BUCKET)


def cmd_cleanup(prefix, threads, counts, extra):
    host_of_endpoint()
    threads = int(threads)
    counts = parse_counts(counts, threads)
    keys = [small_key(prefix, t, j) for t in range(threads) for j in range(counts[t])]
    keys += list(extra)
    failed = None
    if MODE == "s3":
        c = boto_client()
        failed = 0
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            try:
                r = c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                failed += len(r.get("Errors", []))
            except Exception as e:
                print("DeleteObjects failed (%s); using single DELETEs" % e, file=sys.stderr)
                failed = None
                break
    if failed is None:
        failed = len(run_requests("DELETE", keys, (200, 204, 404)))
    print("deleted=%d failed=%d" % (len(keys) - failed, failed))


def main(argv):
    if not argv:
        die(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "url" and len(args) == 2:
        cmd_url(args[0], args[1])
    elif cmd == "bulk" and len(args) == 5:
        cmd_bulk(*args)
    elif cmd == "ensure-bucket" and not args:
        cmd_ensure_bucket()
    elif cmd == "getlist" and len(args) == 5:
        cmd_getlist(*args)
    elif cmd == "cleanup" and len(args) >= 3:
        cmd_cleanup(args[0], args[1], args[2], args[3:])
    else:
        die("bad arguments\n" + __doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
