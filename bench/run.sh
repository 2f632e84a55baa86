#!/usr/bin/env bash
# bench/run.sh - benchmark Chuan with one command (see bench/README.md).
#
# Starts target/release/chuan on a free loopback port with a fresh data dir,
# creates bucket `bench`, runs bench/s3bench.sh REPS times (machine limits,
# 1 GiB PUT/GET with curl, 4 KiB PUT/GET with wrk), prints the medians, the
# ratios to the machine limits and peak RSS, compares them with the targets,
# then stops the server with SIGTERM and deletes its work dir.
#
# Knobs (env): REPS=3  PORT=<free>  WORKDIR=<mktemp>  SETTLE_SECS=0
#   OUTDIR=/tmp/chuan-bench-results/<utc>  CHUAN_BIN=target/release/chuan
#   KEEP_WORKDIR=0  STRICT=0 (1: exit 3 when a target is missed)
#   PYTHON (interpreter with boto3; default: see pick_python)  REGION=us-east-1
#   HEALTH_TIMEOUT=30  STOP_TIMEOUT=30
#   and everything s3bench.sh reads (BIG_BYTES, SMALL_SECS, SMALL_CONC,
#   WRK_THREADS, PHASES, BENCH_WORKDIR=/tmp/s3bench-work, ...).
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

REPS=${REPS:-3}
SETTLE_SECS=${SETTLE_SECS:-0}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}
STRICT=${STRICT:-0}
REGION=${REGION:-us-east-1}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
CHUAN_BIN=${CHUAN_BIN:-$REPO/target/release/chuan}
OUTDIR=${OUTDIR:-/tmp/chuan-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
BENCH_WORKDIR=${BENCH_WORKDIR:-/tmp/s3bench-work}   # holds the 1 GiB source file (kept, reused)
export BENCH_WORKDIR
ACCESS_KEY=benchak
SECRET_KEY=benchsk
BUCKET=bench
TARGET=chuan
# Targets (see README): PUT >= 0.8 x md5sum, GET >= 0.8 x cat, peak RSS < 150 MB.
GOAL_PUT_RATIO=0.8
GOAL_GET_RATIO=0.8
GOAL_RSS_MB=150
# Stamp of the last data-dir deletion, to warn about ext4's slow file creation after it.
CLEANUP_STAMP=/tmp/chuan-bench-last-cleanup

say() { echo "run.sh: $*"; }
die() { echo "run.sh: error: $*" >&2; exit 1; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

if ! is_uint "$REPS" || [ "$REPS" -lt 1 ]; then die "REPS must be a positive integer"; fi
is_uint "$SETTLE_SECS" || die "SETTLE_SECS must be a non-negative integer"
case "${1:-}" in
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

# ---------- 1. the binary (checked first: fail before installing anything) ----------
[ -x "$CHUAN_BIN" ] || die "$CHUAN_BIN not found: run 'cargo build --release' in $REPO first (this script builds nothing)"

# ---------- 2. tools ----------
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

ensure_tools() {
  local missing=() t
  for t in wrk curl openssl; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ "${#missing[@]}" -eq 0 ] || bench_apt_install "${missing[@]}"
  for t in wrk curl openssl md5sum dd awk sync getconf sort setsid find; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
}

has_boto3() { [ -x "$1" ] && "$1" -c 'import boto3' >/dev/null 2>&1; }

# Python with boto3: $PYTHON if given; else the repo's .venv (made by
# scripts/setup-venv.sh, which is run if .venv lacks boto3); else a private
# venv in bench/.venv-bench.
pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    has_boto3 "$(command -v "$PYTHON" || echo "$PYTHON")" || die "PYTHON=$PYTHON cannot import boto3"
    return
  fi
  local venv_py="$REPO/.venv/bin/python"
  if has_boto3 "$venv_py"; then PYTHON=$venv_py; return; fi
  if [ -f "$REPO/scripts/setup-venv.sh" ]; then
    say "no boto3 in .venv: running scripts/setup-venv.sh"
    if (cd "$REPO" && bash scripts/setup-venv.sh) && has_boto3 "$venv_py"; then
      PYTHON=$venv_py; return
    fi
    say "scripts/setup-venv.sh did not give .venv with boto3; using bench/.venv-bench"
  fi
  local priv="$HERE/.venv-bench" py
  py="$priv/bin/python"
  if has_boto3 "$py"; then PYTHON=$py; return; fi
  command -v python3 >/dev/null || bench_apt_install python3 python3-venv
  if [ ! -x "$py" ]; then
    say "creating $priv (boto3)"
    python3 -m venv "$priv" 2>/dev/null || { rm -rf "$priv"; bench_apt_install python3-venv; python3 -m venv "$priv"; } \
      || die "cannot create a venv in $priv"
  fi
  "$py" -m pip install -q --disable-pip-version-check boto3 || die "pip install boto3 failed"
  has_boto3 "$py" || die "boto3 still not importable with $py"
  PYTHON=$py
}

