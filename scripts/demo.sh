#!/usr/bin/env bash
# The Chronicle demo on embedded defaults, in a scratch folder (CHRONICLE_DEMO_DIR, default
# /tmp/chronicle-demo). It runs the real binaries end to end:
#   1. chronicle-feed replays a real Binance capture into the Zone 1 journal in the hot tier;
#   2. partitions are written into the warm and hot tiers (chronicle-etl synth: synthetic
#      canonical books, until the refinery turns the journal into books);
#   3. chronicle-tier ages them by date: warm -> cold (seekable zstd), cold -> remote
#      (file:// object store, verified upload, local stub);
#   4. chronicle-fs mounts every tier as one tree; dd, numpy and pandas read a partition from
#      each tier through it, and the bytes are compared with the originals.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
D=${CHRONICLE_DEMO_DIR:-/tmp/chronicle-demo}
PY=/usr/bin/python3
SHARED=${CHRONICLE_SHARED:-$(cd .. && pwd)/shared}
CAPTURE="$SHARED/data/captures/binance-usdm_ethusdt_20240808.jsonl.gz"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A previous demo's mount (even a crashed one) is cleaned by chronicle-fs itself at start;
# unmount it here only to be able to delete the folder.
if mountpoint -q "$D/mnt" 2>/dev/null || grep -qs " $D/mnt " /proc/mounts; then
  "$BIN/chronicle-fs" unmount "$D/mnt" || umount -l "$D/mnt" || true
fi
rm -rf "$D"
mkdir -p "$D"/{hot,warm,cold,remote,mnt}
cat > "$D/chronicle.toml" <<TOML
# One file for every daemon; each reads its own sections.
[tiers]
hot    = "$D/hot"
warm   = "$D/warm"
cold   = "$D/cold"
remote = "file://$D/remote"

[log]
level  = "info"
format = "text"

[feed]
metrics_addr = ""   # the journal goes to [tiers] hot /feed/{venue}

[tier]
hot_to_warm  = true
hot_settle   = "0s"
cold_after   = "24h"
remote_after = "8760h"
metrics_addr = ""

[fs]
cache_bytes  = 268435456
metrics_addr = "127.0.0.1:0"
TOML
echo "demo folder: $D (config: $D/chronicle.toml)"

step "1. chronicle-feed: replay a real Binance USD-M capture into the hot journal"
if [ -f "$CAPTURE" ]; then
  "$BIN/chronicle-feed" replay --config "$D/chronicle.toml" --speed 0 --log-format text "$CAPTURE"
  find "$D/hot/feed" -type f -name '*.q' -printf '%p  %s bytes\n' | sort
else
  echo "capture not found at $CAPTURE (set CHRONICLE_SHARED); skipping the replay"
fi

step "2. partitions: 6 recent days and 3 from over a year ago in warm, today's in hot"
today=$(date -u +%F)
yesterday=$(date -u -d yesterday +%F)
old=$(date -u -d "400 days ago" +%F)
cold=$(date -u -d "3 days ago" +%F)
"$BIN/chronicle-etl" synth --config "$D/chronicle.toml" --symbols eth-usdt,btc-usdt --days 6 --end "$yesterday" --bytes 8MiB
"$BIN/chronicle-etl" synth --config "$D/chronicle.toml" --symbols eth-usdt --days 3 --end "$old" --bytes 8MiB
"$BIN/chronicle-etl" synth --root "$D/hot" --symbols eth-usdt --days 1 --end "$today" --bytes 4MiB
# Keep the originals' hashes to compare with what the mount serves after the moves.
( cd "$D" && find hot warm -name book.q | sort | while read -r f; do
    p=${f#*/}; printf '%s  %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$p"; done ) > "$D/originals.sha256"

step "3. chronicle-tier: plan, apply, status"
"$BIN/chronicle-tier" --config "$D/chronicle.toml" apply --dry-run
"$BIN/chronicle-tier" --config "$D/chronicle.toml" apply
"$BIN/chronicle-tier" --config "$D/chronicle.toml" status

step "4. chronicle-fs: one tree over every tier"
"$BIN/chronicle-fs" mount --config "$D/chronicle.toml" "$D/mnt" 2> "$D/fs.log" &
FS_PID=$!
trap 'kill -TERM $FS_PID 2>/dev/null || true; wait $FS_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -d "$D/mnt/v1" ] && break; sleep 0.1; done
ls "$D/mnt/v1"/*/*
echo
eth="$D/mnt/v1/binance-perp/eth-usdt"
for date in "$today" "$yesterday" "$cold" "$old"; do
  f="$eth/$date/book.q"
  tier=$(getfattr --only-values -n user.chronicle.tier "$f" 2>/dev/null || echo "?")
  printf '%-10s %-7s ' "$date" "$tier"
  dd if="$f" of=/dev/null bs=1M 2>&1 | tail -1
done

step "5. every book.q through the mount equals the original, byte for byte"
( cd "$D/mnt" && sha256sum -c --quiet "$D/originals.sha256" ) && echo "all $(wc -l < "$D/originals.sha256") partitions identical"

step "6. numpy and pandas read through the mount, whatever the tier"
"$PY" - "$eth" "$today" "$cold" "$old" <<'PYEOF'
import sys
sys.path.insert(0, "python")
import numpy as np, chronicle_q as q
base, dates = sys.argv[1], sys.argv[2:]
for d in dates:
    path = f"{base}/{d}/book.q"
    book = q.open_book(path)                                   # numpy.memmap of book.q
    npy = np.load(f"{base}/{d}/book.npy", mmap_mode="r")       # the virtual .npy: no helper code
    assert (np.asarray(npy) == np.asarray(book)).all()
    bbo = q.view(book, q.BBO)
    df = q.to_pandas(book[:100000], q.read_header(path))
    spread = (bbo["ask_price"] - bbo["bid_price"]).mean() / 1e8
    print(f"{d}: {len(book):>8} records, {len(bbo):>7} BBOs, mean spread {spread:.4f}, "
          f"first event {df['ts_exchange'].iloc[0]}")
PYEOF

step "done: unmounting"
kill -TERM $FS_PID
wait $FS_PID || true
trap - EXIT
echo "The demo folder stays at $D; run 'make demo' again to start over."
