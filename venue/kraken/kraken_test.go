package kraken

import (
	"encoding/json"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/venuefuzz"
	"github.com/chronicle/chronicle/venue"
)

// kit: the Kraken capture (three connections recorded at once, merged by receive time, with
// the one AssetPairs log they share) and the fast path its tests check against the general
// decoder.
var kit = venuefuzz.Capture{
	Venue: Venue{}, Files: []string{"cryptofeed_kraken-book.ws.txt", "cryptofeed_kraken-trade.ws.txt", "cryptofeed_kraken-ticker.ws.txt"},
	Default: DefaultScale, Bodies: 1,
	Fast: venuefuzz.FastPath{Fast: fastBook, General: decodeGeneral},
}

func TestReference(t *testing.T) {
	_, specs := kit.Scales(t, kit.Records(t))
	for pair, want := range map[string]venue.Scale{"XMR/USD": {Price: 2, Qty: 8}, "ADA/XBT": {Price: 8, Qty: 8},
		"XBT/CHF": {Price: 1, Qty: 8}, "WAVES/EUR": {Price: 4, Qty: 8}} {
		if s := specs[pair]; s.Scale != want || s.QtyUnit != "base" || s.LotSize != "0.00000001" {
			t.Errorf("%s: %+v", pair, s)
		}
	}
	if len(specs) < 100 {
		t.Errorf("%d pairs", len(specs))
	}
	if _, err := (Venue{}).DecodeReference([]byte(`{"error":["EGeneral:Too many requests"]}`), nil); err == nil {
		t.Error("an error body decoded")
	}
}

// TestChecksumsOnCapture: every one of the capture's 4,269 book updates carries Kraken's
// checksum, and the book kept from the ten snapshots at the subscribed depth has it after
// every update.
func TestChecksumsOnCapture(t *testing.T) {
	recs := kit.Records(t)
	scales, _ := kit.Scales(t, recs)
	v := Venue{}
	vers := map[string]*venue.Verifier{}
	counts := map[venue.Verdict]int{}
	kinds := map[venue.Kind]int{}
	snaps := 0
	var m venue.Message
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		ev, err := v.Parse(r.Payload)
		if err != nil {
			t.Fatalf("%s line %d: parse: %v", r.File, r.Line, err)
		}
		if err := v.DecodeAt(r.Payload, &m, scales); err != nil {
			t.Fatalf("%s line %d: decode: %v", r.File, r.Line, err)
		}
		if ev.Kind != m.Kind || ev.Snapshot != m.Snapshot || string(ev.Stream) != string(m.Stream) || string(ev.Inst) != string(m.Inst) {
			t.Fatalf("%s line %d: parse %+v, decode %+v", r.File, r.Line, ev, m.Event)
		}
		kinds[m.Kind]++
		if ev.Kind != venue.KindDepth {
			continue
		}
		if m.Snapshot {
			snaps++
		}
		key := string(ev.Key(nil))
		x := vers[key]
		if x == nil {
			x = venue.NewVerifier(v, scales)
			vers[key] = x
		}
		verdict := x.Verify(r.Payload)
		counts[verdict]++
		if verdict != venue.VerifyOK && !m.Snapshot {
			t.Errorf("%s line %d (%s): %v", r.File, r.Line, key, verdict)
		}
	}
	if counts[venue.VerifyOK] != 4269 || snaps != 10 || len(vers) != 10 {
		t.Fatalf("verdicts %v, %d snapshots over %d books; want 4269 ok, 10 snapshots, 10 books", counts, snaps, len(vers))
	}
	if kinds[venue.KindTrade] != 8 || kinds[venue.KindBookTicker] != 18 {
		t.Errorf("messages by kind %v, want 8 trade and 18 ticker messages", kinds)
	}
}

