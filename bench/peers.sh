#!/usr/bin/env bash
# bench/peers.sh - Chuan next to its peers, side by side, in one command (bench/README.md).
#
# Installs what it needs, idempotently: wrk, curl, openssl and nginx-light (Debian; its
# WebDAV module serves plain PUT/GET) with apt-get, s3s-fs from crates.io at a pinned version
# with `cargo install` into $TOOLS. Starts on free loopback ports, each with a fresh data dir:
#   chuan   target/release/chuan serve (every PUT fsynced before it is answered)
#   s3s-fs  s3s-fs 0.14.1, S3 over a directory (no fsync)
#   nginx   nginx 1.22 WebDAV PUT/GET, 2 workers (no fsync, no S3)
# then runs bench/run-peers.sh: REPS interleaved rounds (A B C, B C A, ...), each with the
# machine's own limits (md5sum, cat, dd) measured in the same round, and prints the medians,
# Chuan's ratio to the best peer for each figure and to the machine limits (bench/ratios.py).
# Stops everything it started and deletes the data dirs on exit.
#
# Knobs (env): REPS=3  TOOLS=~/.cache/chuan-bench  S3S_FS_VERSION=0.14.1  KEEP_WORKDIR=0
#   OUTDIR=/tmp/chuan-peers/<utc>  CHUAN_BIN=target/release/chuan  ONLY="chuan nginx"
#   EXTRAS=1 (0: skip CompleteMultipartUpload of 1,000 parts and instant upload, which run
#   against Chuan after the rounds so that every issue-15 target is printed with a verdict)
#   and everything run-peers.sh and s3bench.sh read (BIG_BYTES, SMALL_SECS, SMALL_CONC, ...).
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}
TOOLS=${TOOLS:-$HOME/.cache/chuan-bench}
S3S_FS_VERSION=${S3S_FS_VERSION:-0.14.1}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}
CHUAN_BIN=${CHUAN_BIN:-$REPO/target/release/chuan}
OUTDIR=${OUTDIR:-/tmp/chuan-peers/$(date -u +%Y%m%dT%H%M%SZ)}
AK=benchak
SK=benchsecretkey0123456789
BUCKET=bench

say() { echo "peers.sh: $*"; }
die() { echo "peers.sh: error: $*" >&2; exit 1; }
case "${1:-}" in
  -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac
[ -x "$CHUAN_BIN" ] || die "$CHUAN_BIN not found: run 'cargo build --release' first"

# ---------- tools, idempotently ----------
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_tools
/usr/sbin/nginx -V 2>&1 | grep -q http_dav_module || die "this nginx has no WebDAV module"
S3S_FS=$TOOLS/bin/s3s-fs
if ! [ -x "$S3S_FS" ] || [ "$("$S3S_FS" --version 2>/dev/null | awk '{print $2}')" != "$S3S_FS_VERSION" ]; then
  say "installing s3s-fs $S3S_FS_VERSION from crates.io into $TOOLS (a few minutes)"
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --root "$TOOLS" --force -q \
    || die "cargo install s3s-fs failed"
fi
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
if ! "$PYTHON" -c 'import boto3' 2>/dev/null; then
  (cd "$REPO" && scripts/setup-venv.sh) || die "no python with boto3 (scripts/setup-venv.sh failed)"
fi
export PYTHON

# ---------- servers ----------
WORKDIR=$(mktemp -d /tmp/chuan-peers.XXXXXX) || die "mktemp failed"
mkdir -p "$OUTDIR"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ -f "$WORKDIR/nginx.pid" ] && kill -TERM "$(cat "$WORKDIR/nginx.pid")" 2>/dev/null
  sleep 0.5
  if [ "$KEEP_WORKDIR" = 1 ]; then say "work dir kept: $WORKDIR"; else rm -rf -- "$WORKDIR"; fi
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM
P_CHUAN=$(bench_port); P_S3S=$(bench_port); P_NGINX=$(bench_port)
mkdir -p "$WORKDIR/chuan" "$WORKDIR/s3s/$BUCKET" "$WORKDIR/nginx/$BUCKET"
# The per-tenant request rate limit is off: the peers have none, and one tenant is all a
# benchmark has (with it on, a 4 KiB GET phase is mostly 503 SlowDown after the burst).
CHUAN_ACCESS_KEY=$AK CHUAN_SECRET_KEY=$SK CHUAN_LOG=warn CHUAN_TENANT_REQUESTS_PER_SEC=0 CHUAN_TENANT_UPLOADS=0 \
  "$CHUAN_BIN" serve --data "$WORKDIR/chuan" --listen "127.0.0.1:$P_CHUAN" > "$OUTDIR/chuan.log" 2>&1 &
PID_CHUAN=$!; PIDS+=("$PID_CHUAN")
RUST_LOG=warn "$S3S_FS" --host 127.0.0.1 --port "$P_S3S" --access-key "$AK" --secret-key "$SK" \
  "$WORKDIR/s3s" > "$OUTDIR/s3s-fs.log" 2>&1 &
