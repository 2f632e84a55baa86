#!/usr/bin/env python3
"""The cluster's figures as ratios, from bench/cluster.sh's run-peers.sh results.

usage: cluster_ratios.py results.tsv
Prints the median over rounds of each main figure for embedded, one-node, two-nodes and rgw,
then two-nodes / one-node (what the second node adds), one-node / embedded (what PostgreSQL
and S3 cost one node) and each cluster target / rgw (the share of the backend's own rate).
Rates: higher is better; p99 and RSS: lower is better (ratios inverted so > 1 is better).
A phase with non-2xx answers is marked not comparable.
"""
import sys

from ratios import FIGURES, medians

TARGETS = ["embedded", "one-node", "two-nodes", "rgw"]
RATIOS = [("two-nodes", "one-node"), ("one-node", "embedded"), ("one-node", "rgw"), ("two-nodes", "rgw")]


def main() -> None:
    med = medians(sys.argv[1])
    heads = [f"{a} / {b}" for a, b in RATIOS]
    print(f"{'figure':36} " + " ".join(f"{t:>10}" for t in TARGETS) + " " + " ".join(f"{h:>22}" for h in heads))
    for fig, label, higher, _ in FIGURES:
        row = med.get(fig, {})
        if not row:
            continue
        cells = " ".join(f"{row.get(t, float('nan')):>10.1f}" for t in TARGETS)
        out = []
        for a, b in RATIOS:
            x, y = row.get(a, 0), row.get(b, 0)
            r = (x / y if higher else y / x) if x > 0 and y > 0 else None
            out.append(f"{r:>21.2f}x" if r is not None else f"{'-':>22}")
        phase = fig.split("_")[0]
        failed = [t for t in TARGETS if med.get(f"{phase}_non2xx", {}).get(t, 0) > 0]
        note = f"  (non-2xx answers from {', '.join(failed)}: not comparable)" if failed else ""
        print(f"{label:36} {cells} {' '.join(out)}{note}")
    lim = med.get("md5sum_MBps", {}).get("machine")
    if lim:
        print(f"machine: md5sum {lim:.0f} MB/s, cat {med.get('cat_MBps', {}).get('machine', 0):.0f} MB/s")


if __name__ == "__main__":
    main()
