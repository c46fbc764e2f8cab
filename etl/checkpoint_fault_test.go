package etl

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/faults"
)

// TestCheckpointFaults fails each write step of the refinery's checkpoint in turn (make its
// directory, create the temporary file, write, chmod, fsync, close, rename, fsync the
// directory), once as an error and once as a crash (that operation and every later one
// fail), at every checkpoint of a backfill: the one a mid-run seal takes and the final one.
// The run must stop with an error naming the checkpoint, and a restart must end with the
// tree an uninterrupted run writes: nothing is lost and nothing written twice.
func TestCheckpointFaults(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := ethBusy(t, mid-60000, mid-45000, 200, 500, nil) // crosses midnight: 2024-08-08 is sealed mid-run
	j.close()
	cfg := Defaults()
	cfg.SnapshotInterval, cfg.Grace, cfg.CheckpointInterval = 10*time.Second, time.Second, time.Hour
	once := t.TempDir()
	if _, err := Refine(t.Context(), Options{Config: cfg, Root: once, JournalDir: j.dir}); err != nil {
		t.Fatal(err)
	}

	inState := func(_ faults.Op, path string) bool { return strings.Contains(path, StateDir) }
	rec := faults.Recorder()
	rec.Filter = inState
	if _, err := Refine(t.Context(), Options{Config: cfg, Root: t.TempDir(), JournalDir: j.dir, FS: faults.NewFS(nil, rec)}); err != nil {
		t.Fatal(err)
	}
	events := rec.Events()
	steps := map[faults.Op]int{}
	for _, ev := range events {
		steps[ev.Op]++
	}
	// Two checkpoints (the seal's, the end's), each every step of an atomic replace.
	for _, op := range []faults.Op{faults.OpMkdir, faults.OpCreate, faults.OpWrite, faults.OpChmod, faults.OpSync, faults.OpClose, faults.OpRename, faults.OpSyncDir} {
		if steps[op] == 0 {
			t.Fatalf("the checkpoint never went through %s (events %v)", op, events)
		}
	}
	if steps[faults.OpRename] < 2 {
		t.Fatalf("%d checkpoints, want the seal's and the end's (events %v)", steps[faults.OpRename], events)
	}

	t.Logf("%d operations, each failed as an error and as a crash", len(events))
	statePath := StatePath(once, "binance-perp")
	for i, ev := range events {
		if ev.Op == faults.OpStat {
			continue // reads: the checkpoint's directory is looked up before it is made
		}
		for _, mode := range []faults.Mode{faults.Error, faults.Crash} {
			root := t.TempDir()
			in := faults.New(i, mode)
			in.Filter = inState
			_, err := Refine(t.Context(), Options{Config: cfg, Root: root, JournalDir: j.dir, FS: faults.NewFS(nil, in)})
			fired, ok := in.Fired()
			if !ok || fired.Op != ev.Op {
				t.Fatalf("%s %s: fired %v %v, want %v", ev, mode, fired, ok, ev)
			}
			if !errors.Is(err, faults.ErrInjected) {
				t.Fatalf("%s %s: run ended with %v, want the injected fault", ev, mode, err)
			}
			if !strings.Contains(err.Error(), filepath.Base(statePath)) && !strings.Contains(err.Error(), StateDir) {
				t.Fatalf("%s %s: error %q names no checkpoint file", ev, mode, err)
			}
			// The restart, on the real filesystem, finishes the work exactly once.
			st, err := Refine(t.Context(), Options{Config: cfg, Root: root, JournalDir: j.dir})
			if err != nil {
				t.Fatalf("%s %s: restart: %v", ev, mode, err)
			}
			if st.Diverged != 0 {
				t.Fatalf("%s %s: restart diverged in %d records", ev, mode, st.Diverged)
			}
			sameTree(t, once, root)
			noTemps(t, root)
		}
	}
}
