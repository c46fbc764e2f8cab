#!/usr/bin/env bash
# The Chronicle demo: the real pipeline on every bundled capture (Binance, OKX, Kraken), on embedded
# defaults, in a scratch folder (CHRONICLE_DEMO_DIR, default /tmp/chronicle-demo), no network
# beyond loopback. `make demo` builds the binaries and runs it (as root, for the mount).
#
#   chronicle-exsim   serves the captures (../shared/data/captures) as a local exchange:
#                     websocket and REST, one market per capture
#   chronicle-feed    captures each market live into the hot journal (one feed per venue)
#   chronicle-etl     refines the journal live into v1/{venue}/{symbol}/{date}/book.q (hot tier)
#   chronicle-tier    ages the partitions with a demo clock: hot -> warm -> cold -> remote
#   chronicle-fs      mounts every tier as one tree; the researcher reads it with dd, numpy,
#                     pandas and matplotlib (python/demo_report.py)
#
# The terminal gets a short narrative; each daemon logs to DIR/NAME.log (and its CPU time to
# DIR/cpu.txt when it stops). Exit, an error or Ctrl-C stops every daemon and unmounts.
# Options (environment):
#   S3=1          the remote tier is a loopback S3 server (versitygw) instead of file://
#   DEMO_SYNTH=1  also write synthetic partitions (chronicle-etl synth) to show scale
#   FLEET=1       at the end, a research fleet on Dask over the bucket (scripts/fleet.sh: two
#                 workers, each in its own network namespace with its own mount and 1 Gbit/s
#                 link) maps examples/fleet_book_stats.py over its partitions; implies S3=1
#   KEEP=1        leave the tree mounted at the end (chronicle-fs, and versitygw with S3=1,
#                 keep running) for the README's "Reading data" examples;
#                 `scripts/demo.sh stop` (make demo-stop) unmounts it and stops them
#   BIN=dir       where the binaries are (default bin/)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$(cd "${BIN:-bin}" && pwd)
D=${CHRONICLE_DEMO_DIR:-/tmp/chronicle-demo}
KEEP=${KEEP:-0}
PY=/usr/bin/python3
SHARED=${CHRONICLE_SHARED:-$(cd .. && pwd)/shared}
CAPTURES=$SHARED/data/captures
S3=${S3:-0}
DEMO_SYNTH=${DEMO_SYNTH:-0}
FLEET=${FLEET:-0}
[ "$FLEET" = 1 ] && S3=1
# The demo clock of chronicle-tier: a day and a bit after the captures (2024-08-08/09).
NOW=2024-08-10T06:00:00Z
T0=$(date +%s%N)