// TestChecksumDocRule builds the string of Kraken's rule by hand from strings as the
// websocket writes them, for a book at a scale other than the wire's.
func TestChecksumDocRule(t *testing.T) {
	asks := [][2]string{{"0.05010", "0.00000500"}, {"0.05020", "0.00000500"}, {"0.05030", "1.00000000"}}
	bids := [][2]string{{"0.05000", "0.00000500"}, {"0.04990", "12.50000000"}}
	var str strings.Builder
	for _, l := range append(append([][2]string{}, asks...), bids...) {
		for _, x := range l {
			str.WriteString(strings.TrimLeft(strings.ReplaceAll(x, ".", ""), "0"))
		}
	}
	want := crc32.ChecksumIEEE([]byte(str.String()))
	sc := venue.Scale{Price: 4, Qty: 8} // pair_decimals 4, the websocket writes 5
	conv := func(ls [][2]string) []venue.Level {
		var out []venue.Level
		for _, l := range ls {
			p := venue.Scanner{B: []byte(strconv.Quote(l[0]))}
			pv, _, ok1 := p.Decimal(sc.Price)
			q := venue.Scanner{B: []byte(strconv.Quote(l[1]))}
			qv, _, ok2 := q.Decimal(sc.Qty)
			if !ok1 || !ok2 {
				t.Fatal(l)
			}
			out = append(out, venue.Level{Price: pv, Qty: qv})
		}
		return out
	}
	got := Venue{}.Checksum(conv(bids), conv(asks), sc, venue.Wire{PriceFrac: 5, QtyFrac: 8, Known: true})
	if got != want {
		t.Fatalf("checksum %d, want %d (%s)", got, want, str.String())
	}
}

// TestDepthKept: a book-10 subscription. An insert inside the range pushes the tenth ask
// out without a delete; the exchange then deletes that level (out of range: no message);
// a delete inside the range brings the next level in, republished ("r"). Keeping the
// subscribed depth, the verifier agrees with checksums computed on the book Kraken
// describes; keeping every level (the same messages named book-1000), the stale level
// stays in the top 10 and the checksum catches it.
func TestDepthKept(t *testing.T) {
	type lv = [2]string
	var asks, bids []lv
	for i := 0; i < 10; i++ {
		asks = append(asks, lv{strconv.Itoa(101+i) + ".0", "1.00000000"})
		bids = append(bids, lv{strconv.Itoa(99-i) + ".0", "1.00000000"})
	}
	enc := func(ls []lv, r string) string {
		var parts []string
		for _, l := range ls {
			parts = append(parts, `["`+l[0]+`","`+l[1]+`","1618678133.000001"`+r+`]`)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	cs := func(asks, bids []lv) string {
		var b strings.Builder
		for _, side := range [][]lv{asks, bids} {
			for _, l := range side[:min(10, len(side))] {
				b.WriteString(strings.TrimLeft(strings.ReplaceAll(l[0], ".", ""), "0"))
				b.WriteString(strings.TrimLeft(strings.ReplaceAll(l[1], ".", ""), "0"))
			}
		}
		return strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(b.String()))), 10)
	}
	msgs := []string{`[7,{"as":` + enc(asks, "") + `,"bs":` + enc(bids, "") + `},"book-10","XBT/USD"]`}
	// Insert ask 100.5: 110 leaves the range.
	asks = append([]lv{{"100.5", "2.00000000"}}, asks[:9]...)
	msgs = append(msgs, `[7,{"a":`+enc(asks[:1], "")+`,"c":"`+cs(asks, bids)+`"},"book-10","XBT/USD"]`)
	// (110 is deleted out of range.) Delete 101: 111 comes in, republished.
	asks = append(append([]lv{asks[0]}, asks[2:]...), lv{"111.0", "3.00000000"})
	msgs = append(msgs, `[7,{"a":[["101.0","0.00000000","1618678135.000001"]]},{"a":`+enc(asks[9:], `,"r"`)+`,"c":"`+cs(asks, bids)+`"},"book-10","XBT/USD"]`)

	for _, c := range []struct {
		channel string
		want    []venue.Verdict
	}{
		{"book-10", []venue.Verdict{venue.VerifyNone, venue.VerifyOK, venue.VerifyOK}},
		{"book-1000", []venue.Verdict{venue.VerifyNone, venue.VerifyOK, venue.VerifyMismatch}},
	} {
		x := venue.NewVerifier(Venue{}, nil)
		for i, msg := range msgs {
			if got := x.Verify([]byte(strings.Replace(msg, "book-10", c.channel, 1))); got != c.want[i] {
				t.Errorf("%s, message %d: %v, want %v", c.channel, i, got, c.want[i])
			}
		}
	}
}

