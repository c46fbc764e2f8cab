package lifecycle_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/faults"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// faultScenario is one policy run on one partition.
type faultScenario struct {
	name   string
	start  layout.Tier
	now    string
	want   layout.Tier // where a clean run leaves the partition
	derive bool
}

var faultScenarios = []faultScenario{
	{name: "hot-to-warm", start: layout.Hot, now: "2024-08-09T12:00:00Z", want: layout.Warm},
	{name: "warm-to-cold", start: layout.Warm, now: "2024-09-01T00:00:00Z", want: layout.Cold},
	{name: "warm-to-cold-parquet", start: layout.Warm, now: "2024-09-01T00:00:00Z", want: layout.Cold, derive: true},
	{name: "cold-to-remote", start: layout.Cold, now: "2026-01-01T00:00:00Z", want: layout.Remote},
}

// remoteBackend makes a fresh, empty remote store per run.
type remoteBackend struct {
	name string
	open func(t *testing.T, run int) objstore.Store
}

// backends returns file:// and a real S3 server (versitygw, living as long as parent).
func backends(parent *testing.T) []remoteBackend {
	srv := s3test.Start(parent)
	var mu sync.Mutex
	runs := 0
	s3 := func(t *testing.T, run int) objstore.Store {
		mu.Lock()
		runs++
		prefix := fmt.Sprintf("run-%d", runs)
		mu.Unlock()
		return lt.S3Store(t, srv, prefix)
	}
	return []remoteBackend{
		{name: "file", open: func(t *testing.T, run int) objstore.Store { return testkit.FileStore(t) }},
		{name: "s3", open: s3},
		// Stores without create-only Puts: the claim is taken by create-then-verify.
		{name: "file-noconditional", open: func(t *testing.T, run int) objstore.Store { return lt.NoConditional(testkit.FileStore(t)) }},
		{name: "s3-noconditional", open: func(t *testing.T, run int) objstore.Store { return lt.NoConditional(s3(t, run)) }},
	}
}

// TestFaultAtEveryStep runs each policy once recording every filesystem and object store
// operation, then again once per operation, failing it (error), stopping everything from
// it on (crash), or altering its data (corrupt). After each faulty run the partition must
// still read back identically; after a restart with a healthy filesystem and store it must
// be in exactly one tier, identical, with no temporary file, leftover or orphan object,
// and the move must be finished (or rolled back and redone by the same run).
//
// By default every step that writes, syncs, renames, removes, reads data or talks to the
// store is faulted at each of its occurrences, and one in four of the metadata operations
// (readdir, stat, open, close); the S3 remote runs for the policy that uses it. With
// CHRONICLE_FAULT_FULL=1 every operation of every policy against both remotes is faulted
// (about 10 minutes under -race). -short samples metadata one in eight and skips S3. Under
// -race the default faults one step in three (raceEnabled).
func TestFaultAtEveryStep(t *testing.T) {
	full := os.Getenv("CHRONICLE_FAULT_FULL") != ""
	var bs []remoteBackend
	if testing.Short() && !full {
		bs = []remoteBackend{{name: "file", open: func(t *testing.T, run int) objstore.Store { return testkit.FileStore(t) }}}
	} else {
		bs = backends(t)
	}
	for _, sc := range faultScenarios {
		for _, be := range bs {
			if !full && be.name != "file" && sc.start != layout.Cold {
				continue // the local policies never touch the store
			}
			t.Run(sc.name+"/"+be.name, func(t *testing.T) {
				t.Parallel()
				every := 4
				switch {
				case full:
					every = 1
				case testing.Short():
					every = 8
				}
				stride := 1
				if raceEnabled && !full {
					stride, every = 3, 3*every
				}
				runFaultScenario(t, sc, be, every, stride)
			})
		}
	}
}

