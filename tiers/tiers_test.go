package tiers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers/objstore"
)

func readAll(t testing.TB, h Handle) []byte {
	t.Helper()
	b := make([]byte, h.Size())
	if n, err := h.ReadAt(b, 0); (err != nil && err != io.EOF) || int64(n) != h.Size() {
		t.Fatalf("read %s: %d of %d bytes: %v", h.Source(), n, h.Size(), err)
	}
	return b
}

// checkRandomRanges compares random ranges of h with want.
func checkRandomRanges(t testing.TB, h Handle, want []byte, rng *rand.Rand, n int) {
	t.Helper()
	if h.Size() != int64(len(want)) {
		t.Fatalf("%s tier: size %d, want %d", h.Tier(), h.Size(), len(want))
	}
	for i := 0; i < n; i++ {
		off := rng.Int63n(int64(len(want)))
		ln := 1 + rng.Intn(3<<20)
		if rng.Intn(4) == 0 {
			ln = 4096
		}
		buf := make([]byte, ln)
		got, err := h.ReadAt(buf, off)
		wantN := min(int64(ln), int64(len(want))-off)
		if int64(got) != wantN || (err != nil && !(err == io.EOF && wantN < int64(ln))) {
			t.Fatalf("%s tier: ReadAt(%d, %d) = %d, %v; want %d bytes", h.Tier(), ln, off, got, err, wantN)
		}
		if !bytes.Equal(buf[:got], want[off:off+wantN]) {
			t.Fatalf("%s tier: bytes differ at [%d,%d)", h.Tier(), off, off+wantN)
		}
	}
}

// TestEquivalenceAcrossTiers places one partition in each tier in turn and checks that the
// same logical path returns identical bytes for random ranges, from a file:// remote and a
// real S3 server.
func TestEquivalenceAcrossTiers(t *testing.T) {
	seed := testenv.Seed(t)
	rng := rand.New(rand.NewSource(seed))
	book := testkit.Book(t, testKey, 120000, seed) // ~7.3 MiB: several frames at 1 MiB
	srv := s3test.Start(t)
	s3, err := objstore.Open(context.Background(), srv.URI("chronicle"), objstore.Config{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	for _, store := range []objstore.Store{testkit.FileStore(t), s3} {
		roots := testkit.Roots(t)
		r := newResolver(t, roots, store)
		ctx := context.Background()
		logical := testKey.Dir() + "/book.q"
		check := func(want layout.Tier) {
			h, err := r.Open(ctx, logical)
			if err != nil {
				t.Fatalf("open from %s: %v", want, err)
			}
			defer h.Close()
			if h.Tier() != want {
				t.Fatalf("resolved to %s, want %s", h.Tier(), want)
			}
			checkRandomRanges(t, h, book, rng, 40)
			if !bytes.Equal(readAll(t, h), book) {
				t.Fatalf("%s: whole file differs", want)
			}
			e, err := r.Stat(logical)
			if err != nil || e.Size != int64(len(book)) || e.Tier != want {
				t.Fatalf("stat from %s: %+v %v", want, e, err)
			}
			m, err := r.Open(ctx, testKey.Dir()+"/meta.json")
			if err != nil || m.Tier() != want {
				t.Fatalf("meta.json from %v: %v", m, err)
			}
			m.Close()
			ents, err := r.ReadDir(testKey.Dir())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name)
			}
			if strings.Join(names, ",") != "book.q,index,meta.json" {
				t.Fatalf("%s partition lists %v", want, names)
			}
		}
		testkit.PlacePlain(t, roots.Hot, testKey, book)
		check(layout.Hot)
		testkit.PlacePlain(t, roots.Warm, testKey, book)
		check(layout.Hot) // priority: hot wins while both exist
		os.RemoveAll(testkit.PartDir(roots.Hot, testKey))
		check(layout.Warm)
		testkit.PlaceCold(t, roots.Cold, testKey, book, 1<<20)
		os.RemoveAll(testkit.PartDir(roots.Warm, testKey))
		check(layout.Cold)
		testkit.PlaceRemote(t, roots.Cold, store, testKey)
		check(layout.Remote)
		if _, err := os.Stat(filepath.Join(testkit.PartDir(roots.Cold, testKey), layout.ZstName)); !os.IsNotExist(err) {
			t.Fatal("local .zst still there")
		}
	}
}

