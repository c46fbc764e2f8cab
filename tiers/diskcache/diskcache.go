// Package diskcache keeps bytes fetched from the object store on local disk, bounded in
// bytes and evicted least recently used first, so that a research host reading the same
// days again does not fetch them again. It survives restarts: entries are plain files,
// found again at Open. Each entry carries an XXH64 of its bytes; an entry that does not
// match (a torn write, a bad disk) is removed and reported as a miss, never served.
//
// Keys are the caller's (content-addressed: a frame is named by the SHA-256 of its object
// and its number, a small file by its own SHA-256), so an entry never goes stale.
package diskcache

import (
	"cmp"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/chronicle/chronicle/internal/fileutil"
)

// ErrUnsafeDir: the cache directory is shared with other users (it holds what this host
// read from the bucket, and what it finds there is served).
var ErrUnsafeDir = errors.New("cache directory must be private to its owner")

const trailer = 8 // XXH64 of the payload, little endian

// Cache is a bounded on-disk LRU. It is safe for concurrent use.
type Cache struct {
	dir string
	max int64

	mu    sync.Mutex
	lru   *list.List // of *entry, most recent first
	index map[string]*list.Element
	size  int64

	Hits, Misses, Evictions, Corrupt atomic.Int64
}

type entry struct {
	key  string
	size int64 // on disk, trailer included
}

// Open opens (creating, mode 0700) the cache in dir, bounded to max bytes, and indexes
// what a previous run left there, oldest first by modification time. It refuses a
// directory that other users can write or that belongs to another user.
func Open(dir string, max int64) (*Cache, error) {
	if max <= 0 {
		return nil, fmt.Errorf("disk cache %s: size %d, want > 0", dir, max)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s: %w: owned by uid %d, this process runs as %d", dir, ErrUnsafeDir, sys.Uid, os.Geteuid())
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w: mode %v (want 0700)", dir, ErrUnsafeDir, st.Mode().Perm())
	}
	c := &Cache{dir: dir, max: max, lru: list.New(), index: map[string]*list.Element{}}
	type found struct {
		key   string
		size  int64
		mtime int64
	}
	var all []found
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		if fileutil.IsTemp(name) || strings.HasPrefix(name, ".") { // a write that did not finish
			os.Remove(p)
			return nil
		}
		if !validKey(name) || filepath.Base(filepath.Dir(p)) != shard(name) {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			all = append(all, found{name, fi.Size(), fi.ModTime().UnixNano()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b found) int { return cmp.Compare(b.mtime, a.mtime) })
	for _, f := range all {
		c.index[f.key] = c.lru.PushBack(&entry{key: f.key, size: f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Size is the bytes the cache holds now.
func (c *Cache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// Len is the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

func validKey(k string) bool {
	if len(k) < 3 || len(k) > 200 {
		return false
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

func shard(key string) string { return key[:2] }

func (c *Cache) path(key string) string { return filepath.Join(c.dir, shard(key), key) }

// Get returns the bytes stored under key, or false.
func (c *Cache) Get(key string) ([]byte, bool) {
	if !validKey(key) {
		return nil, false
	}
	c.mu.Lock()
	el, ok := c.index[key]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		c.Misses.Add(1)
		return nil, false
	}
	b, err := os.ReadFile(c.path(key))
	if err == nil && len(b) >= trailer {
		payload := b[:len(b)-trailer]
		if binary.LittleEndian.Uint64(b[len(b)-trailer:]) == xxhash.Sum64(payload) {
			c.Hits.Add(1)
			now := time.Now()
			os.Chtimes(c.path(key), now, now) // the recency a restart orders by
			return payload, true
		}
	}
	// Gone or damaged: forget it, and let the caller fetch again.
	c.Corrupt.Add(1)
	c.Misses.Add(1)
	c.remove(key)
	return nil, false
}

// Put stores b under key (written to a temporary name, then renamed: a crash leaves the
// old entry or none). Errors (a full disk) only mean the entry is not cached.
func (c *Cache) Put(key string, b []byte) error {
	if !validKey(key) {
		return fmt.Errorf("disk cache: invalid key %q", key)
	}
	size := int64(len(b)) + trailer
	if size > c.max {
		return nil
	}
	c.mu.Lock()
	_, exists := c.index[key]
	c.mu.Unlock()
	if exists {
		return nil
	}
	dir := filepath.Join(c.dir, shard(key))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := fileutil.CreateTemp(c.path(key))
	if err != nil {
		return err
	}
	var sum [trailer]byte
	binary.LittleEndian.PutUint64(sum[:], xxhash.Sum64(b))
	_, err = tmp.Write(b)
	if err == nil {
		_, err = tmp.Write(sum[:])
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(key))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[key]; !ok {
		c.index[key] = c.lru.PushFront(&entry{key: key, size: size})
		c.size += size
	}
	c.evictLocked()
	return nil
}

func (c *Cache) remove(key string) {
	c.mu.Lock()
	if el, ok := c.index[key]; ok {
		c.size -= el.Value.(*entry).size
		c.lru.Remove(el)
		delete(c.index, key)
	}
	c.mu.Unlock()
	os.Remove(c.path(key))
}

func (c *Cache) evictLocked() {
	for c.size > c.max {
		el := c.lru.Back()
		if el == nil {
			return
		}
		e := el.Value.(*entry)
		c.lru.Remove(el)
		delete(c.index, e.key)
		c.size -= e.size
		c.Evictions.Add(1)
		os.Remove(c.path(e.key))
	}
}
