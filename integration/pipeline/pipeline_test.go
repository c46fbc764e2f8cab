package pipeline

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/books"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
	"github.com/chronicle/chronicle/venue"
)

// TestPipeline runs the whole pipeline on every bundled capture, uninterrupted but for one
// fault: the simulator drops the COIN-M connection mid-stream.
//
//   - per capture, the messages the simulator sent are the messages journaled, byte for
//     byte and in order;
//   - the feed resyncs after the drop (a snapshot request with reason "reconnect"), the
//     refinery marks the book invalid from the drop to the resync, meta.json lists the
//     interval with its reason, and the book rebuilt from the resync ends where the
//     independent rebuild of the capture ends;
//   - through the mount, numpy counts the refinery issue's depth updates and trades per
//     date, and each partition's records agree with its meta.json;
//   - the tier manager, with the demo clock, puts partitions in every tier (the remote one
//     a real S3 server), and every file reads through the mount byte for byte as the
//     refinery wrote it;
//   - the live pipeline's partitions equal an uninterrupted backfill of the same journals.
func TestPipeline(t *testing.T) {
	p := newPipe(t)
	p.serveInProcess(0)
	p.start("etl", testenv.Bin("chronicle-etl"), "run", "--config", p.cfg)
	p.start("fs", testenv.Bin("chronicle-fs"), "mount", "--config", p.cfg, p.mnt)
	testenv.WaitFor(t, "the mount", 20*time.Second, func() bool { return mounted(p.mnt) })

	for _, name := range []string{"cryptofeed", "usdm", "spot"} {
		p.sims[name].PlayAfterSnapshots()
	}
	feed := func(name, market string) {
		p.start(name, append([]string{testenv.Bin("chronicle-feed")}, p.feedArgs(market)...)...)
	}
	feed("feed-coinm", "coinm")
	feed("feed-spot", "spot")
	feed("feed-perp", "cryptofeed") // binance-perp: the 2021 set first, then ETHUSDT

	// COIN-M: a third of the way in (2024-08-08), the connection drops.
	coinm := p.sims["coinm"]
	okSnaps := func() int {
		n := 0
		for _, l := range coinm.Snapshots() {
			if l.Status == 200 {
				n++
			}
		}
		return n
	}
	testenv.WaitFor(t, "the COIN-M feed's snapshot", 30*time.Second, func() bool { return okSnaps() == 1 })
	dropAt := coinm.Len() / 3
	coinm.PlayUntil(dropAt)
	if !coinm.Flush(30 * time.Second) {
		t.Fatal("COIN-M connection did not drain before the drop")
	}
	coinm.DropConnections(false)
	testenv.WaitFor(t, "the COIN-M feed to reconnect and resync", 30*time.Second, func() bool { return len(coinm.Conns()) == 2 && okSnaps() == 2 })
	coinm.Play()

	p.marketDone("cryptofeed")
	p.drained("cryptofeed")
	p.stop("feed-perp")
	feed("feed-perp", "usdm")
	for _, m := range []string{"usdm", "coinm", "spot"} {
		p.marketDone(m)
		p.drained(m)
	}
	for _, f := range []string{"feed-perp", "feed-coinm", "feed-spot"} {
		p.stop(f)
	}

	// What the exchange sent is what the journal holds.
	for _, c := range kit.All {
		sub, _ := p.sims[c.Name].Subscription()
		got := journaled(t, p.journalDir(c.Venue), sub.Symbols)
		want := sent(p.sims[c.Name])
		if len(want) != p.sims[c.Name].Len() && c.Name != "coinm" {
			t.Errorf("%s: the simulator sent %d of %d messages", c.Name, len(want), p.sims[c.Name].Len())
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages sent, %d journaled", c.Name, len(want), len(got))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: journaled message %d differs from the one sent", c.Name, i)
			}
		}
		t.Logf("%s: %d messages sent and journaled", c.Name, len(got))
	}
	if n := len(sent(coinm)); n != coinm.Len() {
		t.Errorf("COIN-M: %d of %d messages sent across the drop (the simulator paused; none should be lost)", n, coinm.Len())
	}
	if reasons := snapshotReasons(t, p.journalDir("binance-coinm")); strings.Join(reasons, ",") != journal.SnapshotStart+","+journal.SnapshotReconnect {
		t.Errorf("COIN-M snapshot requests %v, want start then reconnect", reasons)
	}

	for _, v := range venues {
		testenv.WaitFor(t, "the refinery to reach the end of "+v, 2*time.Minute, func() bool { return p.caughtUp(v) })
	}
	p.sealEnded()
	written := trees.Served(t, p.roots.Hot) // every partition as the refinery wrote it, all in hot so far

	p.start("tier", testenv.Bin("chronicle-tier"), "--config", p.cfg, "--now", demoNow, "run")
	testenv.WaitFor(t, "every partition in its tier", 2*time.Minute, p.placed)

	checkFigures(t, p.mnt, numpyCounts(t, p.mnt))
	trees.Same(t, written, trees.Served(t, p.mnt), "what the refinery wrote vs what the mount serves from every tier")
	checkDrop(t, p, dropAt)

	p.stop("etl") // its open partitions' final meta.json
	trees.Same(t, trees.Served(t, p.reference()), trees.Served(t, p.mnt), "the live pipeline vs a backfill of its journals")
}

