package exsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue/binance"
)

// loadSource is the start of the bundled USD-M capture (its snapshot is line 41), short
// enough that a pass of the recording takes well under a second at the tests' speed.
func loadSource(t *testing.T, n int) []capture.Record {
	t.Helper()
	recs, err := Load(filepath.Join(testenv.CapturesDir(), "binance-usdm_ethusdt_20240808.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return recs[:n]
}

type clientBook struct {
	L, last   int64
	synced    bool
	bids      map[float64]string
	asks      map[float64]string
	updates   int
	tickers   int
	lastTrade int64
	pending   map[int64][2]float64 // bookTickers ahead of their depth update, by u
}

// checkTicker compares a bookTicker's best bid and ask with the book after update u.
func (b *clientBook) checkTicker(t *testing.T, sym string, bb, ba float64) {
	t.Helper()
	if bb != best(b.bids, true) || ba != best(b.asks, false) {
		t.Fatalf("%s: bookTicker at %d says %v/%v, the book %v/%v", sym, b.last, bb, ba, best(b.bids, true), best(b.asks, false))
	}
	b.tickers++
}

type depthMsg struct {
	U, u, pu int64
	b, a     [][2]string
}

func loadSnapshot(t *testing.T, base, sym string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(base + "/fapi/v1/depth?symbol=" + sym + "&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func best(m map[float64]string, high bool) float64 {
	var x float64
	first := true
	for p := range m {
		if first || (high && p > x) || (!high && p < x) {
			x, first = p, false
		}
	}
	return x
}

func applyLevels(m map[float64]string, ls [][2]string) {
	for _, l := range ls {
		p, _ := strconv.ParseFloat(l[0], 64)
		if isZero(l[1]) {
			delete(m, p)
		} else {
			m[p] = l[1]
		}
	}
}

// TestLoadChains plays five derived symbols through several passes of the recording and
// keeps each one's book as a client does (snapshot, bridge, pu chain): every update
// chains, every bookTicker whose u is a depth update's agrees with the book (shifted
// prices included), and trade ids only grow.
func TestLoadChains(t *testing.T) {
	const M = 5
	l, err := NewLoad(LoadOptions{Records: loadSource(t, 3000), Symbols: M, Speed: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sub := l.Subscription()
	if len(sub.Symbols) != M || sub.Symbols[3] != "ETH003USDT" || sub.DepthSpeed != "0ms" {
		t.Fatalf("subscription %+v", sub)
	}
	var names []string
	for _, c := range l.copies {
		names = append(names, c.streams...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, l.WSURL()+"/stream?streams="+strings.Join(names, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 24)
	l.Play()
	books := map[string]*clientBook{}
	for _, s := range sub.Symbols {
		code, _, body := loadSnapshot(t, l.RESTURL(), s)
		if code != 200 {
			t.Fatalf("%s: snapshot %d %s", s, code, body)
		}
		var snap struct {
			LastUpdateID int64       `json:"lastUpdateId"`
			Bids         [][2]string `json:"bids"`
			Asks         [][2]string `json:"asks"`
		}
		if err := json.Unmarshal(body, &snap); err != nil {
			t.Fatal(err)
		}
		b := &clientBook{L: snap.LastUpdateID, bids: map[float64]string{}, asks: map[float64]string{}, pending: map[int64][2]float64{}}
		applyLevels(b.bids, snap.Bids)
		applyLevels(b.asks, snap.Asks)
		books[s] = b
	}
	// Read until every book has gone through a loop-closing update and has seen enough,
	// however slowly this machine runs the client.
	enough := func() bool {
		for _, c := range l.copies {
			if c.loop == 0 {
				return false
			}
		}
		for _, b := range books {
			if b.updates < 20 || b.tickers == 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(90 * time.Second)
	for n := 0; ; n++ {
		if n%256 == 0 {
			l.mu.Lock()
			ok := enough()
			l.mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("90 s without every book through a loop and 20 updates and a ticker checked")
			}
		}
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Stream string `json:"stream"`
			Data   struct {
				E   string `json:"e"`
				S   string `json:"s"`
				U   int64  `json:"U"`
				Lu  int64  `json:"u"`
				Pu  int64  `json:"pu"`
				Tid int64  `json:"t"`
				Et  int64  `json:"E"` // exact keys, so that encoding/json does not
				Tt  int64  `json:"T"` // match them to e and t case-insensitively
			} `json:"data"`
		}
		if err := json.Unmarshal(msg, &env); err != nil {
			t.Fatalf("%v: %s", err, msg)
		}
		b := books[env.Data.S]
		if b == nil || !strings.HasPrefix(env.Stream, strings.ToLower(env.Data.S)+"@") {
			t.Fatalf("message of an unknown symbol or stream: %.200s", msg)
		}
		switch env.Data.E {
		case "depthUpdate":
			var lv struct {
				Data struct {
					B [][2]string `json:"b"`
					A [][2]string `json:"a"`
				} `json:"data"`
			}
			json.Unmarshal(msg, &lv)
			d := depthMsg{env.Data.U, env.Data.Lu, env.Data.Pu, lv.Data.B, lv.Data.A}
			if !b.synced {
				if d.u < b.L {
					continue
				}
				if d.U > b.L {
					t.Fatalf("%s: first update after the snapshot %d is %d..%d: no bridge", env.Data.S, b.L, d.U, d.u)
				}
				b.synced = true
			} else if d.pu != b.last {
				t.Fatalf("%s: update %d..%d has pu %d, the last was %d", env.Data.S, d.U, d.u, d.pu, b.last)
			}
			b.last = d.u
			b.updates++
			applyLevels(b.bids, d.b)
			applyLevels(b.asks, d.a)
			if bb, ba := best(b.bids, true), best(b.asks, false); bb >= ba {
				t.Fatalf("%s: crossed book after %d: %v >= %v", env.Data.S, d.u, bb, ba)
			}
			if tk, ok := b.pending[d.u]; ok {
				b.checkTicker(t, env.Data.S, tk[0], tk[1])
			}
			clear(b.pending)
		case "bookTicker":
			var tk struct {
				Data struct {
					B  string `json:"b"`
					A  string `json:"a"`
					BQ string `json:"B"`
					AQ string `json:"A"`
				} `json:"data"`
			}
			json.Unmarshal(msg, &tk)
			bb, _ := strconv.ParseFloat(tk.Data.B, 64)
			ba, _ := strconv.ParseFloat(tk.Data.A, 64)
			switch {
			case b.synced && env.Data.Lu == b.last:
				b.checkTicker(t, env.Data.S, bb, ba)
			case b.synced && env.Data.Lu > b.last:
				b.pending[env.Data.Lu] = [2]float64{bb, ba}
			}
		case "trade":
			if env.Data.Tid <= b.lastTrade {
				t.Fatalf("%s: trade id %d after %d", env.Data.S, env.Data.Tid, b.lastTrade)
			}
			b.lastTrade = env.Data.Tid
		}
	}
	st := l.Stats()
	for s, b := range books {
		t.Logf("%s: %d updates, %d tickers agree with the book", s, b.updates, b.tickers)
	}
	// The price shift: copy k trades k units above copy 0.
	b0, b4 := best(books["ETH000USDT"].bids, true), best(books["ETH004USDT"].bids, true)
	if b0 < 1000 || b4 < 1000 {
		t.Fatalf("best bids %v and %v", b0, b4)
	}
	if st.SnapshotOK != M || st.TooMany != 0 || st.Banned != 0 || st.SymbolsSnapshot != M {
		t.Errorf("stats %+v", st)
	}
}

// TestLoadLimits: over the weight budget a snapshot request gets 429 with Retry-After; one
// more in the same window gets 418 (a ban, Retry-After its length) and so does every
// request during the ban; a websocket asking for more streams than the venue allows is
// refused.
func TestLoadLimits(t *testing.T) {
	l, err := NewLoad(LoadOptions{Records: loadSource(t, 3000), Symbols: 3, Speed: 1, WeightPerMinute: 50, WeightWindow: time.Hour,
		BanFor: 5 * time.Minute, MaxStreamsPerConn: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var codes []int
	var hdr http.Header
	for i := 0; i < 5; i++ {
		code, h, _ := loadSnapshot(t, l.RESTURL(), l.DerivedSymbol(i%3))
		codes = append(codes, code)
		hdr = h
		if code == http.StatusTooManyRequests {
			if ra, _ := strconv.Atoi(h.Get("Retry-After")); ra < 1 {
				t.Errorf("429 without a Retry-After: %v", h)
			}
		}
	}
	if fmt.Sprint(codes) != "[200 200 429 418 418]" {
		t.Fatalf("statuses %v, want two snapshots of weight 20 within 50, then 429, then 418", codes)
	}
	if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); ra < 200 || ra > 300 {
		t.Errorf("418's Retry-After %q, want the ban's 300 s (less the seconds passed)", hdr.Get("Retry-After"))
	}
	if hdr.Get(binance.UsedWeightHeader) != "40" {
		t.Errorf("used weight header %q", hdr.Get(binance.UsedWeightHeader))
	}
	st := l.Stats()
	if st.SnapshotOK != 2 || st.TooMany != 1 || st.Banned != 2 {
		t.Errorf("stats %+v", st)
	}
	resp, err := http.Get(l.RESTURL() + "/stream?streams=" + strings.Repeat("a@trade/", 4) + "b@trade")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || l.Stats().Refused != 1 {
		t.Errorf("5 streams on one connection (limit 4): status %d, stats %+v", resp.StatusCode, l.Stats())
	}
}

// TestLoadTemplates: every message of the USD-M capture, scanned into a template and
// rendered as copy 0 with nothing shifted, is the message byte for byte; copy 7 differs
// only in its symbol and prices.
func TestLoadTemplates(t *testing.T) {
	recs := loadSource(t, 20000)
	n := 0
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		var m srcMsg
		if err := m.scan(r.Payload, "ethusdt", "ETHUSDT", r.RecvNs/1e6); err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
		l := &LoadSim{}
		got := l.render(&copyState{sym: "ETHUSDT", lower: "ethusdt"}, &m, r.RecvNs/1e6, nil)
		if string(got) != string(r.Payload) {
			t.Fatalf("line %d: rendered\n%s\nwant\n%s", r.Line, got, r.Payload)
		}
		n++
	}
	if n < 10000 {
		t.Fatalf("%d messages", n)
	}
}

// FuzzLoadScan: the template scanner takes any bytes without panicking, and what it
// accepts renders back to the same bytes when nothing is shifted (numbers it rewrites are
// compared by value: a leading zero or a plus sign is not kept).
func FuzzLoadScan(f *testing.F) {
	recs, err := Load(filepath.Join(testenv.CapturesDir(), "binance-usdm_ethusdt_20240808.jsonl.gz"))
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range recs[:200] {
		f.Add(r.Payload)
	}
	f.Add([]byte(`{"stream":"ethusdt@trade","data":{"p":"1.","t":-3,"b":[["x"]]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m srcMsg
		if m.scan(b, "ethusdt", "ETHUSDT", 0) != nil {
			return
		}
		l := &LoadSim{}
		got := l.render(&copyState{sym: "ETHUSDT", lower: "ethusdt"}, &m, 0, nil)
		var m2 srcMsg
		if err := m2.scan(got, "ethusdt", "ETHUSDT", 0); err != nil {
			t.Fatalf("rendered %q does not scan: %v", got, err)
		}
		if got2 := l.render(&copyState{sym: "ETHUSDT", lower: "ethusdt"}, &m2, 0, nil); string(got2) != string(got) {
			t.Fatalf("not stable: %q then %q", got, got2)
		}
	})
}