bold() { printf '\033[1m== %s\033[0m  [%s]\n' "$*" "$(elapsed)"; }
say() { printf '   %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
elapsed() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# --- daemons: started in the background, logged to files, always stopped ---------------
declare -A PIDS=()
start() { # NAME CMD...: run a daemon, its output to $D/NAME.log
  local name=$1; shift
  "$@" >>"$D/$name.log" 2>&1 &
  PIDS[$name]=$!
}
keepable() { # NAME CMD...: start, in a session of its own when KEEP=1 (it outlives the demo)
  local name=$1; shift
  if [ "$KEEP" = 1 ]; then start "$name" setsid "$@" </dev/null; else start "$name" "$@"; fi
}
stop() { # NAME...: SIGTERM, then wait (SIGKILL after 20 s)
  local name pid
  for name in "$@"; do
    pid=${PIDS[$name]:-}
    [ -n "$pid" ] || continue
    # CPU seconds (user, system) of each daemon, for the curious: DIR/cpu.txt
    [ -r /proc/$pid/stat ] && awk -v n="$name" '{printf "%-11s %6.2f s user %6.2f s system\n", n, $14/100, $15/100}' /proc/$pid/stat >> "$D/cpu.txt"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for name in "$@"; do
    pid=${PIDS[$name]:-}
    [ -n "$pid" ] || continue
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
  done
}
mounted() { grep -qs " $D/mnt " /proc/mounts; }
# What KEEP=1 left running: DIR/kept holds "NAME PID" lines.
stop_kept() {
  if mounted; then "$BIN/chronicle-fs" unmount "$D/mnt" 2>/dev/null || umount -l "$D/mnt" || true; fi
  [ -s "$D/kept" ] || return 0
  local name pid
  while read -r name pid; do
    # Only a process still running the command it was started as (pids are reused).
    if grep -qs -- "$D" "/proc/$pid/cmdline"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < "$D/kept"
  rm -f "$D/kept"
}
if [ "${1:-}" = stop ]; then
  was=$(mounted && echo yes || true)
  stop_kept
  [ -n "$was" ] && echo "demo: unmounted $D/mnt and stopped what KEEP=1 left running" || echo "demo: nothing kept in $D"
  exit 0
fi
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${FG:-}" ] && kill -TERM "$FG" 2>/dev/null || true
  # Producers first, the mount last (it unmounts on SIGTERM).
  stop feed-perp feed-coinm feed-spot feed-okx feed-kraken etl tier exsim fs s3 2>/dev/null || true
  if mounted; then "$BIN/chronicle-fs" unmount "$D/mnt" 2>/dev/null || umount -l "$D/mnt" || true; fi
  if [ "$rc" -ne 0 ]; then
    printf '\ndemo: stopped (exit %d); daemon logs are in %s/*.log\n' "$rc" "$D" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
run_fg() { # a foreground command that SIGINT to this script interrupts at once (bash runs
  # traps only between commands, and wait is one)
  local rc=0
  "$@" &
  FG=$!
  wait "$FG" || rc=$?
  FG=
  return $rc
}
wait_for() { # SECONDS WHAT CMD...: poll until CMD succeeds
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${secs} s waiting for $what (logs: $D/*.log)"
    sleep "${POLL:-0.2}"
  done
}

for b in chronicle-exsim chronicle-feed chronicle-etl chronicle-tier chronicle-fs; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: run 'make demo' (or 'make build')"
done
[ -d "$CAPTURES" ] || die "captures not found in $CAPTURES (set CHRONICLE_SHARED)"
[ "$(id -u)" = 0 ] || die "run as root: chronicle-fs mounts FUSE with mount(2)"
"$PY" -c 'import numpy, pandas, matplotlib' 2>/dev/null || die "python3 needs numpy, pandas and matplotlib: run scripts/deps.sh"

# A previous demo's mount (even a crashed one, or one KEEP=1 left) must go before its folder can.
stop_kept
rm -rf "$D"
mkdir -p -m 0755 "$D"/{hot,warm,cold,mnt} # the daemons refuse roots others can write to

REMOTE="file://$D/remote"
REMOTE_CFG=""
if [ "$S3" = 1 ]; then
  VGW=${VERSITYGW:-$(command -v versitygw || echo "$(go env GOPATH 2>/dev/null)/bin/versitygw")}
  [ -x "$VGW" ] || die "versitygw not found: run scripts/deps.sh"
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  key=demo$RANDOM$RANDOM secret=$("$PY" -c 'import secrets; print(secrets.token_hex(20))')
  mkdir -p "$D/s3/chronicle-demo" # a directory of the posix backend is a bucket
  keepable s3 env ROOT_ACCESS_KEY="$key" ROOT_SECRET_KEY="$secret" "$VGW" --port "127.0.0.1:$port" --region us-east-1 \
    --health /health --keep-alive posix "$D/s3"
  REMOTE="s3://chronicle-demo/v1archive"
  REMOTE_CFG=$(printf 'endpoint = "http://127.0.0.1:%s"\nregion = "us-east-1"\npath_style = true\naccess_key = "%s"\nsecret_key = "%s"' "$port" "$key" "$secret")
  wait_for 20 "versitygw" "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null
fi

cat > "$D/chronicle.toml" <<TOML
# One file for every daemon (docs/config.md); each reads its own sections.
[tiers]
hot    = "$D/hot"
warm   = "$D/warm"
cold   = "$D/cold"
remote = "$REMOTE"

[remote]
$REMOTE_CFG

[log]
level  = "info"
format = "text"

[feed]
metrics_addr = ""             # the journal goes to [tiers] hot /feed/{venue}

[etl]
output       = "hot"          # live partitions in the hot tier; the tier manager moves sealed ones
grace        = "2m"           # the previous day stays open 2 min of exchange time past midnight
checkpoint_interval = "1s"
meta_interval = "1s"
idle_spin    = "0s"           # no busy-polling: seven processes share this machine's cores
metrics_addr = ""

[tier]
hot_to_warm   = true
hot_settle    = "0s"
cold_after    = "24h"         # warm -> cold once the day ended 24 h ago
remote_after  = "720h"        # cold -> remote after 30 days
scan_interval = "500ms"
concurrency   = 2
metrics_addr  = ""

[fs]
cache_bytes  = 268435456
metrics_addr = ""
TOML
C=(--config "$D/chronicle.toml")
printf 'Chronicle demo in %s (config chronicle.toml, daemon logs *.log)\n' "$D"

bold "1. chronicle-exsim serves the bundled captures on loopback, each in its venue's protocol"
start exsim "$BIN/chronicle-exsim" --captures "$CAPTURES" --state-dir "$D/exsim"
wait_for 60 "the exchange simulator" test -s "$D/exsim/addr"
declare -A SYMS=() VENUE=()
MARKETS=(usdm coinm spot cryptofeed okx kraken)
for m in "${MARKETS[@]}"; do
  read -r -a f < "$D/exsim/$m.feed"
  VENUE[$m]=${f[1]} SYMS[$m]=${f[3]}
  msgs=$(sed -n "s/.*msg=market .*name=$m .*messages=\([0-9]*\).*/\1/p" "$D/exsim.log")
  syms=${SYMS[$m]}
  [ "${#syms}" -le 36 ] || syms="$(tr ',' '\n' <<< "$syms" | wc -l) symbols (${syms%%,*},...)"
  say "$(printf '%-10s %-13s %-34s %6s messages  %s' "$m" "${VENUE[$m]}" "$syms" "$msgs" "ws://$(cat "$D/exsim/addr")/$m")"
done

bold "2. chronicle-feed captures each market live; chronicle-etl refines the journal as it grows"
start etl "$BIN/chronicle-etl" run "${C[@]}"
feed() { # LOGNAME MARKET
  # shellcheck disable=SC2046 # the feed flags file is one line of flags
  start "$1" "$BIN/chronicle-feed" run "${C[@]}" $(cat "$D/exsim/$2.feed")
}
feed feed-coinm coinm
feed feed-spot spot
feed feed-okx okx       # subscribed by request; books checked against OKX's checksums
feed feed-kraken kraken # the same, Kraken's
feed feed-perp cryptofeed # binance-perp: the 2021 four-symbol set, then the 2024 ETHUSDT one
journaled() { "$PY" python/demo_report.py journal-count "$D/hot/feed/${VENUE[$1]}" "${SYMS[$1]}"; }
committed() { # the journal's committed bytes (header offset 24, docs/format/q.md)
  local f; for f in "$D/hot/feed/${VENUE[$1]}"/*.q; do od -An -t u8 -j 24 -N 8 "$f"; done | tr -d ' \n'
}
declare -A LAST=()
drained() { # MARKET: the market is over, its journal has stopped growing and holds all it was sent
  [ -e "$D/exsim/$1.done" ] || return 1
  local now; now=$(committed "$1")
  [ "$now" = "${LAST[$1]:-}" ] || { LAST[$1]=$now; return 1; }
  [ "$(journaled "$1")" -ge "$(awk '{print $4}' "$D/exsim/$1.done")" ]
}
wait_for 60 "the cryptofeed market" drained cryptofeed
stop feed-perp
feed feed-perp usdm
for m in usdm coinm spot okx kraken; do wait_for 90 "market $m" drained "$m"; done
stop feed-perp feed-coinm feed-spot feed-okx feed-kraken
sent_all=""
for m in cryptofeed usdm coinm spot okx kraken; do
  sent=$(awk '{print $4}' "$D/exsim/$m.done")
  got=$(journaled "$m")
  [ "$sent" = "$got" ] || die "market $m: $sent messages sent but the ${VENUE[$m]} journal holds $got"
  sent_all+="${sent_all:+, }$m $sent"
done
say "every message exsim sent is in its venue's journal: $sent_all"
caught_up() { # the refinery's published checkpoint (etl.checkpoint) is at every journal's end
  local j last
  [ "$(ls -d "$D"/hot/feed/*/ | wc -l)" = 5 ] || return 1
  for j in "$D"/hot/feed/*/; do
    last=$(cd "$j" && ls -- *.q | sort | tail -1)
    grep -qs "\"segment\":\"$last\",\"offset\":$(od -An -t u8 -j 24 -N 8 "$j$last" | tr -d ' ')," "$j/etl.checkpoint" || return 1
  done
}
wait_for 60 "the refinery to reach the journals' ends" caught_up
find "$D/hot/v1" -name book.q | sort > "$D/refined.txt"
say "refined live: $(wc -l < "$D/refined.txt") partitions in hot, $(elapsed) since the start"

bold "3. The COIN-M, spot, OKX and Kraken captures are over: chronicle-etl backfill --seal-all seals their days"
say "(from the daemon's checkpoint; binance-perp stays open in hot, as a live feed's day would)"
stop etl
run_fg "$BIN/chronicle-etl" backfill "${C[@]}" --log-level warn --seal-all --root "$D/hot" \
  "$D/hot/feed/binance-coinm" "$D/hot/feed/binance-spot" "$D/hot/feed/okx" "$D/hot/feed/kraken-spot" >>"$D/etl.log" 2>&1
start etl "$BIN/chronicle-etl" run "${C[@]}"
if [ "$DEMO_SYNTH" = 1 ]; then
  say "DEMO_SYNTH=1: synthetic partitions too (eth-synth, 6 days of 64 MiB in warm)"
  run_fg "$BIN/chronicle-etl" synth "${C[@]}" --root "$D/warm" --symbols eth-synth --days 6 --end 2024-08-07 --bytes 64MiB >>"$D/etl.log" 2>&1
fi

bold "4. chronicle-tier ages them with a demo clock: now = $NOW (cold after 24 h, remote after 30 d)"
start tier "$BIN/chronicle-tier" "${C[@]}" --now "$NOW" run
settled() {
  "$BIN/chronicle-tier" "${C[@]}" --now "$NOW" status --json 2>/dev/null | "$PY" -c '
import json, sys
s = json.load(sys.stdin)
p = s["plan"]
sys.exit(0 if not p["Moves"] and not p["Problems"] else 1)'
}
POLL=0.5 wait_for 60 "the tier manager to finish its moves" settled
"$BIN/chronicle-tier" "${C[@]}" --now "$NOW" status > "$D/tier-status.txt" 2>/dev/null
sed -n '/^ *tier /,/^$/p' "$D/tier-status.txt" | sed '/^$/d; s/^/ /'
open=$(sed -n 's/^ *hot->warm *v1\/\([^:]*\): book still being written.*/\1/p' "$D/tier-status.txt" | tr '\n' ' ')
say "not sealed, so still in hot: ${open:-none}"

bold "5. chronicle-fs mounts every tier as one tree: $D/mnt"
keepable fs "$BIN/chronicle-fs" mount "${C[@]}" "$D/mnt"
wait_for 20 "the mount" test -d "$D/mnt/v1"
# One line a partition; a venue's date with more than three (Kraken's ten pairs) is one line.
( cd "$D/mnt" && find v1 -name book.q | sort | while read -r f; do
    tier=$(getfattr --only-values -n user.chronicle.tier "$f" 2>/dev/null || echo "?")
    printf '%s %s %s\n' "$f" "$tier" "$(stat -c %s "$f")"
  done | awk '{ split($1, p, "/"); k = p[2] "/" p[4]; n[k]++; line[k, n[k]] = $0; if (!(k in seen)) { seen[k] = 1; order[++o] = k } }
    END { for (i = 1; i <= o; i++) { k = order[i]
      if (n[k] > 3) { split(line[k, 1], a, " "); split(k, kk, "/"); b = 0; for (j = 1; j <= n[k]; j++) { split(line[k, j], x, " "); b += x[3] }
        printf "   %-48s %-6s %6d KiB\n", "v1/" kk[1] "/{" n[k] " symbols}/" kk[2] "/", a[2], b / 1024 }
      else for (j = 1; j <= n[k]; j++) { split(line[k, j], x, " "); sub(/book\.q$/, "", x[1]); printf "   %-48s %-6s %6d KiB\n", x[1], x[2], x[3] / 1024 } } }' )
say "(each partition: $(cd "$D/mnt/v1/binance-coinm/eth-usd-perp/2024-08-08" && ls -p | tr '\n' ' '))"

bold "6. dd reads a book.q like any file, from each tier"
for tier in hot warm cold remote; do
  f=$(cd "$D/mnt" && find v1 -name book.q | sort | while read -r p; do
        [ "$(getfattr --only-values -n user.chronicle.tier "$p" 2>/dev/null)" = "$tier" ] && { echo "$p"; break; }; done)
  [ -n "$f" ] || continue
  printf '   %-6s %-40s %s\n' "$tier" "${f%/book.q}" "$(dd if="$D/mnt/$f" of=/dev/null bs=1M 2>&1 | tail -1)"
done

bold "7. numpy + pandas through the mount (python/demo_report.py): records, exchange time, prices"
run_fg "$PY" python/demo_report.py summary "$D/mnt" --report "$D/report" > "$D/summary.txt"
sed 's/^/   /' "$D/summary.txt"
"$PY" - "$D/mnt/v1/binance-perp/eth-usdt/2024-08-08" <<'PYEOF' | sed 's/^/   /'
import sys; sys.path.insert(0, "python")
import numpy as np, chronicle_q as q
d = sys.argv[1]
npy = np.load(d + "/book.npy", mmap_mode="r")                      # the virtual .npy: plain numpy
part = q.read(d + "/book.q", "2024-08-08T23:58:00Z", "2024-08-08T23:59:00Z")   # a minute, by index/
df = q.to_pandas(part[part["type_id"] == q.TRADE])
print(f"perp/eth-usdt/2024-08-08: book.npy {npy.shape[0]} records; 23:58-23:59 read by time: {len(part)} records, "
      f"{len(df)} trades, VWAP {np.average(df.price_f, weights=df.qty_f):.2f}")
PYEOF

bold "8. Charts (matplotlib, read through the mount): a summary table, each partition with its book ladders (views/top25.npy), the venues side by side"
if [ "$FLEET" = 1 ]; then
  bold "9. A research fleet on Dask (FLEET=1): every partition in the bucket, two workers, each a research host with its own mount and 1 Gbit/s link"
  run_fg scripts/fleet.sh --posix "$D/s3" --bucket chronicle-demo --prefix v1archive --access "$key" --secret "$secret" \
    --workers 2 --dir "$D/fleet" --out "$D/fleet/table.csv" > "$D/fleet.txt" 2>&1 || { cat "$D/fleet.txt" >&2; die "the fleet failed (logs: $D/fleet/*.log)"; }
  grep -E '^fleet:|partitions/s' "$D/fleet.txt" | sed 's/^/   /'
  # The same computation in this process on the demo's own mount: the same table.
  "$PY" - "$D/fleet/table.csv" "$D/mnt" <<'PYEOF' | sed 's/^/   /'
import sys, pandas as pd
sys.path.insert(0, "examples")
import fleet_book_stats as fb
fleet = pd.read_csv(sys.argv[1], dtype={"date": str})
parts = ["/".join(("v1", r.venue, r.symbol, r.date)) for r in fleet.itertuples()]
local = fb.table([fb.partition_stats(p, sys.argv[2]) for p in parts]).to_csv(index=False, float_format="%.17g")
with open(sys.argv[1]) as f:
    same = f.read() == local
print(fleet[["venue", "symbol", "date", "rows", "spread_bps_p50", "spread_bps_p99", "imbalance_mean"]].to_string(index=False, float_format="%.3f"))
print("the same table from this host's mount, in one process:", "equal" if same else "DIFFERENT")
PYEOF
fi
if [ "$KEEP" = 1 ]; then
  say "$(ls "$D/report"/*.png | wc -l) PNG charts in $D/report; the producers stop, the mount stays (KEEP=1)"
  stop tier etl exsim
  for name in fs s3; do [ -n "${PIDS[$name]:-}" ] && echo "$name ${PIDS[$name]}" >> "$D/kept"; done
  trap - EXIT
  printf '\ndemo finished in %s; the tree stays mounted at %s for the README'"'"'s "Reading data" examples\n' "$(elapsed)" "$D/mnt"
  envd=""; [ "$D" = /tmp/chronicle-demo ] || envd="CHRONICLE_DEMO_DIR=$D "
  printf '%smake demo-stop (or: %s unmount %s) ends it\n' "$envd" "$BIN/chronicle-fs" "$D/mnt"
else
  say "$(ls "$D/report"/*.png | wc -l) PNG charts in $D/report; every daemon and the mount stop now"
  stop fs tier etl exsim s3
  trap - EXIT
  printf '\ndemo finished in %s (make demo KEEP=1 leaves the tree mounted for the README'"'"'s examples)\n' "$(elapsed)"
fi
printf 'Report: %s\n' "file://$D/report/index.html"
