# Remote tier through the resolver vs GET | zstd -dc (sourced by scripts/bench.sh).
run -bench 'BenchmarkRemote' -benchtime 3x ./tiers/
