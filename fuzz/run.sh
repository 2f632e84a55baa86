#!/usr/bin/env bash
# Runs fuzz targets for a number of executions each and appends what libFuzzer reported
# (executions, time, coverage, corpus) to fuzz/runs.log.
#   fuzz/run.sh [RUNS] [TARGET...]     default: 10000000 runs of every target
#   MAX_SECS=N fuzz/run.sh ...         also stop each target after N seconds (the log says
#                                      how many executions that was)
# cargo-fuzz needs nightly features; with the machine's one stable toolchain,
# RUSTC_BOOTSTRAP=1 enables them. Sanitizer: none (the targets are safe Rust over C SQLite;
# the point is panics, aborts, hangs and unbounded memory), -rss_limit_mb bounds memory.
# Debug assertions are on (-a), so an arithmetic overflow is a crash, not a wrapped number.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
RUNS=${1:-10000000}
shift || true
TARGETS=${*:-query form http_fields s3_xml requests}
LIMIT=()
if [ -n "${MAX_SECS:-}" ]; then LIMIT=(-max_total_time="$MAX_SECS"); fi
export RUSTC_BOOTSTRAP=1
FLAGS=(-O -a -s none)
cargo fuzz build "${FLAGS[@]}"
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t"
  start=$(date +%s)
  out=$(cargo fuzz run "${FLAGS[@]}" "$t" "corpus/$t" -- -runs="$RUNS" "${LIMIT[@]}" -max_len=4096 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tee "artifacts/$t/last-run.log" \
        | grep -E "^(stat::|Done|==|SUMMARY)" || true)
  end=$(date +%s)
  {
    echo "== $(date -u +%FT%TZ) $t: cargo fuzz run ${FLAGS[*]} $t -- -runs=$RUNS ${LIMIT[*]}, $((end - start)) s, rustc $(rustc --version | cut -d' ' -f2)"
    echo "$out" | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added|Done|SUMMARY" || true
  } >> runs.log
done
