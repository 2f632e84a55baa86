#!/usr/bin/env bash
# bench/inline.sh - how the inline threshold (--inline-max-bytes) was chosen: durable PUT and
# GET rates of small objects kept inline in the metadata database versus kept as files, size
# by size, in interleaved runs on this machine.
#
# For each SIZE and each mode (inline: CHUAN_INLINE_MAX_BYTES=1 MiB, so every size is inline;
# files: 0, so every body is a file), starts target/release/chuan on a fresh data dir and
# runs s3bench.sh's small phase (wrk, SMALL_CONC connections, SMALL_SECS seconds) with
# bench/uniqueobj.lua, whose PUT bodies all differ (no deduplication). REPS rounds, modes
# alternating in order; prints the median op/s per size and mode and the ratio inline/files.
# The threshold belongs where the ratio stops being above 1.
#
# Knobs (env): SIZES="4096 32768 65536 98304 131072 262144 524288"  REPS=3  SMALL_SECS=5
#   SMALL_CONC=16  CHUAN_BIN=target/release/chuan  PYTHON=.venv/bin/python  OUTDIR=/tmp/chuan-inline/<utc>
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SIZES=${SIZES:-4096 32768 65536 98304 131072 262144 524288}
REPS=${REPS:-3}
CHUAN_BIN=${CHUAN_BIN:-$REPO/target/release/chuan}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
OUTDIR=${OUTDIR:-/tmp/chuan-inline/$(date -u +%Y%m%dT%H%M%SZ)}
export SMALL_SECS=${SMALL_SECS:-5} SMALL_CONC=${SMALL_CONC:-16} SMALL_URLS=${SMALL_URLS:-100000}
say() { echo "inline.sh: $*" >&2; }
die() { echo "inline.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
[ -x "$CHUAN_BIN" ] || die "$CHUAN_BIN not found: run 'cargo build --release' first"
bench_unique_check
mkdir -p "$OUTDIR"
RESULTS="$OUTDIR/results.tsv"
: > "$RESULTS"
trap bench_unique_cleanup EXIT

one() {  # mode size round
  local mode=$1 size=$2 round=$3 max
  case $mode in inline) max=1048576 ;; files) max=0 ;; esac
  SMALL_SIZE=$size bench_unique_small "$CHUAN_BIN" "$OUTDIR/$mode-$size-$round.log" CHUAN_INLINE_MAX_BYTES=$max
  for fig in put4k_ops get4k_ops; do
    printf '%s\t%s\t%s\t%s\n' "$mode" "$size" "$fig" \
      "$(awk -v f="$fig" '$1 == "RESULT" && $3 == f { print $4 }' "$OUTDIR/$mode-$size-$round.log" | tail -1)" >> "$RESULTS"
  done
}

for ((r = 1; r <= REPS; r++)); do
  for size in $SIZES; do
    if ((r % 2)); then order="inline files"; else order="files inline"; fi
    for mode in $order; do
      echo "inline.sh: round $r, $size bytes, $mode"
      one "$mode" "$size" "$r"
    done
  done
done

"$PYTHON" - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
vals = {}
for mode, size, fig, v in rows:
    if v:
        vals.setdefault((int(size), fig, mode), []).append(float(v))
print(f"{'size':>8} {'PUT inline':>11} {'PUT files':>10} {'ratio':>6}   {'GET inline':>11} {'GET files':>10} {'ratio':>6}   (op/s, medians)")
for size in sorted({k[0] for k in vals}):
    out = [f"{size:>8}"]
    for fig in ("put4k_ops", "get4k_ops"):
        i = statistics.median(vals.get((size, fig, "inline"), [0]))
        f = statistics.median(vals.get((size, fig, "files"), [0]))
        out.append(f"{i:>11.0f} {f:>10.0f} {i / f if f else 0:>6.2f}  ")
    print(" ".join(out))
PY
