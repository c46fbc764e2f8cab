package tiers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sync/atomic"

	"github.com/chronicle/chronicle/format/catalog"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// Catalogs (docs/format/catalog.md) spare a research host the stub of every partition it
// describes: the tier managers keep, per symbol and host, one object listing every version
// the host uploaded there with its stub. They are a cache, never the truth:
//
//   - only dates the symbol's listing shows are described (Locate asks the listing first),
//     so a partition uploaded after the catalog was written is fetched the usual way;
//   - a date with a pending marker (a host is changing its versions) is fetched the usual
//     way, as is a date two catalogs disagree on;
//   - a version described by a catalog is confirmed against the partition's own listing and
//     stub before any of its bytes is served (open); when they differ the catalog is stale:
//     it is dropped, and ignored until its object changes.
//
// Listings, stat and find therefore cost one GET per symbol and host, reads what they
// always cost.

// maxCachedCatalogs bounds the symbols whose catalogs are kept parsed (each about 1 KB per
// partition).
const maxCachedCatalogs = 4

// maxStaleCatalogs bounds the remembered stale catalog objects.
const maxStaleCatalogs = 4096

// symCatalog is what the catalogs of one symbol say, as far as it can be trusted.
type symCatalog struct {
	served map[string]*bstub // date -> the version the bucket serves, per the catalogs
	stale  atomic.Bool       // a version it described was not the bucket's: bypass it
	etags  []string          // the catalog objects it was built from (host, ETag, size)
}

// catalogObject names one catalog object as listed, for the stale set.
func catalogObject(o objstore.ObjectInfo) string {
	return fmt.Sprintf("%s@%s/%d", o.Key, o.ETag, o.Size)
}

// fromCatalog describes partition k from its symbol's catalogs, nil when they cannot say
// (no catalog, a pending marker, a stale or conflicting catalog, the store unreachable).
func (b *bucket) fromCatalog(k layout.Key) *bstub {
	sym := path.Join(layout.LayoutVersion, k.Venue, k.Symbol)
	c, ok, fresh := cached(b, &b.catalogs, sym)
	if !fresh {
		err := fill(b, &b.catalogs, "cat:"+sym, sym, func() (*symCatalog, error) { return b.loadCatalogs(k.Venue, k.Symbol) })
		if err != nil {
			return nil // the store is away: the usual path decides (and serves what it cached)
		}
		c, ok, _ = cached(b, &b.catalogs, sym)
	}
	if !ok || c == nil || c.stale.Load() {
		return nil
	}
	bs := c.served[k.Date]
	if bs == nil {
		b.count(func(s *Stats) { s.CatalogBypassed.Add(1) })
		return nil
	}
	b.count(func(s *Stats) { s.CatalogHits.Add(1) })
	return bs
}

