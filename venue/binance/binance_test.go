package binance

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chronicle/chronicle/internal/testkit/testenv"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
)

var captures = testenv.CapturesDir()

func loadJSONL(t testing.TB) []capture.Record {
	t.Helper()
	recs, err := capture.ReadAll(captures + "binance-usdm_ethusdt_20240808.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestParseRealCapture(t *testing.T) {
	p := New()
	counts := map[string]int{}
	var last int64 = -1
	var gaps, snaps int
	for _, r := range loadJSONL(t) {
		if r.Kind == capture.KindSnapshot {
			snaps++
			s, err := p.ParseSnapshot(r.Payload)
			if err != nil || s.LastUpdateID != 5123107856276 {
				t.Fatalf("snapshot: %+v %v", s, err)
			}
			continue
		}
		ev, err := p.Parse(r.Payload)
		if err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
		counts[string(ev.Stream)+"/"+ev.Kind.String()]++
		if ev.Kind == venue.KindDepth {
			if last >= 0 && p.Check(last, ev) != venue.SeqNext {
				gaps++
			}
			last = ev.ID
		}
		if ev.ID <= 0 {
			t.Fatalf("line %d: no id in %+v", r.Line, ev)
		}
	}
	want := map[string]int{
		"ethusdt@depth@0ms/depth":       6586,
		"ethusdt@trade/trade":           14076,
		"ethusdt@bookTicker/bookTicker": 53992,
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s: %d, want %d", k, counts[k], v)
		}
	}
	if gaps != 0 || snaps != 1 {
		t.Fatalf("gaps %d snaps %d", gaps, snaps)
	}
}

func TestParseCryptofeed(t *testing.T) {
	recs, err := capture.ReadAll(captures + "cryptofeed_binance-futures.ws.txt")
	if err != nil {
		t.Fatal(err)
	}
	p := New()
	kinds := map[venue.Kind]int{}
	last := map[string]int64{}
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		ev, err := p.Parse(r.Payload)
		if err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
		kinds[ev.Kind]++
		if ev.Kind == venue.KindDepth {
			if l, ok := last[string(ev.Stream)]; ok && p.Check(l, ev) != venue.SeqNext {
				t.Errorf("line %d: gap in %s", r.Line, ev.Stream)
			}
			last[string(ev.Stream)] = ev.ID
		}
	}
	if kinds[venue.KindDepth] != 764 || kinds[venue.KindBookTicker] != 613 || kinds[venue.KindAggTrade] != 91 || kinds[venue.KindOther] != 67 {
		t.Fatalf("kinds %v", kinds)
	}
}