ensure_tools
pick_python
export PYTHON
say "python: $PYTHON"

# ---------- 3. server ----------
if [ -z "${PORT:-}" ]; then
  PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') \
    || die "cannot find a free port"
fi
is_uint "$PORT" || die "PORT must be a number"
ENDPOINT="http://127.0.0.1:$PORT"

MADE_WORKDIR=0
if [ -z "${WORKDIR:-}" ]; then
  WORKDIR=$(mktemp -d /tmp/chuan-bench.XXXXXX) || die "mktemp failed"
  MADE_WORKDIR=1
else
  mkdir -p "$WORKDIR" || die "cannot create $WORKDIR"
  WORKDIR=$(cd "$WORKDIR" && pwd)
fi
[ "$WORKDIR" != / ] || die "WORKDIR must not be /"
DATA="$WORKDIR/data"
[ ! -e "$DATA" ] || die "$DATA exists: the benchmark wants a fresh data dir (remove it or pick another WORKDIR)"
mkdir -p "$DATA" "$OUTDIR" || die "cannot create $DATA or $OUTDIR"
SERVER_LOG="$OUTDIR/server.log"
RES="$OUTDIR/results.tsv"
: > "$RES"

SRV_PID=""
BENCH_PID=""
CLEANED=0
# shellcheck disable=SC2317  # called from the EXIT trap
stop_bench() {   # an interrupted s3bench.sh round: its process group, then its scratch dir
  [ -n "$BENCH_PID" ] || return 0
  local pid=$BENCH_PID
  BENCH_PID=""
  say "stopping the running round (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -rf -- "$BENCH_WORKDIR/run-$TARGET-$pid"
}
# shellcheck disable=SC2317  # called from the EXIT trap
stop_server() {
  [ -n "$SRV_PID" ] || return 0
  local pid=$SRV_PID i rc
  SRV_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping server (SIGTERM to $pid)"
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "server still running after ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  wait "$pid" 2>/dev/null; rc=$?
  case "$rc" in
    0) say "server exited cleanly (status 0)" ;;
    143) say "server exited on SIGTERM without a handler (status 143)" ;;
    *) say "server exit status $rc (see $SERVER_LOG)" ;;
  esac
}
# shellcheck disable=SC2317  # the EXIT trap
cleanup() {
  [ "$CLEANED" = 1 ] && return 0
  CLEANED=1
  stop_bench
  stop_server
  if [ "$KEEP_WORKDIR" = 1 ]; then
    say "work dir kept: $WORKDIR"
    return 0
  fi
  local n
  n=$(find "$DATA" -xdev 2>/dev/null | wc -l)
  say "deleting the work dir $WORKDIR ($n entries in the data dir; can take a while)"
  if [ "$MADE_WORKDIR" = 1 ]; then rm -rf -- "$WORKDIR"; else rm -rf -- "$DATA" "$WORKDIR/pending-cleanup.tsv"; fi
  if [ "$n" -ge 1000 ]; then
    date +%s > "$CLEANUP_STAMP" 2>/dev/null
    say "work dir deleted; file creation on this ext4 is slow for ~60 s after a mass delete:" \
        "give a measured run started within a minute SETTLE_SECS=70"
  else
    say "work dir deleted"
  fi
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

# A recent mass delete (ours or anyone's) slows file creation for a minute.
if [ -f "$CLEANUP_STAMP" ]; then
  stamp=$(cat "$CLEANUP_STAMP" 2>/dev/null); is_uint "$stamp" || stamp=0
  ago=$(( $(date +%s) - stamp ))
  if [ "$ago" -ge 0 ] && [ "$ago" -lt 70 ] && [ $((ago + SETTLE_SECS)) -lt 70 ]; then
    say "WARNING: a previous bench run deleted its data dir ${ago}s ago; small-PUT figures may be low" \
        "(use SETTLE_SECS=$((70 - ago)) or more)"
  fi
fi

say "starting $CHUAN_BIN serve --data $DATA --listen 127.0.0.1:$PORT (log: $SERVER_LOG)"
# The per-tenant request rate limit and upload slots are off, as in peers.sh: one tenant is
# all a benchmark has (with them on, the 4 KiB phases are mostly 503 SlowDown after the burst).
CHUAN_ACCESS_KEY=$ACCESS_KEY CHUAN_SECRET_KEY=$SECRET_KEY CHUAN_TENANT_REQUESTS_PER_SEC=0 CHUAN_TENANT_UPLOADS=0 \
  "$CHUAN_BIN" serve --data "$DATA" --listen "127.0.0.1:$PORT" > "$SERVER_LOG" 2>&1 &
SRV_PID=$!

health=""
for ((i = 0; i < HEALTH_TIMEOUT * 10; i++)); do
  if ! kill -0 "$SRV_PID" 2>/dev/null; then
    tail -n 20 "$SERVER_LOG" >&2
    die "server exited during start-up (log above, full log $SERVER_LOG)"
  fi
  health=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$ENDPOINT/_chuan/health" 2>/dev/null)
  [ "$health" = 200 ] && break
  sleep 0.1
done
if [ "$health" != 200 ]; then
  tail -n 20 "$SERVER_LOG" >&2
  die "GET $ENDPOINT/_chuan/health did not answer 200 within ${HEALTH_TIMEOUT}s (last: ${health:-none})"
fi
say "server up: pid $SRV_PID ($(cat "/proc/$SRV_PID/comm" 2>/dev/null)), $ENDPOINT, health 200 after ~$((i / 10)).$((i % 10))s"

py() {
  ENDPOINT="$ENDPOINT" ACCESS_KEY="$ACCESS_KEY" SECRET_KEY="$SECRET_KEY" BUCKET="$BUCKET" \
    REGION="$REGION" MODE=s3 "$PYTHON" "$HERE/presign.py" "$@"
}
py ensure-bucket > "$OUTDIR/ensure-bucket.log" 2>&1 \
  || { tail -n 20 "$OUTDIR/ensure-bucket.log" >&2; die "could not create bucket $BUCKET"; }
say "bucket $BUCKET ready"

# ---------- 4. rounds ----------
vm_hwm_mib() { awk '$1 == "VmHWM:" { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

sync
if [ "$SETTLE_SECS" -gt 0 ]; then say "settling ${SETTLE_SECS}s"; sleep "$SETTLE_SECS"; fi
say "$REPS round(s); logs and results.tsv in $OUTDIR"
bench_failed=0
for ((r = 1; r <= REPS; r++)); do
  log="$OUTDIR/r$r-$TARGET.log"; hwm=""
  echo "--- round $r/$REPS ($(date -u +%T))"
  # In its own session, so that Ctrl-C reaches only this script (wrk would
  # catch SIGINT and let s3bench go on); the INT trap stops the whole round.
  TARGET_NAME=$TARGET MODE=s3 ENDPOINT=$ENDPOINT ACCESS_KEY=$ACCESS_KEY SECRET_KEY=$SECRET_KEY \
    BUCKET=$BUCKET REGION=$REGION SERVER_PID=$SRV_PID LIMITS=1 CLEANUP=big \
    CLEANUP_MANIFEST="$WORKDIR/pending-cleanup.tsv" \
    setsid bash "$HERE/s3bench.sh" > "$log" 2>&1 < /dev/null &
  BENCH_PID=$!
  wait "$BENCH_PID"; rc=$?
  BENCH_PID=""
  grep '^RESULT' "$log" | awk -v r="$r" '{ print r "\t" $2 "\t" $3 "\t" $4 }' >> "$RES"
  if kill -0 "$SRV_PID" 2>/dev/null; then
    # s3bench resets VmHWM just before the 1 GiB PUT: this is the peak over
    # this round's PUT, GET and both small-object phases.
    hwm=$(vm_hwm_mib "$SRV_PID")
    [ -n "$hwm" ] && printf '%s\t%s\t%s\t%s\n' "$r" "$TARGET" round_peak_rss_MiB "$hwm" >> "$RES"
  fi
  grep '^RESULT' "$log" | sed 's/^/    /'
  [ -n "$hwm" ] && printf '    RESULT %-12s %-26s %s\n' "$TARGET" round_peak_rss_MiB "$hwm"
  grep -E '^INFO .*(cpu|failed|ETag|md5|missing|not root|VmHWM)' "$log" | sed 's/^/    /'
  if [ "$rc" != 0 ]; then
    bench_failed=$((bench_failed + 1))
    grep -E '^s3bench:' "$log" | sed 's/^/    /'
    say "s3bench exited $rc in round $r (see $log)"
  fi
  if ! kill -0 "$SRV_PID" 2>/dev/null; then
    tail -n 20 "$SERVER_LOG" >&2
    die "the server died during round $r (log above, full log $SERVER_LOG)"
  fi
done

# ---------- instant upload vs upload of the same 1 GiB file ----------
big=$(ls "$BENCH_WORKDIR"/big-*.bin 2>/dev/null | head -n 1)
if [ "${INSTANT:-1}" = 1 ] && [ -n "$big" ]; then
  echo "--- instant upload (1 GiB already stored, proof of possession by another tenant)"
  ilog="$OUTDIR/instant-$TARGET.log"
  if TARGET_NAME=$TARGET ENDPOINT=$ENDPOINT ACCESS_KEY=$ACCESS_KEY SECRET_KEY=$SECRET_KEY BUCKET=$BUCKET \
      REGION=$REGION FILE="$big" "$PYTHON" "$HERE/instant.py" > "$ilog" 2>&1; then
    grep '^RESULT' "$ilog" | awk '{ print "i\t" $2 "\t" $3 "\t" $4 }' >> "$RES"
    grep '^RESULT' "$ilog" | sed 's/^/    /'
  else
    sed 's/^/    /' "$ilog"; say "instant benchmark failed (see $ilog)"
  fi
fi

# ---------- medians and targets ----------
echo
"$PYTHON" "$HERE/summarize.py" "$RES" | tee "$OUTDIR/summary.txt"

median() {   # figure -> median over rounds of the numeric values ("" if none), rounded like summarize.py
  awk -F'\t' -v f="$1" '$3 == f && $4 ~ /^-?[0-9]+(\.[0-9]+)?$/ { print $4 }' "$RES" | sort -g \
    | awk '{ a[NR] = $1 }
      END { if (NR == 0) exit
            m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
            x = m < 0 ? -m : m
            if (x >= 100) printf "%.0f\n", m; else if (x >= 10) printf "%.1f\n", m; else printf "%.3g\n", m }'
}
count_bad() {  # figure ok_value -> number of rounds where the figure was not ok_value
  awk -F'\t' -v f="$1" -v ok="$2" '$3 == f && $4 != ok { n++ } END { print n + 0 }' "$RES"
}
sum_of() { awk -F'\t' -v f="$1" '$3 == f && $4 ~ /^[0-9.]+$/ { s += $4 } END { print s + 0 }' "$RES"; }
# shellcheck disable=SC2317  # ge/lt are called as "$3" by verdict
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
# shellcheck disable=SC2317
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

m_put=$(median put_MBps); m_get=$(median get_MBps)
m_md5=$(median md5sum_MBps); m_cat=$(median cat_MBps)
m_pr=$(median put_over_md5sum); m_gr=$(median get_over_cat)
m_rss_put=$(median put_peak_rss_MiB); m_rss=$(median round_peak_rss_MiB)
[ -n "$m_rss" ] || m_rss=$m_rss_put
m_p4=$(median put4k_ops); m_g4=$(median get4k_ops)
m_p4p99=$(median put4k_p99_ms); m_g4p99=$(median get4k_p99_ms)
rss_mb=""; [ -n "$m_rss" ] && rss_mb=$(awk -v x="$m_rss" 'BEGIN { printf "%.1f", x * 1.048576 }')

verdict() {  # value goal op(ge|lt) -> MET | MISSED | NO DATA
  if [ -z "$1" ]; then echo "NO DATA"; elif "$3" "$1" "$2"; then echo MET; else echo MISSED; fi
}
v_put=$(verdict "$m_pr" "$GOAL_PUT_RATIO" ge)
v_get=$(verdict "$m_gr" "$GOAL_GET_RATIO" ge)
v_rss=$(verdict "$rss_mb" "$GOAL_RSS_MB" lt)
met=0; missed=0; unknown=0
for v in "$v_put" "$v_get" "$v_rss"; do
  case "$v" in MET) met=$((met + 1)) ;; MISSED) missed=$((missed + 1)) ;; *) unknown=$((unknown + 1)) ;; esac
