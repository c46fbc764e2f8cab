package exsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
)

// The bundled captures as the venues' clients see them: what to subscribe to, the
// snapshot's keys, the request weight of a 1000-level snapshot.
var venueWants = map[string]struct {
	symbols, streams []string
	speed            string
	keys             []string
	weight           int
}{
	"usdm":       {[]string{"ETHUSDT"}, []string{"depth", "bookTicker", "trade"}, "0ms", []string{"lastUpdateId", "E", "T", "bids", "asks"}, 20},
	"coinm":      {[]string{"ETHUSD_PERP"}, []string{"depth", "bookTicker", "trade"}, "0ms", []string{"lastUpdateId", "E", "T", "symbol", "pair", "bids", "asks"}, 20},
	"spot":       {[]string{"ETHUSDT"}, []string{"bookTicker", "depth", "trade"}, "100ms", []string{"lastUpdateId", "bids", "asks"}, 50},
	"cryptofeed": {[]string{"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}, []string{"bookTicker", "depth", "kline_1m", "aggTrade"}, "100ms", []string{"lastUpdateId", "E", "T", "bids", "asks"}, 20},
}

// TestBundledCaptures serves every bundled capture (USD-M, COIN-M, spot, the four-symbol
// cryptofeed set) from one server, each under its own prefix, the way the demo does. A
// client that connects to the venue's planned URLs and asks the venue's REST endpoint for
// snapshots gets each recorded snapshot verbatim in the venue's shape, then (the
// simulator plays once every symbol has its snapshot) every capture message, byte for
// byte; after the replay a snapshot restates the book the stream built, in the same shape.
func TestBundledCaptures(t *testing.T) {
	mux := http.NewServeMux()
	sims := map[string]*Sim{}
	recorded := map[string]map[string][]byte{} // set -> symbol -> snapshot body
	for _, set := range binanceSets() {
		recs, err := Load(set.Paths(captures)...)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Options{Venue: set.Venue, Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sims[set.Name] = s
		mux.Handle("/"+set.Name+"/", s.Handler())
		recorded[set.Name] = recordedSnapshots(t, recs, s)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	for _, set := range binanceSets() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checkSet(t, set, sims[set.Name], srv.URL+"/"+set.Name, recorded[set.Name])
		}()
	}
	wg.Wait()
	// A prefix serves only its own venue's REST path.
	resp, err := http.Get(srv.URL + "/spot/fapi/v1/depth?symbol=ETHUSDT&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the spot market answered a futures path: %d", resp.StatusCode)
	}
}

// binanceSets are the bundled sets of Binance's protocol (TestSubscribedCaptures serves
// the others).
func binanceSets() []Set {
	var out []Set
	for _, s := range Bundled() {
		if strings.HasPrefix(s.Venue, "binance") {
			out = append(out, s)
		}
	}
	return out
}

// recordedSnapshots maps each depth symbol to the first snapshot body the capture holds
// for it (a snapshot that names no symbol belongs to the only depth symbol).
func recordedSnapshots(t *testing.T, recs []capture.Record, s *Sim) map[string][]byte {
	out := map[string][]byte{}
	for _, r := range recs {
		if r.Kind != capture.KindSnapshot {
			continue
		}
		sym := r.Symbol
		if sym == "" && len(s.books) == 1 {
			for k := range s.books {
				sym = k
			}
		}
		if _, ok := out[sym]; !ok && sym != "" {
			out[sym] = r.Payload
		}
	}
	if len(out) != len(s.books) {
		t.Fatalf("%s: snapshots for %d of %d symbols", s.v.Name(), len(out), len(s.books))
	}
	return out
}

func checkSet(t *testing.T, set Set, s *Sim, base string, recorded map[string][]byte) {
	want := venueWants[set.Name]
	v := s.Venue()
	sub, err := s.Subscription()
	if err != nil {
		t.Error(err)
		return
	}
	if !slices.Equal(sub.Symbols, want.symbols) || !slices.Equal(sub.Streams, want.streams) || sub.DepthSpeed != want.speed {
		t.Errorf("%s: subscription %+v", set.Name, sub)
	}
	plan, err := v.Plan(strings.Replace(base, "http://", "ws://", 1), sub)
	if err != nil {
		t.Error(err)
		return
	}
	s.PlayAfterSnapshots()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type result struct {
		msgs [][]byte
		err  error
	}
	total := s.Len()
	var mu sync.Mutex
	got := 0
	results := make([]chan result, len(plan))
	for i, pc := range plan {
		// A bare frame reader: a full websocket client costs more per message than the
		// simulator, and this reads a quarter of a million of them.
		nc, br, err := rawDial(pc.URL)
		if err != nil {
			t.Errorf("%s: dial %s: %v", set.Name, pc.URL, err)
			return
		}
		defer nc.Close()
		results[i] = make(chan result, 1)
		go func() {
			var r result
			for {
				mu.Lock()
				done := got >= total
				mu.Unlock()
				if done || ctx.Err() != nil {
					break
				}
				op, m, err := readServerFrame(br)
				if err != nil {
					r.err = err
					break
				}
				if op != opText {
					continue
				}
				r.msgs = append(r.msgs, m)
				mu.Lock()
				got++
				mu.Unlock()
			}
			results[i] <- r
		}()
	}
	if !s.WaitConns(len(plan), 10*time.Second) {
		t.Errorf("%s: connections not seen", set.Name)
		return
	}
	weight := 0
	for _, sym := range sub.Symbols {
		status, body, used := getSnapshot(t, v, base, sym)
		weight += want.weight
		if status != http.StatusOK || !bytes.Equal(body, recorded[sym]) {
			t.Errorf("%s %s: before the replay the snapshot is not the recorded one verbatim (status %d, %d vs %d bytes)", set.Name, sym, status, len(body), len(recorded[sym]))
		}
		if used != weight {
			t.Errorf("%s %s: used weight %d, want %d", set.Name, sym, used, weight)
		}
		if keys := keysOf(t, body); !slices.Equal(keys, want.keys) {
			t.Errorf("%s %s: snapshot keys %v, want %v", set.Name, sym, keys, want.keys)
		}
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Errorf("%s: the replay did not finish (published %d of %d)", set.Name, s.Published(), s.Len())
		return
	}
	var all [][]byte
	for i := range plan {
		r := <-results[i]
		if r.err != nil {
			t.Errorf("%s: read: %v", set.Name, r.err)
			return
		}
		all = append(all, r.msgs...)
	}
	if len(all) != total || s.SentCount() != total {
		t.Errorf("%s: received %d, sent %d, capture has %d messages", set.Name, len(all), s.SentCount(), total)
		return
	}
	if len(plan) == 1 {
		for i := range all {
			if !bytes.Equal(all[i], s.Payload(i)) {
				t.Errorf("%s: message %d differs from the capture", set.Name, i)
				return
			}
		}
	}
	// After the replay: the book the stream built, in the recorded snapshot's shape.
	lastU := map[string]int64{}
	for i := 0; i < s.Len(); i++ {
		ev, err := v.Parse(s.Payload(i))
		if err == nil && ev.Kind == venue.KindDepth {
			sym := v.Symbol(string(ev.Stream))
			lastU[sym] = max(lastU[sym], ev.ID)
		}
	}
	for _, sym := range sub.Symbols {
		status, body, _ := getSnapshot(t, v, base, sym)
		var snap venue.BookSnapshot
		if status != http.StatusOK {
			t.Errorf("%s %s: status %d", set.Name, sym, status)
			continue
		}
		if err := v.DecodeSnapshot(body, &snap); err != nil {
			t.Errorf("%s %s: the venue cannot decode the simulator's snapshot: %v", set.Name, sym, err)
			continue
		}
		if snap.LastUpdateID != lastU[sym] || bytes.Equal(body, recorded[sym]) || len(snap.Bids) == 0 || len(snap.Asks) == 0 {
			t.Errorf("%s %s: after the replay lastUpdateId %d, want %d (%d bids, %d asks)", set.Name, sym, snap.LastUpdateID, lastU[sym], len(snap.Bids), len(snap.Asks))
		}
		if keys := keysOf(t, body); !slices.Equal(keys, want.keys) {
			t.Errorf("%s %s: snapshot keys after the replay %v, want %v", set.Name, sym, keys, want.keys)
		}
	}
}

// rawDial opens a websocket connection by hand: the upgrade request, the 101 reply.
func rawDial(wsURL string) (net.Conn, *bufio.Reader, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, nil, err
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", u.RequestURI(), u.Host)
	br := bufio.NewReaderSize(nc, 1<<20)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, nil, fmt.Errorf("upgrade: status %d", resp.StatusCode)
	}
	return nc, br, nil
}

