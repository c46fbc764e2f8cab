package fsmount

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/tiermove"
	"github.com/chronicle/chronicle/layout"
	"golang.org/x/sys/unix"
)

// Reading through the mount, tier by tier: every tier at rest (TestTiersThroughMount), a
// hot book while it grows (TestGrowingHotFile), a partition while it moves between tiers
// (TestMoveWhileReading).

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
			dir+"/book.npy", dir+"/book.q", dir+"/index", dir+"/index/snapshots.idx", dir+"/meta.json", dir+"/views")
		for _, v := range []string{"bbo.npy", "top1.npy", "top10.npy", "top25.npy", "trades.npy"} {
			want = append(want, dir+"/views/"+v)
		}
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

// growPy loads book.npy of a book that is being written: the array it gets must be whole
// records that equal the hot file's, however far the writer has got.
const growPy = `
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import chronicle_q as q
arr = np.load(sys.argv[2], mmap_mode="r")
direct = q.open_book(sys.argv[3])
n = len(arr)
assert arr.dtype == q.BOOK_DTYPE and n <= len(direct), (arr.dtype, n, len(direct))
assert np.array_equal(arr, direct[:n])
assert arr["seq"].tolist() == list(range(n))
print(json.dumps({"records": n}))
`

// TestGrowingHotFile writes a hot book record by record while `tail -c +1 -f` follows it
// through the mount and numpy loads its book.npy: tail must deliver every byte of every
// record, numpy whole records only, and the sealed file must then show its final size.
func TestGrowingHotFile(t *testing.T) {
	seed := testkit.Seed(t)
	e := newEnv(t, "file")
	k := testkit.Key
	g := testkit.NewGrowing(t, e.roots.Hot, k, seed)
	if err := g.Append(); err != nil {
		t.Fatal(err)
	}
	mp := mountpoint(t)
	start(t, e.config(t, ""), mp)
	p := filepath.Join(mp, filepath.FromSlash(k.Dir()), layout.BookName)

	tail := exec.Command("tail", "-c", "+1", "-f", "-s", "0.005", p)
	var mu sync.Mutex
	var got bytes.Buffer
	tail.Stdout = writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return got.Write(b)
	})
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer tail.Process.Kill()

	py := testenv.Python(t)
	const total = 20000
	var npyCounts []int
	for g.N < total {
		if err := g.Append(); err != nil {
			t.Fatal(err)
		}
		if g.N%50 == 0 {
			time.Sleep(time.Millisecond)
		}
		if g.N%5000 == 0 {
			out := run(t, py, "-c", growPy, filepath.Join(repoRoot(), "python"), filepath.Join(filepath.Dir(p), "book.npy"), g.Path)
			var r struct{ Records int }
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatal(err)
			}
			npyCounts = append(npyCounts, r.Records)
		}
	}
	if err := g.A.Seal(); err != nil {
		t.Fatal(err)
	}
	final, err := os.ReadFile(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		mu.Lock()
		n := got.Len()
		mu.Unlock()
		if n >= len(final) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail delivered %d of %d bytes", n, len(final))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // anything past the end would show up now
	tail.Process.Kill()
	tail.Wait()
	mu.Lock()
	out := got.Bytes()
	mu.Unlock()
	// The header's committed length and state change while the file grows; tail printed the
	// header once, at the start. Everything else must be identical.
	const varFrom, varTo = 24, 40
	if len(out) != len(final) || !bytes.Equal(out[format.HeaderSize:], final[format.HeaderSize:]) ||
		!bytes.Equal(out[:varFrom], final[:varFrom]) || !bytes.Equal(out[varTo:format.HeaderSize], final[varTo:format.HeaderSize]) {
		t.Fatalf("tail -f output (%d bytes) differs from the sealed book (%d bytes)", len(out), len(final))
	}
	t.Logf("tail -f followed %d records; numpy saw %v records while growing", total, npyCounts)
	for i, n := range npyCounts {
		if n < (i+1)*5000 {
			t.Errorf("numpy load %d saw %d records, the writer had committed %d before it", i, n, (i+1)*5000)
		}
	}
	var fi os.FileInfo
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if fi, err = os.Stat(p); err != nil {
			t.Fatal(err)
		}
		if fi.Size() == int64(len(final)) || time.Now().After(deadline) {
			break
		}
	}
	if fi.Size() != int64(len(final)) {
		t.Fatalf("sealed book shows %d bytes, want %d", fi.Size(), len(final))
	}
	if v := run(t, "getfattr", "--only-values", "-n", "user.chronicle.sealed", p); v != "true" {
		t.Errorf("sealed xattr %q after Seal", v)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// holdPy maps book.q (numpy.memmap) and book.npy (numpy.load mmap_mode="r") once and keeps
// the mappings across the moves, comparing them with the original in a loop. Each loop
// drops the mapped pages (madvise + fadvise) so the next pass faults them in again, through
// the handles opened before the moves.
const holdPy = `
import mmap, os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import chronicle_q as q
book, npy, orig, ready, stop = sys.argv[2:7]
direct = np.array(q.open_book(orig))
h = q.read_header(book)
mm = np.memmap(book, dtype=q.BOOK_DTYPE, mode="r", offset=h["header_size"], shape=(len(direct),))
arr = np.load(npy, mmap_mode="r")
fds = [os.open(book, os.O_RDONLY), os.open(npy, os.O_RDONLY)]
open(ready, "w").close()
loops = bad = 0
while not os.path.exists(stop):
    for a in (mm, arr):
        if not np.array_equal(a, direct):
            bad += 1
        a._mmap.madvise(mmap.MADV_DONTNEED)
    for fd in fds:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    loops += 1
print(loops, bad)
`

func TestMoveWhileReading(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) { testMove(t, backend) })
	}
}

