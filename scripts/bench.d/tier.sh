# Tier manager: warm -> cold move vs `zstd -3 -T<threads>` then `zstd -t`, cold -> remote
# upload vs a plain S3 PutObject on the same versitygw, same run (diagnostic: zstd_level = 1 and
# single-PUT uploads; sourced by scripts/bench.sh; size from CHRONICLE_BENCH_BYTES). -bench
# patterns are split at '/' per level: "A|B/x|y" runs A/x and B/y.
run tier -bench 'BenchmarkWarmToCold|BenchmarkColdToRemote/level-3|default' -benchtime "${ROUNDS}x" ./tiers/lifecycle/
run diag-tier-variants -bench 'BenchmarkWarmToCold|BenchmarkColdToRemote/level-1|single-put' -benchtime "${ROUNDS}x" ./tiers/lifecycle/
