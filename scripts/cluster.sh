#!/usr/bin/env bash
# cluster.sh — two Chuan nodes on loopback sharing one PostgreSQL database (metadata) and one
# S3 bucket (blobs), as a scale-out deployment runs them behind a load balancer.
#
#   scripts/cluster.sh start [DIR]   # install what is missing, start everything, print 4 lines
#   scripts/cluster.sh stop [DIR]    # stop everything it started (data is kept in DIR)
#
# DIR defaults to $CHUAN_CLUSTER_DIR, else /tmp/chuan-cluster. `start` prints exactly:
#   NODE_A=http://127.0.0.1:PORT
#   NODE_B=http://127.0.0.1:PORT
#   ROOT_AK=...
#   ROOT_SK=...
# (everything else on stderr), so `eval "$(scripts/cluster.sh start)"` sets them. `start` on
# a running cluster prints the same lines; on a stopped one it restarts it on its data.
#
# What runs, all under DIR:
# - PostgreSQL (Debian's `postgresql`): DIR/pg, a loopback port, database `chuan`, trust
#   authentication on 127.0.0.1 only (a test fixture; production gives a password in the URL).
# - Ceph's RADOS Gateway on a one-OSD cluster (scripts/ceph-rgw.sh, Debian's `radosgw`):
#   DIR/rgw; chosen as the S3 backend because it is a widely deployed S3 implementation
#   Debian packages (MinIO and SeaWeedFS are not in Debian; s3s-fs does not fsync).
# - Two `chuan serve` (CHUAN_BIN, default target/release/chuan, built if missing): DIR/node-a
#   and DIR/node-b hold each node's temporaries, lock and log; both take the same --meta and
#   --blobs and the same root key pair (ROOT_AK/ROOT_SK from the environment, else generated
#   once and kept in DIR/root.env).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD=${1:-}
DIR=${2:-${CHUAN_CLUSTER_DIR:-/tmp/chuan-cluster}}
CHUAN_BIN=${CHUAN_BIN:-$ROOT/target/release/chuan}

log() { echo "[cluster] $*" >&2; }
die() { log "error: $*"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_bin() {
  local d
  d=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1 || true)
  [[ -n $d ]] || die "PostgreSQL's server programs are missing: apt-get install postgresql (scripts/setup-venv.sh does)"
  dirname "$d"
}

alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat") != Z ]]; }

start_pg() {
  local bin; bin=$(pg_bin)
  if [[ ! -e $DIR/pg/PG_VERSION ]]; then
    mkdir -p "$DIR/pg"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$DIR/pg"
    as_pg "$bin/initdb" -D "$DIR/pg" -A trust -U chuan -E UTF8 --locale=C.UTF-8 >"$DIR/pg-init.log" 2>&1 \
      || { cat "$DIR/pg-init.log" >&2; die "initdb failed"; }
    free_port >"$DIR/pg.port"
  fi
  PG_PORT=$(cat "$DIR/pg.port")
  if ! as_pg "$bin/pg_ctl" -D "$DIR/pg" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg "$bin/pg_ctl" -D "$DIR/pg" -l "$DIR/pg/server.log" -w -t 60 start \
      -o "-p $PG_PORT -k $DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null 9>&-
  fi
  psql -h 127.0.0.1 -p "$PG_PORT" -U chuan -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'chuan'" \
    | grep -q 1 || psql -h 127.0.0.1 -p "$PG_PORT" -U chuan -d postgres -qc "CREATE DATABASE chuan"
  META="postgres://chuan@127.0.0.1:$PG_PORT/chuan"
}

start_rgw() {
  local lines
  lines=$("$ROOT/scripts/ceph-rgw.sh" start "$DIR/rgw" 9>&-)
  eval "$lines"
  BLOBS="s3://$S3_BUCKET?endpoint=$S3_ENDPOINT&region=$S3_REGION"
}

start_node() {
  local name=$1 port pidfile="$DIR/node-$1/pid"
  mkdir -p "$DIR/node-$name"
  if alive "$(cat "$pidfile" 2>/dev/null || true)"; then
    port=$(cat "$DIR/node-$name/port")
  else
    [[ -e $DIR/node-$name/port ]] || free_port >"$DIR/node-$name/port"
    port=$(cat "$DIR/node-$name/port")
    log "starting node $name on 127.0.0.1:$port"
    CHUAN_ACCESS_KEY=$ROOT_AK CHUAN_SECRET_KEY=$ROOT_SK CHUAN_META=$META CHUAN_BLOBS=$BLOBS \
      AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY \
      setsid "$CHUAN_BIN" serve --data "$DIR/node-$name" --listen "127.0.0.1:$port" \
      >>"$DIR/node-$name/log" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
  fi
  for _ in $(seq 200); do
    if curl -fs -o /dev/null "http://127.0.0.1:$port/_chuan/health"; then
      echo "http://127.0.0.1:$port"
      return
    fi
    alive "$(cat "$pidfile")" || { tail -20 "$DIR/node-$name/log" >&2; die "node $name exited"; }
    sleep 0.1
  done
  die "node $name did not answer on 127.0.0.1:$port"
}

# One start/stop at a time per DIR. Every daemon is started with fd 9 closed (`9>&-`), so
# the lock goes with this script, not with what it started.
cmd_start() {
  if [[ -d $DIR && ! -e $DIR/.lock ]] && find "$DIR" -mindepth 1 -maxdepth 1 | grep -q .; then
    die "$DIR is not empty and is not a cluster.sh directory"
  fi
  mkdir -p "$DIR"
  # PostgreSQL runs as its own user: it must be able to pass through DIR (not list it).
  chmod 711 "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
  [[ -x $CHUAN_BIN ]] || (cd "$ROOT" && cargo build --release --locked >&2)
  umask 077   # root.env holds the root secret
  if [[ -n ${ROOT_AK:-} && -n ${ROOT_SK:-} ]]; then
    printf 'ROOT_AK=%s\nROOT_SK=%s\n' "$ROOT_AK" "$ROOT_SK" >"$DIR/root.env"
  elif [[ ! -e $DIR/root.env ]]; then
    printf 'ROOT_AK=%s\nROOT_SK=%s\n' "CR$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)" \
      "$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n')" >"$DIR/root.env"
  fi
  # shellcheck disable=SC1091
  source "$DIR/root.env"
  start_pg
  start_rgw
  local a b
  a=$(start_node a)
  b=$(start_node b)
  printf 'NODE_A=%s\nNODE_B=%s\nROOT_AK=%s\nROOT_SK=%s\n' "$a" "$b" "$ROOT_AK" "$ROOT_SK"
}

stop_pid() {
  local pidfile=$1 pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
  [[ -d $DIR ]] || { log "$DIR does not exist: nothing to stop"; return 0; }
  exec 9>"$DIR/.lock"
  flock 9
  for n in a b; do stop_pid "$DIR/node-$n/pid"; done
  "$ROOT/scripts/ceph-rgw.sh" stop "$DIR/rgw" >/dev/null 2>&1 || true
  if [[ -e $DIR/pg/PG_VERSION ]]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
  fi
  log "stopped (data kept in $DIR)"
}

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
