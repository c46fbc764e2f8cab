# Seekable zstd: transcode vs `zstd -3 -T<n>`, sequential read vs `zstd -dc`, random 4 KiB
# reads with a cold and a warm frame cache, one decoder into reused / rotating / fresh
# buffers (sourced by scripts/bench.sh).
run -bench 'BenchmarkTranscode|BenchmarkSeqRead' -benchtime 3x ./format/qzst/
run -bench 'BenchmarkRandom4K' -benchtime 2000x ./format/qzst/
run -bench 'BenchmarkDecodeInto' -benchtime 3x ./format/qzst/
