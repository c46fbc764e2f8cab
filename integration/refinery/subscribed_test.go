package refinery

import (
	"maps"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	capfile "github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/exsim"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
	"github.com/chronicle/chronicle/venue/kraken"
	"github.com/chronicle/chronicle/venue/okx"
)

// replaySet journals a bundled OKX or Kraken capture with chronicle-feed, as the issue's
// check does: `chronicle-feed replay --speed 0 --venue V --journal-dir J FILES...`.
func replaySet(t testing.TB, set exsim.Set, dir string) {
	t.Helper()
	proc.Run(t, testenv.Bin("chronicle-feed"), append([]string{"replay", "--speed", "0", "--venue", set.Venue, "--journal-dir", dir,
		"--metrics-addr", "", "--log-level", "warn"}, set.Paths(testenv.CapturesDir())...)...)
}

// codeOf is the partition directory dim_symbol gives a venue symbol.
func codeOf(venueName, raw string) string {
	if venueName == okx.Name {
		return okx.Code(raw)
	}
	return kraken.Code(raw)
}

// TestSubscribedCaptures is the venues issue's check, run as written for the OKX and the
// Kraken capture: `chronicle-feed replay --speed 0 --venue V --journal-dir J FILES...`,
// then `chronicle-etl backfill --root R J`; every partition's meta.json shows checksum
// checks equal to the book messages that carried one (290 OKX, 4,269 Kraken in all) and
// no mismatch. Beyond it: each instrument has its partition under the code dim_symbol
// gives it, at the scales its reference data gives; numpy (python/chronicle_q.py) counts
// the depth updates and trades that encoding/json counts in the capture; meta.json counts
// the tickers; every snapshot run restates the book the records before it built.
func TestSubscribedCaptures(t *testing.T) {
	for _, set := range kit.Subscribed {
		t.Run(set.Name, func(t *testing.T) {
			dir := t.TempDir()
			j, r := filepath.Join(dir, "J"), filepath.Join(dir, "R")
			replaySet(t, set, j)
			proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--root", r, j)
			recs, err := capfile.ReadMerged(set.Paths(testenv.CapturesDir()))
			if err != nil {
				t.Fatal(err)
			}
			want := kit.Count(set.Venue, recs)
			date := map[string]string{okx.Name: "2022-05-13", kraken.Name: "2021-04-17"}[set.Venue]
			raws := slices.Sorted(maps.Keys(want))
			var books []string
			for _, raw := range raws {
				books = append(books, filepath.Join(r, "v1", set.Venue, codeOf(set.Venue, raw), date, "book.q"))
			}
			got, _ := filepath.Glob(filepath.Join(r, "v1", "*", "*", "*", "book.q"))
			if len(got) != len(books) {
				t.Fatalf("partitions %v, want %v", got, books)
			}
			counts := testenv.BookCounts(t, books...)
			var checks int64
			for i, raw := range raws {
				w, path := want[raw], books[i]
				m, err := meta.Read(filepath.Join(filepath.Dir(path), meta.FileName))
				if err != nil {
					t.Fatalf("%s: %v", raw, err)
				}
				if m.Checks.ChecksumChecks == nil || m.Checks.ChecksumMismatches == nil {
					t.Fatalf("%s: meta.json has no checksum checks: %+v", raw, m.Checks)
				}
				if *m.Checks.ChecksumChecks != w.Checks || *m.Checks.ChecksumMismatches != 0 {
					t.Errorf("%s: meta.json checksum checks %d, mismatches %d; want %d, 0", raw, *m.Checks.ChecksumChecks, *m.Checks.ChecksumMismatches, w.Checks)
				}
				if c := counts[path]; c[1] != w.Updates || c[2] != w.Trades || m.Events.BBO != w.Tickers {
					t.Errorf("%s: numpy counts %d depth updates, %d trades; meta.json %d tickers; want %d, %d, %d", raw, c[1], c[2], m.Events.BBO, w.Updates, w.Trades, w.Tickers)
				}
				h, rs := records(t, path)
				if h.PriceDecimals != m.PriceDecimals || m.Instrument == nil || m.Instrument.TickSize == "" || m.SymbolID == 0 {
					t.Errorf("%s: header decimals %d, meta %+v", raw, h.PriceDecimals, m.Instrument)
				}
				replayCheck(t, path, rs)
				if rs[0].TypeID != format.TypeSnapshotBegin {
					t.Errorf("%s: the partition opens with %s", raw, format.TypeName(rs[0].TypeID))
				}
				checks += *m.Checks.ChecksumChecks
			}
			if total := map[string]int64{"okx": 290, "kraken": 4269}[set.Name]; checks != total {
				t.Fatalf("%d checksums checked in all, want %d", checks, total)
			}
			// The independent rebuild (python/check_capture.py: the exchanges' rules on
			// their strings, checksums recomputed in Python) against every partition.
			args := []string{filepath.Join(testenv.RepoRoot(t), "python", "check_capture.py"), "--venue", set.Venue}
			for raw := range want {
				args = append(args, "--symbol", raw+"="+filepath.Join(r, "v1", set.Venue, codeOf(set.Venue, raw)))
			}
			out, err := exec.Command(testenv.Python(t), append(args, set.Paths(testenv.CapturesDir())...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("the independent check disagrees: %v\n%s", err, out)
			}
			t.Logf("%d partitions, %d checksums checked, none failed; %s", len(books), checks, lastLine(out))
		})
	}
}

// TestSubscribedKillNine kills chronicle-etl with SIGKILL at random moments while it
// refines the OKX and the Kraken journal (checkpoints every few milliseconds, a snapshot
// run every 5 s of exchange time), restarts it each time, and requires the final tree to be
// byte-identical to an uninterrupted run's (meta.json but its ingest time). Rounds start
// from an empty root until CHRONICLE_CRASH_RUNS kills (50) landed on each.
func TestSubscribedKillNine(t *testing.T) {
	kills := testenv.CrashRuns(t)
	rng := rand.New(rand.NewPCG(uint64(testenv.Seed(t)), 9))
	for _, set := range kit.Subscribed {
		t.Run(set.Name, func(t *testing.T) {
			dir := t.TempDir()
			j := filepath.Join(dir, "J")
			replaySet(t, set, j)
			args := func(root string) []string {
				return []string{"backfill", "--log-level", "warn", "--root", root, "--seal-all",
					"--checkpoint-interval", "2ms", "--snapshot-interval", "5s", j}
			}
			// These journals are small: a run is mostly the process starting, and its time
			// varies with the machine's load. The kill lands anywhere in half again the
			// slowest of three uninterrupted runs, so that the restarts can also finish.
			var full time.Duration
			for i := range 3 {
				ref := filepath.Join(dir, "ref"+strconv.Itoa(i))
				t0 := time.Now()
				proc.Run(t, testenv.Bin("chronicle-etl"), args(ref)...)
				full = max(full, time.Since(t0))
			}
			want := trees.Refined(t, filepath.Join(dir, "ref0"))
			trees.Same(t, want, trees.Refined(t, filepath.Join(dir, "ref1")), set.Name+" second uninterrupted run")
			window := full * 3 / 2
			landed, rounds := killRounds(t, rng, dir, args, window, kills, want, set.Name)
			t.Logf("%s: an uninterrupted backfill takes up to %v; %d kills in %d rounds, every tree identical", set.Name, full, landed, rounds)
		})
	}
}
