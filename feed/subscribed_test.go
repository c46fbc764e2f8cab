package feed

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/venue"
)

// subscribedSet loads a bundled OKX or Kraken capture into a simulator.
func subscribedSet(t *testing.T, name string, opt exsim.Options) (*exsim.Sim, exsim.Set) {
	t.Helper()
	for _, set := range exsim.Bundled() {
		if set.Name != name {
			continue
		}
		recs, err := exsim.Load(set.Paths(captures)...)
		if err != nil {
			t.Fatal(err)
		}
		opt.Venue, opt.Records = set.Venue, recs
		return newSim(t, opt), set
	}
	t.Fatalf("no bundled set %s", name)
	return nil, exsim.Set{}
}

func subscribedConfig(t *testing.T, dir string, s *exsim.Sim) Config {
	t.Helper()
	cfg := simConfig(dir, s)
	sub, err := s.Subscription()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Venue = s.Venue().Name()
	cfg.Symbols, cfg.Streams, cfg.BookDepth = sub.Symbols, sub.Streams, sub.BookDepth
	cfg.MaxMessageBytes = 1 << 20
	return cfg
}

// dataMessages returns the journal's messages that the venue parses as stream data, with
// the journal's reference and gap records.
func dataMessages(t *testing.T, v venue.Venue, dir string) (msgs [][]byte, refs int, gaps []journal.Gap) {
	t.Helper()
	for _, r := range readJournal(t, dir) {
		switch r.TypeID {
		case format.JournalMessage:
			if ev, err := v.Parse(r.Payload); err == nil && ev.Kind != venue.KindControl {
				msgs = append(msgs, r.Payload)
			}
		case format.JournalReference:
			refs++
		case format.JournalGap:
			var g journal.Gap
			if err := journal.Decode(r.Payload, &g); err != nil {
				t.Fatal(err)
			}
			gaps = append(gaps, g)
		}
	}
	return msgs, refs, gaps
}

// TestSubscribedCapture captures the OKX and Kraken captures live from the simulator:
// the venue's reference data is journaled before the first message, every stream is
// subscribed by request, and the journal holds every data message the simulator sent,
// byte for byte and in order; the feed's own book agrees with every checksum.
func TestSubscribedCapture(t *testing.T) {
	for _, c := range []struct {
		set         string
		refs, check int
	}{{"okx", 3, 290}, {"kraken", 1, 4269}} {
		t.Run(c.set, func(t *testing.T) {
			s, _ := subscribedSet(t, c.set, exsim.Options{})
			dir := t.TempDir()
			r := runFeed(t, subscribedConfig(t, dir, s))
			s.PlayAfterSnapshots()
			select {
			case <-s.Done():
			case <-time.After(60 * time.Second):
				t.Fatalf("the simulator did not play: %d of %d published", s.Published(), s.Len())
			}
			s.Flush(10 * time.Second)
			want := [][]byte{}
			for _, conn := range s.Conns() {
				for _, i := range conn.Sent() {
					if i >= 0 {
						want = append(want, s.Payload(i))
					}
				}
			}
			waitFor(t, "the feed to journal what was sent", 30*time.Second, func() bool {
				return int(valueNoT(r.f.m.messages[venue.KindDepth])+valueNoT(r.f.m.messages[venue.KindTrade])+
					valueNoT(r.f.m.messages[venue.KindBookTicker])) >= len(want)
			})
			r.shutdown(t)
			got, refs, gaps := dataMessages(t, s.Venue(), dir)
			if len(got) != len(want) {
				t.Fatalf("%d data messages journaled, %d sent", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("message %d differs from the one sent", i)
				}
			}
			if refs != c.refs || len(gaps) != 0 {
				t.Fatalf("%d reference records (want %d), gaps %+v", refs, c.refs, gaps)
			}
			if ok := valueNoT(r.f.m.checksums.WithLabelValues("ok")); int(ok) != c.check {
				t.Fatalf("%v checksums held, want %d", ok, c.check)
			}
			t.Logf("%d data messages, %d reference bodies, %d checksums checked", len(got), refs, c.check)
		})
	}
}

