package powercut

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/format/journal"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/lazyfs"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
)

// TestPowerCutRefinery cuts the power while `chronicle-etl run` refines the COIN-M capture
// (two journal segments, a partition sealed mid-run by a short grace) into a warm root on
// the lazy file system; the journal is on a durable disk. The refinery acknowledges its
// progress by publishing etl.checkpoint into the journal directory (the feed's retention
// deletes segments before it). After each cut:
//   - its durable state (.chronicle-etl/{venue}.state) is at or past the last checkpoint it
//     published: nothing it acknowledged is lost;
//   - every file is readable;
//   - the restarted refinery catches up, and once stopped the tree is byte-identical to an
//     uninterrupted run's (books, index/, meta.json but its ingest time): nothing lost,
//     nothing written twice.
func TestPowerCutRefinery(t *testing.T) {
	n := testenv.CrashRuns(t)
	rng := newRand(t)
	c := kit.Get("coinm")
	dir := t.TempDir()
	src := filepath.Join(dir, "J")
	run(t, "replay", "chronicle-feed", append([]string{"replay", "--speed", "0", "--venue", c.Venue, "--journal-dir", src,
		"--metrics-addr", "", "--log-level", "warn"}, c.Paths(testenv.CapturesDir())...)...)
	segs, err := journal.List(src)
	if err != nil || len(segs) < 2 {
		t.Fatalf("journal: %v %v", segs, err)
	}
	lastSeg := segs[len(segs)-1]
	st, err := os.Stat(filepath.Join(src, lastSeg.Name))
	if err != nil {
		t.Fatal(err)
	}
	end := journal.Checkpoint{Segment: lastSeg.Name, Offset: st.Size()}

	// journalFor links the segments into a fresh journal directory (each run publishes its
	// own etl.checkpoint there) and returns the hot root.
	round := 0
	journalFor := func() string {
		round++
		hot := filepath.Join(dir, fmt.Sprintf("hot-%d", round))
		jd := filepath.Join(hot, "feed", c.Venue)
		if err := os.MkdirAll(jd, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, sg := range segs {
			if err := os.Link(filepath.Join(src, sg.Name), filepath.Join(jd, sg.Name)); err != nil {
				t.Fatal(err)
			}
		}
		return hot
	}
	args := func(hot, warm string) []string {
		return []string{"run", "--log-level", "warn", "--hot", hot, "--warm", warm, "--grace", "1m",
			"--checkpoint-interval", "5ms", "--snapshot-interval", "10s", "--metrics-addr", "", "--idle-spin", "0"}
	}
	// refine runs the refinery until it has published a checkpoint at the journal's end,
	// then stops it (SIGTERM) and returns how long that took.
	refine := func(t *testing.T, what, hot, warm string) time.Duration {
		t.Helper()
		t0 := time.Now()
		p := start(t, "chronicle-etl", args(hot, warm)...)
		jd := filepath.Join(hot, "feed", c.Venue)
		for {
			cp, ok, _ := journal.ReadCheckpoint(jd)
			if ok && cp.Segment == end.Segment && cp.Offset == end.Offset {
				break
			}
			select {
			case <-p.Done():
				t.Fatalf("%s: chronicle-etl run exited: %v\n%s", what, p.Err(), p.Output())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Since(t0) > 2*time.Minute {
				p.Cmd.Process.Kill()
				t.Fatalf("%s: chronicle-etl run did not reach the journal's end\n%s", what, p.Output())
			}
		}
		took := time.Since(t0)
		// A run that starts at the journal's end reaches it at once: stop it only once it
		// is up, or SIGTERM finds a process that does not handle it yet.
		select {
		case <-p.Ready:
		case <-p.Done():
			t.Fatalf("%s: chronicle-etl run exited: %v\n%s", what, p.Err(), p.Output())
		case <-time.After(time.Minute):
			t.Fatalf("%s: chronicle-etl run never reported ready\n%s", what, p.Output())
		}
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			t.Fatalf("%s: exit after SIGTERM: %v\n%s", what, err, p.Output())
		}
		return took
	}

	ref := filepath.Join(dir, "ref")
	refine(t, "reference", journalFor(), ref)
	want := trees.Refined(t, ref)

	empty := t.TempDir()
	var full time.Duration
	for range 2 {
		lz := mountLazy(t, empty)
		d := refine(t, "calibration", journalFor(), filepath.Join(lz.Dir(), "warm"))
		if full == 0 || d < full {
			full = d
		}
		trees.Same(t, want, trees.Refined(t, filepath.Join(lz.Dir(), "warm")), "calibration")
		lz.Close()
	}
	t.Logf("an uninterrupted run takes %v on lazyfs to refine the journal; cutting the power at uniform moments within it", full)

	cuts, acked := 0, 0
	var last lazyfs.Stats
	for i := range n {
		lz := mountLazy(t, empty)
		hot, warm := journalFor(), filepath.Join(lz.Dir(), "warm")
		delay := time.Duration(rng.Int64N(int64(full)))
		p := start(t, "chronicle-etl", args(hot, warm)...)
		select {
		case <-p.Done():
			t.Fatalf("chronicle-etl run exited: %v\n%s", p.Err(), p.Output())
		case <-time.After(delay):
		}
		lz.Cut()
		p.Cmd.Process.Kill()
		p.Wait()
		if err := lz.Restart(); err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("run %d (power cut after %v)", i, delay)
		t.Run(fmt.Sprintf("cut-%02d", i), func(t *testing.T) {
			if cp, ok, err := journal.ReadCheckpoint(filepath.Join(hot, "feed", c.Venue)); err != nil {
				t.Fatal(err)
			} else if ok {
				acked++
				st, found, err := etl.ReadState(etl.StatePath(warm, c.Venue))
				if err != nil || !found {
					t.Fatalf("%s: published checkpoint %s@%d, but the refinery's state after the cut: found %v, %v\ncut run:\n%s", what, cp.Segment, cp.Offset, found, err, p.Output())
				}
				if behind(st.Segment, st.Offset, cp) {
					t.Fatalf("%s: state after the cut at %s@%d, behind the published checkpoint %s@%d", what, st.Segment, st.Offset, cp.Segment, cp.Offset)
				}
			}
			readAll(t, lz.Dir())
			refine(t, what+": the run after the cut", hot, warm)
			trees.Same(t, want, trees.Refined(t, warm), what)
		})
		cuts++
		last = lz.Stats()
		lz.Close()
	}
	t.Logf("%d power cuts, %d after a published checkpoint; lazyfs of the last run: %+v", cuts, acked, last)
	if acked < n/2 {
		t.Fatalf("only %d of %d cuts came after a published checkpoint: the cut moments do not cover the run", acked, n)
	}
}

// behind reports whether position (seg, off) is before checkpoint cp.
func behind(seg string, off int64, cp journal.Checkpoint) bool {
	a, err1 := journal.ParseSegmentName(seg)
	b, err2 := journal.ParseSegmentName(cp.Segment)
	if err1 != nil || err2 != nil {
		return true
	}
	return a.Seq < b.Seq || (a.Seq == b.Seq && off < cp.Offset)
}
