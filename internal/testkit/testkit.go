// Package testkit is the one kit every package's tests and benchmarks build on: tier roots
// in temporary folders, canonical books (deterministic per record, or realistic from
// books.Gen), partitions placed in any tier the way the components place them (plain
// files written with fsync and rename, cold frames by the real transcoder, remote objects
// uploaded through the real object store with a real stub), object stores on file:// or a
// real versitygw (s3test), and a growing hot book. Test-only: no binary links it (the
// import-rule test checks).
package testkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// Key is the partition most tests use.
var Key = layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}

// Roots returns fresh hot, warm and cold folders under t.TempDir().
func Roots(t testing.TB) layout.Roots {
	d := t.TempDir()
	return layout.Roots{Hot: filepath.Join(d, "hot"), Warm: filepath.Join(d, "warm"), Cold: filepath.Join(d, "cold")}
}

// Seed returns a random seed, or $CHRONICLE_SEED, and logs it for replay.
func Seed(t testing.TB) int64 { return testenv.Seed(t) }

// WriteBook writes a sealed canonical book of n records at path.
func WriteBook(t testing.TB, path string, k layout.Key, n int64, seed int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := format.Create(path, format.NewBookHeader(k.Venue, k.Symbol, 7, dateOf(t, k)), format.Options{ChunkSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := books.Record(seed, i)
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
}

func dateOf(t testing.TB, k layout.Key) uint32 {
	d, err := k.Time()
	if err != nil {
		t.Fatal(err)
	}
	return format.DateOf(d)
}

// Book returns the bytes of a sealed book of n records.
func Book(t testing.TB, k layout.Key, n int64, seed int64) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "book.q")
	WriteBook(t, p, k, n, seed)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PartDir is k's directory below a tier root.
func PartDir(root string, k layout.Key) string {
	return filepath.Join(root, filepath.FromSlash(k.Dir()))
}

// Meta is the meta.json the helpers place.
func Meta(k layout.Key) []byte {
	return meta.MustMarshal(meta.New(k.Venue, k.Date, k.Symbol, 1))
}

// IndexName is a small file the helpers place under index/ to show that partition
// subdirectories are served.
const IndexName = "index/snapshots.idx"

// IndexBytes is its content.
func IndexBytes(k layout.Key) []byte { return []byte("snapshot offsets of " + k.Dir() + "\n") }

// WriteFileSync writes b to p through a temporary name, fsyncs and renames it into place.
func WriteFileSync(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := writeFileSync(p, b); err != nil {
		t.Fatal(err)
	}
}

func writeFileSync(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return fileutil.WriteFile(p, b, 0o644)
}

// PlacePlain puts book.q, meta.json and the index file into a local tier root.
func PlacePlain(t testing.TB, root string, k layout.Key, book []byte) {
	t.Helper()
	d := PartDir(root, k)
	WriteFileSync(t, filepath.Join(d, layout.MetaName), Meta(k))
	WriteFileSync(t, filepath.Join(d, filepath.FromSlash(IndexName)), IndexBytes(k))
	WriteFileSync(t, filepath.Join(d, layout.BookName), book)
}

// PlaceCold transcodes book into the cold root (frames of blockSize bytes) with meta.json
// and the index file.
func PlaceCold(t testing.TB, cold string, k layout.Key, book []byte, blockSize int) {
	t.Helper()
	d := PartDir(cold, k)
	WriteFileSync(t, filepath.Join(d, layout.MetaName), Meta(k))
	WriteFileSync(t, filepath.Join(d, filepath.FromSlash(IndexName)), IndexBytes(k))
	if _, err := qzst.Transcode(context.Background(), bytes.NewReader(book), int64(len(book)),
		filepath.Join(d, layout.ZstName), filepath.Join(d, layout.IdxName), qzst.Options{BlockSize: blockSize}); err != nil {
		t.Fatal(err)
	}
}

// PlaceRemote uploads a cold partition's .zst and .idx to store, writes the stub and deletes
// the local .zst, then .idx (in that order: a .zst is never left without its .idx). It
// places a partition for the tests of tiers, which cannot link the tier manager standing on
// it; a test that watches a move runs the tier manager's own (internal/testkit/tiermove).
func PlaceRemote(t testing.TB, cold string, store objstore.Store, k layout.Key) *stub.Stub {
	t.Helper()
	s, err := moveColdToRemote(cold, store, k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// PlacedHost is the host id the stubs PlaceRemote writes name (it takes no claim, as an
// upload from before claims did not).
const PlacedHost = "testkit"

func moveColdToRemote(cold string, store objstore.Store, k layout.Key) (*stub.Stub, error) {
	ctx := context.Background()
	d := PartDir(cold, k)
	zk, ik := stub.Keys(k)
	s := &stub.Stub{UploadedAt: time.Now().UTC(), Host: PlacedHost}
	for _, o := range []struct {
		name, key string
		obj       *stub.Object
	}{{layout.ZstName, zk, &s.Zst}, {layout.IdxName, ik, &s.Idx}} {
		f, err := os.Open(filepath.Join(d, o.name))
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		info, err := store.Put(ctx, o.key, f, st.Size(), objstore.PutOptions{})
		f.Close()
		if err != nil {
			return nil, err
		}
		*o.obj = stub.Object{URI: store.URI(o.key), Size: info.Size, ETag: info.ETag, SHA256: info.SHA256}
	}
	ib, err := os.ReadFile(filepath.Join(d, layout.IdxName))
	if err != nil {
		return nil, err
	}
	idx, err := qzst.ParseIndex(ib, "idx")
	if err != nil {
		return nil, err
	}
	s.UncompressedSize = idx.Size
	if zf, err := os.Open(filepath.Join(d, layout.ZstName)); err == nil {
		if zr, err := qzst.Open(zf, idx.ZstSize, idx, nil, qzst.ReaderOptions{Readahead: -1}); err == nil {
			if h, err := format.ReadHeader(zr, idx.Size, "book"); err == nil {
				s.HeaderSize = int64(h.HeaderSize)
			}
			zr.Close()
		}
		zf.Close()
	}
	// The partition's other files and, last, the stub's copy: the bucket alone holds the
	// whole partition, as chronicle-tier publishes it.
	for _, name := range []string{layout.MetaName, IndexName} {
		fb, err := os.ReadFile(filepath.Join(d, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info, err := store.Put(ctx, stub.FileKey(k, name), bytes.NewReader(fb), int64(len(fb)), objstore.PutOptions{})
		if err != nil {
			return nil, err
		}
		s.Files = append(s.Files, stub.File{Name: name, Size: info.Size, SHA256: info.SHA256})
	}
	b, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := store.Put(ctx, stub.ObjectKey(k), bytes.NewReader(b), int64(len(b)), objstore.PutOptions{}); err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(d, layout.StubName), b); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(d, layout.ZstName)); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(d, layout.IdxName)); err != nil {
		return nil, err
	}
	return s, fileutil.SyncDir(d)
}

// FileStore opens a file:// object store in a temporary folder.
func FileStore(t testing.TB) objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), "file://"+filepath.Join(testenv.FastDir(t), "remote"), objstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// S3Config is the [remote] configuration for a versitygw server.
func S3Config(srv *s3test.Server) objstore.Config {
	return objstore.Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		PathStyle: true, RequestTimeout: 2 * time.Second, MaxRetries: 1, MaxBackoff: 100 * time.Millisecond}
}

// S3Store opens the store at uri on a versitygw server.
func S3Store(t testing.TB, srv *s3test.Server, uri string) objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), uri, S3Config(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// SHA256 is the hex digest of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ReadFile reads a whole file or fails the test.
func ReadFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// HashFile reads a whole file and returns its digest and size.
func HashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Growing is a hot book being written, one record at a time.
type Growing struct {
	A    *format.Appender
	Path string
	Seed int64
	N    int64
}

// NewGrowing creates an unsealed book for k in the hot root (with meta.json).
func NewGrowing(t testing.TB, hot string, k layout.Key, seed int64) *Growing {
	t.Helper()
	d := PartDir(hot, k)
	p := filepath.Join(d, layout.BookName)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := format.Create(p, format.NewBookHeader(k.Venue, k.Symbol, 7, dateOf(t, k)), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &Growing{A: a, Path: p, Seed: seed}
}

// Append commits record g.N of the seed's stream with Aux1 replaced by the commit time
// (UnixNano), so readers can measure how late they see it.
func (g *Growing) Append() error {
	r := books.Record(g.Seed, g.N)
	r.Aux1 = time.Now().UnixNano()
	if err := g.A.AppendBook(&r); err != nil {
		return err
	}
	g.N++
	return nil
}
