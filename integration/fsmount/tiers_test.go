package fsmount

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

// placed is one partition put into a tier by a test, with its original bytes kept aside.
type placed struct {
	key  layout.Key
	tier layout.Tier
	orig string // path of the original book.q, outside every tier
	book []byte
}

// placeAll puts one partition in each tier (remote through e.store) and returns them.
func placeAll(t testing.TB, e *env, seed int64, records int64) []placed {
	t.Helper()
	ps := []placed{
		{key: layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-10"}, tier: layout.Hot},
		{key: layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-09"}, tier: layout.Warm},
		{key: layout.Key{Venue: "binance-perp", Symbol: "btc-usdt", Date: "2024-08-08"}, tier: layout.Cold},
		{key: layout.Key{Venue: "binance-spot", Symbol: "eth-usdt", Date: "2024-08-07"}, tier: layout.Remote},
	}
	origDir := t.TempDir()
	for i := range ps {
		p := &ps[i]
		p.orig = filepath.Join(origDir, p.key.Date+".q")
		testkit.WriteBook(t, p.orig, p.key, records+int64(i)*1111, seed+int64(i))
		b, err := os.ReadFile(p.orig)
		if err != nil {
			t.Fatal(err)
		}
		p.book = b
		switch p.tier {
		case layout.Hot:
			testkit.PlacePlain(t, e.roots.Hot, p.key, b)
		case layout.Warm:
			testkit.PlacePlain(t, e.roots.Warm, p.key, b)
		default:
			testkit.PlaceCold(t, e.roots.Cold, p.key, b, 256<<10)
			if p.tier == layout.Remote {
				testkit.PlaceRemote(t, e.roots.Cold, e.store, p.key)
			}
		}
	}
	return ps
}

// checkPy is run by /usr/bin/python3: numpy.memmap of book.q and numpy.load(book.npy,
// mmap_mode="r") through the mount against python/chronicle_q.py's direct read of the
// original file, field by field, then a pandas DataFrame.
const checkPy = `
import json, sys
import numpy as np, pandas as pd
sys.path.insert(0, sys.argv[1])
import chronicle_q as q
out = []
for c in json.load(open(sys.argv[2])):
    direct = q.open_book(c["orig"])
    n = len(direct)
    h = q.read_header(c["book"])
    assert h["sealed"] and h["committed"] == h["header_size"] + 64 * n, (c["book"], h)
    mm = np.memmap(c["book"], dtype=q.BOOK_DTYPE, mode="r", offset=h["header_size"], shape=(n,))
    arr = np.load(c["npy"], mmap_mode="r")
    assert isinstance(arr, np.memmap), type(arr)
    assert arr.dtype == q.BOOK_DTYPE, arr.dtype
    assert arr.shape == (n,), (arr.shape, n)
    for name in q.BOOK_DTYPE.names:
        for label, a in (("book.q memmap", mm), ("book.npy", arr)):
            if not np.array_equal(a[name], direct[name]):
                bad = int(np.nonzero(a[name] != direct[name])[0][0])
                raise SystemExit(f"{c['book']}: {label}: field {name} differs at record {bad}")
    df = q.to_pandas(arr, h)
    assert len(df) == n, (len(df), n)
    assert df["seq"].tolist() == list(range(n))
    assert (df["ts_exchange"].diff().dropna() > pd.Timedelta(0)).all()
    out.append({"book": c["book"], "rows": len(df), "price_sum": int(arr["price"].astype(np.int64).sum())})
print(json.dumps(out))
`

func TestTiersThroughMount(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) { testTiers(t, backend) })
	}
}

