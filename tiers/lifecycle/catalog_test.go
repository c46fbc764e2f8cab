package lifecycle_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format/catalog"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/objstoretest"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// readCatalog fetches and parses host's catalog of k's symbol.
func readCatalog(t *testing.T, st objstore.Store, k layout.Key, host string) *catalog.Catalog {
	t.Helper()
	key := catalog.Key(k.Venue, k.Symbol, host)
	c, err := catalog.Parse(objstoretest.Object(t, st, key), key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pendingMarkers(t *testing.T, st objstore.Store) []string {
	objs, err := st.List(context.Background(), catalog.Root+"/")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		if n, ok := catalog.ParseName(filepath.Base(o.Key)); ok && n.Pending {
			out = append(out, o.Key)
		}
	}
	return out
}

// TestCatalogWritten: after an apply that uploads, the host's catalog of the symbol lists
// every version with the stub the bucket holds, the Hive copy of each parquet is in the
// bucket with the parquet's bytes, and no pending marker is left. A restart that finds a
// marker left by a crash deletes it; an unchanged catalog is not written again.
func TestCatalogWritten(t *testing.T) {
	ctx := context.Background()
	e := lt.NewEnv(t, "", testkit.FileStore(t))
	var parts []lt.Partition
	for i, d := range []string{"2023-01-02", "2023-01-03", "2023-01-04"} {
		p := lt.NewPartition(t, key(d), 800, uint64(i+1))
		e.Place(t, p, layout.Warm)
		parts = append(parts, p)
	}
	cfg := testConfig()
	cfg.Derive = lifecycle.DeriveParquet
	m := newManager(t, e, cfg, "2026-01-01T12:00:00Z", func(o *lifecycle.Options) { o.Host = "capture-a" })
	if res, err := m.Apply(ctx, nil); err != nil || res.Failed != 0 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	e.Check(t, parts)
	c := readCatalog(t, e.Store, parts[0].Key, "capture-a")
	if len(c.Versions) != len(parts) {
		t.Fatalf("catalog lists %d versions, want %d", len(c.Versions), len(parts))
	}
	for i, p := range parts {
		v := c.Versions[i]
		want, err := stub.Parse(objstoretest.Object(t, e.Store, stub.ObjectKey(p.Key)), "stub")
		if err != nil {
			t.Fatal(err)
		}
		wb, _ := want.Marshal()
		gb, _ := v.Stub.Marshal()
		if v.Date != p.Key.Date || v.Slot != "" || !bytes.Equal(wb, gb) {
			t.Fatalf("catalog entry %d: %s %q\n%s\nbucket stub:\n%s", i, v.Date, v.Slot, gb, wb)
		}
		if v.Hive != layout.HiveRel(p.Key) {
			t.Fatalf("%s: hive %q", p.Key, v.Hive)
		}
		local, err := os.ReadFile(filepath.Join(testkit.PartDir(e.Roots.Cold, p.Key), "derived", "book.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		if got := objstoretest.Object(t, e.Store, v.Hive); !bytes.Equal(got, local) {
			t.Fatalf("%s: the Hive object differs from derived/book.parquet", p.Key)
		}
	}
	if mk := pendingMarkers(t, e.Store); len(mk) != 0 {
		t.Fatalf("pending markers left: %v", mk)
	}
	writes := counter(m.Metrics().CatalogWrites)

	// A marker a crash left behind, then a restart with nothing to move.
	mk := catalog.PendingKey(parts[1].Key, "capture-a")
	if _, err := e.Store.Put(ctx, mk, strings.NewReader("{}\n"), 3, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t, e, cfg, "2026-01-01T13:00:00Z", func(o *lifecycle.Options) { o.Host = "capture-a" })
	if res, err := m2.Apply(ctx, nil); err != nil || res.Moved != 0 {
		t.Fatalf("second apply: %+v %v", res, err)
	}
	if mk := pendingMarkers(t, e.Store); len(mk) != 0 {
		t.Fatalf("pending markers after a restart: %v", mk)
	}
	if w := counter(m2.Metrics().CatalogWrites); w != 0 || writes != 1 {
		t.Fatalf("catalog writes: first run %v (want 1), restart %v (want 0: unchanged)", writes, w)
	}
	// A damaged catalog is rewritten.
	key := catalog.Key(parts[0].Key.Venue, parts[0].Key.Symbol, "capture-a")
	e.Store.Put(ctx, key, strings.NewReader("garbage"), 7, objstore.PutOptions{})
	m3 := newManager(t, e, cfg, "2026-01-01T14:00:00Z", func(o *lifecycle.Options) { o.Host = "capture-a" })
	m3.Apply(ctx, nil)
	if c := readCatalog(t, e.Store, parts[0].Key, "capture-a"); len(c.Versions) != len(parts) {
		t.Fatalf("rewritten catalog lists %d versions", len(c.Versions))
	}
}

// TestHiveKeepsTheMerge: the key's own version never replaces a Hive object another
// version (a merge) published.
func TestHiveKeepsTheMerge(t *testing.T) {
	ctx := context.Background()
	e := lt.NewEnv(t, "", testkit.FileStore(t))
	p := lt.NewPartition(t, key("2023-01-02"), 800, 9)
	e.Place(t, p, layout.Warm)
	merge := []byte("the merge's parquet")
	hk := layout.HiveRel(p.Key)
	if _, err := e.Store.Put(ctx, hk, bytes.NewReader(merge), int64(len(merge)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Derive = lifecycle.DeriveParquet
	m := newManager(t, e, cfg, "2026-01-01T12:00:00Z", func(o *lifecycle.Options) { o.Host = "capture-a" })
	if res, err := m.Apply(ctx, nil); err != nil || res.Failed != 0 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if got := objstoretest.Object(t, e.Store, hk); !bytes.Equal(got, merge) {
		t.Fatal("the key's version replaced the merge's Hive object")
	}
	if c := readCatalog(t, e.Store, p.Key, "capture-a"); len(c.Versions) != 1 || c.Versions[0].Hive != "" {
		t.Fatalf("catalog: %+v", c.Versions)
	}
}
