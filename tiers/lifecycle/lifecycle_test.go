package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func key(date string) layout.Key {
	return layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: date}
}

func clock(s string) func() time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return t }
}

func testConfig() lifecycle.Config {
	c := lifecycle.DefaultConfig()
	c.BlockSize = 64 << 10
	c.HotSettle = time.Hour
	return c
}

func newManager(t testing.TB, e *lt.Env, cfg lifecycle.Config, now string, opts ...func(*lifecycle.Options)) *lifecycle.Manager {
	t.Helper()
	o := lifecycle.Options{Config: cfg, Roots: e.Roots, Store: e.Store, Now: clock(now), Host: "capture-test"}
	for _, f := range opts {
		f(&o)
	}
	m, err := lifecycle.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPoliciesEndToEnd ages partitions through every tier in one apply, leaves young and
// growing partitions alone, and keeps every partition readable with identical bytes.
func TestPoliciesEndToEnd(t *testing.T) {
	for _, backend := range []string{"file", "none"} {
		t.Run(backend, func(t *testing.T) {
			var store objstore.Store
			if backend == "file" {
				store = testkit.FileStore(t)
			}
			e := lt.NewEnv(t, "", store)
			old := lt.NewPartition(t, key("2024-08-08"), 3000, 1)   // hot, sealed: all the way down
			warm := lt.NewPartition(t, key("2025-06-01"), 2000, 2)  // warm, old enough for cold only
			young := lt.NewPartition(t, key("2025-12-31"), 1000, 3) // warm, day not over 24 h ago
			cold := lt.NewPartition(t, key("2023-01-02"), 1500, 4)  // cold, due for remote
			e.Place(t, old, layout.Hot)
			e.Place(t, warm, layout.Warm)
			e.Place(t, young, layout.Warm)
			e.Place(t, cold, layout.Cold)
			e.PlaceGrowing(t, key("2025-12-30"), layout.Hot, 500) // never moved while unsealed
			e.Ignore[key("2025-12-30")] = true

			reg := prometheus.NewRegistry()
			cfg := testConfig()
			if store == nil { // the pure-Go encoder here, the build's default (libzstd with cgo) above
				cfg.ZstdEncoder = qzst.EncoderGo
			}
			m := newManager(t, e, cfg, "2026-01-01T12:00:00Z", func(o *lifecycle.Options) { o.Registerer = reg })
			plan, err := m.PlanOnly(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			wantPlanned := 3 // hot->warm, warm->cold, cold->remote
			if store == nil {
				wantPlanned = 2
			}
			if len(plan.Moves) != wantPlanned || len(plan.Waiting) != 1 {
				t.Fatalf("first plan: %d moves, %d waiting; want %d and 1:\n%+v", len(plan.Moves), len(plan.Waiting), wantPlanned, plan)
			}
			res, err := m.Apply(context.Background(), nil)
			if err != nil || res.Failed != 0 {
				t.Fatalf("apply: %+v %v", res, err)
			}
			got := e.Check(t, []lt.Partition{old, warm, young, cold})
			wantRemote := layout.Remote
			if store == nil {
				wantRemote = layout.Cold
			}
			want := map[layout.Key]layout.Tier{old.Key: wantRemote, warm.Key: layout.Cold, young.Key: layout.Warm, cold.Key: wantRemote}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s in %s, want %s", k, got[k], w)
				}
			}
			if cs := e.Copies(key("2025-12-30")); len(cs) != 1 || cs[0] != "hot" {
				t.Fatalf("growing hot partition moved: %v", cs)
			}
			wantMoves := 5.0
			if store == nil {
				wantMoves = 3
			}
			if n := counter(m.Metrics().Moves.WithLabelValues("hot_to_warm", "ok")) +
				counter(m.Metrics().Moves.WithLabelValues("warm_to_cold", "ok")) +
				counter(m.Metrics().Moves.WithLabelValues("cold_to_remote", "ok")); n != wantMoves {
				t.Fatalf("moves_total ok = %v, want %v", n, wantMoves)
			}
			// A second apply has nothing to do.
			res, err = m.Apply(context.Background(), nil)
			if err != nil || res.Moved != 0 || res.Failed != 0 {
				t.Fatalf("second apply: %+v %v", res, err)
			}
		})
	}
}

