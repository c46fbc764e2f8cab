package okx

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/venuefuzz"
	"github.com/chronicle/chronicle/venue"
)

// kit: the OKX capture (cryptofeed_okx.ws.txt with its instruments log: three bodies, spot,
// swap and futures) and the fast path its tests check against the general decoder.
var kit = venuefuzz.Capture{
	Venue: Venue{}, Files: []string{"cryptofeed_okx.ws.txt"}, Default: DefaultScale, Bodies: 3, Words: []string{"pong"},
	Fast: venuefuzz.FastPath{Fast: fastBook, General: decodeGeneral},
}

func TestReference(t *testing.T) {
	_, specs := kit.Scales(t, kit.Records(t))
	for _, c := range []struct {
		sym, typ        string
		scale           venue.Scale
		unit, size, ccy string
		expiry          int64
	}{
		{"BTC-USDT", "spot", venue.Scale{Price: 1, Qty: 8}, "base", "", "", 0},
		{"UNI-USD-SWAP", "swap", venue.Scale{Price: 3, Qty: 0}, "contracts", "10", "USD", 0},
		{"BTC-USD-220527", "futures", venue.Scale{Price: 1, Qty: 0}, "contracts", "100", "USD", 1653638400000e6},
	} {
		s, ok := specs[c.sym]
		if !ok {
			t.Fatalf("no spec for %s", c.sym)
		}
		if s.Type != c.typ || s.Scale != c.scale || s.QtyUnit != c.unit || s.ContractSize != c.size || s.ContractCurrency != c.ccy || s.ExpiryNs != c.expiry {
			t.Errorf("%s: %+v", c.sym, s)
		}
	}
	if _, err := (Venue{}).DecodeReference([]byte(`{"code":"50011","msg":"Too Many Requests","data":[]}`), nil); err == nil {
		t.Error("an error body decoded")
	}
}

// TestChecksumsOnCapture: every books message of the capture carries OKX's checksum, and
// the book a Verifier keeps from the snapshots has it after every message (290 of 290).
func TestChecksumsOnCapture(t *testing.T) {
	recs := kit.Records(t)
	scales, _ := kit.Scales(t, recs)
	v := Venue{}
	vers := map[string]*venue.Verifier{}
	counts := map[venue.Verdict]int{}
	var m venue.Message
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		ev, err := v.Parse(r.Payload)
		if err != nil {
			t.Fatalf("line %d: parse: %v", r.Line, err)
		}
		if err := v.DecodeAt(r.Payload, &m, scales); err != nil {
			t.Fatalf("line %d: decode: %v", r.Line, err)
		}
		if ev.Kind != m.Kind || ev.Snapshot != m.Snapshot || !bytes.Equal(ev.Stream, m.Stream) || !bytes.Equal(ev.Inst, m.Inst) {
			t.Fatalf("line %d: parse %+v, decode %+v", r.Line, ev, m.Event)
		}
		if ev.Kind != venue.KindDepth {
			continue
		}
		key := string(ev.Key(nil))
		x := vers[key]
		if x == nil {
			x = venue.NewVerifier(v, scales)
			vers[key] = x
		}
		verdict := x.Verify(r.Payload)
		counts[verdict]++
		if verdict != venue.VerifyOK {
			t.Errorf("line %d (%s): %v", r.Line, key, verdict)
		}
	}
	if counts[venue.VerifyOK] != 290 || len(vers) != 3 {
		t.Fatalf("verdicts %v over %d books, want 290 ok over 3", counts, len(vers))
	}
}

// TestChecksumDocExamples: the two examples OKX (then OKEx) published with its checksum
// rule, one with sides of equal length and one where the asks run on alone.
func TestChecksumDocExamples(t *testing.T) {
	sc := venue.Scale{Price: 1, Qty: 0}
	lv := func(p, q int64) venue.Level { return venue.Level{Price: p, Qty: q} }
	even := Venue{}.Checksum([]venue.Level{lv(33661, 7), lv(33660, 6)}, []venue.Level{lv(33668, 9), lv(33680, 8)}, sc, venue.Wire{})
	if int32(even) != -1881014294 {
		t.Errorf("even example: %d, want -1881014294", int32(even))
	}
	odd := Venue{}.Checksum([]venue.Level{lv(33661, 7)}, []venue.Level{lv(33668, 9), lv(33680, 8), lv(33720, 8)}, sc, venue.Wire{})
	if int32(odd) != 831078360 {
		t.Errorf("odd example: %d, want 831078360", int32(odd))
	}
	// The same strings by hand.
	if crc32.ChecksumIEEE([]byte("3366.1:7:3366.8:9:3366:6:3368:8")) != even {
		t.Error("even example string")
	}
}

