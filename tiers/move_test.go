package tiers

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

// moveLocal moves one partition file between local tiers the way the tier manager does:
// copy to a temporary name, fsync, rename into place, then delete the source.
func moveLocal(t testing.TB, from, to string, k layout.Key) {
	t.Helper()
	src, dst := testkit.PartDir(from, k), testkit.PartDir(to, k)
	os.MkdirAll(dst, 0o755)
	// Everything but the book first, the book last: the resolver looks for the book.
	for _, name := range []string{layout.MetaName, layout.BookName} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dst, "."+name+".tmp-1")
		f, _ := os.Create(tmp)
		f.Write(b)
		f.Sync()
		f.Close()
		if err := os.Rename(tmp, filepath.Join(dst, name)); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(src, layout.BookName))
	os.RemoveAll(src)
}

// TestReadWhileMoving runs readers in a loop while one partition cycles hot -> warm -> cold
// -> remote -> hot: every read must succeed and return the original bytes.
func TestReadWhileMoving(t *testing.T) {
	seed := testenv.Seed(t)
	book := testkit.Book(t, testKey, 40000, seed) // ~2.5 MiB
	roots := testkit.Roots(t)
	store := testkit.FileStore(t)
	r := newResolver(t, roots, store)
	testkit.PlacePlain(t, roots.Hot, testKey, book)
	logical := testKey.Dir() + "/book.q"

	var reads, fails atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	reader := func(id int64, keepOpen bool) {
		defer wg.Done()
		rng := rand.New(rand.NewSource(seed + id))
		var h Handle
		for {
			select {
			case <-stop:
				if h != nil {
					h.Close()
				}
				return
			default:
			}
			if h == nil || !keepOpen {
				var err error
				if h, err = r.Open(context.Background(), logical); err != nil {
					fails.Add(1)
					t.Errorf("reader %d: open: %v", id, err)
					return
				}
			}
			off := rng.Int63n(int64(len(book)))
			buf := make([]byte, 1+rng.Intn(256<<10))
			n, err := h.ReadAt(buf, off)
			want := book[off:min(int64(len(book)), off+int64(len(buf)))]
			if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want) {
				fails.Add(1)
				t.Errorf("reader %d (%s): ReadAt(%d,%d) = %d, %v; bytes equal %v", id, h.Tier(), len(buf), off, n, err, bytes.Equal(buf[:n], want))
				return
			}
			reads.Add(1)
			if !keepOpen {
				h.Close()
				h = nil
			}
		}
	}
	wg.Add(3)
	go reader(1, false)
	go reader(2, false)
	go reader(3, true) // one handle held across every move
	cycles := 4
	for c := 0; c < cycles && !t.Failed(); c++ {
		time.Sleep(20 * time.Millisecond)
		moveLocal(t, roots.Hot, roots.Warm, testKey)
		time.Sleep(20 * time.Millisecond)
		testkit.PlaceCold(t, roots.Cold, testKey, book, 256<<10)
		os.Remove(filepath.Join(testkit.PartDir(roots.Warm, testKey), layout.BookName))
		os.RemoveAll(testkit.PartDir(roots.Warm, testKey))
		time.Sleep(20 * time.Millisecond)
		testkit.PlaceRemote(t, roots.Cold, store, testKey)
		time.Sleep(20 * time.Millisecond)
		testkit.PlacePlain(t, roots.Hot, testKey, book)
		os.Remove(filepath.Join(testkit.PartDir(roots.Cold, testKey), layout.StubName))
		os.RemoveAll(testkit.PartDir(roots.Cold, testKey))
	}
	close(stop)
	wg.Wait()
	t.Logf("%d reads across %d move cycles, %d failures, %d re-resolves", reads.Load(), cycles, fails.Load(), r.Stats().Retries.Load())
	if reads.Load() == 0 {
		t.Fatal("no reads happened")
	}
}
