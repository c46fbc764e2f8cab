package etl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	_ "github.com/chronicle/chronicle/venue/all"
)

// jb writes a synthetic journal the way chronicle-feed does: connect records mapping
// channels to streams, messages on their stream's channel, REST snapshots after a request
// on the depth channel, disconnects and gaps.
type jb struct {
	t     *testing.T
	dir   string
	venue string
	a     *format.Appender
	seq   uint64
	recv  int64
	chans map[string]uint16 // stream -> channel
	conn  uint16
	gen   uint64
}

func newJournal(t *testing.T, venue string, start time.Time) *jb {
	t.Helper()
	j := &jb{t: t, dir: filepath.Join(testenv.FastDir(t), "journal"), venue: venue, recv: start.UnixNano(), chans: map[string]uint16{}}
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	j.roll()
	return j
}

// roll seals the current segment and starts the next, as the feed's hourly roll does.
func (j *jb) roll() {
	j.t.Helper()
	if j.a != nil {
		if err := j.a.Seal(); err != nil {
			j.t.Fatal(err)
		}
	}
	j.seq++
	h := format.NewJournalHeader(j.venue, "feed")
	h.CreatedNs = j.recv + int64(j.seq)
	p := filepath.Join(j.dir, journal.SegmentName(j.seq, time.Unix(0, j.recv).UTC().Truncate(time.Hour)))
	a, err := format.Create(p, h, format.Options{ChunkSize: 1 << 20, NoPrefault: true})
	if err != nil {
		j.t.Fatal(err)
	}
	j.a = a
}

func (j *jb) close() {
	j.t.Helper()
	if err := j.a.Seal(); err != nil {
		j.t.Fatal(err)
	}
	j.a = nil
}

func (j *jb) append(typ, ch uint16, payload []byte) {
	j.t.Helper()
	j.recv += 1000
	if err := j.a.AppendJournal(typ, ch, j.recv, payload); err != nil {
		j.t.Fatal(err)
	}
}

// connect opens a connection carrying the streams ("ethusdt@depth@0ms", ...).
func (j *jb) connect(session int64, streams ...string) {
	j.t.Helper()
	j.gen++
	conn, _ := journal.Channel(0, j.gen, journal.ConnStream)
	j.conn = conn
	c := journal.Connect{Session: session, Gen: j.gen, Channel: conn, URL: "test:"}
	for i, s := range streams {
		ch, _ := journal.Channel(0, j.gen, i)
		j.chans[s] = ch
		kind := s[strings.Index(s, "@")+1:]
		if k, _, ok := strings.Cut(kind, "@"); ok {
			kind = k
		}
		sym, _, _ := strings.Cut(s, "@")
		c.Streams = append(c.Streams, journal.StreamInfo{Channel: ch, Stream: s, Symbol: strings.ToUpper(sym), Kind: kind})
	}
	b, _ := json.Marshal(c)
	j.append(format.JournalConnect, conn, b)
}

func (j *jb) disconnect(kind string) {
	b, _ := json.Marshal(journal.Disconnect{Gen: j.gen, Kind: kind, Reason: "test"})
	j.append(format.JournalDisconnect, j.conn, b)
}

func (j *jb) msg(stream, data string) {
	j.t.Helper()
	ch, ok := j.chans[stream]
	if !ok {
		j.t.Fatalf("stream %s not connected", stream)
	}
	j.append(format.JournalMessage, ch, []byte(`{"stream":"`+stream+`","data":`+data+`}`))
}

func (j *jb) snapshot(stream, symbol, body string) {
	ch := j.chans[stream]
	b, _ := json.Marshal(journal.SnapshotRequest{Symbol: symbol, Stream: stream, Reason: "start"})
	j.append(format.JournalSnapshotRequest, ch, b)
	j.append(format.JournalRESTSnapshot, ch, []byte(body))
}

