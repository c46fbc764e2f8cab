# The research fleet on Dask (docs/research-fleet.md): examples/fleet_book_stats.py over
# every partition of a versitygw bucket on N = 1, 2, 4 workers, each in its own network
# namespace with its own chronicle-fs mount over its own 1 Gbit/s link, beside one process
# without Dask (sourced by scripts/bench.sh; root; drops the page cache). Size:
# CHRONICLE_BENCH_FLEET_PARTITIONS (16) partitions of CHRONICLE_BENCH_FLEET_RECORDS (500000).
run fleet -bench 'BenchmarkResearchFleet' -benchtime "${ROUNDS}x" -timeout 60m -v ./integration/research/
