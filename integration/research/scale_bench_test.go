package research

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/catalog"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

// scaleDates is the depth of the symbol `ls` is timed on: ten years of days.
const scaleDates = 3650

// BenchmarkBucketScale mounts a bucket of many small partitions (CHRONICLE_BENCH_PARTITIONS,
// default 100,000: symbols of 3,650 dates each) on a research host and times what a
// researcher does first: the mount, `ls` of one symbol's 3,650 dates (cold, then cached),
// and `find` of the whole tree, with the daemon's peak RSS. Each symbol has the catalog its
// capture host's tier manager keeps (docs/format/catalog.md), so find reads one catalog per
// symbol instead of a listing and a stub per partition. Baselines, same run and server:
// the S3 listing calls the same answers need (ListObjectsV2 of the symbol with a delimiter;
// the flat listing of every key for find), and the posix directory itself for a cached ls.
//
// The fixture is written straight into versitygw's posix backend (one file per object, the
// way versitygw keeps them; 300,000 PUTs would take minutes); the mount reads it through
// versitygw's S3 API like any bucket.
func BenchmarkBucketScale(b *testing.B) {
	if testenv.Probe(b) {
		return
	}
	parts := testenv.BenchCount(b, "CHRONICLE_BENCH_PARTITIONS", 100000, scaleDates)
	srv := s3test.Start(b)
	began := time.Now()
	keys := scaleFixture(b, srv, parts)
	b.Logf("fixture: %d partitions (%d objects) in %v", len(keys), 3*len(keys), time.Since(began).Round(time.Millisecond))
	testenv.Note(b, "research.scale", fmt.Sprintf("%d partitions of %d symbols (3 objects each) in one versitygw bucket on loopback; "+
		"chronicle-fs with only the remote tier, bucket_ttl 60 s, defaults otherwise", len(keys), (len(keys)+scaleDates-1)/scaleDates))
	client := srv.Client()
	sym := keys[0]
	symDir := "v1/" + sym.Venue + "/" + sym.Symbol

	for range b.N {
		if err := testenv.DropCaches(); err != nil {
			b.Logf("drop caches: %v", err)
		}
		mp, pid, stop := scaleMount(b, srv)
		mountS := time.Since(mountStart)

		t0 := time.Now()
		rootList(b, client, srv.Bucket, "chronicle/v1/", "/")
		testenv.Emit(b, testenv.Figure{ID: "research.mount", Value: mountS.Seconds(), Baseline: time.Since(t0).Seconds(), Unit: "s"})

		t0 = time.Now()
		ents, err := os.ReadDir(filepath.Join(mp, symDir))
		lsCold := time.Since(t0)
		if err != nil || len(ents) != scaleDates {
			b.Fatalf("ls %s: %d entries, %v", symDir, len(ents), err)
		}
		t0 = time.Now()
		rootList(b, client, srv.Bucket, "chronicle/"+symDir+"/", "/")
		testenv.Emit(b, testenv.Figure{ID: "research.ls_cold", Value: lsCold.Seconds(), Baseline: time.Since(t0).Seconds(), Unit: "s"})

		t0 = time.Now()
		if ents, err := os.ReadDir(filepath.Join(mp, symDir)); err != nil || len(ents) != scaleDates {
			b.Fatalf("second ls: %d entries, %v", len(ents), err)
		}
		lsCached := time.Since(t0)
		t0 = time.Now()
		os.ReadDir(filepath.Join(srv.Dir, srv.Bucket, "chronicle", filepath.FromSlash(symDir)))
		testenv.Emit(b, testenv.Figure{ID: "research.ls_cached", Value: lsCached.Seconds() * 1e3, Baseline: time.Since(t0).Seconds() * 1e3, Unit: "ms"})

		t0 = time.Now()
		out, err := exec.Command("find", mp, "-type", "f", "-name", layout.BookName).Output()
		find := time.Since(t0)
		if n := strings.Count(string(out), "\n"); err != nil || n != len(keys) {
			b.Fatalf("find: %d books, want %d: %v", n, len(keys), err)
		}
		t0 = time.Now()
		flat := rootList(b, client, srv.Bucket, "chronicle/", "")
		testenv.Emit(b, testenv.Figure{ID: "research.find", Value: find.Seconds(), Baseline: time.Since(t0).Seconds(), Unit: "s",
			Note: fmt.Sprintf("baseline lists %d keys", flat)})
		testenv.Emit(b, testenv.Figure{ID: "research.rss", Value: float64(testenv.PeakRSS(b, pid)) / (1 << 20), Unit: "MiB"})
		stop()
	}
}

var mountStart time.Time

