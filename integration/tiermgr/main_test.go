// Package tiermgr runs the real chronicle-tier binary as a separate process against real
// tier directories, a file:// remote and a real S3 server (versitygw): kill -9 at random
// moments, SIGTERM mid-move, the CLI's commands, /metrics, and the parquet deriver read by
// independent readers.
package tiermgr

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"

	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithCommands(m, "chronicle-tier"))
}

func key(date string) layout.Key {
	return layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: date}
}

// config writes a TOML file with the roots and, for S3, the [remote] section, and
// returns the arguments that point chronicle-tier at it.
func config(t testing.TB, e *lt.Env, srv *s3test.Server, extra string) []string {
	t.Helper()
	var remote objstore.Config
	if srv != nil {
		remote = testkit.S3Config(srv)
	}
	var b strings.Builder
	b.WriteString(testkit.ConfigTOML(e.Roots, remote))
	if srv != nil {
		b.WriteString("request_timeout = \"5s\"\n")
	}
	fmt.Fprintf(&b, "\n[tier]\nblock_size = 65536\nhot_settle = \"1h\"\n%s\n", extra)
	fmt.Fprintf(&b, "[log]\nlevel = \"info\"\nformat = \"json\"\n")
	p := filepath.Join(e.Dir, "chronicle.toml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", p}
}

// tier runs chronicle-tier to completion and returns stdout, stderr and the exit code.
func tier(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testenv.Bin("chronicle-tier"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("chronicle-tier %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func seed(t testing.TB) uint64 { return uint64(testenv.Seed(t)) }

func newRand(s uint64) *rand.Rand { return rand.New(rand.NewPCG(s, s^0xdeadbeef)) }