func TestListingUnion(t *testing.T) {
	roots := testkit.Roots(t)
	book := testkit.Book(t, testKey, 100, 1)
	keys := []struct {
		root string
		k    layout.Key
	}{
		{roots.Hot, layout.Key{Venue: "binance-perp", Symbol: "btc-usdt", Date: "2024-08-09"}},
		{roots.Warm, layout.Key{Venue: "binance-perp", Symbol: "btc-usdt", Date: "2024-08-08"}},
		{roots.Warm, layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}},
		{roots.Cold, layout.Key{Venue: "okx-perp", Symbol: "btc-usdt", Date: "2023-01-01"}},
		{roots.Hot, layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}}, // same partition in two tiers
	}
	for _, p := range keys {
		testkit.PlacePlain(t, p.root, p.k, book)
	}
	// Noise that must not be listed: a temp file, an empty date dir, an invalid name.
	os.MkdirAll(testkit.PartDir(roots.Warm, layout.Key{Venue: "binance-perp", Symbol: "btc-usdt", Date: "2024-01-01"}), 0o755)
	testkit.WriteFileSync(t, filepath.Join(testkit.PartDir(roots.Warm, keys[1].k), ".book.q.tmp-123"), []byte("x"))
	os.MkdirAll(filepath.Join(roots.Warm, "v1", "Bad Name"), 0o755)
	r := newResolver(t, roots, nil)
	list := func(p string) string {
		es, err := r.ReadDir(p)
		if err != nil {
			t.Fatalf("readdir %s: %v", p, err)
		}
		var n []string
		for _, e := range es {
			n = append(n, e.Name)
		}
		return strings.Join(n, ",")
	}
	for p, want := range map[string]string{
		"v1":                                  "binance-perp,okx-perp",
		"v1/binance-perp":                     "btc-usdt,eth-usdt",
		"v1/binance-perp/btc-usdt":            "2024-08-08,2024-08-09",
		"v1/binance-perp/btc-usdt/2024-08-08": "book.q,index,meta.json",
	} {
		if got := list(p); got != want {
			t.Errorf("%s lists %q, want %q", p, got, want)
		}
	}
	h, err := r.Open(context.Background(), "v1/binance-perp/eth-usdt/2024-08-08/book.q")
	if err != nil || h.Tier() != layout.Hot {
		t.Fatalf("duplicate partition resolved to %v, %v", h, err)
	}
	h.Close()
	if ks, _ := r.Partitions(layout.Warm); len(ks) != 2 {
		t.Fatalf("warm partitions %v", ks)
	}
}

func TestRejectsEscapes(t *testing.T) {
	roots := testkit.Roots(t)
	outside := t.TempDir()
	testkit.WriteFileSync(t, filepath.Join(outside, "book.q"), testkit.Book(t, testKey, 10, 1))
	testkit.WriteFileSync(t, filepath.Join(outside, "secret"), []byte("secret"))
	k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}
	os.MkdirAll(testkit.PartDir(roots.Warm, k), 0o755)
	// A symlinked book, a symlinked partition dir, and a symlinked file.
	os.Symlink(filepath.Join(outside, "book.q"), filepath.Join(testkit.PartDir(roots.Warm, k), "book.q"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(testkit.PartDir(roots.Warm, k), "meta.json"))
	os.MkdirAll(filepath.Join(roots.Warm, "v1", "binance-perp", "btc-usdt"), 0o755)
	os.Symlink(outside, filepath.Join(roots.Warm, "v1", "binance-perp", "btc-usdt", "2024-08-08"))
	r := newResolver(t, roots, nil)
	for _, p := range []string{
		"v1/binance-perp/eth-usdt/2024-08-08/book.q",
		"v1/binance-perp/eth-usdt/2024-08-08/meta.json",
		"v1/binance-perp/btc-usdt/2024-08-08/book.q",
		"v1/binance-perp/btc-usdt/2024-08-08/secret",
		"v1/binance-perp/eth-usdt/2024-08-08/../../../../../etc/passwd",
		"v1/../../etc/passwd",
	} {
		if h, err := r.Open(context.Background(), p); err == nil {
			h.Close()
			t.Errorf("%s opened through a symlink or escape", p)
		}
	}
}

