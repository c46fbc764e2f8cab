package format

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/chronicle/chronicle/internal/latency"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"golang.org/x/sys/unix"
)

func reportHist(b *testing.B, prefix string, h *latency.Histogram) {
	b.ReportMetric(float64(h.Quantile(.5)), prefix+"p50_ns")
	b.ReportMetric(float64(h.Quantile(.99)), prefix+"p99_ns")
	b.ReportMetric(float64(h.Quantile(.999)), prefix+"p99.9_ns")
	b.ReportMetric(float64(h.Quantile(.9999)), prefix+"p99.99_ns")
	b.ReportMetric(float64(h.Max()), prefix+"max_ns")
	b.Logf("%-9s %s", prefix+":", h.Summary())
}

// baseline is the floor for an append: copy the bytes into a pre-faulted shared mapping of a
// /dev/shm file and publish them with one atomic store.
type baseline struct {
	mem []byte
	pos uint64
	pub *uint64
}

func newBaseline(b *testing.B, dir string, size int64) *baseline {
	f, err := os.Create(filepath.Join(dir, "baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		b.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	prefault(mem)
	b.Cleanup(func() { unix.Munmap(mem) })
	return &baseline{mem: mem, pos: 4096, pub: (*uint64)(unsafe.Pointer(&mem[24]))}
}

func (bl *baseline) append(p []byte) {
	n := copy(bl.mem[bl.pos:], p)
	bl.pos += uint64(n+7) &^ 7
	atomic.StoreUint64(bl.pub, bl.pos)
}

// BenchmarkAppendLatency prints the per-append latency distribution of a canonical record
// and of a 1 KiB raw journal record, each beside the baseline measured in the same run.
// Goals: canonical p99 <= 200 ns, p99.99 <= 1 us; raw 1 KiB p99 <= 1 us; 0 allocs/op.
func BenchmarkAppendLatency(b *testing.B) {
	for _, kind := range []string{"book64B", "journal1KiB"} {
		b.Run(kind, func(b *testing.B) {
			dir := testenv.FastDir(b)
			recLen := int64(BookRecordSize)
			if kind == "journal1KiB" {
				recLen = JournalFrameLen(1024)
			}
			bl := newBaseline(b, dir, HeaderSize+int64(b.N+1)*recLen+4096)
			var a *Appender
			var err error
			if kind == "book64B" {
				a, err = Create(filepath.Join(dir, "b.q"), NewBookHeader("bench", "x", 1, 0), Options{})
			} else {
				a, err = Create(filepath.Join(dir, "j.q"), NewJournalHeader("bench", "x"), Options{})
			}
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			payload := make([]byte, 1024)
			for i := range payload {
				payload[i] = byte('a' + i%26)
			}
			rec := testRecord(1)
			var raw [BookRecordSize]byte
			rec.Put(raw[:])
			basePayload := raw[:]
			if kind == "journal1KiB" {
				basePayload = make([]byte, recLen)
				copy(basePayload[JournalFrameHeader:], payload)
			}
			var ours, base latency.Histogram
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Alternate so both see the same machine state (noise, frequency).
				t0 := time.Now()
				if kind == "book64B" {
					rec.Seq = uint64(i)
					err = a.AppendBook(&rec)
				} else {
					err = a.AppendJournal(JournalMessage, 1, int64(i), payload)
				}
				t1 := time.Now()
				bl.append(basePayload)
				t2 := time.Now()
				if err != nil {
					b.Fatal(err)
				}
				ours.Record(int64(t1.Sub(t0)))
				base.Record(int64(t2.Sub(t1)))
			}
			b.StopTimer()
			reportHist(b, "", &ours)
			reportHist(b, "base_", &base)
		})
	}
}

// benchBookFile writes a canonical file of about size bytes for read benchmarks.
func benchBookFile(b *testing.B, dir string, size int64) string {
	path := filepath.Join(dir, "read.q")
	a, err := Create(path, NewBookHeader("bench", "x", 1, 0), Options{})
	if err != nil {
		b.Fatal(err)
	}
	n := (size - HeaderSize) / BookRecordSize
	for i := int64(0); i < n; i++ {
		r := testRecord(int(i))
		a.WriteBook(&r)
		if i%1024 == 0 {
			a.Commit()
		}
	}
	a.Commit()
	if err := a.Seal(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkDecode reads every record of a 1 GiB mapped file (CHRONICLE_BENCH_BYTES) through
// the iterator, beside a baseline that only sums the mapped bytes as u64 words. Goal: >= 0.5x.
func BenchmarkDecode(b *testing.B) {
	dir := testenv.FastDir(b)
	path := benchBookFile(b, dir, testenv.BenchBytes(b, 1<<30))
	m, br := mapBook(b, path)
	defer m.Close()
	data := m.Bytes()[HeaderSize:]
	var oursNs, baseNs int64
	var sink int64
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&data[0])), len(data)/8)
	for j := 0; j < len(data); j += 4096 { // fault the mapping in for both contenders
		sink += int64(data[j])
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		it := br.Iter()
		for it.Next() {
			r := it.Record()
			sink += r.Price ^ r.Qty ^ r.ExchTs ^ r.RecvTs ^ int64(r.Seq) ^ int64(r.TypeID)
		}
		if it.Err() != nil {
			b.Fatal(it.Err())
		}
		t1 := time.Now()
		var s uint64
		for _, w := range words {
			s += w
		}
		sink += int64(s)
		t2 := time.Now()
		oursNs += int64(t1.Sub(t0))
		baseNs += int64(t2.Sub(t1))
	}
	b.StopTimer()
	gbs := func(ns int64) float64 { return float64(len(data)) * float64(b.N) / float64(ns) }
	b.ReportMetric(gbs(oursNs), "decode_GB/s")
	b.ReportMetric(gbs(baseNs), "base_sum_GB/s")
	b.ReportMetric(gbs(oursNs)/gbs(baseNs), "x_base")
	b.Logf("decode %.2f GB/s, baseline sum %.2f GB/s (%.2fx) over %d MiB [%d]", gbs(oursNs), gbs(baseNs), gbs(oursNs)/gbs(baseNs), len(data)>>20, sink&1)
}
