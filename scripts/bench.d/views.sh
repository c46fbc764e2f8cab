# Research views (sourced by scripts/bench.sh; root, for FUSE; versitygw for remote): the
# book at random instants through format/bookview from warm, cold and remote against a
# replay from the partition's start; a first pass over cold views/top10.npy against one
# over the same cold book.q; random row reads of cold top10.npy; the daemon's peak RSS
# while serving views. Size: CHRONICLE_BENCH_BYTES (default here 64 MiB).
run views -bench 'BenchmarkViews$' -benchtime "${ROUNDS}x" -timeout 60m -v ./integration/fsmount/