// TestStatus reports partitions per tier, ratios and pending moves.
func TestStatus(t *testing.T) {
	e := lt.NewEnv(t, "", testkit.FileStore(t))
	a := lt.NewPartition(t, key("2024-08-08"), 4000, 1)
	b := lt.NewPartition(t, key("2024-08-09"), 4000, 2)
	c := lt.NewPartition(t, key("2024-08-10"), 4000, 3)
	e.Place(t, a, layout.Warm)
	e.Place(t, b, layout.Cold)
	e.Place(t, c, layout.Remote)
	m := newManager(t, e, testConfig(), "2024-09-01T00:00:00Z")
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byTier := map[string]lifecycle.TierStatus{}
	for _, ts := range st.Tiers {
		byTier[ts.Tier] = ts
	}
	if byTier["warm"].Partitions != 1 || byTier["cold"].Partitions != 1 || byTier["remote"].Partitions != 1 || byTier["hot"].Partitions != 0 {
		t.Fatalf("partitions per tier: %+v", st.Tiers)
	}
	if byTier["warm"].LogicalBytes != int64(len(a.Book)) || byTier["cold"].LogicalBytes != int64(len(b.Book)) || byTier["remote"].LogicalBytes != int64(len(c.Book)) {
		t.Fatalf("logical bytes: %+v", st.Tiers)
	}
	if r := byTier["cold"].Ratio(); r < 2 {
		t.Fatalf("cold ratio %.2f: the generated book should compress", r)
	}
	if len(st.Plan.Moves) != 1 || st.Plan.Moves[0].Policy != lifecycle.WarmToCold {
		t.Fatalf("pending: %+v", st.Plan.Moves)
	}
	var sb strings.Builder
	if err := st.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"remote", "pending moves: 1", "warm->cold", a.Key.String()} {
		if !strings.Contains(sb.String(), w) {
			t.Fatalf("status text lacks %q:\n%s", w, sb.String())
		}
	}
}

// TestRetryBackoff: a failed upload keeps the local copy, is counted, and is retried only
// after the backoff.
func TestRetryBackoff(t *testing.T) {
	e := lt.NewEnv(t, "", testkit.FileStore(t))
	p := lt.NewPartition(t, key("2023-03-03"), 2000, 9)
	e.Place(t, p, layout.Cold)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	failing := &failStore{Store: e.Store, fail: true}
	cfg := testConfig()
	cfg.RetryMin, cfg.RetryMax = time.Minute, 4*time.Minute
	m, err := lifecycle.New(lifecycle.Options{Config: cfg, Roots: e.Roots, Store: failing, Now: func() time.Time { return now }, Host: "capture-test"})
	if err != nil {
		t.Fatal(err)
	}
	for i, wantWait := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
		res, err := m.Apply(context.Background(), nil)
		if err != nil || res.Failed != 1 || res.Moved != 0 {
			t.Fatalf("attempt %d: %+v %v", i, res, err)
		}
		e.CheckReadable(t, []lt.Partition{p})
		if cs := e.Copies(p.Key); len(cs) != 1 || cs[0] != "cold-zst" {
			t.Fatalf("attempt %d: local copy not kept: %v", i, cs)
		}
		plan, _ := m.PlanOnly(context.Background())
		if len(plan.Moves) != 0 || len(plan.Waiting) != 1 {
			t.Fatalf("attempt %d: plan during backoff: %+v", i, plan)
		}
		now = now.Add(wantWait - time.Second)
		if plan, _ := m.PlanOnly(context.Background()); len(plan.Moves) != 0 {
			t.Fatalf("attempt %d: retried before %v", i, wantWait)
		}
		now = now.Add(time.Second)
	}
	if n := counter(m.Metrics().UploadFailures); n != 4 {
		t.Fatalf("upload failures counted %v, want 4", n)
	}
	failing.fail = false
	res, err := m.Apply(context.Background(), nil)
	if err != nil || res.Moved != 1 {
		t.Fatalf("after the store recovered: %+v %v", res, err)
	}
	if e.Check(t, []lt.Partition{p})[p.Key] != layout.Remote {
		t.Fatal("not remote after a successful retry")
	}
}

