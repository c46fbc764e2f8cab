package tiers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/diskcache"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// research places partitions in a capture host's tiers, publishes them to a file:// bucket,
// and returns a resolver that sees only that bucket (a research host), with a clock the
// test moves.
type research struct {
	capture layout.Roots
	store   objstore.Store
	r       *Resolver
	clock   atomic.Int64
	books   map[layout.Key][]byte
}

func newResearch(t *testing.T, opts Options, keys ...layout.Key) *research {
	t.Helper()
	e := &research{capture: testkit.Roots(t), store: testkit.FileStore(t), books: map[layout.Key][]byte{}}
	for i, k := range keys {
		e.publish(t, k, int64(i))
	}
	e.clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	opts.Store, opts.RemoteTimeout = e.store, 5*time.Second
	opts.Now = func() time.Time { return time.Unix(0, e.clock.Load()) }
	r, err := New(layout.Roots{Remote: e.store.URI("")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	e.r = r
	return e
}

func (e *research) publish(t *testing.T, k layout.Key, seed int64) {
	book := testkit.Book(t, k, 20000+seed*1000, seed)
	testkit.PlaceCold(t, e.capture.Cold, k, book, 64<<10)
	testkit.PlaceRemote(t, e.capture.Cold, e.store, k)
	e.books[k] = book
}

func names(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func readLogical(t *testing.T, r *Resolver, logical string) ([]byte, Handle) {
	t.Helper()
	h, err := r.Open(context.Background(), logical)
	if err != nil {
		t.Fatalf("open %s: %v", logical, err)
	}
	defer h.Close()
	b := make([]byte, h.Size())
	if n, err := h.ReadAt(b, 0); n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("read %s: %d of %d bytes: %v", logical, n, len(b), err)
	}
	return b, h
}

// TestResearchHostSeesTheBucket: with no local tier, every published partition is listed
// level by level from the bucket and served with the same bytes, meta.json and index/.
func TestResearchHostSeesTheBucket(t *testing.T) {
	k1 := testKey
	k2 := layout.Key{Venue: k1.Venue, Symbol: k1.Symbol, Date: "2024-08-09"}
	k3 := layout.Key{Venue: "binance-spot", Symbol: "eth-usdt", Date: "2024-08-08"}
	e := newResearch(t, Options{}, k1, k2, k3)
	r := e.r
	for dir, want := range map[string][]string{
		"v1":                           {"binance-perp", "binance-spot"},
		"v1/binance-perp":              {k1.Symbol},
		"v1/binance-perp/" + k1.Symbol: {"2024-08-08", "2024-08-09"},
		k1.Dir():                       {"book.q", "index", "meta.json"},
		k1.Dir() + "/index":            {"snapshots.idx"},
	} {
		es, err := r.ReadDir(dir)
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		if got := names(es); !slices.Equal(got, want) {
			t.Fatalf("readdir %s = %v, want %v", dir, got, want)
		}
	}
	for k, book := range e.books {
		st, err := r.Stat(path.Join(k.Dir(), "book.q"))
		if err != nil || st.Size != int64(len(book)) || st.Tier != layout.Remote {
			t.Fatalf("stat %s: %+v %v", k, st, err)
		}
		got, h := readLogical(t, r, path.Join(k.Dir(), "book.q"))
		if !bytes.Equal(got, book) || h.Tier() != layout.Remote {
			t.Fatalf("%s: book differs (tier %s)", k, h.Tier())
		}
		if m, _ := readLogical(t, r, path.Join(k.Dir(), "meta.json")); !bytes.Equal(m, testkit.Meta(k)) {
			t.Fatalf("%s: meta.json differs", k)
		}
		if ix, _ := readLogical(t, r, path.Join(k.Dir(), testkit.IndexName)); !bytes.Equal(ix, testkit.IndexBytes(k)) {
			t.Fatalf("%s: index differs", k)
		}
	}
	for _, missing := range []string{"v1/okx", "v1/binance-perp/btc-usdt", k1.Dir()[:len(k1.Dir())-2] + "30", k1.Dir() + "/nope.json"} {
		if _, err := r.Stat(missing); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat %s: %v, want ErrNotFound", missing, err)
		}
	}
	if _, err := r.Open(context.Background(), k1.Dir()+"/index"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("open a bucket partition's directory: %v", err)
	}
}

// TestResearchHostTTL: a partition published after the listing was read appears once the
// listing is older than the TTL, not before.
func TestResearchHostTTL(t *testing.T) {
	e := newResearch(t, Options{BucketTTL: time.Minute}, testKey)
	sym := "v1/" + testKey.Venue + "/" + testKey.Symbol
	later := layout.Key{Venue: testKey.Venue, Symbol: testKey.Symbol, Date: "2024-08-10"}
	if es, _ := e.r.ReadDir(sym); len(es) != 1 {
		t.Fatalf("before: %v", names(es))
	}
	if _, err := e.r.Stat(later.Dir()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat of a partition not yet published: %v", err)
	}
	e.publish(t, later, 9)
	if es, _ := e.r.ReadDir(sym); len(es) != 1 {
		t.Fatalf("listing changed within the TTL: %v", names(es))
	}
	e.clock.Add(int64(61 * time.Second))
	es, err := e.r.ReadDir(sym)
	if err != nil || len(es) != 2 {
		t.Fatalf("after the TTL: %v %v", names(es), err)
	}
	if got, _ := readLogical(t, e.r, later.Dir()+"/book.q"); !bytes.Equal(got, e.books[later]) {
		t.Fatal("later partition's book differs")
	}
}

// downStore fails every call while down is set, like a store that cannot be reached.
type downStore struct {
	objstore.Store
	down atomic.Bool
}

func (s *downStore) err() error { return objstore.ErrUnavailable }
func (s *downStore) Head(ctx context.Context, k string) (objstore.ObjectInfo, error) {
	if s.down.Load() {
		return objstore.ObjectInfo{}, s.err()
	}
	return s.Store.Head(ctx, k)
}
func (s *downStore) GetRange(ctx context.Context, k string, off, n int64) (io.ReadCloser, error) {
	if s.down.Load() {
		return nil, s.err()
	}
	return s.Store.GetRange(ctx, k, off, n)
}
func (s *downStore) ListDir(ctx context.Context, dir string) ([]string, []objstore.ObjectInfo, error) {
	if s.down.Load() {
		return nil, nil, s.err()
	}
	return s.Store.ListDir(ctx, dir)
}

// TestResearchHostOutage: while the store is away, listings and partitions seen before
// keep serving (even past their TTL) and the rest fails with ErrRemoteFailed; when it
// returns, everything serves again.
func TestResearchHostOutage(t *testing.T) {
	k2 := layout.Key{Venue: testKey.Venue, Symbol: testKey.Symbol, Date: "2024-08-09"}
	e := newResearch(t, Options{}, testKey, k2)
	ds := &downStore{Store: e.store}
	r, err := New(layout.Roots{Remote: e.store.URI("")}, Options{Store: ds, RemoteTimeout: time.Second, Now: e.r.opts.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sym := "v1/" + testKey.Venue + "/" + testKey.Symbol
	if _, err := r.ReadDir(sym); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(testKey.Dir()); err != nil {
		t.Fatal(err)
	}
	ds.down.Store(true)
	e.clock.Add(int64(time.Hour))
	if es, err := r.ReadDir(sym); err != nil || len(es) != 2 {
		t.Fatalf("cached listing during the outage: %v %v", names(es), err)
	}
	if _, err := r.Stat(testKey.Dir()); err != nil {
		t.Fatalf("cached partition during the outage: %v", err)
	}
	if _, err := r.ReadDir("v1/" + testKey.Venue); !errors.Is(err, ErrRemoteFailed) {
		t.Fatalf("uncached listing during the outage: %v, want ErrRemoteFailed", err)
	}
	if _, err := r.Stat(k2.Dir()); err != nil {
		t.Fatalf("a partition the cached listing names, during the outage: %v", err)
	}
	if _, err := r.Stat(k2.Dir() + "/book.q"); !errors.Is(err, ErrRemoteFailed) {
		t.Fatalf("the book of a partition whose stub was never fetched, during the outage: %v, want ErrRemoteFailed", err)
	}
	if _, err := r.Open(context.Background(), testKey.Dir()+"/book.q"); !errors.Is(err, ErrRemoteFailed) {
		t.Fatalf("book whose index was never fetched, during the outage: %v", err)
	}
	ds.down.Store(false)
	if _, err := r.ReadDir("v1/" + testKey.Venue); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if got, _ := readLogical(t, r, k2.Dir()+"/book.q"); !bytes.Equal(got, e.books[k2]) {
		t.Fatal("after the outage: book differs")
	}
}

// countingStore counts ranged GETs.
type countingStore struct {
	objstore.Store
	gets atomic.Int64
}

func (s *countingStore) GetRange(ctx context.Context, k string, off, n int64) (io.ReadCloser, error) {
	s.gets.Add(1)
	return s.Store.GetRange(ctx, k, off, n)
}

// TestDiskCacheServesRereads: a second resolver (a restarted mount) sharing the disk cache
// reads a book, its index and meta.json again without a single GET.
func TestDiskCacheServesRereads(t *testing.T) {
	e := newResearch(t, Options{}, testKey)
	dir := t.TempDir() + "/cache"
	open := func() (*Resolver, *countingStore) {
		dc, err := diskcache.Open(dir, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		cs := &countingStore{Store: e.store}
		r, err := New(layout.Roots{Remote: e.store.URI("")}, Options{Store: cs, DiskCache: dc, RemoteTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r, cs
	}
	r1, c1 := open()
	if got, _ := readLogical(t, r1, testKey.Dir()+"/book.q"); !bytes.Equal(got, e.books[testKey]) {
		t.Fatal("first read differs")
	}
	readLogical(t, r1, testKey.Dir()+"/meta.json")
	if c1.gets.Load() == 0 {
		t.Fatal("first read fetched nothing")
	}
	r2, c2 := open()
	got, _ := readLogical(t, r2, testKey.Dir()+"/book.q")
	readLogical(t, r2, testKey.Dir()+"/meta.json")
	if !bytes.Equal(got, e.books[testKey]) {
		t.Fatal("reread differs")
	}
	// Only the stub copy is fetched again (listings and stubs are trusted for a TTL, not forever).
	if n := c2.gets.Load(); n != 1 {
		t.Fatalf("reread made %d GETs, want 1 (the stub)", n)
	}
}

// TestDiskCacheKeepsRandomReads: a random read decodes its remote frame while the ranged
// GET streams in, and the frame lands in the disk cache, so the same read from a restarted
// mount fetches nothing but the stub.
func TestDiskCacheKeepsRandomReads(t *testing.T) {
	e := newResearch(t, Options{}, testKey)
	dir := t.TempDir() + "/cache"
	book := e.books[testKey]
	off := int64(len(book)) * 2 / 3
	read := func() (*countingStore, []byte) {
		dc, err := diskcache.Open(dir, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		cs := &countingStore{Store: e.store}
		r, err := New(layout.Roots{Remote: e.store.URI("")}, Options{Store: cs, DiskCache: dc, RemoteTimeout: 5 * time.Second, Direct: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		h, err := r.Open(context.Background(), testKey.Dir()+"/book.q")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		p := make([]byte, 4096)
		if _, err := h.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
		if st := h.(*zstdHandle).Reader().Stats(); st.PartialFrames != 1 {
			t.Fatalf("stats %+v: want one frame decoded in part", st)
		}
		return cs, p
	}
	c1, p1 := read()
	if !bytes.Equal(p1, book[off:off+4096]) || c1.gets.Load() < 2 {
		t.Fatalf("first read: equal %v, %d GETs", bytes.Equal(p1, book[off:off+4096]), c1.gets.Load())
	}
	c2, p2 := read()
	if !bytes.Equal(p2, book[off:off+4096]) {
		t.Fatal("reread differs")
	}
	if n := c2.gets.Load(); n != 1 {
		t.Fatalf("reread made %d GETs, want 1 (the stub)", n)
	}
}
