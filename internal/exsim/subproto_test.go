package exsim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chronicle/chronicle/venue"
)

// subClient is a client of a request-subscribed market: one websocket, the venue's own
// requests, a checksum verifier per book at the scales the market's REST reference data
// gives.
type subClient struct {
	t      *testing.T
	v      venue.Venue
	sub    venue.Subscriber
	ws     *websocket.Conn
	scales *venue.Scales
	vers   map[string]*venue.Verifier
	plan   []venue.Connection
}

func newSubClient(t *testing.T, s *Sim, base string) *subClient {
	t.Helper()
	v := s.Venue()
	c := &subClient{t: t, v: v, sub: v.(venue.Subscriber), vers: map[string]*venue.Verifier{}, scales: &venue.Scales{}}
	c.scales.Default.Price, c.scales.Default.Qty = v.Decimals()
	rv := v.(venue.Referencer)
	for _, u := range rv.ReferenceRequests(base) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		specs, err := rv.DecodeReference(body, nil)
		if err != nil {
			t.Fatalf("reference %s: %v", u, err)
		}
		for _, sp := range specs {
			c.scales.Set(sp.Symbol, sp.Scale)
		}
	}
	sub, err := s.Subscription()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := v.Plan(strings.Replace(base, "http://", "ws://", 1), sub)
	if err != nil || len(plan) != 1 {
		t.Fatalf("plan %v: %v", plan, err)
	}
	c.plan = plan
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.ws, _, err = websocket.Dial(ctx, plan[0].URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { c.ws.CloseNow() })
	return c
}

func (c *subClient) send(reqs [][]byte, err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, q := range reqs {
		if err := c.ws.Write(context.Background(), websocket.MessageText, q); err != nil {
			c.t.Fatal(err)
		}
	}
}

// read returns the next message and what the venue makes of it.
func (c *subClient) read() ([]byte, venue.Event) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, msg, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	ev, err := c.v.Parse(msg)
	if err != nil {
		c.t.Fatalf("unparsable message %.200s: %v", msg, err)
	}
	return msg, ev
}

// verify runs a depth message through its stream's verifier.
func (c *subClient) verify(msg []byte, ev venue.Event) venue.Verdict {
	key := string(ev.Key(nil))
	x := c.vers[key]
	if x == nil {
		x = venue.NewVerifier(c.v, c.scales)
		c.vers[key] = x
	}
	return x.Verify(msg)
}

// TestSubscribedCaptures serves the OKX and Kraken captures. A client that subscribes as
// the venue's plan says gets an ack per stream, then (the market plays once every stream
// has a subscriber) every data message of the capture byte for byte, book snapshots in
// the capture's own place, every checksum agreeing with the book the client keeps. After
// the replay, a resubscribed book gets a snapshot of the book the replay built, with the
// checksum the venue would send; a keep-alive gets its answer; an unknown stream an error.
func TestSubscribedCaptures(t *testing.T) {
	for _, set := range Bundled() {
		if strings.HasPrefix(set.Venue, "binance") {
			continue
		}
		t.Run(set.Name, func(t *testing.T) {
			recs, err := Load(set.Paths(captures)...)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(Options{Venue: set.Venue, Records: recs})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			srv := httptest.NewServer(s.Handler())
			t.Cleanup(srv.Close)
			c := newSubClient(t, s, srv.URL)
			var want [][]byte
			for i := 0; i < s.Len(); i++ {
				if !s.msgs[i].control {
					want = append(want, s.Payload(i))
				}
			}
			s.PlayAfterSnapshots()
			c.send(c.sub.Subscribe(c.plan[0].Streams))
			acks, checked := 0, 0
			var got [][]byte
			for len(got) < len(want) {
				msg, ev := c.read()
				if ev.Kind == venue.KindControl {
					switch ctl := c.sub.Control(msg); ctl.Kind {
					case venue.ControlSubscribed:
						acks++
					case venue.ControlError:
						t.Fatalf("error reply %s", msg)
					}
					continue
				}
				got = append(got, msg)
				if ev.Kind == venue.KindDepth {
					switch c.verify(msg, ev) {
					case venue.VerifyOK:
						checked++
					case venue.VerifyMismatch, venue.VerifyBad:
						t.Fatalf("message %d: checksum fails: %.200s", len(got), msg)
					}
				}
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("message %d differs from the capture's:\n%.200s\n%.200s", i, got[i], want[i])
				}
			}
			wantChecks := map[string]int{"okx": 290, "kraken": 4269}[set.Name]
			if acks != len(c.plan[0].Streams) || checked != wantChecks {
				t.Fatalf("%d acks for %d streams, %d checksums verified (want %d)", acks, len(c.plan[0].Streams), checked, wantChecks)
			}

			// Resubscribe every book: a snapshot of the book as the replay left it.
			var books []venue.Stream
			for _, st := range c.plan[0].Streams {
				if st.Kind == venue.KindDepth {
					books = append(books, st)
				}
			}
			c.send(c.sub.Unsubscribe(books))
			c.send(c.sub.Subscribe(books))
			snaps := 0
			for snaps < len(books) {
				msg, ev := c.read()
				if ev.Kind != venue.KindDepth {
					continue
				}
				if !ev.Snapshot {
					t.Fatalf("an update after the replay: %.200s", msg)
				}
				key := string(ev.Key(nil))
				before := c.vers[key]
				bb, ba := topOf(before, 1000)
				after := venue.NewVerifier(c.v, c.scales)
				verdict := after.Verify(msg)
				if set.Name == "okx" && verdict != venue.VerifyOK {
					t.Fatalf("%s: the snapshot's checksum fails: %v", key, verdict)
				}
				ab, aa := topOf(after, 1000)
				if !equalLevels(bb, ab) || !equalLevels(ba, aa) {
					t.Fatalf("%s: the snapshot (%d/%d levels) is not the book the stream built (%d/%d)", key, len(ab), len(aa), len(bb), len(ba))
				}
				snaps++
			}

			// The keep-alive, and a stream the market does not have.
			c.send([][]byte{c.sub.KeepAlive().Message}, nil)
			for {
				msg, ev := c.read()
				if ev.Kind == venue.KindControl && c.sub.Control(msg).Kind == venue.ControlPong {
					break
				}
			}
			bogus := c.plan[0].Streams[0]
			bogus.Name = strings.Replace(bogus.Name, bogus.Symbol, "ZZZ-ZZZ", 1)
			if set.Name == "kraken" {
				bogus.Name = strings.Replace(c.plan[0].Streams[0].Name, bogus.Symbol, "ZZZ/ZZZ", 1)
			}
			c.send(c.sub.Subscribe([]venue.Stream{bogus}))
			for {
				msg, ev := c.read()
				if ev.Kind == venue.KindControl && c.sub.Control(msg).Kind == venue.ControlError {
					break
				}
			}
		})
	}
}

