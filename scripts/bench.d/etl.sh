# Refinery: backfill throughput over the real captures' journals vs encoding/json and
# valyala/fastjson parsing the same messages; live latency from a journal append to the
# canonical records committed vs the journal tailer alone (sourced by scripts/bench.sh).
run etl-backfill -bench 'BenchmarkBackfill' -benchtime 3x -count "$ROUNDS" ./etl/
run etl-live -bench 'BenchmarkLiveLatency' -benchtime 20000x -count "$ROUNDS" ./etl/
