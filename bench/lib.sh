# bench/lib.sh - helpers the bench scripts share; source it after defining say() and die().
# shellcheck shell=bash

# Installs Debian packages (as root, else with sudo), one apt-get update per script run.
bench_apt_install() {  # packages...
  [ "$#" -gt 0 ] || return 0
  command -v apt-get >/dev/null || die "missing $*; install them (no apt-get here)"
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "missing $*; run as root or install them"
    sudo=(sudo)
  fi
  say "installing $* (apt-get)"
  if [ "${BENCH_APT_UPDATED:-0}" = 0 ]; then
    "${sudo[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
    BENCH_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# wrk, curl, openssl and nginx-light (WebDAV for peers.sh, the load balancer for cluster.sh).
bench_tools() {
  local need=() t
  for t in wrk curl openssl; do command -v "$t" >/dev/null || need+=("$t"); done
  [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  bench_apt_install "${need[@]}"
}

# A free loopback TCP port.
bench_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits until something answers HTTP on the port (30 s), dying with the log's name if the
# process exits first.
bench_wait_port() {  # name port pid log
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$3" 2>/dev/null || die "$1 exited during start-up (see $4)"
    curl -s -o /dev/null -m 1 "http://127.0.0.1:$2/" && return 0
    sleep 0.1
  done
  die "$1 did not listen on $2 within 30 s"
}

# One run of s3bench.sh's small phase against a fresh Chuan, every PUT body different
# (uniqueobj.lua): starts BINARY on a new data dir and a free loopback port with the rate
# limits off and the extra environment given, creates bucket `bench`, writes s3bench's output
# to LOG and the server's to LOG.server, appends the server's peak RSS over the run to LOG
# (`RESULT chuan peak_rss_MiB`), stops the server and deletes the dir. BENCH_PID and
# BENCH_WORK name the server and the dir while it runs (for the caller's exit trap). Reads
# PYTHON and s3bench's SMALL_* knobs (SMALL_SIZE, SMALL_SECS, SMALL_CONC, SMALL_URLS).
bench_unique_small() {  # binary log [VAR=value ...]
  local bin=$1 log=$2 port here
  shift 2
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  BENCH_WORK=$(mktemp -d /tmp/chuan-bench-run.XXXXXX)
  port=$(bench_port)
  env CHUAN_ACCESS_KEY=benchak CHUAN_SECRET_KEY=benchsecretkey0123456789 CHUAN_LOG=warn \
    CHUAN_TENANT_REQUESTS_PER_SEC=0 CHUAN_TENANT_UPLOADS=0 "$@" \
    "$bin" serve --data "$BENCH_WORK/data" --listen "127.0.0.1:$port" > "$log.server" 2>&1 &
  BENCH_PID=$!
  bench_wait_port chuan "$port" "$BENCH_PID" "$log.server"
  "$PYTHON" -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$port', aws_access_key_id='benchak',
    aws_secret_access_key='benchsecretkey0123456789', region_name='us-east-1').create_bucket(Bucket='bench')" \
    || die "create bucket failed"
  TARGET_NAME=chuan MODE=s3 ENDPOINT="http://127.0.0.1:$port" ACCESS_KEY=benchak SECRET_KEY=benchsecretkey0123456789 \
    BUCKET=bench SERVER_PID=$BENCH_PID PYTHON=$PYTHON LIMITS=0 PHASES=small CLEANUP=none \
    WRK_SCRIPT="$here/uniqueobj.lua" BENCH_WORKDIR="$BENCH_WORK/bench" \
    bash "$here/s3bench.sh" > "$log" 2>&1 || die "s3bench failed (see $log)"
  awk '$1 == "VmHWM:" { printf "RESULT chuan peak_rss_MiB %.1f\n", $2 / 1024 }' "/proc/$BENCH_PID/status" >> "$log"
  kill -TERM "$BENCH_PID"; wait "$BENCH_PID" 2>/dev/null; BENCH_PID=
  rm -rf -- "$BENCH_WORK"; BENCH_WORK=
}

# What bench_unique_small needs (wrk; boto3 in PYTHON), checked before the first run.
bench_unique_check() {
  command -v wrk >/dev/null || die "wrk not found (bench/peers.sh installs it; or apt-get install wrk)"
  "$PYTHON" -c 'import boto3' 2>/dev/null || die "$PYTHON has no boto3: run scripts/setup-venv.sh"
}

# For an exit trap: stops the server a bench_unique_small run left behind, deletes its dir.
bench_unique_cleanup() {
  [ -n "${BENCH_PID:-}" ] && kill -TERM "$BENCH_PID" 2>/dev/null && wait "$BENCH_PID" 2>/dev/null
  [ -n "${BENCH_WORK:-}" ] && rm -rf -- "$BENCH_WORK"
  return 0
}
