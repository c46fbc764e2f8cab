package fs

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// TestCollectorCountsGetResumes: a remote frame whose GET body is cut mid-stream is read
// whole (the store resumes the GET) and /metrics counts the resume as
// chronicle_objstore_get_resumes_total.
func TestCollectorCountsGetResumes(t *testing.T) {
	srv := s3test.Start(t)
	direct := testkit.S3Store(t, srv, srv.URI("chronicle"))
	p := srv.NewProxy()
	cfg := testkit.S3Config(srv)
	cfg.Endpoint, cfg.MaxBackoff = p.Endpoint, 20*time.Millisecond
	proxied, err := objstore.Open(context.Background(), srv.URI("chronicle"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer proxied.Close()

	roots := testkit.Roots(t)
	k := keyOn("2024-08-08")
	book := testkit.Book(t, k, 80000, testkit.Seed(t)) // ~5 MiB, 20 frames of 256 KiB
	testkit.PlaceCold(t, roots.Cold, k, book, 256<<10)
	testkit.PlaceRemote(t, roots.Cold, direct, k)
	roots.Remote = direct.URI("")
	res, err := tiers.New(roots, tiers.Options{Store: proxied, Readahead: -1, BucketTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	fsys, err := New(res, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h, err := res.Open(context.Background(), k.Dir()+"/book.q")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 4096)
	if _, err := h.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, book[:4096]) {
		t.Fatalf("first read: %v", err)
	}
	if n := resumes(t, fsys); n != 0 {
		t.Fatalf("chronicle_objstore_get_resumes_total = %v before any fault", n)
	}

	proxied.Close() // drop kept-alive connections: the fault arms the next one
	p.Break(s3test.Fault{Kind: s3test.Cut, After: 4096, Conns: 1})
	off := int64(len(book)) / 2
	if _, err := h.ReadAt(buf, off); err != nil || !bytes.Equal(buf, book[off:off+4096]) {
		t.Fatalf("read of a frame whose GET was cut: %v (or bytes differ)", err)
	}
	if p.Faults() != 1 {
		t.Fatalf("proxy injected %d faults; want 1", p.Faults())
	}
	if n := resumes(t, fsys); n != 1 {
		t.Fatalf("chronicle_objstore_get_resumes_total = %v; want 1", n)
	}
}

func resumes(t *testing.T, fsys *FS) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(fsys.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "chronicle_objstore_get_resumes_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("chronicle_objstore_get_resumes_total not exported")
	return 0
}