func TestParseNoAlloc(t *testing.T) {
	recs := loadJSONL(t)
	p := New()
	msgs := [][]byte{recs[0].Payload, recs[1].Payload, recs[100].Payload}
	allocs := testing.AllocsPerRun(200, func() {
		for _, m := range msgs {
			if _, err := p.Parse(m); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %.1f times per run", allocs)
	}
}

func TestParseErrors(t *testing.T) {
	p := New()
	cases := []struct {
		msg   string
		err   error
		field string
	}{
		{`{"result":null,"id":1}`, venue.ErrNotEnvelope, ""},
		{`{"stream":"x@depth","data":{"e":"depthUpdate","U":1,"u":2}}`, venue.ErrMissingField, "pu"},
		{`{"stream":"x@depth","data":{"e":"depthUpdate","U":3,"u":2,"pu":1}}`, venue.ErrBadField, "U"},
		{`{"stream":"x@trade","data":{"e":"trade","t":1.5}}`, venue.ErrBadField, "t"},
		{`{"stream":"x@trade","data":{"e":"trade","t":99999999999999999999}}`, venue.ErrBadField, "t"},
		{`{"stream":"x@trade","data":{"t":5}}`, venue.ErrMissingField, "e"},
		{`{"stream":5,"data":{}}`, venue.ErrBadField, "stream"},
		{`{"stream":"a","data":[1]}`, venue.ErrBadField, "data"},
		{`{"stream":"a","da`, venue.ErrSyntax, ""},
		{`not json`, venue.ErrSyntax, ""},
		{``, venue.ErrSyntax, ""},
	}
	for _, c := range cases {
		_, err := p.Parse([]byte(c.msg))
		var pe *venue.ParseError
		if !errors.Is(err, c.err) || !errors.As(err, &pe) || (c.field != "" && pe.Field != c.field) {
			t.Errorf("%s: err %v, want %v field %q", c.msg, err, c.err, c.field)
		}
	}
	// An unknown event type is fine: journaled, unsequenced.
	ev, err := p.Parse([]byte(`{"stream":"ethusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"p":"1"}}`))
	if err != nil || ev.Kind != venue.KindOther || ev.ID != 0 {
		t.Fatalf("%+v %v", ev, err)
	}
	// Fields in any order; bookTicker's string "a" (ask) is not an id.
	ev, err = p.Parse([]byte(` { "data" : {"a":"1.5","u":7,"e":"bookTicker"} , "stream" : "x@bookTicker" } `))
	if err != nil || ev.Kind != venue.KindBookTicker || ev.ID != 7 || string(ev.Stream) != "x@bookTicker" {
		t.Fatalf("%+v %v", ev, err)
	}
}

func TestSnapshotParse(t *testing.T) {
	p := New()
	if _, err := p.ParseSnapshot([]byte(`{"code":-1121,"msg":"Invalid symbol."}`)); !errors.Is(err, venue.ErrSnapshotError) {
		t.Fatalf("error body: %v", err)
	}
	if _, err := p.ParseSnapshot([]byte(`{"bids":[]}`)); !errors.Is(err, venue.ErrMissingField) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := p.ParseSnapshot([]byte(`{"lastUpdateId":-4}`)); !errors.Is(err, venue.ErrBadField) {
		t.Fatalf("negative: %v", err)
	}
}

func TestSequenceRules(t *testing.T) {
	p := New()
	d := func(U, u, pu int64) venue.Event { return venue.Event{Kind: venue.KindDepth, First: U, ID: u, Prev: pu} }
	if p.Check(10, d(11, 15, 10)) != venue.SeqNext || p.Check(10, d(5, 9, 4)) != venue.SeqStale || p.Check(10, d(12, 15, 11)) != venue.SeqGap {
		t.Fatal("depth rule")
	}
	if p.Check(10, d(5, 10, 4)) != venue.SeqStale {
		t.Fatal("same u is stale")
	}
	tr := venue.Event{Kind: venue.KindTrade, ID: 5}
	if p.Check(5, tr) != venue.SeqStale || p.Check(4, tr) != venue.SeqUnknown {
		t.Fatal("trade rule")
	}
	if !p.Bridges(venue.Snapshot{LastUpdateID: 10}, d(12, 15, 10)) || p.Bridges(venue.Snapshot{LastUpdateID: 9}, d(12, 15, 10)) {
		t.Fatal("bridge rule")
	}
}

func TestPlanSplitsUnderLimit(t *testing.T) {
	p := New()
	var syms []string
	for i := 0; i < 150; i++ {
		syms = append(syms, "SYM"+strings.Repeat("X", i%3)+string(rune('A'+i%26))+string(rune('A'+i/26)))
	}
	conns, err := p.Plan("wss://fstream.binance.com", venue.Subscription{
		Symbols: syms, Streams: []string{"depth", "trade", "bookTicker"}, DepthSpeed: "0ms",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 3 { // 450 streams, 66 symbols (198 streams) per connection
		t.Fatalf("%d connections", len(conns))
	}
	seen := map[string]bool{}
	for _, c := range conns {
		if len(c.Streams) > MaxStreamsPerConn || len(c.Streams)%3 != 0 {
			t.Fatalf("connection with %d streams", len(c.Streams))
		}
		if !strings.HasPrefix(c.URL, "wss://fstream.binance.com/stream?streams=") || strings.Count(c.URL, "/")-3 != len(c.Streams)-1 {
			t.Fatalf("url %s", c.URL[:80])
		}
		for _, s := range c.Streams {
			if seen[s.Name] {
				t.Fatalf("stream %s twice", s.Name)
			}
			seen[s.Name] = true
		}
	}
	if !seen["symxba@depth@0ms"] {
		t.Fatalf("missing lower-case depth stream name")
	}
	// Routes put stream families on their own paths.
	conns, err = p.Plan("wss://h", venue.Subscription{Symbols: []string{"ethusdt"}, Streams: []string{"depth", "trade", "bookTicker"},
		DepthSpeed: "250ms", Routes: map[string]string{"depth": "/public", "bookTicker": "/public", "trade": "/market"}})
	if err != nil || len(conns) != 2 || conns[0].URL != "wss://h/public/stream?streams=ethusdt@depth/ethusdt@bookTicker" || conns[1].URL != "wss://h/market/stream?streams=ethusdt@trade" {
		t.Fatalf("routes: %+v %v", conns, err)
	}
	for _, bad := range []venue.Subscription{
		{Symbols: []string{"eth usdt"}, Streams: []string{"trade"}},
		{Symbols: []string{"ETHUSDT"}, Streams: []string{"x/y"}},
		{Symbols: []string{"ETHUSDT"}},
	} {
		if _, err := p.Plan("wss://h", bad); err == nil {
			t.Errorf("plan %+v accepted", bad)
		}
	}
	if _, err := p.Plan("http://h", venue.Subscription{Symbols: []string{"A"}, Streams: []string{"trade"}}); err == nil {
		t.Error("http base accepted")
	}
}

func TestSnapshotRequest(t *testing.T) {
	r, err := New().SnapshotRequest("http://127.0.0.1:1/", "ethusdt", 1000)
	if err != nil || r.URL != "http://127.0.0.1:1/fapi/v1/depth?symbol=ETHUSDT&limit=1000" || r.Weight != 20 {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := New().SnapshotRequest("", "ETHUSDT", 7); !errors.Is(err, venue.ErrBadField) {
		t.Fatal("limit 7 accepted")
	}
}

// reference decodes the same fields with encoding/json, for differential fuzzing.
func reference(msg []byte) (stream, e string, ids map[string]int64, ok bool) {
	var env struct {
		Stream *string                     `json:"stream"`
		Data   map[string]*json.RawMessage `json:"data"`
	}
	if json.Unmarshal(msg, &env) != nil || env.Stream == nil || env.Data == nil {
		return "", "", nil, false
	}
	ids = map[string]int64{}
	if raw := env.Data["e"]; raw != nil {
		json.Unmarshal(*raw, &e)
	}
	for _, k := range []string{"U", "u", "pu", "t", "a"} {
		if raw := env.Data[k]; raw != nil {
			var v int64
			if json.Unmarshal(*raw, &v) == nil {
				ids[k] = v
			}
		}
	}
	return *env.Stream, e, ids, true
}

func FuzzParse(f *testing.F) {
	recs := loadJSONL(f)
	for _, i := range []int{0, 1, 2, 40, 41, 500} {
		f.Add(recs[i].Payload)
	}
	f.Add([]byte(`{"stream":"x@aggTrade","data":{"e":"aggTrade","a":5,"p":"1"}}`))
	f.Add([]byte(`{"result":null,"id":1}`))
	p := New()
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, err := p.Parse(msg)
		if err != nil {
			var pe *venue.ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > int64(len(msg)) {
				t.Fatalf("untyped error or bad offset: %v", err)
			}
			return
		}
		stream, e, ids, ok := reference(msg)
		if !ok {
			// Parse stops early; a message that is broken after the fields it needs is
			// accepted here and rejected by the ETL. The fields it did read must be right.
			return
		}
		if string(ev.Stream) != stream && !strings.Contains(string(ev.Stream), "\\") && utf8.Valid(ev.Stream) {
			t.Fatalf("stream %q, reference %q", ev.Stream, stream)
		}
		if kindOf([]byte(e)) != ev.Kind && utf8.Valid(msg) && !strings.Contains(string(msg), "\\") && strings.Count(string(msg), `"e"`) == 1 {
			t.Fatalf("kind %v, reference e=%q", ev.Kind, e)
		}
		want := map[venue.Kind]string{venue.KindDepth: "u", venue.KindBookTicker: "u", venue.KindTrade: "t", venue.KindAggTrade: "a"}[ev.Kind]
		if want != "" && ids[want] != ev.ID {
			// duplicate keys: encoding/json keeps the last, Parse may stop at the first
			if strings.Count(string(msg), `"`+want+`"`) == 1 {
				t.Fatalf("id %d, reference %d (%s)", ev.ID, ids[want], want)
			}
		}
	})
}

func FuzzParseSnapshot(f *testing.F) {
	for _, r := range loadJSONL(f) {
		if r.Kind == capture.KindSnapshot {
			f.Add(r.Payload[:2000])
			f.Add(r.Payload)
		}
	}
	f.Add([]byte(`{"code":-1,"msg":"x"}`))
	p := New()
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := p.ParseSnapshot(body)
		if err == nil && s.LastUpdateID < 0 {
			t.Fatalf("negative id accepted")
		}
		if err != nil {
			var pe *venue.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}
