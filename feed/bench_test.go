package feed

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/latency"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/binance"
)

// shmDir is a temporary directory on /dev/shm, where the journal lives in production.
func shmDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "chronicle-feed-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func capturePayloads(t testing.TB) [][]byte {
	var out [][]byte
	for _, r := range ethCapture(t, 1<<30) {
		if r.Kind == capture.KindMessage {
			out = append(out, r.Payload)
		}
	}
	return out
}

// testRecorder builds a recorder for ETHUSDT with one attached (socketless) connection.
func testRecorder(t testing.TB, dir string) (*Recorder, *wsConn, *Journal) {
	t.Helper()
	v := binance.New()
	plan, err := v.Plan("wss://x", venue.Subscription{Symbols: []string{"ETHUSDT"}, Streams: []string{"depth", "trade", "bookTicker"}, DepthSpeed: "0ms"})
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(nil, v.Name())
	j, err := OpenJournal(JournalOptions{Dir: dir, Venue: v.Name(), Period: time.Hour, ChunkSize: 64 << 20, MaxSize: 8 << 30}, time.Now().UnixNano(), nil, m)
	if err != nil {
		t.Fatal(err)
	}
	sl := newSlot(0, plan[0])
	rec := newRecorder(v, j, m, discard(), 1, []*slotState{sl})
	c, err := newWSConn(sl, 0, plan[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	rec.attach(c, nil, time.Now().UnixNano())
	return rec, c, j
}

// TestAppendPathNoAlloc: parsing, routing, sequencing and journaling a message allocates
// nothing.
func TestAppendPathNoAlloc(t *testing.T) {
	rec, c, j := testRecorder(t, t.TempDir())
	defer j.Close()
	msgs := capturePayloads(t)[:2000]
	i := 0
	allocs := testing.AllocsPerRun(5000, func() {
		rec.onMessage(c, time.Now().UnixNano(), msgs[i%len(msgs)], false)
		i++
	})
	if allocs != 0 {
		t.Fatalf("append path allocates %.2f times per message", allocs)
	}
}

// sizedHist keeps all samples and, apart, those of small messages (bookTicker and trade
// messages, ~175 B, 91% of the capture): large depth updates are mostly memmove.
type sizedHist struct{ all, small latency.Histogram }

func (h *sizedHist) record(ns int64, size int) {
	h.all.Record(ns)
	if size <= 512 {
		h.small.Record(ns)
	}
}

func (h *sizedHist) report(b *testing.B) {
	reportHist(b, &h.all, "")
	b.ReportMetric(float64(h.small.Quantile(.99)), "small-p99-ns")
	b.ReportMetric(float64(h.small.Quantile(.999)), "small-p99.9-ns")
}

func reportHist(b *testing.B, h *latency.Histogram, prefix string) {
	b.ReportMetric(float64(h.Quantile(.5)), prefix+"p50-ns")
	b.ReportMetric(float64(h.Quantile(.99)), prefix+"p99-ns")
	b.ReportMetric(float64(h.Quantile(.999)), prefix+"p99.9-ns")
	b.ReportMetric(float64(h.Max()), prefix+"max-ns")
}

// BenchmarkAppend measures the latency of appending real capture messages to a journal on
// /dev/shm, one time.Now pair around each append, beside a baseline measured the same way:
// copying the same bytes into a shared mapping whose pages were write-touched ahead and
// publishing the length with one atomic store (the floor for any mmap journal).
// "timer-only" is the cost of the measurement itself.
//
//	go test -run '^$' -bench BenchmarkAppend -benchtime 200000x ./feed/
//
// measureAppends times append(now, msg) over the capture messages in turn and reports the
// latency histogram, overall and for small messages.
func measureAppends(b *testing.B, msgs [][]byte, appendMsg func(now int64, p []byte)) {
	var h sizedHist
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := msgs[i%len(msgs)]
		t0 := time.Now()
		appendMsg(t0.UnixNano(), p)
		h.record(int64(time.Since(t0)), len(p))
	}
	b.StopTimer()
	h.report(b)
}

func BenchmarkAppend(b *testing.B) {
	msgs := capturePayloads(b)
	b.Run("recorder", func(b *testing.B) {
		// The whole path a websocket message takes: parse, route, sequence check, lock,
		// append, metrics.
		rec, c, j := testRecorder(b, shmDir(b))
		defer j.Close()
		measureAppends(b, msgs, func(now int64, p []byte) { rec.onMessage(c, now, p, false) })
	})
	b.Run("journal", func(b *testing.B) {
		_, _, j := testRecorder(b, shmDir(b))
		defer j.Close()
		measureAppends(b, msgs, func(now int64, p []byte) { j.Append(format.JournalMessage, 1, now, p) })
	})
	b.Run("format", func(b *testing.B) {
		dir := shmDir(b)
		a, err := format.Create(filepath.Join(dir, "a.q"), format.NewJournalHeader("binance-perp", "bench"), format.Options{ChunkSize: 64 << 20, MaxSize: 8 << 30})
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		measureAppends(b, msgs, func(now int64, p []byte) { a.AppendJournal(format.JournalMessage, 1, now, p) })
	})
	b.Run("baseline-memcpy-mmap", func(b *testing.B) {
		dir := shmDir(b)
		const size = 4 << 30
		f, err := os.Create(filepath.Join(dir, "base"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		f.Truncate(size)
		mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Munmap(mem)
		committed := (*uint64)(unsafe.Pointer(&mem[0]))
		pos := 64
		prefaulted := 64
		var h sizedHist
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p := msgs[i%len(msgs)]
			n := (16 + len(p) + 7) &^ 7
			if pos+n > prefaulted {
				// pre-fault ahead, off the clock, as the appender's grower does
				b.StopTimer()
				if pos+n+(64<<20) > size {
					pos = 64
				}
				end := min(pos+(64<<20), size)
				// Write-touch each page: on this kernel MADV_POPULATE_WRITE on tmpfs still
				// leaves a ~6 us first-write cost per page (measured), a touch does not.
				for off := (pos + 4095) &^ 4095; off < end; off += 4096 {
					mem[off] = 0
				}
				prefaulted = end
				b.StartTimer()
			}
			t0 := time.Now()
			binary.LittleEndian.PutUint32(mem[pos:], uint32(len(p)))
			binary.LittleEndian.PutUint16(mem[pos+4:], 1)
			binary.LittleEndian.PutUint16(mem[pos+6:], 1)
			binary.LittleEndian.PutUint64(mem[pos+8:], uint64(t0.UnixNano()))
			copy(mem[pos+16:], p)
			pos += n
			atomic.StoreUint64(committed, uint64(pos))
			h.record(int64(time.Since(t0)), len(p))
		}
		b.StopTimer()
		h.report(b)
	})
	b.Run("timer-only", func(b *testing.B) {
		var h latency.Histogram
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			h.Record(int64(time.Since(t0)))
		}
		reportHist(b, &h, "")
	})
}

// BenchmarkReceiveToCommit measures, per message, the time from the simulator finishing
// its socket write to the feed's record being committed, over loopback with one message
// every 100 µs; beside it the same socket path into a bare websocket reader that journals
// nothing (the network and websocket floor).
//
//	go test -run '^$' -bench BenchmarkReceiveToCommit ./feed/
func BenchmarkReceiveToCommit(b *testing.B) {
	all := ethCapture(b, 1<<30)
	// b.N is the number of messages; ns/op is then the pacing interval.
	records := func(b *testing.B) []capture.Record {
		n := min(max(b.N, 100), len(all)-1)
		return all[:n+1] // +1: the REST snapshot line is not a stream message
	}
	const every = 100 * time.Microsecond
	b.Run("feed", func(b *testing.B) {
		recs := records(b)
		s := newSim(b, exsim.Options{Records: recs, Interval: every})
		cfg := simConfig(shmDir(b), s)
		cfg.ChunkSize = 64 << 20
		commits := make([]int64, 0, len(recs))
		reg := newMetricsRegistry()
		f, err := New(cfg, nil, reg)
		if err != nil {
			b.Fatal(err)
		}
		f.afterCommit = func(_, commitNs int64) { commits = append(commits, commitNs) }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		if !s.WaitConns(1, 10*time.Second) {
			b.Fatal("no connection")
		}
		time.Sleep(50 * time.Millisecond) // let the start snapshot pass
		b.ResetTimer()
		s.Play()
		<-s.Done()
		s.Flush(10 * time.Second)
		sent := s.Conns()[0].SentAt()
		waitFor(b, "commits", 10*time.Second, func() bool { return f.journaledCount() >= int64(len(sent)) })
		b.StopTimer()
		cancel()
		<-done
		var h latency.Histogram
		for k := range sent {
			h.Record(commits[k] - sent[k])
		}
		reportHist(b, &h, "")
		b.ReportMetric(float64(len(sent)), "msgs")
	})
	b.Run("baseline-ws-read", func(b *testing.B) {
		recs := records(b)
		s := newSim(b, exsim.Options{Records: recs, Interval: every})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, _, err := websocket.Dial(ctx, s.WSURL()+"/stream?streams=ethusdt@depth@0ms/ethusdt@trade/ethusdt@bookTicker", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 24)
		s.WaitConns(1, 10*time.Second)
		reads := make([]int64, 0, len(recs))
		buf := make([]byte, 1<<20)
		b.ResetTimer()
		s.Play()
		total := s.Len()
		for len(reads) < total {
			_, r, err := c.Reader(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			m := 0
			for {
				k, err := r.Read(buf[m:])
				m += k
				if err != nil {
					break
				}
			}
			reads = append(reads, time.Now().UnixNano())
		}
		b.StopTimer()
		sent := s.Conns()[0].SentAt()
		var h latency.Histogram
		for k := range sent {
			h.Record(reads[k] - sent[k])
		}
		reportHist(b, &h, "")
		b.ReportMetric(float64(len(sent)), "msgs")
	})
}
