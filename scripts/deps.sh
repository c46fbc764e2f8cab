#!/usr/bin/env bash
# Installs what a make target needs, only what is missing:
#   scripts/deps.sh demo     make demo: attr (getfattr), python3-numpy, python3-pandas,
#                            python3-matplotlib (the report's charts), and chronicle_q
#                            importable by /usr/bin/python3 from any folder (python below)
#   scripts/deps.sh s3       make demo S3=1: versitygw, the loopback S3 server
#   scripts/deps.sh test     make test: gcc + libc6-dev (cgo: go test -race, the bundled
#                            libzstd), zstd (the CLI reader), attr, numpy, pandas, matplotlib
#                            (TestDemo runs the demo), fuse3 (fusermount3: a mount without
#                            root), iproute2 + util-linux (tc, nsenter: a shaped link),
#                            systemd (systemd-analyze audits deploy/'s units; systemd-sysusers
#                            and -tmpfiles lay out integration/hardening's hosts; it does not
#                            become PID 1), setpriv (util-linux: the units' users and
#                            capabilities), versitygw
#                            python3-distributed (Dask: integration/research's research fleet),
#                            nodejs + npm and the npm package @duckdb/node-api in
#                            /usr/local/lib/chronicle-node (CHRONICLE_NODE_DIR): DuckDB reads
#                            the Hive tree in integration/research
#   scripts/deps.sh fleet    make demo FLEET=1: versitygw (s3), python3-distributed, iproute2,
#                            util-linux (the demo's research fleet on Dask)
#   scripts/deps.sh bench    make bench: test's, and rclone + s3fs (the peers of chronicle-fs)
#   scripts/deps.sh lint     make lint: staticcheck (go install, pinned)
#   scripts/deps.sh python   a chronicle_q.pth in /usr/bin/python3's site-packages naming this
#                            checkout's python/ folder
#   scripts/deps.sh          all of them
# Debian packages come from apt-get; versitygw is built with go install (a few minutes the
# first time). Each step says what it installs and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(demo s3 test bench lint python fleet)
want() { local t; for t in "${targets[@]}"; do for w in "$@"; do [ "$t" = "$w" ] && return 0; done; done; return 1; }
for t in "${targets[@]}"; do
  case $t in demo | s3 | test | bench | lint | python | fleet) ;; *) echo "deps: unknown target $t (demo, s3, test, bench, lint, python, fleet)" >&2; exit 2 ;; esac
done
secs() { echo $(( $(date +%s) - $1 )); }

need=()
add() { local p; for p in "$@"; do [[ " ${need[*]} " == *" $p "* ]] || need+=("$p"); done; }
if want demo test bench; then
  command -v getfattr >/dev/null || add attr
  /usr/bin/python3 -c 'import numpy' 2>/dev/null || add python3-numpy
  /usr/bin/python3 -c 'import pandas' 2>/dev/null || add python3-pandas
  /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || add python3-matplotlib
fi
if want test bench; then
  command -v gcc >/dev/null || add gcc libc6-dev
  command -v zstd >/dev/null || add zstd
  command -v fusermount3 >/dev/null || add fuse3
  command -v tc >/dev/null || add iproute2
  command -v nsenter >/dev/null || add util-linux
  command -v setpriv >/dev/null || add util-linux
  command -v systemd-analyze >/dev/null || add systemd # deploy: TestUnitExposure; integration/hardening
fi
if want test bench fleet; then
  /usr/bin/python3 -c 'import distributed' 2>/dev/null || add python3-distributed
  command -v tc >/dev/null || add iproute2
  command -v nsenter >/dev/null || add util-linux
fi
if want test bench; then
  command -v npm >/dev/null || add nodejs npm
fi
if want bench; then
  command -v rclone >/dev/null || add rclone fuse3
  command -v s3fs >/dev/null || add s3fs
fi
if [ ${#need[@]} -gt 0 ]; then
  t0=$(date +%s)
  echo "deps: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  echo "deps: Debian packages installed in $(secs "$t0") s"
fi

if want s3 test bench fleet; then
  VERSITYGW_VERSION=v1.8.0
  gobin=$(go env GOBIN); [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
  if ! command -v versitygw >/dev/null && [ ! -x "$gobin/versitygw" ]; then
    t0=$(date +%s)
    echo "deps: building versitygw $VERSITYGW_VERSION into $gobin (a few minutes, once)"
    GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
    echo "deps: versitygw built in $(secs "$t0") s"
  fi
fi

if want lint; then
  STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2
  gobin=$(go env GOBIN); [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
  if ! command -v staticcheck >/dev/null && [ ! -x "$gobin/staticcheck" ]; then
    t0=$(date +%s)
    echo "deps: building staticcheck $STATICCHECK_VERSION into $gobin"
    GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
    echo "deps: staticcheck built in $(secs "$t0") s"
  fi
fi

if want test bench; then
  # DuckDB for the tests that read the Hive tree (integration/research): the npm package,
  # pinned, in a folder of its own that every checkout shares.
  DUCKDB_VERSION=1.5.6-r.1
  node_dir=${CHRONICLE_NODE_DIR:-/usr/local/lib/chronicle-node}
  have=$(node -p "require('$node_dir/node_modules/@duckdb/node-api/package.json').version" 2>/dev/null || true)
  if [ "$have" != "$DUCKDB_VERSION" ]; then
    t0=$(date +%s)
    echo "deps: installing @duckdb/node-api $DUCKDB_VERSION into $node_dir (npm)"
    mkdir -p "$node_dir"
    if ! log=$(npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error "@duckdb/node-api@$DUCKDB_VERSION" 2>&1); then
      printf '%s\n' "$log" | tail -n 20 >&2
      echo "deps: npm could not install @duckdb/node-api $DUCKDB_VERSION into $node_dir (is the npm registry reachable? npm config get registry: $(npm config get registry))" >&2
      exit 1
    fi
    echo "deps: DuckDB for node installed in $(secs "$t0") s"
  fi
fi

if want demo python; then
  # chronicle_q is one file; a .pth file in the interpreter's site-packages puts this
  # checkout's python/ on its path, so `import chronicle_q` works from any folder.
  # (CHRONICLE_PYTHON_SITE names another folder: the test of this step.)
  site=${CHRONICLE_PYTHON_SITE:-$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')}
  pth="$site/chronicle_q.pth"
  dir="$PWD/python"
  if [ "$(cat "$pth" 2>/dev/null)" != "$dir" ]; then
    mkdir -p "$site"
    printf '%s\n' "$dir" > "$pth"
    echo "deps: chronicle_q importable by /usr/bin/python3 from any folder ($pth names $dir)"
  fi
fi
echo "deps: ok"
