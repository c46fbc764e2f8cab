package powercut

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/lazyfs"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// TestPowerCutTier cuts the power during `chronicle-tier apply` moving four partitions
// through every policy (hot -> warm -> cold -> file:// remote, all on the lazy file
// system). Right after each cut every partition must read back identically from some
// tier (the move's source is never given up before its copy is durable); after the next
// apply each is in exactly one tier, where the policies put it, with no temporary file,
// leftover directory or orphan object.
func TestPowerCutTier(t *testing.T) {
	n := runs(t)
	rng := newRand(t)
	key := func(date string) layout.Key { return layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: date} }
	parts := []lt.Partition{
		lt.NewPartition(t, key("2024-08-08"), 3000, 1),
		lt.NewPartition(t, key("2025-06-01"), 3000, 2),
		lt.NewPartition(t, key("2023-01-01"), 3000, 3),
		lt.NewPartition(t, key("2025-12-31"), 3000, 4),
	}
	from := []layout.Tier{layout.Hot, layout.Warm, layout.Cold, layout.Hot}
	want := []layout.Tier{layout.Remote, layout.Cold, layout.Remote, layout.Warm}

	// The seed tree: partitions placed in their first tier, an empty remote.
	seed := t.TempDir()
	se := lt.NewEnv(t, seed, nil)
	for i, p := range parts {
		se.Place(t, p, from[i])
	}
	os.MkdirAll(filepath.Join(seed, "remote"), 0o755)

	setup := func() (*lazyEnv, []string) {
		lz := mountLazy(t, seed)
		m := lz.Dir()
		store, err := objstore.Open(context.Background(), "file://"+filepath.Join(m, "remote"), objstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		e := &lt.Env{Dir: m, Store: store, Ignore: map[layout.Key]bool{}, Roots: layout.Roots{
			Hot: filepath.Join(m, "hot"), Warm: filepath.Join(m, "warm"), Cold: filepath.Join(m, "cold"), Remote: store.URI("")}}
		cfg := filepath.Join(t.TempDir(), "chronicle.toml")
		os.WriteFile(cfg, fmt.Appendf(nil, "[tiers]\nhot = %q\nwarm = %q\ncold = %q\nremote = %q\n[tier]\nblock_size = 65536\nhot_settle = \"1h\"\n",
			e.Roots.Hot, e.Roots.Warm, e.Roots.Cold, e.Roots.Remote), 0o644)
		return &lazyEnv{lz: lz, e: e}, []string{"--config", cfg, "--now", "2026-01-01T12:00:00Z", "--metrics-addr", "", "apply"}
	}

	// Calibrate: an uninterrupted apply on the lazy file system.
	var full time.Duration
	for range 3 {
		le, args := setup()
		t0 := time.Now()
		run(t, "calibration", "chronicle-tier", args...)
		if d := time.Since(t0); full == 0 || d < full {
			full = d
		}
		checkTiers(t, le.e, parts, want)
		le.lz.Close()
	}
	t.Logf("an uninterrupted apply takes %v on lazyfs; cutting the power at uniform moments within it", full)

	cuts := 0
	var lastStats lazyfs.Stats
	for i := range n {
		le, args := setup()
		delay := time.Duration(rng.Int64N(int64(full)))
		cut, log := cutDuring(t, le.lz, delay, "chronicle-tier", args...)
		if cut {
			cuts++
		}
		what := fmt.Sprintf("run %d (power cut after %v)", i, delay)
		t.Run(fmt.Sprintf("cut-%02d", i), func(t *testing.T) {
			readAll(t, le.lz.Dir())
			le.e.CheckReadable(t, parts)
			out := run(t, what+": the apply after the cut", "chronicle-tier", args...)
			if strings.Contains(out, `"level":"ERROR"`) {
				t.Logf("%s: errors logged by the apply after the cut:\n%s\ncut run:\n%s", what, out, log)
			}
			checkTiers(t, le.e, parts, want)
		})
		lastStats = le.lz.Stats()
		le.lz.Close()
	}
	t.Logf("%d power cuts, %d before the apply finished; lazyfs of the last run: %+v", n, cuts, lastStats)
	if cuts < n/2 {
		t.Fatalf("only %d of %d cuts came before the end: the cut moments do not cover the run", cuts, n)
	}
}

type lazyEnv struct {
	lz *lazyfs.FS
	e  *lt.Env
}

func checkTiers(t *testing.T, e *lt.Env, parts []lt.Partition, want []layout.Tier) {
	t.Helper()
	got := e.Check(t, parts)
	for j, p := range parts {
		if got[p.Key] != want[j] {
			t.Fatalf("%s in %s, want %s", p.Key, got[p.Key], want[j])
		}
	}
}
