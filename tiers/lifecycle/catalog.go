package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format/catalog"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// Catalogs and the Hive tree (docs/format/catalog.md, docs/format/hive.md). Each host
// keeps, per symbol, one catalog object listing every version it uploaded there with its
// stub, so that a research host describes the symbol's partitions in one GET. Catalogs
// are caches: before a host changes a partition's versions in the bucket (an upload, a
// publication, a rollback) it puts a pending marker, which readers treat as "do not trust
// the catalogs for this date", and it deletes the marker only after its catalog says what
// it did. The catalog is rebuilt from the cold tree's stubs and collision records (the
// host's own record of what it uploaded), never from the bucket.
//
// The same step publishes the Hive-style copy of each new served version's
// derived/book.parquet: the key's own version creates it only if absent, a merge replaces
// it (a merge is what readers are served), a host's own version (hosts/{id}) never
// publishes one.

// markPending puts k's pending marker for this host and notes k's symbol for the next
// catalog sync.
func (m *Manager) markPending(ctx context.Context, k layout.Key) error {
	m.touch(k.Venue, k.Symbol)
	body, _ := json.Marshal(struct {
		Host    string    `json:"host"`
		Started time.Time `json:"started"`
	}{m.host, m.now().UTC().Truncate(time.Millisecond)})
	body = append(body, '\n')
	key := catalog.PendingKey(k, m.host)
	if _, err := m.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{SHA256: objstore.SHA256Hex(body)}); err != nil {
		return fmt.Errorf("pending marker %s: %w", m.store.URI(key), err)
	}
	return nil
}

type symbolKey struct{ venue, symbol string }

func (m *Manager) touch(venue, symbol string) {
	m.mu.Lock()
	if m.touched == nil {
		m.touched = map[symbolKey]bool{}
	}
	m.touched[symbolKey{venue, symbol}] = true
	m.mu.Unlock()
}