type failStore struct {
	objstore.Store
	fail bool
}

func (s *failStore) Put(ctx context.Context, key string, r io.ReaderAt, size int64, o objstore.PutOptions) (objstore.ObjectInfo, error) {
	if s.fail {
		return objstore.ObjectInfo{}, fmt.Errorf("put %s: %w", key, objstore.ErrUnavailable)
	}
	return s.Store.Put(ctx, key, r, size, o)
}

// TestRecoverLeftoversAndTemps: temporaries of the manager go at once, foreign ones only
// when stale; a directory without a book beside the partition's real tier is removed.
func TestRecoverLeftoversAndTemps(t *testing.T) {
	e := lt.NewEnv(t, "", nil)
	p := lt.NewPartition(t, key("2024-08-08"), 1000, 1)
	e.Place(t, p, layout.Warm)
	hotDir := testkit.PartDir(e.Roots.Hot, p.Key)
	coldDir := testkit.PartDir(e.Roots.Cold, p.Key)
	os.MkdirAll(filepath.Join(coldDir, "index"), 0o755)
	os.WriteFile(filepath.Join(coldDir, "meta.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(coldDir, layout.IdxName), []byte("half a move"), 0o644)
	os.WriteFile(filepath.Join(coldDir, "index", ".x.tmp-tier-abc"), []byte("t"), 0o644)
	os.MkdirAll(hotDir, 0o755)
	warmDir := testkit.PartDir(e.Roots.Warm, p.Key)
	own := filepath.Join(warmDir, ".book.q.tmp-tier-123456")
	fresh := filepath.Join(warmDir, ".book.q.tmp-999") // a writer's, in flight
	stale := filepath.Join(warmDir, "index", "x.tmp")
	for _, f := range []string{own, fresh, stale} {
		os.WriteFile(f, []byte("tmp"), 0o644)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	m := newManager(t, e, testConfig(), "2024-08-08T12:00:00Z")
	rep, err := m.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Temps != 3 || rep.Leftovers != 2 {
		t.Fatalf("report %+v, want 3 temps (2 own, 1 stale) and 2 leftover dirs (cold, hot)", rep)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a fresh temporary file of another writer was removed: %v", err)
	}
	for _, gone := range []string{own, stale, coldDir, hotDir} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s should be gone: %v", gone, err)
		}
	}
	os.Remove(fresh)
	e.Check(t, []lt.Partition{p})
}

// TestConflictLeftAlone: two intact copies with different bytes are reported, never deleted.
func TestConflictLeftAlone(t *testing.T) {
	e := lt.NewEnv(t, "", nil)
	a := lt.NewPartition(t, key("2024-08-08"), 1000, 1)
	b := lt.NewPartition(t, key("2024-08-08"), 1000, 2)
	e.Place(t, a, layout.Hot)
	e.Place(t, b, layout.Warm)
	m := newManager(t, e, testConfig(), "2024-08-09T12:00:00Z")
	rep, err := m.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Conflicts != 1 || len(rep.Errors) != 1 || !errors.Is(rep.Errors[0], lifecycle.ErrConflict) {
		t.Fatalf("report %+v", rep)
	}
	if cs := e.Copies(a.Key); len(cs) != 2 {
		t.Fatalf("copies %v: a conflict must not delete anything", cs)
	}
	e.CheckReadable(t, []lt.Partition{a})
}

func TestConfigValidate(t *testing.T) {
	if err := lifecycle.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*lifecycle.Config){
		func(c *lifecycle.Config) { c.Concurrency = 0 },
		func(c *lifecycle.Config) { c.Derive = "csv" },
		func(c *lifecycle.Config) { c.ZstdLevel = 30 },
		func(c *lifecycle.Config) { c.ZstdEncoder = "lz4" },
		func(c *lifecycle.Config) { c.RetryMax = c.RetryMin / 2 },
		func(c *lifecycle.Config) { c.RemoteVerify = "trust" },
		func(c *lifecycle.Config) { c.ColdAfter = -time.Hour },
	} {
		c := lifecycle.DefaultConfig()
		mut(&c)
		if err := c.Validate(); !errors.Is(err, lifecycle.ErrInvalidConfig) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}

// counter reads one counter's value.
func counter(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue()
}