done

echo
echo "== targets (median over $REPS round(s))"
printf '  %-20s %8s   goal >= %s x md5sum   %s\n' put_over_md5sum "${m_pr:--}" "$GOAL_PUT_RATIO" "$v_put"
printf '  %-20s %8s   goal >= %s x cat      %s\n' get_over_cat "${m_gr:--}" "$GOAL_GET_RATIO" "$v_get"
printf '  %-20s %8s   goal <  %s MB          %s   (%s MiB; PUT-phase peak %s MiB)\n' \
  peak_rss_MB "${rss_mb:--}" "$GOAL_RSS_MB" "$v_rss" "${m_rss:--}" "${m_rss_put:--}"

problems=()
n=$(count_bad get_md5_ok 1); [ "$n" = 0 ] || problems+=("GET body md5 wrong or missing in $n round(s)")
n=$(count_bad etag_is_md5 1); [ "$n" = 0 ] || problems+=("ETag not the MD5 in $n round(s)")
for f in put4k_non2xx get4k_non2xx put4k_sock_errors get4k_sock_errors; do
  n=$(sum_of "$f"); [ "$n" = 0 ] || problems+=("$f=$n")
done
[ "$bench_failed" = 0 ] || problems+=("s3bench failed in $bench_failed round(s)")
n=$(awk -F'\t' '$4 == "FAIL" { n++ } END { print n + 0 }' "$RES"); [ "$n" = 0 ] || problems+=("$n FAILED figure(s)")

