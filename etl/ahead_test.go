package etl

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chronicle/chronicle/venue"
)

// TestDecodeAhead: with two cores, a backfill takes messages decoded ahead, and so does a
// live refinery working through a backlog; both write what one core writes
// (TestGoldenPartitions checks the bytes). The refinery is slowed down a little per frame
// so that the decoding goroutine leads even when the machine's other work takes its core
// now and then (the refinery decodes itself what it reaches first).
//
// How many messages the goroutine decodes first depends on the core it gets from the
// machine's other work (it stops when it cannot lead): the test asks that it took part and
// that the partitions are one core's, and logs the share; etl.backfill.2cores measures it.
func TestDecodeAhead(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	v, _ := venue.Lookup("binance-perp")
	dir, msgs := captureJournal(t, v, "binance-usdm_ethusdt_20240808.jsonl.gz")
	cfg := Defaults()
	cfg.CheckpointInterval, cfg.IdleSpin = time.Hour, 0

	slow := func() {
		for t0 := time.Now(); time.Since(t0) < 5*time.Microsecond; {
		}
	}
	aheadTaken.Store(0)
	one := filepath.Join(t.TempDir(), "backfill")
	if _, err := Refine(t.Context(), Options{Config: cfg, Root: one, JournalDir: dir, hooks: testHooks{onFrame: slow}}); err != nil {
		t.Fatal(err)
	}
	if n := aheadTaken.Load(); n == 0 || n > int64(len(msgs)) {
		t.Fatalf("backfill: %d of %d messages decoded ahead", n, len(msgs))
	}
	t.Logf("backfill: %d of %d messages decoded ahead", aheadTaken.Load(), len(msgs))

	aheadTaken.Store(0)
	live := filepath.Join(t.TempDir(), "live")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := Refine(ctx, Options{Config: cfg, Root: live, JournalDir: dir, Follow: true, Listener: onIdle(cancel), hooks: testHooks{onFrame: slow}}); err != nil {
		t.Fatal(err)
	}
	// The live refinery starts once it sees the backlog, after a frame of its own.
	if n := aheadTaken.Load(); n == 0 || n > int64(len(msgs)) {
		t.Fatalf("live: %d of %d messages decoded ahead", n, len(msgs))
	}
	t.Logf("live: %d of %d messages decoded ahead", aheadTaken.Load(), len(msgs))

	// One core: none.
	runtime.GOMAXPROCS(1)
	aheadTaken.Store(0)
	if _, err := Refine(t.Context(), Options{Config: cfg, Root: filepath.Join(t.TempDir(), "one"), JournalDir: dir}); err != nil {
		t.Fatal(err)
	}
	if n := aheadTaken.Load(); n != 0 {
		t.Fatalf("one core: %d messages decoded ahead", n)
	}
	sameTree(t, one, live)
}

// TestDecodeAheadSubscribed: OKX and Kraken decode at each instrument's scale, which the
// journal's reference records and each symbol's first message set; the decoding goroutine
// keeps its own copy by the same rules, so the refinery takes most messages from it, and
// writes what one core writes.
func TestDecodeAheadSubscribed(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	for _, c := range subscribedBenchCaptures {
		t.Run(c.name, func(t *testing.T) {
			v, _ := venue.Lookup(c.venue)
			dir, msgs := subscribedCaptureJournal(t, v, 3, c.files...)
			cfg := Defaults()
			cfg.CheckpointInterval = time.Hour
			slow := func() {
				for t0 := time.Now(); time.Since(t0) < 5*time.Microsecond; {
				}
			}
			runtime.GOMAXPROCS(2)
			aheadTaken.Store(0)
			two := filepath.Join(t.TempDir(), "two")
			if _, err := Refine(t.Context(), Options{Config: cfg, Root: two, JournalDir: dir, hooks: testHooks{onFrame: slow}}); err != nil {
				t.Fatal(err)
			}
			if n := aheadTaken.Load(); n == 0 || n > int64(len(msgs)) {
				t.Fatalf("%d of %d messages decoded ahead", n, len(msgs))
			}
			t.Logf("%d of %d messages decoded ahead", aheadTaken.Load(), len(msgs))
			runtime.GOMAXPROCS(1)
			one := filepath.Join(t.TempDir(), "one")
			if _, err := Refine(t.Context(), Options{Config: cfg, Root: one, JournalDir: dir}); err != nil {
				t.Fatal(err)
			}
			sameTree(t, one, two)
		})
	}
}
