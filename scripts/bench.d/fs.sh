# chronicle-fs through a real mount (sourced by scripts/bench.sh; needs root for FUSE):
# dd bs=1M per tier vs native warm read and zstd -dc; random 4 KiB pread p50/p99 per tier vs
# native; numpy column reduction through the mount vs native; peak RSS of the daemon while
# reading a large cold book. Size: CHRONICLE_BENCH_BYTES (default here 64 MiB).
run fs -bench 'BenchmarkFS$|BenchmarkPeakRSS' -benchtime "${ROUNDS}x" -timeout 60m -v ./integration/fsmount/
