#!/usr/bin/env bash
# Copied from ../shared/bench/s3bench.sh (2026-11-22, sha256 675b8724ca44c775); one shellcheck directive added;
# changed: WRK_SCRIPT picks the wrk script (default smallobj.lua; bench/inline.sh uses uniqueobj.lua);
# BIG_FRESH=1 writes new random bytes for each run (bench/cluster.sh: a content-addressed store
# must not find the last round's blob still in its GC grace).
# s3bench.sh - benchmark ONE running S3 (or plain HTTP PUT/GET) server on loopback.
# See README.md beside this file. Every figure is printed as
#   RESULT <target> <figure> <value>
# (MB = 10^6 bytes). Extra context lines start with INFO.
#
# usage: s3bench.sh            # machine limits + big object + small objects
#        s3bench.sh --limits-only
#        s3bench.sh --cleanup     # delete what earlier runs of $TARGET_NAME left
#                                 # (listed in $CLEANUP_MANIFEST)
# shellcheck disable=SC2015,SC2034  # (added on copy: the reference code uses A && B || die, and an unused read field)
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

TARGET_NAME=${TARGET_NAME:-target}
MODE=${MODE:-s3}                        # s3 | plain
ENDPOINT=${ENDPOINT:-}
ACCESS_KEY=${ACCESS_KEY:-}
SECRET_KEY=${SECRET_KEY:-}
BUCKET=${BUCKET:-}
REGION=${REGION:-us-east-1}
SERVER_PID=${SERVER_PID:-}              # PIDs (space/comma separated) for RSS/CPU
BENCH_WORKDIR=${BENCH_WORKDIR:-/tmp/s3bench-work}
BIG_BYTES=${BIG_BYTES:-1073741824}
BIG_FRESH=${BIG_FRESH:-0}               # 1: new random bytes for the big file on every run
SMALL_SIZE=${SMALL_SIZE:-4096}
SMALL_CONC=${SMALL_CONC:-16}
SMALL_SECS=${SMALL_SECS:-10}
SMALL_URLS=${SMALL_URLS:-300000}        # PUT targets generated (all threads)
WRK_THREADS=${WRK_THREADS:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
WRK_SCRIPT=${WRK_SCRIPT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/smallobj.lua}
SMALL_TAIL=${SMALL_TAIL:-4000}            # last N issued PUT keys per thread checked with HEAD
LIMITS=${LIMITS:-1}                     # 1: measure machine limits in this run
PHASES=${PHASES:-big small}             # subset of: big small
CLEANUP=${CLEANUP:-big}                 # big | all | none (see README: ext4 and deletes)
CLEANUP_MANIFEST=${CLEANUP_MANIFEST:-$BENCH_WORKDIR/pending-cleanup.tsv}
CURL_EXPECT=${CURL_EXPECT:-0}           # 1: let curl send Expect: 100-continue
OPENSSL_SECS=${OPENSSL_SECS:-3}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
fi

LIMITS_ONLY=0
CLEANUP_ONLY=0
case "${1:-}" in
  --limits-only) LIMITS_ONLY=1; LIMITS=1 ;;
  --cleanup) CLEANUP_ONLY=1; LIMITS=0 ;;
  -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
esac

die() { echo "s3bench: $*" >&2; exit 1; }
info() { echo "INFO  [$TARGET_NAME] $*"; }
RESULTS=()
result() {   # figure value
  local line
  line=$(printf 'RESULT %-12s %-26s %s' "$TARGET_NAME" "$1" "$2")
  echo "$line"
  RESULTS+=("$line")
}
fmt() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

for tool in curl wrk awk md5sum openssl dd; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

W="$BENCH_WORKDIR/run-$TARGET_NAME-$$"
mkdir -p "$W" || die "cannot create $W"
trap 'rm -rf "$W"' EXIT
BIG="$BENCH_WORKDIR/big-$BIG_BYTES.bin"

CLK_TCK=$(getconf CLK_TCK)
PIDS=$(echo "$SERVER_PID" | tr ',' ' ')

