package refinery

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestCaptures is the refinery issue's check, run as written for every capture:
// `chronicle-feed replay --speed 0 --venue ID --journal-dir J FILE...`, then
// `chronicle-etl backfill --root R J`; the depth updates (non-snapshot level records
// flagged last-of-event) and trades per date, read with python/chronicle_q.py, equal the
// independent figures, and meta.json sits beside each book.q. Beyond it: ticker checks,
// the final best bid/ask, every snapshot run against the replay before it, record times
// within their date, and meta.json's counts against the records.
func TestCaptures(t *testing.T) {
	for _, c := range captures {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			j, r := filepath.Join(dir, "J"), filepath.Join(dir, "R")
			replay(t, c, j)
			proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--root", r, j)

			books, _ := filepath.Glob(filepath.Join(r, "v1", "*", "*", "*", "book.q"))
			var want []string
			for sym, days := range c.symbols {
				for d := range days {
					want = append(want, filepath.Join(r, "v1", c.venue, sym, d, "book.q"))
				}
			}
			if len(books) != len(want) {
				t.Fatalf("partitions %v, want %v", books, want)
			}
			// numpy, through chronicle_q, counts what the issue counts.
			counts := testenv.BookCounts(t, books...)
			for sym, days := range c.symbols {
				for date, w := range days {
					pdir := filepath.Join(r, "v1", c.venue, sym, date)
					path := filepath.Join(pdir, "book.q")
					m, err := meta.Read(filepath.Join(pdir, meta.FileName))
					if err != nil {
						t.Fatalf("meta.json beside %s: %v", path, err)
					}
					got := counts[path]
					if (w.depth >= 0 && got[1] != w.depth) || (w.trades >= 0 && got[2] != w.trades) {
						t.Errorf("%s %s: numpy counts %d depth updates, %d trades; want %d, %d", sym, date, got[1], got[2], w.depth, w.trades)
					}
					h, recs := records(t, path)
					checkPartition(t, path, h, recs, m, date, w)
				}
			}
		})
	}
}

func checkPartition(t *testing.T, path string, h format.Header, recs []format.BookRecord, m *meta.Meta, date string, w dayWant) {
	t.Helper()
	var depth, trades int64
	for i, r := range recs {
		if d := timeDate(r.ExchTs); d != date {
			t.Fatalf("%s: record %d is dated %s", path, i, d)
		}
		if r.TypeID == format.TypeLevel && r.Flags&(format.FlagSnapshot|format.FlagLast) == format.FlagLast {
			depth++
		}
		if r.TypeID == format.TypeTrade {
			trades++
		}
	}
	if m.Events.DepthUpdates != depth || m.Events.Trades != trades || m.Records["total"] != int64(len(recs)) {
		t.Errorf("%s: meta.json counts %+v / %d records; the file holds %d depth updates, %d trades, %d records", path, m.Events, m.Records["total"], depth, trades, len(recs))
	}
	if m.SymbolID != h.SymbolID || m.SymbolID == 0 || m.Date != date || recs[0].TypeID != format.TypeSnapshotBegin {
		t.Errorf("%s: identity %d/%d date %s, first record %s", path, m.SymbolID, h.SymbolID, m.Date, format.TypeName(recs[0].TypeID))
	}
	if w.checks >= 0 && m.Checks.TickerChecks != w.checks {
		t.Errorf("%s: %d ticker checks, want %d", path, m.Checks.TickerChecks, w.checks)
	}
	if m.Checks.TickerMismatches != 0 || m.Checks.CrossedEvents != 0 {
		t.Errorf("%s: %d ticker mismatches, %d crossed", path, m.Checks.TickerMismatches, m.Checks.CrossedEvents)
	}
	b, _ := replayCheck(t, path, recs)
	if w.bid != "" {
		// The book after the date's last depth update: replay up to it, before the
		// end-of-capture disconnect invalidates it.
		last := -1
		for i, r := range recs {
			if r.TypeID == format.TypeLevel && r.Flags&format.FlagSnapshot == 0 {
				last = i
			}
		}
		b, _ = replayCheck(t, path, recs[:last+1])
		bid, ask := b.Best()
		wb, _ := format.ParseDecimal([]byte(w.bid), 8)
		wa, _ := format.ParseDecimal([]byte(w.ask), 8)
		if bid != wb || ask != wa {
			t.Errorf("%s: final best bid/ask %s / %s, want %s / %s", path, format.FormatDecimal(bid, 8), format.FormatDecimal(ask, 8), w.bid, w.ask)
		}
	}
}

func timeDate(ns int64) string {
	return strings.SplitN(meta.Time(ns).String(), "T", 2)[0]
}
