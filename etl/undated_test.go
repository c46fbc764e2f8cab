package etl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit"
)

// TestUndatedWaitForExchangeTime: spot bookTickers carry no time and are dated from the
// latest message that had one. When they come first in a journal whose receive clock is
// far from the exchange's (old data replayed live, a recorder's clock off), they wait for
// the first dated message instead of being dated by the receive clock, which would open a
// partition on the wrong day and move the venue's clock years ahead. A backfill that ends
// while they wait keeps them in its checkpoint; the continuation equals one pass.
func TestUndatedWaitForExchangeTime(t *testing.T) {
	recv0 := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	E := ms("2024-08-08T23:59:59.500Z")
	const (
		sTk = "ethusdt@bookTicker"
		sDp = "ethusdt@depth@100ms"
		sTr = "ethusdt@trade"
	)
	tk := func(u int64) string {
		return fmt.Sprintf(`{"u":%d,"s":"ETHUSDT","b":"2683.80000000","B":"3.02920000","a":"2683.81000000","A":"1.50000000"}`, u)
	}
	part1 := func(j *jb) {
		j.connect(1, sTk, sDp, sTr)
		j.msg(sTk, tk(101))
		j.msg(sTk, tk(102))
	}
	part2 := func(j *jb) {
		j.snapshot(sDp, "ETHUSDT", `{"lastUpdateId":100,"bids":[["2683.80000000","3.00000000"]],"asks":[["2683.81000000","1.00000000"]]}`)
		j.msg(sDp, fmt.Sprintf(`{"e":"depthUpdate","E":%d,"s":"ETHUSDT","U":101,"u":103,"b":[["2683.80000000","3.02920000"]],"a":[["2683.81000000","1.50000000"]]}`, E))
		j.msg(sTr, fmt.Sprintf(`{"e":"trade","E":%d,"s":"ETHUSDT","t":7,"p":"2683.81000000","q":"0.10000000","T":%d,"m":false,"M":true}`, E+1, E+1))
		j.msg(sTk, tk(104))
	}
	// In two backfills, the first ending while the tickers wait.
	j := newJournal(t, "binance-spot", recv0)
	part1(j)
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	if m, _ := filepath.Glob(filepath.Join(root, "v1", "*", "*", "*", "book.q")); len(m) != 0 {
		t.Fatalf("undated tickers were written before any exchange time was known: %v", m)
	}
	part2(j)
	j.close()
	refine(t, j, root, nil, nil)
	// In one.
	one := t.TempDir()
	refine(t, j, one, nil, nil)

	books, _ := filepath.Glob(filepath.Join(root, "v1", "*", "*", "*", "book.q"))
	want := filepath.Join(root, "v1", "binance-spot", "eth-usdt", "2024-08-08", "book.q")
	if len(books) != 1 || books[0] != want {
		t.Fatalf("partitions %v, want only %s", books, want)
	}
	_, recs := readBook(t, want)
	// The depth update was received 3 frames (3 us) after the first ticker: the tickers are
	// dated by the depth update's exchange-minus-receive time.
	depthRecv := recv0.UnixNano() + 6*1000 // connect, 2 tickers, request, snapshot, depth
	skew := E*1e6 - depthRecv
	var bbo []format.BookRecord
	firstLevel := -1
	for i, r := range recs {
		switch {
		case r.TypeID == format.TypeBBO:
			bbo = append(bbo, r)
		case r.TypeID == format.TypeLevel && r.Flags&format.FlagSnapshot == 0 && firstLevel < 0:
			firstLevel = i
		}
	}
	if len(bbo) != 3 {
		t.Fatalf("%d bbo records, want 3", len(bbo))
	}
	for i, r := range bbo[:2] {
		if want := recv0.UnixNano() + int64(i+2)*1000 + skew; r.ExchTs != want || r.Flags&format.FlagTsEstimated == 0 || r.RecvTs != recv0.UnixNano()+int64(i+2)*1000 {
			t.Errorf("waiting ticker %d: exchange time %d (want %d), recv %d, flags %#x", i, r.ExchTs, want, r.RecvTs, r.Flags)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(one, "v1", "binance-spot", "eth-usdt", "2024-08-08", "book.q")); !bytes.Equal(got, testkit.ReadFile(t, want)) {
		t.Fatal("two backfills with tickers waiting across them differ from one")
	}
	if m := readMeta(t, filepath.Dir(want)); m.Events.BBO != 3 || m.Events.Trades != 1 || m.Events.DepthUpdates != 1 {
		t.Fatalf("events %+v", m.Events)
	}

	// A journal that never dates them: with --seal-all (the journal is complete) they are
	// dated by their receive time, nothing lost.
	k := newJournal(t, "binance-spot", recv0)
	part1(k)
	k.close()
	sealed := t.TempDir()
	if _, err := Refine(t.Context(), Options{Config: Defaults(), Root: sealed, JournalDir: k.dir, SealAll: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := filepath.Glob(filepath.Join(sealed, "v1", "binance-spot", "eth-usdt", "2026-12-02", "book.q"))
	if len(got) != 1 {
		t.Fatalf("with --seal-all the waiting tickers are not written by receive time")
	}
}

// TestIdleOnSealedJournal: a live refinery that has read a sealed journal to its end (the
// feed stopped) waits for a successor segment by looking at the directory now and then,
// not on every turn of its loop (it used to list the directory in a busy loop, taking a
// core per venue).
func TestIdleOnSealedJournal(t *testing.T) {
	t0 := ms("2024-08-08T10:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(t0))
	j.connect(1, sDepth, sTrade, sTicker)
	j.msg(sTrade, trade("ETHUSDT", t0+3, 1, "100.1", "0.5", false))
	j.close()
	cfg := Defaults()
	cfg.IdleSpin = 0
	cfg.CheckpointInterval = 20 * time.Millisecond // idle long past the last checkpoint
	ctx, cancel := context.WithTimeout(t.Context(), 600*time.Millisecond)
	defer cancel()
	before := dirListings.Load()
	if _, err := Refine(ctx, Options{Config: cfg, Root: t.TempDir(), JournalDir: j.dir, Follow: true}); err != nil {
		t.Fatal(err)
	}
	// 600 ms at one look per checkpoint interval or 100 ms: about 30. A busy loop makes
	// thousands.
	if n := dirListings.Load() - before; n > 100 {
		t.Fatalf("%d directory listings while idle for 600 ms", n)
	}
}

// TestRestartKeepsMeta: a live refinery stopped at the sealed end of its journal leaves a
// meta.json that the refinery restarted from its checkpoint refreshes unchanged (but for
// its ingest time): the segment read to its sealed end is complete in both (the checkpoint
// once said otherwise, and the restarted refinery's refresh flipped "complete" to false).
func TestRestartKeepsMeta(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := ethBusy(t, mid-60000, mid-45000, 50, 250, nil)
	j.close()
	cfg := Defaults()
	cfg.IdleSpin, cfg.MetaInterval, cfg.CheckpointInterval = 0, time.Millisecond, 5*time.Millisecond
	root := t.TempDir()
	dir := ethDir(root, "2024-08-08")
	// run refines until its idles-th idle look, when it calls at (nil: nothing), and stops.
	run := func(idles int, at func()) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		n := 0
		if _, err := Refine(ctx, Options{Config: cfg, Root: root, JournalDir: j.dir, Follow: true, Listener: onIdle(func() {
			if n++; n == idles {
				if at != nil {
					at()
				}
				cancel()
			}
		})}); err != nil {
			t.Fatal(err)
		}
	}
	run(1, nil)
	before := readMeta(t, dir)
	var during *meta.Meta
	run(10, func() { during = readMeta(t, dir) }) // the periodic refresh has rewritten it
	before.IngestTime, during.IngestTime = 0, 0
	if !reflect.DeepEqual(before, during) {
		t.Fatalf("meta.json before the restart\n%+v\nrefreshed by the restarted refinery\n%+v", before.Source, during.Source)
	}
	if s := before.Source.Segments; len(s) == 0 || !s[len(s)-1].Complete {
		t.Fatalf("the journal's sealed segment is not complete: %+v", s)
	}
}