// snapshotReasons lists the reasons of the snapshot requests a journal holds.
func snapshotReasons(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	eachRecord(t, dir, func(rec format.JournalRecord) {
		if rec.TypeID == format.JournalSnapshotRequest {
			var q journal.SnapshotRequest
			if err := journal.Decode(rec.Payload, &q); err != nil {
				t.Fatal(err)
			}
			out = append(out, q.Reason)
		}
	})
	return out
}

// checkDrop: the COIN-M drop is an invalid interval with reason "disconnect" in
// 2024-08-08's meta.json around the message where it happened, a book_invalid record
// says so in book.q, and the book rebuilt from the resync snapshot ends where the
// independent rebuild ends.
func checkDrop(t *testing.T, p *pipe, dropAt int) {
	t.Helper()
	coinm := p.sims["coinm"]
	var m venue.Message
	at := int64(0)
	for i := dropAt; at == 0 && i < coinm.Len(); i++ {
		if coinm.Venue().Decode(coinm.Payload(i), &m) == nil && m.Kind == venue.KindDepth {
			at = m.ExchNs
		}
	}
	part := filepath.Join(p.mnt, "v1", "binance-coinm", "eth-usd-perp", "2024-08-08")
	md, err := meta.Read(filepath.Join(part, meta.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var drops []meta.Invalid
	for _, iv := range md.Completeness.Invalid {
		if iv.Reason == "disconnect" {
			drops = append(drops, iv)
		}
	}
	if len(drops) != 1 || drops[0].Open || drops[0].From.Ns() > at || drops[0].To.Ns() < at {
		t.Fatalf("COIN-M 2024-08-08: disconnect intervals %+v; want one, closed, around the first depth update after the drop (%s)",
			drops, meta.Time(at))
	}
	_, recs, err := books.ReadFile(filepath.Join(part, "book.q"))
	if err != nil {
		t.Fatal(err)
	}
	marked := false
	for _, r := range recs {
		if r.TypeID == format.TypeBookInvalid && r.Qty == format.InvalidDisconnect && r.ExchTs == drops[0].From.Ns() {
			marked = true
		}
	}
	if !marked {
		t.Errorf("COIN-M 2024-08-08: no book_invalid record (disconnect) at the interval's start")
	}
	w := kit.Get("coinm").Symbols["eth-usd-perp"]["2024-08-08"]
	last := -1
	for i, r := range recs {
		if r.TypeID == format.TypeLevel && r.Flags&format.FlagSnapshot == 0 {
			last = i
		}
	}
	b, _, err := books.Replay(recs[:last+1])
	if err != nil {
		t.Fatal(err)
	}
	bid, ask := b.Best()
	if format.FormatDecimal(bid, 8) != decimal8(w.Bid) || format.FormatDecimal(ask, 8) != decimal8(w.Ask) {
		t.Errorf("COIN-M 2024-08-08 after the resync: final best bid/ask %s / %s, want %s / %s",
			format.FormatDecimal(bid, 8), format.FormatDecimal(ask, 8), w.Bid, w.Ask)
	}
}

func decimal8(s string) string {
	v, err := format.ParseDecimal([]byte(s), 8)
	if err != nil {
		panic(err)
	}
	return format.FormatDecimal(v, 8)
}
