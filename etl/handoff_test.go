package etl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var errStop = errors.New("test: stop here")

// TestSealHandoff is the refinery's side of the rule that it and the tier manager never act
// on the same partition at once: the sealed bit hands a partition over, and a refinery
// that stopped anywhere around a seal restarts without needing the partition back.
//
// The journal crosses midnight with a 1 s grace, so 2024-08-08 is sealed mid-run. The run
// is stopped (as a crash would) right after the checkpoint that records the partition as
// sealing, or right after its sealed bit; in the second case the partition is then moved
// out of the output root (as chronicle-tier does with sealed books). The restart must
// finish the seal or leave the moved partition alone, never recreate it, and end with
// the same tree as an uninterrupted run.
func TestSealHandoff(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := ethBusy(t, mid-60000, mid-45000, 200, 500, nil) // crosses midnight at step 90
	j.close()
	mut := func(c *Config) { c.SnapshotInterval = 10 * time.Second; c.Grace = time.Second }
	once := t.TempDir()
	refine(t, j, once, mut, nil)
	day := ethDir(once, "2024-08-08")
	if h, _ := readBook(t, filepath.Join(day, "book.q")); !h.Sealed {
		t.Fatal("the uninterrupted run did not seal 2024-08-08")
	}

	for _, stage := range []string{"checkpointed", "sealed"} {
		root := t.TempDir()
		cfg := Defaults()
		mut(&cfg)
		opt := Options{Config: cfg, Root: root, JournalDir: j.dir, hooks: testHooks{sealHook: func(s string) error {
			if s == stage {
				return errStop
			}
			return nil
		}}}
		if _, err := Refine(t.Context(), opt); !errors.Is(err, errStop) {
			t.Fatalf("%s: run stopped with %v", stage, err)
		}
		dir := ethDir(root, "2024-08-08")
		h, _ := readBook(t, filepath.Join(dir, "book.q"))
		if h.Sealed != (stage == "sealed") {
			t.Fatalf("%s: book sealed %v at the stop", stage, h.Sealed)
		}
		if m := readMeta(t, dir); !m.Sealed {
			t.Fatalf("%s: meta.json not sealed before the checkpoint", stage)
		}
		elsewhere := filepath.Join(t.TempDir(), "cold")
		if stage == "sealed" { // the tier manager moves the sealed partition away
			if err := os.Rename(dir, elsewhere); err != nil {
				t.Fatal(err)
			}
		}
		opt.hooks.sealHook = nil
		if _, err := Refine(t.Context(), opt); err != nil {
			t.Fatalf("%s: restart: %v", stage, err)
		}
		if stage == "sealed" {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("the restart recreated the moved partition %s (%v)", dir, err)
			}
			if err := os.Rename(elsewhere, dir); err != nil { // back, to compare trees
				t.Fatal(err)
			}
		}
		sameTree(t, once, root)
	}
}