func TestGrowingHotBook(t *testing.T) {
	roots := testkit.Roots(t)
	p := filepath.Join(testkit.PartDir(roots.Hot, testKey), layout.BookName)
	os.MkdirAll(filepath.Dir(p), 0o755)
	a, err := format.Create(p, format.NewBookHeader(testKey.Venue, testKey.Symbol, 7, 20240808), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r := newResolver(t, roots, nil)
	h := openBook(t, r)
	defer h.Close()
	if h.Sealed() || h.File() != nil || h.Size() != format.HeaderSize {
		t.Fatalf("growing file: sealed %v size %d", h.Sealed(), h.Size())
	}
	st, _ := os.Stat(p)
	if st.Size() <= format.HeaderSize {
		t.Fatalf("appender should preallocate; file is %d bytes", st.Size())
	}
	for i := 0; i < 10; i++ {
		rec := format.BookRecord{TypeID: format.TypeTrade, Seq: uint64(i)}
		a.AppendBook(&rec)
		if got := h.Size(); got != int64(format.HeaderSize+(i+1)*format.BookRecordSize) {
			t.Fatalf("after %d records size %d", i+1, got)
		}
	}
	// A read past the committed end is short, never preallocated zeros.
	buf := make([]byte, 1<<20)
	n, err := h.ReadAt(buf, 0)
	if n != format.HeaderSize+10*format.BookRecordSize || err != io.EOF {
		t.Fatalf("read %d, %v", n, err)
	}
}

func TestRemoteStubValidation(t *testing.T) {
	roots := testkit.Roots(t)
	store := testkit.FileStore(t)
	book := testkit.Book(t, testKey, 1000, 3)
	testkit.PlaceCold(t, roots.Cold, testKey, book, 64<<10)
	good := testkit.PlaceRemote(t, roots.Cold, store, testKey)
	r := newResolver(t, roots, store)
	stubPath := filepath.Join(testkit.PartDir(roots.Cold, testKey), layout.StubName)
	other := layout.Key{Venue: "binance-perp", Symbol: "btc-usdt", Date: "2024-08-08"}
	oz, _ := stub.Keys(other)
	cases := map[string]func(s *stub.Stub){
		"outside root":    func(s *stub.Stub) { s.Zst.URI = "file:///etc/passwd" },
		"dot-dot escape":  func(s *stub.Stub) { s.Zst.URI = store.URI("../../etc/passwd") },
		"other scheme":    func(s *stub.Stub) { s.Idx.URI = "s3://bucket/v1/x" },
		"other partition": func(s *stub.Stub) { s.Zst.URI = store.URI(oz) },
		"wrong idx hash":  func(s *stub.Stub) { s.Idx.SHA256 = strings.Repeat("0", 64) },
		"wrong size":      func(s *stub.Stub) { s.UncompressedSize++ },
		"wrong zst size":  func(s *stub.Stub) { s.Zst.Size-- },
		"negative size":   func(s *stub.Stub) { s.Idx.Size = -1 },
		"bad version":     func(s *stub.Stub) { s.Version = 99 },
		"uppercase hash":  func(s *stub.Stub) { s.Zst.SHA256 = strings.ToUpper(s.Zst.SHA256) },
	}
	for name, mut := range cases {
		s := *good
		mut(&s)
		b, _ := json.Marshal(&s)
		testkit.WriteFileSync(t, stubPath, b)
		r.idx = newLRU[string, *qzst.Index](maxCachedIndexes) // no cached index from an earlier case
		if h, err := r.Open(context.Background(), testKey.Dir()+"/book.q"); err == nil {
			h.Close()
			t.Errorf("%s: stub accepted", name)
		} else if !errors.Is(err, stub.ErrInvalid) && !errors.Is(err, objstore.ErrChecksumMismatch) && !errors.Is(err, ErrRemoteFailed) {
			t.Errorf("%s: unexpected error type: %v", name, err)
		}
	}
	b, _ := good.Marshal()
	testkit.WriteFileSync(t, stubPath, b)
	h, err := r.Open(context.Background(), testKey.Dir()+"/book.q")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, h), book) {
		t.Fatal("restored stub reads wrong bytes")
	}
	h.Close()
}
