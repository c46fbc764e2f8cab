# Research host at scale: a bucket of CHRONICLE_BENCH_PARTITIONS (default 100,000) small
# partitions mounted with only the remote tier: mount time, ls of 3,650 dates cold and
# cached, find of the whole tree, peak RSS, beside the S3 listings the same answers need
# (sourced by scripts/bench.sh; root; drops the page cache).
run research -bench 'BenchmarkBucketScale' -benchtime "${ROUNDS}x" -timeout 60m -v ./integration/research/
