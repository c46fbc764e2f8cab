#!/usr/bin/env bash
# A research fleet on Dask on one machine (docs/research-fleet.md), as `make demo FLEET=1`
# runs it: a "hub" network namespace with a versitygw over the bucket's posix folder and the
# Dask scheduler; N workers, each a research host in a namespace of its own with its own
# 1 Gbit/s link to the hub (tc tbf on a veth pair), its own chronicle-fs mount of the bucket
# (the remote tier alone, a read-only user) and a dask-worker; then
# examples/fleet_book_stats.py maps its per-partition computation over every partition in
# the bucket and prints the table. Everything it started stops when it ends.
#
#   scripts/fleet.sh --posix DIR --bucket NAME --prefix PREFIX --access KEY --secret SECRET
#                    [--workers N] [--dir DIR] [--out table.csv]
#
# --posix is the folder a versitygw posix backend serves (DIR/NAME is the bucket), --access
# and --secret its root keys; the fleet's gateway serves the same folder. Root; needs
# iproute2, util-linux (nsenter), versitygw and python3-distributed (scripts/deps.sh fleet).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$(cd "${BIN:-bin}" && pwd)
PY=/usr/bin/python3
N=2 DIR="" OUT="" POSIX="" BUCKET="" PREFIX="" AK="" SK=""
while [ $# -gt 0 ]; do
  case $1 in
    --posix) POSIX=$2 ;; --bucket) BUCKET=$2 ;; --prefix) PREFIX=$2 ;; --access) AK=$2 ;; --secret) SK=$2 ;;
    --workers) N=$2 ;; --dir) DIR=$2 ;; --out) OUT=$2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fleet: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$POSIX" ] && [ -n "$BUCKET" ] && [ -n "$AK" ] && [ -n "$SK" ] || { echo "fleet: --posix, --bucket, --access and --secret are needed (--help)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "fleet: run as root (network namespaces, FUSE)" >&2; exit 1; }
VGW=${VERSITYGW:-$(command -v versitygw || echo "$(go env GOPATH 2>/dev/null)/bin/versitygw")}
[ -x "$VGW" ] || { echo "fleet: versitygw not found: run scripts/deps.sh fleet" >&2; exit 1; }
"$PY" -c 'import distributed' 2>/dev/null || { echo "fleet: Dask not installed: run scripts/deps.sh fleet" >&2; exit 1; }
DIR=${DIR:-$(mktemp -d /tmp/chronicle-fleet.XXXXXX)}
mkdir -p "$DIR/iam"

ID=$$
HUB=chr-fhub-$ID
NET=10.$((150 + ID % 50)).$((ID % 250))
PORT=7070
declare -a PIDS=() NETNS=() MOUNTS=()
cleanup() {
  local rc=$? p m n
  trap - EXIT INT TERM
  for ((p = ${#PIDS[@]} - 1; p >= 0; p--)); do kill -TERM "${PIDS[p]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  for m in "${MOUNTS[@]}"; do grep -qs " $m " /proc/mounts && umount -l "$m" || true; done
  for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; } # the mount namespace stays shared
bg() { local log=$1; shift; "$@" >>"$DIR/$log.log" 2>&1 & PIDS+=($!); } # a command, not a function: $! is its pid
wait_for() { # SECONDS WHAT CMD...
  local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "fleet: timed out waiting for $what (logs: $DIR/*.log)" >&2; exit 1; }
    sleep 0.2
  done
}
shape() { in_ns "$1" tc qdisc add dev "$2" root tbf rate 1gbit burst 256kb latency 50ms; }

# The hub: the bucket's gateway (its own IAM folder: the research user lives there) and the scheduler.
ip netns add "$HUB"; NETNS+=("$HUB")
ip -n "$HUB" link set lo up
bg s3 nsenter --net="/run/netns/$HUB" env ROOT_ACCESS_KEY="$AK" ROOT_SECRET_KEY="$SK" "$VGW" --port "0.0.0.0:$PORT" --region us-east-1 \
  --health /health --iam-dir "$DIR/iam" posix "$POSIX"
wait_for 20 "versitygw" in_ns "$HUB" "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health')"
# A read-only user (list and get below the prefix, nothing else): docs/research-hosts.md.
RO=research$RANDOM RS=$("$PY" -c 'import secrets; print(secrets.token_hex(20))')
in_ns "$HUB" "$VGW" admin --access "$AK" --secret "$SK" --endpoint-url "http://127.0.0.1:$PORT" create-user --access "$RO" --secret "$RS" --role user >/dev/null
in_ns "$HUB" "$PY" - "http://127.0.0.1:$PORT" "$BUCKET" "$PREFIX" "$RO" "$AK" "$SK" <<'PYEOF'
# PutBucketPolicy, signed with AWS Signature Version 4 (the standard library alone).
import datetime, hashlib, hmac, json, sys, urllib.request
endpoint, bucket, prefix, principal, ak, sk = sys.argv[1:]
objs = f"arn:aws:s3:::{bucket}/{prefix.strip('/')}/*" if prefix.strip("/") else f"arn:aws:s3:::{bucket}/*"
body = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": principal, "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"},
    {"Effect": "Allow", "Principal": principal, "Action": ["s3:GetObject"], "Resource": objs}]}).encode()
