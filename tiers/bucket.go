package tiers

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// The bucket is the catalog of the remote tier for hosts that see only it (research hosts,
// docs/research-hosts.md): no central manifest, the keys are the catalog. Directories are
// listed one level at a time (ListObjectsV2 with a delimiter), a partition is known by the
// copy of its stub that the tier manager uploads last, and both are cached for a TTL, so a
// tree of any size mounts at once and a partition uploaded later appears within the TTL.
// When the store cannot be reached, what was cached keeps serving (past its TTL); what was
// not fails with ErrRemoteFailed (EIO), and the next request tries the store again.

// Bounds of the bucket's caches (entries): a listing of 10,000 names is about 200 KB, a
// parsed stub about 1 KB. 16,384 stubs cover ten years of days of four symbols; a walk of a
// larger tree fetches them again the next time. (With 65,536, and before the mount bounded
// its inodes and ran the collector at GOGC 100, BenchmarkBucketScale's find over 100,000
// partitions peaked at 307 MiB; with all three, 117-129 MiB.)
const (
	maxCachedListings = 4096
	maxCachedStubs    = 16384
	maxCachedIndexes  = 1024 // parsed remote .idx (about 30 KB each for a 1 GiB book)
)

type bucket struct {
	store   objstore.Store
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time

	mu       sync.Mutex
	listings lru[string, []string]   // directory key ("v1/venue/") -> sorted subdirectory names
	stubs    lru[layout.Key, *bstub] // partitions, and partitions known to be absent (nil stub)
	versions lru[versionKey, *bstub] // single-host versions read below hosts/ (nil: absent)
	inflight map[string]*call
	stats    *Stats           // the resolver's counters (nil in tests that build a bucket alone)
	walks    map[string]*walk // symbol directory -> stub misses seen there
}

// A walk is a reader going through a symbol's partitions one after another (find, a
// backtest over every day): after prefetchAfter stub misses in one symbol within
// prefetchWindow, the stubs of all its listed dates are fetched prefetchWorkers at a time,
// so the walk stops paying one round trip per partition.
type walk struct {
	misses  int
	first   time.Time
	started bool
}

const (
	prefetchAfter   = 3
	prefetchWindow  = 10 * time.Second
	prefetchWorkers = 8
)

// bstub is a version of a partition as the bucket holds it: its stub, validated against
// the partition and the version's slot.
type bstub struct {
	s      *stub.Stub
	zk, ik string
	slot   string
	// hosts: the partition's directory lists hosts/, the single-host versions (this is the
	// served version and others exist).
	hosts bool
}

// Which version of a partition the bucket serves (docs/research-hosts.md, "Many hosts"):
// the merge of several hosts' captures when there is one (merged/), else the version of
// the host that claimed the key first (the key's own objects). Every single-host version
// stays readable below hosts/{id}/: the key holder's under its id, the others' from
// their own slots.

// versionKey names one version of a partition.
type versionKey struct {
	k    layout.Key
	slot string
}

type call struct {
	done chan struct{}
	err  error
}

func newBucket(store objstore.Store, ttl, timeout time.Duration) *bucket {
	return &bucket{store: store, ttl: ttl, timeout: timeout, now: time.Now,
		listings: newLRU[string, []string](maxCachedListings),
		stubs:    newLRU[layout.Key, *bstub](maxCachedStubs),
		versions: newLRU[versionKey, *bstub](maxCachedStubs / 4),
		inflight: map[string]*call{},
		walks:    map[string]*walk{},
	}
}

// once runs fetch for id unless another goroutine is already running it, then waits: the
// kernel may ask for one directory many times at once.
func (b *bucket) once(id string, fetch func() error) error {
	b.mu.Lock()
	if c, ok := b.inflight[id]; ok {
		b.mu.Unlock()
		<-c.done
		return c.err
	}
	c := &call{done: make(chan struct{})}
	b.inflight[id] = c
	b.mu.Unlock()
	c.err = fetch()
	b.mu.Lock()
	delete(b.inflight, id)
	b.mu.Unlock()
	close(c.done)
	return c.err
}