// loadCatalogs lists a symbol's catalog directory and reads every catalog in it. nil (no
// error) when there is none to use.
func (b *bucket) loadCatalogs(venue, symbol string) (*symCatalog, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	dir := catalog.Dir(venue, symbol)
	_, objs, err := b.store.ListDir(ctx, dir)
	b.count(func(s *Stats) { s.BucketLists.Add(1) })
	if err != nil {
		return nil, fmt.Errorf("%w: list %s: %w", ErrRemoteFailed, b.store.URI(dir), err)
	}
	pending := map[string]bool{}
	var cats []objstore.ObjectInfo
	for _, o := range objs {
		n, ok := catalog.ParseName(path.Base(o.Key))
		switch {
		case !ok:
		case n.Pending:
			pending[n.Date] = true
		default:
			cats = append(cats, o)
		}
	}
	if len(cats) == 0 {
		return nil, nil
	}
	type version struct {
		s      *stub.Stub
		zk, ik string
	}
	dates := map[string]map[string]version{} // date -> slot -> version
	conflict := map[string]bool{}
	sc := &symCatalog{served: map[string]*bstub{}}
	for _, o := range cats {
		id := catalogObject(o)
		b.mu.Lock()
		bad := b.staleCats[id]
		b.mu.Unlock()
		if bad {
			continue
		}
		c, err := b.readCatalog(ctx, o)
		if err != nil {
			if errors.Is(err, ErrRemoteFailed) {
				return nil, err
			}
			b.log.Warn("catalog ignored: partitions of its symbol are described from their stubs", "err", err)
			b.markStale(id)
			continue
		}
		if c.Venue != venue || c.Symbol != symbol {
			b.log.Warn("catalog ignored: it describes another symbol", "uri", b.store.URI(o.Key), "venue", c.Venue, "symbol", c.Symbol)
			b.markStale(id)
			continue
		}
		sc.etags = append(sc.etags, id)
		for _, e := range c.Versions {
			k := layout.Key{Venue: venue, Symbol: symbol, Date: e.Date}
			zk, ik, err := e.Stub.Validate(b.store, k, b.store.URI(o.Key))
			if err != nil {
				conflict[e.Date] = true // one bad entry: that date goes the usual way
				continue
			}
			vs := dates[e.Date]
			if vs == nil {
				vs = map[string]version{}
				dates[e.Date] = vs
			}
			if _, dup := vs[e.Slot]; dup {
				conflict[e.Date] = true // two hosts claim one slot: one of them is stale
			}
			vs[e.Slot] = version{e.Stub, zk, ik}
		}
	}
	for date, vs := range dates {
		if pending[date] || conflict[date] {
			continue
		}
		hosts := false
		for slot := range vs {
			hosts = hosts || stub.SlotHost(slot) != ""
		}
		_, own := vs[""]
		var bs *bstub
		switch v, merged := vs[stub.SlotMerged]; {
		case merged:
			bs = &bstub{s: v.s, zk: v.zk, ik: v.ik, slot: stub.SlotMerged, hosts: hosts || own}
		case own:
			v := vs[""]
			bs = &bstub{s: v.s, zk: v.zk, ik: v.ik, hosts: hosts}
		default:
			bs = &bstub{hosts: true} // only hosts' own versions: the key's is not there (yet)
		}
		bs.cat = sc
		sc.served[date] = bs
	}
	return sc, nil
}

// readCatalog fetches and parses one catalog object.
func (b *bucket) readCatalog(ctx context.Context, o objstore.ObjectInfo) (*catalog.Catalog, error) {
	if o.Size > catalog.MaxCompressed {
		return nil, fmt.Errorf("%s: %w: %d bytes", b.store.URI(o.Key), catalog.ErrInvalid, o.Size)
	}
	raw := make([]byte, o.Size)
	b.count(func(s *Stats) { s.CatalogGets.Add(1) })
	if err := objstore.ReadRange(ctx, b.store, o.Key, 0, raw); err != nil {
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrOutOfRange) {
			return nil, fmt.Errorf("%s: %w: replaced or deleted since it was listed", b.store.URI(o.Key), catalog.ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrRemoteFailed, b.store.URI(o.Key), err)
	}
	return catalog.Parse(raw, b.store.URI(o.Key))
}

func (b *bucket) markStale(id string) {
	b.mu.Lock()
	if len(b.staleCats) >= maxStaleCatalogs {
		clear(b.staleCats)
	}
	b.staleCats[id] = true
	b.mu.Unlock()
}

// confirm checks a version a catalog described against the partition's own listing and
// stub (fetchStub: the truth), caches and returns the truth. When they differ the catalog
// is stale: its symbol's catalogs are bypassed from now on, and each of the objects it was
// built from is ignored until it changes.
func (b *bucket) confirm(k layout.Key, got *bstub) (*bstub, error) {
	truth, err := b.fetchStub(k)
	if errors.Is(err, ErrRemoteFailed) {
		// The store is away: what the caches hold keeps serving (research-hosts.md,
		// "Outages"); every byte is still checked against this version's stub hashes.
		return got, nil
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.stubs.put(k, truth, b.now())
	b.mu.Unlock()
	if !sameBstub(got, truth) {
		b.count(func(s *Stats) { s.CatalogStale.Add(1) })
		b.log.Warn("stale catalog: the partition's own stub differs from what the catalog said; the symbol's catalogs are bypassed until they change",
			"partition", k.Dir())
		if got.cat.stale.CompareAndSwap(false, true) {
			for _, id := range got.cat.etags {
				b.markStale(id)
			}
		}
	}
	return truth, nil
}

func sameBstub(a, b *bstub) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.slot != b.slot || a.hosts != b.hosts || (a.s == nil) != (b.s == nil) {
		return false
	}
	if a.s == nil {
		return true
	}
	ja, _ := json.Marshal(a.s)
	jb, _ := json.Marshal(b.s)
	return string(ja) == string(jb)
}
