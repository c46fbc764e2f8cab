# Object store on a loopback versitygw: verified upload vs a plain PutObject, ranged 4 KiB GET
# latency vs the raw SDK (sourced by scripts/bench.sh).
run objstore -bench '.' ./tiers/objstore/