func TestAppendNumber(t *testing.T) {
	for _, c := range []struct {
		v    int64
		d    uint8
		want string
	}{{302388, 1, "30238.8"}, {30316, 0, "30316"}, {303160, 1, "30316"}, {5160, 3, "5.16"}, {20000, 8, "0.0002"},
		{1, 8, "0.00000001"}, {0, 8, "0"}, {155896972, 8, "1.55896972"}, {-15, 1, "-1.5"}} {
		if got := string(AppendNumber(nil, c.v, c.d)); got != c.want {
			t.Errorf("AppendNumber(%d, %d) = %q, want %q", c.v, c.d, got, c.want)
		}
	}
}

// TestDecodeFields checks the decoder against encoding/json on every message of the
// capture: books levels, times, checksums; trades; tickers.
func TestDecodeFields(t *testing.T) {
	recs := kit.Records(t)
	scales, _ := kit.Scales(t, recs)
	var m venue.Message
	n := map[venue.Kind]int{}
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		if err := (Venue{}).DecodeAt(r.Payload, &m, scales); err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
		n[m.Kind]++
		var raw struct {
			Arg struct {
				Channel, InstID string
			}
			Action string
			Data   []map[string]any
		}
		if err := json.Unmarshal(r.Payload, &raw); err != nil {
			t.Fatal(err)
		}
		if m.Kind == venue.KindControl {
			if !strings.Contains(string(r.Payload), `"event"`) {
				t.Errorf("line %d: control without event", r.Line)
			}
			continue
		}
		sc := scales.Of([]byte(raw.Arg.InstID))
		if m.Scale != sc || string(m.Symbol) != raw.Arg.InstID {
			t.Fatalf("line %d: scale %v symbol %s", r.Line, m.Scale, m.Symbol)
		}
		d := raw.Data
		switch m.Kind {
		case venue.KindDepth:
			if len(d) != 1 {
				t.Fatalf("line %d: %d books", r.Line, len(d))
			}
			checkLevels(t, r.Line, "asks", d[0]["asks"], m.Asks, sc)
			checkLevels(t, r.Line, "bids", d[0]["bids"], m.Bids, sc)
			if cs := int32(d[0]["checksum"].(float64)); int32(m.Checksum) != cs || !m.HasChecksum {
				t.Errorf("line %d: checksum %d, want %d", r.Line, int32(m.Checksum), cs)
			}
			if want := mustMillis(t, d[0]["ts"]); m.ExchNs != want {
				t.Errorf("line %d: ts %d, want %d", r.Line, m.ExchNs, want)
			}
			if m.Snapshot != (raw.Action == "snapshot") || m.Depth != 400 {
				t.Errorf("line %d: snapshot %v depth %d", r.Line, m.Snapshot, m.Depth)
			}
		case venue.KindTrade:
			if len(m.Trades) != len(d) {
				t.Fatalf("line %d: %d trades, want %d", r.Line, len(m.Trades), len(d))
			}
			for i, tr := range d {
				got := m.Trades[i]
				if got.Price != dec(t, tr["px"], sc.Price) || got.Qty != dec(t, tr["sz"], sc.Qty) ||
					got.BuyerMaker != (tr["side"] == "sell") || got.TxNs != mustMillis(t, tr["ts"]) {
					t.Errorf("line %d: trade %d %+v from %v", r.Line, i, got, tr)
				}
			}
		case venue.KindBookTicker:
			tk := d[0]
			if m.BidPrice != dec(t, tk["bidPx"], sc.Price) || m.BidQty != dec(t, tk["bidSz"], sc.Qty) ||
				m.AskPrice != dec(t, tk["askPx"], sc.Price) || m.AskQty != dec(t, tk["askSz"], sc.Qty) || m.ExchNs != mustMillis(t, tk["ts"]) {
				t.Errorf("line %d: ticker %+v from %v", r.Line, m, tk)
			}
		}
	}
	if n[venue.KindDepth] != 290 || n[venue.KindTrade] != 74 || n[venue.KindBookTicker] != 28 {
		t.Errorf("messages by kind %v", n)
	}
}

func checkLevels(t *testing.T, line int, side string, raw any, got []venue.Level, sc venue.Scale) {
	t.Helper()
	lv := raw.([]any)
	if len(lv) != len(got) {
		t.Fatalf("line %d %s: %d levels, want %d", line, side, len(got), len(lv))
	}
	for i, l := range lv {
		e := l.([]any)
		if got[i].Price != dec(t, e[0], sc.Price) || got[i].Qty != dec(t, e[1], sc.Qty) {
			t.Fatalf("line %d %s[%d]: %+v from %v", line, side, i, got[i], e)
		}
	}
}

func dec(t *testing.T, v any, d uint8) int64 {
	t.Helper()
	s := venue.Scanner{B: []byte(`"` + v.(string) + `"`)}
	x, _, ok := s.Decimal(d)
	if !ok {
		t.Fatalf("decimal %v at %d", v, d)
	}
	return x
}

func mustMillis(t *testing.T, v any) int64 {
	t.Helper()
	s := venue.Scanner{B: []byte(`"` + v.(string) + `"`)}
	x, ok := s.QuotedInt()
	if !ok {
		t.Fatalf("millis %v", v)
	}
	return x * 1e6
}