// mover moves one partition to the next tier down.
type mover func(k layout.Key, to layout.Tier) error

// testMover moves with the tier manager's own mover (tiers/lifecycle, through tiermove).
func testMover(e *env) mover {
	return func(k layout.Key, to layout.Tier) error {
		if to == layout.Cold {
			return tiermove.WarmToCold(e.roots.Warm, e.roots.Cold, k, 256<<10)
		}
		return tiermove.ColdToRemote(e.roots.Cold, e.store, k)
	}
}

// testMove moves two partitions warm -> cold -> remote with the tier manager's mover while
// readers work on them through the mount:
//   - "held": a Python process keeps numpy mappings of book.q and book.npy made before the
//     moves, and a Go reader keeps one descriptor open for pread;
//   - "free": Go readers reopen and hash book.q and book.npy in a loop, dropping the page
//     cache each time so every pass is served by whatever tier the open resolved.
//
// Zero errors and zero mismatches are allowed, and the metrics must show that cold and
// remote actually served reads during the moves.
func testMove(t *testing.T, backend string) {
	seed := testkit.Seed(t)
	e := newEnv(t, backend)
	held := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}
	free := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-09"}
	orig := map[layout.Key]string{}
	books := map[layout.Key][]byte{}
	for i, k := range []layout.Key{held, free} {
		orig[k] = filepath.Join(t.TempDir(), "book.q")
		testkit.WriteBook(t, orig[k], k, 50000+int64(i)*3333, seed+int64(i))
		books[k], _ = os.ReadFile(orig[k])
		testkit.PlacePlain(t, e.roots.Warm, k, books[k])
	}
	move := testMover(e)
	mp := mountpoint(t)
	d := start(t, e.config(t, ""), mp)
	path := func(k layout.Key, name string) string { return filepath.Join(mp, filepath.FromSlash(k.Dir()), name) }

	tmp := t.TempDir()
	ready, stopFile := filepath.Join(tmp, "ready"), filepath.Join(tmp, "stop")
	var pyOut bytes.Buffer
	py := exec.Command(testenv.Python(t), "-c", holdPy, filepath.Join(repoRoot(), "python"),
		path(held, layout.BookName), path(held, "book.npy"), orig[held], ready, stopFile)
	py.Stdout, py.Stderr = &pyOut, &pyOut
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	defer py.Process.Kill()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("python holder not ready: %s", pyOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	loops := testkit.NewLoops(t)
	wantBook := testkit.SHA256(books[free])
	wantNPY := sha256Tail(books[free][format.HeaderSize:])
	for range 2 {
		loops.Go(func() error {
			sum, n, err := hashUncached(path(free, layout.BookName), 0)
			if err != nil || sum != wantBook {
				return fmt.Errorf("free book.q: %d bytes, digest match %v: %v", n, sum == wantBook, err)
			}
			return nil
		})
	}
	loops.Go(func() error {
		sum, n, err := hashUncached(path(free, "book.npy"), format.HeaderSize)
		if err != nil || sum != wantNPY {
			return fmt.Errorf("free book.npy records: %d bytes, digest match %v: %v", n, sum == wantNPY, err)
		}
		return nil
	})
	f, err := os.Open(path(held, layout.BookName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewSource(seed))
	buf := make([]byte, 1<<20)
	loops.Go(func() error {
		want := books[held]
		off := rng.Int63n(int64(len(want)))
		n, err := f.ReadAt(buf[:1+rng.Intn(len(buf))], off)
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			return fmt.Errorf("held descriptor: pread at %d: %d bytes, %v", off, n, err)
		}
		return nil
	})

	pause := func() { time.Sleep(time.Second) }
	pause()
	for _, k := range []layout.Key{held, free} {
		if err := move(k, layout.Cold); err != nil {
			t.Fatal(err)
		}
	}
	pause()
	coldBytes := d.metric(t, `chronicle_fs_read_bytes_total{tier="cold"}`)
	for _, k := range []layout.Key{held, free} {
		if err := move(k, layout.Remote); err != nil {
			t.Fatal(err)
		}
	}
	pause()
	loops.Stop()
	os.WriteFile(stopFile, nil, 0o644)
	if err := py.Wait(); err != nil {
		t.Fatalf("python holder: %v\n%s", err, pyOut.String())
	}
	var pyLoops, pyBad int
	if _, err := fmt.Sscan(pyOut.String(), &pyLoops, &pyBad); err != nil || pyLoops == 0 || pyBad != 0 {
		t.Errorf("python mappings held across the moves: %q (loops, mismatches)", strings.TrimSpace(pyOut.String()))
	}
	remoteBytes := d.metric(t, `chronicle_fs_read_bytes_total{tier="remote"}`)
	t.Logf("%d Go read passes, %d numpy passes; served during the moves: cold %.0f bytes, remote %.0f bytes",
		loops.Passes.Load(), pyLoops, coldBytes, remoteBytes)
	if loops.Errs.Load() > 0 {
		return
	}
	if coldBytes == 0 || remoteBytes == 0 {
		t.Errorf("new opens were not served by the new tiers: cold %v bytes, remote %v bytes", coldBytes, remoteBytes)
	}
	for _, k := range []layout.Key{held, free} {
		if got := run(t, "getfattr", "--only-values", "-n", "user.chronicle.tier", path(k, layout.BookName)); got != "remote" {
			t.Errorf("%s: tier %q after the moves", k.Date, got)
		}
	}
}

// hashUncached drops the file's cached pages, then hashes it from skip to the end.
func hashUncached(p string, skip int64) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.NewSectionReader(f, skip, 1<<62), make([]byte, 1<<20))
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func sha256Tail(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
