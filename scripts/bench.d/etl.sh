# Refinery: backfill throughput over the real captures' journals on one core (CPU time) and
# on both (wall clock) vs valyala/fastjson parsing the same messages (and the venue's
# decoder alone); a live refinery working through a backlog vs a backfill of it; the order
# book's memory per symbol vs the map and heap book; live latency from a journal append to
# the canonical records committed vs the journal tailer alone (sourced by scripts/bench.sh).
run etl-backfill -bench 'BenchmarkBackfill' -benchtime 3x -count "$ROUNDS" ./etl/
run etl-catchup -bench 'BenchmarkLiveCatchup/usdm' -benchtime 3x -count "$ROUNDS" ./etl/
run etl-book -bench 'BenchmarkReplayCaptures/usdm' -benchtime 3x -count "$ROUNDS" ./etl/book/
run etl-live -bench 'BenchmarkLiveLatency' -benchtime 20000x -count "$ROUNDS" ./etl/
# A/B merge: two hosts' journals of the USD-M capture merged (chronicle-etl merge) vs the
# refinery's backfill of one of them, same run.
run etl-merge -bench 'BenchmarkMerge' -benchtime 3x -count "$ROUNDS" ./etl/merge/
