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
