# Refinery: backfill throughput over the real captures' journals vs encoding/json and
# valyala/fastjson parsing the same messages; live latency from a journal append to the
# canonical records committed vs the journal tailer alone (sourced by scripts/bench.sh).
run etl-backfill -bench 'BenchmarkBackfill' -benchtime 3x -count "$ROUNDS" ./etl/
run etl-live -bench 'BenchmarkLiveLatency' -benchtime 20000x -count "$ROUNDS" ./etl/
# A/B merge: two hosts' journals of the USD-M capture merged (chronicle-etl merge) vs the
# refinery's backfill of one of them, same run.
run etl-merge -bench 'BenchmarkMerge' -benchtime 3x -count "$ROUNDS" ./etl/merge/
