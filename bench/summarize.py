#!/usr/bin/env python3
# Copied from ../shared/bench/summarize.py (2026-11-22, sha256 f49af25eb602f132); unchanged otherwise.
"""Medians of s3bench results.

usage: summarize.py results.tsv [more.tsv ...]
Input lines: round<TAB>target<TAB>figure<TAB>value (as run-peers.sh writes
them; value may be FAIL). Prints the machine limits, a table of the main
figures per target (median over rounds), and every figure with min/max/n.
"""
import statistics
import sys
from collections import OrderedDict, defaultdict

MAIN = [
    ("put_MBps", "PUT MB/s"),
    ("get_MBps", "GET MB/s"),
    ("put4k_ops", "PUT4k op/s"),
    ("put4k_p99_ms", "PUT4k p99 ms"),
    ("get4k_ops", "GET4k op/s"),
    ("get4k_p99_ms", "GET4k p99 ms"),
    ("put_peak_rss_MiB", "peak RSS MiB"),
    ("put_over_md5sum", "PUT/md5sum"),
    ("get_over_cat", "GET/cat"),
]
LIMITS = ["md5sum_MBps", "openssl_md5_16k_MBps", "cat_MBps", "dd_fdatasync_MBps"]
SUMS = ["put4k_non2xx", "put4k_sock_errors", "get4k_non2xx", "get4k_sock_errors"]
ALL_ONE = ["get_md5_ok", "etag_is_md5"]


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def main(paths):
    vals = defaultdict(list)  # (target, figure) -> [values]
    fails = defaultdict(int)
    targets = OrderedDict()
    for p in paths:
        for line in open(p):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            _, t, f, v = parts
            targets.setdefault(t, None)
            x = num(v)
            if x is None:
                fails[(t, f)] += 1
            else:
                vals[(t, f)].append(x)

    def med(t, f):
        xs = vals.get((t, f))
        return statistics.median(xs) if xs else None

    def fmt(x):
        if x is None:
            return "-"
        if abs(x) >= 100:
            return "%.0f" % x
        if abs(x) >= 10:
            return "%.1f" % x
        return "%.3g" % x

    lim_t = [t for t in targets if any((t, f) in vals for f in LIMITS)]
    print("== machine limits (MB/s, median over runs; min-max; n)")
    for f in LIMITS:
        xs = [x for t in lim_t for x in vals.get((t, f), [])]
        if xs:
            print("  %-22s %8s   (%s-%s, n=%d)" % (f, fmt(statistics.median(xs)), fmt(min(xs)), fmt(max(xs)), len(xs)))

    servers = [t for t in targets if any((t, f) in vals or (t, f) in fails for f, _ in MAIN)]
    print("\n== medians per target")
    w = 13
    print("%-12s" % "target" + "".join("%*s" % (w, h) for _, h in MAIN))
    for t in servers:
        print("%-12s" % t + "".join("%*s" % (w, fmt(med(t, f))) for f, _ in MAIN))

    print("\n== checks (sums over runs; md5/etag: runs with 1 / runs)")
    for t in servers:
        bits = []
        for f in SUMS:
            xs = vals.get((t, f), [])
            bits.append("%s=%d" % (f, sum(xs)))
        for f in ALL_ONE:
            xs = vals.get((t, f), [])
            if xs:
                bits.append("%s=%d/%d" % (f, sum(1 for x in xs if x == 1), len(xs)))
        nf = sum(n for (tt, _), n in fails.items() if tt == t)
        if nf:
            bits.append("FAILED figures=%d" % nf)
        print("  %-12s %s" % (t, " ".join(bits)))

    print("\n== every figure: median (min-max, n)")
    for t in targets:
        for (tt, f), xs in vals.items():
            if tt == t:
                print("  %-12s %-24s %10s  (%s-%s, n=%d)" % (t, f, fmt(statistics.median(xs)), fmt(min(xs)), fmt(max(xs)), len(xs)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
