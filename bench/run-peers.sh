#!/usr/bin/env bash
# Copied from ../shared/bench/run-peers.sh (2026-12-01, sha256 75d9ed66a5506eec); code unchanged.
# run-peers.sh - run s3bench.sh against several already-running servers,
# interleaved (round r runs the targets in an order rotated by r: A B C,
# B C A, C A B, ...), REPS rounds, then print medians per target.
#
# Targets come from $TARGETS (specs separated by newlines or ';') or from the
# file $TARGETS_FILE (one spec per line, '#' comments). A spec is
# space-separated key=value pairs (no spaces inside values):
#   name=s3s-fs mode=s3 endpoint=http://127.0.0.1:9001 access_key=AK
#   secret_key=SK bucket=bench region=us-east-1 pid=1234[,5678]
# mode=plain targets (unsigned HTTP PUT/GET, e.g. nginx WebDAV) need no keys.
#
# Env: REPS (3), OUTDIR (/tmp/s3bench-results/<utc time>), ONLY (names to
# keep, space separated), SETTLE_SECS (0; sleep after a first sync, e.g. 70
# if files were mass-deleted in the last minute), FINAL_CLEANUP (1: delete the
# small objects of all rounds at the very end; 0: keep them); everything else
# (BIG_BYTES, SMALL_SECS, SMALL_CONC, WRK_THREADS, BENCH_WORKDIR, PYTHON, ...)
# is passed through to s3bench.sh.
# Each round starts with one machine-limits run (md5sum, openssl md5, cat,
# dd); the targets of that round use its md5sum/cat rates for their ratios.
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPS=${REPS:-3}
OUTDIR=${OUTDIR:-/tmp/s3bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
ONLY=${ONLY:-}
SETTLE_SECS=${SETTLE_SECS:-0}
FINAL_CLEANUP=${FINAL_CLEANUP:-1}
PYTHON=${PYTHON:-python3}
export PYTHON

specs=()
if [ -n "${TARGETS_FILE:-}" ]; then
  while IFS= read -r l; do
    l=${l%%#*}; [ -n "${l//[[:space:]]/}" ] && specs+=("$l")
  done < "$TARGETS_FILE"
fi
if [ -n "${TARGETS:-}" ]; then
  while IFS= read -r l; do
    [ -n "${l//[[:space:]]/}" ] && specs+=("$l")
  done < <(tr ';' '\n' <<<"$TARGETS")
fi
[ "${#specs[@]}" -gt 0 ] || { sed -n '2,20p' "$0"; exit 2; }

names=()
declare -A SPEC
for s in "${specs[@]}"; do
  n=""
  for kv in $s; do [ "${kv%%=*}" = name ] && n=${kv#*=}; done
  [ -n "$n" ] || { echo "spec without name=: $s" >&2; exit 2; }
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $n "* ]]; then continue; fi
  names+=("$n"); SPEC[$n]=$s
done
[ "${#names[@]}" -gt 0 ] || { echo "no targets left after ONLY=$ONLY" >&2; exit 2; }

mkdir -p "$OUTDIR"
export CLEANUP_MANIFEST="$OUTDIR/pending-cleanup.tsv"
RES="$OUTDIR/results.tsv"
: > "$RES"
echo "run-peers: targets: ${names[*]}; reps $REPS; logs in $OUTDIR"

spec_env() {  # name -> sets MODE_ ENDPOINT_ AK_ SK_ BUCKET_ REGION_ PID_
  local kv k v
  MODE_=s3 ENDPOINT_="" AK_="" SK_="" BUCKET_="" REGION_=us-east-1 PID_=""
  for kv in ${SPEC[$1]}; do
    k=${kv%%=*}; v=${kv#*=}
    case "$k" in
      name) ;;
      mode) MODE_=$v ;; endpoint) ENDPOINT_=$v ;; access_key) AK_=$v ;; secret_key) SK_=$v ;;
      bucket) BUCKET_=$v ;; region) REGION_=$v ;; pid) PID_=$v ;;
      *) echo "unknown key $k in spec of $1" >&2 ;;
    esac
  done
}

s3b() {  # name args... : run s3bench.sh with the target's settings
  local n=$1; shift
  spec_env "$n"
  TARGET_NAME=$n MODE=$MODE_ ENDPOINT=$ENDPOINT_ ACCESS_KEY=$AK_ SECRET_KEY=$SK_ BUCKET=$BUCKET_ \
    REGION=$REGION_ SERVER_PID=$PID_ bash "$HERE/s3bench.sh" "$@"
}

run_target() {  # round name
  local r=$1 n=$2 log="$OUTDIR/r$1-$2.log"
  echo "--- round $r: $n ($(date -u +%T))"
  LIMITS=0 LIMIT_MD5_MBPS=$LIM_MD5 LIMIT_CAT_MBPS=$LIM_CAT s3b "$n" > "$log" 2>&1
  local rc=$?
  [ $rc = 0 ] || echo "    s3bench exited $rc for $n (see $log)"
  grep '^RESULT' "$log" | awk -v r="$r" '{ print r "\t" $2 "\t" $3 "\t" $4 }' >> "$RES"
  grep '^RESULT' "$log" | sed 's/^/    /'
  grep -E '^INFO .*(cpu|failed|ETag|md5)' "$log" | sed 's/^/    /'
}

sync
[ "$SETTLE_SECS" -gt 0 ] && { echo "settling ${SETTLE_SECS}s"; sleep "$SETTLE_SECS"; }
for ((r = 1; r <= REPS; r++)); do
  log="$OUTDIR/r$r-machine.log"
  echo "--- round $r: machine limits ($(date -u +%T))"
  TARGET_NAME=machine bash "$HERE/s3bench.sh" --limits-only > "$log" 2>&1 || echo "    limits run failed (see $log)"
  grep '^RESULT' "$log" | awk -v r="$r" '{ print r "\t" $2 "\t" $3 "\t" $4 }' >> "$RES"
  grep '^RESULT' "$log" | sed 's/^/    /'
  LIM_MD5=$(awk '$1 == "RESULT" && $3 == "md5sum_MBps" { print $4; exit }' "$log")
  LIM_CAT=$(awk '$1 == "RESULT" && $3 == "cat_MBps" { print $4; exit }' "$log")
  nt=${#names[@]}
  for ((i = 0; i < nt; i++)); do
    run_target "$r" "${names[$(( (i + r - 1) % nt ))]}"
  done
done

echo
"$PYTHON" "$HERE/summarize.py" "$RES" | tee "$OUTDIR/summary.txt"

if [ "$FINAL_CLEANUP" = 1 ]; then
  echo
  for n in "${names[@]}"; do
    s3b "$n" --cleanup 2>&1 | grep -E '^INFO' | sed 's/^/    /'
  done
else
  echo "objects left in place; delete later with: CLEANUP_MANIFEST=$CLEANUP_MANIFEST s3bench.sh --cleanup (per target)"
fi
