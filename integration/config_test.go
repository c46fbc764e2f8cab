package integration

import (
	"path/filepath"
	"testing"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/feed"
	chfs "github.com/chronicle/chronicle/fs"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// TestDeployConfigLoads decodes the shipped example config into every daemon's sections:
// a renamed key in any package breaks this test instead of an operator's start-up.
func TestDeployConfigLoads(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(t), "deploy", "chronicle.toml")
	roots := layout.DefaultRoots()
	remote := objstore.Config{}
	lg := config.DefaultLog()
	fd := feed.Defaults()
	fsc := chfs.DefaultConfig()
	lc := lifecycle.DefaultConfig()
	ec := etl.Defaults()
	var host config.Host
	err := config.Load(path, map[string]any{"tiers": &roots, "remote": &remote, "log": &lg, "feed": &fd, "fs": &fsc, "tier": &lc, "etl": &ec, "host": &host})
	if err != nil {
		t.Fatal(err)
	}
	if roots.Warm != "/mnt/nvme-warm/chronicle" || len(fd.Symbols) != 2 || lc.ColdAfter.Hours() != 24 || fsc.MetricsAddr != "127.0.0.1:9467" {
		t.Fatalf("decoded %+v %+v %+v %+v", roots, fd.Symbols, lc.ColdAfter, fsc.MetricsAddr)
	}
	if err := lc.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := ec.Validate(); err != nil || ec.Output != "warm" || ec.MetricsAddr != "127.0.0.1:9465" {
		t.Fatalf("[etl] %+v: %v", ec, err)
	}
	if _, _, err := config.ResolveHost(host.ID); err != nil {
		t.Fatalf("[host] %+v: %v", host, err)
	}
}
