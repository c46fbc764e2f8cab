// Package hardening runs every daemon the way its unit in deploy/ tells systemd to run it,
// as far as a machine whose PID 1 is not systemd allows (internal/testkit/sandbox: the
// unit's user from sysusers.d, its folders from tmpfiles.d, its capability sets,
// no_new_privs, its mount and network namespaces and its seccomp filter, all read from the
// unit file), and shows each still does its job: the feed captures from the exchange
// simulator, the refinery refines and seals a day, the capture host's mount serves it with
// passthrough, the tier manager moves it to a versitygw bucket, and a research host's
// mount, made by the socket-activated fusermount3 helper, serves it from there.
package hardening

import (
	"os"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/sandbox"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the test binary is also the sandbox's launcher
	os.Exit(testenv.RunWithCommands(m, "chronicle-feed", "chronicle-etl", "chronicle-tier", "chronicle-fs"))
}
