package powercut

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/meta"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/lazyfs"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestPowerCutRefinery cuts the power while chronicle-etl backfills the COIN-M capture
// (two journal segments, a partition sealed mid-run by a short grace, every partition
// sealed at the end) into an output root on the lazy file system; the journal itself is on
// a durable disk. After each cut every file must be readable and the restarted backfill
// must end with a tree byte-identical to an uninterrupted run's (books, index/, meta.json
// but its ingest time): nothing the checkpoint acknowledged lost, nothing written twice.
func TestPowerCutRefinery(t *testing.T) {
	n := runs(t)
	rng := newRand(t)
	c := kit.Get("coinm")
	dir := t.TempDir()
	j := filepath.Join(dir, "J")
	run(t, "replay", "chronicle-feed", append([]string{"replay", "--speed", "0", "--venue", c.Venue, "--journal-dir", j,
		"--metrics-addr", "", "--log-level", "warn"}, c.Paths(testenv.CapturesDir())...)...)
	args := func(root string) []string {
		return []string{"backfill", "--log-level", "warn", "--root", root, "--seal-all", "--grace", "1m",
			"--checkpoint-interval", "5ms", "--snapshot-interval", "10s", j}
	}
	ref := filepath.Join(dir, "ref")
	run(t, "reference", "chronicle-etl", args(ref)...)
	want := treeFiles(t, ref)

	empty := t.TempDir()
	var full time.Duration
	for range 2 {
		lz := mountLazy(t, empty)
		t0 := time.Now()
		run(t, "calibration", "chronicle-etl", args(filepath.Join(lz.Dir(), "warm"))...)
		if d := time.Since(t0); full == 0 || d < full {
			full = d
		}
		sameTrees(t, want, treeFiles(t, filepath.Join(lz.Dir(), "warm")), "calibration")
		lz.Close()
	}
	t.Logf("an uninterrupted backfill takes %v on lazyfs; cutting the power at uniform moments within it", full)

	cuts := 0
	var last lazyfs.Stats
	for i := range n {
		lz := mountLazy(t, empty)
		root := filepath.Join(lz.Dir(), "warm")
		delay := time.Duration(rng.Int64N(int64(full)))
		cut, log := cutDuring(t, lz, delay, "chronicle-etl", args(root)...)
		if cut {
			cuts++
		}
		what := fmt.Sprintf("run %d (power cut after %v)", i, delay)
		t.Run(fmt.Sprintf("cut-%02d", i), func(t *testing.T) {
			readAll(t, lz.Dir())
			out := run(t, what+": the backfill after the cut", "chronicle-etl", args(root)...)
			_ = out
			if t.Failed() {
				t.Logf("cut run:\n%s", log)
			}
			sameTrees(t, want, treeFiles(t, root), what)
		})
		last = lz.Stats()
		lz.Close()
	}
	t.Logf("%d power cuts, %d before the backfill finished; lazyfs of the last run: %+v", n, cuts, last)
	if cuts < n/2 {
		t.Fatalf("only %d of %d cuts came before the end: the cut moments do not cover the run", cuts, n)
	}
}

// treeFiles maps every file below root (outside the refinery's state) to its bytes, with
// meta.json's ingest_time zeroed: the only field that is not a function of the journal.
func treeFiles(t testing.TB, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if fi.Name() == ".chronicle-etl" {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if fi.Name() == meta.FileName {
			m, err := meta.Parse(b, p)
			if err != nil {
				return err
			}
			m.IngestTime = 0
			if b, err = meta.Marshal(m); err != nil {
				return err
			}
		}
		out[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTrees(t testing.TB, want, got map[string][]byte, what string) {
	t.Helper()
	if len(want) == 0 || len(want) != len(got) {
		var a, b []string
		for k := range want {
			a = append(a, k)
		}
		for k := range got {
			b = append(b, k)
		}
		sort.Strings(a)
		sort.Strings(b)
		t.Fatalf("%s: files differ:\nwant %v\ngot  %v", what, a, b)
	}
	for k, v := range want {
		if !bytes.Equal(v, got[k]) {
			t.Fatalf("%s: %s differs (%d vs %d bytes)", what, k, len(v), len(got[k]))
		}
	}
}