// cached looks k up in c: ok says it is there, fresh that it is also younger than the TTL.
func cached[K comparable, V any](b *bucket, c *lru[K, V], k K) (v V, ok, fresh bool) {
	b.mu.Lock()
	v, at, ok := c.get(k)
	b.mu.Unlock()
	return v, ok, ok && b.now().Sub(at) < b.ttl
}

// fill fetches the value of k through once (id names the fetch) and caches it in c.
func fill[K comparable, V any](b *bucket, c *lru[K, V], id string, k K, fetch func() (V, error)) error {
	return b.once(id, func() error {
		v, err := fetch()
		if err != nil {
			return err
		}
		b.mu.Lock()
		c.put(k, v, b.now())
		b.mu.Unlock()
		return nil
	})
}

func (b *bucket) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.timeout)
}

// subdirs lists the names below a logical directory of depth 0..2 (rel "v1",
// "v1/venue", "v1/venue/symbol").
func (b *bucket) subdirs(rel string) ([]string, error) {
	dir := rel + "/"
	for attempt := 0; ; attempt++ {
		names, ok, fresh := cached(b, &b.listings, dir)
		if fresh {
			return names, nil
		}
		err := fill(b, &b.listings, "ls:"+dir, dir, func() ([]string, error) {
			ctx, cancel := b.ctx()
			defer cancel()
			b.count(func(s *Stats) { s.BucketLists.Add(1) })
			subs, _, err := b.store.ListDir(ctx, dir)
			return subs, err
		})
		if err == nil && attempt == 0 {
			continue // read what the fetch stored
		}
		if err != nil {
			if ok {
				return names, nil // stale, but the store is away: keep serving what was seen
			}
			return nil, fmt.Errorf("%w: list %s: %w", ErrRemoteFailed, b.store.URI(dir), err)
		}
		return names, nil
	}
}

// partition returns k's stub from the bucket, nil when the bucket does not hold k.
func (b *bucket) partition(k layout.Key) (*bstub, error) {
	for attempt := 0; ; attempt++ {
		p, ok, fresh := cached(b, &b.stubs, k)
		if fresh {
			return p, nil
		}
		if attempt > 0 {
			return p, nil
		}
		b.noteMiss(k)
		err := fill(b, &b.stubs, "stub:"+k.Dir(), k, func() (*bstub, error) { return b.fetchStub(k) })
		if err != nil {
			if ok {
				return p, nil
			}
			return nil, err
		}
	}
}

// noteMiss counts a stub miss in k's symbol and starts the symbol's prefetch when a walk
// shows.
func (b *bucket) noteMiss(k layout.Key) {
	sym := path.Join(layout.LayoutVersion, k.Venue, k.Symbol)
	now := b.now()
	b.mu.Lock()
	w := b.walks[sym]
	if w == nil || now.Sub(w.first) > prefetchWindow {
		if len(b.walks) > maxCachedListings {
			clear(b.walks)
		}
		w = &walk{first: now, started: w != nil && w.started && now.Sub(w.first) <= b.ttl}
		b.walks[sym] = w
	}
	w.misses++
	start := w.misses >= prefetchAfter && !w.started
	if start {
		w.started = true
	}
	b.mu.Unlock()
	if start {
		go b.prefetch(k.Venue, k.Symbol)
	}
}

// prefetch fetches the stubs of every listed date of a symbol that is not cached.
func (b *bucket) prefetch(venue, symbol string) {
	dates, err := b.subdirs(path.Join(layout.LayoutVersion, venue, symbol))
	if err != nil {
		return
	}
	todo := make(chan layout.Key)
	var wg sync.WaitGroup
	for range prefetchWorkers {
		wg.Go(func() {
			for k := range todo {
				b.partition(k) // errors: the reader will meet them itself
			}
		})
	}
	for i, d := range dates {
		if i >= maxCachedStubs/2 {
			break // never evict what the walk just fetched
		}
		k := layout.Key{Venue: venue, Symbol: symbol, Date: d}
		b.mu.Lock()
		_, at, ok := b.stubs.peek(k)
		b.mu.Unlock()
		if ok && b.now().Sub(at) < b.ttl {
			continue
		}
		todo <- k
	}
	close(todo)
	wg.Wait()
}

