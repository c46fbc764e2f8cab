# Remote tier through the resolver vs GET | zstd -dc; random 4 KiB with a cold frame cache
# (sourced by scripts/bench.sh).
run tiers-remote -bench 'BenchmarkRemoteSequential' -benchtime 1x -count "$ROUNDS" ./tiers/
run tiers-random -bench 'BenchmarkRemoteRandom4K' -benchtime 200x ./tiers/
