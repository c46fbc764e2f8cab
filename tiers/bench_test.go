package tiers

import (
	"context"
	"io"
	"math/rand"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/latency"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// remoteBench places a realistic partition of CHRONICLE_BENCH_BYTES in the remote tier of
// a real versitygw and returns what the benchmarks need.
func remoteBench(b *testing.B) (srv *s3test.Server, roots layout.Roots, book []byte, st *stub.Stub) {
	srv = s3test.Start(b)
	store := s3Store(b, srv, objstore.Config{})
	roots = testkit.Roots(b)
	n := int((testenv.BenchBytes(b, 256<<20) - format.HeaderSize) / format.BookRecordSize)
	book = testkit.Book(b, testKey, int64(n), 1)
	testkit.PlaceCold(b, roots.Cold, testKey, book, 1<<20)
	st = testkit.PlaceRemote(b, roots.Cold, store, testKey)
	roots.Remote = store.URI("")
	b.Cleanup(func() { store.Close() })
	return srv, roots, book, st
}

// BenchmarkRemoteSequential reads a whole remote partition through the resolver, beside what
// a user would do otherwise in the same run: a plain S3 GET of the .zst piped into `zstd -dc`.
// Goal: ours <= 1.0x their time. It also reports the remote requests and time to the first
// byte after a cold open (goal: 2 round trips + one frame decode).
func BenchmarkRemoteSequential(b *testing.B) {
	zstdCLI := testenv.Tool(b, "zstd", "zstd")
	srv, roots, book, st := remoteBench(b)
	store := s3Store(b, srv, objstore.Config{})
	client := srv.Client()
	zk, _ := stub.Keys(testKey)
	var oursNs, theirsNs, ttfbNs, firstReqs, openReqs int64
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(book)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cache, _ := qzst.NewCache(qzst.CacheOptions{MaxBytes: 64 << 20})
		r, err := New(roots, Options{Store: store, Cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		h, err := r.Open(context.Background(), testKey.Dir()+"/book.q")
		if err != nil {
			b.Fatal(err)
		}
		openReqs += r.Stats().RemoteRequests.Load()
		var total int64
		for off := int64(0); off < h.Size(); {
			n, err := h.ReadAt(buf, off)
			if off == 0 {
				ttfbNs += int64(time.Since(t0))
				firstReqs += r.Stats().RemoteRequests.Load()
			}
			off += int64(n)
			total += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		oursNs += int64(time.Since(t0))
		h.Close()
		cache.Close()
		if total != int64(len(book)) {
			b.Fatalf("read %d of %d bytes", total, len(book))
		}

		t1 := time.Now()
		out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("chronicle/" + zk)})
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(zstdCLI, "-dc")
		cmd.Stdin = out.Body
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		out.Body.Close()
		theirsNs += int64(time.Since(t1))
	}
	b.StopTimer()
	mbs := func(ns int64) float64 { return float64(len(book)) * float64(b.N) / float64(ns) * 1e3 }
	b.ReportMetric(mbs(oursNs), "MB/s")
	b.ReportMetric(mbs(theirsNs), "get+zstd_MB/s")
	b.ReportMetric(float64(oursNs)/float64(theirsNs), "time_x_baseline")
	b.ReportMetric(float64(ttfbNs)/float64(b.N)/1e6, "first_byte_ms")
	// Open costs the .idx GET; the first ReadAt then waits for one frame's GET (readahead
	// GETs issued at the same time are counted in first_byte_requests but not waited for).
	b.ReportMetric(float64(openReqs)/float64(b.N), "open_requests")
	b.ReportMetric(float64(firstReqs)/float64(b.N), "first_byte_requests")
	b.Logf("remote sequential %.0f MB/s vs GET|zstd -dc %.0f MB/s over %d MiB (.zst %d MiB); first byte %.2f ms after %.1f requests",
		mbs(oursNs), mbs(theirsNs), len(book)>>20, st.Zst.Size>>20, float64(ttfbNs)/float64(b.N)/1e6, float64(firstReqs)/float64(b.N))
}

// BenchmarkRemoteRandom4K reads 4 KiB at random offsets of a remote partition with a cold
// frame cache (every read fetches and decodes its frame). Goal: p50 <= 5 ms on loopback.
func BenchmarkRemoteRandom4K(b *testing.B) {
	srv, roots, book, _ := remoteBench(b)
	store := s3Store(b, srv, objstore.Config{})
	// A frame cache of 8 frames and offsets that visit the frames in a random permutation:
	// every read misses the cache and fetches and decodes its frame.
	cache, _ := qzst.NewCache(qzst.CacheOptions{MaxBytes: 8 << 20})
	defer cache.Close()
	r, err := New(roots, Options{Store: store, Readahead: -1, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	h := openBook(b, r)
	defer h.Close()
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, 4096)
	var hist latency.Histogram
	frames := int(int64(len(book)) >> 20)
	perm := rng.Perm(frames)
	before := cache.Stats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(perm[i%frames])<<20 + rng.Int63n(1<<20-4096)
		t0 := time.Now()
		if _, err := h.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		hist.Record(int64(time.Since(t0)))
	}
	b.StopTimer()
	b.ReportMetric(float64(hist.Quantile(.5))/1e6, "p50_ms")
	b.ReportMetric(float64(hist.Quantile(.99))/1e6, "p99_ms")
	after := cache.Stats()
	b.Logf("remote random 4 KiB, cold cache: %s (cache stats before %+v after %+v)", hist.Summary(), before, after)
}
