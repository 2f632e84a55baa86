#!/usr/bin/env bash
# bench/cluster.sh - the scale-out deployment measured next to one node and to its own S3
# backend, side by side in one run (issue 16; bench/README.md).
#
# Starts, each on free loopback ports and fresh data under one work dir:
#   embedded   target/release/chuan serve with the embedded defaults (SQLite + local blobs)
#   one-node   nginx (load balancer) -> node A of scripts/cluster.sh (PostgreSQL + RADOS Gateway)
#   two-nodes  nginx (load balancer, round robin) -> nodes A and B of the same cluster
#   rgw        the cluster's RADOS Gateway itself, straight: the backend's own PUT/GET rate
# then runs bench/run-peers.sh over the four (REPS interleaved rounds, each with the machine's
# limits measured in the same round) and prints medians and the ratios two-nodes / one-node,
# one-node / embedded and each cluster figure / rgw (bench/cluster_ratios.py).
# Both cluster targets go through the same nginx, so the ratio between them is the nodes'.
# Small objects (4 KiB) are inline in PostgreSQL, so rgw is the limit for the big phase only.
# Stops everything it started and deletes the work dir on exit.
#
# Knobs (env): REPS=3  BIG_BYTES=268435456 (the RADOS Gateway's OSD is a 20 GiB sparse file)
#   OUTDIR=/tmp/chuan-cluster-bench/<utc>  CHUAN_BIN=target/release/chuan  KEEP_WORKDIR=0
#   ONLY="one-node two-nodes"  and everything run-peers.sh and s3bench.sh read.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}
CHUAN_BIN=${CHUAN_BIN:-$REPO/target/release/chuan}
OUTDIR=${OUTDIR:-/tmp/chuan-cluster-bench/$(date -u +%Y%m%dT%H%M%SZ)}
export BIG_BYTES=${BIG_BYTES:-268435456}
# A content-addressed store finds the last round's big blob (still in its GC grace) and
# skips the backend write: every run gets new bytes.
export BIG_FRESH=1
AK=benchak
SK=benchsecretkey0123456789
BUCKET=bench

say() { echo "cluster.sh: $*"; }
die() { echo "cluster.sh: error: $*" >&2; exit 1; }
case "${1:-}" in
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac
[ -x "$CHUAN_BIN" ] || die "$CHUAN_BIN not found: run 'cargo build --release' first"

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_tools
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
if ! "$PYTHON" -c 'import boto3' 2>/dev/null; then
  (cd "$REPO" && scripts/setup-venv.sh) || die "no python with boto3 (scripts/setup-venv.sh failed)"
fi
export PYTHON

WORKDIR=$(mktemp -d /tmp/chuan-cluster-bench.XXXXXX) || die "mktemp failed"
# PostgreSQL runs as its own user: it must be able to pass through (not list) the work dir.
chmod 711 "$WORKDIR"
mkdir -p "$OUTDIR"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ -f "$WORKDIR/nginx.pid" ] && kill -TERM "$(cat "$WORKDIR/nginx.pid")" 2>/dev/null
  [ -d "$WORKDIR/cluster" ] && "$REPO/scripts/cluster.sh" stop "$WORKDIR/cluster" 2>/dev/null
  for p in a b; do cp "$WORKDIR/cluster/node-$p/log" "$OUTDIR/node-$p.log" 2>/dev/null; done
  sleep 0.5
  if [ "$KEEP_WORKDIR" = 1 ]; then say "work dir kept: $WORKDIR"; else rm -rf -- "$WORKDIR"; fi
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

# The per-tenant request rate and upload slots are off, as in peers.sh: one tenant is all a
# benchmark has. The cluster's nodes inherit these.
export CHUAN_TENANT_REQUESTS_PER_SEC=0 CHUAN_TENANT_UPLOADS=0 CHUAN_LOG=warn

say "starting the cluster (PostgreSQL, RADOS Gateway, two nodes; the first time installs them)"
lines=$("$REPO/scripts/cluster.sh" start "$WORKDIR/cluster" 2>"$OUTDIR/cluster-start.log") \
  || { tail -20 "$OUTDIR/cluster-start.log" >&2; die "scripts/cluster.sh start failed"; }
eval "$lines"
lines=$("$REPO/scripts/ceph-rgw.sh" start "$WORKDIR/cluster/rgw" 2>>"$OUTDIR/cluster-start.log") \
  || die "scripts/ceph-rgw.sh start failed"
eval "$lines"
PID_A=$(cat "$WORKDIR/cluster/node-a/pid"); PID_B=$(cat "$WORKDIR/cluster/node-b/pid")
PID_RGW=$(cat "$WORKDIR/cluster/rgw/run/client.rgw.pid")