// SyncCatalogs brings this host's catalogs in the bucket up to date: for every symbol
// whose versions this manager changed since the last sync (at the first sync of the
// process: every symbol of the cold tree, and every symbol where this host left pending
// markers) it publishes the Hive copies of new versions, rewrites the catalog if it
// differs from the cold tree's record, then deletes the host's pending markers there. Call
// it when no move is in flight (Run and Apply do, after their moves). Failures are logged
// and counted and retried at the next sync: a catalog is a cache, readers fall back to the
// partitions' own stubs.
func (m *Manager) SyncCatalogs(ctx context.Context) error {
	if m.store == nil || m.roots.Cold == "" {
		return nil
	}
	m.mu.Lock()
	todo := m.touched
	m.touched = nil
	first := !m.catalogsSynced
	m.mu.Unlock()
	markers := map[symbolKey][]string{} // pending marker keys of this host, when known
	if first {
		if todo == nil {
			todo = map[symbolKey]bool{}
		}
		syms, err := m.coldSymbols()
		if err != nil {
			m.retouch(todo)
			return err
		}
		for _, s := range syms {
			todo[s] = true
		}
		objs, err := m.store.List(ctx, catalog.Root+"/"+layout.LayoutVersion+"/")
		if err != nil {
			m.retouch(todo)
			m.met.CatalogFailures.Inc()
			return fmt.Errorf("list catalogs: %w", err)
		}
		for _, o := range objs {
			rel, _ := strings.CutPrefix(o.Key, catalog.Root+"/"+layout.LayoutVersion+"/")
			parts := strings.Split(rel, "/")
			if len(parts) != 3 {
				continue
			}
			if n, ok := catalog.ParseName(parts[2]); ok && n.Pending && n.Host == m.host {
				s := symbolKey{parts[0], parts[1]}
				todo[s] = true
				markers[s] = append(markers[s], o.Key)
			}
		}
	}
	var errs []error
	for _, s := range slices.SortedFunc(func(yield func(symbolKey) bool) {
		for s := range todo {
			if !yield(s) {
				return
			}
		}
	}, func(a, b symbolKey) int {
		return strings.Compare(a.venue+"/"+a.symbol, b.venue+"/"+b.symbol)
	}) {
		if err := ctx.Err(); err != nil {
			m.retouch(todo)
			return err
		}
		if err := m.syncSymbol(ctx, s, markers[s], first); err != nil {
			m.met.CatalogFailures.Inc()
			m.log.Warn("catalog not written; readers use the partitions' stubs until the next sync", "venue", s.venue, "symbol", s.symbol, "err", err)
			m.touch(s.venue, s.symbol)
			errs = append(errs, err)
			continue
		}
		delete(todo, s)
	}
	if len(errs) == 0 {
		m.mu.Lock()
		m.catalogsSynced = true
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (m *Manager) retouch(todo map[symbolKey]bool) {
	for s := range todo {
		m.touch(s.venue, s.symbol)
	}
}

// coldSymbols lists the symbols of the cold tree.
func (m *Manager) coldSymbols() ([]symbolKey, error) {
	root := filepath.Join(m.roots.Cold, layout.LayoutVersion)
	venues, err := m.fs.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []symbolKey
	for _, v := range venues {
		if !v.IsDir() || !layout.ValidName(v.Name()) {
			continue
		}
		syms, err := m.fs.ReadDir(filepath.Join(root, v.Name()))
		if err != nil {
			return nil, err
		}
		for _, s := range syms {
			if s.IsDir() && layout.ValidName(s.Name()) {
				out = append(out, symbolKey{v.Name(), s.Name()})
			}
		}
	}
	return out, nil
}

// localVersions builds this host's catalog of a symbol from its cold tree: each stub (the
// version at the key or in merged/) and each collision record's upload (hosts/{id}),
// published ones only (a version 1 stub has no copy in the bucket yet).
func (m *Manager) localVersions(s symbolKey) ([]catalog.Entry, error) {
	dir := filepath.Join(m.roots.Cold, layout.LayoutVersion, s.venue, s.symbol)
	dates, err := m.fs.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []catalog.Entry
	for _, d := range dates {
		k := layout.Key{Venue: s.venue, Symbol: s.symbol, Date: d.Name()}
		if !d.IsDir() || k.Validate() != nil {
			continue
		}
		pd := filepath.Join(dir, d.Name())
		if b, err := m.mv.readSmall(StubPath(pd), 1<<20); err == nil {
			st, err := stub.Parse(b, StubPath(pd))
			if err == nil {
				_, _, err = st.Validate(m.store, k, StubPath(pd))
			}
			switch {
			case err != nil:
				m.log.Warn("catalog: a stub that does not validate is left out", "path", StubPath(pd), "err", err)
			case st.Version >= 2:
				out = append(out, catalog.Entry{Date: k.Date, Slot: st.Slot, Stub: st})
			}
		}
		cp := filepath.Join(pd, layout.CollisionName)
		if b, err := m.mv.readSmall(cp, 1<<20); err == nil {
			c, err := stub.ParseCollision(b, cp)
			if err == nil && c.Uploaded != nil {
				_, _, err = c.Uploaded.Validate(m.store, k, cp)
			}
			if err != nil || c.Uploaded == nil {
				m.log.Warn("catalog: a collision record that does not validate is left out", "path", cp, "err", err)
				continue
			}
			out = append(out, catalog.Entry{Date: k.Date, Slot: c.Uploaded.Slot, Stub: c.Uploaded})
		}
	}
	return out, nil
}

// syncSymbol writes one symbol's catalog (see SyncCatalogs). markers are this host's
// pending markers there when the caller listed them; otherwise the symbol's catalog
// directory is listed.
func (m *Manager) syncSymbol(ctx context.Context, s symbolKey, markers []string, listed bool) error {
	entries, err := m.localVersions(s)
	if err != nil {
		return err
	}
	key := catalog.Key(s.venue, s.symbol, m.host)
	prev, err := m.readCatalog(ctx, key)
	if err != nil {
		return err
	}
	// Hive copies: carried over for versions the previous catalog already had, published
	// for the others.
	for i := range entries {
		e := &entries[i]
		if prev != nil {
			if pe := prev.Find(e.Date, e.Slot); pe != nil && sameVersion(pe.Stub, e.Stub) {
				e.Hive = pe.Hive
				continue
			}
		}
		hk, err := m.publishHive(ctx, s, e)
		if err != nil {
			return err
		}
		e.Hive = hk
	}
	if prev != nil {
		for _, pe := range prev.Versions {
			if pe.Hive == "" {
				continue
			}
			if i := slices.IndexFunc(entries, func(e catalog.Entry) bool { return e.Date == pe.Date && e.Slot == pe.Slot && e.Hive != "" }); i >= 0 {
				continue
			}
			if err := m.unpublishHive(ctx, pe); err != nil {
				return err
			}
		}
	}
	c := &catalog.Catalog{Host: m.host, Venue: s.venue, Symbol: s.symbol, WrittenAt: m.now().UTC().Truncate(time.Millisecond), Versions: entries}
	c.Sort()
	if prev == nil || !sameVersions(prev.Versions, c.Versions) {
		if len(c.Versions) == 0 && prev == nil {
			// Nothing to describe and nothing described: no object.
		} else if err := m.putCatalog(ctx, key, c); err != nil {
			return err
		}
	}
	if !listed {
		_, objs, err := m.store.ListDir(ctx, catalog.Dir(s.venue, s.symbol))
		if err != nil {
			return fmt.Errorf("list %s: %w", m.store.URI(catalog.Dir(s.venue, s.symbol)), err)
		}
		markers = nil
		for _, o := range objs {
			if n, ok := catalog.ParseName(path.Base(o.Key)); ok && n.Pending && n.Host == m.host {
				markers = append(markers, o.Key)
			}
		}
	}
	for _, mk := range markers {
		if err := m.store.Delete(ctx, mk); err != nil {
			return fmt.Errorf("delete pending marker %s: %w", m.store.URI(mk), err)
		}
	}
	return nil
}

// readCatalog fetches a catalog from the bucket; nil when there is none or it does not
// parse (it is rewritten then).
func (m *Manager) readCatalog(ctx context.Context, key string) (*catalog.Catalog, error) {
	info, err := m.store.Head(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("head %s: %w", m.store.URI(key), err)
	}
	if info.Size > catalog.MaxCompressed {
		m.log.Warn("catalog: oversized object is replaced", "uri", m.store.URI(key), "bytes", info.Size)
		return nil, nil
	}
	b := make([]byte, info.Size)
	if err := objstore.ReadRange(ctx, m.store, key, 0, b); err != nil {
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrOutOfRange) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", m.store.URI(key), err)
	}
	c, err := catalog.Parse(b, m.store.URI(key))
	if err != nil {
		m.log.Warn("catalog: unreadable object is replaced", "err", err)
		return nil, nil
	}
	if c.Host != m.host {
		m.log.Warn("catalog: another host's catalog under this host's name is replaced", "uri", m.store.URI(key), "host", c.Host)
		return nil, nil
	}
	return c, nil
}

func (m *Manager) putCatalog(ctx context.Context, key string, c *catalog.Catalog) error {
	b, err := c.Marshal()
	if err != nil {
		return fmt.Errorf("catalog %s: %w", m.store.URI(key), err)
	}
	sum := objstore.SHA256Hex(b)
	info, err := m.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{SHA256: sum})
	if err != nil {
		return fmt.Errorf("upload catalog %s: %w", m.store.URI(key), err)
	}
	if err := m.verifyRemote(ctx, key, int64(len(b)), sum, info); err != nil {
		return err
	}
	m.met.CatalogWrites.Inc()
	m.log.Info("catalog written", "uri", m.store.URI(key), "versions", len(c.Versions), "bytes", len(b))
	return nil
}

