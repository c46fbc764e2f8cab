#!/usr/bin/env bash
# Installs what the tests and the demo need, only when it is missing:
#   Debian: gcc + libc6-dev (cgo: go test -race, and the bundled libzstd encoder)
#   Debian: zstd (CLI reader), python3-numpy + python3-pandas (independent readers), attr (getfattr),
#           python3-matplotlib (the demo's charts)
#   Debian: rclone, s3fs, fuse3, iproute2 (the peers and the shaped link of `make bench`)
#   Debian: systemd (systemd-analyze audits deploy/'s units; systemd-sysusers and systemd-tmpfiles
#           lay out integration/hardening's test hosts; installing it does not make it PID 1),
#           util-linux (setpriv: the units' users and capabilities)
#   versitygw: the S3 server the remote-tier tests run on loopback (decisions.md)
set -euo pipefail

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev) # cgo: the race detector and libzstd
command -v zstd >/dev/null || need+=(zstd)
command -v getfattr >/dev/null || need+=(attr)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
/usr/bin/python3 -c 'import pandas' 2>/dev/null || need+=(python3-pandas)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib) # the demo's charts
command -v fusermount3 >/dev/null || need+=(fuse3) # chronicle-fs mounted by a user without root
# make bench: the peers chronicle-fs is measured against, and the shaped link (tc, nsenter)
command -v rclone >/dev/null || need+=(rclone fuse3)
command -v s3fs >/dev/null || need+=(s3fs)
command -v tc >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v systemd-analyze >/dev/null || need+=(systemd) # deploy: TestUnitExposure; integration/hardening
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

VERSITYGW_VERSION=v1.8.0
gobin=$(go env GOBIN); [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
if ! command -v versitygw >/dev/null && [ ! -x "$gobin/versitygw" ]; then
  echo "deps: installing versitygw $VERSITYGW_VERSION into $gobin (takes a few minutes)"
  GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi
echo "deps: ok"
