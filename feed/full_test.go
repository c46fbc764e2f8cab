package feed

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// strays lists temporary and pre-created files left in a journal directory.
func strays(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, nextPrefix) || strings.Contains(n, ".tmp-") {
			out = append(out, n)
		}
	}
	return out
}

// smallChunkJournal opens a binance-perp journal in dir/feed that grows its segments in
// 64 KiB chunks, so that a small device fills between appends, with its own metrics.
func smallChunkJournal(t *testing.T, dir string) (*Journal, *Metrics) {
	t.Helper()
	m := newMetrics(prometheus.NewRegistry(), "binance-perp")
	o := jopt(filepath.Join(dir, "feed"))
	o.ChunkSize = 64 << 10
	j, err := OpenJournal(o, t0, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return j, m
}

// TestDeviceFull fills a real, small tmpfs: appends fail with ENOSPC, are counted, no
// record is torn, and once space is freed a gap record says what was lost.
func TestDeviceFull(t *testing.T) {
	dir := testenv.Tmpfs(t, "2m")
	filler := filepath.Join(dir, "filler")
	os.WriteFile(filler, make([]byte, 1<<20), 0o644)
	j, m := smallChunkJournal(t, dir)
	payload := make([]byte, 4000)
	var firstErr error
	ok := 0
	for i := 0; i < 1000 && firstErr == nil; i++ {
		if err := j.Append(format.JournalMessage, 1, t0+int64(i), payload); err != nil {
			firstErr = err
		} else {
			ok++
		}
	}
	if !errors.Is(firstErr, syscall.ENOSPC) || !strings.Contains(firstErr.Error(), ".q") {
		t.Fatalf("want ENOSPC naming the segment, got %v", firstErr)
	}
	for i := 0; i < 5; i++ {
		j.Append(format.JournalMessage, 1, t0+int64(2000+i), payload)
	}
	if got := value(t, m.appendErrors.WithLabelValues("device_full")); got != 6 {
		t.Fatalf("device_full errors %v, want 6", got)
	}
	os.Remove(filler)
	if err := j.Append(format.JournalMessage, 1, t0+3000, []byte("back")); err != nil {
		t.Fatal(err)
	}
	j.Close()
	recs := readJournal(t, j.opt.Dir)
	var lost int64
	for _, r := range recs[ok:] {
		var g journal.Gap
		if r.TypeID == format.JournalGap {
			if journal.Decode(r.Payload, &g) != nil || g.Reason != journal.GapWriteFailed {
				t.Fatalf("gap record %s", r.Payload)
			}
			lost += g.Lost
		} else if string(r.Payload) != "back" {
			t.Fatalf("record type %d %d bytes after the failures", r.TypeID, len(r.Payload))
		}
	}
	if lost != 6 || recs[ok].TypeID != format.JournalGap || string(recs[len(recs)-1].Payload) != "back" {
		t.Fatalf("lost %d, records %d (ok %d)", lost, len(recs), ok)
	}
}

// TestDeviceFullAtRoll: the device fills up just before a period ends, so the roll cannot
// create the next segment. Every append fails (counted), no file is left behind (no
// pre-created .next-*, no half-created segment), and the first append after space returns
// rolls at once (not at the next period), writing the gap record first.
func TestDeviceFullAtRoll(t *testing.T) {
	dir := testenv.Tmpfs(t, "2m")
	j, m := smallChunkJournal(t, dir)
	defer j.Close()
	writable := 0
	j.onWritable = func(int64) { writable++ }
	j.createRetry = 0 // try to create the next segment on every append
	end := t0 + int64(time.Hour)
	for i := 0; i < 10; i++ {
		if err := j.Append(format.JournalMessage, 1, end-int64(time.Minute)+int64(i), []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	// Pre-creating the next segment fails on the full device, and leaves nothing. Room
	// for a segment's header but not for its first appends: the case that used to leave a
	// header-only segment under its final name, which every later roll then ran into.
	filler := testenv.FillDevice(t, dir, 32<<10)
	if err := j.Precreate(end-int64(10*time.Second), 30*time.Second); err == nil {
		t.Fatal("pre-created a segment on a full device")
	}
	if s := strays(t, j.opt.Dir); len(s) > 0 {
		t.Fatalf("left behind: %v", s)
	}
	failed := 0
	for i := 0; i < 20; i++ { // past the period end: each append tries the roll
		err := j.Append(format.JournalMessage, 1, end+int64(i)*int64(time.Millisecond), []byte("lost"))
		if err == nil {
			t.Fatal("append succeeded on a full device")
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append: %v, want ENOSPC", err)
		}
		failed++
	}
	if s := strays(t, j.opt.Dir); len(s) > 0 {
		t.Fatalf("left behind: %v", s)
	}
	if segs, _ := journal.List(j.opt.Dir); len(segs) != 1 {
		t.Fatalf("segments while full: %v", segs)
	}
	if got := value(t, m.appendErrors.WithLabelValues("device_full")); got != float64(failed) {
		t.Fatalf("device_full errors %v, want %d", got, failed)
	}
	os.Remove(filler)
	back := end + int64(time.Second)
	if err := j.Append(format.JournalMessage, 1, back, []byte("back")); err != nil {
		t.Fatalf("first append after space returned: %v", err)
	}
	if writable != 1 {
		t.Fatalf("onWritable ran %d times, want 1", writable)
	}
	segs, _ := journal.List(j.opt.Dir)
	if len(segs) != 2 || segs[1].Start.UnixNano() != end {
		t.Fatalf("segments after space returned: %v", segs)
	}
	j.Close()
	recs := readJournal(t, j.opt.Dir)
	var tail []rec
	for _, r := range recs {
		if r.seg == segs[1].Name {
			tail = append(tail, r)
		}
	}
	var g journal.Gap
	if len(tail) != 2 || tail[0].TypeID != format.JournalGap || journal.Decode(tail[0].Payload, &g) != nil ||
		g.Reason != journal.GapWriteFailed || g.Lost != int64(failed) || g.FromNs != end || string(tail[1].Payload) != "back" {
		t.Fatalf("new segment holds %d records, first %q: want the gap (%d lost from %d) then the record", len(tail), tail[0].Payload, failed, end)
	}
	if s := strays(t, j.opt.Dir); len(s) > 0 {
		t.Fatalf("left behind: %v", s)
	}
}

// TestClockStepsNeverOverlapSegments: the wall clock steps back an hour right after a roll,
// then forward, then the process restarts with the clock stepped back again. Record times
// never decrease through the journal, every segment starts at or after the one before it,
// and a restart never starts a segment dated before the newest one. (The times are a few
// hours before the real clock, which dates the seal of the last segment.)
func TestClockStepsNeverOverlapSegments(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now().Add(-5 * time.Hour).Truncate(time.Hour).UnixNano()
	var wall int64
	c := &wallClock{wall: func() int64 { return wall }}
	j, err := OpenJournal(jopt(dir), t0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []int64{
		int64(59 * time.Minute), int64(61 * time.Minute), // roll at +1h
		int64(2 * time.Minute), int64(3 * time.Minute), // NTP steps back an hour
		int64(62 * time.Minute), int64(63 * time.Minute), // caught up
		int64(3*time.Hour + time.Minute), // steps forward two hours
	}
	for _, d := range steps {
		wall = t0 + d
		now := c.Now()
		if err := j.RollIfDue(now); err != nil {
			t.Fatal(err)
		}
		if err := j.Append(format.JournalMessage, 1, now, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	// Restart with the clock an hour behind the newest segment.
	wall = t0 + int64(2*time.Hour)
	j, err = OpenJournal(jopt(dir), c.wall(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2 := &wallClock{wall: c.wall}
	c2.Floor(j.WallFloor())
	now := c2.Now()
	if err := j.Append(format.JournalMessage, 1, now, []byte("after restart")); err != nil {
		t.Fatal(err)
	}
	j.Close()
	segs, _ := journal.List(dir)
	for i := 1; i < len(segs); i++ {
		if segs[i].Start.Before(segs[i-1].Start) {
			t.Fatalf("segment %s starts before %s", segs[i].Name, segs[i-1].Name)
		}
	}
	var last int64
	var lastSeg string
	starts := map[string]int64{}
	for _, s := range segs {
		starts[s.Name] = s.Start.UnixNano()
	}
	for _, r := range readJournal(t, dir) {
		if r.RecvTs < last {
			t.Fatalf("record at %d in %s after one at %d in %s", r.RecvTs, r.seg, last, lastSeg)
		}
		if r.RecvTs < starts[r.seg] {
			t.Fatalf("record at %d in %s, which starts at %d", r.RecvTs, r.seg, starts[r.seg])
		}
		last, lastSeg = r.RecvTs, r.seg
	}
	if n := len(segs); n != 5 || segs[2].Start.UnixNano() != t0+int64(3*time.Hour) {
		t.Fatalf("segments %v", segs)
	}
}

// TestDeviceFullKeepsCapturing runs the feed against the exchange simulator with its
// journal on a small tmpfs, fills the device for longer than a segment period (so a roll
// falls while it is full), then frees it. The connection stays up throughout (no
// reconnect), every failed append is counted and journaled as one write_failed gap once
// space returns, a new snapshot is asked for every depth stream (reason write_failed) and
// journaled, capture goes on, and no pre-created or temporary file is left.
func TestDeviceFullKeepsCapturing(t *testing.T) {
	dir := testenv.Tmpfs(t, "8m")
	s := newSim(t, exsim.Options{Records: ethCapture(t, 40000), Interval: 100 * time.Microsecond})
	cfg := simConfig(filepath.Join(dir, "journal"), s)
	cfg.RollPeriod = time.Second
	cfg.PrecreateLead = 500 * time.Millisecond
	cfg.ChunkSize = 64 << 10
	cfg.MaxSegmentSize = 64 << 20
	r := runFeed(t, cfg)
	if !s.WaitConns(1, 10*time.Second) {
		t.Fatal("feed did not connect")
	}
	s.Play()
	waitFor(t, "2000 messages journaled", 20*time.Second, func() bool { return r.journaled() >= 2000 })
	full := func() float64 { return valueNoT(r.f.m.appendErrors.WithLabelValues("device_full")) }
	filler := testenv.FillDevice(t, dir, 0)
	waitFor(t, "appends failing", 10*time.Second, func() bool { return full() > 0 })
	time.Sleep(2500 * time.Millisecond) // more than two periods: at least one roll while full
	before := len(s.Snapshots())
	os.Remove(filler)
	waitFor(t, "a snapshot asked for after space returned", 10*time.Second, func() bool { return len(s.Snapshots()) > before })
	n := r.journaled()
	waitFor(t, "capture going on", 10*time.Second, func() bool { return r.journaled() > n+500 })
	r.shutdown(t)

	if got := len(s.Conns()); got != 1 {
		t.Fatalf("%d connections: the feed reconnected", got)
	}
	for _, reason := range []string{"error", "dial_error"} {
		if v := valueNoT(r.f.m.reconnects.WithLabelValues(reason)); v != 0 {
			t.Fatalf("reconnects{%s} = %v", reason, v)
		}
	}
	if st := strays(t, cfg.JournalDir); len(st) > 0 {
		t.Fatalf("left behind: %v", st)
	}
	recs := readJournal(t, cfg.JournalDir) // every record whole
	var lost int64
	var gap *journal.Gap
	gapAt := -1
	reqAfter, snapAfter := 0, 0
	for i, rc := range recs {
		switch rc.TypeID {
		case format.JournalGap:
			var g journal.Gap
			if journal.Decode(rc.Payload, &g) == nil && g.Reason == journal.GapWriteFailed {
				lost += g.Lost
				gap, gapAt = &g, i
			}
		case format.JournalSnapshotRequest:
			var q journal.SnapshotRequest
			if gapAt >= 0 && journal.Decode(rc.Payload, &q) == nil && q.Reason == journal.SnapshotWriteFailed {
				reqAfter++
			}
		case format.JournalRESTSnapshot:
			if reqAfter > 0 {
				snapAfter++
			}
		}
	}
	if gap == nil || lost != int64(full()) {
		t.Fatalf("write_failed gaps count %d lost records, append errors %v", lost, full())
	}
	if period := int64(time.Second); gap.ToNs/period == gap.FromNs/period {
		t.Fatalf("the device was full from %d to %d, within one period: no roll was tried while full", gap.FromNs, gap.ToNs)
	}
	if reqAfter == 0 || snapAfter == 0 {
		t.Fatalf("after the gap: %d write_failed snapshot requests, %d snapshots journaled", reqAfter, snapAfter)
	}
}
