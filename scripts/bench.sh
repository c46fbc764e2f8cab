#!/usr/bin/env bash
# The project's benchmarks, each printing our figure and its same-run baseline.
# CHRONICLE_BENCH_BYTES sets the size of the large-file benchmarks (default 1 GiB).
set -euo pipefail
run() { echo; echo "### $*"; go test -run '^$' "$@"; }
run -bench 'BenchmarkAppendLatency' -benchtime 2000000x ./format/
run -bench 'BenchmarkDecode' -benchtime 3x ./format/
for extra in scripts/bench.d/*.sh; do
  [ -e "$extra" ] && . "$extra"
done
echo
echo "bench: done"
