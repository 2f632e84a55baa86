#!/usr/bin/env bash
# ceph-rgw.sh — a real S3-compatible object store on loopback, for tests:
# Ceph's RADOS Gateway (radosgw) from Debian's packages, over a one-monitor,
# one-OSD Ceph cluster that lives entirely under one directory.
#
#   scripts/ceph-rgw.sh start DIR   # install if needed, bootstrap or restart, print S3_* lines
#   scripts/ceph-rgw.sh stop DIR    # stop the daemons (data is kept; `start DIR` resumes)
#
# `start` prints exactly five lines on stdout (everything else goes to stderr):
#   S3_ENDPOINT=http://127.0.0.1:PORT
#   S3_ACCESS_KEY=...
#   S3_SECRET_KEY=...
#   S3_REGION=us-east-1
#   S3_BUCKET=chuan-blobs       (created by `start`, owned by that user)
# so a caller can do `eval "$(scripts/ceph-rgw.sh start /tmp/rgw)"`.
#
# Why radosgw: it is a widely deployed, independent implementation of the S3 API
# (SigV4, multipart, ranged GET, ListObjectsV2, ...) that Debian packages, so it can
# be installed with apt from the package mirror alone — a reference to compare Chuan
# against. Debian bookworm ships Ceph 16.2.15 (pacific).
#
# Choices:
# - No systemd, nothing in /etc/ceph or /var/lib/ceph: every command gets
#   `-c DIR/ceph.conf`, and the daemons daemonize themselves with pid files in DIR/run.
#   They run as root (this sandbox runs as root; Ceph accepts it without --setuser).
# - No ceph-mgr: it only collects statistics and runs modules (dashboard, pg
#   autoscaler); mon + OSD + radosgw serve S3 without it, so it would only be one more
#   daemon to install, start and feed. `ceph -s` therefore shows no pool/PG/usage
#   statistics and, after 2 minutes, HEALTH_WARN "no active mgr": harmless.
# - Object store: BlueStore (durable, Ceph's default) on a 20 GiB *sparse* file
#   DIR/osd/0/block, with a 64 MiB cache and autotuning off, so the OSD stays small.
#   Data survives stop/start. Disk use grows only with what is written.
# - Replication: pool size 1 / min size 1 on one OSD; 8 PGs per pool.
# - Auth: cephx is disabled (auth_*_required = none). Everything binds to 127.0.0.1
#   only, the cluster is a throwaway test fixture, and it removes all keyring plumbing
#   (no keys to create, distribute or leak). S3 requests are still authenticated by
#   radosgw with the S3 user's keys (SigV4), which is what the tests exercise.
#   (radosgw insists on "secure" mon connections by default, which auth none cannot
#   give: hence `ms mon client mode = crc` in its section.)
# - radosgw's beast frontend with tcp_nodelay=1: without it a response written in two
#   pieces on a reused connection waits for the client's delayed ACK (measured: a 32-byte
#   ranged GET through a keep-alive client took 44 ms instead of 3 ms).
# - Ports: the monitor (msgr2 only) and radosgw (beast, 127.0.0.1:PORT) get free
#   loopback ports picked at bootstrap and kept in DIR/ceph.conf; the OSD binds to
#   Ceph's default range 6800-7300 on 127.0.0.1. Several DIRs can run side by side.
# - S3 user: uid "chuan" with random keys generated at bootstrap, kept in DIR/s3.env.
#   The region is us-east-1 (radosgw does not check the SigV4 region; with
#   us-east-1 clients send no LocationConstraint on CreateBucket). Bucket names must
#   be 3-63 characters, as on AWS.
# - The monitor commits map changes every 0.1 s instead of every 1 s: radosgw-admin's
#   pool creations make bootstrap 17 s with the default, 6 s with this.
# - `stop` sends SIGTERM and waits for each daemon to exit (SIGKILL after 30 s).
#   The OSD's default fast shutdown skips a clean unmount; BlueStore replays its
#   RocksDB log on the next start, so acknowledged writes are kept.
#
# What lives where (all under DIR):
#   ceph.conf  s3.env  .bootstrapped  .lock   config, S3 credentials, markers
#   mon/a/     monitor store (RocksDB)        osd/0/     OSD metadata + block (sparse file)
#   run/       pid files, admin sockets       log/       daemon logs (mon.a, osd.0, client.rgw)
#
# Measured on the 2-core CI box: first start 28 s (22 s of it apt-get installing 65 MB
# of packages, 6 s bootstrap); restart after stop 2-3 s (3.5 s after a SIGKILL);
# start on a running DIR 0.4 s; stop 0.6 s. Resident memory: mon ~32 MiB,
# OSD ~75 MiB, radosgw ~80-95 MiB (~190 MiB total). Disk: ~40 MB mon store, the
# block file's real size follows the data written.
set -euo pipefail

