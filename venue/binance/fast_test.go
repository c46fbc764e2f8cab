package binance

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
)

// The fast path may only ever accept what the general scanner accepts, with the same
// fields: these tests decode with Decode (fast path, general fallback) and with the general
// scanner alone, and compare. decode_test.go compares both with encoding/json.

// slowOnly decodes msg with the general scanner alone.
func (v Venue) slowOnly(msg []byte, m *venue.Message) error {
	*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0]}
	var d dataScan
	if err := slowDecode(msg, m, &d); err != nil {
		return err
	}
	return v.finish(m, &d)
}

// sameDecode checks that where the fast path reads msg, the general scanner reads the
// same fields (and kind rules then apply to both alike), and that Decode and the general
// scanner alone give the same result; fast reports whether the fast path took the message.
func sameDecode(v Venue, msg []byte) (diff string, fast bool) {
	norm := func(m *venue.Message) {
		if len(m.Bids) == 0 {
			m.Bids = nil
		}
		if len(m.Asks) == 0 {
			m.Asks = nil
		}
	}
	// With the market's shapes, and with the member loop alone.
	for _, shapes := range []*kindShapes{v.m.shapes, nil} {
		var a, b venue.Message
		var da, db dataScan
		ok := fastDecode(msg, &a, &da, shapes)
		if shapes != nil {
			fast = ok
		}
		if !ok {
			continue
		}
		if err := slowDecode(msg, &b, &db); err != nil {
			return fmt.Sprintf("the fast path (shapes %v) read a message the general scanner refuses: %v", shapes != nil, err), fast
		}
		norm(&a)
		norm(&b)
		if !reflect.DeepEqual(a, b) || da != db {
			return fmt.Sprintf("scans differ (shapes %v):\n fast    %+v %+v\n general %+v %+v", shapes != nil, a, da, b, db), fast
		}
	}
	var a, b venue.Message
	ea := v.Decode(msg, &a)
	eb := v.slowOnly(msg, &b)
	switch {
	case (ea == nil) != (eb == nil):
		return fmt.Sprintf("Decode: %v, general scanner: %v", ea, eb), fast
	case ea != nil:
		var pa, pb *venue.ParseError
		if !errors.As(ea, &pa) || !errors.As(eb, &pb) || *pa != *pb || ea.Error() != eb.Error() {
			return fmt.Sprintf("errors differ: %v / %v", ea, eb), fast
		}
		return "", fast
	}
	norm(&a)
	norm(&b)
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("fields differ:\n fast    %+v\n general %+v", a, b), fast
	}
	return "", fast
}

var allVenues = []Venue{New(), NewCoinM(), NewSpot()}

var (
	msgsMu    sync.Mutex
	msgsCache = map[string][][]byte{}
)

// captureMessages returns the websocket messages of capture files (read once per file).
func captureMessages(t testing.TB, files ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range files {
		msgsMu.Lock()
		msgs, ok := msgsCache[f]
		msgsMu.Unlock()
		if !ok {
			recs, err := capture.ReadAll(filepath.Join(testenv.CapturesDir(), f))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Kind == capture.KindMessage {
					msgs = append(msgs, r.Payload)
				}
			}
			msgsMu.Lock()
			msgsCache[f] = msgs
			msgsMu.Unlock()
		}
		out = append(out, msgs...)
	}
	return out
}

var captureFiles = []struct {
	v     Venue
	files []string
}{
	{New(), []string{"binance-usdm_ethusdt_20240808.jsonl.gz", "cryptofeed_binance-futures.ws.txt"}},
	{NewCoinM(), []string{"binance-coinm_ethusd_perp_20240808.jsonl.gz", "binance-coinm_ethusd_perp_20240809.jsonl.gz"}},
	{NewSpot(), []string{"binance-spot_ethusdt_20240808.jsonl.gz", "binance-spot_ethusdt_20240809.jsonl.gz"}},
}