# ---------- helpers: CPU / memory accounting ----------
srv_ticks() {   # utime+stime of all SERVER_PIDs (all threads)
  local t=0 p v
  for p in $PIDS; do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
sys_stat() {    # "busy total" jiffies from /proc/stat
  awk '/^cpu / { tot=0; for (i=2;i<=NF;i++) tot+=$i; idle=$5+$6; print tot-idle, tot }' /proc/stat
}
rss_reset() {   # reset VmHWM (peak RSS) to current RSS; needs root/owner
  local p ok=1
  for p in $PIDS; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || ok=0; done
  echo $ok
}
rss_kib() {     # sum over PIDs of field ($1 = VmHWM | VmRSS), KiB
  local t=0 p v
  for p in $PIDS; do
    v=$(awk -v f="$1:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
check_pids() {
  local p
  for p in $PIDS; do [ -r "/proc/$p/stat" ] || die "SERVER_PID $p not running"; done
}
# run a command under bash's time; sets T_REAL T_USER T_SYS
timed() {
  local tf="$W/time.$$" TIMEFORMAT='%R %U %S'
  { time "$@"; } 2>"$tf.raw"
  local rc=$?
  tail -n1 "$tf.raw" > "$tf"
  head -n -1 "$tf.raw" >&2
  read -r T_REAL T_USER T_SYS < "$tf"
  return $rc
}
# before/after snapshot of server CPU and whole-machine CPU
snap_begin() { S_TICKS0=$(srv_ticks); read -r S_BUSY0 S_TOT0 < <(sys_stat); }
snap_end() {   # $1 = wall seconds; sets SRV_CORES SYS_BUSY_PCT
  local t1 b1 tot1
  t1=$(srv_ticks); read -r b1 tot1 < <(sys_stat)
  SRV_CORES=$(calc "($t1 - $S_TICKS0) / $CLK_TCK / $1" 2)
  SYS_BUSY_PCT=$(calc "100 * ($b1 - $S_BUSY0) / (($tot1 - $S_TOT0) > 0 ? ($tot1 - $S_TOT0) : 1)" 0)
}

py() {
  ENDPOINT="$ENDPOINT" ACCESS_KEY="$ACCESS_KEY" SECRET_KEY="$SECRET_KEY" BUCKET="$BUCKET" \
    REGION="$REGION" MODE="$MODE" "$PYTHON" "$HERE/presign.py" "$@"
}

# ---------- the 1 GiB random file ----------
ensure_big() {
  if [ "$BIG_FRESH" = 1 ] && [ -z "${BIG_REFRESHED:-}" ]; then
    rm -f "$BIG" "$BIG.md5"; BIG_REFRESHED=1
  fi
  if [ ! -f "$BIG" ] || [ "$(stat -c %s "$BIG")" != "$BIG_BYTES" ]; then
    info "creating $BIG ($BIG_BYTES random bytes)"
    head -c "$BIG_BYTES" /dev/urandom > "$BIG.tmp" && mv "$BIG.tmp" "$BIG" || die "cannot write $BIG"
    rm -f "$BIG.md5"
  fi
  if [ ! -s "$BIG.md5" ]; then md5sum < "$BIG" | cut -d' ' -f1 > "$BIG.md5"; fi
  BIG_MD5=$(cat "$BIG.md5")
  cat "$BIG" > /dev/null     # warm the page cache
}

# ---------- machine limits ----------
measure_limits() {
  ensure_big
  sync
  timed md5sum "$BIG" > "$W/md5.out" || die "md5sum failed"
  [ "$(cut -d' ' -f1 "$W/md5.out")" = "$BIG_MD5" ] || die "md5 of $BIG changed"
  LIM_MD5=$(calc "$BIG_BYTES / $T_REAL / 1e6")
  result md5sum_MBps "$LIM_MD5"
  local bps
  bps=$(openssl speed -evp md5 -bytes 16384 -seconds "$OPENSSL_SECS" -mr 2>/dev/null \
        | awk -F: '/^\+F:/ { print $4 }' | tail -n1)
  result openssl_md5_16k_MBps "$(calc "${bps:-0} / 1e6")"
  timed cat "$BIG" > /dev/null
  LIM_CAT=$(calc "$BIG_BYTES / $T_REAL / 1e6")
  result cat_MBps "$LIM_CAT"
  sync
  local mib=$((BIG_BYTES / 1048576))
  timed dd if=/dev/zero of="$W/dd.tmp" bs=1M count="$mib" conv=fdatasync status=none || die "dd failed"
  result dd_fdatasync_MBps "$(calc "$mib * 1048576 / $T_REAL / 1e6")"
  rm -f "$W/dd.tmp"; sync
}

# ---------- 1 GiB single stream ----------
phase_big() {
  local key="$RUN_PREFIX/big-$BIG_BYTES" put_url get_url code sz tt hwm0 reset base etag got
  CLEAN_EXTRA+=("$key")
  put_url=$(py url PUT "$key") || die "presign PUT failed"
  get_url=$(py url GET "$key") || die "presign GET failed"
  local expect=(-H 'Expect:')
  [ "$CURL_EXPECT" = 1 ] && expect=()
  sync
  reset=$(rss_reset); base=$(rss_kib VmRSS)
  snap_begin
  timed curl -sS -T "$BIG" "${expect[@]}" -D "$W/put.hdr" -o "$W/put.body" \
      -w '%{http_code} %{size_upload} %{time_total}' "$put_url" > "$W/put.out"
  read -r code sz tt < "$W/put.out"
  snap_end "$T_REAL"
  if [[ ! "$code" =~ ^2 ]] || [ "$sz" != "$BIG_BYTES" ]; then
    info "PUT failed: http=$code uploaded=$sz; body: $(head -c 400 "$W/put.body")"
    result put_MBps FAIL; return 1
  fi
  PUT_MBPS=$(calc "$sz / $tt / 1e6")
  result put_MBps "$PUT_MBPS"
  info "PUT ${sz} B in ${tt} s (http $code); curl cpu $(calc "($T_USER + $T_SYS) / $T_REAL * 100" 0)% of a core;" \
       "server cpu ${SRV_CORES} cores; machine busy ${SYS_BUSY_PCT}%"
  if [ -n "$PIDS" ]; then
    hwm0=$(rss_kib VmHWM)
    result put_peak_rss_MiB "$(calc "$hwm0 / 1024")"
    [ "$reset" = 1 ] || info "VmHWM could not be reset: peak RSS is since server start"
    info "server RSS before PUT $(calc "$base / 1024") MiB"
  fi
  etag=$(awk -F': ' 'tolower($1) == "etag" { gsub(/[\r"]/, "", $2); print $2 }' "$W/put.hdr")
  if [ "$MODE" = s3 ]; then
    if [ "$etag" = "$BIG_MD5" ]; then result etag_is_md5 1; else result etag_is_md5 0; info "ETag '$etag' != md5 $BIG_MD5"; fi
  fi

  sync
  snap_begin
  timed curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$get_url" > "$W/get.out"
  read -r code sz tt < "$W/get.out"
  snap_end "$T_REAL"
  if [ "$code" != 200 ] || [ "$sz" != "$BIG_BYTES" ]; then
    info "GET failed: http=$code size=$sz"; result get_MBps FAIL; return 1
  fi
  GET_MBPS=$(calc "$sz / $tt / 1e6")
  result get_MBps "$GET_MBPS"
  info "GET ${sz} B in ${tt} s; curl cpu $(calc "($T_USER + $T_SYS) / $T_REAL * 100" 0)% of a core;" \
       "server cpu ${SRV_CORES} cores; machine busy ${SYS_BUSY_PCT}%"

  got=$(curl -sS "$get_url" | md5sum | cut -d' ' -f1)     # untimed verification
  if [ "$got" = "$BIG_MD5" ]; then result get_md5_ok 1; else result get_md5_ok 0; info "GET md5 $got != $BIG_MD5"; fi
}

# ---------- small objects with wrk ----------
wrk_phase() {  # method urlbase bodyfile label
  local method=$1 base=$2 body=$3 label=$4 line
  sync
  snap_begin
  WRK_RESULT_FILE="$W/$label.threads" timed wrk -t"$WRK_THREADS" -c"$SMALL_CONC" -d"${SMALL_SECS}s" \
      --timeout "$WRK_TIMEOUT" -s "$WRK_SCRIPT" "$ENDPOINT/" -- "$method" "$base" "$body" \
      > "$W/$label.wrk" 2>&1
  snap_end "$T_REAL"
  line=$(grep '^WRKRESULT' "$W/$label.wrk") || { cat "$W/$label.wrk" >&2; die "wrk $label failed"; }
  local rps p50 p99 non2xx errs wraps
  rps=$(sed -E 's/.* rps=([^ ]+).*/\1/' <<<"$line")
  p50=$(sed -E 's/.* p50_us=([^ ]+).*/\1/' <<<"$line")
  p99=$(sed -E 's/.* p99_us=([^ ]+).*/\1/' <<<"$line")
  non2xx=$(sed -E 's/.* non2xx=([^ ]+).*/\1/' <<<"$line")
  errs=$(awk '{ for (i=1;i<=NF;i++) if ($i ~ /_err=/) { split($i,a,"="); s+=a[2] } } END { print s+0 }' <<<"$line")
  wraps=$(sed -E 's/.* wraps=([^ ]+).*/\1/' <<<"$line")
  result "${label}_ops" "$rps"
  result "${label}_p50_ms" "$(calc "$p50 / 1000" 2)"
  result "${label}_p99_ms" "$(calc "$p99 / 1000" 2)"
  result "${label}_non2xx" "$non2xx"
  result "${label}_sock_errors" "$errs"
  info "$label: $line"
  info "$label: wrk cpu $(calc "($T_USER + $T_SYS) / $T_REAL" 2) cores (wrk -t$WRK_THREADS);" \
       "server cpu ${SRV_CORES} cores; machine busy ${SYS_BUSY_PCT}%; wraps=$wraps"
}

phase_small() {
  local prefix="$RUN_PREFIX/s" per=$(( (SMALL_URLS + WRK_THREADS - 1) / WRK_THREADS ))
  local issued="" id n wr
  [ $((SMALL_CONC % WRK_THREADS)) = 0 ] || die "SMALL_CONC must be a multiple of WRK_THREADS"
  head -c "$SMALL_SIZE" /dev/urandom > "$W/body"
  timed py bulk PUT "$prefix" "$WRK_THREADS" "$per" "$W/put.urls" || die "URL generation failed"
  info "generated $((per * WRK_THREADS)) PUT targets in ${T_REAL} s"
  wrk_phase PUT "$W/put.urls" "$W/body" put4k
  rm -f "$W"/put.urls.*
  # GET phase walks the keys that were written: per thread, those issued
  # (all of them if the thread wrapped), minus in-flight ones at wrk's stop,
  # which presign.py getlist finds with HEAD over the last SMALL_TAIL keys.
  while read -r id n wr; do
    [ "$wr" -gt 0 ] && n=$per
    [ "$n" -gt "$per" ] && n=$per
    issued="${issued:+$issued,}$n"
  done < <(sort -n "$W/put4k.threads")
  SMALL_ISSUED=$issued
  timed py getlist "$prefix" "$WRK_THREADS" "$issued" "$SMALL_TAIL" "$W/get.urls" > "$W/getlist.out" \
    || die "GET list failed: $(cat "$W/getlist.out")"
  info "PUT keys issued per thread: $issued; written: $(cat "$W/getlist.out") (checked in ${T_REAL} s)"
  wrk_phase GET "$W/get.urls" - get4k
  rm -f "$W"/get.urls.*
}

do_manifest_cleanup() {
  [ -f "$CLEANUP_MANIFEST" ] || { info "nothing to clean ($CLEANUP_MANIFEST missing)"; return 0; }
  local keep="$W/manifest.keep" rc=0 name prefix threads counts extra
  : > "$keep"
  while IFS=$'\t' read -r name prefix threads counts extra; do
    if [ "$name" != "$TARGET_NAME" ]; then
      printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$prefix" "$threads" "$counts" "$extra" >> "$keep"; continue
    fi
    # shellcheck disable=SC2086
    if timed py cleanup "$prefix" "$threads" "$counts" $extra > "$W/cleanup.out" 2>&1; then
      info "cleanup $prefix: $(tail -n1 "$W/cleanup.out") in ${T_REAL} s"
    else
      info "cleanup $prefix failed: $(tail -n 3 "$W/cleanup.out")"; rc=1
      printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$prefix" "$threads" "$counts" "$extra" >> "$keep"
    fi
  done < "$CLEANUP_MANIFEST"
  cat "$keep" > "$CLEANUP_MANIFEST"
  sync
  info "deleted files make new-file creation slow on this ext4 for ~60 s: wait before measuring again"
  return $rc
}

# ---------- main ----------
echo "== s3bench $TARGET_NAME $(date -u +%FT%TZ) mode=$MODE endpoint=${ENDPOINT:-none} host=$(hostname) cores=$(nproc)"
mkdir -p "$BENCH_WORKDIR"
if [ "$LIMITS" = 1 ]; then measure_limits; fi
if [ "$LIMITS_ONLY" = 1 ]; then exit 0; fi

case "$MODE" in s3|plain) ;; *) die "MODE must be s3 or plain" ;; esac
[ -n "$ENDPOINT" ] && [ -n "$BUCKET" ] || die "ENDPOINT and BUCKET are required"
[[ "$ENDPOINT" =~ ^http://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\]):[0-9]+/?$ ]] \
  || die "ENDPOINT must be http://127.x.x.x:PORT (loopback only)"
ENDPOINT=${ENDPOINT%/}
if [ "$MODE" = s3 ]; then [ -n "$ACCESS_KEY" ] && [ -n "$SECRET_KEY" ] || die "ACCESS_KEY/SECRET_KEY required"; fi
if [ "$CLEANUP_ONLY" = 1 ]; then do_manifest_cleanup; exit $?; fi
check_pids
[ "$(id -u)" = 0 ] || info "not root: VmHWM reset may fail"
py ensure-bucket || die "bucket $BUCKET not reachable"
ensure_big
RUN_PREFIX="s3bench-$(date +%s)-$$"
CLEAN_EXTRA=()
SMALL_ISSUED=""
for ph in $PHASES; do
  case "$ph" in
    big) phase_big || info "big-object phase failed" ;;
    small) phase_small ;;
    *) die "unknown phase $ph" ;;
  esac
