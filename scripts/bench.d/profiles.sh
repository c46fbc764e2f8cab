# Where the CPU goes, for the goals a 2-core machine does not reach: one short round of each
# benchmark under the CPU profiler, apart from the measured rounds (profiling taxes the
# measured side only, so nothing here is a figure: CHRONICLE_BENCH_FIGURES is unset and the
# report skips profile-* outputs). raw/<step>.pprof is summarised (go tool pprof -top) in the
# report's "Profiles"; scripts/benchreport/profiles.go says which figures each explains.
# chronicle-fs runs in its own process and writes its profile itself (--cpuprofile, added to
# any CHRONICLE_BENCH_FS_ARGS given).
CHRONICLE_BENCH_FIGURES= run profile-qzst -bench 'BenchmarkSeqRead' -benchtime 1x -cpuprofile "$raw/profile-qzst.pprof" -o "$raw/profile-qzst.test" ./format/qzst/
CHRONICLE_BENCH_FIGURES= run profile-tier -bench 'BenchmarkWarmToCold/level-3' -benchtime 1x -cpuprofile "$raw/profile-tier.pprof" -o "$raw/profile-tier.test" ./tiers/lifecycle/
CHRONICLE_BENCH_FIGURES= run profile-etl -bench 'BenchmarkBackfill/usdm/1core' -benchtime 15x -cpuprofile "$raw/profile-etl.pprof" -o "$raw/profile-etl.test" ./etl/
CHRONICLE_BENCH_FIGURES= run profile-etl-2cores -bench 'BenchmarkBackfill/usdm/2cores' -benchtime 15x -cpuprofile "$raw/profile-etl-2cores.pprof" -o "$raw/profile-etl-2cores.test" ./etl/
CHRONICLE_BENCH_FIGURES= run profile-etl-decode -bench 'BenchmarkDecodeCaptures' -benchtime 20x -cpuprofile "$raw/profile-etl-decode.pprof" -o "$raw/profile-etl-decode.test" ./venue/binance/
CHRONICLE_BENCH_FIGURES= CHRONICLE_BENCH_FS_ARGS="${CHRONICLE_BENCH_FS_ARGS:-} --cpuprofile $raw/profile-fs.pprof" \
  run profile-fs -bench 'BenchmarkFS$/seq' -benchtime 1x -timeout 30m -v ./integration/fsmount/
CHRONICLE_BENCH_FIGURES= CHRONICLE_BENCH_FS_ARGS="${CHRONICLE_BENCH_FS_ARGS:-} --cpuprofile $raw/profile-fs-pread.pprof" \
  run profile-fs-pread -bench 'BenchmarkFS$/pread4k' -benchtime 1x -timeout 30m -v ./integration/fsmount/
CHRONICLE_BENCH_FIGURES= CHRONICLE_BENCH_FS_ARGS="${CHRONICLE_BENCH_FS_ARGS:-} --cpuprofile $raw/profile-fs-npy.pprof" \
  run profile-fs-npy -bench 'BenchmarkFS$/numpy' -benchtime 1x -timeout 30m -v ./integration/fsmount/
CHRONICLE_BENCH_FIGURES= run profile-views -bench 'BenchmarkBookAt' -benchtime 1x -cpuprofile "$raw/profile-views.pprof" -o "$raw/profile-views.test" ./format/bookview/
