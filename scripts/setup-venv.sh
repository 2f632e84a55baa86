#!/usr/bin/env bash
# Create/refresh the project-local virtualenv <repo>/.venv with the Python
# tooling of the S3 compatibility suite (tests/compat/requirements.txt).
#
# Idempotent: does nothing when .venv already holds exactly these
# requirements (stamp file with their hash). Installs the Debian packages
# it needs (curl, python3-venv) with apt-get only when they are missing.
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
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || { log "missing ${missing[*]} and no apt-get"; exit 1; }
    apt_install "${missing[@]}"
fi

# --- ufile 3.2.7 (uploadhit/rename), kept apart from the venv's 3.2.11 ---------
# tests/compat/ufile_helpers.py imports it from this directory in a separate
# interpreter (sys.path[0] = UFILE327). --no-deps: its only dependency,
# requests, comes from the venv. Idempotent: skipped when the directory
# already holds exactly ufile 3.2.7.
UFILE327="$VENV/ufile-3.2.7"
install_ufile_327() {
    if [ -f "$UFILE327/ufile/filemanager.py" ] && [ -d "$UFILE327/ufile-3.2.7.dist-info" ]; then
        return 0
    fi
    log "installing ufile==3.2.7 into ${UFILE327#"$ROOT"/}"
    rm -rf "$UFILE327.tmp"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
        --target "$UFILE327.tmp" ufile==3.2.7
    rm -rf "$UFILE327"
    mv "$UFILE327.tmp" "$UFILE327"
    (cd "$ROOT" && PYTHONPATH= "$VENV/bin/python" -c \
        "import sys; sys.path.insert(0, '$UFILE327'); import ufile.filemanager as f; assert hasattr(f.FileManager, 'uploadhit')")
}

# --- upyun 2.4.2 (legacy m0 form-API block upload), kept apart from 2.5.5 ------
# tests/compat/test_upyun_block.py imports it from this directory in
# isolation, under the package name upyun242 (importlib; the venv's upyun
# stays 2.5.5); the check below uses a bare interpreter. --no-deps: its only
# dependency, requests, comes from the venv. Idempotent: skipped when the
# directory already holds exactly upyun 2.4.2.
UPYUN242="$VENV/upyun-2.4.2"
install_upyun_242() {
    if [ -f "$UPYUN242/upyun/multi.py" ] && [ -d "$UPYUN242/upyun-2.4.2.dist-info" ]; then
        return 0
    fi
    log "installing upyun==2.4.2 into ${UPYUN242#"$ROOT"/}"
    rm -rf "$UPYUN242.tmp"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
        --target "$UPYUN242.tmp" upyun==2.4.2
    rm -rf "$UPYUN242"
    mv "$UPYUN242.tmp" "$UPYUN242"
    (cd "$ROOT" && PYTHONPATH= "$VENV/bin/python" -c \
        "import sys; sys.path.insert(0, '$UPYUN242'); import upyun, upyun.multi; assert upyun.__version__ == '2.4.2', upyun.__version__; assert 'save_token' in open(upyun.multi.__file__).read()")
}

# --- venv ---------------------------------------------------------------------
want="$( { cat "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1 \
    && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    install_ufile_327
    install_upyun_242
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
"$VENV/bin/python" -c 'import boto3, botocore, awscrt, pytest, requests'
"$VENV/bin/aws" --version >/dev/null

install_ufile_327
install_upyun_242

rm -f "$STAMP"
printf '%s\n' "$want" >"$STAMP"
log "ready: $VENV ($("$VENV/bin/aws" --version 2>&1))"