exec 3>&2   # logs go to the original stderr even where a command's stderr is silenced
log() { echo "[ceph-rgw] $((SECONDS))s: $*" >&3; }
die() { log "error: $*"; exit 1; }

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
CMD=$1
DIR=$(realpath -m "$2")
# ceph.conf values cannot hold whitespace, and admin sockets (DIR/run/*.asok) must fit
# in a unix socket path (107 bytes).
[[ $DIR =~ [[:space:]] ]] && die "DIR must not contain whitespace: $DIR"
((${#DIR} <= 80)) || die "DIR is too long for Ceph's admin sockets (max 80 chars): $DIR"
CONF=$DIR/ceph.conf
PACKAGES=(ceph-mon ceph-osd radosgw ceph-common curl)
S3_REGION=us-east-1
S3_UID=chuan
DAEMONS=(client.rgw osd.0 mon.a)   # stop order; start order is the reverse

ceph_() { timeout 60 ceph -c "$CONF" "$@"; }

# ---------------------------------------------------------------- install
ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have no package lists yet.
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

# ---------------------------------------------------------------- daemons
pidfile() { echo "$DIR/run/$1.pid"; }

# Prints the pid of daemon $1 if it runs from this DIR (guards against pid reuse).
daemon_pid() {
  local f pid
  f=$(pidfile "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

start_daemon() {
  local name=$1
  if daemon_pid "$name" >/dev/null; then log "$name already running"; return 0; fi
  log "starting $name"
  # Ceph daemons fork themselves (ceph-mon and ceph-osd return once the child has
  # initialized or failed; radosgw returns at once). The child writes the pid file,
  # sends its stdio to /dev/null and logs to DIR/log.
  case $name in
    mon.a)      ceph-mon -c "$CONF" -i a ;;
    osd.0)      ceph-osd -c "$CONF" -i 0 ;;
    client.rgw) radosgw -c "$CONF" -n client.rgw ;;
  esac 3>&- 9>&- </dev/null >&2   # keep the lock and the log fd out of the daemons
  wait_for 30 "$name to write its pid file" daemon_pid "$name"
}

# True while $1 runs (a zombie waiting for init to reap it counts as gone).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

stop_daemons() {
  local name pid i
  for name in "${DAEMONS[@]}"; do
    pid=$(daemon_pid "$name") || { rm -f "$(pidfile "$name")"; continue; }
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "$name did not exit in 30 s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$(pidfile "$name")"
  done
}

# Wait (up to $1 seconds) until command "$2..." succeeds.
wait_for() {
  local secs=$1 what=$2 deadline; shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what (logs: $DIR/log)"
    sleep 0.5
  done
}

osd_up() { ceph_ osd dump 2>/dev/null | grep -q '^osd\.0 up  *in '; }

# shellcheck disable=SC1091,SC2153  # DIR/s3.env sets RGW_PORT and the S3_* values
s3_env_lines() {
  source "$DIR/s3.env"
  printf 'S3_ENDPOINT=http://127.0.0.1:%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\nS3_REGION=%s\nS3_BUCKET=%s\n' \
    "$RGW_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_REGION" "$BUCKET"
}

# A SigV4-signed ListBuckets that must answer 200.
s3_ok() {
  # shellcheck disable=SC1091
  source "$DIR/s3.env"
  # (curl 7.88 does not add x-amz-content-sha256 itself; radosgw requires it)
  curl -fsS -o /dev/null --max-time 5 --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d' ' -f1)" \
    "http://127.0.0.1:$RGW_PORT/"
}

# The bucket the S3 user's clients (Chuan's S3 blob store) use; creating it again is a no-op.
BUCKET=chuan-blobs
ensure_bucket() {
  # shellcheck disable=SC1091
  source "$DIR/s3.env"
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X PUT --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d' ' -f1)" \
    "http://127.0.0.1:$RGW_PORT/$BUCKET")
  [[ $code == 200 || $code == 409 ]] || die "creating bucket $BUCKET: HTTP $code"
}

# radosgw daemonizes before it has connected to the cluster: fail fast if it died.
rgw_ready() {
  daemon_pid client.rgw >/dev/null || die "radosgw exited; see $DIR/log/client.rgw.log"
  s3_ok
}

