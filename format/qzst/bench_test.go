package qzst

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Benchmarks run on generated canonical book records (gen_test.go), CHRONICLE_BENCH_BYTES
// of them (default 256 MiB; the full figure uses 1 GiB), and measure the zstd CLI on the
// same file in the same run as the baseline.

// benchDir holds the benchmark's generated files; TestMain removes it.
var benchDir string

var bench struct {
	once          sync.Once
	err           error
	book, zst     string
	idx           *Index
	size, zstSize int64
}

// benchOptions are the transcode options benchmarked: defaults, or QZST_BLOCK_SIZE /
// QZST_LEVEL to explore other trade-offs.
func benchOptions(b testing.TB) Options {
	var o Options
	for env, dst := range map[string]*int{"QZST_BLOCK_SIZE": &o.BlockSize, "QZST_LEVEL": &o.Level} {
		if s := os.Getenv(env); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil {
				b.Fatalf("%s=%q: %v", env, s, err)
			}
			*dst = v
		}
	}
	return o
}

// benchFiles writes the book and its default transcode once per process.
func benchFiles(b testing.TB) {
	size := testenv.BenchBytes(b, 256<<20)
	opts := benchOptions(b)
	bench.once.Do(func() {
		dir, err := os.MkdirTemp("", "qzst-bench-*")
		if err != nil {
			bench.err = err
			return
		}
		benchDir = dir
		bench.book = filepath.Join(dir, "book.q")
		f, err := os.Create(bench.book)
		if err != nil {
			bench.err = err
			return
		}
		if _, err := io.CopyN(f, newBookGen(1), size); err != nil {
			bench.err = err
			return
		}
		f.Close()
		bench.size = size
		src, _ := os.Open(bench.book)
		defer src.Close()
		bench.zst = filepath.Join(dir, "book.q.zst")
		res, err := Transcode(context.Background(), src, size, bench.zst, bench.zst+".idx", opts)
		if err != nil {
			bench.err = err
			return
		}
		bench.idx, bench.zstSize = res.Index, res.ZstSize
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
}

// runCLI runs the zstd CLI and returns its wall-clock and CPU (user+system) time.
func runCLI(b *testing.B, stdout string, args ...string) (wall, cpu time.Duration) {
	b.Helper()
	cmd := exec.Command("zstd", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if stdout != "" {
		f, err := os.Create(stdout)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout = f
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("zstd %v: %v: %s", args, err, stderr.String())
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// cpuTime is this process's CPU time so far. On a shared machine CPU time is a steadier
// measure of work than wall time; benchmarks report both.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timing keeps the fastest wall time and the smallest CPU time of a series of runs.
type timing struct{ wall, cpu time.Duration }

func (t *timing) add(wall, cpu time.Duration) {
	t.wall = best(t.wall, wall)
	t.cpu = best(t.cpu, cpu)
}

func reportVsCLI(b *testing.B, size int64, ours, cli timing) {
	b.ReportMetric(mbps(size, ours.wall), "MB/s")
	b.ReportMetric(mbps(size, cli.wall), "cli_MB/s")
	b.ReportMetric(float64(cli.wall)/float64(ours.wall), "speed_x_cli")
	b.ReportMetric(mbps(size, ours.cpu), "MB/cpu_s")
	b.ReportMetric(mbps(size, cli.cpu), "cli_MB/cpu_s")
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / d.Seconds() / 1e6 }

// best keeps the fastest run: on a shared machine other load only ever slows a run down, so
// the fastest of ours and the fastest of the CLI's (runs interleaved) are compared.
func best(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

// BenchmarkTranscode: ours (Transcode to files with fsync, and TranscodeTo a discarding
// writer) vs `zstd -3 -T<GOMAXPROCS>` on the same file, same number of runs, for each
// encoder in this build.
func BenchmarkTranscode(b *testing.B) {
	benchFiles(b)
	threads := runtime.GOMAXPROCS(0)
	opts := benchOptions(b)
	opts.Concurrency = threads
	src, err := os.Open(bench.book)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	for _, enc := range Encoders() {
		for _, mode := range []string{"file", "stream"} {
			opts := opts
			opts.Encoder = enc
			benchTranscode(b, enc+"/"+mode, src, opts)
		}
	}
}

func benchTranscode(b *testing.B, name string, src *os.File, opts Options) {
	threads := opts.Concurrency
	b.Run(name, func(b *testing.B) {
		b.SetBytes(bench.size)
		out := filepath.Join(benchDir, "t.zst")
		var ours, cli timing // fastest run of each
		var zstSize int64
		for i := 0; i < b.N; i++ {
			start, cpu0 := time.Now(), cpuTime(b)
			var res *Result
			var err error
			if strings.HasSuffix(name, "/file") {
				res, err = Transcode(context.Background(), src, bench.size, out, out+".idx", opts)
			} else {
				res, err = TranscodeTo(context.Background(), src, bench.size, io.Discard, io.Discard, opts)
			}
			if err != nil {
				b.Fatal(err)
			}
			ours.add(time.Since(start), cpuTime(b)-cpu0)
			zstSize = res.ZstSize
			b.StopTimer()
			cli.add(runCLI(b, "", "-q", "-f", "-3", "-T"+strconv.Itoa(threads), bench.book, "-o", out+".cli"))
			b.StartTimer()
		}
		fi, err := os.Stat(out + ".cli")
		if err != nil {
			b.Fatal(err)
		}
		reportVsCLI(b, bench.size, ours, cli)
		b.ReportMetric(float64(bench.size)/float64(zstSize), "ratio")
		b.ReportMetric(float64(bench.size)/float64(fi.Size()), "cli_ratio")
		b.ReportMetric(float64(zstSize)/float64(fi.Size()), "size_x_cli")
	})
}

// openBenchZst makes the benchmark files and opens the .zst, closed when b ends.
func openBenchZst(b *testing.B) *os.File {
	benchFiles(b)
	f, err := os.Open(bench.zst)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkSeqRead: a Reader reading the whole file front to back in 128 KiB reads
// (FUSE-sized) vs `zstd -dc file > /dev/null`. The Cache (64 MiB) lives across iterations as
// in a daemon, but each iteration opens the file under a fresh identity, so nothing of it is
// cached. go1_MB/s is klauspost DecodeAll of every frame on one goroutine, for reference.
// QZST_DECODER=go or libzstd picks the cache's decoder (default: the build's first).
func BenchmarkSeqRead(b *testing.B) {
	f := openBenchZst(b)
	c, err := NewCache(CacheOptions{MaxBytes: 64 << 20, Decoder: os.Getenv("QZST_DECODER")})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(bench.size)
	buf := make([]byte, 128<<10)
	var ours, cli timing // fastest run of each
	var st Stats
	for i := 0; i < b.N; i++ {
		x := *bench.idx
		x.SHA256[0] ^= byte(i + 1)
		start, cpu0 := time.Now(), cpuTime(b)
		ra, _ := strconv.Atoi(os.Getenv("QZST_READAHEAD"))
		r, err := Open(f, bench.zstSize, &x, c, ReaderOptions{Readahead: ra})
		if err != nil {
			b.Fatal(err)
		}
		var off int64
		for {
			n, err := r.ReadAt(buf, off)
			off += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		ours.add(time.Since(start), cpuTime(b)-cpu0)
		st = r.Stats()
		r.Close()
		if off != bench.size {
			b.Fatalf("read %d of %d bytes", off, bench.size)
		}
		b.StopTimer()
		cli.add(runCLI(b, os.DevNull, "-d", "-c", "-q", bench.zst))
		b.StartTimer()
	}
	b.StopTimer()
	go1 := decodeOneThread(b, f)
	reportVsCLI(b, bench.size, ours, cli)
	b.ReportMetric(mbps(bench.size, go1), "go1_MB/s")
	b.ReportMetric(float64(st.CacheMisses), "misses")
	b.ReportMetric(float64(st.CacheWaits), "waits")
	b.ReportMetric(float64(st.SourceReads), "source_reads")
}

func decodeOneThread(b *testing.B, f *os.File) time.Duration {
	zst := make([]byte, bench.zstSize)
	if _, err := f.ReadAt(zst, 0); err != nil {
		b.Fatal(err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	out := make([]byte, 0, bench.idx.BlockSize)
	start := time.Now()
	for _, fr := range bench.idx.Frames {
		if out, err = dec.DecodeAll(zst[fr.CompressedOffset:][:fr.CompressedSize], out[:0]); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkDecodeInto: one goroutine decoding every frame of the file, per decoder, into
// the same 1 MiB buffer each time ("hot"), into 32 buffers in turn ("rotating", like the
// frame cache or FUSE reply buffers), both touched before timing, or into a freshly mapped
// buffer per frame ("fresh": what a buffer pool emptied by the GC costs; the page faults,
// mmap and munmap are timed). The bounded free lists of the frame cache follow from the last line.
func BenchmarkDecodeInto(b *testing.B) {
	benchFiles(b)
	zst, err := os.ReadFile(bench.zst)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range Decoders() {
		for _, nbuf := range []int{1, 32, 0} {
			mode := map[int]string{1: "hot", 32: "rotating", 0: "fresh"}[nbuf]
			b.Run(name+"/"+mode, func(b *testing.B) {
				dec, err := newDecoderFuncs[name](1)
				if err != nil {
					b.Fatal(err)
				}
				defer dec.close()
				bufs := make([][]byte, max(nbuf, 1))
				for i := range bufs {
					bufs[i] = make([]byte, bench.idx.BlockSize)
					for j := range bufs[i] {
						bufs[i][j] = 1 // fault the pages in before timing
					}
				}
				b.SetBytes(bench.size)
				b.ResetTimer()
				for range b.N {
					for i, fr := range bench.idx.Frames {
						dst := bufs[i%max(nbuf, 1)]
						if nbuf == 0 {
							dst, err = unix.Mmap(-1, 0, int(bench.idx.BlockSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
							if err != nil {
								b.Fatal(err)
							}
						}
						if _, err := dec.decodeAll(zst[fr.CompressedOffset:][:fr.CompressedSize], dst[:0]); err != nil {
							b.Fatal(err)
						}
						if nbuf == 0 {
							unix.Munmap(dst)
						}
					}
				}
			})
		}
	}
}

// BenchmarkRandom4K: 4 KiB reads at random offsets. cold: every read lands in a frame that
// is not cached (the cache holds one frame and consecutive reads pick different frames),
// so each read fetches its frame and decodes it up to the read; cold-whole decodes each
// frame whole (ReaderOptions.WholeFrames, as before frames were decoded in part); the .zst
// itself is in the OS page cache. warm: every frame is cached.
func BenchmarkRandom4K(b *testing.B) {
	f := openBenchZst(b)
	bs := int64(bench.idx.BlockSize)
	for _, mode := range []string{"cold", "cold-whole", "warm"} {
		b.Run(mode, func(b *testing.B) {
			maxBytes := 2 * bs
			if mode == "warm" {
				maxBytes = bench.size + 4*bs
			}
			c, err := NewCache(CacheOptions{MaxBytes: maxBytes})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			r, err := Open(f, bench.zstSize, bench.idx, c, ReaderOptions{Readahead: -1, WholeFrames: mode == "cold-whole"})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			p := make([]byte, 4096)
			rng := rand.New(rand.NewPCG(1, 2))
			if mode == "warm" {
				// Every frame read whole, so cached whole, in a shuffled order: read in file
				// order the reader would take them for a sequential pass and drop them behind.
				whole := make([]byte, bs)
				for _, fi := range rng.Perm(len(bench.idx.Frames)) {
					if _, err := r.ReadAt(whole, int64(fi)*bs); err != nil && err != io.EOF {
						b.Fatal(err)
					}
				}
			}
			lat := make([]time.Duration, 0, b.N)
			prevFrame := int64(-1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// A 4 KiB read inside one full frame; cold reads never revisit the last frame.
				fi := rng.Int64N(bench.size / bs)
				for mode != "warm" && fi == prevFrame {
					fi = rng.Int64N(bench.size / bs)
				}
				prevFrame = fi
				off := fi*bs + rng.Int64N(bs-4096)
				start := time.Now()
				if _, err := r.ReadAt(p, off); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50_ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99_ns")
			st := r.Stats()
			// warm: a shuffled order still has a few neighbours, which the reader drops behind.
			if mode != "warm" && st.CacheHits > 0 || mode == "warm" && st.CacheHits < uint64(b.N)*98/100 {
				b.Fatalf("%s run has the wrong cache behaviour: %+v", mode, st)
			}
		})
	}
}
