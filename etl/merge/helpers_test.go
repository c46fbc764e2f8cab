package merge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/books"
	_ "github.com/chronicle/chronicle/venue/all"
)

// A small USD-M exchange (ETHUSDT): a scripted sequence of depth updates, trades and
// tickers, and hosts that capture it with drops, as chronicle-feed journals them.

const (
	sDepth  = "ethusdt@depth@0ms"
	sTrade  = "ethusdt@trade"
	sTicker = "ethusdt@bookTicker"
)

// event is one exchange message: its stream, exchange time (ms) and payload.
type event struct {
	stream string
	ms     int64
	data   string
	// the book after a depth event, as a REST snapshot taken just before the next one
	// would state it (lastUpdateId = the next event's U, futures rule)
	u, nextU int64
	bids     map[int]int
	asks     map[int]int
}

// exchange generates n events starting at t0 (ms): per step a depth update, a ticker and
// sometimes a trade, every 50 ms of exchange time.
func exchange(seed uint64, t0 int64, n int) []event {
	rng := rand.New(rand.NewPCG(seed, 1))
	bids, asks := map[int]int{}, map[int]int{}
	for p := 0; p < 5; p++ {
		bids[1000-p] = 1 + p
		asks[1001+p] = 2 + p
	}
	u := int64(1000)
	var evs []event
	trade := int64(500)
	for i := 0; i < n; i++ {
		ms := t0 + int64(i)*50
		U, nu := u+1, u+1+int64(rng.IntN(3))
		var b, a []string
		for k := 0; k < 1+rng.IntN(3); k++ {
			p, q := 995+rng.IntN(6), rng.IntN(4)
			if q == 0 {
				delete(bids, p)
			} else {
				bids[p] = q
			}
			b = append(b, lv(p, q))
		}
		for k := 0; k < rng.IntN(3); k++ {
			p, q := 1001+rng.IntN(6), rng.IntN(4)
			if q == 0 {
				delete(asks, p)
			} else {
				asks[p] = q
			}
			a = append(a, lv(p, q))
		}
		e := event{stream: sDepth, ms: ms, u: nu, bids: clone(bids), asks: clone(asks),
			data: fmt.Sprintf(`{"e":"depthUpdate","E":%d,"T":%d,"s":"ETHUSDT","U":%d,"u":%d,"pu":%d,"b":[%s],"a":[%s]}`,
				ms, ms, U, nu, u, strings.Join(b, ","), strings.Join(a, ","))}
		if len(evs) > 0 {
			for j := len(evs) - 1; j >= 0; j-- {
				if evs[j].stream == sDepth {
					evs[j].nextU = U
					break
				}
			}
		}
		evs = append(evs, e)
		u = nu
		bb, ba := best(bids, true), best(asks, false)
		evs = append(evs, event{stream: sTicker, ms: ms + 1, data: fmt.Sprintf(`{"e":"bookTicker","u":%d,"s":"ETHUSDT","b":"%d.0","B":"%d","a":"%d.0","A":"%d","T":%d,"E":%d}`,
			u, bb, bids[bb], ba, asks[ba], ms+1, ms+1)})
		if rng.IntN(2) == 0 {
			trade++
			evs = append(evs, event{stream: sTrade, ms: ms + 2, data: fmt.Sprintf(`{"e":"trade","E":%d,"T":%d,"s":"ETHUSDT","t":%d,"p":"%d.0","q":"1","X":"MARKET","m":%v}`,
				ms+2, ms+2, trade, ba, rng.IntN(2) == 0)})
		}
	}
	return evs
}

func lv(p, q int) string { return fmt.Sprintf(`["%d.0","%d"]`, p, q) }