func (b *bucket) count(f func(*Stats)) {
	if b.stats != nil {
		f(b.stats)
	}
}

// fetchStub finds the version of k the bucket serves: one listing of the partition's
// directory says which versions exist (and the size of the key's own stub copy), then the
// served one's stub is fetched. nil: none yet (an upload in progress or one that failed).
func (b *bucket) fetchStub(k layout.Key) (*bstub, error) {
	b.count(func(s *Stats) { s.BucketStubs.Add(1) })
	ctx, cancel := b.ctx()
	defer cancel()
	dir := k.Dir() + "/"
	subs, objs, err := b.store.ListDir(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("%w: list %s: %w", ErrRemoteFailed, b.store.URI(dir), err)
	}
	ownSize := int64(-1)
	for _, o := range objs {
		if o.Key == stub.ObjectKey(k) {
			ownSize = o.Size
		}
	}
	hosts := slices.Contains(subs, stub.HostsDir)
	if slices.Contains(subs, stub.SlotMerged) {
		bs, err := b.fetchVersion(ctx, k, stub.SlotMerged, -1)
		if err != nil || bs != nil {
			if bs != nil {
				bs.hosts = hosts || ownSize >= 0
			}
			return bs, err
		}
	}
	if ownSize < 0 {
		if hosts {
			return &bstub{hosts: true}, nil // only other hosts' versions: the key's is not there (yet)
		}
		return nil, nil
	}
	bs, err := b.fetchVersion(ctx, k, "", ownSize)
	if bs != nil {
		bs.hosts = hosts
	}
	return bs, err
}

// version returns the version of k in slot (cached like stubs), nil when there is none.
func (b *bucket) version(k layout.Key, slot string) (*bstub, error) {
	vk := versionKey{k, slot}
	for attempt := 0; ; attempt++ {
		v, ok, fresh := cached(b, &b.versions, vk)
		if fresh || attempt > 0 {
			return v, nil
		}
		err := fill(b, &b.versions, "version:"+stub.SlotDir(k, slot), vk, func() (*bstub, error) {
			ctx, cancel := b.ctx()
			defer cancel()
			return b.fetchVersion(ctx, k, slot, -1)
		})
		if err != nil {
			if ok {
				return v, nil
			}
			return nil, err
		}
	}
}

// hostVersions lists the ids below k's hosts/ directory: the hosts with a version of their
// own there, and the key holder (named by the key's stub).
func (b *bucket) hostVersions(k layout.Key) ([]string, error) {
	ids, err := b.subdirs(path.Join(k.Dir(), stub.HostsDir))
	if err != nil {
		return nil, err
	}
	own, err := b.version(k, "")
	if err != nil {
		return nil, err
	}
	if own != nil && own.s.Host != "" && !slices.Contains(ids, own.s.Host) {
		ids = append(slices.Clone(ids), own.s.Host)
		slices.Sort(ids)
	}
	return ids, nil
}

// hostVersion is host id's version of k: its own slot's, else the key's own if id holds it.
func (b *bucket) hostVersion(k layout.Key, id string) (*bstub, error) {
	if !layout.ValidName(id) {
		return nil, nil
	}
	v, err := b.version(k, stub.HostSlot(id))
	if err != nil || v != nil {
		return v, err
	}
	own, err := b.version(k, "")
	if err != nil || own == nil || own.s.Host != id {
		return nil, err
	}
	return own, nil
}

// fetchVersion reads and validates the stub copy of k's version in slot (size -1:
// unknown, asked with a HEAD). nil when there is none.
func (b *bucket) fetchVersion(ctx context.Context, k layout.Key, slot string, size int64) (*bstub, error) {
	key := stub.ObjectKeyIn(k, slot)
	if size < 0 {
		info, err := b.store.Head(ctx, key)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRemoteFailed, b.store.URI(key), err)
		}
		size = info.Size
	}
	if size > 1<<20 {
		return nil, fmt.Errorf("%s: %w: %d bytes", b.store.URI(key), stub.ErrInvalid, size)
	}
	raw := make([]byte, size)
	if err := objstore.ReadRange(ctx, b.store, key, 0, raw); err != nil {
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrOutOfRange) {
			return nil, nil // deleted (or replaced by a rollback) since it was listed
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrRemoteFailed, b.store.URI(key), err)
	}
	name := b.store.URI(key)
	s, err := stub.Parse(raw, name)
	if err != nil {
		return nil, err
	}
	if s.Slot != slot {
		return nil, fmt.Errorf("%s: %w: field slot: %q in the stub of slot %q", name, stub.ErrInvalid, s.Slot, slot)
	}
	zk, ik, err := s.Validate(b.store, k, name)
	if err != nil {
		return nil, err
	}
	return &bstub{s: s, zk: zk, ik: ik, slot: slot}, nil
}

