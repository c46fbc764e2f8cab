package hardening

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/sandbox"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestSandboxApplies checks the emulation itself, so that the daemons' test cannot pass on a
// sandbox that does nothing: shell probes run in place of each daemon under its unit and
// must see the unit's user, capabilities, seccomp mode and file-system view, and must be
// refused what the unit forbids.
func TestSandboxApplies(t *testing.T) {
	sandbox.Skip(t)
	h := sandbox.NewHost(t, filepath.Join(testenv.RepoRoot(t), "deploy"))
	uid, _ := h.IDs(t, "chronicle")
	hot := h.Path("dev/shm/chronicle")
	probe := func(unit, script string) (string, error) {
		t.Helper()
		u := h.Unit(t, unit)
		out, err := h.Command(t, u, "ExecStart", sandbox.Options{Argv: []string{"/bin/sh", "-c", script}}).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for _, c := range []struct {
		unit, script, want string
		fails              bool
	}{
		{"chronicle-etl.service", "id -u", fmt.Sprint(uid), false},
		{"chronicle-etl.service", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t\\n' ' '",
			"CapEff: 0000000000000000 CapBnd: 0000000000000000 NoNewPrivs: 1 Seccomp: 2", false},
		{"chronicle-fs.service", "grep -E '^(CapEff|CapAmb):' /proc/self/status | tr -s '\\t\\n' ' '",
			"CapEff: 0000000000200000 CapAmb: 0000000000200000", false}, // CAP_SYS_ADMIN alone
		{"chronicle-etl.service", "umask", "0027", false},
		// ReadWritePaths= writable, the rest of the system read-only.
		{"chronicle-etl.service", "echo ok > " + hot + "/probe && cat " + hot + "/probe", "ok", false},
		{"chronicle-etl.service", "echo x > " + h.Path("etc/chronicle/probe"), "Read-only file system", true},
		{"chronicle-etl.service", "echo x > " + h.Path("mnt/hdd/chronicle/probe"), "Read-only file system", true},
		// PrivateTmp=, ProtectHome=, PrivateDevices=, ProtectProc=invisible.
		{"chronicle-etl.service", "touch /tmp/probe && ls -A /tmp", "probe", false},
		{"chronicle-etl.service", "ls -A /root", "Permission denied", true},
		{"chronicle-etl.service", "test -c /dev/null && test -d /dev/shm && test ! -e /dev/fuse && test ! -e /dev/vda && echo private", "private", false},
		{"chronicle-etl.service", "test ! -e /proc/1 && echo hidden", "hidden", false}, // other users' processes
		{"chronicle-fs.service", "test -e /proc/1 && test -c /dev/fuse && echo shared", "shared", false},
		// PrivateNetwork=: only lo.
		{"chronicle-etl.service", "cat /proc/self/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '", "lo", false},
		// RestrictNamespaces=, ~@mount, the allow list.
		{"chronicle-tier.service", "unshare -n true", "Operation not permitted", true},
		{"chronicle-etl.service", "mount -t tmpfs none /tmp", "", true},
		// ~@resources answers EPERM (SystemCallErrorNumber=); lacking CAP_SYS_NICE alone
		// would answer EACCES.
		{"chronicle-feed.service", "nice -n -5 true 2>&1", "Operation not permitted", false},
	} {
		out, err := probe(c.unit, c.script)
		if (err != nil) != c.fails || !strings.Contains(out, c.want) {
			t.Errorf("%s: %q: %q, err %v; want %q (fails: %v)", c.unit, c.script, out, err, c.want, c.fails)
		}
	}
	if _, err := os.Stat(filepath.Join(hot, "probe")); err != nil {
		t.Errorf("the probe's write to the hot root did not reach the host: %v", err)
	}
}