# Run "$2..." with its (noisy) output in DIR/log/$1.log, shown only if it fails.
run_logged() {
  local name=$1; shift
  "$@" >"$DIR/log/$name.log" 2>&1 || { cat "$DIR/log/$name.log" >&2; die "$* failed"; }
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- bootstrap
write_conf() {
  local fsid=$1 mon_port=$2 rgw_port=$3
  cat >"$CONF" <<EOF
# Generated by scripts/ceph-rgw.sh: a one-mon, one-OSD test cluster, loopback only.
[global]
fsid = $fsid
mon initial members = a
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false

# loopback-only throwaway cluster: no cephx (see the script's header)
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false

# everything under DIR
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
mon data = $DIR/mon/\$id
osd data = $DIR/osd/\$id
keyring = $DIR/\$name.keyring

# one OSD, no replication
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
client mount timeout = 60

[mon]
# commit map changes (pool creations during bootstrap) sooner than the 1 s default
paxos propose interval = 0.1
mon memory target = 268435456
mon osd cache size min = 33554432

[osd]
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 21474836480
bluestore cache autotune = false
bluestore cache size = 67108864
osd op num shards = 1
osd op num threads per shard = 2

[client.rgw]
# radosgw defaults to "secure" mon connections, which auth "none" cannot provide
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw thread pool size = 64
rgw enable usage log = false
rgw gc obj min wait = 60
rgw gc processor period = 60
EOF
}

bootstrap() {
  local fsid mon_port rgw_port osd_uuid key secret
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port)
  rgw_port=$(free_port)
  while [[ $rgw_port == "$mon_port" ]]; do rgw_port=$(free_port); done
  log "bootstrapping a new cluster in $DIR (mon port $mon_port, rgw port $rgw_port)"
  mkdir -p "$DIR"/{run,log,crash,mon/a,osd/0}
  write_conf "$fsid" "$mon_port" "$rgw_port"

  # monitor
  monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
    "$DIR/monmap" >&2
  run_logged mkfs-mon ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap"
  start_daemon mon.a
  wait_for 60 "the monitor" ceph_ mon stat

  # OSD (BlueStore creates its sparse block file on --mkfs)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph_ osd new "$osd_uuid" 0 >/dev/null
  run_logged mkfs-osd ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid"
  start_daemon osd.0
  wait_for 120 "osd.0 up" osd_up

  # S3 user (radosgw-admin also creates the default realm/zone and its pools)
  log "creating the S3 user '$S3_UID' (and radosgw's pools)"
  key=$(/usr/bin/python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_uppercase+string.digits) for _ in range(20)))')
  secret=$(/usr/bin/python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_letters+string.digits) for _ in range(40)))')
  timeout 300 radosgw-admin -c "$CONF" user create --uid "$S3_UID" --display-name "Chuan tests" \
    --access-key "$key" --secret-key "$secret" >/dev/null
  cat >"$DIR/s3.env" <<EOF
RGW_PORT=$rgw_port
S3_ACCESS_KEY=$key
S3_SECRET_KEY=$secret
S3_REGION=$S3_REGION
EOF
  start_daemon client.rgw
  touch "$DIR/.bootstrapped"
}

cmd_start() {
  if [[ -d $DIR && ! -e $CONF ]] && find "$DIR" -mindepth 1 -maxdepth 1 ! -name .lock | grep -q .; then
    die "$DIR is not empty and is not a ceph-rgw.sh directory"
  fi
  ensure_packages
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9   # one start/stop at a time per DIR
  if [[ ! -e $DIR/.bootstrapped ]]; then
    if [[ -e $CONF ]]; then
      log "$DIR holds an unfinished bootstrap: stopping its daemons and starting over"
      stop_daemons
      rm -rf "$CONF" "$DIR"/{monmap,s3.env,run,log,crash,mon,osd}
    fi
    bootstrap
  else
    start_daemon mon.a
    wait_for 60 "the monitor" ceph_ mon stat
    start_daemon osd.0
    wait_for 120 "osd.0 up" osd_up
    start_daemon client.rgw
  fi
  wait_for 120 "radosgw to answer S3 requests" rgw_ready
  ensure_bucket
  log "ready"
  s3_env_lines
}

cmd_stop() {
  [[ -e $CONF ]] || { log "$DIR is not a ceph-rgw.sh directory; nothing to stop"; return 0; }
  exec 9>"$DIR/.lock"
  flock 9
  stop_daemons
  log "stopped"
}

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) usage ;;
esac
