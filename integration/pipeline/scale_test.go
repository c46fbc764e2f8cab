package pipeline

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
)

// A whole venue on one capture host (issue 27 A): chronicle-exsim in load mode serves M
// symbols derived from the USD-M capture, one chronicle-feed captures them all into one
// journal, chronicle-etl refines live, chronicle-tier runs, chronicle-fs mounts.

// venueRun is a load market and the daemons capturing it.
type venueRun struct {
	*pipe
	m        int
	feedArgs []string
	symbols  []string
}

// startVenue starts chronicle-exsim --load m at speed (playing at once, as a real venue
// does), then the refinery, the tier manager, the mount and the feed.
func startVenue(t testing.TB, m int, speed float64) *venueRun {
	t.Helper()
	return startVenueWith(t, m, speed, false, nil, nil)
}

// startVenueWith is startVenue with the hot tier in /dev/shm (shmHot), the config file
// edited by edit and each daemon's environment extended by env(name) (either may be nil).
func startVenueWith(t testing.TB, m int, speed float64, shmHot bool, edit func(string) string, env func(string) []string) *venueRun {
	t.Helper()
	p := newPipe(t)
	p.env = map[string][]string{}
	if env != nil {
		for _, n := range []string{"exsim", "feed", "etl", "tier", "fs"} {
			p.env[n] = env(n)
		}
	}
	p.exsimDir = filepath.Join(p.dir, "exsim")
	p.start("exsim", testenv.Bin("chronicle-exsim"), "--captures", testenv.CapturesDir(), "--state-dir", p.exsimDir,
		"--load", fmt.Sprint(m), "--speed", fmt.Sprint(speed), "--play", "now", "--log-level", "warn")
	var line []byte
	testenv.WaitFor(t, "chronicle-exsim --load", time.Minute, func() bool {
		var err error
		line, err = os.ReadFile(filepath.Join(p.exsimDir, "load.feed"))
		b, err2 := os.ReadFile(filepath.Join(p.exsimDir, "addr"))
		p.addr = strings.TrimSpace(string(b))
		return err == nil && err2 == nil && p.addr != ""
	})
	v := &venueRun{pipe: p, m: m, feedArgs: append([]string{testenv.Bin("chronicle-feed"), "run", "--config", p.cfg}, strings.Fields(string(line))...)}
	for i, a := range v.feedArgs {
		if a == "--symbols" {
			v.symbols = strings.Split(v.feedArgs[i+1], ",")
		}
	}
	if len(v.symbols) != m {
		t.Fatalf("load.feed names %d symbols, want %d: %s", len(v.symbols), m, line)
	}
	// The refinery resolves the derived symbols with the table exsim wrote.
	cfg, err := os.ReadFile(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if shmHot {
		// The hot tier in memory, as on a capture host (/dev/shm): the test's temporary
		// directory may be on a disk, whose fsyncs would be the figure.
		hot, err := os.MkdirTemp("/dev/shm", "chronicle-scale-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(hot) })
		cfg = []byte(strings.ReplaceAll(string(cfg), fmt.Sprintf("%q", p.roots.Hot), fmt.Sprintf("%q", hot)))
		p.roots.Hot = hot
	}
	cfg = []byte(strings.Replace(string(cfg), "[etl]\n", fmt.Sprintf("[etl]\ndim_symbol = %q\n", filepath.Join(p.exsimDir, "load.dim_symbol.csv")), 1))
	if edit != nil {
		cfg = []byte(edit(string(cfg)))
	}
	if err := os.WriteFile(p.cfg, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	p.start("etl", testenv.Bin("chronicle-etl"), "run", "--config", p.cfg)
	p.start("tier", testenv.Bin("chronicle-tier"), "--config", p.cfg, "run")
	p.start("fs", testenv.Bin("chronicle-fs"), "mount", "--config", p.cfg, p.mnt)
	p.start("feed", v.feedArgs...)
	testenv.WaitFor(t, "the mount", 20*time.Second, func() bool { return mounted(p.mnt) })
	return v
}

// stats reads the load market's counters.
func (v *venueRun) stats() exsim.LoadStats {
	v.t.Helper()
	var st exsim.LoadStats
	resp, err := http.Get("http://" + v.addr + "/load/exsim/stats")
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		v.t.Fatal(err)
	}
	return st
}

// finish stops the feed, lets the refinery reach the end of the journal, stops it, and
// compares what the mount serves with an uninterrupted backfill of the final journal.
func (v *venueRun) finish() map[string]*meta.Meta {
	t := v.t
	t.Helper()
	v.stop("feed")
	testenv.WaitFor(t, "the refinery to reach the end of the journal", 2*time.Minute, func() bool { return v.caughtUp("binance-perp") })
	v.stop("etl")
	ref := filepath.Join(v.dir, "ref")
	proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--config", v.cfg, "--log-level", "warn", "--root", ref, v.journalDir("binance-perp"))
	trees.Same(t, trees.Served(t, ref), trees.Served(t, v.mnt), "the live venue's partitions vs a backfill of its journal")
	metas := map[string]*meta.Meta{}
	for _, mp := range must(filepath.Glob(filepath.Join(v.mnt, "v1", "binance-perp", "*", "*", meta.FileName))) {
		m, err := meta.Read(mp)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(filepath.Join(v.mnt, "v1", "binance-perp"), filepath.Dir(mp))
		metas[rel] = m
	}
	for _, s := range v.symbols {
		base := strings.ToLower(strings.TrimSuffix(s, "USDT")) + "-usdt"
		found := false
		for rel := range metas {
			found = found || strings.HasPrefix(rel, base+"/")
		}
		if !found {
			t.Errorf("%s: no partition (have %v)", s, slices.Sorted(func(yield func(string) bool) {
				for k := range metas {
					if !yield(k) {
						return
					}
				}
			}))
		}
	}
	return metas
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestScaleVenue is the short form of scale.venue: 12 symbols at twice real time (about
// 5,000 messages a second) for 20 s, long enough for one of them to go round the end of
// the recording. The feed paces its snapshots without a 429 or 418, every symbol gets its
// snapshot, no partition has a gap or an invalid stretch after its first snapshot (but
// the open one the feed's stop leaves), the refinery's checks (crossed books, bookTicker
// against the book) find nothing, and every partition equals a backfill of the journal.
func TestScaleVenue(t *testing.T) {
	const m = 12
	v := startVenue(t, m, 2)
	testenv.WaitFor(t, "a snapshot of every symbol", time.Minute, func() bool { return v.stats().SymbolsSnapshot == m })
	time.Sleep(20 * time.Second)
	st := v.stats()
	t.Logf("load market: %+v", st)
	if st.Bridges == 0 {
		t.Errorf("no symbol went round the recording in 20 s: the loop's chaining was not exercised")
	}
	if st.Banned != 0 || st.TooMany != 0 || st.Refused != 0 || st.SymbolsSnapshot != m {
		t.Errorf("counters %+v: want every symbol's snapshot, no 429, no 418, no refused connection", st)
	}
	metas := v.finish()
	for rel, mt := range metas {
		if len(mt.Completeness.Gaps) > 0 {
			t.Errorf("%s: gaps %+v", rel, mt.Completeness.Gaps)
		}
		for _, iv := range mt.Completeness.Invalid {
			switch iv.Reason {
			case format.InvalidReasonName(format.InvalidNoSnapshot), format.InvalidReasonName(format.InvalidNotCaptured):
			case format.InvalidReasonName(format.InvalidDisconnect):
				if !iv.Open {
					t.Errorf("%s: a disconnect before the feed stopped: %+v", rel, iv)
				}
			default:
				t.Errorf("%s: invalid %+v", rel, iv)
			}
		}
		if mt.Events.DepthUpdates == 0 || mt.Events.Trades == 0 || mt.Events.BBO == 0 {
			t.Errorf("%s: events %+v", rel, mt.Events)
		}
		if mt.Checks.CrossedEvents != 0 || mt.Checks.TickerMismatches != 0 {
			t.Errorf("%s: checks %+v", rel, mt.Checks)
		}
	}
}

// TestScaleVenueKill: under load (10 symbols at twice real time), kill -9 the feed, the
// refinery and the tier manager once each, at random moments 2-6 s apart (seed logged;
// CHRONICLE_SEED replays it), and start each again. Afterwards the
// partitions equal a backfill of the final journal, and every symbol's partition marks
// the feed's restart as an invalid interval (what was in flight is lost, and said so).
func TestScaleVenueKill(t *testing.T) {
	const m = 10
	v := startVenue(t, m, 2)
	testenv.WaitFor(t, "a snapshot of every symbol", time.Minute, func() bool { return v.stats().SymbolsSnapshot == m })
	rng := rand.New(rand.NewPCG(uint64(testenv.Seed(t)), 27))
	for _, d := range []string{"feed", "etl", "tier"} {
		time.Sleep(time.Duration(2000+rng.IntN(4000)) * time.Millisecond) // 2-6 s apart, seed logged

		if !v.kill9(d) {
			t.Fatalf("%s is not running", d)
		}
		t.Logf("kill -9 %s", d)
	}
	testenv.WaitFor(t, "a snapshot of every symbol after the feed's restart", time.Minute, func() bool { return v.stats().SnapshotOK >= 2*m })
	time.Sleep(5 * time.Second)
	if st := v.stats(); st.Banned != 0 {
		t.Errorf("counters %+v: banned", st)
	}
	metas := v.finish()
	restart := format.InvalidReasonName(format.InvalidFeedRestart)
	for rel, mt := range metas {
		found := false
		for _, iv := range mt.Completeness.Invalid {
			found = found || iv.Reason == restart
		}
		if !found {
			t.Errorf("%s: the feed was killed under load, but no %s interval: %+v", rel, restart, mt.Completeness)
		}
	}
}
