# Seekable zstd: transcode vs `zstd -3 -T<n>`, sequential read vs `zstd -dc`, random 4 KiB
# reads with a cold and a warm frame cache, one decoder into reused / rotating / fresh
# buffers (sourced by scripts/bench.sh).
run qzst -bench 'BenchmarkTranscode|BenchmarkSeqRead' -benchtime 1x -count "$ROUNDS" ./format/qzst/
run qzst-random -bench 'BenchmarkRandom4K' -benchtime 2000x ./format/qzst/
run qzst-decodeinto -bench 'BenchmarkDecodeInto' -benchtime 3x ./format/qzst/