// TestFastPathOnCaptures: on every message of the real captures the fast path reads what
// the general scanner reads, every message of a kind the refinery reads fits its market's
// shape (the member loop and the general scanner are for anything else), and on every 16th
// the member loop and Decode agree with them too.
func TestFastPathOnCaptures(t *testing.T) {
	for _, c := range captureFiles {
		stray := map[string]int{}
		var eg []byte
		for i, msg := range captureMessages(t, c.files...) {
			kind := kindOfStream(streamOf(msg))
			if i%16 == 0 {
				if d, _ := sameDecode(c.v, msg); d != "" {
					t.Fatalf("%s: %s\n%s", c.v.Name(), d, msg)
				}
			}
			if kind == venue.KindOther {
				continue
			}
			var a, b venue.Message
			var da, db dataScan
			if !fastDecode(msg, &a, &da, c.v.m.shapes) {
				t.Fatalf("%s: the fast path does not read %s", c.v.Name(), msg)
			}
			if err := slowDecode(msg, &b, &db); err != nil || !sameScan(&a, &b) || da != db {
				t.Fatalf("%s: the fast path and the general scanner differ (%v) on %s", c.v.Name(), err, msg)
			}
			// The shape took it, unless it strays.
			at := bytes.Index(msg, []byte(`"data":{`)) + len(`"data":{`)
			var m venue.Message
			d := dataScan{sawData: true}
			fit := false
			for _, sh := range c.v.m.shapes[kind] {
				if _, fit = fastShape(msg, at, &m, &d, sh, kind); fit {
					break
				}
			}
			if !fit {
				stray[kind.String()]++
				eg = msg
			}
		}
		if len(stray) > 0 {
			t.Errorf("%s: messages that fit no shape: %v; e.g. %.300s", c.v.Name(), stray, eg)
		}
	}
}

// sameScan compares two messages as scans leave them (empty level lists equal nil ones).
func sameScan(a, b *venue.Message) bool {
	x, y := *a, *b
	for _, m := range []*venue.Message{&x, &y} {
		if len(m.Bids) == 0 {
			m.Bids = nil
		}
		if len(m.Asks) == 0 {
			m.Asks = nil
		}
	}
	return reflect.DeepEqual(x, y)
}

func streamOf(msg []byte) []byte {
	i := bytes.Index(msg, []byte(`"stream":"`))
	if i < 0 {
		return nil
	}
	rest := msg[i+10:]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return nil
}