echo
echo "== summary"
BIG=${BIG_BYTES:-1073741824}
if [ "$BIG" = 1073741824 ]; then big_label="1 GiB"; else big_label="$((BIG / 1048576)) MiB"; fi
para="Chuan over $REPS round(s), medians: one $big_label PUT stream ran at ${m_put:-?} MB/s, ${m_pr:-?}x the machine's md5sum rate (${m_md5:-?} MB/s; target >= ${GOAL_PUT_RATIO}x: $v_put);"
para+=" one $big_label GET stream at ${m_get:-?} MB/s, ${m_gr:-?}x cat from the page cache (${m_cat:-?} MB/s; target >= ${GOAL_GET_RATIO}x: $v_get);"
para+=" peak server RSS ${rss_mb:-?} MB (target < ${GOAL_RSS_MB} MB: $v_rss)."
if [ -n "$m_p4$m_g4" ]; then
  para+=" $(( ${SMALL_SIZE:-4096} / 1024 )) KiB objects over ${SMALL_CONC:-16} connections: PUT ${m_p4:-?} op/s (p99 ${m_p4p99:-?} ms), GET ${m_g4:-?} op/s (p99 ${m_g4p99:-?} ms)."
fi
para+=" $met of 3 targets met"
[ "$missed" -gt 0 ] && para+=", $missed missed"
[ "$unknown" -gt 0 ] && para+=", $unknown without data"
if [ "${#problems[@]}" -gt 0 ]; then
  joined=$(printf '%s; ' "${problems[@]}")
  para+=". Problems: ${joined%; }."
else
  para+="; no errors (GET md5 and MD5 ETags checked, no non-2xx or socket errors)."
fi
para+=" Client and server share 2 cores: read the INFO cpu lines in $OUTDIR before calling a figure the server's limit."
echo "$para" | fold -s -w 100
echo "$para" >> "$OUTDIR/summary.txt"

status=0
[ "${#problems[@]}" -eq 0 ] || status=2
if [ "$STRICT" = 1 ] && [ $((missed + unknown)) -gt 0 ]; then status=3; fi
exit "$status"
