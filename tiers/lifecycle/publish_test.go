package lifecycle_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
)

// TestPublishOldStubs: a partition uploaded before the bucket held the partition's other
// files (a version 1 stub, only .zst and .idx in the bucket) gets them, and the bucket's
// stub copy, on the next run; its local stub becomes the current version. Nothing moves
// twice.
func TestPublishOldStubs(t *testing.T) {
	ctx := context.Background()
	e := lt.NewEnv(t, "", testkit.FileStore(t))
	p := lt.NewPartition(t, key("2023-01-02"), 1500, 4)
	e.Place(t, p, layout.Cold)
	m := newManager(t, e, testConfig(), "2026-01-01T12:00:00Z")
	if res, err := m.Apply(ctx, nil); err != nil || res.Moved != 1 {
		t.Fatalf("upload: %+v %v", res, err)
	}
	e.Check(t, []lt.Partition{p})

	// Turn it into what an older chronicle-tier left: a version 1 stub, a bucket without
	// the partition's files and stub copy.
	sp := filepath.Join(testkit.PartDir(e.Roots.Cold, p.Key), layout.StubName)
	b, err := os.ReadFile(sp)
	if err != nil {
		t.Fatal(err)
	}
	s, err := stub.Parse(b, sp)
	if err != nil || len(s.Files) == 0 {
		t.Fatalf("stub after upload: %+v %v", s, err)
	}
	for _, f := range s.Files {
		if err := e.Store.Delete(ctx, stub.FileKey(p.Key, f.Name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Store.Delete(ctx, stub.ObjectKey(p.Key)); err != nil {
		t.Fatal(err)
	}
	s.Files, s.Version, s.Host, s.Slot, s.Claim = nil, 1, "", "", ""
	b, _ = s.Marshal()
	if err := os.WriteFile(sp, b, 0o644); err != nil {
		t.Fatal(err)
	}

	m = newManager(t, e, testConfig(), "2026-01-01T13:00:00Z")
	plan, err := m.PlanOnly(ctx)
	if err != nil || len(plan.Moves) != 1 || plan.Moves[0].Policy != lifecycle.Publish {
		t.Fatalf("plan: %+v %v", plan, err)
	}
	if res, err := m.Apply(ctx, nil); err != nil || res.Moved != 1 || res.Failed != 0 {
		t.Fatalf("publish: %+v %v", res, err)
	}
	e.Check(t, []lt.Partition{p}) // the bucket holds every file and the stub copy
	if b, _ := os.ReadFile(sp); !strings.Contains(string(b), `"version": 3`) {
		t.Fatalf("local stub not rewritten:\n%s", b)
	}
	if plan, err := m.PlanOnly(ctx); err != nil || len(plan.Moves) != 0 {
		t.Fatalf("after publishing, plan: %+v %v", plan, err)
	}
}
