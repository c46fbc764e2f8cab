package feed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/exsim"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func blocks(l *weightLimiter, w int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	return errors.Is(l.wait(ctx, w), context.DeadlineExceeded)
}

func TestWeightLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Date(2024, 8, 8, 12, 0, 10, 0, time.UTC)}
	l := newWeightLimiter(100, time.Minute)
	l.now = clk.now
	for i := 0; i < 5; i++ {
		if blocks(l, 20) {
			t.Fatalf("request %d blocked under budget", i)
		}
	}
	if !blocks(l, 20) {
		t.Fatal("sixth request of weight 20 passed a budget of 100")
	}
	clk.add(time.Minute) // a new window
	if blocks(l, 20) {
		t.Fatal("blocked in a fresh window")
	}
	l.observe(90) // another process on the IP used more
	if !blocks(l, 20) {
		t.Fatal("venue-reported weight ignored")
	}
	clk.add(time.Minute)
	l.pause(2 * time.Minute)
	if !blocks(l, 1) {
		t.Fatal("429 pause ignored")
	}
	clk.add(3 * time.Minute)
	if blocks(l, 1) {
		t.Fatal("still paused after the pause")
	}
	clk.add(time.Minute)
	if blocks(l, 500) {
		t.Fatal("a request heavier than the whole budget must still go out in an empty window")
	}
}

func TestStaleSnapshotIsRequestedAgain(t *testing.T) {
	s := newSim(t, exsim.Options{Records: ethCapture(t, 6000)})
	dir := t.TempDir()
	r := runFeed(t, simConfig(dir, s))
	m := r.f.m
	if !s.WaitConns(1, 10*time.Second) {
		t.Fatal("no connection")
	}
	s.PlayUntil(3000)
	s.Flush(5 * time.Second)
	s.SetSnapshot(exsim.SnapshotBehind, 50) // the REST side lags the stream
	s.DropConnections(true)
	waitFor(t, "reconnect", 10*time.Second, func() bool { return len(s.Conns()) == 2 && !s.Conns()[1].Closed() })
	s.PlayUntil(3500)
	waitFor(t, "stale verdict", 10*time.Second, func() bool { return valueNoT(m.snapshots.WithLabelValues("stale")) >= 1 })
	s.SetSnapshot(exsim.SnapshotCurrent, 0)
	served := len(s.Snapshots())
	waitFor(t, "a fresh snapshot", 10*time.Second, func() bool { return len(s.Snapshots()) > served })
	n := len(s.Snapshots())
	time.Sleep(700 * time.Millisecond) // longer than the stale retry delay
	if len(s.Snapshots()) != n {
		t.Fatalf("still requesting after a good snapshot: %d -> %d", n, len(s.Snapshots()))
	}
	r.shutdown(t)
	_, reqs, snaps := byConnection(t, readJournal(t, dir))
	reasons := map[string]int{}
	for _, q := range reqs {
		reasons[q.Reason]++
	}
	if reasons[journal.SnapshotStale] == 0 || snaps != len(s.Snapshots()) {
		t.Fatalf("requests %v, journaled %d, served %d", reasons, snaps, len(s.Snapshots()))
	}
	if d := byConnectionDisc(t, dir); d.Code != 1001 {
		t.Fatalf("server close frame not recorded: %+v", d)
	}
}

func byConnectionDisc(t *testing.T, dir string) journal.Disconnect {
	conns, _, _ := byConnection(t, readJournal(t, dir))
	return *conns[0].disc
}

func TestRateLimitedSnapshotBacksOff(t *testing.T) {
	s := newSim(t, exsim.Options{Records: ethCapture(t, 2000), WeightPerMinute: 20, WeightWindow: time.Hour})
	r := runFeed(t, simConfig(t.TempDir(), s))
	if !s.WaitConns(1, 10*time.Second) {
		t.Fatal("no connection")
	}
	waitFor(t, "first snapshot", 5*time.Second, func() bool { return len(s.Snapshots()) == 1 })
	s.PlayUntil(500)
	s.DropConnections(false)
	waitFor(t, "429", 10*time.Second, func() bool { return valueNoT(r.f.m.snapshots.WithLabelValues("rate_limited")) == 1 })
	if got := s.Snapshots(); got[len(got)-1].Status != 429 {
		t.Fatalf("last status %d", got[len(got)-1].Status)
	}
	n := len(s.Snapshots())
	time.Sleep(500 * time.Millisecond)
	if len(s.Snapshots()) != n {
		t.Fatal("kept requesting during the Retry-After pause")
	}
}
