package powercut

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/lazyfs"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
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
	n := testenv.CrashRuns(t)
	rng := newRand(t)
	crash := lt.NewCrash(t)

	// The seed tree: partitions placed in their first tier, an empty remote.
	seed := t.TempDir()
	crash.Place(t, lt.NewEnv(t, seed, nil))
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
		os.WriteFile(cfg, []byte(testkit.ConfigTOML(e.Roots, objstore.Config{})+"[tier]\nblock_size = 65536\nhot_settle = \"1h\"\n"), 0o644)
		return &lazyEnv{lz: lz, e: e}, []string{"--config", cfg, "--now", lt.CrashNow, "--metrics-addr", "", "apply"}
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
		crash.CheckFinal(t, le.e)
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
			le.e.CheckReadable(t, crash.Parts)
			out := run(t, what+": the apply after the cut", "chronicle-tier", args...)
			if strings.Contains(out, `"level":"ERROR"`) {
				t.Logf("%s: errors logged by the apply after the cut:\n%s\ncut run:\n%s", what, out, log)
			}
			crash.CheckFinal(t, le.e)
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
