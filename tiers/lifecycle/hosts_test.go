package lifecycle_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/objstoretest"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// jitterStore sleeps a random moment (from its own seeded generator) before every call, so
// that two managers racing for one key interleave their operations differently each run.
type jitterStore struct {
	objstore.Store
	mu  sync.Mutex
	rng *rand.Rand
	max time.Duration
}

func (s *jitterStore) pause() {
	s.mu.Lock()
	d := time.Duration(s.rng.Int64N(int64(s.max)))
	s.mu.Unlock()
	time.Sleep(d)
}

func (s *jitterStore) Put(ctx context.Context, k string, r io.ReaderAt, n int64, o objstore.PutOptions) (objstore.ObjectInfo, error) {
	s.pause()
	return s.Store.Put(ctx, k, r, n, o)
}

func (s *jitterStore) Head(ctx context.Context, k string) (objstore.ObjectInfo, error) {
	s.pause()
	return s.Store.Head(ctx, k)
}

func (s *jitterStore) GetRange(ctx context.Context, k string, off, n int64) (io.ReadCloser, error) {
	s.pause()
	return s.Store.GetRange(ctx, k, off, n)
}

func (s *jitterStore) Delete(ctx context.Context, k string) error {
	s.pause()
	return s.Store.Delete(ctx, k)
}

func (s *jitterStore) List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error) {
	s.pause()
	return s.Store.List(ctx, prefix)
}