P_EMB=$(bench_port); P_ONE=$(bench_port); P_TWO=$(bench_port)
mkdir -p "$WORKDIR/embedded"
CHUAN_ACCESS_KEY=$AK CHUAN_SECRET_KEY=$SK \
  "$CHUAN_BIN" serve --data "$WORKDIR/embedded" --listen "127.0.0.1:$P_EMB" > "$OUTDIR/embedded.log" 2>&1 &
PID_EMB=$!; PIDS+=("$PID_EMB")

# The load balancer: streams both ways (no request or response buffering), keeps connections
# to the nodes open, and passes Host through so signatures made for it hold.
cat > "$WORKDIR/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $WORKDIR/nginx.pid;
error_log $OUTDIR/nginx.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_temp_path $WORKDIR/nginx-tmp;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host \$http_host;
  proxy_request_buffering off;
  proxy_buffering off;
  proxy_read_timeout 300s;
  proxy_send_timeout 300s;
  upstream one { server ${NODE_A#http://}; keepalive 64; }
  upstream two { server ${NODE_A#http://}; server ${NODE_B#http://}; keepalive 64; }
  server { listen 127.0.0.1:$P_ONE; location / { proxy_pass http://one; } }
  server { listen 127.0.0.1:$P_TWO; location / { proxy_pass http://two; } }
}
CONF
mkdir -p "$WORKDIR/nginx-tmp"
/usr/sbin/nginx -c "$WORKDIR/nginx.conf" > "$OUTDIR/nginx.log" 2>&1 &
PID_NGINX=$!; PIDS+=("$PID_NGINX")
bench_wait_port embedded "$P_EMB" "$PID_EMB" "$OUTDIR/embedded.log"
bench_wait_port nginx "$P_TWO" "$PID_NGINX" "$OUTDIR/nginx.log"

# A tenant of the cluster, its bucket, the embedded node's bucket and one straight on RGW.
"$PYTHON" - "$NODE_A" "$ROOT_AK" "$ROOT_SK" "$P_EMB" "$AK" "$SK" "$BUCKET" \
  "$S3_ENDPOINT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_REGION" > "$WORKDIR/tenant.env" <<'PY' \
  || die "creating the tenant and the buckets failed"
import sys, boto3, requests
node_a, root_ak, root_sk, p_emb, ak, sk, bucket, rgw, rgw_ak, rgw_sk, region = sys.argv[1:]
r = requests.post(f"{node_a}/_chuan/admin/tenants", params={"name": "bench"}, auth=(root_ak, root_sk), timeout=30)
r.raise_for_status()
t = r.json()
def s3(endpoint, a, s, reg="us-east-1"):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=a, aws_secret_access_key=s, region_name=reg)
s3(node_a, t["access_key"], t["secret_key"]).create_bucket(Bucket=bucket)
s3(f"http://127.0.0.1:{p_emb}", ak, sk).create_bucket(Bucket=bucket)
s3(rgw, rgw_ak, rgw_sk, region).create_bucket(Bucket=bucket + "-direct")
print(f"T_AK={t['access_key']}\nT_SK={t['secret_key']}")
PY
# shellcheck disable=SC1091
. "$WORKDIR/tenant.env"
say "embedded :$P_EMB, one-node :$P_ONE -> $NODE_A, two-nodes :$P_TWO -> $NODE_A $NODE_B, rgw $S3_ENDPOINT"

TARGETS="name=embedded mode=s3 endpoint=http://127.0.0.1:$P_EMB access_key=$AK secret_key=$SK bucket=$BUCKET pid=$PID_EMB
name=one-node mode=s3 endpoint=http://127.0.0.1:$P_ONE access_key=$T_AK secret_key=$T_SK bucket=$BUCKET pid=$PID_A
name=two-nodes mode=s3 endpoint=http://127.0.0.1:$P_TWO access_key=$T_AK secret_key=$T_SK bucket=$BUCKET pid=$PID_A,$PID_B
name=rgw mode=s3 endpoint=$S3_ENDPOINT access_key=$S3_ACCESS_KEY secret_key=$S3_SECRET_KEY bucket=$BUCKET-direct region=$S3_REGION pid=$PID_RGW" \
  REPS=$REPS OUTDIR=$OUTDIR bash "$HERE/run-peers.sh" || die "run-peers.sh failed"

echo
say "the cluster next to one node and to its backend (medians of $REPS rounds; big object $BIG_BYTES bytes;"
say "$(nproc) cores shared by client, nginx, nodes, PostgreSQL and Ceph):"

"$PYTHON" "$HERE/cluster_ratios.py" "$OUTDIR/results.tsv" | tee "$OUTDIR/ratios.txt"
say "results in $OUTDIR"
