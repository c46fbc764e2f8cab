package objstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// benchConfig is the default configuration against the server;
// CHRONICLE_BENCH_PART_MB, CHRONICLE_BENCH_THRESHOLD_MB and
// CHRONICLE_BENCH_CONCURRENCY override the upload layout for tuning.
func benchConfig(b *testing.B, srv *s3test.Server) objstore.Config {
	cfg := objstore.Config{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		PathStyle: true,
	}
	envInt := func(name string) int64 {
		v := os.Getenv(name)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q", name, v)
		}
		return n
	}
	cfg.PartSize = bytesize.Size(envInt("CHRONICLE_BENCH_PART_MB") << 20)
	cfg.MultipartThreshold = bytesize.Size(envInt("CHRONICLE_BENCH_THRESHOLD_MB") << 20)
	cfg.Concurrency = int(envInt("CHRONICLE_BENCH_CONCURRENCY"))
	if os.Getenv("CHRONICLE_BENCH_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// writeBenchFile writes size pseudo-random bytes to a temp file.
func writeBenchFile(b *testing.B, size int64) *os.File {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "upload.bin"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	rng := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		rng.Read(buf)
		if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// BenchmarkUpload: our verified Put (SHA-256 of the whole and of each part,
// server-checked checksums, metadata, Head) versus one plain SDK PutObject
// of the same file without checksums, interleaved in the same run.
// CHRONICLE_BENCH_UPLOAD_MB sets the size (default 256).
func BenchmarkUpload(b *testing.B) {
	mb := int64(256)
	if v := os.Getenv("CHRONICLE_BENCH_UPLOAD_MB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("CHRONICLE_BENCH_UPLOAD_MB=%q", v)
		}
		mb = n
	}
	size := mb << 20
	srv := s3test.Start(b)
	st := openS3(b, srv, benchConfig(b, srv))
	raw := srv.Client()
	f := writeBenchFile(b, size)
	ctx := context.Background()

	var ours, theirs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		info, err := st.Put(ctx, "bench/ours", f, size, objstore.PutOptions{})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := raw.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(srv.Bucket), Key: aws.String("bench/raw"),
			Body: io.NewSectionReader(f, 0, size), ContentLength: aws.Int64(size),
		}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ours += t1.Sub(t0)
		theirs += t2.Sub(t1)
		if i == 0 {
			b.Logf("our put: %d parts, sha256 %s…", info.Parts, info.SHA256[:16])
		}
	}
	b.StopTimer()
	mbs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(ours), "ours-MB/s")
	b.ReportMetric(mbs(theirs), "raw-putobject-MB/s")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "ours/raw-time")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRangedGet4KiB: latency of one random 4 KiB ranged read through
// GetRange versus a raw SDK GetObject with a Range header, interleaved.
func BenchmarkRangedGet4KiB(b *testing.B) {
	const size = 64 << 20
	srv := s3test.Start(b)
	st := openS3(b, srv, benchConfig(b, srv))
	raw := srv.Client()
	ctx := context.Background()
	data := randData(9, size)
	info, err := st.Put(ctx, "bench/obj", bytes.NewReader(data), size, objstore.PutOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// The raw client needs the bucket-relative key: strip "s3://bucket/".
	fullKey := st.URI(info.Key)[len("s3://"+srv.Bucket+"/"):]
	rng := rand.New(rand.NewPCG(1, 2))
	p := make([]byte, 4096)
	// Warm both connection pools so neither side pays a dial in the figures.
	for range 10 {
		objstore.ReadRange(ctx, st, info.Key, 0, p)
		rawGet(b, raw, srv.Bucket, fullKey, 0, p)
	}
	ours := make([]time.Duration, 0, b.N)
	theirs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := rng.Int64N(size - 4096)
		t0 := time.Now()
		if err := objstore.ReadRange(ctx, st, info.Key, off, p); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if !bytes.Equal(p, data[off:off+4096]) {
			b.Fatalf("bytes differ at %d", off)
		}
		off = rng.Int64N(size - 4096)
		t2 := time.Now()
		rawGet(b, raw, srv.Bucket, fullKey, off, p)
		t3 := time.Now()
		ours = append(ours, t1.Sub(t0))
		theirs = append(theirs, t3.Sub(t2))
	}
	b.StopTimer()
	q := func(d []time.Duration, f float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(f*float64(len(d))))].Microseconds())
	}
	b.ReportMetric(q(ours, 0.50), "ours-p50-µs")
	b.ReportMetric(q(ours, 0.99), "ours-p99-µs")
	b.ReportMetric(q(theirs, 0.50), "raw-p50-µs")
	b.ReportMetric(q(theirs, 0.99), "raw-p99-µs")
	b.ReportMetric(0, "ns/op")
}

func rawGet(b *testing.B, c *s3.Client, bucket, key string, off int64, p []byte) {
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer out.Body.Close()
	if _, err := io.ReadFull(out.Body, p); err != nil {
		b.Fatal(err)
	}
}
