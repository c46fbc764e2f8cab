package tiers

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// testKey is the partition most tests use.
var testKey = layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}

func testRoots(t testing.TB) layout.Roots {
	d := t.TempDir()
	return layout.Roots{Hot: filepath.Join(d, "hot"), Warm: filepath.Join(d, "warm"), Cold: filepath.Join(d, "cold")}
}

// bookBytes builds a sealed canonical book of n random-walk records and returns its bytes.
func bookBytes(t testing.TB, n int, seed int64) []byte {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "book.q")
	a, err := format.Create(p, format.NewBookHeader(testKey.Venue, testKey.Symbol, 7, 20240808), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed))
	price := int64(250000000000)
	ts := int64(1723161256000000000)
	for i := 0; i < n; i++ {
		price += int64(rng.Intn(5)-2) * 1000000
		ts += int64(rng.Intn(1000000))
		r := format.BookRecord{TypeID: format.TypeLevel, Flags: format.FlagBid << uint(rng.Intn(2)), SymbolID: 7,
			ExchTs: ts, RecvTs: ts - 1200000000, Seq: uint64(i), Price: price, Qty: int64(rng.Intn(1000)) * 100000}
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func partDir(root string, k layout.Key) string {
	return filepath.Join(root, filepath.FromSlash(k.Dir()))
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// Like every writer in the system: a temporary name, then an atomic rename.
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-test")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// placePlain puts book.q (and a meta.json naming the tier) into a local tier.
func placePlain(t testing.TB, root string, k layout.Key, book []byte) {
	writeFile(t, filepath.Join(partDir(root, k), layout.BookName), book)
	writeFile(t, filepath.Join(partDir(root, k), layout.MetaName), meta.MustMarshal(meta.New(k.Venue, k.Date, k.Symbol, 1)))
}

// placeCold transcodes book into the cold tier.
func placeCold(t testing.TB, cold string, k layout.Key, book []byte, blockSize int) {
	t.Helper()
	d := partDir(cold, k)
	os.MkdirAll(d, 0o755)
	if _, err := qzst.Transcode(context.Background(), bytes.NewReader(book), int64(len(book)), filepath.Join(d, layout.ZstName), filepath.Join(d, layout.IdxName), qzst.Options{BlockSize: blockSize}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d, layout.MetaName), meta.MustMarshal(meta.New(k.Venue, k.Date, k.Symbol, 1)))
}

// placeRemote uploads a cold partition's .zst and .idx, writes the stub, removes the local files.
func placeRemote(t testing.TB, cold string, store objstore.Store, k layout.Key) *Stub {
	t.Helper()
	ctx := context.Background()
	d := partDir(cold, k)
	zk, ik := StubKeys(k)
	s := &Stub{UploadedAt: time.Now().UTC()}
	for _, o := range []struct {
		name, key string
		obj       *StubObject
	}{{layout.ZstName, zk, &s.Zst}, {layout.IdxName, ik, &s.Idx}} {
		f, err := os.Open(filepath.Join(d, o.name))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		info, err := store.Put(ctx, o.key, f, st.Size(), objstore.PutOptions{})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		*o.obj = StubObject{URI: store.URI(o.key), Size: info.Size, ETag: info.ETag, SHA256: info.SHA256}
	}
	ib, _ := os.ReadFile(filepath.Join(d, layout.IdxName))
	idx, err := qzst.ParseIndex(ib, "idx")
	if err != nil {
		t.Fatal(err)
	}
	s.UncompressedSize = idx.Size
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d, layout.StubName), b)
	os.Remove(filepath.Join(d, layout.ZstName))
	os.Remove(filepath.Join(d, layout.IdxName))
	return s
}

func fileStore(t testing.TB) objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), "file://"+filepath.Join(t.TempDir(), "remote"), objstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newResolver(t testing.TB, roots layout.Roots, store objstore.Store) *Resolver {
	t.Helper()
	if store != nil {
		roots.Remote = store.URI("")
	}
	r, err := New(roots, Options{Store: store, RemoteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
