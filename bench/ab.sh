#!/usr/bin/env bash
# bench/ab.sh - two (or more) builds of Chuan against each other: durable 4 KiB PUT and GET
# rates with every body different (bench/uniqueobj.lua), in interleaved runs, medians.
#
# usage: bench/ab.sh NAME=BINARY NAME=BINARY [...]
#   e.g. cp target/release/chuan /tmp/chuan-before; (change, cargo build --release)
#        bench/ab.sh before=/tmp/chuan-before after=target/release/chuan
#
# Each run starts BINARY on a fresh data dir and a free loopback port (rate limits off, as in
# run.sh), creates bucket `bench` and runs s3bench.sh's small phase: PUT for SMALL_SECS, then
# GET of the keys written for SMALL_SECS, SMALL_CONC connections. REPS rounds, the builds in
# the same order each round. Prints every run as it ends (the server's peak RSS, and the
# server's and wrk's CPU, to tell a server limit from a client one) and the median, min and
# max per build. A change worth keeping shows in the medians of interleaved runs, not in one
# pair: the machine is shared and noisy (runs of one build vary by ±20 %).
#
# Knobs (env): REPS=3  SMALL_SECS=8  SMALL_CONC=16  SMALL_SIZE=4096  PYTHON=.venv/bin/python
#   OUTDIR=/tmp/chuan-ab/<utc>
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
OUTDIR=${OUTDIR:-/tmp/chuan-ab/$(date -u +%Y%m%dT%H%M%SZ)}
export SMALL_SECS=${SMALL_SECS:-8} SMALL_CONC=${SMALL_CONC:-16} SMALL_URLS=${SMALL_URLS:-100000}
export SMALL_SIZE=${SMALL_SIZE:-4096}
SIZE=$SMALL_SIZE
say() { echo "ab.sh: $*" >&2; }
die() { echo "ab.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
[ $# -ge 2 ] || die "usage: bench/ab.sh NAME=BINARY NAME=BINARY [...]"
for nb in "$@"; do
  [[ $nb == *=* ]] || die "'$nb' is not NAME=BINARY"
  [ -x "${nb#*=}" ] || die "${nb#*=} is not an executable"
done
bench_unique_check
mkdir -p "$OUTDIR"
RESULTS="$OUTDIR/results.tsv"
: > "$RESULTS"
trap bench_unique_cleanup EXIT

one() {  # name binary round
  local name=$1 bin=$2 round=$3 log="$OUTDIR/$1-$3.log"
  bench_unique_small "$bin" "$log"
  local put get rss
  put=$(awk '$1 == "RESULT" && $3 == "put4k_ops" { print $4; exit }' "$log")
  get=$(awk '$1 == "RESULT" && $3 == "get4k_ops" { print $4; exit }' "$log")
  rss=$(awk '$1 == "RESULT" && $3 == "peak_rss_MiB" { print $4; exit }' "$log")
  printf '%s\tput4k_ops\t%s\n%s\tget4k_ops\t%s\n%s\tpeak_rss_MiB\t%s\n' "$name" "$put" "$name" "$get" "$name" "$rss" >> "$RESULTS"
  printf 'round %s %-10s PUT %9s op/s  GET %9s op/s  RSS %5s MiB | %s\n' "$round" "$name" "$put" "$get" "$rss" \
    "$(grep -o 'get4k: wrk cpu.*' "$log" | head -1 | sed 's/get4k: //')"
}

echo "== ab.sh $(date -u +%FT%TZ): $* — $REPS rounds, ${SMALL_SECS} s per phase, $SMALL_CONC connections, $SIZE-byte bodies (all different); logs in $OUTDIR"
for round in $(seq "$REPS"); do
  for nb in "$@"; do one "${nb%%=*}" "${nb#*=}" "$round"; done
done
echo "== medians (min-max) over $REPS runs"
awk -F'\t' '{ v[$1 "\t" $2] = v[$1 "\t" $2] " " $3 } END { for (k in v) print k "\t" v[k] }' "$RESULTS" | sort |
  while IFS=$'\t' read -r name fig values; do
    # shellcheck disable=SC2086
    printf '  %-10s %-10s %s\n' "$name" "$fig" "$(printf '%s\n' $values | sort -g |
      awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
             printf "%.0f (%.0f-%.0f)", m, a[1], a[NR] }')"
  done
