package etl

import (
	"errors"
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
	ops := faultEveryStep(t, StateDir, "binance-perp.state", faults.Error, faults.Crash)
	if ops[faults.OpRename] < 2 {
		t.Fatalf("%d checkpoints, want the seal's and the end's", ops[faults.OpRename])
	}
}

// TestPartitionWriteFaults does the same for every step of what the refinery writes
// through its FS into a partition's directory: the directory made at its opening, its
// meta.json (at the opening, then sealed), its index/ files and the directory's fsync at
// the seal. As a crash only (the failed step and everything after it, the temporary
// file's removal too), which is also what an error does to the run, less the cleanup: the
// 50 steps twice over would double the test's time for little.
func TestPartitionWriteFaults(t *testing.T) {
	faultEveryStep(t, "2024-08-08", "2024-08-08", faults.Crash)
}

// faultEveryStep refines a journal that crosses midnight (2024-08-08 is sealed mid-run)
// once without faults, then records the operations of a run through a recording FS whose
// path contains where, and fails each of them in turn (but reads: a directory looked up
// before it is made) in each of modes. Each run must stop with the injected
// fault in an error that contains named; its restart on the real filesystem must end with
// the uninterrupted run's tree. It returns how many operations of each kind it failed.
func faultEveryStep(t *testing.T, where, named string, modes ...faults.Mode) map[faults.Op]int {
	mid := ms("2024-08-09T00:00:00Z")
	j := ethBusy(t, mid-60000, mid-45000, 200, 500, nil)
	j.close()
	cfg := Defaults()
	cfg.SnapshotInterval, cfg.Grace, cfg.CheckpointInterval = 10*time.Second, time.Second, time.Hour
	once := t.TempDir()
	if _, err := Refine(t.Context(), Options{Config: cfg, Root: once, JournalDir: j.dir}); err != nil {
		t.Fatal(err)
	}
	filter := func(_ faults.Op, path string) bool { return strings.Contains(path, where) }
	rec := faults.Recorder()
	rec.Filter = filter
	if _, err := Refine(t.Context(), Options{Config: cfg, Root: t.TempDir(), JournalDir: j.dir, FS: faults.NewFS(nil, rec)}); err != nil {
		t.Fatal(err)
	}
	events := rec.Events()
	ops := map[faults.Op]int{}
	for _, ev := range events {
		if ev.Op != faults.OpStat {
			ops[ev.Op]++
		}
	}
	for _, op := range []faults.Op{faults.OpMkdir, faults.OpCreate, faults.OpWrite, faults.OpChmod, faults.OpSync, faults.OpClose, faults.OpRename, faults.OpSyncDir} {
		if ops[op] == 0 {
			t.Fatalf("no %s in %s (events %v)", op, where, events)
		}
	}
	t.Logf("%d operations in %s, each failed (%v)", len(events), where, modes)
	for i, ev := range events {
		if ev.Op == faults.OpStat {
			continue
		}
		for _, mode := range modes {
			root := t.TempDir()
			in := faults.New(i, mode)
			in.Filter = filter
			_, err := Refine(t.Context(), Options{Config: cfg, Root: root, JournalDir: j.dir, FS: faults.NewFS(nil, in)})
			if fired, ok := in.Fired(); !ok || fired.Op != ev.Op {
				t.Fatalf("%s %s: fired %v %v, want %v", ev, mode, fired, ok, ev)
			}
			if !errors.Is(err, faults.ErrInjected) {
				t.Fatalf("%s %s: run ended with %v, want the injected fault", ev, mode, err)
			}
			if !strings.Contains(err.Error(), named) {
				t.Fatalf("%s %s: error %q does not name %s", ev, mode, err, named)
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
	return ops
}
