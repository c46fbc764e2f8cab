# Remote tier through the resolver vs GET | zstd -dc; random 4 KiB with a cold frame cache
# (sourced by scripts/bench.sh). One fixture (book, transcode, upload) per go test run, so the
# rounds are iterations, averaged into one report round.
run tiers-remote -bench 'BenchmarkRemoteSequential' -benchtime "${ROUNDS}x" ./tiers/
run tiers-random -bench 'BenchmarkRemoteRandom4K' -benchtime 200x ./tiers/
