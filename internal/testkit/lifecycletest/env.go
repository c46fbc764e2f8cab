package lifecycletest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/objstoretest"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// WriteBook writes a sealed canonical book of n generated records for k to p.
func WriteBook(p string, k layout.Key, n int64, seed uint64) error {
	day, err := k.Time()
	if err != nil {
		return err
	}
	h := format.NewBookHeader(k.Venue, k.Symbol, 1001, format.DateOf(day))
	a, err := format.Create(p, h, format.Options{ChunkSize: min(64<<20, max(1<<20, n*format.BookRecordSize))})
	if err != nil {
		return err
	}
	g := books.NewGen(seed, 1001, day)
	var r format.BookRecord
	for i := int64(0); i < n; i++ {
		g.Next(&r)
		if err := a.AppendBook(&r); err != nil {
			a.Close()
			return err
		}
	}
	return a.Seal()
}

// BookBytes returns a sealed book of n records for k.
func BookBytes(t testing.TB, k layout.Key, n int, seed uint64) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "book.q")
	if err := WriteBook(p, k, int64(n), seed); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Partition is one partition's expected content: its book and the files beside it.
type Partition struct {
	Key  layout.Key
	Book []byte
	Aux  map[string][]byte // relative path -> bytes: meta.json, index/..., derived/...
}

// NewPartition generates a partition of n records with a meta.json, an index/ file and a
// derived/ file, all of which must travel with it.
func NewPartition(t testing.TB, k layout.Key, n int, seed uint64) Partition {
	rng := rand.New(rand.NewPCG(seed, 7))
	idx := make([]byte, 100+rng.IntN(3000))
	for i := range idx {
		idx[i] = byte(rng.Uint32())
	}
	return Partition{Key: k, Book: BookBytes(t, k, n, seed), Aux: map[string][]byte{
		layout.MetaName:       fixtureMeta(k, seed),
		"index/by_time.idx":   idx,
		"derived/notes.txt":   fmt.Appendf(nil, "derived for %s\n", k),
		"index/sub/levels.ix": []byte("levels\n"),
	}}
}

// fixtureMeta is a partition's meta.json, made unique by the seed.
func fixtureMeta(k layout.Key, seed uint64) []byte {
	m := meta.New(k.Venue, k.Date, k.Symbol, 1)
	m.Source = meta.Source{Pipeline: "lifecycletest", Venue: k.Venue, Note: fmt.Sprintf("seed %d", seed)}
	return meta.MustMarshal(m)
}

// Env is a set of tier roots in a temporary directory, and optionally a remote store.
type Env struct {
	Dir   string
	Roots layout.Roots
	Store objstore.Store
	// Ignore names partitions Check does not know (for example one still being written).
	Ignore map[layout.Key]bool
}

