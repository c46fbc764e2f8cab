#!/usr/bin/env bash
# The project's benchmarks, each measuring our figure beside a baseline in the same run, and
# the one report of them: bench/report.json, bench/report.md and README.md's generated table
# (scripts/benchreport; docs/benchmarks.md explains how to read them).
#
#   CHRONICLE_BENCH_BYTES   size of the large-file benchmarks (default 1 GiB; `make bench BENCH_BYTES=64MiB`)
#   CHRONICLE_BENCH_ROUNDS  rounds per figure, median reported (default 3)
#   CHRONICLE_BENCH_ONLY    regexp of step names to run (e.g. 'fs|peers'); the README is then left alone
#   CHRONICLE_BENCH_OUT     report directory (default bench)
#
# Each step's `go test` output is kept in $CHRONICLE_BENCH_OUT/raw/<step>.txt; the benchmarks
# append their rounds to raw/figures.jsonl. A failing step is reported, the others still run,
# and the script exits 1 after writing the report.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${CHRONICLE_BENCH_OUT:-bench}
raw=$out/raw
ROUNDS=${CHRONICLE_BENCH_ROUNDS:-3}
only=${CHRONICLE_BENCH_ONLY:-}
rm -rf "$raw"
mkdir -p "$raw"
raw=$(cd "$raw" && pwd)
export CHRONICLE_BENCH_FIGURES=$raw/figures.jsonl
: >"$CHRONICLE_BENCH_FIGURES"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
failed=()

# run STEP go-test-arguments...: one `go test -run '^$'` whose output is kept as raw/STEP.txt.
# Steps named diag-* are diagnostics outside the report: they run only when
# CHRONICLE_BENCH_ONLY names them.
run() {
  local step=$1
  shift
  if [ -n "$only" ] && ! [[ $step =~ $only ]]; then
    return 0
  fi
  if [ -z "$only" ] && [[ $step == diag-* ]]; then
    return 0
  fi
  echo
  echo "### $step: go test -run '^\$' $*"
  local t0=$SECONDS
  if ! go test -run '^$' "$@" 2>&1 | tee "$raw/$step.txt"; then
    failed+=("$step")
  fi
  echo "### $step: $((SECONDS - t0)) s"
}

run format -bench 'BenchmarkAppendLatency' -benchtime 1000000x -count "$ROUNDS" ./format/
run format-decode -bench 'BenchmarkDecode' -benchtime 1x -count "$ROUNDS" ./format/
for extra in scripts/bench.d/*.sh; do
  [ -e "$extra" ] && . "$extra"
done

readme=README.md
[ -z "$only" ] || readme=
go run ./scripts/benchreport -figures "$CHRONICLE_BENCH_FIGURES" -raw "$raw" -out "$out" -readme "$readme" \
  -started "$started" -command "${CHRONICLE_BENCH_COMMAND:-scripts/bench.sh}"
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: these steps failed (their figures are reported as not measured): ${failed[*]}"
  exit 1
fi
echo "bench: done"