now = datetime.datetime.now(datetime.timezone.utc)
amz, day, region = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d"), "us-east-1"
host = endpoint.split("://", 1)[1]
ph = hashlib.sha256(body).hexdigest()
canon = f"PUT\n/{bucket}\npolicy=\nhost:{host}\nx-amz-content-sha256:{ph}\nx-amz-date:{amz}\n\nhost;x-amz-content-sha256;x-amz-date\n{ph}"
scope = f"{day}/{region}/s3/aws4_request"
sts = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canon.encode()).hexdigest()}"
k = ("AWS4" + sk).encode()
for part in (day, region, "s3", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
req = urllib.request.Request(f"{endpoint}/{bucket}?policy=", data=body, method="PUT", headers={
    "x-amz-date": amz, "x-amz-content-sha256": ph,
    "Authorization": f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"})
urllib.request.urlopen(req).read()
PYEOF
bg scheduler nsenter --net="/run/netns/$HUB" "$PY" -m distributed.cli.dask_scheduler --host 0.0.0.0 --port 8786 --no-dashboard
wait_for 60 "dask-scheduler" in_ns "$HUB" "$PY" -c "import socket; socket.create_connection(('127.0.0.1', 8786), 1)"

REMOTE="s3://$BUCKET"; [ -n "$PREFIX" ] && REMOTE="$REMOTE/${PREFIX#/}"
for ((i = 0; i < N; i++)); do
  ws=chr-fw$i-$ID hd=fh$i-$ID wd=fw$i-$ID hub_ip=$NET.$((4 * i + 1)) ip=$NET.$((4 * i + 2))
  ip netns add "$ws"; NETNS+=("$ws")
  ip link add "$hd" type veth peer name "$wd"
  ip link set "$hd" netns "$HUB"; ip link set "$wd" netns "$ws"
  ip -n "$HUB" addr add "$hub_ip/30" dev "$hd"; ip -n "$HUB" link set "$hd" up
  ip -n "$ws" addr add "$ip/30" dev "$wd"; ip -n "$ws" link set "$wd" up; ip -n "$ws" link set lo up
  shape "$HUB" "$hd"; shape "$ws" "$wd"
  w=$DIR/w$i
  mkdir -p "$w/mnt"
  cat > "$w/research.toml" <<TOML
[tiers]
hot = ""
warm = ""
cold = ""
remote = "$REMOTE"

[remote]
endpoint = "http://$hub_ip:$PORT"
region = "us-east-1"
path_style = true
access_key = "$RO"
secret_key = "$RS"

[fs]
metrics_addr = ""
disk_cache_dir = "$w/cache"

[log]
level = "warn"
TOML
  bg "w$i-fs" nsenter --net="/run/netns/$ws" "$BIN/chronicle-fs" mount --config "$w/research.toml" "$w/mnt"
  MOUNTS+=("$w/mnt")
  wait_for 30 "worker $i's mount" test -d "$w/mnt/v1"
  bg "w$i-dask" nsenter --net="/run/netns/$ws" env CHRONICLE_ROOT="$w/mnt" "$PY" -m distributed.cli.dask_worker "tcp://$hub_ip:8786" \
    --name "w$i" --nthreads 2 --no-nanny --no-dashboard --memory-limit 0 --local-directory "$w/dask"
  echo "fleet: worker $i: namespace $ws, $ip over a 1 Gbit/s link, chronicle-fs at $w/mnt, dask-worker w$i"
done
args=(--scheduler tcp://127.0.0.1:8786 --workers "$N")
[ -n "$OUT" ] && args+=(--out "$OUT")
in_ns "$HUB" "$PY" "$REPO/examples/fleet_book_stats.py" "${args[@]}"
