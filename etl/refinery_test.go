package etl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/format/meta"
)

const (
	sDepth  = "ethusdt@depth@0ms"
	sTrade  = "ethusdt@trade"
	sTicker = "ethusdt@bookTicker"
)

func ethDir(root, date string) string {
	return filepath.Join(root, "v1", "binance-perp", "eth-usdt", date)
}

// TestGapAndResync: Binance's rules from the first snapshot through a sequence gap to
// the resync, as records, flags and completeness.
func TestGapAndResync(t *testing.T) {
	t0 := ms("2024-08-08T10:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(t0))
	j.connect(1, sDepth, sTrade, sTicker)
	j.msg(sDepth, depth("ETHUSDT", t0+1, 80, 89, 79, "99.0:1", ""))   // stale: u < L
	j.msg(sDepth, depth("ETHUSDT", t0+2, 90, 100, 89, "100.0:1", "")) // bridges L=100
	j.msg(sTrade, trade("ETHUSDT", t0+3, 1, "100.1", "0.5", false))   // before the snapshot: invalid
	j.snapshot(sDepth, "ETHUSDT", snap(100, t0+4, "100.0:1,99.9:2", "100.1:1,100.2:3"))
	j.msg(sDepth, depth("ETHUSDT", t0+5, 101, 105, 100, "100.0:5", "100.2:0"))
	j.msg(sTicker, ticker("ETHUSDT", t0+6, 105, "100.0", "5", "100.1", "1"))
	j.msg(sTicker, ticker("ETHUSDT", t0+7, 107, "100.0", "5", "100.1", "1")) // no update 107: unchecked
	j.msg(sDepth, depth("ETHUSDT", t0+8, 110, 112, 106, "99.9:4", ""))       // pu 106 != 105: gap
	j.msg(sTrade, trade("ETHUSDT", t0+9, 2, "100.1", "0.2", true))           // invalid book
	j.snapshot(sDepth, "ETHUSDT", snap(111, t0+10, "100.0:5,99.9:7", "100.1:1"))
	j.msg(sDepth, depth("ETHUSDT", t0+11, 113, 113, 112, "", "100.3:2"))
	j.msg(sTicker, ticker("ETHUSDT", t0+12, 113, "100.0", "5", "100.1", "1"))
	j.close()
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	dir := ethDir(root, "2024-08-08")
	_, recs := readBook(t, filepath.Join(dir, "book.q"))
	var got []string
	for _, r := range recs {
		s := format.TypeName(r.TypeID)
		if r.Flags&format.FlagSnapshot != 0 && r.TypeID == format.TypeLevel {
			continue
		}
		if r.Flags&format.FlagBookInvalid != 0 {
			s += "!"
		}
		if r.TypeID == format.TypeLevel {
			s += "@" + string(rune('0'+r.Seq%10))
		}
		got = append(got, s)
	}
	want := "snapshot_begin! snapshot_end! trade! snapshot_begin snapshot_end level@0 level@5 level@5 bbo bbo " +
		"book_invalid! trade! snapshot_begin snapshot_end level@2 level@3 bbo"
	if strings.Join(got, " ") != want {
		t.Fatalf("records\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if n := checkRuns(t, recs); n != 0 {
		t.Fatalf("compared %d runs; none follows a valid stretch here", n)
	}
	m := readMeta(t, dir)
	if m.Events.DepthUpdates != 4 || m.Events.Trades != 2 || m.Checks.TickerChecks != 2 || m.Checks.TickerMismatches != 0 || m.Events.BookInvalid != 1 {
		t.Fatalf("events %+v checks %+v", m.Events, m.Checks)
	}
	inv := m.Completeness.Invalid
	// The capture starts with the stale update (t0+1): not captured before it, no snapshot
	// until the update that bridges it (t0+2). The resync's bridging update (E t0+8,
	// buffered) is where the book is valid again.
	if len(inv) != 3 || inv[0].Reason != "not_captured" || inv[0].From.Ns() != ms("2024-08-08T00:00:00Z")*1e6 || inv[0].To.Ns() != (t0+1)*1e6 ||
		inv[1].Reason != "no_snapshot" || inv[1].From.Ns() != (t0+1)*1e6 || inv[1].To.Ns() != (t0+2)*1e6 ||
		inv[2].Reason != "sequence" || inv[2].From.Ns() != (t0+8)*1e6 || inv[2].To.Ns() != (t0+8)*1e6 || m.Completeness.Complete {
		t.Fatalf("completeness %+v", m.Completeness)
	}
	var bi format.BookRecord
	for _, r := range recs {
		if r.TypeID == format.TypeBookInvalid {
			bi = r
		}
	}
	if bi.Qty != format.InvalidSequence || bi.Seq != 112 || bi.Aux0 != 105 || bi.Aux1 != 106 {
		t.Fatalf("book_invalid %+v", bi)
	}
}

// TestMidnightHold: a trade of the new day that arrives before the old day's last depth
// update waits for it, so the new partition opens with the book the old day left; every
// record lies within its partition's date and every run equals the replay before it.
func TestMidnightHold(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(mid-5000))
	j.connect(1, sDepth, sTrade, sTicker)
	j.snapshot(sDepth, "ETHUSDT", snap(100, mid-3000, "100.0:1", "100.1:1"))
	j.msg(sDepth, depth("ETHUSDT", mid-2000, 100, 101, 99, "100.0:2", ""))
	j.msg(sTrade, trade("ETHUSDT", mid+10, 1, "100.1", "1", false))               // new day, early
	j.msg(sDepth, depth("ETHUSDT", mid-10, 102, 103, 101, "99.9:4", ""))          // old day's last update
	j.msg(sDepth, depth("ETHUSDT", mid+50, 104, 105, 103, "", "100.2:2"))         // new day
	j.msg(sDepth, depth("ETHUSDT", mid+1100, 106, 107, 105, "100.0:0", ""))       // after a 1 s boundary
	j.msg(sDepth, depth("ETHUSDT", mid+2100, 108, 109, 107, "99.8:1", "100.1:0")) // after the next
	j.close()
	root := t.TempDir()
	refine(t, j, root, func(c *Config) { c.SnapshotInterval = time.Second }, nil)
	for _, d := range []string{"2024-08-08", "2024-08-09"} {
		_, recs := readBook(t, filepath.Join(ethDir(root, d), "book.q"))
		day := d == "2024-08-09"
		for i, r := range recs {
			if (r.ExchTs >= mid*1e6) != day {
				t.Fatalf("%s record %d at %s is not of its date", d, i, time.Unix(0, r.ExchTs).UTC())
			}
		}
		n := checkRuns(t, recs)
		if day && n != 2 {
			t.Fatalf("%s: %d runs compared, want 2 (the periodic runs after the opening one)", d, n)
		}
		if day && (recs[0].TypeID != format.TypeSnapshotBegin || recs[0].Aux0 != 3) {
			t.Fatalf("new day opens with %+v, want a run of 3 levels (the old day's last update included)", recs[0])
		}
	}
}

// TestSealLateAndIndex: after the grace the previous day is sealed with index/ and
// meta.json; a later event of that day follows the late policy.
func TestSealLateAndIndex(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	build := func() *jb {
		j := newJournal(t, "binance-perp", time.UnixMilli(mid-5000))
		j.connect(1, sDepth, sTrade, sTicker)
		j.snapshot(sDepth, "ETHUSDT", snap(100, mid-3000, "100.0:1", "100.1:1"))
		j.msg(sDepth, depth("ETHUSDT", mid-2000, 100, 101, 99, "100.0:2", ""))
		j.msg(sTrade, trade("ETHUSDT", mid-1500, 1, "100.1", "1", false))
		j.msg(sDepth, depth("ETHUSDT", mid+3000, 102, 103, 101, "99.9:4", "")) // clock past the 1 s grace
		j.msg(sTrade, trade("ETHUSDT", mid-100, 2, "100.1", "3", true))        // late for 2024-08-08
		j.close()
		return j
	}
	for _, policy := range []string{meta.LateReject, meta.LateStream} {
		root := t.TempDir()
		refine(t, build(), root, func(c *Config) { c.Grace = time.Second; c.LatePolicy = policy }, nil)
		dir := ethDir(root, "2024-08-08")
		h, recs := readBook(t, filepath.Join(dir, "book.q"))
		m := readMeta(t, dir)
		if !h.Sealed || !m.Sealed || m.Events.Trades != 1 || m.LatePolicy != policy {
			t.Fatalf("%s: sealed %v/%v trades %d policy %s", policy, h.Sealed, m.Sealed, m.Events.Trades, m.LatePolicy)
		}
		ti, err := bookindex.ReadTime(dir)
		if err != nil || ti.Records != int64(len(recs)) {
			t.Fatalf("%s: time index %v %v", policy, ti, err)
		}
		snaps, _, err := bookindex.ReadSnapshots(dir)
		if err != nil || len(snaps) != 1 {
			t.Fatalf("%s: snapshot index %v %v", policy, snaps, err)
		}
		late := filepath.Join(root, LateDir, "binance-perp", "eth-usdt", "2024-08-08", "book.q")
		_, err = os.Stat(late)
		if (policy == meta.LateStream) != (err == nil) {
			t.Fatalf("%s: late stream file: %v", policy, err)
		}
		if policy == meta.LateStream {
			if _, lr := readBook(t, late); len(lr) != 1 || lr[0].TypeID != format.TypeTrade || lr[0].Seq != 2 {
				t.Fatalf("late stream holds %+v", lr)
			}
		}
	}
}

// TestSymbolsRenameAndUnmapped: a rename inside a day keeps one partition per symbol_id,
// named after the version in force at midnight, and meta.json lists both versions; a
// symbol with no dim_symbol row goes to the unmapped stream.
func TestSymbolsRenameAndUnmapped(t *testing.T) {
	table, err := symbols.ParseCSV([]byte(`symbol_id,symbol_version_id,venue,raw_symbol,symbol_code,valid_from,valid_to
7,70,binance-perp,ETHUSDT,eth-usdt,2024-01-01,2024-08-08T12:00:00Z
7,71,binance-perp,ETHUSDT,ether-usdt,2024-08-08T12:00:00Z,
`), "test.csv")
	if err != nil {
		t.Fatal(err)
	}
	noon := ms("2024-08-08T12:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(noon-5000))
	j.connect(1, sDepth, sTrade, "btcusdt@trade")
	j.snapshot(sDepth, "ETHUSDT", snap(100, noon-3000, "100.0:1", "100.1:1"))
	j.msg(sDepth, depth("ETHUSDT", noon-2000, 100, 101, 99, "100.0:2", ""))
	j.msg(sDepth, depth("ETHUSDT", noon+2000, 102, 103, 101, "99.9:4", ""))
	j.msg("btcusdt@trade", trade("BTCUSDT", noon, 9, "60000.5", "0.01", false))
	j.close()
	root := t.TempDir()
	refine(t, j, root, nil, table)
	dir := ethDir(root, "2024-08-08")
	h, recs := readBook(t, filepath.Join(dir, "book.q"))
	m := readMeta(t, dir)
	if h.SymbolID != 7 || h.SymbolVersionID != 70 || h.SymbolCode != "eth-usdt" || recs[len(recs)-1].SymbolID != 7 {
		t.Fatalf("header %+v", h)
	}
	vs := m.SymbolVersions
	if len(vs) != 2 || vs[0].SymbolCode != "eth-usdt" || vs[0].To.Ns() != noon*1e6 || vs[1].SymbolCode != "ether-usdt" ||
		vs[1].From.Ns() != noon*1e6 || vs[1].To.Ns() != ms("2024-08-09T00:00:00Z")*1e6 {
		t.Fatalf("versions %+v", vs)
	}
	if _, err := os.Stat(filepath.Join(root, "v1", "binance-perp", "ether-usdt")); err == nil {
		t.Fatal("the rename opened a second partition")
	}
	un := filepath.Join(root, UnmappedDir, "binance-perp", "btcusdt", "2024-08-08")
	uh, urecs := readBook(t, filepath.Join(un, "book.q"))
	um := readMeta(t, un)
	if uh.SymbolID != 0 || !um.Unmapped || um.Events.Trades != 1 || urecs[len(urecs)-1].TypeID != format.TypeTrade {
		t.Fatalf("unmapped %+v %+v", uh, um)
	}
}

// TestConnectionEvents: a dropped connection and a feed restart invalidate the book with
// their reasons; a rollover does not.
func TestConnectionEvents(t *testing.T) {
	t0 := ms("2024-08-08T10:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(t0))
	j.connect(1, sDepth, sTrade)
	j.snapshot(sDepth, "ETHUSDT", snap(100, t0, "100.0:1", "100.1:1"))
	j.msg(sDepth, depth("ETHUSDT", t0+1, 100, 101, 99, "100.0:2", ""))
	j.disconnect("rollover")
	j.msg(sDepth, depth("ETHUSDT", t0+2, 102, 103, 101, "100.0:3", ""))
	j.disconnect("error")
	j.connect(1, sDepth, sTrade)
	j.msg(sDepth, depth("ETHUSDT", t0+3, 110, 111, 109, "100.0:4", ""))
	j.snapshot(sDepth, "ETHUSDT", snap(110, t0+4, "100.0:9", "100.1:1"))
	j.msg(sTrade, trade("ETHUSDT", t0+5, 1, "100.1", "1", false))
	j.connect(2, sDepth, sTrade) // a new feed process
	j.msg(sTrade, trade("ETHUSDT", t0+6, 2, "100.1", "1", false))
	j.close()
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	m := readMeta(t, ethDir(root, "2024-08-08"))
	var reasons []string
	for _, iv := range m.Completeness.Invalid {
		reasons = append(reasons, iv.Reason)
	}
	// The snapshot came first and bridged at once: not captured until the first update,
	// and no (empty) no_snapshot interval.
	if strings.Join(reasons, ",") != "not_captured,disconnect,feed_restart" || m.Events.DepthUpdates != 3 {
		t.Fatalf("invalid %v depth %d", reasons, m.Events.DepthUpdates)
	}
}

// TestSelfChecks: a crossed book is flagged and counted (each update after which it is
// still crossed), never fixed; a ticker that
// disagrees is counted; an update that changes nothing still leaves one record.
func TestSelfChecks(t *testing.T) {
	t0 := ms("2024-08-08T10:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(t0))
	j.connect(1, sDepth, sTicker)
	j.snapshot(sDepth, "ETHUSDT", snap(100, t0, "100.0:1", "100.1:1"))
	j.msg(sDepth, depth("ETHUSDT", t0+1, 100, 101, 99, "100.2:1", "")) // bid above the ask
	j.msg(sTicker, ticker("ETHUSDT", t0+2, 101, "100.2", "1", "100.1", "2"))
	j.msg(sDepth, depth("ETHUSDT", t0+3, 102, 102, 101, "", ""))
	j.close()
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	_, recs := readBook(t, filepath.Join(ethDir(root, "2024-08-08"), "book.q"))
	m := readMeta(t, ethDir(root, "2024-08-08"))
	if m.Checks.CrossedEvents != 2 || m.Checks.TickerChecks != 1 || m.Checks.TickerMismatches != 1 || m.Events.DepthUpdates != 2 {
		t.Fatalf("checks %+v events %+v", m.Checks, m.Events)
	}
	last := recs[len(recs)-1]
	if last.TypeID != format.TypeLevel || last.Flags != format.FlagLast|format.FlagCrossed || last.Seq != 102 {
		t.Fatalf("empty update record %+v", last)
	}
}

// TestTradeGap: skipped trade ids are a completeness gap; the book stays valid.
func TestTradeGap(t *testing.T) {
	t0 := ms("2024-08-08T10:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(t0))
	j.connect(1, sTrade)
	j.msg(sTrade, trade("ETHUSDT", t0, 10, "1", "1", false))
	j.msg(sTrade, trade("ETHUSDT", t0+5, 14, "1", "1", false))
	j.msg(sTrade, trade("ETHUSDT", t0+6, 14, "1", "1", false)) // duplicate
	j.close()
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	m := readMeta(t, ethDir(root, "2024-08-08"))
	g := m.Completeness.Gaps
	if len(g) != 1 || g[0].Missing != 3 || g[0].From.Ns() != t0*1e6 || g[0].To.Ns() != (t0+5)*1e6 || m.Events.Trades != 2 {
		t.Fatalf("gaps %+v trades %d", g, m.Events.Trades)
	}
}

// TestResumeIsExact: refining a journal in two steps (the first segment, then the rest,
// from the checkpoint) writes the same bytes as one pass; so does a pass over files an
// earlier run left without its checkpoint; and a pass over a journal already refined
// changes nothing.
func TestResumeIsExact(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := ethBusy(t, mid-60000, mid-45000, 400, 250, func(j *jb, i, ts, u int64) {
		j.msg(sTicker, ticker("ETHUSDT", ts+2, u, "100.0", itoa(i%7+1), "100.1", itoa(i%5+1)))
		if i == 150 || i == 300 {
			j.roll()
		}
	})
	j.close()
	segs, _ := filepath.Glob(filepath.Join(j.dir, "*.q"))
	mut := func(c *Config) { c.SnapshotInterval = 10 * time.Second; c.Grace = 5 * time.Second }
	once := t.TempDir()
	refine(t, j, once, mut, nil)

	twice := t.TempDir()
	cfg := Defaults()
	mut(&cfg)
	for _, s := range [][]string{segs[:1], segs[:2], nil} {
		opt := Options{Config: cfg, Root: twice, JournalDir: j.dir, Segments: s}
		if _, err := Refine(t.Context(), opt); err != nil {
			t.Fatal(err)
		}
	}
	sameTree(t, once, twice)

	// State lost, files kept: the rebuild compares and finds nothing to change.
	os.RemoveAll(filepath.Join(twice, StateDir))
	st := refine(t, j, twice, mut, nil)
	if st.Diverged != 0 {
		t.Fatalf("rebuild over existing files diverged in %d records", st.Diverged)
	}
	sameTree(t, once, twice)
	if st := refine(t, j, twice, mut, nil); st.Frames != 0 {
		t.Fatalf("a refined journal was read again: %d frames", st.Frames)
	}
}

func itoa(i int64) string { return string([]byte{byte('0' + i%10)}) }

// sameTree compares two output roots: every book.q and index file byte for byte, every
// meta.json but its ingest_time.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	files := func(root string) map[string][]byte {
		out := map[string][]byte{}
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || strings.Contains(p, StateDir) {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			bs, _ := os.ReadFile(p)
			if filepath.Base(p) == meta.FileName {
				m, err := meta.Parse(bs, p)
				if err != nil {
					t.Fatal(err)
				}
				m.IngestTime = 0
				bs, _ = meta.Marshal(m)
			}
			out[rel] = bs
			return nil
		})
		return out
	}
	fa, fb := files(a), files(b)
	if len(fa) == 0 || len(fa) != len(fb) {
		t.Fatalf("%d files vs %d", len(fa), len(fb))
	}
	for k, v := range fa {
		if !bytes.Equal(v, fb[k]) {
			t.Fatalf("%s differs", k)
		}
	}
}