// TestChecksumResubscribe: the simulator corrupts one OKX book update; the feed's book
// fails that update's checksum, a checksum gap follows the update in the journal, the
// feed resubscribes the stream, and the new snapshot is journaled after the gap; every
// later checksum holds.
func TestChecksumResubscribe(t *testing.T) {
	s, _ := subscribedSet(t, "okx", exsim.Options{Interval: 2 * time.Millisecond})
	const stream = "books:BTC-USDT"
	s.CorruptNext(stream, 1)
	dir := t.TempDir()
	r := runFeed(t, subscribedConfig(t, dir, s))
	s.PlayAfterSnapshots()
	select {
	case <-s.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the simulator did not play")
	}
	s.Flush(10 * time.Second)
	// Every message sent is journaled (the new snapshot among them).
	sent := 0
	for _, conn := range s.Conns() {
		sent += len(conn.Sent())
	}
	waitFor(t, "the feed to journal what was sent", 20*time.Second, func() bool {
		data := valueNoT(r.f.m.messages[venue.KindDepth]) + valueNoT(r.f.m.messages[venue.KindTrade]) + valueNoT(r.f.m.messages[venue.KindBookTicker])
		return int(data) >= sent
	})
	r.shutdown(t)
	v := s.Venue()
	var seq []string // what the BTC-USDT books channel holds, in order
	for _, rr := range readJournal(t, dir) {
		switch rr.TypeID {
		case format.JournalMessage:
			ev, err := v.Parse(rr.Payload)
			if err != nil || ev.Kind != venue.KindDepth || string(ev.Key(nil)) != stream {
				continue
			}
			if ev.Snapshot {
				seq = append(seq, "snapshot")
			} else {
				seq = append(seq, "update")
			}
		case format.JournalGap:
			var g journal.Gap
			journal.Decode(rr.Payload, &g)
			if g.Stream == stream {
				seq = append(seq, "gap:"+g.Reason)
			}
		}
	}
	if len(seq) < 4 || seq[0] != "snapshot" || seq[1] != "update" || seq[2] != "gap:checksum" {
		t.Fatalf("the stream's journal starts %v", seq[:min(6, len(seq))])
	}
	snaps := 0
	for _, x := range seq[3:] {
		if x == "snapshot" {
			snaps++
		}
		if x == "gap:checksum" {
			t.Fatalf("a second checksum gap: %v", seq)
		}
	}
	if snaps != 1 || valueNoT(r.f.m.checksums.WithLabelValues("mismatch")) != 1 {
		t.Fatalf("%d snapshots after the gap, %v mismatches", snaps, valueNoT(r.f.m.checksums.WithLabelValues("mismatch")))
	}
}

// TestSubscribedRollover rolls Kraken connections over several times while the capture
// plays: each book moves to the new connection at that connection's own snapshot, so the
// journal of every book stays a stream whose every checksum holds.
func TestSubscribedRollover(t *testing.T) {
	s, _ := subscribedSet(t, "kraken", exsim.Options{Interval: 100 * time.Microsecond})
	dir := t.TempDir()
	cfg := subscribedConfig(t, dir, s)
	cfg.ConnMaxAge, cfg.RolloverJitter, cfg.OverlapTimeout = 300*time.Millisecond, 0, 2*time.Second
	r := runFeed(t, cfg)
	waitFor(t, "the subscriptions", 30*time.Second, func() bool { return len(s.Conns()) == 1 && len(s.Conns()[0].Streams()) == len(r.f.plan[0].Streams) })
	// A third of the capture at a time, each after one more rollover (they happen while
	// the market pauses too: the new connection gets rendered snapshots at once).
	rolled := func() float64 { return valueNoT(r.f.m.reconnects.WithLabelValues("rollover")) }
	for k := 1; k <= 2; k++ {
		s.PlayUntil(k * s.Len() / 3)
		want := float64(k)
		waitFor(t, "a rollover", 30*time.Second, func() bool { return rolled() >= want })
	}
	s.Play()
	select {
	case <-s.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the simulator did not play")
	}
	s.Flush(10 * time.Second)
	v := s.Venue()
	// The books the capture ends with...
	want := map[string]*venue.Verifier{}
	for i := 0; i < s.Len(); i++ {
		if ev, err := v.Parse(s.Payload(i)); err == nil && ev.Kind == venue.KindDepth {
			key := string(ev.Key(nil))
			if want[key] == nil {
				want[key] = venue.NewVerifier(v, r.f.rec.scales)
			}
			want[key].Verify(s.Payload(i))
		}
	}
	// ...are the books the journal ends with, once the feed has journaled what it got.
	var verdicts map[venue.Verdict]int
	var snaps int
	same := func() bool {
		recs, err := readJournalErr(dir)
		if err != nil {
			return false
		}
		vers := map[string]*venue.Verifier{}
		verdicts, snaps = map[venue.Verdict]int{}, 0
		for _, rr := range recs {
			if rr.TypeID != format.JournalMessage {
				continue
			}
			ev, err := v.Parse(rr.Payload)
			if err != nil || ev.Kind != venue.KindDepth {
				continue
			}
			if ev.Snapshot {
				snaps++
			}
			key := string(ev.Key(nil))
			if vers[key] == nil {
				vers[key] = venue.NewVerifier(v, r.f.rec.scales)
			}
			verdicts[vers[key].Verify(rr.Payload)]++
		}
		for key, x := range want {
			if vers[key] == nil {
				return false
			}
			wb, wa := x.Top(1000)
			gb, ga := vers[key].Top(1000)
			if !slices.Equal(wb, gb) || !slices.Equal(wa, ga) {
				return false
			}
		}
		return true
	}
	waitFor(t, "the journal's books to be the capture's", 30*time.Second, same)
	r.shutdown(t)
	rollovers := valueNoT(r.f.m.reconnects.WithLabelValues("rollover"))
	// Every update is journaled once, from one connection or the other, but those that
	// the old connection still held when the new one restated the book (they are in that
	// snapshot): no checksum may fail, and the books must be checked to the end.
	if verdicts[venue.VerifyMismatch] != 0 || verdicts[venue.VerifyBad] != 0 || rollovers < 2 || snaps <= 10 {
		t.Fatalf("verdicts %v, %v rollovers, %d snapshots", verdicts, rollovers, snaps)
	}
	t.Logf("%v rollovers, %d book snapshots journaled, %d checksums held", rollovers, snaps, verdicts[venue.VerifyOK])
}
