# Journal append latency of real capture messages vs a memcpy baseline; receive-to-committed
# latency from the simulator's socket (sourced by scripts/bench.sh).
run feed-append -bench 'BenchmarkAppend' -benchtime 200000x ./feed/
run feed-receive -bench 'BenchmarkReceiveToCommit' ./feed/