PID_S3S=$!; PIDS+=("$PID_S3S")
cat > "$WORKDIR/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $WORKDIR/nginx.pid;
error_log $OUTDIR/nginx.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_temp_path $WORKDIR/nginx-tmp;
  server {
    listen 127.0.0.1:$P_NGINX;
    root $WORKDIR/nginx;
    location / { dav_methods PUT DELETE; create_full_put_path on; }
  }
}
CONF
mkdir -p "$WORKDIR/nginx-tmp"
# nginx's workers run as an unprivileged user when started by root: let them write.
chmod 755 "$WORKDIR" && chmod 777 "$WORKDIR/nginx" "$WORKDIR/nginx/$BUCKET" "$WORKDIR/nginx-tmp"
/usr/sbin/nginx -c "$WORKDIR/nginx.conf" > "$OUTDIR/nginx.log" 2>&1 &
PID_NGINX=$!; PIDS+=("$PID_NGINX")
bench_wait_port chuan "$P_CHUAN" "$PID_CHUAN" "$OUTDIR/chuan.log"
bench_wait_port s3s-fs "$P_S3S" "$PID_S3S" "$OUTDIR/s3s-fs.log"
bench_wait_port nginx "$P_NGINX" "$PID_NGINX" "$OUTDIR/nginx.log"
NGINX_PIDS=$(echo "$PID_NGINX" $(pgrep -P "$PID_NGINX") | tr ' ' ',')
"$PYTHON" - "$P_CHUAN" "$AK" "$SK" "$BUCKET" <<'PY' || die "creating the chuan bucket failed"
import sys, boto3
port, ak, sk, bucket = sys.argv[1:]
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=ak, aws_secret_access_key=sk,
             region_name="us-east-1").create_bucket(Bucket=bucket)
PY
say "chuan :$P_CHUAN (pid $PID_CHUAN), s3s-fs :$P_S3S (pid $PID_S3S), nginx :$P_NGINX (pids $NGINX_PIDS)"

TARGETS="name=chuan mode=s3 endpoint=http://127.0.0.1:$P_CHUAN access_key=$AK secret_key=$SK bucket=$BUCKET pid=$PID_CHUAN
name=s3s-fs mode=s3 endpoint=http://127.0.0.1:$P_S3S access_key=$AK secret_key=$SK bucket=$BUCKET pid=$PID_S3S
name=nginx mode=plain endpoint=http://127.0.0.1:$P_NGINX bucket=$BUCKET pid=$NGINX_PIDS" \
  REPS=$REPS OUTDIR=$OUTDIR bash "$HERE/run-peers.sh" || die "run-peers.sh failed"

# ---------- Chuan's other issue-15 figures, on the same server ----------
# Peak RSS since the last round's big phase reset it: that whole round (and the cleanup).
awk '$1 == "VmHWM:" { printf "x\tchuan\tround_peak_rss_MiB\t%.1f\n", $2 / 1024 }' "/proc/$PID_CHUAN/status" \
  >> "$OUTDIR/results.tsv"
if [ "${EXTRAS:-1}" = 1 ] && { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" chuan "* ]]; }; then
  say "CompleteMultipartUpload of 1,000 parts (bench/complete.py, 5 rounds)"
  "$PYTHON" "$HERE/complete.py" "http://127.0.0.1:$P_CHUAN" "$AK" "$SK" 1000 5 > "$OUTDIR/complete.log" 2>&1 \
    || say "complete.py failed (see $OUTDIR/complete.log)"
  BIG_FILE=${BENCH_WORKDIR:-/tmp/s3bench-work}/big-${BIG_BYTES:-1073741824}.bin
  if [ -f "$BIG_FILE" ]; then
    say "instant upload of the stored big file (bench/instant.py, REPS=$REPS x 3)"
    ENDPOINT="http://127.0.0.1:$P_CHUAN" ACCESS_KEY=$AK SECRET_KEY=$SK BUCKET=$BUCKET FILE=$BIG_FILE \
      TARGET_NAME=chuan REPS=$((REPS * 3)) "$PYTHON" "$HERE/instant.py" > "$OUTDIR/instant.log" 2>&1 \
      || say "instant.py failed (see $OUTDIR/instant.log)"
  fi
  grep -h '^RESULT' "$OUTDIR/complete.log" "$OUTDIR/instant.log" 2>/dev/null \
    | awk '{ print "x\t" $2 "\t" $3 "\t" $4 }' >> "$OUTDIR/results.tsv"
fi

echo
say "Chuan against its peers (medians of $REPS rounds; $(nproc) cores, client and servers share them):"
"$PYTHON" "$HERE/ratios.py" "$OUTDIR/results.tsv" chuan | tee "$OUTDIR/ratios.txt"
say "results in $OUTDIR"