// entries lists a directory inside a bucket partition's version: rest "" is the
// version's own directory.
func (p *bstub) entries(rest string) ([]Entry, bool) {
	var out []Entry
	seen := map[string]bool{}
	found := rest == ""
	prefix := ""
	if rest != "" {
		prefix = rest + "/"
	} else {
		if p.hosts {
			out = append(out, Entry{Name: stub.HostsDir, IsDir: true, Tier: layout.Remote})
		}
		if p.s == nil {
			return out, true
		}
		out = append(out, Entry{Name: layout.BookName, Tier: layout.Remote})
	}
	if p.s == nil {
		return nil, false
	}
	for _, f := range p.s.Files {
		sub, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			continue
		}
		found = true
		name, deeper := sub, false
		if i := strings.IndexByte(sub, '/'); i >= 0 {
			name, deeper = sub[:i], true
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, Entry{Name: name, IsDir: deeper, Tier: layout.Remote})
	}
	sortEntries(out)
	return out, found
}

// stat describes a path inside a bucket partition's version ("" is its directory).
func (p *bstub) stat(k layout.Key, rest, name, uri string) (Entry, bool) {
	e := Entry{Name: name, Tier: layout.Remote, Source: uri, Sealed: true}
	if p.s != nil {
		e.ModTime = p.s.UploadedAt
	}
	switch {
	case rest == "":
		e.IsDir = true
		return e, true
	case p.s == nil:
		return Entry{}, false
	case rest == layout.BookName:
		e.Size, e.HeaderSize = p.s.UncompressedSize, p.s.HeaderSize
		return e, true
	}
	if f := p.s.File(rest); f != nil {
		e.Size = f.Size
		return e, true
	}
	if _, ok := p.entries(rest); ok {
		e.IsDir = true
		return e, true
	}
	return Entry{}, false
}

// fileKey is the object key of a file inside a bucket partition's version.
func (p *bstub) fileKey(k layout.Key, rest string) string { return stub.FileKeyIn(k, p.slot, rest) }

// lru is a bounded map whose least recently used entries go first.
type lru[K comparable, V any] struct {
	max   int
	order *list.List
	m     map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	k  K
	v  V
	at time.Time
}

func newLRU[K comparable, V any](max int) lru[K, V] {
	return lru[K, V]{max: max, order: list.New(), m: map[K]*list.Element{}}
}

func (c *lru[K, V]) get(k K) (V, time.Time, bool) {
	el, ok := c.m[k]
	if !ok {
		var zero V
		return zero, time.Time{}, false
	}
	c.order.MoveToFront(el)
	it := el.Value.(*lruItem[K, V])
	return it.v, it.at, true
}

// peek is get without refreshing the entry's recency.
func (c *lru[K, V]) peek(k K) (V, time.Time, bool) {
	el, ok := c.m[k]
	if !ok {
		var zero V
		return zero, time.Time{}, false
	}
	it := el.Value.(*lruItem[K, V])
	return it.v, it.at, true
}

func (c *lru[K, V]) put(k K, v V, at time.Time) {
	if el, ok := c.m[k]; ok {
		it := el.Value.(*lruItem[K, V])
		it.v, it.at = v, at
		c.order.MoveToFront(el)
		return
	}
	c.m[k] = c.order.PushFront(&lruItem[K, V]{k: k, v: v, at: at})
	for c.order.Len() > c.max {
		el := c.order.Back()
		c.order.Remove(el)
		delete(c.m, el.Value.(*lruItem[K, V]).k)
	}
}