// TestDecodeFields checks the decoder against encoding/json on the capture's trades and
// tickers and the books' levels.
func TestDecodeFields(t *testing.T) {
	recs := kit.Records(t)
	scales, _ := kit.Scales(t, recs)
	var m venue.Message
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		if err := (Venue{}).DecodeAt(r.Payload, &m, scales); err != nil {
			t.Fatalf("%s line %d: %v", r.File, r.Line, err)
		}
		var raw []json.RawMessage
		if json.Unmarshal(r.Payload, &raw) != nil {
			if m.Kind != venue.KindControl {
				t.Fatalf("%s line %d: %v not control", r.File, r.Line, m.Kind)
			}
			continue
		}
		var pair string
		json.Unmarshal(raw[len(raw)-1], &pair)
		sc := scales.Of([]byte(pair))
		if m.Scale != sc || string(m.Symbol) != pair {
			t.Fatalf("line %d: scale %v symbol %s", r.Line, m.Scale, m.Symbol)
		}
		switch m.Kind {
		case venue.KindTrade:
			var ts [][]string
			json.Unmarshal(raw[1], &ts)
			if len(ts) != len(m.Trades) {
				t.Fatalf("line %d: %d trades, want %d", r.Line, len(m.Trades), len(ts))
			}
			for i, tr := range ts {
				g := m.Trades[i]
				if g.Price != dec(t, tr[0], sc.Price) || g.Qty != dec(t, tr[1], sc.Qty) || g.TxNs != dec(t, tr[2], 9) || g.BuyerMaker != (tr[3] == "s") || g.ID != 0 {
					t.Errorf("line %d: trade %+v from %v", r.Line, g, tr)
				}
			}
		case venue.KindBookTicker:
			var tk map[string][]any
			json.Unmarshal(raw[1], &tk)
			if m.AskPrice != dec(t, tk["a"][0].(string), sc.Price) || m.AskQty != dec(t, tk["a"][2].(string), sc.Qty) ||
				m.BidPrice != dec(t, tk["b"][0].(string), sc.Price) || m.BidQty != dec(t, tk["b"][2].(string), sc.Qty) || m.ExchNs != 0 {
				t.Errorf("line %d: ticker %+v from %v", r.Line, m, tk)
			}
		case venue.KindDepth:
			var nb, na int
			var latest int64
			for _, p := range raw[1 : len(raw)-2] {
				var obj map[string]json.RawMessage
				json.Unmarshal(p, &obj)
				for k, v := range obj {
					if k == "c" {
						continue
					}
					var ls [][]string
					json.Unmarshal(v, &ls)
					for _, l := range ls {
						latest = max(latest, dec(t, l[2], 9))
					}
					if k[0] == 'a' {
						na += len(ls)
					} else {
						nb += len(ls)
					}
				}
			}
			if m.Snapshot {
				latest = 0 // a snapshot carries no time of its own
			}
			if len(m.Asks) != na || len(m.Bids) != nb || m.ExchNs != latest || m.Depth != 1000 {
				t.Errorf("line %d: %d/%d levels at %d depth %d, want %d/%d at %d", r.Line, len(m.Bids), len(m.Asks), m.ExchNs, m.Depth, nb, na, latest)
			}
		}
	}
}

func dec(t *testing.T, v string, d uint8) int64 {
	t.Helper()
	s := venue.Scanner{B: []byte(`"` + v + `"`)}
	x, _, ok := s.Decimal(d)
	if !ok {
		t.Fatalf("decimal %v at %d", v, d)
	}
	return x
}
