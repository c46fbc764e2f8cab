package exsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/testenv"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/binance"
)

var captures = testenv.CapturesDir()

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ethRecs []capture.Record

func eth(t testing.TB, n int) []capture.Record {
	t.Helper()
	if ethRecs == nil {
		r, err := capture.ReadAll(captures + "binance-usdm_ethusdt_20240808.jsonl.gz")
		if err != nil {
			t.Fatal(err)
		}
		ethRecs = r
	}
	if n > len(ethRecs) {
		n = len(ethRecs)
	}
	return ethRecs[:n]
}

func start(t *testing.T, opt Options) *Sim {
	t.Helper()
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const ethStreams = "/stream?streams=ethusdt@depth@0ms/ethusdt@trade/ethusdt@bookTicker"

// readAll reads messages until the connection ends.
func readAll(t *testing.T, url string, ready chan<- struct{}) (msgs [][]byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Error(err)
		close(ready)
		return nil, err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 24)
	close(ready)
	for {
		_, m, err := c.Read(ctx)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

func TestReplayAndDrop(t *testing.T) {
	s := start(t, Options{Records: eth(t, 3000), PingInterval: 20 * time.Millisecond})
	ready := make(chan struct{})
	type result struct {
		msgs [][]byte
		err  error
	}
	res := make(chan result)
	go func() { m, err := readAll(t, s.WSURL()+ethStreams, ready); res <- result{m, err} }()
	<-ready
	if !s.WaitConns(1, 5*time.Second) {
		t.Fatal("no connection")
	}
	s.SkipNext("ethusdt@trade", 3)
	s.Play()
	<-s.Done()
	s.Inject([]byte(`{"broken`))
	if !s.Flush(10 * time.Second) {
		t.Fatal("queues did not drain")
	}
	for deadline := time.Now().Add(5 * time.Second); s.Conns()[0].Pongs() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("client never answered a ping")
		}
	}
	s.DropConnections(false)
	r := <-res
	if r.err == nil || websocket.CloseStatus(r.err) != -1 {
		t.Fatalf("want an abnormal end, got %v", r.err)
	}
	c := s.Conns()[0]
	c.Wait()
	sent := c.Sent()
	if len(sent) != len(r.msgs) {
		t.Fatalf("sent %d, received %d", len(sent), len(r.msgs))
	}
	for i, idx := range sent {
		want := []byte(`{"broken`)
		if idx >= 0 {
			want = s.Payload(idx)
		}
		if !bytes.Equal(r.msgs[i], want) {
			t.Fatalf("message %d differs", i)
		}
	}
	if got := len(s.Skipped()); got != 3 || len(sent) != s.Len()-3+1 {
		t.Fatalf("skipped %d, sent %d of %d", got, len(sent), s.Len())
	}
}

func TestSnapshotModesAndWeight(t *testing.T) {
	s := start(t, Options{Records: eth(t, 2000), WeightPerMinute: 100, WeightWindow: time.Hour})
	s.Play()
	<-s.Done()
	get := func() (int, int64, http.Header) {
		resp, err := http.Get(s.RESTURL() + "/fapi/v1/depth?symbol=ethusdt&limit=1000")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		snap, err := binance.New().ParseSnapshot(b)
		if resp.StatusCode == 200 && err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, snap.LastUpdateID, resp.Header
	}
	p := binance.New()
	var depth []venue.Event
	for i := 0; i < s.Len(); i++ {
		if ev, _ := p.Parse(s.Payload(i)); ev.Kind == venue.KindDepth {
			depth = append(depth, ev)
		}
	}
	last := depth[len(depth)-1].ID
	st, id, h := get()
	if st != 200 || id != last || h.Get(binance.UsedWeightHeader) != "20" {
		t.Fatalf("current: %d %d (want %d) weight %q", st, id, last, h.Get(binance.UsedWeightHeader))
	}
	s.SetSnapshot(SnapshotBehind, 5)
	if _, id, _ = get(); id != depth[len(depth)-6].ID {
		t.Fatalf("behind: %d want %d", id, depth[len(depth)-6].ID)
	}
	for i := 0; i < 3; i++ {
		get()
	}
	st, _, h = get() // 6th request of weight 20 breaks a budget of 100
	if st != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("over budget: status %d retry %q", st, h.Get("Retry-After"))
	}
	if logs := s.Snapshots(); len(logs) != 6 || logs[5].Status != 429 {
		t.Fatalf("request log %+v", logs)
	}
}

func TestSnapshotAheadAndBookConsistency(t *testing.T) {
	s := start(t, Options{Records: eth(t, 1000)})
	// Before anything is published the book is the capture's own snapshot: ahead.
	s.SetSnapshot(SnapshotAhead, 3)
	resp, err := http.Get(s.RESTURL() + "/fapi/v1/depth?symbol=ETHUSDT&limit=5")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		LastUpdateID int64       `json:"lastUpdateId"`
		Bids         [][2]string `json:"bids"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if body.LastUpdateID <= 5123107856276 {
		t.Fatalf("ahead snapshot id %d not past the seed", body.LastUpdateID)
	}
	if len(body.Bids) != 5 {
		t.Fatalf("limit 5 gave %d bids", len(body.Bids))
	}
	for _, q := range []string{"symbol=NOPE&limit=5", "symbol=ETHUSDT&limit=7"} {
		resp, err := http.Get(s.RESTURL() + "/fapi/v1/depth?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("%s: status %d", q, resp.StatusCode)
		}
	}
}

func TestTrickleAndBrokenFrames(t *testing.T) {
	s := start(t, Options{Records: eth(t, 50)})
	s.SetTrickle(61, 50*time.Microsecond)
	ready := make(chan struct{})
	res := make(chan error)
	var got [][]byte
	go func() {
		m, err := readAll(t, s.WSURL()+"/public"+ethStreams, ready)
		got = m
		res <- err
	}()
	<-ready
	s.WaitConns(1, 5*time.Second)
	s.Play()
	<-s.Done()
	time.Sleep(100 * time.Millisecond)
	s.InjectFrame([]byte{0xF1, 0x01, 'x'}) // reserved bits: a protocol error for the client
	err := <-res
	if err == nil || !strings.Contains(err.Error(), "rsv") {
		t.Fatalf("want a protocol error, got %v", err)
	}
	if len(got) != s.Len() || s.Conns()[0].Path() != "/public/stream" {
		t.Fatalf("got %d messages via %s", len(got), s.Conns()[0].Path())
	}
}

func FuzzReadClientFrame(f *testing.F) {
	f.Add([]byte{0x89, 0x84, 1, 2, 3, 4, 'p' ^ 1, 'i' ^ 2, 'n' ^ 3, 'g' ^ 4})
	f.Add([]byte{0x81, 0xFE, 0x01, 0x00, 0, 0, 0, 0})
	f.Add([]byte{0x88, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := readClientFrame(bufio.NewReader(bytes.NewReader(b)))
		if err == nil && len(fr.payload) > maxClientFrame {
			t.Fatalf("accepted a %d-byte frame", len(fr.payload))
		}
		if err != nil && !errors.Is(err, ErrBadFrame) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func TestMaxConnAge(t *testing.T) {
	s := start(t, Options{Records: eth(t, 400), Interval: time.Millisecond})
	s.SetMaxConnAge(100 * time.Millisecond)
	ready := make(chan struct{})
	res := make(chan error)
	go func() { _, err := readAll(t, s.WSURL()+ethStreams, ready); res <- err }()
	<-ready
	s.WaitConns(1, 5*time.Second)
	s.Play()
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection outlived its max age")
	}
}
