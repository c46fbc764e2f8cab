# Tier manager: warm -> cold move vs `zstd -3 -T<threads>`, cold -> remote upload vs a plain
# S3 PutObject on the same versitygw, same run (sourced by scripts/bench.sh; size from
# CHRONICLE_BENCH_BYTES).
run tier -bench 'BenchmarkWarmToCold|BenchmarkColdToRemote' -benchtime "${ROUNDS}x" ./tiers/lifecycle/
