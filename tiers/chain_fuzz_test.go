package tiers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// FuzzRemoteChain feeds the remote read path a mutated stub and a mutated .idx together,
// as a hostile or damaged tree would: stub -> index (fetched, hash-checked, parsed) ->
// reader over the true .zst. Every open either fails with one of the resolver's typed
// errors or serves the original book; nothing panics or allocates what a size field
// claims before checking it.
func FuzzRemoteChain(f *testing.F) {
	roots := testkit.Roots(f)
	store := testkit.FileStore(f)
	book := testkit.Book(f, testKey, 3000, 7)
	testkit.PlaceCold(f, roots.Cold, testKey, book, 4096)
	s := testkit.PlaceRemote(f, roots.Cold, store, testKey)
	sb, _ := s.Marshal()
	_, ik := stub.Keys(testKey)
	ib := make([]byte, s.Idx.Size)
	if err := objstore.ReadRange(context.Background(), store, ik, 0, ib); err != nil {
		f.Fatal(err)
	}
	f.Add(sb, ib)
	f.Add(bytes.Replace(sb, []byte(`"size": `), []byte(`"size": 9`), 1), ib)
	f.Add(sb, ib[:len(ib)/2])
	stubPath := filepath.Join(testkit.PartDir(roots.Cold, testKey), layout.StubName)
	roots.Remote = store.URI("")
	f.Fuzz(func(t *testing.T, sb, ib []byte) {
		if len(sb) > 1<<16 || len(ib) > 1<<20 {
			return
		}
		if err := os.WriteFile(stubPath, sb, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(context.Background(), ik, bytes.NewReader(ib), int64(len(ib)), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		r, err := New(roots, Options{Store: store, RemoteTimeout: 5 * time.Second, BucketTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		h, err := r.Open(context.Background(), testKey.Dir()+"/book.q")
		if err != nil {
			var ce *qzst.CorruptError
			if !errors.Is(err, stub.ErrInvalid) && !errors.Is(err, objstore.ErrChecksumMismatch) && !errors.Is(err, ErrRemoteFailed) &&
				!errors.Is(err, objstore.ErrOutsideRoot) && !errors.As(err, &ce) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		defer h.Close()
		got := make([]byte, min(h.Size(), int64(len(book))+1))
		n, err := h.ReadAt(got, 0)
		if err != nil && err != io.EOF {
			return // a typed read error: the frames did not match the lying index
		}
		if !bytes.Equal(got[:n], book[:min(n, len(book))]) || n > len(book) {
			t.Fatalf("served %d bytes that are not the book", n)
		}
	})
}
