// Package refinery runs the real chronicle-feed and chronicle-etl binaries on the real
// Binance captures: replay into a journal, refine it (backfill and the live daemon), and
// check the books against figures from an independent rebuild, against numpy reading them
// through python/chronicle_q.py, and against themselves after kill -9 at random moments.
package refinery

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/books"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithCommands(m, "chronicle-feed", "chronicle-etl", "chronicle-fs", "chronicle-tier"))
}

// dayWant is what an independent rebuild of a capture found for one UTC date.
type dayWant struct {
	depth, trades, checks, mismatches int64
	bid, ask                          string // final best bid / ask
}

type capture struct {
	name    string
	venue   string
	files   []string
	symbols map[string]map[string]dayWant // symbol dir -> date -> figures
}

// captures are the bundled real captures with the figures of the refinery issue
// (internal/testkit/captures holds them for every test).
var captures = func() []capture {
	var out []capture
	for _, c := range kit.All {
		cc := capture{name: c.Name, venue: c.Venue, files: c.Files, symbols: map[string]map[string]dayWant{}}
		for sym, days := range c.Symbols {
			cc.symbols[sym] = map[string]dayWant{}
			for date, d := range days {
				cc.symbols[sym][date] = dayWant{d.Depth, d.Trades, d.Checks, d.Mismatches, d.Bid, d.Ask}
			}
		}
		out = append(out, cc)
	}
	return out
}()

func (c capture) paths() []string {
	var out []string
	for _, f := range c.files {
		out = append(out, filepath.Join(testenv.CapturesDir(), f))
	}
	return out
}

// replay journals a capture with chronicle-feed into dir.
func replay(t testing.TB, c capture, dir string) {
	t.Helper()
	proc.Run(t, testenv.Bin("chronicle-feed"), append([]string{"replay", "--speed", "0", "--venue", c.venue, "--journal-dir", dir, "--metrics-addr", "", "--log-level", "warn"}, c.paths()...)...)
}

// records reads every record of a book file.
func records(t testing.TB, path string) (format.Header, []format.BookRecord) {
	t.Helper()
	h, recs, err := books.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h, recs
}

// replayCheck replays a partition (books.Replay): every snapshot run that follows a valid
// stretch must equal the book the records before it built. It returns the book after the
// last record and the number of runs compared.
func replayCheck(t testing.TB, path string, recs []format.BookRecord) (books.State, int) {
	t.Helper()
	b, n, err := books.Replay(recs)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b, n
}
