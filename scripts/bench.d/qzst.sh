# Seekable zstd: transcode (libzstd into files; all encoders and modes with
# CHRONICLE_BENCH_ONLY=diag-qzst-transcode) vs `zstd -3 -T<n>`, sequential read vs `zstd -dc`,
# random 4 KiB reads with a cold and a warm frame cache; diagnostic: one decoder into reused /
# rotating / fresh buffers (sourced by scripts/bench.sh).
run qzst -bench 'BenchmarkTranscode/libzstd/file|BenchmarkSeqRead' -benchtime 1x -count "$ROUNDS" ./format/qzst/
run qzst-random -bench 'BenchmarkRandom4K' -benchtime 2000x ./format/qzst/
run diag-qzst-decodeinto -bench 'BenchmarkDecodeInto' -benchtime 3x ./format/qzst/
run diag-qzst-transcode -bench 'BenchmarkTranscode' -benchtime 3x ./format/qzst/