// sameVersion reports whether two stubs describe the same uploaded version.
func sameVersion(a, b *stub.Stub) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func sameVersions(a, b []catalog.Entry) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// publishHive puts the Hive copy of a version's derived/book.parquet and returns its key,
// "" when the version publishes none: it has no parquet, it is a host's own version, or
// (the key's own version) the Hive key already holds another version's file, a merge's.
func (m *Manager) publishHive(ctx context.Context, s symbolKey, e *catalog.Entry) (string, error) {
	f := e.Stub.File(layout.DerivedBook)
	if f == nil || (e.Slot != "" && e.Slot != stub.SlotMerged) {
		return "", nil
	}
	k := layout.Key{Venue: s.venue, Symbol: s.symbol, Date: e.Date}
	hk := layout.HiveRel(k)
	local := filepath.Join(m.dirOf(layout.Cold, k), filepath.FromSlash(layout.DerivedBook))
	ifAbsent := e.Slot == ""
	if ifAbsent {
		cond, err := m.store.Conditional(ctx)
		if err != nil {
			return "", err
		}
		if !cond {
			// No create-only Puts: look first (a merge racing this Put may be replaced
			// by the key's version until the merge's host syncs again).
			info, err := m.store.Head(ctx, hk)
			switch {
			case err == nil && info.SHA256 == f.SHA256:
				return hk, nil
			case err == nil:
				return "", nil
			case !errors.Is(err, objstore.ErrNotFound):
				return "", fmt.Errorf("head %s: %w", m.store.URI(hk), err)
			}
			ifAbsent = false
		}
	}
	got, err := m.putFile(ctx, hk, local, layout.DerivedBook, ifAbsent)
	if errors.Is(err, objstore.ErrExists) {
		return "", nil // a merge's parquet holds the key
	}
	if errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("hive: the version's parquet is not in the cold tree; not published", "path", local)
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("hive %s: %w", m.store.URI(hk), err)
	}
	if got.SHA256 != f.SHA256 || got.Size != f.Size {
		return "", fmt.Errorf("hive %s: %w: the cold tree's parquet (%d bytes, sha256 %s) is not the one the stub lists (%d, %s)",
			m.store.URI(hk), ErrUploadMismatch, got.Size, got.SHA256, f.Size, f.SHA256)
	}
	m.met.HivePublished.Inc()
	return hk, nil
}

// unpublishHive deletes the Hive copy of a version this host no longer has in the bucket
// (rolled back), if the key still holds that version's file.
func (m *Manager) unpublishHive(ctx context.Context, e catalog.Entry) error {
	f := e.Stub.File(layout.DerivedBook)
	if f == nil {
		return nil
	}
	info, err := m.store.Head(ctx, e.Hive)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("head %s: %w", m.store.URI(e.Hive), err)
	}
	if info.SHA256 != f.SHA256 {
		return nil
	}
	return m.store.Delete(ctx, e.Hive)
}