func runFaultScenario(t *testing.T, sc faultScenario, be remoteBackend, metadataEvery, stride int) {
	p := lt.NewPartition(t, key("2024-08-08"), 1200, 42)
	cfg := testConfig()
	cfg.BlockSize = 16 << 10
	cfg.Threads = 1 // one operation order per run
	if sc.derive {
		cfg.Derive = lifecycle.DeriveParquet
	}
	run := 0
	setup := func() *lt.Env {
		run++
		e := lt.NewEnv(t, testenv.FastDir(t), be.open(t, run))
		e.Place(t, p, sc.start)
		return e
	}
	faulty := func(e *lt.Env, in *faults.Injector) (lifecycle.Result, error) {
		m := newManager(t, e, cfg, sc.now, func(o *lifecycle.Options) {
			o.FS = faults.NewFS(nil, in)
			o.Store = &faults.Store{Store: e.Store, In: in}
		})
		return m.Apply(context.Background(), nil)
	}

	// The recording run: the operations, and the expected outcome.
	rec := faults.Recorder()
	e := setup()
	if res, err := faulty(e, rec); err != nil || res.Failed != 0 || res.Moved != 1 {
		t.Fatalf("clean run: %+v %v", res, err)
	}
	if got := e.Check(t, []lt.Partition{p})[p.Key]; got != sc.want {
		t.Fatalf("clean run left the partition in %s, want %s", got, sc.want)
	}
	events := rec.Events()
	kinds := map[faults.Op]int{}
	for _, ev := range events {
		kinds[ev.Op]++
	}
	t.Logf("%d operations: %v", len(events), kinds)

	tried := 0
	for i, ev := range events {
		if metadata(ev.Op) && i%metadataEvery != 0 || !metadata(ev.Op) && i%stride != 0 {
			continue
		}
		tried++
		for _, mode := range []faults.Mode{faults.Error, faults.Crash, faults.Corrupt} {
			if mode == faults.Corrupt && !corruptible(ev.Op) {
				continue
			}
			what := fmt.Sprintf("%s at %s", mode, ev)
			e := setup()
			in := faults.New(i, mode)
			res, err := faulty(e, in)
			if err != nil && !strings.Contains(err.Error(), faults.ErrInjected.Error()) {
				t.Fatalf("%s: apply: %v", what, err)
			}
			if _, fired := in.Fired(); !fired {
				t.Fatalf("%s: the fault never fired (%d operations this time)", what, len(in.Events()))
			}
			// Whatever happened, readers see the original bytes.
			e.CheckReadable(t, []lt.Partition{p})
			// A restart with everything healthy finishes the job.
			m := newManager(t, e, cfg, sc.now)
			res2, err := m.Apply(context.Background(), nil)
			if err != nil || res2.Failed != 0 {
				t.Fatalf("%s: restart: %+v %v (faulty run: %+v)", what, res2, err, res)
			}
			if got := e.Check(t, []lt.Partition{p})[p.Key]; got != sc.want {
				t.Fatalf("%s: after restart the partition is in %s, want %s", what, got, sc.want)
			}
			if sc.derive {
				checkParquet(t, e, p)
			}
		}
	}
	t.Logf("faulted %d of %d operations (metadata operations one in %d, others one in %d)", tried, len(events), metadataEvery, stride)
}

// metadata operations change nothing and move no data.
func metadata(op faults.Op) bool {
	switch op {
	case faults.OpReadDir, faults.OpStat, faults.OpOpen, faults.OpClose:
		return true
	}
	return false
}

func corruptible(op faults.Op) bool {
	switch op {
	case faults.OpWrite, faults.OpRead, faults.OpPut, faults.OpHead, faults.OpGet:
		return true
	}
	return false
}

// checkParquet: the derived file is there and reads back with one row per record.
func checkParquet(t *testing.T, e *lt.Env, p lt.Partition) {
	t.Helper()
	path := testkit.PartDir(e.Roots.Cold, p.Key) + "/derived/book.parquet"
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("derived parquet: %v", err)
	}
	defer f.Close()
	st, _ := f.Stat()
	sum, err := lifecycle.ReadParquetSum(f, st.Size(), path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(p.Book)-4096) / 64; sum.Rows != want {
		t.Fatalf("parquet rows %d, want %d", sum.Rows, want)
	}
}
