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

echo "== compatibility suite (aws CLI, boto3, curl against chuan serve)"
CHUAN_BIN="$ROOT/target/release/chuan" .venv/bin/python -m pytest tests/compat -q -p no:cacheprovider "$@"

echo "== compatibility suite again on the scale-out stores: metadata in PostgreSQL, blobs in S3"
echo "   (throwaway servers: tests/compat/pg_scratch.py, tests/compat/s3_scratch.py)"
echo "   (the web console's browser test runs once, above: it tests the page, and the stores under"
echo "   its calls are the protocols' own, tested here)"
CHUAN_TEST_META=postgres CHUAN_TEST_BLOBS=s3 CHUAN_BIN="$ROOT/target/release/chuan" \
    .venv/bin/python -m pytest tests/compat -q -p no:cacheprovider --ignore=tests/compat/test_console.py "$@"

echo "== cluster: two nodes on one PostgreSQL database and one S3 bucket (scripts/cluster.sh)"
CHUAN_BIN="$ROOT/target/release/chuan" .venv/bin/python -m pytest tests/cluster -q -p no:cacheprovider