// readServerFrame reads one unmasked, unfragmented server frame.
func readServerFrame(br *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("unexpected frame header %#x %#x", h[0], h[1])
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(br, p)
	return h[0] & 0x0f, p, err
}

// loadFirst reads the first n records of a set's files (the start is all some tests need).
func loadFirst(t *testing.T, set Set, n int) []capture.Record {
	t.Helper()
	r, err := capture.Open(set.Paths(captures)[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []capture.Record
	for len(out) < n {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec.Payload = bytes.Clone(rec.Payload)
		out = append(out, rec)
	}
	return out
}

func getSnapshot(t *testing.T, v venue.Venue, base, sym string) (int, []byte, int) {
	req, err := v.SnapshotRequest(base, sym, 1000)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	used, _ := strconv.Atoi(resp.Header.Get(v.Limits().UsedWeightHeader))
	return resp.StatusCode, b, used
}

func keysOf(t *testing.T, body []byte) []string {
	keys, _, err := bodyShape(body)
	if err != nil {
		t.Fatalf("snapshot body: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || len(m) != len(keys) {
		t.Fatalf("snapshot body is not one json object with distinct keys: %v", err)
	}
	return keys
}

// TestSubscribedWhenOpen: a connection is subscribed before the client's handshake
// completes, so a client that asks for its snapshot right after connecting (which may
// start the replay) misses nothing.
func TestSubscribedWhenOpen(t *testing.T) {
	s := start(t, Options{Records: eth(t, 3000)})
	s.PlayAfterSnapshots()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		c, _, err := websocket.Dial(ctx, s.WSURL()+ethStreams, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if n := len(s.Conns()); n != i+1 {
			t.Fatalf("the handshake completed with %d connections registered, want %d", n, i+1)
		}
	}
	if status, _, _ := getSnapshot(t, s.Venue(), s.RESTURL(), "ETHUSDT"); status != http.StatusOK {
		t.Fatalf("snapshot status %d", status)
	}
	<-s.Done()
	if !s.Flush(10 * time.Second) {
		t.Fatal("queues did not drain")
	}
	for _, c := range s.Conns() {
		if got := len(c.Sent()); got != s.Len() {
			t.Fatalf("connection %d was sent %d of %d messages", c.ID(), got, s.Len())
		}
	}
}

// TestSnapshotBridgesNextEvent: mid-stream (after a reconnect, say) the current snapshot
// joins the next depth event by the venue's own rule, on futures (U <= L <= u) and spot
// (U <= L+1 <= u) alike.
func TestSnapshotBridgesNextEvent(t *testing.T) {
	for _, set := range Bundled()[:3] {
		s := start(t, Options{Venue: set.Venue, Records: loadFirst(t, set, 20000)})
		v := s.Venue()
		sub, err := s.Subscription()
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []int{s.Len() / 3, s.Len() / 2} {
			s.PlayUntil(at)
			status, body, _ := getSnapshot(t, v, s.RESTURL(), sub.Symbols[0])
			var snap venue.BookSnapshot
			if status != http.StatusOK || v.DecodeSnapshot(body, &snap) != nil {
				t.Fatalf("%s: snapshot status %d", set.Name, status)
			}
			var next venue.Event
			for i := s.Published(); i < s.Len(); i++ {
				if ev, err := v.Parse(s.Payload(i)); err == nil && ev.Kind == venue.KindDepth {
					next = ev
					break
				}
			}
			if got := v.SnapshotBridge(snap.LastUpdateID, next); got != venue.BridgeApplies {
				t.Errorf("%s at message %d: snapshot %d and the next event [%d, %d]: %s", set.Name, at, snap.LastUpdateID, next.First, next.ID, got)
			}
		}
	}
}