// NewEnv makes empty hot, warm and cold roots under dir (t.TempDir() when empty).
func NewEnv(t testing.TB, dir string, store objstore.Store) *Env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e := &Env{Dir: dir, Store: store, Ignore: map[layout.Key]bool{}, Roots: layout.Roots{
		Hot: filepath.Join(dir, "hot"), Warm: filepath.Join(dir, "warm"), Cold: filepath.Join(dir, "cold")}}
	for _, r := range []string{e.Roots.Hot, e.Roots.Warm, e.Roots.Cold} {
		if err := os.MkdirAll(r, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if store != nil {
		e.Roots.Remote = store.URI("")
	}
	return e
}

// S3Store opens prefix in the server's bucket.
func S3Store(t testing.TB, srv *s3test.Server, prefix string) objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), srv.URI(prefix), S3Config(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// S3Config is the [remote] configuration the tier manager's tests use: no retries, so a
// fault shows at once.
func S3Config(srv *s3test.Server) objstore.Config {
	c := testkit.S3Config(srv)
	c.RequestTimeout, c.MaxRetries, c.MaxBackoff = 5*time.Second, -1, 0
	return c
}

// Place puts p into tier as the other components would: book.q in hot or warm; a
// transcoded .zst and .idx in cold; uploaded objects and a stub for remote. The aux
// files go beside the book (the cold directory for remote).
func (e *Env) Place(t testing.TB, p Partition, tier layout.Tier) {
	t.Helper()
	root := e.Roots.Local(tier)
	if tier == layout.Remote {
		root = e.Roots.Cold
	}
	d := testkit.PartDir(root, p.Key)
	for name, b := range p.Aux {
		testkit.WriteFileSync(t, filepath.Join(d, filepath.FromSlash(name)), b)
	}
	if tier == layout.Hot || tier == layout.Warm {
		testkit.WriteFileSync(t, filepath.Join(d, layout.BookName), p.Book)
		return
	}
	if _, err := qzst.Transcode(context.Background(), bytes.NewReader(p.Book), int64(len(p.Book)),
		filepath.Join(d, layout.ZstName), filepath.Join(d, layout.IdxName), qzst.Options{BlockSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if tier == layout.Remote {
		if e.Store == nil {
			t.Fatal("Place remote: no store")
		}
		testkit.PlaceRemote(t, e.Roots.Cold, e.Store, p.Key)
	}
}

// PlaceGrowing puts an unsealed (still being written) book.q into tier.
func (e *Env) PlaceGrowing(t testing.TB, k layout.Key, tier layout.Tier, records int) {
	t.Helper()
	d := testkit.PartDir(e.Roots.Local(tier), k)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	day, _ := k.Time()
	a, err := format.Create(filepath.Join(d, layout.BookName), format.NewBookHeader(k.Venue, k.Symbol, 1001, format.DateOf(day)), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g := books.NewGen(1, 1001, day)
	var r format.BookRecord
	for i := 0; i < records; i++ {
		g.Next(&r)
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil { // closed without sealing: the writer may come back
		t.Fatal(err)
	}
}

// Resolver returns a resolver over the environment.
func (e *Env) Resolver(t testing.TB) *tiers.Resolver {
	t.Helper()
	r, err := tiers.New(e.Roots, tiers.Options{Store: e.Store, RemoteTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Copies lists where k's book is held, as "hot", "warm", "cold", "cold-zst", "remote".
func (e *Env) Copies(k layout.Key) []string {
	var out []string
	has := func(root, name string) bool {
		st, err := os.Lstat(filepath.Join(testkit.PartDir(root, k), name))
		return err == nil && st.Mode().IsRegular()
	}
	if has(e.Roots.Hot, layout.BookName) {
		out = append(out, "hot")
	}
	if has(e.Roots.Warm, layout.BookName) {
		out = append(out, "warm")
	}
	if has(e.Roots.Cold, layout.BookName) {
		out = append(out, "cold")
	}
	if has(e.Roots.Cold, layout.ZstName) {
		out = append(out, "cold-zst")
	}
	if has(e.Roots.Cold, layout.StubName) {
		out = append(out, "remote")
	}
	return out
}

// ReadBook reads k's book through the resolver (what every reader sees).
func (e *Env) ReadBook(t testing.TB, r *tiers.Resolver, k layout.Key) ([]byte, layout.Tier, error) {
	t.Helper()
	h, err := r.OpenBook(context.Background(), k)
	if err != nil {
		return nil, 0, err
	}
	defer h.Close()
	b := make([]byte, h.Size())
	n, err := h.ReadAt(b, 0)
	if err != nil && !(err == io.EOF && int64(n) == h.Size()) {
		return nil, h.Tier(), err
	}
	return b[:n], h.Tier(), nil
}

// CheckReadable asserts what must hold at every moment, even right after a crash: each
// partition resolves to a copy whose bytes are the original's.
func (e *Env) CheckReadable(t testing.TB, parts []Partition) {
	t.Helper()
	r := e.Resolver(t)
	for _, p := range parts {
		b, tier, err := e.ReadBook(t, r, p.Key)
		if err != nil {
			t.Fatalf("%s: not readable (copies %v): %v", p.Key, e.Copies(p.Key), err)
		}
		if !bytes.Equal(b, p.Book) {
			t.Fatalf("%s: %s tier serves %d bytes that differ from the original %d (copies %v)", p.Key, tier, len(b), len(p.Book), e.Copies(p.Key))
		}
		// The files beside the book come from the same tier and are complete.
		for name, want := range p.Aux {
			h, err := r.Open(context.Background(), path.Join(p.Key.Dir(), name))
			if err != nil {
				t.Fatalf("%s: %s not readable while the book is served from %s (copies %v): %v", p.Key, name, tier, e.Copies(p.Key), err)
			}
			got := make([]byte, h.Size())
			h.ReadAt(got, 0)
			h.Close()
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: %s differs (served from %s, copies %v)", p.Key, name, h.Tier(), e.Copies(p.Key))
			}
		}
	}
}

// Check asserts the manager's invariants after a clean run and returns the tier that
// serves each partition: exactly one copy of each book; the book and every aux file,
// read through the resolver, identical to the original; no temporary file and no
// partition directory outside the serving one; no remote object without its stub.
func (e *Env) Check(t testing.TB, parts []Partition) map[layout.Key]layout.Tier {
	t.Helper()
	ctx := context.Background()
	r := e.Resolver(t)
	out := map[layout.Key]layout.Tier{}
	want := map[layout.Key]bool{}
	for _, p := range parts {
		want[p.Key] = true
		cs := e.Copies(p.Key)
		if len(cs) != 1 {
			t.Fatalf("%s: held by %d copies %v, want exactly 1", p.Key, len(cs), cs)
		}
		b, tier, err := e.ReadBook(t, r, p.Key)
		if err != nil {
			t.Fatalf("%s: read book: %v", p.Key, err)
		}
		if !bytes.Equal(b, p.Book) {
			t.Fatalf("%s: %s tier serves a book that differs from the original", p.Key, tier)
		}
		out[p.Key] = tier
		for name, wantB := range p.Aux {
			h, err := r.Open(ctx, path.Join(p.Key.Dir(), name))
			if err != nil {
				t.Fatalf("%s: open %s: %v", p.Key, name, err)
			}
			got := make([]byte, h.Size())
			h.ReadAt(got, 0)
			h.Close()
			if h.Tier() != tier || !bytes.Equal(got, wantB) {
				t.Fatalf("%s: %s from %s tier: %d bytes, want %d identical bytes from %s", p.Key, name, h.Tier(), len(got), len(wantB), tier)
			}
		}
		if tier == layout.Cold {
			if _, err := os.Stat(filepath.Join(testkit.PartDir(e.Roots.Cold, p.Key), layout.IdxName)); err != nil {
				t.Fatalf("%s: cold .zst without .idx: %v", p.Key, err)
			}
		}
		if tier == layout.Remote {
			if _, err := os.Stat(filepath.Join(testkit.PartDir(e.Roots.Cold, p.Key), layout.IdxName)); err == nil {
				t.Fatalf("%s: remote partition still has a local .idx", p.Key)
			}
		}
		// Directories of this partition anywhere but the serving tier are leftovers.
		serving := e.Roots.Local(tier)
		if tier == layout.Remote {
			serving = e.Roots.Cold
		}
		for _, root := range []string{e.Roots.Hot, e.Roots.Warm, e.Roots.Cold} {
			if root == serving {
				continue
			}
			if _, err := os.Lstat(testkit.PartDir(root, p.Key)); err == nil {
				t.Fatalf("%s: leftover directory %s", p.Key, testkit.PartDir(root, p.Key))
			}
		}
	}
	// No temporary files, no unknown partitions.
	for _, root := range []string{e.Roots.Hot, e.Roots.Warm, e.Roots.Cold} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.Name() == ".chronicle-tier.lock" && filepath.Dir(p) == root {
				return nil // chronicle-tier's lock (lifecycle.LockName) stays in each root
			}
			if layout.IsTemp(d.Name()) {
				t.Fatalf("temporary file remains: %s", p)
			}
			rel, _ := filepath.Rel(root, p)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			if d.IsDir() && len(parts) == 4 {
				k := layout.Key{Venue: parts[1], Symbol: parts[2], Date: parts[3]}
				if !want[k] && !e.Ignore[k] {
					t.Fatalf("unexpected partition directory %s", p)
				}
			}
			return nil
		})
	}
	// Every remote object belongs to a partition the remote tier serves.
	if e.Store != nil {
		objs, err := e.Store.List(ctx, layout.LayoutVersion+"/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			k, err := keyOfObject(key)
			if err != nil || out[k] != layout.Remote {
				t.Fatalf("orphan remote object %s (partition tier %v)", key, out[k])
			}
		}
		for _, p := range parts {
			k := p.Key
			if out[k] != layout.Remote {
				continue
			}
			zk, ik := stub.Keys(k)
			for _, key := range []string{zk, ik} {
				if _, err := e.Store.Head(ctx, key); err != nil {
					t.Fatalf("%s: remote object %s: %v", k, key, err)
				}
			}
			// The bucket alone holds the whole partition: its stub copy lists every file
			// that travels with the book, and each object holds that file's bytes.
			sb := objstoretest.Object(t, e.Store, stub.ObjectKey(k))
			s, err := stub.Parse(sb, stub.ObjectKey(k))
			if err != nil {
				t.Fatalf("%s: bucket stub: %v", k, err)
			}
			// Besides the partition's own files the stub lists what the deriver made
			// (derived/book.parquet), which must be in the bucket as listed.
			own := 0
			for _, f := range s.Files {
				if _, ok := p.Aux[f.Name]; ok {
					own++
					continue
				}
				if !strings.HasPrefix(f.Name, "derived/") {
					t.Fatalf("%s: bucket stub lists %s, which the partition does not have", k, f.Name)
				}
				if got := objstoretest.Object(t, e.Store, stub.FileKey(k, f.Name)); int64(len(got)) != f.Size || objstore.SHA256Hex(got) != f.SHA256 {
					t.Fatalf("%s: bucket object %s does not match its stub entry", k, f.Name)
				}
			}
			if own != len(p.Aux) {
				t.Fatalf("%s: bucket stub lists %d of the partition's %d files", k, own, len(p.Aux))
			}
			for name, wantB := range p.Aux {
				f := s.File(name)
				if f == nil || f.Size != int64(len(wantB)) || f.SHA256 != objstore.SHA256Hex(wantB) {
					t.Fatalf("%s: bucket stub entry for %s: %+v", k, name, f)
				}
				if got := objstoretest.Object(t, e.Store, stub.FileKey(k, name)); !bytes.Equal(got, wantB) {
					t.Fatalf("%s: bucket object %s differs from the file", k, name)
				}
			}
		}
	}
	return out
}

func keyOfObject(key string) (layout.Key, error) {
	parts := strings.Split(key, "/")
	if len(parts) < 5 || parts[0] != layout.LayoutVersion || !layout.ValidFilePath(strings.Join(parts[4:], "/")) {
		return layout.Key{}, fmt.Errorf("not a partition object: %s", key)
	}
	k := layout.Key{Venue: parts[1], Symbol: parts[2], Date: parts[3]}
	return k, k.Validate()
}

// NoConditional wraps a store so that it reports no conditional writes, as an S3 server
// that ignores If-None-Match (or conditional_writes = "off") does: the tier manager then
// claims keys by create-then-verify.
func NoConditional(st objstore.Store) objstore.Store { return noConditional{st} }

type noConditional struct{ objstore.Store }

func (noConditional) Conditional(context.Context) (bool, error) { return false, nil }

func (s noConditional) Put(ctx context.Context, key string, r io.ReaderAt, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if opts.IfAbsent {
		return objstore.ObjectInfo{}, fmt.Errorf("put %q: %w", key, objstore.ErrNoConditional)
	}
	return s.Store.Put(ctx, key, r, size, opts)
}
