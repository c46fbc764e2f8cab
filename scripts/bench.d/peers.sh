# chronicle-fs (remote tier) vs rclone mount and s3fs-fuse on the same versitygw, on a network
# namespace's loopback as is and shaped to 1 Gbit/s: whole-book dd with cold caches, random
# 4 KiB pread p50/p99, bytes over the link (sourced by scripts/bench.sh; root; drops the page
# cache). Size: CHRONICLE_BENCH_BYTES; preads per pass: CHRONICLE_BENCH_PEER_PREADS (500).
run peers -bench 'BenchmarkPeers' -benchtime "${ROUNDS}x" -timeout 60m -v ./integration/fsmount/
