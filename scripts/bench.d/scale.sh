# A whole venue on one capture host (docs/chronicle-exsim.md, load mode): for M = 50, 100,
# 300 symbols (CHRONICLE_SCALE_SYMBOLS) chronicle-exsim --load M beside chronicle-feed,
# chronicle-etl run and chronicle-tier; the highest pace held for CHRONICLE_SCALE_HOLD
# (default 10m here: a shorter hold is for trying, and must be said with its figures) with
# the refinery's lag p99 <= 1 s and no gap. Root (the pipeline tests mount FUSE). Each
# daemon's CPU profile lands in raw/profile-scale-mM-DAEMON.pprof (the report summarises M = 300's).
CHRONICLE_SCALE_HOLD=${CHRONICLE_SCALE_HOLD:-10m} CHRONICLE_SCALE_PROFILE_DIR=$raw \
  run scale-venue -bench 'BenchmarkScaleVenue' -benchtime 1x -timeout 600m -v ./integration/pipeline/
