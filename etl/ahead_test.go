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

	one := filepath.Join(t.TempDir(), "backfill")
	refineAhead(t, t.Context(), "backfill: ", Options{Config: cfg, Root: one, JournalDir: dir}, len(msgs))

	live := filepath.Join(t.TempDir(), "live")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The live refinery starts once it sees the backlog, after a frame of its own.
	refineAhead(t, ctx, "live: ", Options{Config: cfg, Root: live, JournalDir: dir, Follow: true, Listener: onIdle(cancel)}, len(msgs))

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
			runtime.GOMAXPROCS(2)
			two := filepath.Join(t.TempDir(), "two")
			refineAhead(t, t.Context(), "", Options{Config: cfg, Root: two, JournalDir: dir}, len(msgs))
			runtime.GOMAXPROCS(1)
			one := filepath.Join(t.TempDir(), "one")
			if _, err := Refine(t.Context(), Options{Config: cfg, Root: one, JournalDir: dir}); err != nil {
				t.Fatal(err)
			}
			sameTree(t, one, two)
		})
	}
}

// refineAhead refines with a slow frame (5µs of work after each one, so that the decoding
// goroutine can lead) and asks that between one and all of the msgs messages were decoded
// ahead; label starts the failure and the log line.
func refineAhead(t *testing.T, ctx context.Context, label string, opt Options, msgs int) {
	t.Helper()
	opt.hooks.onFrame = func() {
		for t0 := time.Now(); time.Since(t0) < 5*time.Microsecond; {
		}
	}
	aheadTaken.Store(0)
	if _, err := Refine(ctx, opt); err != nil {
		t.Fatal(err)
	}
	if n := aheadTaken.Load(); n == 0 || n > int64(msgs) {
		t.Fatalf("%s%d of %d messages decoded ahead", label, n, msgs)
	}
	t.Logf("%s%d of %d messages decoded ahead", label, aheadTaken.Load(), msgs)
}
