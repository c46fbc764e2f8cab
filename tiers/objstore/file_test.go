package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/objstoretest"
	"github.com/chronicle/chronicle/tiers/objstore"
)

func openFile(t *testing.T, dir string) objstore.Store {
	t.Helper()
	st, err := objstore.Open(context.Background(), "file://"+dir, objstore.Config{})
	if err != nil {
		t.Fatalf("open file store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestFileConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return openFile(t, filepath.Join(t.TempDir(), "remote"))
	})
}

func TestFileCreatesRootAndIgnoresTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	st := openFile(t, dir)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	ctx := context.Background()
	if _, err := st.Put(ctx, "x/obj", bytes.NewReader([]byte("hello")), 5, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A crash mid-Put leaves a temp file beside the object; it is invisible.
	if err := os.WriteFile(filepath.Join(dir, "x", ".objstore-tmp-123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(ctx, "")
	if err != nil || len(list) != 1 || list[0].Key != "x/obj" {
		t.Fatalf("list = %+v, %v; want only x/obj", list, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "x"))
	if len(entries) != 2 {
		t.Fatalf("put left %d entries in x/, want the object and our fake temp", len(entries))
	}
}

// Head must not trust a cached digest once the file changed behind its back.
func TestFileHeadNoticesOutsideChange(t *testing.T) {
	dir := t.TempDir()
	st := openFile(t, dir)
	ctx := context.Background()
	info, err := st.Put(ctx, "k", bytes.NewReader([]byte("original")), 8, objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte("changed!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	head, err := st.Head(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if head.SHA256 == info.SHA256 || head.Size != 9 {
		t.Fatalf("head after outside change = %+v; still reports the old digest", head)
	}
	sum := sha256.Sum256([]byte("changed!!"))
	if head.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("head sha256 %s, want digest of the new content", head.SHA256)
	}
}

func TestFileKeyConflict(t *testing.T) {
	st := openFile(t, t.TempDir())
	ctx := context.Background()
	if _, err := st.Put(ctx, "a", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := st.Put(ctx, "a/b", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{})
	if !errors.Is(err, objstore.ErrKeyConflict) {
		t.Fatalf("put a/b over object a: %v; want ErrKeyConflict", err)
	}
	if _, err := st.Put(ctx, "c/d", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Put(ctx, "c", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{})
	if !errors.Is(err, objstore.ErrKeyConflict) {
		t.Fatalf("put c over directory c/: %v; want ErrKeyConflict", err)
	}
	if err := st.Delete(ctx, "c"); err != nil {
		t.Fatalf("delete of a key that is only a directory: %v", err)
	}
	if _, err := st.Head(ctx, "c/d"); err != nil {
		t.Fatalf("c/d must survive delete of c: %v", err)
	}
}
