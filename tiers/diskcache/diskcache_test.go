package diskcache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestPutGetEvictReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := Open(dir, 3*(100+trailer))
	if err != nil {
		t.Fatal(err)
	}
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100) }
	for i := range 3 {
		if err := c.Put(fmt.Sprintf("key%d", i), val(i)); err != nil {
			t.Fatal(err)
		}
	}
	if b, ok := c.Get("key0"); !ok || !bytes.Equal(b, val(0)) { // key0 becomes the most recent
		t.Fatalf("get key0: %v", ok)
	}
	c.Put("key3", val(3)) // evicts key1, the least recently used
	if _, ok := c.Get("key1"); ok {
		t.Fatal("key1 survived eviction")
	}
	if c.Len() != 3 || c.Size() != 3*(100+trailer) || c.Evictions.Load() != 1 {
		t.Fatalf("len %d size %d evictions %d", c.Len(), c.Size(), c.Evictions.Load())
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode: %v %v", fi.Mode(), err)
	}

	// A restart finds every entry again.
	c2, err := Open(dir, 3*(100+trailer))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 3, 0} {
		if b, ok := c2.Get(fmt.Sprintf("key%d", i)); !ok || !bytes.Equal(b, val(i)) {
			t.Fatalf("after reopen, key%d: %v", i, ok)
		}
	}
	// A smaller bound evicts at open, least recently used first (key0 was just read).
	c3, err := Open(dir, 2*(100+trailer))
	if err != nil || c3.Len() != 2 {
		t.Fatalf("reopen smaller: %d entries, %v", c3.Len(), err)
	}
	if _, ok := c3.Get("key0"); !ok {
		t.Fatal("the most recently read entry was evicted")
	}
}

func TestDamagedEntryIsAMiss(t *testing.T) {
	c, err := Open(filepath.Join(t.TempDir(), "c"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	c.Put("abc", []byte("hello world"))
	p := c.path("abc")
	b, _ := os.ReadFile(p)
	b[3] ^= 1
	os.WriteFile(p, b, 0o600)
	if got, ok := c.Get("abc"); ok {
		t.Fatalf("damaged entry served: %q", got)
	}
	if c.Corrupt.Load() != 1 || c.Len() != 0 {
		t.Fatalf("corrupt %d len %d", c.Corrupt.Load(), c.Len())
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("damaged entry not removed: %v", err)
	}
	// Truncated (a crash mid-write of a file that was then renamed by hand) too.
	c.Put("abd", []byte("x"))
	os.WriteFile(c.path("abd"), []byte("x"), 0o600)
	if _, ok := c.Get("abd"); ok {
		t.Fatal("truncated entry served")
	}
}

func TestRefusesSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(dir, 0o777)
	os.Chmod(dir, 0o777)
	if _, err := Open(dir, 1<<20); !errors.Is(err, ErrUnsafeDir) {
		t.Fatalf("world-writable dir: %v", err)
	}
	if _, err := Open(t.TempDir(), 0); err == nil {
		t.Fatal("zero size accepted")
	}
	c, _ := Open(filepath.Join(t.TempDir(), "k"), 1<<20)
	for _, k := range []string{"", "../x", "A", "a/b"} {
		if c.Put(k, []byte("x")) == nil {
			t.Fatalf("key %q accepted", k)
		}
	}
}