func clone(m map[int]int) map[int]int {
	c := make(map[int]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func best(m map[int]int, bid bool) int {
	b := -1
	for p := range m {
		if b < 0 || (bid && p > b) || (!bid && p < b) {
			b = p
		}
	}
	return b
}

// snapshotAfter is the REST body a host gets when it asks right after event i: the book
// after the last depth event at or before i, stated at the next depth event's U.
func snapshotAfter(evs []event, i int) string {
	for ; i >= 0 && evs[i].stream != sDepth; i-- {
	}
	e := evs[i]
	side := func(m map[int]int, bid bool) string {
		var ps []int
		for p := range m {
			ps = append(ps, p)
		}
		sort.Ints(ps)
		if bid {
			sort.Sort(sort.Reverse(sort.IntSlice(ps)))
		}
		var out []string
		for _, p := range ps {
			out = append(out, lv(p, m[p]))
		}
		return strings.Join(out, ",")
	}
	return fmt.Sprintf(`{"lastUpdateId":%d,"E":%d,"T":%d,"bids":[%s],"asks":[%s]}`, e.nextU, e.ms, e.ms, side(e.bids, true), side(e.asks, false))
}

// capturePlan is how one host captures the exchange: its host id, its receive clock
// (offset from exchange time, ms), and the event indices at which its connection drops and
// comes back (it then asks for a snapshot, answered after the event before reconnect).
type capturePlan struct {
	host    string
	offset  int64
	drops   [][2]int // [drop before event i, reconnect before event j)
	restart int      // a new feed session before this event (0: none)
	skip    int      // a depth event the host misses without a disconnect (0: none): a gap record and a snapshot follow
	corrupt int      // a depth event whose payload the host damaged (0: none)
	lost    [2]int   // events in a journal segment that is missing (0, 0: none)
	lead    int64    // ns before the event at which a reconnection journals its connect and snapshot (default 300)
}

// journalOf writes what chronicle-feed would journal of evs under plan into dir (one
// segment) and returns dir.
func journalOf(t *testing.T, evs []event, plan capturePlan, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t0 := evs[0].ms*1e6 + plan.offset*1e6
	a, err := format.Create(filepath.Join(dir, journal.SegmentName(1, time.Unix(0, t0).Truncate(time.Hour))),
		format.NewJournalHeader("binance-perp", "feed"), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	session, gen := int64(1), uint64(0)
	streams := []string{sDepth, sTrade, sTicker}
	kinds := []string{"depth", "trade", "bookTicker"}
	ch := func(i int) uint16 { c, _ := journal.Channel(0, gen, i); return c }
	put := func(typ, c uint16, recv int64, pl string) {
		if err := a.AppendJournal(typ, c, recv, []byte(pl)); err != nil {
			t.Fatal(err)
		}
	}
	connect := func(recv int64) {
		c := journal.Connect{Session: session, Slot: 0, Gen: gen, Channel: ch(journal.ConnStream), URL: "ws://x", Host: plan.host}
		for i, s := range streams {
			c.Streams = append(c.Streams, journal.StreamInfo{Channel: ch(i), Stream: s, Symbol: "ETHUSDT", Kind: kinds[i]})
		}
		put(format.JournalConnect, ch(journal.ConnStream), recv, string(mustJSON(c)))
	}
	snapshot := func(recv int64, i int) {
		q := journal.SnapshotRequest{Symbol: "ETHUSDT", Stream: sDepth, URL: "http://x", Limit: 1000, Weight: 20, Reason: "start"}
		put(format.JournalSnapshotRequest, ch(0), recv, string(mustJSON(q)))
		put(format.JournalRESTSnapshot, ch(0), recv+50, snapshotAfter(evs, i))
	}
	recvOf := func(i int) int64 { return (evs[i].ms+plan.offset)*1e6 + int64(i%7)*1000 }
	connect(recvOf(0) - 2e6)
	snapshot(recvOf(0)-1e6, 0) // the first snapshot: the book before the first event
	down := false
	for i := range evs {
		for _, d := range plan.drops {
			if i == d[0] {
				put(format.JournalDisconnect, ch(journal.ConnStream), recvOf(i)-500, string(mustJSON(journal.Disconnect{Session: session, Gen: gen, Kind: journal.DisconnectError, Reason: "test drop"})))
				down = true
			}
			if i == d[1] {
				lead := max(plan.lead, 300)
				gen++
				connect(recvOf(i) - lead)
				snapshot(recvOf(i)-lead+100, i-1)
				down = false
			}
		}
		if plan.restart > 0 && i == plan.restart {
			session++
			gen = 0
			connect(recvOf(i) - 300)
			snapshot(recvOf(i)-200, i-1)
		}
		if plan.lost[1] > 0 && i == plan.lost[0] {
			// The segment holding [lost[0], lost[1]) is gone: the next one, seq 3, restates
			// the connection and the feed never knew a snapshot was needed.
			if err := a.Seal(); err != nil {
				t.Fatal(err)
			}
			r := recvOf(plan.lost[1]) - 100
			if a, err = format.Create(filepath.Join(dir, journal.SegmentName(3, time.Unix(0, r).Truncate(time.Hour))),
				format.NewJournalHeader("binance-perp", "feed"), format.Options{ChunkSize: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			c := journal.Connect{Session: session, Slot: 0, Gen: gen, Channel: ch(journal.ConnStream), URL: "ws://x", Host: plan.host, Carried: true}
			for k, s := range streams {
				c.Streams = append(c.Streams, journal.StreamInfo{Channel: ch(k), Stream: s, Symbol: "ETHUSDT", Kind: kinds[k]})
			}
			put(format.JournalConnect, ch(journal.ConnStream), r, string(mustJSON(c)))
		}
		if plan.lost[1] > 0 && i >= plan.lost[0] && i < plan.lost[1] {
			continue
		}
		if i == plan.skip && i > 0 {
			// The event is missed; the gap shows at the next depth event, which the feed
			// journals after a gap record, then asks for a snapshot.
			for k := i + 1; k < len(evs); k++ {
				if evs[k].stream == sDepth {
					put(format.JournalGap, ch(0), recvOf(k)-10, string(mustJSON(journal.Gap{Reason: journal.GapSequence, Stream: sDepth, Symbol: "ETHUSDT"})))
					break
				}
			}
			continue
		}
		if plan.skip > 0 && i > plan.skip && evs[i].stream == sDepth && evs[i-1].stream != sDepth && gapPending(evs, plan.skip, i) {
			snapshot(recvOf(i)+50, i)
		}
		if !down {
			data := evs[i].data
			if i == plan.corrupt && i > 0 {
				data = data[:len(data)/2]
			}
			put(format.JournalMessage, ch(indexOf(streams, evs[i].stream)), recvOf(i), fmt.Sprintf(`{"stream":"%s","data":%s}`, evs[i].stream, data))
		}
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// gapPending: i is the first depth event after the second depth event following the
// skipped one (the snapshot the feed asked for arrives then).
func gapPending(evs []event, skip, i int) bool {
	n := 0
	for k := skip + 1; k < i; k++ {
		if evs[k].stream == sDepth {
			n++
		}
	}
	return n == 2
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// refineOne refines a journal alone (a host's own partitions) into a fresh root.
func refineOne(t *testing.T, dir string) string {
	t.Helper()
	root := t.TempDir()
	cfg := etl.Defaults()
	cfg.CheckpointInterval = time.Hour
	if _, err := etl.Refine(context.Background(), etl.Options{Config: cfg, Root: root, JournalDir: dir, SealAll: true}); err != nil {
		t.Fatal(err)
	}
	return root
}

func mergeInto(t *testing.T, root string, a, b Input) Result {
	t.Helper()
	cfg := etl.Defaults()
	cfg.CheckpointInterval = time.Hour
	res, err := Merge(context.Background(), Options{Inputs: [2]Input{a, b}, Root: root, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

const part = "v1/binance-perp/eth-usdt/2024-08-08"

func records(t *testing.T, root string) []format.BookRecord {
	t.Helper()
	_, recs, err := books.ReadFile(filepath.Join(root, part, "book.q"))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func readMeta(t *testing.T, root string) *meta.Meta {
	t.Helper()
	m, err := meta.Read(filepath.Join(root, part, meta.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// withoutRecv blanks receive times: hosts receive the same events at other moments.
func withoutRecv(rs []format.BookRecord) []format.BookRecord {
	out := make([]format.BookRecord, len(rs))
	for i, r := range rs {
		r.RecvTs = 0
		out[i] = r
	}
	return out
}