// ethBusy journals a binance-perp session opened at start (ms): an ETHUSDT snapshot 10 s
// later, then from first (ms) n steps step ms apart, each a depth update and a trade, then
// also (when not nil) what more journals given the step's number, time and last update id.
func ethBusy(t *testing.T, start, first, n, step int64, more func(j *jb, i, ts, u int64)) *jb {
	j := newJournal(t, "binance-perp", time.UnixMilli(start))
	j.connect(1, sDepth, sTrade, sTicker)
	j.snapshot(sDepth, "ETHUSDT", snap(100, start+10000, "100.0:1,99.0:1", "100.1:1,101:1"))
	u := int64(100)
	for i := int64(0); i < n; i++ {
		ts := first + i*step
		j.msg(sDepth, depth("ETHUSDT", ts, u+1, u+2, u, "100.0:"+itoa(i%7+1), "100.1:"+itoa(i%5+1)))
		u += 2
		j.msg(sTrade, trade("ETHUSDT", ts+1, i+1, "100.1", "0.1", i%2 == 0))
		if more != nil {
			more(j, i, ts, u)
		}
	}
	return j
}

// USD-M message builders. Times are ms since the epoch; levels "price:qty,price:qty".
func levelsJSON(spec string) string {
	if spec == "" {
		return "[]"
	}
	var parts []string
	for _, l := range strings.Split(spec, ",") {
		p, q, _ := strings.Cut(l, ":")
		parts = append(parts, fmt.Sprintf(`["%s","%s"]`, p, q))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func depth(sym string, E, U, u, pu int64, bids, asks string) string {
	return fmt.Sprintf(`{"e":"depthUpdate","E":%d,"T":%d,"s":"%s","U":%d,"u":%d,"pu":%d,"b":%s,"a":%s}`, E, E, sym, U, u, pu, levelsJSON(bids), levelsJSON(asks))
}

func trade(sym string, T, id int64, p, q string, maker bool) string {
	return fmt.Sprintf(`{"e":"trade","E":%d,"T":%d,"s":"%s","t":%d,"p":"%s","q":"%s","X":"MARKET","m":%v}`, T, T, sym, id, p, q, maker)
}

func ticker(sym string, E, u int64, b, bq, a, aq string) string {
	return fmt.Sprintf(`{"e":"bookTicker","u":%d,"s":"%s","b":"%s","B":"%s","a":"%s","A":"%s","T":%d,"E":%d}`, u, sym, b, bq, a, aq, E, E)
}

func snap(L int64, E int64, bids, asks string) string {
	return fmt.Sprintf(`{"lastUpdateId":%d,"E":%d,"T":%d,"bids":%s,"asks":%s}`, L, E, E, levelsJSON(bids), levelsJSON(asks))
}

// refine runs a backfill of the journal into root.
func refine(t *testing.T, j *jb, root string, mut func(*Config), table *symbols.Table) Stats {
	t.Helper()
	cfg := Defaults()
	cfg.CheckpointInterval = time.Hour
	if mut != nil {
		mut(&cfg)
	}
	opt := Options{Config: cfg, Root: root, JournalDir: j.dir}
	if table != nil {
		opt.Table = func() *symbols.Table { return table }
	}
	st, err := Refine(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// readBook returns every record of a book file.
func readBook(t *testing.T, path string) (format.Header, []format.BookRecord) {
	t.Helper()
	h, recs, err := books.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h, recs
}

func readMeta(t *testing.T, dir string) *meta.Meta {
	t.Helper()
	m, err := meta.Read(filepath.Join(dir, meta.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkRuns verifies every snapshot run of a book file against the replay of the records
// before it, and returns the number of runs compared.
func checkRuns(t *testing.T, recs []format.BookRecord) int {
	t.Helper()
	_, n, err := books.Replay(recs)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ms is a time as ms since the epoch.
func ms(s string) int64 {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return tm.UnixMilli()
}

// onIdle is a Listener that calls f each time a following run has caught up.
func onIdle(f func()) Listener { return idleListener{f: f} }

type idleListener struct {
	NopListener
	f func()
}

func (l idleListener) Idle() { l.f() }