func testTiers(t *testing.T, backend string) {
	seed := testkit.Seed(t)
	e := newEnv(t, backend)
	ps := placeAll(t, e, seed, 40000)
	// Leftovers a listing must not show: a date folder without a book, a writer's temp file.
	testkit.WriteFileSync(t, filepath.Join(testkit.PartDir(e.roots.Warm, layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-07-01"}), layout.MetaName), []byte("{}"))
	os.WriteFile(filepath.Join(testkit.PartDir(e.roots.Warm, ps[1].key), "book.q.tmp-123"), []byte("partial"), 0o644)

	mp := mountpoint(t)
	d := start(t, e.config(t, ""), mp)
	mounted := d.waitLog("mounted", time.Second)
	ptOffered, _ := mounted["passthrough_offered"].(bool)

	py := testenv.Python(t)
	var cases []map[string]string
	for _, p := range ps {
		book := filepath.Join(mp, filepath.FromSlash(p.key.Dir()), layout.BookName)
		want := testkit.SHA256(p.book)
		catSum := strings.Fields(run(t, "sh", "-c", `cat "$1" | sha256sum`, "sh", book))[0]
		ddSum := strings.Fields(run(t, "sh", "-c", `dd if="$1" bs=1M status=none | sha256sum`, "sh", book))[0]
		if catSum != want || ddSum != want {
			t.Errorf("%s (%s): cat sha256 %s, dd sha256 %s, original %s", p.key.Dir(), p.tier, catSum, ddSum, want)
		}
		attrs := run(t, "getfattr", "-d", "--absolute-names", book)
		if !strings.Contains(attrs, `user.chronicle.tier="`+p.tier.String()+`"`) || !strings.Contains(attrs, `user.chronicle.sealed="true"`) ||
			!strings.Contains(attrs, "user.chronicle.source=") || !strings.Contains(attrs, "user.chronicle.version=") {
			t.Errorf("%s: getfattr -d says\n%s\nwant tier %s", p.key.Dir(), attrs, p.tier)
		}
		cases = append(cases, map[string]string{"book": book, "npy": filepath.Join(filepath.Dir(book), "book.npy"), "orig": p.orig})
	}
	cj, _ := json.Marshal(cases)
	cf := filepath.Join(t.TempDir(), "cases.json")
	os.WriteFile(cf, cj, 0o644)
	var got []struct {
		Book     string `json:"book"`
		Rows     int64  `json:"rows"`
		PriceSum int64  `json:"price_sum"`
	}
	if err := json.Unmarshal([]byte(run(t, py, "-c", checkPy, filepath.Join(repoRoot(), "python"), cf)), &got); err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		recs, ok := format.BookRecords(p.book[format.HeaderSize:])
		if !ok {
			t.Fatal("cannot view records")
		}
		var sum int64
		for _, r := range recs {
			sum += r.Price
		}
		if got[i].Rows != int64(len(recs)) || got[i].PriceSum != sum {
			t.Errorf("%s: pandas has %d rows, price sum %d; Go reads %d rows, sum %d", p.key.Dir(), got[i].Rows, got[i].PriceSum, len(recs), sum)
		}
	}

	// ls -R shows the union: every partition and its logical files, exactly (no .zst, .idx,
	// .remote.json, temp files or book-less date folders).
	var files []string
	dir := ""
	for _, l := range strings.Split(run(t, "ls", "-R", filepath.Join(mp, "v1")), "\n") {
		switch {
		case strings.HasSuffix(l, ":"):
			dir = strings.TrimPrefix(strings.TrimSuffix(l, ":"), mp+"/")
		case l != "":
			files = append(files, dir+"/"+l)
		}
	}
	var want []string
	for _, p := range ps {
		dir := p.key.Dir()
		want = append(want, filepath.Dir(filepath.Dir(dir))+"/"+p.key.Symbol, filepath.Dir(dir)+"/"+p.key.Date,
			dir+"/book.npy", dir+"/book.q", dir+"/index", dir+"/index/snapshots.idx", dir+"/meta.json")
	}
	want = append(want, "v1/binance-perp", "v1/binance-spot")
	sort.Strings(files)
	want = dedupe(want)
	if strings.Join(files, "\n") != strings.Join(want, "\n") {
		t.Errorf("ls -R lists\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}

	// /metrics: reads by tier, the frame cache, the remote tier, latency histograms.
	m := d.scrape(t)
	for _, s := range []string{`chronicle_fs_read_bytes_total{tier="cold"}`, `chronicle_fs_read_bytes_total{tier="remote"}`,
		`chronicle_fs_remote_requests_total`, `chronicle_fs_frames_decoded_total`, `chronicle_fs_read_seconds_count{tier="remote"}`} {
		if m[s] <= 0 {
			t.Errorf("metric %s = %v, want > 0", s, m[s])
		}
	}
	if _, ok := m["chronicle_fs_frame_cache_hit_ratio"]; !ok {
		t.Error("no chronicle_fs_frame_cache_hit_ratio")
	}
	if ptOffered {
		// book.q and the small files of hot and warm pass through (book.npy never does).
		for _, tier := range []string{"hot", "warm"} {
			if n := m[`chronicle_fs_opens_total{mode="passthrough",tier="`+tier+`"}`]; n < 4 {
				t.Errorf("%s: %v passthrough opens, want at least 4", tier, n)
			}
		}
		if n := m["chronicle_fs_passthrough_fallback_reads_total"]; n != 0 {
			t.Errorf("%v reads of passthrough opens reached the daemon", n)
		}
	}
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
