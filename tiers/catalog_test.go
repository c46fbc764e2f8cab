package tiers

import (
	"bytes"
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/catalog"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/diskcache"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// bucketStub reads the bucket's copy of a version's stub.
func bucketStub(t *testing.T, st objstore.Store, k layout.Key, slot string) *stub.Stub {
	t.Helper()
	key := stub.ObjectKeyIn(k, slot)
	info, err := st.Head(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, info.Size)
	if err := objstore.ReadRange(context.Background(), st, key, 0, b); err != nil {
		t.Fatal(err)
	}
	s, err := stub.Parse(b, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// putCatalog writes host's catalog of k's symbol listing the given versions.
func putCatalog(t *testing.T, st objstore.Store, host string, k layout.Key, es ...catalog.Entry) {
	t.Helper()
	c := &catalog.Catalog{Host: host, Venue: k.Venue, Symbol: k.Symbol, WrittenAt: time.Now().UTC(), Versions: es}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), catalog.Key(k.Venue, k.Symbol, host), bytes.NewReader(b), int64(len(b)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// entriesOf makes catalog entries of the key's own versions from the bucket's stub copies.
func entriesOf(t *testing.T, st objstore.Store, keys ...layout.Key) []catalog.Entry {
	var es []catalog.Entry
	for _, k := range keys {
		es = append(es, catalog.Entry{Date: k.Date, Stub: bucketStub(t, st, k, "")})
	}
	return es
}

func dayKeys(n int) []layout.Key {
	var ks []layout.Key
	d0 := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ks = append(ks, layout.Key{Venue: testKey.Venue, Symbol: testKey.Symbol, Date: d0.AddDate(0, 0, i).Format(layout.DateLayout)})
	}
	return ks
}

// statAll stats every listed partition's book and directory, as find does.
func statAll(t *testing.T, r *Resolver, k layout.Key) []string {
	t.Helper()
	dates, err := r.ReadDir(path.Dir(k.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dates {
		p := path.Join(path.Dir(k.Dir()), d.Name)
		es, err := r.ReadDir(p)
		if err != nil {
			t.Fatalf("readdir %s: %v", p, err)
		}
		if _, err := r.Stat(path.Join(p, layout.BookName)); err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		out = append(out, d.Name+":"+strings.Join(names(es), ","))
	}
	return out
}

// TestCatalogDescribesSymbol: with a catalog, listing and stat of every partition of a
// symbol fetch no stub (one catalog GET); a read confirms the version against its stub.
func TestCatalogDescribesSymbol(t *testing.T) {
	keys := dayKeys(5)
	e := newResearch(t, Options{}, keys...)
	putCatalog(t, e.store, testkit.PlacedHost, keys[0], entriesOf(t, e.store, keys...)...)
	st := e.r.Stats()
	got := statAll(t, e.r, keys[0])
	if len(got) != 5 || st.BucketStubs.Load() != 0 || st.CatalogGets.Load() != 1 || st.CatalogHits.Load() != 5 {
		t.Fatalf("%v: stubs fetched %d, catalogs %d, hits %d; want 0, 1, 5", got, st.BucketStubs.Load(), st.CatalogGets.Load(), st.CatalogHits.Load())
	}
	b, _ := readLogical(t, e.r, path.Join(keys[2].Dir(), layout.BookName))
	if !bytes.Equal(b, e.books[keys[2]]) || st.BucketStubs.Load() != 1 || st.CatalogStale.Load() != 0 {
		t.Fatalf("read through a catalog: equal %v, stubs %d, stale %d", bytes.Equal(b, e.books[keys[2]]), st.BucketStubs.Load(), st.CatalogStale.Load())
	}
	// The same listing without the catalog answers the same.
	r2, err := New(layout.Roots{Remote: e.store.URI("")}, Options{Store: e.store, BucketTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	e.store.Delete(context.Background(), catalog.Key(keys[0].Venue, keys[0].Symbol, testkit.PlacedHost))
	if want := statAll(t, r2, keys[0]); !slices.Equal(got, want) {
		t.Fatalf("with the catalog %v, from the stubs %v", got, want)
	}
	if r2.Stats().BucketStubs.Load() < 5 { // the walk's prefetch may fetch one twice
		t.Fatalf("without a catalog: %d stubs fetched, want one per partition", r2.Stats().BucketStubs.Load())
	}
}

// TestCatalogBypass: dates the catalog does not list, dates with a pending marker, and
// dates two catalogs disagree on are described from their stubs.
func TestCatalogBypass(t *testing.T) {
	keys := dayKeys(4)
	e := newResearch(t, Options{}, keys...)
	es := entriesOf(t, e.store, keys...)
	putCatalog(t, e.store, testkit.PlacedHost, keys[0], es[:3]...) // keys[3]: uploaded after the catalog
	other := *es[1].Stub
	other.Host = "capture-b"
	putCatalog(t, e.store, "capture-b", keys[0], catalog.Entry{Date: es[1].Date, Stub: &other}) // a second host claims keys[1]'s slot: conflict
	pk := catalog.PendingKey(keys[2], "capture-c")                                              // keys[2]: an upload in flight
	e.store.Put(context.Background(), pk, strings.NewReader("{}"), 2, objstore.PutOptions{})
	st := e.r.Stats()
	statAll(t, e.r, keys[0])
	if st.CatalogHits.Load() != 1 || st.BucketStubs.Load() < 3 || st.CatalogGets.Load() != 2 { // (a walk's prefetch may fetch a stub twice)
		t.Fatalf("hits %d, stubs %d, catalog gets %d; want 1 (keys[0]), 3, 2", st.CatalogHits.Load(), st.BucketStubs.Load(), st.CatalogGets.Load())
	}
	for _, k := range keys {
		if b, _ := readLogical(t, e.r, path.Join(k.Dir(), layout.BookName)); !bytes.Equal(b, e.books[k]) {
			t.Fatalf("%s differs", k)
		}
	}
	if st.CatalogStale.Load() != 0 {
		t.Fatalf("stale %d", st.CatalogStale.Load())
	}
}

// TestCatalogStale: a catalog that describes a version the bucket no longer holds as it
// says is detected at the first read, which serves the bucket's bytes; from then on the
// symbol is described from its stubs, until the catalog object changes.
func TestCatalogStale(t *testing.T) {
	keys := dayKeys(3)
	e := newResearch(t, Options{}, keys...)
	es := entriesOf(t, e.store, keys...)
	wrong := *es[1].Stub
	wrong.UncompressedSize++ // what a catalog written before a replacement would say
	wrong.Files = slices.Clone(wrong.Files)
	es[1].Stub = &wrong
	putCatalog(t, e.store, testkit.PlacedHost, keys[0], es...)
	st := e.r.Stats()
	p := path.Join(keys[1].Dir(), layout.BookName)
	if s, err := e.r.Stat(p); err != nil || s.Size != int64(len(e.books[keys[1]]))+1 {
		t.Fatalf("stat before any read answers from the catalog: %+v %v", s, err)
	}
	if b, _ := readLogical(t, e.r, p); !bytes.Equal(b, e.books[keys[1]]) {
		t.Fatal("the read did not serve the bucket's bytes")
	}
	if st.CatalogStale.Load() != 1 {
		t.Fatalf("stale %d, want 1", st.CatalogStale.Load())
	}
	if s, err := e.r.Stat(p); err != nil || s.Size != int64(len(e.books[keys[1]])) {
		t.Fatalf("stat after the read: %+v %v", s, err)
	}
	stubs := st.BucketStubs.Load()
	if _, err := e.r.Stat(path.Join(keys[2].Dir(), layout.BookName)); err != nil || st.BucketStubs.Load() != stubs+1 {
		t.Fatalf("another partition of the stale catalog's symbol: %v, stubs %d -> %d", err, stubs, st.BucketStubs.Load())
	}
	// A new resolver after the TTL still ignores the stale object...
	e.clock.Add(int64(2 * time.Minute))
	hits := st.CatalogHits.Load()
	if _, err := e.r.Stat(path.Join(keys[0].Dir(), layout.BookName)); err != nil || st.CatalogHits.Load() != hits {
		t.Fatalf("the stale catalog was used again: %v, hits %d -> %d", err, hits, st.CatalogHits.Load())
	}
	// ...and uses the catalog once it is rewritten.
	putCatalog(t, e.store, testkit.PlacedHost, keys[0], entriesOf(t, e.store, keys...)...)
	e.clock.Add(int64(2 * time.Minute))
	if _, err := e.r.Stat(path.Join(keys[0].Dir(), layout.BookName)); err != nil || st.CatalogHits.Load() != hits+1 {
		t.Fatalf("the rewritten catalog: %v, hits %d -> %d", err, hits, st.CatalogHits.Load())
	}
}

// TestCatalogDamaged: a catalog that does not parse is ignored.
func TestCatalogDamaged(t *testing.T) {
	keys := dayKeys(2)
	e := newResearch(t, Options{}, keys...)
	k := keys[0]
	e.store.Put(context.Background(), catalog.Key(k.Venue, k.Symbol, testkit.PlacedHost), strings.NewReader("garbage"), 7, objstore.PutOptions{})
	statAll(t, e.r, k)
	if st := e.r.Stats(); st.CatalogHits.Load() != 0 || st.BucketStubs.Load() != 2 {
		t.Fatalf("hits %d, stubs %d", st.CatalogHits.Load(), st.BucketStubs.Load())
	}
}

// TestCatalogOutage: a book read before the store goes away keeps serving from the caches
// past the TTL, whether its version came from a catalog or not.
func TestCatalogOutage(t *testing.T) {
	keys := dayKeys(2)
	e := newResearch(t, Options{}, keys...)
	putCatalog(t, e.store, testkit.PlacedHost, keys[0], entriesOf(t, e.store, keys...)...)
	ds := &downStore{Store: e.store}
	dc, err := diskcache.Open(path.Join(t.TempDir(), "cache"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(layout.Roots{Remote: e.store.URI("")}, Options{Store: ds, RemoteTimeout: time.Second, Now: e.r.opts.Now, DiskCache: dc})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := path.Join(keys[0].Dir(), layout.BookName)
	readLogical(t, r, p)
	if r.Stats().CatalogHits.Load() == 0 {
		t.Fatal("the catalog was not used")
	}
	ds.down.Store(true)
	e.clock.Add(int64(time.Hour))
	if got, _ := readLogical(t, r, p); !bytes.Equal(got, e.books[keys[0]]) {
		t.Fatal("during the outage: the book differs")
	}
	if _, err := r.Open(context.Background(), path.Join(keys[1].Dir(), layout.BookName)); !errors.Is(err, ErrRemoteFailed) {
		t.Fatalf("a book never read, during the outage: %v, want ErrRemoteFailed", err)
	}
}
