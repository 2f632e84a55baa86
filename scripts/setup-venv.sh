#!/usr/bin/env bash
# Create/refresh the project-local virtualenv <repo>/.venv with the Python
# tooling of the S3 compatibility suite (tests/compat/requirements.txt).
#
# Idempotent: does nothing when .venv already holds exactly these
# requirements (stamp file with their hash). Installs the Debian packages
# it needs (curl, python3-venv, postgresql, Ceph's radosgw, Node.js and npm) with apt-get only when
# they are missing. Also installs tus-js-client (tests/compat/tusjs) with `npm ci`.
#
#   scripts/setup-venv.sh && .venv/bin/pytest tests/compat -q
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/tests/compat/requirements.txt"
STAMP="$VENV/.chuan-requirements.sha256"
PYTHON="${PYTHON:-python3}"

log() { printf 'setup-venv: %s\n' "$*" >&2; }

apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            log "need root (or sudo) to apt-get install: $*"
            exit 1
        fi
    fi
    log "apt-get install $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- system packages, only if missing ---------------------------------------
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
if command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
# PostgreSQL's server programs and psql: the PostgreSQL MetaStore's tests start a throwaway
# server of their own (crates/store/tests/postgres_contract.rs, tests/compat/pg_scratch.py).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
# Ceph's RADOS Gateway on a one-OSD cluster: the S3 store of the S3 BlobStore's tests
# (scripts/ceph-rgw.sh, which installs these itself too when run alone).
for pkg in ceph-mon ceph-osd radosgw ceph-common; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Debian's Chromium: the web console's end-to-end test (tests/console/e2e.mjs, playwright-core
# driving /usr/bin/chromium; tests/compat/test_console.py).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Node.js and npm: tus-js-client 4.3.1 (tests/compat/test_tus_js.py) needs Node.js >= 18.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || { log "missing ${missing[*]} and no apt-get"; exit 1; }
    apt_install "${missing[@]}"
fi

# --- older SDK versions, each kept apart from the venv's current one -----------
# ufile 3.2.7 (uploadhit/rename; tests/compat/ufile_helpers.py) and upyun 2.4.2 (legacy m0
# block upload; tests/compat/test_upyun_block.py) are imported from their own directories in
# isolation. --no-deps: their only dependency, requests, comes from the venv. Idempotent: a
# directory that already holds exactly that version is left alone.
# install_isolated NAME VERSION MARKER-FILE CHECK-PYTHON
install_isolated() {
    local name=$1 version=$2 marker=$3 check=$4
    local dir="$VENV/$name-$version"
    if [ -f "$dir/$marker" ] && [ -d "$dir/$name-$version.dist-info" ]; then
        return 0
    fi
    log "installing $name==$version into ${dir#"$ROOT"/}"
    rm -rf "$dir.tmp"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
        --target "$dir.tmp" "$name==$version"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    (cd "$ROOT" && PYTHONPATH= "$VENV/bin/python" -c "import sys; sys.path.insert(0, '$dir'); $check")
}

install_ufile_327() {
    install_isolated ufile 3.2.7 ufile/filemanager.py \
        "import ufile.filemanager as f; assert hasattr(f.FileManager, 'uploadhit')"
}

install_upyun_242() {
    install_isolated upyun 2.4.2 upyun/multi.py \
        "import upyun, upyun.multi; assert upyun.__version__ == '2.4.2', upyun.__version__; assert 'save_token' in open(upyun.multi.__file__).read()"
}

# --- Tencent COS SDKs, ported to Python 3 at setup time ------------------------
# qcloud_cos_v4 0.0.9 (COS JSON API v4, /files/v2) and qcloud-cos 3.3.6 (v3,
# /files/v1) are Python-2 only: their setup.py exits on Python 3, so pip cannot
# install them. pip still fetches the sdist (hash-pinned below), verifies and
# unpacks it, and only then fails at the metadata step; --no-clean keeps the
# unpacked tree under $TMPDIR/pip-download-*/. scripts/port-cos-sdk.py ports
# that tree (lib2to3 + literal str/bytes edits, wire format unchanged, signer
# self-checked) into .venv/cos-v4/qcloud_cos and .venv/cos-v3/qcloud_cos; both
# packages are named qcloud_cos, tests/compat/cos_helpers.py imports each under
# its own name. Idempotent: a port whose CHUAN-PORT marker names this version
# and this port script is left alone.
# install_cos_sdk DIST VERSION SHA256 DIR
install_cos_sdk() {
    local dist=$1 version=$2 sha=$3 dir=$4
    local port="$ROOT/scripts/port-cos-sdk.py" want tmp src
    want="$("$VENV/bin/python" "$port" --name "$dist" --version "$version" --print-marker)"
    if [ -f "$dir/qcloud_cos/CHUAN-PORT" ] && [ "$(cat "$dir/qcloud_cos/CHUAN-PORT")" = "$want" ]; then
        return 0
    fi
    log "porting $dist==$version to Python 3 into ${dir#"$ROOT"/}"
    tmp="$(mktemp -d)"
    printf '%s==%s --hash=sha256:%s\n' "$dist" "$version" "$sha" >"$tmp/req.txt"
    # expected to fail at "preparing metadata" (setup.py refuses Python 3)
    TMPDIR="$tmp" "$VENV/bin/python" -m pip download --disable-pip-version-check --no-deps \
        --no-build-isolation --no-clean -d "$tmp/dl" -r "$tmp/req.txt" >"$tmp/pip.log" 2>&1 || true
    src="$(find "$tmp" -mindepth 3 -maxdepth 3 -path "$tmp/pip-download-*/*/PKG-INFO" -printf '%h\n' | head -n1)"
    if [ -z "$src" ] || [ ! -f "$src/qcloud_cos/cos_auth.py" ]; then
        log "pip did not leave an unpacked $dist==$version sdist in $tmp:"
        cat "$tmp/pip.log" >&2
        rm -rf "$tmp"
        exit 1
    fi
    if ! "$VENV/bin/python" "$port" "$src" "$dir" --name "$dist" --version "$version"; then
        rm -rf "$tmp"
        exit 1
    fi
    rm -rf "$tmp"
    (cd "$ROOT" && PYTHONPATH= "$VENV/bin/python" -c "import sys; sys.path.insert(0, '$dir'); import qcloud_cos, qcloud_cos.cos_op; assert qcloud_cos.__file__.startswith('$dir/'), qcloud_cos.__file__")
}

install_cos_sdks() {
    install_cos_sdk qcloud_cos_v4 0.0.9 28988978041f7297f31b84f58479f22515cc2d81bf4b0b12180e31f73b003e04 "$VENV/cos-v4"
    install_cos_sdk qcloud-cos 3.3.6 1e564f530cb04fb6c9b9593d9e3a053ca422558d2c59f42271b53ac1078d9218 "$VENV/cos-v3"
}

# --- tus-js-client 4.3.1, from the npm registry ------------------------------------
# `npm ci` installs exactly tests/compat/tusjs/package-lock.json (integrity-pinned) into
# tests/compat/tusjs/node_modules (git-ignored). Idempotent: skipped while node_modules
# holds what this package.json + lock file + Node.js version describe (stamp with their hash).
install_tusjs() {
    local dir="$ROOT/tests/compat/tusjs" want stamp
    stamp="$dir/node_modules/.chuan-npm-ci.sha256"
    want="$( { cat "$dir/package.json" "$dir/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$dir/node_modules/tus-js-client/package.json" ]; then
        return 0
    fi
    log "npm ci in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    node -e "const v = require('$dir/node_modules/tus-js-client/package.json').version; if (v !== '4.3.1') { console.error('tus-js-client ' + v); process.exit(1); }"
    printf '%s\n' "$want" >"$stamp"
}

# --- web console --------------------------------------------------------------
# console/dist (npm ci + vite build) and tests/console/node_modules (playwright-core), each
# only when missing or made from other sources/locks (tests/console/prepare.sh keeps stamps).
setup_console() {
    "$ROOT/tests/console/prepare.sh"
}

# --- venv ---------------------------------------------------------------------
want="$( { cat "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1 \
    && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    install_ufile_327
    install_upyun_242
    install_cos_sdks
    install_tusjs
    setup_console
    log "$VENV is up to date"
    exit 0
fi

pyver() { "$1" -c 'import sys; print(sys.version)' 2>/dev/null; }
if [ ! -x "$VENV/bin/python" ] || [ "$(pyver "$VENV/bin/python")" != "$(pyver "$PYTHON")" ]; then
    log "creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

log "installing ${REQ#"$ROOT"/}"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
"$VENV/bin/python" -c 'import boto3, botocore, awscrt, pytest, requests, tusclient'
"$VENV/bin/aws" --version >/dev/null

install_ufile_327
install_upyun_242
install_cos_sdks
install_tusjs
setup_console

rm -f "$STAMP"
printf '%s\n' "$want" >"$STAMP"
log "ready: $VENV ($("$VENV/bin/aws" --version 2>&1))"
