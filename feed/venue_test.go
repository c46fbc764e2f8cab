package feed

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// captureVenue runs a feed against a load market of m symbols until every symbol has been
// served a snapshot, and returns the market's counters.
func captureVenue(t *testing.T, m int, simWeight int, window time.Duration, feedWeight int) (exsim.LoadStats, *Feed) {
	t.Helper()
	recs, err := exsim.Load(filepath.Join(captures, "binance-usdm_ethusdt_20240808.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	// A slow pace: the test is about connections and snapshots, not throughput.
	l, err := exsim.NewLoad(exsim.LoadOptions{Records: recs, Symbols: m, Speed: 0.01, WeightPerMinute: simWeight, WeightWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Play()
	sub := l.Subscription()
	cfg := testConfig(t.TempDir())
	cfg.Symbols, cfg.Streams, cfg.DepthSpeed = sub.Symbols, sub.Streams, sub.DepthSpeed
	cfg.WSURL, cfg.RESTURL = l.WSURL(), l.RESTURL()
	cfg.RESTWeightWindow, cfg.RESTWeightPerMin = window, feedWeight
	f, err := New(cfg, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	testenv.WaitFor(t, "a snapshot of every symbol", 3*time.Minute, func() bool { return l.Stats().SymbolsSnapshot == m })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return l.Stats(), f
}

// TestWholeVenueSnapshots: 300 symbols start at once (the whole of USD-M). The feed shards
// their 900 streams over connections under the venue's 200-stream limit (the simulator
// refuses more) and paces the 300 snapshots inside the weight budget: the simulator never
// answers 429 or 418, and every symbol gets its snapshot. The budget's window is two
// seconds here instead of Binance's minute, so the test takes seconds, not five minutes.
func TestWholeVenueSnapshots(t *testing.T) {
	const m = 300
	st, f := captureVenue(t, m, 2400, 2*time.Second, 0)
	if st.Banned != 0 || st.TooMany != 0 || st.Refused != 0 || st.SnapshotOK != m || st.BadRequest != 0 {
		t.Errorf("counters %+v: want %d snapshots, no 429, no 418, no refused connection", st, m)
	}
	streams := 0
	for _, c := range f.Plan() {
		if len(c.Streams) > 200 {
			t.Errorf("a connection of %d streams", len(c.Streams))
		}
		streams += len(c.Streams)
	}
	if streams != 3*m || len(f.Plan()) != 5 || st.Connections != 5 {
		t.Errorf("%d streams over %d planned connections, %d made; want 900 over 5", streams, len(f.Plan()), st.Connections)
	}
}

// TestSnapshotsBackOff: a feed configured with more weight than the venue grants hits 429,
// waits the Retry-After it was given and is never banned (418); every symbol still gets
// its snapshot.
func TestSnapshotsBackOff(t *testing.T) {
	const m = 40
	st, _ := captureVenue(t, m, 200, 2*time.Second, 4800)
	if st.Banned != 0 || st.TooMany == 0 || st.SnapshotOK != m {
		t.Errorf("counters %+v: want 429s, no 418, %d snapshots", st, m)
	}
}
