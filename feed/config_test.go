package feed

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/venue/binance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigFromSharedFile(t *testing.T) {
	cfg := Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	text := `
[tiers]
hot = "/elsewhere"
[feed]
symbols = ["BTCUSDT", "ETHUSDT"]
streams = ["depth", "aggTrade"]
depth_speed = "100ms"
roll_period = "15m"
conn_max_age = "12h"
chunk_size = 16777216
ws_routes = { depth = "/public", aggTrade = "/market" }
`
	if err := config.Decode(text, "c.toml", map[string]any{"feed": &cfg}); err != nil {
		t.Fatal(err)
	}
	if cfg.RollPeriod != 15*time.Minute || cfg.ConnMaxAge != 12*time.Hour || cfg.ChunkSize != 16<<20 || cfg.DepthSpeed != "100ms" ||
		len(cfg.Symbols) != 2 || cfg.WSRoutes["depth"] != "/public" || cfg.Dir() != journal.Dir("/dev/shm/chronicle", "binance-perp") {
		t.Fatalf("decoded %+v", cfg)
	}
	f, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Plan(); len(p) != 2 || !strings.HasPrefix(p[0].URL, "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms") {
		t.Fatalf("plan %+v", p)
	}
	if err := config.Decode("[feed]\nroll_perod = \"1h\"\n", "c.toml", map[string]any{"feed": &cfg}); err == nil {
		t.Fatal("typo accepted")
	}
	for name, mut := range map[string]func(*Config){
		"roll":     func(c *Config) { c.RollPeriod = time.Millisecond },
		"chunk":    func(c *Config) { c.ChunkSize = 10 },
		"size":     func(c *Config) { c.MaxSegmentSize = c.ChunkSize - 1 },
		"jitter":   func(c *Config) { c.RolloverJitter = c.ConnMaxAge },
		"backoff":  func(c *Config) { c.ReconnectMax = c.ReconnectMin / 2 },
		"no dir":   func(c *Config) { c.HotRoot, c.JournalDir = "", "" },
		"msg size": func(c *Config) { c.MaxMessageBytes = 100 },
	} {
		c := Defaults()
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Every option out of range is refused at start, by a New that names it (and never
	// later by a panic: a negative snapshot_retry_max used to reach rand.N).
	for _, tc := range []struct {
		toml, key string
	}{
		{`snapshot_retry_max = "-1s"`, "snapshot_retry_max"},
		{`snapshot_retry_max = "0s"`, "snapshot_retry_max"},
		{`rest_timeout = "0s"`, "rest_timeout"},
		{`rest_timeout = "-5s"`, "rest_timeout"},
		{`dial_timeout = "0s"`, "dial_timeout"},
		{`dial_timeout = "-1s"`, "dial_timeout"},
		{`snapshot_limit = -10`, "snapshot_limit"},
		{`precreate_lead = "-1s"`, "precreate_lead"},
		{`precreate_lead = "2h"`, "precreate_lead"},
		{`retention_every = "0s"`, "retention_every"},
		{`retention_min_age = "-1h"`, "retention_min_age"},
		{`ping_interval = "0s"`, "ping_interval"},
		{`overlap_timeout = "-1s"`, "overlap_timeout"},
		{`rest_weight_per_min = -1`, "rest_weight_per_min"},
		{`rest_weight_window = "-1s"`, "rest_weight_window"},
		{`max_streams_per_conn = -1`, "max_streams_per_conn"},
		{`symbols = ["ETHUSDT", ""]`, "symbols"},
	} {
		c := Defaults()
		if err := config.Decode("[feed]\n"+tc.toml+"\n", "c.toml", map[string]any{"feed": &c}); err != nil {
			t.Fatalf("%s: %v", tc.toml, err)
		}
		_, err := New(c, nil, nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v, want an invalid-config error naming %s", tc.toml, err, tc.key)
		}
	}
	c := Defaults()
	c.Venue = "okx-swap"
	if _, err := New(c, nil, nil); !errors.Is(err, ErrUnknownVenue) {
		t.Fatalf("unknown venue: %v", err)
	}
	c = Defaults()
	c.Symbols = []string{"BAD SYMBOL"}
	if _, err := New(c, nil, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad symbol: %v", err)
	}
}

// TestCommandLine runs the built binary: help, usage errors, and a replay.
func TestCommandLine(t *testing.T) {
	bin := feedBinary(t)
	out, err := exec.Command(bin, "--help").Output()
	if err != nil || !strings.Contains(string(out), "Examples:") || !strings.Contains(string(out), "--roll-period") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{{nil, 2}, {[]string{"bogus"}, 2}, {[]string{"run", "--no-such-flag"}, 2}, {[]string{"run", "--config", "/nonexistent.toml"}, 1}} {
		err := exec.Command(bin, tc.args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
			t.Errorf("%v: exit %v, want %d", tc.args, err, tc.code)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "replay", "--speed", "0", "--journal-dir", dir, "--metrics-addr", "", captures+"cryptofeed_binance-futures.ws.txt")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	n := 0
	for _, r := range readJournal(t, dir) {
		if r.TypeID == 1 {
			n++
		}
	}
	if n != 1535 {
		t.Fatalf("replay journaled %d messages", n)
	}
	if _, err := os.Stat(filepath.Join(dir, ".lock")); err != nil {
		t.Fatalf("lock file: %v", err)
	}
}

// The default venue is one the mains link, and it is Binance's USD-M perpetuals.
func TestDefaultVenue(t *testing.T) {
	if DefaultVenue != binance.Name {
		t.Fatalf("DefaultVenue %q, venue/binance's Name %q", DefaultVenue, binance.Name)
	}
	if _, err := LookupVenue(Defaults().Venue); err != nil {
		t.Fatal(err)
	}
}
