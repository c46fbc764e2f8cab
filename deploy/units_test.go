package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// exposure is the most each unit may score in systemd's own audit (`systemd-analyze
// security --offline=yes`, 0 safest, 10 unsafe). docs/reliability.md gives each unit's
// score and what every remaining item is needed for.
var exposure = map[string]float64{
	"chronicle-feed.service":        2.0,
	"chronicle-etl.service":         2.0,
	"chronicle-tier.service":        2.0,
	"chronicle-fs.service":          5.0, // CAP_SYS_ADMIN, and no mount namespace of its own
	"chronicle-fs-research.service": 3.0,
	"chronicle-fs-mount@.service":   5.0, // root with CAP_SYS_ADMIN only: runs fusermount3
}

var overall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// TestUnitExposure audits every unit in deploy/ with systemd-analyze and fails if one
// exposes more than its bound (or is not listed here). It prints each figure.
func TestUnitExposure(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is missing (Debian package systemd; scripts/deps.sh installs it): unit exposure not audited")
	}
	units, err := filepath.Glob("*.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		if _, ok := exposure[u]; !ok {
			t.Errorf("%s: no exposure bound: add it to this test's table and to docs/reliability.md", u)
		}
	}
	for name, bound := range exposure {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(name); err != nil {
				t.Fatal(err)
			}
			// --threshold counts tenths: exit status 1 above it.
			cmd := exec.Command("systemd-analyze", "security", "--offline=yes", fmt.Sprintf("--threshold=%d", int(bound*10+0.5)), name)
			out, err := cmd.CombinedOutput()
			m := overall.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no overall exposure in the output of %v: %v\n%s", cmd.Args, err, out)
			}
			t.Logf("%s: exposure %s (bound %.1f)", name, m[1], bound)
			if err != nil {
				var failed []string
				for _, l := range strings.Split(string(out), "\n") {
					if strings.HasPrefix(l, "✗") {
						failed = append(failed, l)
					}
				}
				t.Fatalf("%s: exposure %s is above %.1f (%v); the items it fails:\n%s", name, m[1], bound, err, strings.Join(failed, "\n"))
			}
		})
	}
}