// TestTwoHostsOneKey: two tier managers (two trees, two host ids) upload the same
// partition key, with different books, to one versitygw bucket at the same moment, 50
// times (CHRONICLE_CRASH_RUNS) with random interleavings (seed printed), alternately with
// If-None-Match and with create-then-verify claims. Never an overwrite: the key's objects
// are exactly one host's, the other host keeps its partition local (collision record,
// status) and its version is in the bucket under hosts/{id}, byte for byte; both versions
// read back through a research host's resolver, which serves the key holder's at the
// partition itself (the rule); a second run moves nothing.
func TestTwoHostsOneKey(t *testing.T) {
	srv := s3test.Start(t)
	seed := testenv.Seed(t)
	runs := testenv.CrashRuns(t)
	k := key("2024-08-08")
	books := [2]lt.Partition{lt.NewPartition(t, k, 1500, 101), lt.NewPartition(t, k, 1600, 202)}
	hosts := [2]string{"capture-a", "capture-b"}
	wins := map[string]int{}
	for run := range runs {
		mode := [2]string{"if-none-match", "create-then-verify"}[run%2]
		rs := uint64(seed) + uint64(run)
		base := retryingStore(t, srv, fmt.Sprintf("hosts-%d", run))
		var envs [2]*lt.Env
		var ms [2]*lifecycle.Manager
		for i := range 2 {
			var st objstore.Store = &jitterStore{Store: base, rng: rand.New(rand.NewPCG(rs, uint64(i))), max: 3 * time.Millisecond}
			if mode == "create-then-verify" {
				st = lt.NoConditional(st)
			}
			envs[i] = lt.NewEnv(t, "", st)
			envs[i].Place(t, books[i], layout.Cold)
			ms[i] = newManager(t, envs[i], testConfig(), "2026-01-01T00:00:00Z", func(o *lifecycle.Options) { o.Host = hosts[i] })
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var res [2]lifecycle.Result
		var errs [2]error
		for i := range 2 {
			wg.Go(func() {
				<-start
				res[i], errs[i] = ms[i].Apply(context.Background(), nil)
			})
		}
		close(start)
		wg.Wait()
		what := fmt.Sprintf("run %d (%s, seed %d)", run, mode, seed)
		for i := range 2 {
			if errs[i] != nil || res[i].Failed != 0 || res[i].Moved != 1 {
				t.Fatalf("%s: %s apply: %+v %v", what, hosts[i], res[i], errs[i])
			}
		}
		holder := checkTwoHosts(t, what, base, envs, books, hosts, ms)
		wins[holder]++
	}
	t.Logf("%d runs: key held by %v", runs, wins)
}

// retryingStore opens prefix with retries, as chronicle-tier's default max_retries does:
// versitygw's posix backend prunes a claims/ directory emptied by one host's delete under
// the other host's Put, which gets a 409 ExistingObjectIsDirectory the retry settles
// (objstore TestS3PutRetriesExistingObjectIsDirectory); the lifecycle tests' stores have
// no retries, so that a fault shows at once.
func retryingStore(t *testing.T, srv *s3test.Server, prefix string) objstore.Store {
	t.Helper()
	cfg := lt.S3Config(srv)
	cfg.MaxRetries, cfg.MaxBackoff = 3, 20*time.Millisecond
	s, err := objstore.Open(context.Background(), srv.URI(prefix), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkTwoHosts checks one race's outcome and returns the host holding the key ("" for
// none: both gave it up as contended, create-then-verify only).
func checkTwoHosts(t *testing.T, what string, store objstore.Store, envs [2]*lt.Env, books [2]lt.Partition, hosts [2]string, ms [2]*lifecycle.Manager) string {
	t.Helper()
	ctx := context.Background()
	k := books[0].Key
	holder := ""
	for i := range 2 {
		d := testkit.PartDir(envs[i].Roots.Cold, k)
		_, stubErr := os.Stat(filepath.Join(d, layout.StubName))
		cb, colErr := os.ReadFile(filepath.Join(d, layout.CollisionName))
		switch {
		case stubErr == nil && colErr == nil:
			t.Fatalf("%s: %s has both a stub and a collision record", what, hosts[i])
		case stubErr == nil:
			if holder != "" {
				t.Fatalf("%s: both hosts hold the key", what)
			}
			holder = hosts[i]
			if cs := envs[i].Copies(k); len(cs) != 1 || cs[0] != "remote" {
				t.Fatalf("%s: the key holder %s keeps %v", what, hosts[i], cs)
			}
		case colErr == nil:
			c, err := stub.ParseCollision(cb, "collision")
			if err != nil || c.Host != hosts[i] || c.Uploaded.Slot != stub.HostSlot(hosts[i]) {
				t.Fatalf("%s: %s collision record: %+v %v", what, hosts[i], c, err)
			}
			if cs := envs[i].Copies(k); len(cs) != 1 || cs[0] != "cold-zst" {
				t.Fatalf("%s: %s kept %v, want its local .zst", what, hosts[i], cs)
			}
			p, err := ms[i].PlanOnly(ctx)
			if err != nil || len(p.Kept) != 1 || len(p.Moves) != 0 || p.Kept[0].Slot != stub.HostSlot(hosts[i]) {
				t.Fatalf("%s: %s plan after the collision: %+v %v", what, hosts[i], p, err)
			}
		default:
			t.Fatalf("%s: %s has neither a stub nor a collision record", what, hosts[i])
		}
		// Each host keeps serving its own bytes.
		envs[i].CheckReadable(t, []lt.Partition{books[i]})
	}
	if holder == "" && !strings.Contains(what, "create-then-verify") {
		t.Fatalf("%s: nobody holds the key with If-None-Match", what)
	}
	// The bucket: the key's objects are the holder's, every hosts/{id} the other's.
	objs, err := store.List(ctx, k.Dir()+"/")
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]int{}
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, k.Dir()+"/")
		switch {
		case strings.Contains("/"+rel, "/"+stub.ClaimsDir+"/"):
		case path.Base(rel) == layout.ClaimName:
			c, err := stub.ParseClaim(objstoretest.Object(t, store, o.Key), o.Key)
			slot := strings.TrimSuffix(strings.TrimSuffix(rel, layout.ClaimName), "/")
			want := holder
			if slot != "" {
				want = stub.SlotHost(slot)
			}
			if err != nil || c.Host != want || c.Slot != slot {
				t.Fatalf("%s: claim %s: %+v %v (want host %q)", what, o.Key, c, err, want)
			}
		case strings.HasPrefix(rel, stub.HostsDir+"/"):
			h, _, _ := strings.Cut(strings.TrimPrefix(rel, stub.HostsDir+"/"), "/")
			own[h]++
		default:
			own[""]++
		}
	}
	if holder == "" && own[""] > 0 {
		t.Fatalf("%s: nobody holds the key but it has %d objects", what, own[""])
	}
	res := researchResolver(t, store)
	for i := range 2 {
		vdir := path.Join(k.Dir(), stub.HostsDir, hosts[i])
		if got := readAll(t, res, path.Join(vdir, layout.BookName)); !bytes.Equal(got, books[i].Book) {
			t.Fatalf("%s: hosts/%s/book.q through a research host: %d bytes, not %s's %d", what, hosts[i], len(got), hosts[i], len(books[i].Book))
		}
		if got := readAll(t, res, path.Join(vdir, layout.MetaName)); !bytes.Equal(got, books[i].Aux[layout.MetaName]) {
			t.Fatalf("%s: hosts/%s/meta.json differs", what, hosts[i])
		}
		if hosts[i] != holder && own[hosts[i]] == 0 {
			t.Fatalf("%s: %s's version has no objects of its own slot", what, hosts[i])
		}
	}
	ents, err := res.ReadDir(path.Join(k.Dir(), stub.HostsDir))
	if err != nil || len(ents) != 2 || ents[0].Name != hosts[0] || ents[1].Name != hosts[1] {
		t.Fatalf("%s: hosts/ lists %+v %v", what, ents, err)
	}
	h, err := res.OpenBook(ctx, k)
	if holder == "" {
		if err == nil {
			h.Close()
			t.Fatalf("%s: nobody holds the key, yet its book opens", what)
		}
		return ""
	}
	if err != nil {
		t.Fatalf("%s: the research host cannot open the key's book: %v", what, err)
	}
	h.Close()
	want := books[0].Book
	if holder == hosts[1] {
		want = books[1].Book
	}
	if got := readAll(t, res, path.Join(k.Dir(), layout.BookName)); !bytes.Equal(got, want) {
		t.Fatalf("%s: the research host serves another book than the key holder %s's", what, holder)
	}
	// A second run of both changes nothing; the one that kept its partition local counted
	// the collision and reports the partition as kept.
	for i := range 2 {
		if r, err := ms[i].Apply(ctx, nil); err != nil || r.Moved != 0 || r.Failed != 0 {
			t.Fatalf("%s: %s second apply: %+v %v", what, hosts[i], r, err)
		}
		want := 0.0
		if hosts[i] != holder {
			want = 1
		}
		if c, k := metricValue(t, ms[i].Metrics().Collisions), metricValue(t, ms[i].Metrics().Kept); c != want || k != want {
			t.Fatalf("%s: %s collisions_total %v, collisions %v; want %v", what, hosts[i], c, k, want)
		}
	}
	return holder
}

// researchResolver sees only the bucket, as chronicle-fs on a research host does.
func researchResolver(t *testing.T, store objstore.Store) *tiers.Resolver {
	t.Helper()
	r, err := tiers.New(layout.Roots{Remote: store.URI("")}, tiers.Options{Store: store, RemoteTimeout: 10 * time.Second, BucketTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func readAll(t *testing.T, r *tiers.Resolver, logical string) []byte {
	t.Helper()
	h, err := r.Open(context.Background(), logical)
	if err != nil {
		t.Fatalf("open %s: %v", logical, err)
	}
	defer h.Close()
	b := make([]byte, h.Size())
	if n, err := h.ReadAt(b, 0); int64(n) != h.Size() {
		t.Fatalf("read %s: %d of %d bytes: %v", logical, n, h.Size(), err)
	}
	return b
}

// metricValue reads a counter's or gauge's value.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
