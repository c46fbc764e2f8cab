# Remote tier through the resolver vs GET | zstd -dc; random 4 KiB with a cold frame cache
# (sourced by scripts/bench.sh).
run -bench 'BenchmarkRemoteSequential' -benchtime 3x ./tiers/
run -bench 'BenchmarkRemoteRandom4K' -benchtime 200x ./tiers/