done

md5ref=${LIM_MD5:-${LIMIT_MD5_MBPS:-}}
catref=${LIM_CAT:-${LIMIT_CAT_MBPS:-}}
[ -n "${PUT_MBPS:-}" ] && [ -n "$md5ref" ] && result put_over_md5sum "$(calc "$PUT_MBPS / $md5ref" 3)"
[ -n "${GET_MBPS:-}" ] && [ -n "$catref" ] && result get_over_cat "$(calc "$GET_MBPS / $catref" 3)"

# Deleting many small files right before another measured run skews it (see
# README): by default only the big object goes now; the small objects are
# listed in the manifest for a later `s3bench.sh --cleanup`.
small_now=0; big_now=0
case "$CLEANUP" in all) small_now=1; big_now=1 ;; big) big_now=1 ;; none) ;; *) die "CLEANUP must be big, all or none" ;; esac
if [ "$small_now" = 0 ] && [ -n "$SMALL_ISSUED" ] || { [ "$big_now" = 0 ] && [ "${#CLEAN_EXTRA[@]}" -gt 0 ]; }; then
  extra=""; [ "$big_now" = 0 ] && extra="${CLEAN_EXTRA[*]}"
  small="${SMALL_ISSUED:-0}"; [ "$small_now" = 1 ] && small=0
  printf '%s\t%s\t%s\t%s\t%s\n' "$TARGET_NAME" "$RUN_PREFIX/s" "$WRK_THREADS" "$small" "$extra" >> "$CLEANUP_MANIFEST"
  info "left for 's3bench.sh --cleanup': $RUN_PREFIX (listed in $CLEANUP_MANIFEST)"
fi
if [ "$small_now" = 1 ] || { [ "$big_now" = 1 ] && [ "${#CLEAN_EXTRA[@]}" -gt 0 ]; }; then
  small=0; [ "$small_now" = 1 ] && small="${SMALL_ISSUED:-0}"
  extra=(); [ "$big_now" = 1 ] && extra=("${CLEAN_EXTRA[@]}")
  timed py cleanup "$RUN_PREFIX/s" "$WRK_THREADS" "$small" "${extra[@]}" > "$W/cleanup.out" 2>&1 \
    || info "cleanup failed: $(tail -n 3 "$W/cleanup.out")"
  info "cleanup ($CLEANUP): $(tail -n1 "$W/cleanup.out") in ${T_REAL} s"
fi
echo "== summary $TARGET_NAME (the RESULT lines above, repeated)"
printf '  %s\n' "${RESULTS[@]}"
