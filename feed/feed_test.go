package feed

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/exsim"
)

var (
	ethOnce sync.Once
	ethRecs []capture.Record
	ethErr  error
)

func ethCapture(t testing.TB, n int) []capture.Record {
	t.Helper()
	ethOnce.Do(func() { ethRecs, ethErr = capture.ReadAll(captures + "binance-usdm_ethusdt_20240808.jsonl.gz") })
	if ethErr != nil {
		t.Fatal(ethErr)
	}
	return ethRecs[:min(n, len(ethRecs))]
}

func newSim(t testing.TB, opt exsim.Options) *exsim.Sim {
	t.Helper()
	s, err := exsim.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func simConfig(dir string, s *exsim.Sim) Config {
	c := testConfig(dir)
	c.WSURL, c.RESTURL = s.WSURL(), s.RESTURL()
	c.Symbols = []string{"ETHUSDT"}
	c.PingInterval, c.PongTimeout = 100*time.Millisecond, 2*time.Second
	c.ReconnectMin, c.ReconnectMax = 5*time.Millisecond, 50*time.Millisecond
	c.DialTimeout = 2 * time.Second
	c.RESTTimeout = 2 * time.Second
	c.SnapshotRetryMax = 200 * time.Millisecond
	c.MaxMessageBytes = 64 << 10
	return c
}

type running struct {
	f    *Feed
	reg  *prometheus.Registry
	done chan error
	stop context.CancelFunc
}

func runFeed(t testing.TB, cfg Config) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	f, err := New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{f: f, reg: reg, done: make(chan error, 1), stop: cancel}
	go func() { r.done <- f.Run(ctx) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *running) shutdown(t testing.TB) {
	t.Helper()
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("feed run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("feed did not stop")
	}
}

func (r *running) journaled() int64 {
	var n float64
	for _, c := range r.f.m.messages {
		n += valueNoT(c)
	}
	return int64(n)
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sentCount is the number of capture messages (not injected frames) written to any
// connection.
func sentCount(s *exsim.Sim) int64 {
	var n int64
	for _, c := range s.Conns() {
		for _, i := range c.Sent() {
			if i >= 0 {
				n++
			}
		}
	}
	return n
}

// conn is one connection as the journal tells it.
type conn struct {
	connect  journal.Connect
	streams  map[uint16]journal.StreamInfo
	messages [][]byte // stream messages in journal order
	own      [][]byte // messages on the connection's own channel
	gaps     []journal.Gap
	disc     *journal.Disconnect
}

// byConnection splits the journal by connection (non-carried Connect records, in order).
func byConnection(t testing.TB, recs []rec) (conns []*conn, snapReqs []journal.SnapshotRequest, snapshots int) {
	t.Helper()
	owner := map[uint16]*conn{}
	for _, r := range recs {
		switch r.TypeID {
		case format.JournalConnect:
			var c journal.Connect
			if err := journal.Decode(r.Payload, &c); err != nil {
				t.Fatal(err)
			}
			if c.Carried {
				continue
			}
			cn := &conn{connect: c, streams: map[uint16]journal.StreamInfo{}}
			conns = append(conns, cn)
			owner[c.Channel] = cn
			for _, s := range c.Streams {
				cn.streams[s.Channel] = s
				owner[s.Channel] = cn
			}
		case format.JournalMessage:
			cn := owner[r.Channel]
			if cn == nil {
				t.Fatalf("message on unannounced channel %#x", r.Channel)
			}
			if r.Channel == cn.connect.Channel {
				cn.own = append(cn.own, r.Payload)
			} else {
				if !bytes.Contains(r.Payload, []byte(`"stream":"`+cn.streams[r.Channel].Stream+`"`)) {
					t.Fatalf("message on channel %#x is not from %s", r.Channel, cn.streams[r.Channel].Stream)
				}
				cn.messages = append(cn.messages, r.Payload)
			}
		case format.JournalGap:
			var g journal.Gap
			if err := journal.Decode(r.Payload, &g); err != nil {
				t.Fatal(err)
			}
			if cn := owner[r.Channel]; cn != nil {
				cn.gaps = append(cn.gaps, g)
			}
		case format.JournalDisconnect:
			var d journal.Disconnect
			if err := journal.Decode(r.Payload, &d); err != nil {
				t.Fatal(err)
			}
			owner[r.Channel].disc = &d
		case format.JournalSnapshotRequest:
			var q journal.SnapshotRequest
			if err := journal.Decode(r.Payload, &q); err != nil {
				t.Fatal(err)
			}
			snapReqs = append(snapReqs, q)
		case format.JournalRESTSnapshot:
			snapshots++
			if !bytes.HasPrefix(r.Payload, []byte(`{"lastUpdateId":`)) {
				t.Fatalf("snapshot body %.40s", r.Payload)
			}
		}
	}
	return conns, snapReqs, snapshots
}

func TestCaptureAcrossFaults(t *testing.T) {
	s := newSim(t, exsim.Options{Records: ethCapture(t, 8000), PingInterval: 50 * time.Millisecond})
	dir := t.TempDir()
	r := runFeed(t, simConfig(dir, s))
	m := r.f.m
	if !s.WaitConns(1, 10*time.Second) {
		t.Fatal("feed did not connect")
	}
	waitFor(t, "start snapshot", 5*time.Second, func() bool { return len(s.Snapshots()) >= 1 })
	playUntil := func(n int) {
		s.PlayUntil(n)
		if s.Published() != n {
			t.Fatalf("published %d, want %d", s.Published(), n)
		}
		if !s.Flush(10 * time.Second) {
			t.Fatal("sim queues did not drain")
		}
	}
	playUntil(2000)
	// Malformed, oversized, binary and unknown-stream messages: journaled or rejected,
	// counted, and the connection survives them.
	s.Inject([]byte(`{"stream":"ethusdt@trade","data":{"e":"trade","t":`))
	s.Inject([]byte(`{"stream":"ethusdt@depth@0ms","data":{"e":"depthUpdate","pad":"` + strings.Repeat("x", 100<<10) + `"}}`))
	s.InjectFrame(exsim.BinaryFrame([]byte{0, 1, 2, 3}))
	s.Inject([]byte(`{"stream":"btcusdt@trade","data":{"e":"trade","t":1}}`))
	s.Flush(5 * time.Second)
	// A sequence gap: two depth updates never sent.
	s.SkipNext("ethusdt@depth@0ms", 2)
	playUntil(3800)
	// Slow reads: frames arrive in 300-byte pieces with pauses between them.
	s.SetTrickle(300, 50*time.Microsecond)
	playUntil(4000)
	s.SetTrickle(0, 0)
	// A network failure: the server's TCP stream ends without a close frame.
	s.DropConnections(false)
	waitFor(t, "reconnect", 10*time.Second, func() bool { return len(s.Conns()) == 2 && !s.Conns()[1].Closed() })
	playUntil(6000)
	// A protocol error: the client must fail the connection and come back.
	s.InjectFrame(exsim.ReservedBitsFrame())
	waitFor(t, "second reconnect", 10*time.Second, func() bool { return len(s.Conns()) == 3 && !s.Conns()[2].Closed() })
	s.Play()
	<-s.Done()
	s.Flush(10 * time.Second)
	want := sentCount(s)
	waitFor(t, "every sent message journaled", 20*time.Second, func() bool { return r.journaled() >= want })
	// Requests queued while another for the symbol waits are merged; what matters is
	// that one was served after the last reconnect, and answered with a journaled body.
	last := s.Conns()[2]
	deadline := time.Now().Add(10 * time.Second)
	for {
		sn := s.Snapshots()
		if len(sn) > 0 && sn[len(sn)-1].At.After(last.Opened()) && valueNoT(m.snapshots.WithLabelValues("ok")) == float64(len(sn)) {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range s.Conns() {
				t.Logf("conn %d opened %v", c.ID(), c.Opened())
			}
			for _, x := range sn {
				t.Logf("served %+v", x)
			}
			for _, res := range []string{"ok", "stale", "error", "http_error", "rate_limited"} {
				t.Logf("snapshots %s: %v", res, valueNoT(m.snapshots.WithLabelValues(res)))
			}
			_, reqs, _ := byConnection(t, readJournal(t, dir))
			t.Logf("requests %+v", reqs)
			t.Fatal("no snapshot after the last reconnect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "ping and pong on the last connection", 10*time.Second, func() bool { return last.Pongs() > 0 && last.Pings() > 0 })
	r.shutdown(t)

	conns, reqs, snaps := byConnection(t, readJournal(t, dir))
	simConns := s.Conns()
	if len(conns) != 3 || len(simConns) != 3 {
		t.Fatalf("journal has %d connections, simulator %d", len(conns), len(simConns))
	}
	seen := map[string]bool{}
	for k, sc := range simConns {
		var sent [][]byte
		for _, i := range sc.Sent() {
			if i >= 0 {
				sent = append(sent, s.Payload(i))
			}
		}
		got := conns[k].messages
		if len(got) != len(sent) {
			t.Fatalf("connection %d: journaled %d messages, sent %d", k, len(got), len(sent))
		}
		for i := range sent {
			if !bytes.Equal(got[i], sent[i]) {
				t.Fatalf("connection %d message %d differs", k, i)
			}
			if seen[string(got[i])] {
				t.Fatalf("duplicate message %.80s", got[i])
			}
			seen[string(got[i])] = true
		}
		if conns[k].disc == nil {
			t.Fatalf("connection %d has no disconnect record", k)
		}
	}
	if d := conns[0].disc; d.Kind != journal.DisconnectError || d.Code != 0 {
		t.Fatalf("first disconnect %+v", d)
	}
	if d := conns[2].disc; d.Kind != journal.DisconnectShutdown {
		t.Fatalf("last disconnect %+v", d)
	}
	// Unroutable messages are kept on the connection's own channel.
	if own := conns[0].own; len(own) != 3 || !bytes.HasPrefix(own[0], []byte(`{"stream":"ethusdt@trade","data":{"e":"trade","t":`)) || !bytes.Equal(own[1], []byte{0, 1, 2, 3}) {
		t.Fatalf("own-channel messages %q", conns[0].own)
	}
	gaps := map[string]int{}
	for _, c := range conns {
		for _, g := range c.gaps {
			gaps[g.Reason+"/"+g.Stream]++
		}
	}
	if gaps["oversized/ethusdt@depth@0ms"] != 1 || gaps["sequence/ethusdt@depth@0ms"] != 1 || len(gaps) != 2 {
		sk := s.Skipped()
		t.Logf("skipped %v", sk)
		for _, i := range sk {
			t.Logf("skipped %d: %.200s", i, s.Payload(i))
			t.Logf("next %d: %.200s", i+1, s.Payload(i+1))
		}
		t.Fatalf("gap records %v", gaps)
	}
	reasons := map[string]int{}
	for _, q := range reqs {
		reasons[q.Reason]++
	}
	if reasons[journal.SnapshotStart] != 1 || reasons[journal.SnapshotGap]+reasons[journal.SnapshotReconnect] < 1 || snaps != len(s.Snapshots()) || len(reqs) != snaps {
		t.Logf("served %+v", s.Snapshots())
		t.Fatalf("snapshot requests %v, journaled %d, served %d", reasons, snaps, len(s.Snapshots()))
	}
	for what, got := range map[string]float64{
		"malformed/syntax":         valueNoT(m.malformed.WithLabelValues("syntax")),
		"malformed/binary":         valueNoT(m.malformed.WithLabelValues("binary")),
		"malformed/unknown_stream": valueNoT(m.malformed.WithLabelValues("unknown_stream")),
		"rejected/oversized":       valueNoT(m.rejected.WithLabelValues("oversized")),
		"gaps/sequence":            valueNoT(m.gaps.WithLabelValues("sequence")),
		"reconnects/error":         valueNoT(m.reconnects.WithLabelValues("error")),
	} {
		want := 1.0
		if what == "reconnects/error" {
			want = 2
		}
		if got != want {
			t.Errorf("metric %s = %v, want %v", what, got, want)
		}
	}
}

// TestRolloverOverlap replaces the connection every 600 ms while messages flow: every
// message sent to any connection is journaled exactly once, in order, with no gap.
func TestRolloverOverlap(t *testing.T) {
	s := newSim(t, exsim.Options{Records: ethCapture(t, 12000), Interval: 250 * time.Microsecond})
	dir := t.TempDir()
	cfg := simConfig(dir, s)
	cfg.ConnMaxAge, cfg.RolloverJitter, cfg.OverlapTimeout = 600*time.Millisecond, 0, 2*time.Second
	r := runFeed(t, cfg)
	if !s.WaitConns(1, 10*time.Second) {
		t.Fatal("feed did not connect")
	}
	s.Play()
	<-s.Done()
	s.Flush(10 * time.Second)
	union := map[int]bool{}
	for _, c := range s.Conns() {
		for _, i := range c.Sent() {
			union[i] = true
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for r.journaled() < int64(len(union)) {
		if time.Now().After(deadline) {
			r.shutdown(t)
			index := map[string]int{}
			for i := 0; i < s.Len(); i++ {
				index[string(s.Payload(i))] = i
			}
			got := map[int]bool{}
			for _, rr := range readJournal(t, dir) {
				if rr.TypeID == format.JournalMessage {
					got[index[string(rr.Payload)]] = true
				} else {
					t.Logf("record type %d at %d: %.300s", rr.TypeID, rr.RecvTs, rr.Payload)
				}
			}
			for _, c := range s.Conns() {
				missing := 0
				first := -1
				for _, i := range c.Sent() {
					if !got[i] {
						missing++
						if first < 0 {
							first = i
						}
					}
				}
				t.Logf("conn %d opened %v sent %d missing %d first missing %d", c.ID(), c.Opened().Format("15:04:05.000000"), len(c.Sent()), missing, first)
			}
			t.Fatalf("journaled %d of %d", r.journaled(), len(union))
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.shutdown(t)

	index := map[string]int{}
	for i := 0; i < s.Len(); i++ {
		index[string(s.Payload(i))] = i
	}
	conns, reqs, _ := byConnection(t, readJournal(t, dir))
	got := map[int]bool{}
	lastByStream := map[string]int{}
	rollovers := 0
	for _, c := range conns {
		if len(c.gaps) != 0 {
			t.Fatalf("gap records %+v", c.gaps)
		}
		if c.disc != nil && c.disc.Kind == journal.DisconnectRollover {
			rollovers++
		}
	}
	// Walk messages in journal order across connections.
	for _, rr := range readJournal(t, dir) {
		if rr.TypeID != format.JournalMessage {
			continue
		}
		i, ok := index[string(rr.Payload)]
		if !ok {
			t.Fatalf("journaled message not from the capture: %.80s", rr.Payload)
		}
		if got[i] {
			t.Fatalf("message %d journaled twice", i)
		}
		got[i] = true
		st := s.Stream(i)
		if prev, ok := lastByStream[st]; ok && prev > i {
			t.Fatalf("%s: message %d after %d", st, i, prev)
		}
		lastByStream[st] = i
	}
	for i := range union {
		if !got[i] {
			t.Fatalf("message %d (%s) was sent but not journaled", i, s.Stream(i))
		}
	}
	if len(got) != len(union) {
		t.Fatalf("journaled %d, sent %d", len(got), len(union))
	}
	if rollovers < 2 || len(s.Conns()) < 3 {
		t.Fatalf("%d rollovers over %d connections", rollovers, len(s.Conns()))
	}
	for _, q := range reqs {
		if q.Reason != journal.SnapshotStart {
			t.Fatalf("a rollover asked for a snapshot: %+v", q)
		}
	}
	if valueNoT(r.f.m.overlapDropped) == 0 {
		t.Fatal("no overlap duplicates dropped: the connections never overlapped")
	}
	t.Logf("%d connections, %d rollovers, %d overlap duplicates dropped", len(s.Conns()), rollovers, int(valueNoT(r.f.m.overlapDropped)))
}

// TestMultipleSlots captures four symbols split over two connections (the stream cap set
// to 6): each slot's messages land on its own channels, every sent message is journaled
// once, and every symbol gets its snapshot.
func TestMultipleSlots(t *testing.T) {
	ws, err := capture.ReadAll(captures + "cryptofeed_binance-futures.ws.txt")
	if err != nil {
		t.Fatal(err)
	}
	http, err := capture.ReadAll(captures + "cryptofeed_binance-futures.http.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, exsim.Options{Records: capture.Merge(ws, http)})
	dir := t.TempDir()
	cfg := simConfig(dir, s)
	cfg.Symbols = []string{"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
	cfg.Streams = []string{"depth", "bookTicker", "aggTrade"}
	cfg.DepthSpeed = "100ms"
	cfg.MaxStreamsPerConn = 6
	r := runFeed(t, cfg)
	if len(r.f.Plan()) != 2 {
		t.Fatalf("plan %+v", r.f.Plan())
	}
	if !s.WaitConns(2, 10*time.Second) {
		t.Fatal("feed did not open two connections")
	}
	waitFor(t, "four start snapshots", 10*time.Second, func() bool { return len(s.Snapshots()) == 4 })
	s.Play()
	<-s.Done()
	s.Flush(10 * time.Second)
	want := sentCount(s)
	waitFor(t, "every sent message journaled", 20*time.Second, func() bool { return r.journaled() >= want })
	r.shutdown(t)

	conns, reqs, snaps := byConnection(t, readJournal(t, dir))
	if len(conns) != 2 || snaps != 4 || len(reqs) != 4 {
		t.Fatalf("%d connections, %d snapshots, %d requests", len(conns), snaps, len(reqs))
	}
	slots := map[int]bool{}
	var total int64
	for _, c := range conns {
		slots[c.connect.Slot] = true
		if len(c.streams) != 6 || len(c.gaps) != 0 {
			t.Fatalf("slot %d: %d streams, gaps %+v", c.connect.Slot, len(c.streams), c.gaps)
		}
		total += int64(len(c.messages))
	}
	if len(slots) != 2 || total != want {
		t.Fatalf("slots %v, journaled %d of %d", slots, total, want)
	}
	// Each simulator connection's log matches the journal of the slot with its streams.
	for _, sc := range s.Conns() {
		var jc *conn
		for _, c := range conns {
			for _, st := range c.streams {
				if st.Stream == sc.Streams()[0] {
					jc = c
				}
			}
		}
		var sent [][]byte
		for _, i := range sc.Sent() {
			sent = append(sent, s.Payload(i))
		}
		if jc == nil || len(jc.messages) != len(sent) {
			t.Fatalf("simulator connection %d not matched", sc.ID())
		}
		for i := range sent {
			if !bytes.Equal(sent[i], jc.messages[i]) {
				t.Fatalf("slot %d message %d differs", jc.connect.Slot, i)
			}
		}
	}
}
