package tiers

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers/objstore"
)

func s3Store(t testing.TB, srv *s3test.Server, cfg objstore.Config) objstore.Store {
	t.Helper()
	cfg.Endpoint, cfg.Region, cfg.AccessKey, cfg.SecretKey, cfg.PathStyle = srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey, true
	s, err := objstore.Open(context.Background(), srv.URI("chronicle"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRemoteOutage stops the S3 server under an open remote handle: reads of frames not yet
// cached fail with an error (a hang would stop the test at go test's timeout), and succeed
// again after restart. How fast they fail is the configured timeout's business, not this
// test's: timing belongs in benchmarks.
func TestRemoteOutage(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv, objstore.Config{RequestTimeout: 300 * time.Millisecond, MaxRetries: 1, MaxBackoff: 50 * time.Millisecond})
	roots := testkit.Roots(t)
	book := testkit.Book(t, testKey, 80000, 5) // ~5 MiB, 20 frames of 256 KiB
	testkit.PlaceCold(t, roots.Cold, testKey, book, 256<<10)
	testkit.PlaceRemote(t, roots.Cold, store, testKey)
	roots.Remote = store.URI("")
	const timeout = 2 * time.Second
	r, err := New(roots, Options{Store: store, RemoteTimeout: timeout, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := openBook(t, r)
	defer h.Close()
	buf := make([]byte, 4096)
	if _, err := h.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, book[:4096]) {
		t.Fatalf("first read: %v", err)
	}
	srv.Stop()
	start := time.Now()
	_, err = h.ReadAt(buf, int64(len(book))/2)
	took := time.Since(start)
	if err == nil {
		t.Fatal("read of an uncached frame succeeded with the server down")
	}
	if !errors.Is(err, ErrRemoteFailed) || !errors.Is(err, objstore.ErrUnavailable) {
		t.Errorf("error should wrap ErrRemoteFailed and objstore.ErrUnavailable: %v", err)
	}
	t.Logf("server down: error after %v: %v", took, err)
	srv.Restart()
	off := int64(len(book)) / 2
	if _, err := h.ReadAt(buf, off); err != nil || !bytes.Equal(buf, book[off:off+4096]) {
		t.Fatalf("read after restart: %v", err)
	}
	// A server that accepts connections but never answers (SIGSTOP) must not hang us either.
	srv.Pause()
	start = time.Now()
	_, err = h.ReadAt(buf, int64(len(book))-8192)
	took = time.Since(start)
	srv.Resume()
	if !errors.Is(err, ErrRemoteFailed) {
		t.Fatalf("paused server: err %v after %v, want ErrRemoteFailed", err, took)
	}
	t.Logf("server paused: error after %v", took)
	if _, err := h.ReadAt(buf, int64(len(book))-8192); err != nil {
		t.Fatalf("read after resume: %v", err)
	}
	// A fresh open (index fetch included) works too.
	h2, err := r.Open(context.Background(), testKey.Dir()+"/book.q")
	if err != nil {
		t.Fatal(err)
	}
	h2.Close()
}
