# Tier manager: warm -> cold move vs `zstd -3 -T<threads>` then `zstd -t`, cold -> remote
# upload vs a plain S3 PutObject on the same versitygw, same run (diagnostic: zstd_level = 1 and
# single-PUT uploads; sourced by scripts/bench.sh; size from CHRONICLE_BENCH_BYTES). A -bench
# pattern with a top-level "|" is a list of alternatives, each split at '/' on its own.
run tier -bench 'BenchmarkWarmToCold/level-3|BenchmarkColdToRemote/default' -benchtime "${ROUNDS}x" ./tiers/lifecycle/
run diag-tier-variants -bench 'BenchmarkWarmToCold/level-1|BenchmarkColdToRemote/single-put' -benchtime "${ROUNDS}x" ./tiers/lifecycle/
