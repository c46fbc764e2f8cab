package tiers

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/layout"
)

// TestOpen: Open builds the store, both caches and the Resolver from the config, registers
// the store's metrics, refuses a root others can write, and leaves nothing open on error.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	roots := layout.Roots{Hot: filepath.Join(dir, "hot"), Warm: filepath.Join(dir, "warm"), Cold: filepath.Join(dir, "cold"),
		Remote: "file://" + filepath.Join(dir, "remote")}
	for _, d := range []string{roots.Hot, roots.Warm, roots.Cold, filepath.Join(dir, "remote")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.DiskCacheDir = filepath.Join(dir, "cache")
	reg := prometheus.NewRegistry()
	tr, err := Open(context.Background(), OpenOptions{Roots: roots, Config: cfg, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Store == nil || tr.Cache == nil || tr.Disk == nil || tr.Resolver == nil {
		t.Fatalf("opened %+v", tr)
	}
	if fi, err := os.Stat(cfg.DiskCacheDir); err != nil || !fi.IsDir() {
		t.Fatalf("disk cache dir: %v", err)
	}
	mf, err := reg.Gather()
	if err != nil || len(mf) != 1 || mf[0].GetName() != "chronicle_objstore_get_resumes_total" {
		t.Fatalf("metrics %v %v", mf, err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	so, err := Open(context.Background(), OpenOptions{Roots: roots, StoreOnly: true})
	if err != nil || so.Store == nil || so.Resolver != nil || so.Cache != nil {
		t.Fatalf("store only: %+v %v", so, err)
	}
	so.Close()

	if err := os.Chmod(roots.Warm, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), OpenOptions{Roots: roots, Config: cfg}); err == nil {
		t.Fatal("a world-writable root was accepted")
	}
	roots.AllowSharedRoots = true
	tr, err = Open(context.Background(), OpenOptions{Roots: roots, Config: cfg})
	if err != nil {
		t.Fatalf("allow_shared_roots: %v", err)
	}
	tr.Close()
}
