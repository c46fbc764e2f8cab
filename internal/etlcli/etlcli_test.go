package etlcli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/cli"
)

// TestFlagsOverrideConfig: defaults, then the file, then the flags given; merge offers
// only the flags it reads.
func TestFlagsOverrideConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(cfg, []byte("[tiers]\nhot = \"/from/file/hot\"\nwarm = \"/from/file/warm\"\n[etl]\ngrace = \"2h\"\nvenues = [\"okx\"]\nlate_policy = \"late_stream\"\n"), 0o644)
	f := newFlags(cmdRun)
	if err := f.set.Parse([]string{"--config", cfg, "--warm", "/from/flag/warm", "--venues", "binance-perp,kraken-spot", "--snapshot-interval", "30s"}); err != nil {
		t.Fatal(err)
	}
	st, err := f.settings()
	if err != nil {
		t.Fatal(err)
	}
	if st.roots.Hot != "/from/file/hot" || st.roots.Warm != "/from/flag/warm" || st.cfg.Grace != 2*time.Hour || st.cfg.LatePolicy != "late_stream" ||
		strings.Join(st.cfg.Venues, ",") != "binance-perp,kraken-spot" || st.cfg.SnapshotInterval != 30*time.Second {
		t.Fatalf("settings %+v %+v", st.roots, st.cfg)
	}
	if f.set.Lookup("cold") != nil || f.set.Lookup("remote") != nil {
		t.Error("run offers tier flags it does not read")
	}
	// A bad value from a flag is the command line's; from the file, the file's.
	f = newFlags(cmdRun)
	f.set.Parse([]string{"--config", cfg, "--late-policy", "maybe"})
	if _, err := f.settings(); !cli.IsUsage(err) {
		t.Errorf("bad flag: %v, want a usage error", err)
	}
	os.WriteFile(cfg, []byte("[etl]\nlate_policy = \"maybe\"\n"), 0o644)
	f = newFlags(cmdRun)
	f.set.Parse([]string{"--config", cfg})
	if _, err := f.settings(); err == nil || cli.IsUsage(err) || !strings.Contains(err.Error(), cfg) {
		t.Errorf("bad key: %v, want a runtime error naming the file", err)
	}
	m := newFlags(cmdMerge)
	for _, name := range []string{"venues", "hot", "metrics-addr", "seal-all"} {
		if m.set.Lookup(name) != nil {
			t.Errorf("merge offers --%s", name)
		}
	}
	for _, name := range []string{"grace", "dim-symbol", "root", "log-level"} {
		if m.set.Lookup(name) == nil {
			t.Errorf("merge lacks --%s", name)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"backfill", "--help"}, {"merge", "--help"}, {"synth", "--help"}, {"status", "--help"}} {
		var out, errOut bytes.Buffer
		if code := Main(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "Examples:") {
			t.Errorf("%v: exit %d\n%s", args, code, out.String())
		}
	}
}