// TestFastPathEdits: edits of real messages that the fast path must leave to the general
// scanner, or read the same way.
func TestFastPathEdits(t *testing.T) {
	base := []string{
		`{"stream":"ethusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256303,"T":1723161256302,"s":"ETHUSDT","U":100,"u":105,"pu":99,"b":[["2681.62","16.969"],["2681.60","0"]],"a":[["2681.63","0.015"]]}}`,
		`{"stream":"ethusdt@trade","data":{"e":"trade","E":1723161256560,"T":1723161256559,"s":"ETHUSDT","t":4308068523,"p":"2681.62","q":"1.000","X":"MARKET","m":true}}`,
		`{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10","f":23961322,"l":23961325,"T":1626992741421,"m":false}}`,
		`{"stream":"ethusdt@bookTicker","data":{"e":"bookTicker","u":5123107838717,"s":"ETHUSDT","b":"2681.62","B":"1.165","a":"2681.63","A":"73.077","T":1723161256310,"E":1723161256311}}`,
		`{"stream":"ethusdt@bookTicker","data":{"u":35346513501,"s":"ETHUSDT","b":"2683.80000000","B":"3.02920000","a":"2683.81000000","A":"31.43950000"}}`,
		`{"stream":"ethusd_perp@depth@0ms","data":{"e":"depthUpdate","E":1723161257440,"T":1723161257434,"s":"ETHUSD_PERP","ps":"ETHUSD","U":1,"u":5,"pu":0,"b":[],"a":[["2682.13","0"]]}}`,
		`{"stream":"ethusdt@trade","data":{"e":"trade","E":1723161255612,"s":"ETHUSDT","t":1520538925,"p":"2683.80000000","q":"0.00200000","T":1723161255611,"m":true,"M":true}}`,
	}
	edits := [][2]string{
		{`"E":`, `"E" :`}, {`,"s"`, `, "s"`}, {`}}`, `} }`}, {`}}`, `}} `}, {`}}`, `},"x":1}`},
		{`"2681.62"`, `"2681.620000000"`}, {`"2681.62"`, `"02681.62"`}, {`"2681.62"`, `"-2681.62"`},
		{`"2681.62"`, `"2681."`}, {`"2681.62"`, `".62"`}, {`"2681.62"`, `"99999999999"`}, {`"2681.62"`, `"9999999999"`},
		{`"2681.62"`, `"26\u0038.62"`}, {`"2681.62"`, `2681.62`}, {`"0.015"`, `"0"`}, {`"1.000"`, `"0"`},
		{`"U":100`, `"U":0100`}, {`"U":100`, `"U":-100`}, {`"U":100`, `"U":1e2`}, {`"u":105`, `"u":1050000000000000000000`},
		{`"U":100`, `"U":100,"U":100`}, {`"s":"ETHUSDT"`, `"s":"ETH\u0055SDT"`}, {`"s":"ETHUSDT"`, `"s":""`},
		{`"X":"MARKET"`, `"X":{"a":1}`}, {`"X":"MARKET"`, `"X":[1]`}, {`"X":"MARKET"`, `"X":-1.5e3`}, {`"X":"MARKET"`, `"X":nul`},
		{`"X":"MARKET"`, `"X":"MAR\"KET"`}, {`"m":true`, `"m":truex`}, {`"m":true`, `"m":"true"`}, {`"M":true`, `"M":tru`},
		{`"e":"trade"`, `"e":"aggTrade"`}, {`"e":"depthUpdate"`, `"e":"trade"`}, {`"e":"bookTicker"`, `"e":"kline"`},
		{`"pu":99`, `"pu":106`}, {`"U":100`, `"U":106`}, {`"ps":"ETHUSD"`, `"pu":7`}, {`"t":4308068523`, `"b":1`},
		{`"t":4308068523`, `"t":4308068523,"a":5`}, {`"a":16599292`, `"a":"16599292"`}, {`"f":23961322`, `"f":23961326`},
		{`"b":[]`, `"b":[[]]`}, {`"b":[]`, `"b":[["1","1"],]`}, {`"b":[]`, `"b":[["1","1"]["2","2"]]`}, {`"b":[]`, `"b":[["1","1","2"]]`},
		{`"b":[]`, `"b":[["0","1"]]`}, {`"b":"2683.80000000"`, `"b":[]`}, {`"stream":"ethusdt@trade"`, `"stream":"ethusdt@kline_1m"`},
		{`"stream":"ethusdt@trade"`, `"stream":"ethusdttrade"`}, {`{"stream"`, `{"data":{},"stream"`}, {`"T":1723161256310`, `"T":0`},
		{`"E":1723161256311`, `"E":9223372036855`}, {`"A":"73.077"`, `"A":"73.077","A":"1"`}, {`"u":35346513501,`, ``},
	}
	n := 0
	for _, b := range base {
		for _, e := range edits {
			if !strings.Contains(b, e[0]) {
				continue
			}
			for _, v := range allVenues {
				for _, msg := range []string{b, strings.Replace(b, e[0], e[1], 1)} {
					if d, _ := sameDecode(v, []byte(msg)); d != "" {
						t.Errorf("%s: %s\n%s", v.Name(), d, msg)
					}
					n++
				}
			}
		}
	}
	if n < 200 {
		t.Fatalf("only %d cases ran", n)
	}
}

