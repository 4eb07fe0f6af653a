#!/usr/bin/env bash
# Runs each fuzz target named on the command line for FUZZ_SECONDS (default
# 30) from a temporary copy of its committed corpus (fuzz/corpus/<target>/),
# so what a run finds never dirties the checkout, and prints per target the
# executions, coverage (libFuzzer's edge count), corpus size and crashes.
# A crash, a timeout or an out-of-memory stops it: the input is copied to
# target/fuzz-artifacts/<target>/ and printed as hex, and the exit is 1.
set -euo pipefail

seconds=${FUZZ_SECONDS:-30}
here=$(cd "$(dirname "$0")" && pwd)
artifacts="$here/../target/fuzz-artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$here"

# Build every target first, so the clock runs only while fuzzing.
cargo +nightly fuzz build

report=()
failed=0
for target in "$@"; do
  mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
  if [ -d "corpus/$target" ]; then
    cp -R "corpus/$target/." "$work/corpus/$target/"
  fi
  log="$work/$target.log"
  status=0
  cargo +nightly fuzz run "$target" "$work/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$target/" >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -oE '^#[0-9]+.*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || true)
  corpus=$(find "$work/corpus/$target" -type f | wc -l)
  crashes=$(find "$work/artifacts/$target" -type f | wc -l)
  report+=("$(printf '%-13s %10s executions  coverage %6s edges  corpus %5s  crashes %s' \
    "$target" "${execs:-?}" "${cov:-?}" "$corpus" "$crashes")")
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    echo "fuzz target $target failed (exit $status); the end of its log:" >&2
    tail -40 "$log" >&2
    mkdir -p "$artifacts/$target"
    for input in "$work/artifacts/$target"/*; do
      [ -f "$input" ] || continue
      cp "$input" "$artifacts/$target/"
      echo "input $(basename "$input") (kept in target/fuzz-artifacts/$target/):" >&2
      head -c 512 "$input" | od -An -tx1 >&2
    done
  fi
done

echo "fuzzing, ${seconds} s per target:"
printf '  %s\n' "${report[@]}"
exit "$failed"