// TestCorruptNext: the simulator corrupts one size of one OKX book update; the client's
// checksum fails at exactly that update, it resubscribes, and the snapshot it gets
// restores a book whose checksums hold to the end.
func TestCorruptNext(t *testing.T) {
	set := Bundled()[4]
	recs, err := Load(set.Paths(captures)...)
	if err != nil {
		t.Fatal(err)
	}
	// Paced, so that the resubscription lands while the replay still runs.
	s, err := New(Options{Venue: set.Venue, Records: recs, Interval: 3 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	c := newSubClient(t, s, srv.URL)
	const stream = "books:BTC-USDT"
	s.CorruptNext(stream, 1)
	s.PlayAfterSnapshots()
	c.send(c.sub.Subscribe(c.plan[0].Streams))
	var st venue.Stream
	for _, x := range c.plan[0].Streams {
		if x.Name == stream {
			st = x
		}
	}
	total := 0
	for i := range s.msgs {
		if s.msgs[i].stream == stream && s.msgs[i].update != nil && !s.msgs[i].update.snapshot {
			total++
		}
	}
	updates, mismatches, okAfter, resnaps := 0, 0, 0, 0
	for updates < total {
		msg, ev := c.read()
		if ev.Kind != venue.KindDepth || string(ev.Key(nil)) != stream {
			continue
		}
		if !ev.Snapshot {
			updates++
		} else if mismatches > 0 {
			resnaps++
		}
		switch c.verify(msg, ev) {
		case venue.VerifyMismatch:
			mismatches++
			if updates != 1 {
				t.Fatalf("the mismatch came at update %d, not at the corrupted first", updates)
			}
			c.send(c.sub.Unsubscribe([]venue.Stream{st}))
			c.send(c.sub.Subscribe([]venue.Stream{st}))
		case venue.VerifyOK:
			if resnaps > 0 {
				okAfter++
			}
		}
	}
	// The resubscription's snapshot came after a few more updates went by unchecked.
	if mismatches != 1 || resnaps != 1 || okAfter < total/2 {
		t.Fatalf("%d of %d updates: %d mismatches, %d new snapshots, %d checksums held after it", updates, total, mismatches, resnaps, okAfter)
	}
	t.Logf("%d updates: the corrupted first failed its checksum, %d held after the new snapshot", total, okAfter)
}

func topOf(x *venue.Verifier, n int) (bids, asks []venue.Level) { return x.Top(n) }

func equalLevels(a, b []venue.Level) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