// FuzzFastPath: on any input the fast path and the general scanner agree (the same error,
// or the same fields).
func FuzzFastPath(f *testing.F) {
	for _, c := range captureFiles {
		msgs := captureMessages(f, c.files[0])
		seen := map[string]int{}
		for _, m := range msgs {
			s := string(streamOf(m))
			if seen[s] < 2 && len(m) < 600 {
				seen[s]++
				f.Add(m)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, v := range allVenues {
			if d, _ := sameDecode(v, in); d != "" {
				t.Fatalf("%s: %s", v.Name(), d)
			}
		}
	})
}

// BenchmarkDecodeCaptures: Decode over every message of the USD-M capture, beside the
// general scanner alone and valyala/fastjson's parse (which builds nothing), in MB/s of
// messages. etl's BenchmarkBackfill reports the same figure for the report
// (etl.backfill.decode).
func BenchmarkDecodeCaptures(b *testing.B) {
	msgs := captureMessages(b, "binance-usdm_ethusdt_20240808.jsonl.gz")
	var n int64
	for _, m := range msgs {
		n += int64(len(m))
	}
	v := New()
	var m venue.Message
	var p fastjson.Parser
	var tFast, tSlow, tJSON time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for _, msg := range msgs {
			v.Decode(msg, &m)
		}
		tFast += time.Since(t0)
		t0 = time.Now()
		for _, msg := range msgs {
			v.slowOnly(msg, &m)
		}
		tSlow += time.Since(t0)
		t0 = time.Now()
		for _, msg := range msgs {
			p.ParseBytes(msg)
		}
		tJSON += time.Since(t0)
	}
	mbs := func(d time.Duration) float64 { return float64(n) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(tFast), "decode_MB/s")
	b.ReportMetric(mbs(tSlow), "general_MB/s")
	b.ReportMetric(mbs(tJSON), "fastjson_MB/s")
	b.ReportMetric(tJSON.Seconds()/tFast.Seconds(), "x_fastjson")
}

// decodeNoShapes is Decode without shapes: the member loop, then the general scanner.
func (v Venue) decodeNoShapes(msg []byte, m *venue.Message) error {
	*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0]}
	var d dataScan
	if !fastDecode(msg, m, &d, nil) {
		return v.slowOnly(msg, m)
	}
	return v.finish(m, &d)
}

// BenchmarkDecodeAB: the fastest of b.N passes over the USD-M capture of Decode (A) and of
// the same without shapes (B), interleaved in one process.
func BenchmarkDecodeAB(b *testing.B) {
	msgs := captureMessages(b, "binance-usdm_ethusdt_20240808.jsonl.gz")
	var n int64
	for _, m := range msgs {
		n += int64(len(m))
	}
	v := New()
	var m venue.Message
	best := [2]time.Duration{1 << 62, 1 << 62}
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for _, msg := range msgs {
			v.Decode(msg, &m)
		}
		best[0] = min(best[0], time.Since(t0))
		t0 = time.Now()
		for _, msg := range msgs {
			v.decodeNoShapes(msg, &m)
		}
		best[1] = min(best[1], time.Since(t0))
	}
	b.ReportMetric(float64(n)/best[0].Seconds()/1e6, "A_MB/s")
	b.ReportMetric(float64(n)/best[1].Seconds()/1e6, "B_MB/s")
	b.ReportMetric(best[0].Seconds()/best[1].Seconds(), "B/A")
}

// BenchmarkDecodeKinds is a development aid: ns per message and MB/s by stream kind.
func BenchmarkDecodeKinds(b *testing.B) {
	msgs := captureMessages(b, "binance-usdm_ethusdt_20240808.jsonl.gz")
	by := map[venue.Kind][][]byte{}
	for _, m := range msgs {
		k := kindOfStream(streamOf(m))
		by[k] = append(by[k], m)
	}
	v := New()
	var m venue.Message
	for k, ms := range by {
		var n int64
		for _, x := range ms {
			n += int64(len(x))
		}
		best := time.Duration(1 << 62)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			for _, msg := range ms {
				v.Decode(msg, &m)
			}
			best = min(best, time.Since(t0))
		}
		b.Logf("%s: %d msgs, %.1f MB, %.0f ns/msg, %.0f MB/s, %.2f ms/pass", k, len(ms), float64(n)/1e6, float64(best.Nanoseconds())/float64(len(ms)), float64(n)/best.Seconds()/1e6, best.Seconds()*1e3)
	}
}