// scaleFixture writes parts partitions: symbols s0000, s0001... of scaleDates days each,
// every partition the .zst, .idx and stub copy of one small real book.
func scaleFixture(b *testing.B, srv *s3test.Server, parts int) []layout.Key {
	cold := b.TempDir()
	k0 := layout.Key{Venue: "binance-perp", Symbol: "s0000", Date: "2015-01-01"}
	testkit.PlaceCold(b, cold, k0, testkit.Book(b, k0, 100, 1), 64<<10) // the same book as below: same seed
	d0 := testkit.PartDir(cold, k0)
	zst, _ := os.ReadFile(filepath.Join(d0, layout.ZstName))
	idx, _ := os.ReadFile(filepath.Join(d0, layout.IdxName))
	base := filepath.Join(srv.Dir, srv.Bucket, "chronicle")
	store := testkit.S3Store(b, srv, srv.URI("chronicle"))
	// Partitions share their .zst and .idx as hard links, a fresh source every 50,000
	// (ext4 allows 65,000 links to one file).
	var zstPath, idxPath string
	src := b.TempDir()
	book := testkit.Book(b, k0, 100, 1)
	hdr, err := format.ReadHeader(bytes.NewReader(book), int64(len(book)), "book")
	if err != nil {
		b.Fatal(err)
	}
	s := stub.Stub{Zst: stub.Object{Size: int64(len(zst)), SHA256: testkit.SHA256(zst)},
		Idx: stub.Object{Size: int64(len(idx)), SHA256: testkit.SHA256(idx)}, UncompressedSize: int64(len(book)),
		HeaderSize: int64(hdr.HeaderSize), UploadedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Host: scaleHost}
	day0 := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := make([]layout.Key, 0, parts)
	// Each symbol's catalog, as the capture host's tier manager keeps it (docs/format/catalog.md).
	var cat *catalog.Catalog
	flush := func() {
		if cat == nil {
			return
		}
		cb, err := cat.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(base, filepath.FromSlash(catalog.Key(cat.Venue, cat.Symbol, scaleHost)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, cb, 0o644); err != nil {
			b.Fatal(err)
		}
		cat = nil
	}
	for i := range parts {
		if i%50000 == 0 {
			zstPath, idxPath = filepath.Join(src, fmt.Sprintf("z%d", i)), filepath.Join(src, fmt.Sprintf("i%d", i))
			os.WriteFile(zstPath, zst, 0o644)
			os.WriteFile(idxPath, idx, 0o644)
		}
		k := layout.Key{Venue: "binance-perp", Symbol: fmt.Sprintf("s%04d", i/scaleDates), Date: day0.AddDate(0, 0, i%scaleDates).Format(layout.DateLayout)}
		keys = append(keys, k)
		dir := filepath.Join(base, filepath.FromSlash(k.Dir()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		zk, ik := stub.Keys(k)
		s.Zst.URI, s.Idx.URI = store.URI(zk), store.URI(ik)
		sb, err := s.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range []struct{ from, to string }{{zstPath, layout.ZstName}, {idxPath, layout.IdxName}} {
			if err := os.Link(l.from, filepath.Join(dir, l.to)); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, layout.StubName), sb, 0o644); err != nil {
			b.Fatal(err)
		}
		if cat != nil && cat.Symbol != k.Symbol {
			flush()
		}
		if cat == nil {
			cat = &catalog.Catalog{Host: scaleHost, Venue: k.Venue, Symbol: k.Symbol, WrittenAt: s.UploadedAt}
		}
		parsed, err := stub.Parse(sb, "stub")
		if err != nil {
			b.Fatal(err)
		}
		cat.Versions = append(cat.Versions, catalog.Entry{Date: k.Date, Stub: parsed})
	}
	flush()
	return keys
}

// scaleHost is the capture host the fixture's partitions and catalogs name.
const scaleHost = "capture"

// scaleMount starts chronicle-fs with only the remote tier and waits for the mount; it
// returns the mount point, the daemon's pid and a stop function. mountStart is set just
// before the process starts.
func scaleMount(b *testing.B, srv *s3test.Server) (string, int, func()) {
	dir := b.TempDir()
	mp := filepath.Join(dir, "mnt")
	os.Mkdir(mp, 0o755)
	cfg := filepath.Join(dir, "research.toml")
	os.WriteFile(cfg, []byte(testkit.ConfigTOML(layout.Roots{Remote: srv.URI("chronicle")}, testkit.S3Config(srv))+fmt.Sprintf(`
[fs]
metrics_addr = ""
disk_cache_dir = %q

[log]
level = "warn"
`, filepath.Join(dir, "cache"))), 0o600)
	logf, _ := os.Create(filepath.Join(dir, "chronicle-fs.log"))
	args := []string{"mount", "--config", cfg, mp}
	if p := os.Getenv("CHRONICLE_BENCH_FS_CPUPROFILE"); p != "" {
		args = append(args, "--cpuprofile", p)
	}
	cmd := exec.Command(testenv.Bin("chronicle-fs"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	mountStart = time.Now()
	p := proc.Mount(b, cmd, mp, 30*time.Second, func() string {
		out, _ := os.ReadFile(logf.Name())
		return string(out)
	})
	return mp, cmd.Process.Pid, func() {
		p.Unmount()
		logf.Close()
	}
}

// rootList lists prefix with the SDK, every page, and returns the number of entries.
func rootList(b *testing.B, c *s3.Client, bucket, prefix, delim string) int {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	if delim != "" {
		in.Delimiter = aws.String(delim)
	}
	n := 0
	pages := s3.NewListObjectsV2Paginator(c, in)
	for pages.HasMorePages() {
		p, err := pages.NextPage(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += len(p.Contents) + len(p.CommonPrefixes)
	}
	return n
}
