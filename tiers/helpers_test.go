package tiers

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// testKey is the partition most tests use.
var testKey = testkit.Key

func newResolver(t testing.TB, roots layout.Roots, store objstore.Store) *Resolver {
	t.Helper()
	if store != nil {
		roots.Remote = store.URI("")
	}
	r, err := New(roots, Options{Store: store, RemoteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openBook opens testKey's logical book.q through r; the caller closes it.
func openBook(tb testing.TB, r *Resolver) Handle {
	tb.Helper()
	h, err := r.Open(context.Background(), testKey.Dir()+"/book.q")
	if err != nil {
		tb.Fatal(err)
	}
	return h
}
