#!/usr/bin/env python3
"""Chuan's figures as ratios to its peers and to the machine, from run-peers.sh results.

usage: ratios.py results.tsv [target]   (target: default "chuan")
Input lines: round<TAB>target<TAB>figure<TAB>value. For each main figure prints the median
over rounds of every target, the best peer's, and target / best peer (for latencies and
RSS, where less is better, best = lowest: a ratio > 1 is better than the peer), the issue's
target for the figure against the peer it names, then the machine-limit ratios (PUT / md5sum,
GET / cat, measured in the same rounds), then issue 15's other targets with their verdicts:
PUT / md5sum (and, for reference, PUT / `dd conv=fdatasync`), peak RSS,
CompleteMultipartUpload of 1,000 parts and instant upload (figures of round `x`, which
bench/peers.sh measures on Chuan after the rounds).
"""
import statistics
import sys
from collections import defaultdict

# figure, label, higher is better, target (ratio, peer) from issue 15 (None: no target)
FIGURES = [
    ("put4k_ops", "4 KiB PUT, 16 conns (op/s)", True, (1.5, "s3s-fs")),
    ("get4k_ops", "4 KiB GET, 16 conns (op/s)", True, (0.5, "nginx")),
    ("put_MBps", "1 GiB PUT, 1 stream (MB/s)", True, (1.1, "s3s-fs")),
    ("get_MBps", "1 GiB GET, 1 stream (MB/s)", True, (0.9, "nginx")),
    ("put4k_p99_ms", "4 KiB PUT p99 (ms)", False, None),
    ("get4k_p99_ms", "4 KiB GET p99 (ms)", False, None),
    ("put_peak_rss_MiB", "peak RSS in the 1 GiB PUT (MiB)", False, None),
]


def medians(path: str) -> dict[str, dict[str, float]]:
    """figure -> target -> median over rounds, from run-peers.sh's results.tsv."""
    vals = defaultdict(lambda: defaultdict(list))
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 4:
            continue
        _, target, figure, value = parts
        try:
            v = float(value)
        except ValueError:
            continue  # FAIL
        vals[figure][target].append(v)
    return {f: {t: statistics.median(v) for t, v in ts.items()} for f, ts in vals.items()}


def main() -> None:
    path = sys.argv[1]
    me = sys.argv[2] if len(sys.argv) > 2 else "chuan"
    med = medians(path)
    peers = sorted({t for ts in med.values() for t in ts} - {me, "machine"})
    print(f"{'figure':36} " + " ".join(f"{t:>10}" for t in [me, *peers]) + f" {'vs best peer':>13}  target")
    for fig, label, higher, goal in FIGURES:
        row = med.get(fig, {})
        if me not in row:
            continue
        have = [row[p] for p in peers if p in row and row[p] > 0]
        best = (max(have) if higher else min(have)) if have else None
        ratio = (row[me] / best if higher else best / row[me]) if best and row[me] > 0 else None
        cells = " ".join(f"{row.get(t, float('nan')):>10.1f}" for t in [me, *peers])
        verdict = ""
        if goal is not None and row.get(goal[1], 0) > 0 and row[me] > 0:
            want, peer = goal
            vs = row[me] / row[peer]
            verdict = f">= {want}x {peer}: {vs:.2f}x " + ("met" if vs >= want else "MISSED")
        # A rate counts only answered requests: a phase with failures is not a figure.
        phase = fig.split("_")[0]
        failed = [t for t in [me, *peers] if med.get(f"{phase}_non2xx", {}).get(t, 0) > 0]
        if failed:
            verdict += f" (non-2xx answers from {', '.join(failed)}: not comparable)"
        r = f"{ratio:.2f}x" if ratio is not None else "-"
        print(f"{label:36} {cells} {r:>13}  {verdict}")
    for fig, limit, label in (("put_over_md5sum", "md5sum_MBps", "1 GiB PUT / md5sum of the file"),
                              ("get_over_cat", "cat_MBps", "1 GiB GET / cat of the file")):
        if me in med.get(fig, {}):
            lim = med.get(limit, {}).get("machine")
            extra = f" (machine {lim:.0f} MB/s)" if lim else ""
            print(f"{label:36} {med[fig][me]:>10.2f}{extra}")
    targets(med, me)


def targets(med: dict[str, dict[str, float]], me: str) -> None:
    """Issue 15's targets that are not a ratio to a peer, each with its verdict."""
    def get(fig, who=me):
        return med.get(fig, {}).get(who)

    rows = []
    put, dd = get("put_MBps"), get("dd_fdatasync_MBps", "machine")
    if get("put_over_md5sum") is not None:
        ratio = get("put_over_md5sum")
        rows.append(("1 GiB PUT / md5sum", f"{ratio:.2f}", ">= 0.75", ratio >= 0.75, ""))
    if put and dd:
        # Not a bound: dd writes, then syncs; Chuan starts write-back while it receives.
        rows.append(("1 GiB PUT / dd conv=fdatasync", f"{put / dd:.2f}", "(for reference)", None, ""))
    for fig, label in (("round_peak_rss_MiB", "peak RSS over the last round (MiB)"),
                       ("put_peak_rss_MiB", "peak RSS in the 1 GiB PUT (MiB)")):
        if get(fig) is not None:
            rows.append((label, f"{get(fig):.1f}", "<= 64", get(fig) <= 64, ""))
    if get("complete_1000_parts_ms") is not None:
        v = get("complete_1000_parts_ms")
        rows.append(("CompleteMultipartUpload, 1,000 parts (ms)", f"{v:.1f}", "< 50", v < 50, ""))
    # bench/instant.py: x the upload of the same file in the same run, and ms per instant upload.
    for fig, ms_fig, label, judged in (
            ("instant_prove_speedup", "instant_prove_ms", "instant upload: another tenant, \"prove\"", True),
            ("adrive_instant_speedup", "adrive_instant_ms", "instant upload: another tenant, Aliyun v1", True),
            ("instant_own_speedup", "instant_own_ms", "instant upload: the same tenant again", True),
            # Its challenge looks the content up for a tenant that does not hold it: a miss, so
            # it waits the lookup floor (10 ms) by design. Shown, not judged.
            ("instant_speedup", "instant_upload_ms", "instant upload: another tenant, no \"prove\"", False)):
        if get(fig) is not None:
            ms = get(ms_fig)
            extra = f" ({ms:.2f} ms)" if ms else ""
            if not judged:
                extra += " (waits the lookup floor: its challenge's lookup misses)"
            rows.append((label + " (x)", f"{get(fig):.0f}", ">= 500", get(fig) >= 500 if judged else None, extra))
    if not rows:
        return
    print(f"\n{'issue-15 target':50} {'value':>8}  goal")
    for label, value, goal, ok, why in rows:
        verdict = "" if ok is None else (" met" if ok else " MISSED")
        print(f"{label:50} {value:>8}  {goal}{verdict}{why}")


if __name__ == "__main__":
    main()
