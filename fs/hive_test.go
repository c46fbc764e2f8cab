package fs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
)

func dirNames(t *testing.T, p string) []string {
	t.Helper()
	ents, err := os.ReadDir(p)
	if err != nil {
		t.Fatalf("readdir %s: %v", p, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestHiveTree: the mount's hive/ tree shows every partition that has derived/book.parquet,
// in whichever tier (warm, cold, remote), as venue=/symbol=/date=/book.parquet with the
// partition file's bytes and inode; partitions without one, and names that are not the
// columns', are not there.
func TestHiveTree(t *testing.T) {
	roots := testkit.Roots(t)
	store := testkit.FileStore(t)
	parquets := map[layout.Key][]byte{}
	place := func(k layout.Key, tier layout.Tier, withParquet bool) {
		book := testkit.Book(t, k, 3000, int64(len(parquets)+1))
		switch tier {
		case layout.Warm:
			testkit.PlacePlain(t, roots.Warm, k, book)
		default:
			testkit.PlaceCold(t, roots.Cold, k, book, 64<<10)
		}
		if withParquet {
			b := append([]byte("PAR1 the parquet of "+k.Dir()), "PAR1"...)
			dir := filepath.Join(roots.Local(min(tier, layout.Cold)), filepath.FromSlash(k.Dir()), layout.DerivedDir)
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(filepath.Join(dir, layout.HiveFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			parquets[k] = b
		}
		if tier == layout.Remote {
			testkit.PlaceRemote(t, roots.Cold, store, k)
		}
	}
	warm, cold, remote := keyOn("2024-08-07"), keyOn("2024-08-08"), keyOn("2024-08-09")
	bare := keyOn("2024-08-10")
	spot := layout.Key{Venue: "binance-spot", Symbol: "btc-usdt", Date: "2024-08-08"}
	place(warm, layout.Warm, true)
	place(cold, layout.Cold, true)
	place(remote, layout.Remote, true)
	place(bare, layout.Warm, false)
	place(spot, layout.Cold, true)
	tm := mountTiers(t, roots, store, nil)

	if got := dirNames(t, tm.dir); !slices.Equal(got, []string{"hive", "v1"}) {
		t.Fatalf("mount root %v", got)
	}
	h := filepath.Join(tm.dir, "hive", "book")
	if got := dirNames(t, h); !slices.Equal(got, []string{"venue=binance-perp", "venue=binance-spot"}) {
		t.Fatalf("hive/book: %v", got)
	}
	if got := dirNames(t, filepath.Join(h, "venue=binance-perp")); !slices.Equal(got, []string{"symbol=" + warm.Symbol}) {
		t.Fatalf("venue dir: %v", got)
	}
	sym := filepath.Join(h, "venue=binance-perp", "symbol="+warm.Symbol)
	if got := dirNames(t, sym); !slices.Equal(got, []string{"date=2024-08-07", "date=2024-08-08", "date=2024-08-09"}) {
		t.Fatalf("symbol dir (no date without a parquet): %v", got)
	}
	for k, want := range parquets {
		p := filepath.Join(tm.dir, filepath.FromSlash(layout.HiveRel(k)))
		if got := dirNames(t, filepath.Dir(p)); !slices.Equal(got, []string{"book.parquet"}) {
			t.Fatalf("%s: %v", filepath.Dir(p), got)
		}
		if got := readFile(t, p); !bytes.Equal(got, want) {
			t.Fatalf("%s: %q, want %q", p, got, want)
		}
		var a, b os.FileInfo
		a, _ = os.Stat(p)
		b, _ = os.Stat(tm.path(k, "derived/book.parquet"))
		if a == nil || b == nil || !os.SameFile(a, b) || a.Size() != int64(len(want)) {
			t.Fatalf("%s is not the partition's own file: %v %v", p, a, b)
		}
	}
	for _, p := range []string{
		"hive/other", "hive/book/binance-perp", "hive/book/venue=okx", "hive/book/venue=binance-perp/symbol=btc-usdt",
		"hive/book/venue=binance-perp/symbol=eth-usdt/date=2024-08-10", "hive/book/venue=binance-perp/symbol=eth-usdt/date=2024-13-01",
		"hive/book/venue=binance-perp/symbol=eth-usdt/date=2024-08-07/meta.json", "hive/book/symbol=eth-usdt",
	} {
		if _, err := os.Stat(filepath.Join(tm.dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want ENOENT", p, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tm.dir, "hive", "book", "x"), nil, 0o644); err == nil {
		t.Fatal("wrote into the hive tree")
	}
}
