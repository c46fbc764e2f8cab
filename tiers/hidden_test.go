package tiers

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
)

// TestHiddenAndTemporaryNeverServed: hidden and temporary files (writers' files in flight,
// the tier lock, the refinery's state, an upload intent) are neither listed nor served,
// even when a reader names them directly, in a partition, its subdirectories or a tier
// root.
func TestHiddenAndTemporaryNeverServed(t *testing.T) {
	roots := testkit.Roots(t)
	k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}
	testkit.PlacePlain(t, roots.Warm, k, testkit.Book(t, k, 100, 1))
	dir := testkit.PartDir(roots.Warm, k)
	names := []string{
		".book.q.tmp-123", ".meta.json.tmp-9", ".secret", "book.q.tmp-1", "notes.tmp",
		".book.q.zst.remote.json.tmp-tier-intent", "index/.time.idx.tmp-1", "index/.hidden",
	}
	for _, n := range names {
		testkit.WriteFileSync(t, filepath.Join(dir, filepath.FromSlash(n)), []byte("not for readers"))
	}
	testkit.WriteFileSync(t, filepath.Join(roots.Warm, layout.LayoutVersion, ".chronicle-tier.lock"), []byte("1\n"))
	testkit.WriteFileSync(t, filepath.Join(roots.Warm, layout.LayoutVersion, "binance-perp", ".state"), []byte("x"))
	r := newResolver(t, roots, nil)
	paths := []string{"v1/.chronicle-tier.lock", "v1/binance-perp/.state"}
	for _, n := range names {
		paths = append(paths, path.Join(k.Dir(), n))
	}
	for _, p := range paths {
		h, err := r.Open(context.Background(), p)
		if err == nil {
			h.Close()
			t.Errorf("%s served", p)
			continue
		}
		// (the mount answers both with ENOENT: fs/errors.go)
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrInvalidPath) {
			t.Errorf("%s: %v, want not found or invalid", p, err)
		}
	}
	for _, d := range []string{k.Dir(), path.Join(k.Dir(), "index"), "v1", "v1/binance-perp"} {
		es, err := r.ReadDir(d)
		if err != nil {
			t.Fatalf("readdir %s: %v", d, err)
		}
		for _, e := range es {
			if layout.IsTemp(e.Name) {
				t.Errorf("%s lists %s", d, e.Name)
			}
		}
	}
}
