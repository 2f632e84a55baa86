#!/usr/bin/env bash
# Runs every test of the project: Rust unit and integration tests, then the protocol
# compatibility suite (real aws CLI and boto3 against a live `chuan serve`).
# Installs what it needs (project-local venv, Debian packages) idempotently.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

echo "== setup: python venv with the real client SDKs"
scripts/setup-venv.sh

echo "== build: release binary"
cargo build --release --locked

echo "== rust tests"
cargo test --release --locked --workspace

echo "== compatibility suite (aws CLI, boto3, curl against chuan serve), twice at once, then the cluster:"
echo "   on the embedded stores (SQLite + files; output below as it runs) and on the scale-out"
echo "   stores, metadata in PostgreSQL and blobs in S3 (throwaway servers: tests/compat/pg_scratch.py,"
echo "   tests/compat/s3_scratch.py; output printed when it ends). The passes share nothing but the"
echo "   machine, and each waits on loopback and subprocesses most of its time (one pass alone uses"
echo "   ~0.8 of a core): side by side they took 9m38s on 2 cores, one after the other ~16 min."
echo "   Tests that assert millisecond timings (marked 'timing') run afterwards, alone (~2 min: on"
echo "   the scale-out stores the instant-upload lookup floor is 100 ms, and the claim timing test"
echo "   takes 840 lookups)."
echo "   (The web console's browser test runs once, in the first pass: it tests the page, and the"
echo "   stores under its calls are the protocols' own, tested in both.)"
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
SCALE_OUT=(env CHUAN_TEST_META=postgres CHUAN_TEST_BLOBS=s3)
export CHUAN_BIN="$ROOT/target/release/chuan"
SCALE_OUT_LOG="$(mktemp -t chuan-compat-scale-out.XXXXXX.log)"
# In a process group of its own (job control on while it starts), so that SIGINT is not
# ignored there: interrupted, pytest stops the servers it started. Bounded, so a hang ends
# with the pass's output (faulthandler's stacks, the interrupted test) rather than with CI's
# own timeout, which would show nothing of it.
set -m
timeout --signal=INT --kill-after=2m 40m "${SCALE_OUT[@]}" "${PYTEST[@]}" tests/compat -m "not timing" \
    --ignore=tests/compat/test_console.py "$@" >"$SCALE_OUT_LOG" 2>&1 &
SCALE_OUT_PID=$!
set +m
scale_out_output() {
    echo "== compatibility suite on the scale-out stores (PostgreSQL + S3): its output"
    cat "$SCALE_OUT_LOG"
    rm -f "$SCALE_OUT_LOG"
}
stop_scale_out() {
    echo "== stopping the scale-out pass (this run ends early)"
    kill -INT "$SCALE_OUT_PID" 2>/dev/null && wait "$SCALE_OUT_PID" 2>/dev/null
    scale_out_output
}
trap stop_scale_out EXIT
EMBEDDED_RC=0
"${PYTEST[@]}" tests/compat -m "not timing" "$@" || EMBEDDED_RC=$?
# pytest's 2: interrupted (or a usage error): stop here.
[ "$EMBEDDED_RC" -eq 2 ] && exit 2

echo "== cluster: two nodes on one PostgreSQL database and one S3 bucket (scripts/cluster.sh),"
echo "   while the scale-out pass goes on"
CLUSTER_RC=0
"${PYTEST[@]}" tests/cluster || CLUSTER_RC=$?
[ "$CLUSTER_RC" -eq 2 ] && exit 2

SCALE_OUT_RC=0
wait "$SCALE_OUT_PID" || SCALE_OUT_RC=$?
trap - EXIT
scale_out_output
[ "$SCALE_OUT_RC" -eq 124 ] && echo "the scale-out pass ran out of its 40 minutes" >&2

echo "== timing tests, alone on the machine: embedded stores, then scale-out stores"
TIMING_RC=0
timing_rc() { [ "$1" -eq 5 ] || TIMING_RC=$1; }  # 5: none selected (arguments that pick other tests)
"${PYTEST[@]}" tests/compat -m timing "$@" || timing_rc $?
"${SCALE_OUT[@]}" "${PYTEST[@]}" tests/compat -m timing "$@" || timing_rc $?

if [ "$EMBEDDED_RC" -ne 0 ] || [ "$SCALE_OUT_RC" -ne 0 ] || [ "$CLUSTER_RC" -ne 0 ] || [ "$TIMING_RC" -ne 0 ]; then
    echo "tests failed (exit statuses): compatibility suite on the embedded stores $EMBEDDED_RC," \
        "on the scale-out stores $SCALE_OUT_RC; cluster $CLUSTER_RC; timing tests $TIMING_RC" >&2
    exit 1
fi
