// Package views checks the research views end to end on every bundled capture: the real
// chronicle-feed and chronicle-etl build the partitions, chronicle-tier moves copies of
// them to cold and to a real S3 server (versitygw), four chronicle-fs daemons serve them
// from hot, warm, cold and remote, and the views read through each mount are compared
// with each other, with a replay written here (maps, from the partition's start), with an
// independent Python rebuild (python/check_views.py, numpy only), and through chronicle-q.
package views

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/books"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithCommands(m, "chronicle-feed", "chronicle-etl", "chronicle-fs", "chronicle-tier", "chronicle-q"))
}

// refine journals and refines every bundled capture into one tree (the staged copy every
// tier gets), returning its root and the partitions' logical directories.
func refine(t *testing.T, dir string) (string, []string) {
	t.Helper()
	staged := filepath.Join(dir, "staged")
	sets := slices.Clone(kit.Subscribed) // OKX's and Kraken's, beside Binance's
	for _, c := range kit.All {
		sets = append(sets, c.Set)
	}
	for _, c := range sets {
		j, r := filepath.Join(dir, "J-"+c.Name), filepath.Join(dir, "R-"+c.Name)
		proc.Run(t, testenv.Bin("chronicle-feed"), append([]string{"replay", "--speed", "0", "--venue", c.Venue, "--journal-dir", j,
			"--metrics-addr", "", "--log-level", "warn"}, c.Paths(testenv.CapturesDir())...)...)
		proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--seal-all", "--root", r, j)
		copyTree(t, filepath.Join(r, "v1"), filepath.Join(staged, "v1"))
	}
	var parts []string
	dirs, _ := filepath.Glob(filepath.Join(staged, "v1", "*", "*", "*"))
	for _, d := range dirs {
		rel, _ := filepath.Rel(staged, d)
		parts = append(parts, filepath.ToSlash(rel))
	}
	sort.Strings(parts)
	if len(parts) < 10 {
		t.Fatalf("the captures gave %d partitions: %v", len(parts), parts)
	}
	return staged, parts
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// tierSet is one mount whose tree has every partition in one tier.
type tierSet struct {
	tier  layout.Tier
	roots layout.Roots
	cfg   string // chronicle.toml of the set
	mp    string
	d     *proc.Proc
}

func (s *tierSet) part(logical string) string {
	return filepath.Join(s.mp, filepath.FromSlash(logical))
}

// placeEverywhere builds the four trees: hot and warm copies, and copies moved by the real
// chronicle-tier to cold and on to the S3 server.
func placeEverywhere(t *testing.T, dir, staged string, srv *s3test.Server) []*tierSet {
	t.Helper()
	c := testkit.S3Config(srv)
	var sets []*tierSet
	for _, tier := range []layout.Tier{layout.Hot, layout.Warm, layout.Cold, layout.Remote} {
		d := filepath.Join(dir, tier.String())
		s := &tierSet{tier: tier, roots: layout.Roots{Hot: filepath.Join(d, "hot"), Warm: filepath.Join(d, "warm"), Cold: filepath.Join(d, "cold")}}
		for _, r := range []string{s.roots.Hot, s.roots.Warm, s.roots.Cold} {
			os.MkdirAll(r, 0o755)
		}
		remote := ""
		if tier == layout.Remote {
			s.roots.Remote = srv.URI("views")
			remote = fmt.Sprintf("[remote]\nendpoint = %q\nregion = %q\naccess_key = %q\nsecret_key = %q\npath_style = true\n", c.Endpoint, c.Region, c.AccessKey, c.SecretKey)
		}
		s.cfg = filepath.Join(d, "chronicle.toml")
		os.WriteFile(s.cfg, []byte(fmt.Sprintf("[tiers]\nhot = %q\nwarm = %q\ncold = %q\nremote = %q\n\n%s\n[fs]\nmetrics_addr = \"\"\ndisk_cache_bytes = 0\ncache_bytes = %d\n",
			s.roots.Hot, s.roots.Warm, s.roots.Cold, s.roots.Remote, remote, 32<<20)), 0o644)
		switch tier {
		case layout.Hot:
			copyTree(t, filepath.Join(staged, "v1"), filepath.Join(s.roots.Hot, "v1"))
		default:
			copyTree(t, filepath.Join(staged, "v1"), filepath.Join(s.roots.Warm, "v1"))
		}
		if tier == layout.Cold || tier == layout.Remote {
			remoteAfter := "1000000h"
			if tier == layout.Remote {
				remoteAfter = "48h"
			}
			for range 2 {
				proc.Run(t, testenv.Bin("chronicle-tier"), "--config", s.cfg, "--now", "2024-08-20", "--cold-after", "24h",
					"--remote-after", remoteAfter, "--hot-to-warm=false", "--log-level", "warn", "--metrics-addr", "", "apply")
			}
		}
		sets = append(sets, s)
	}
	return sets
}

func (s *tierSet) mount(t *testing.T) {
	t.Helper()
	s.mp = filepath.Join(t.TempDir(), "mnt")
	os.MkdirAll(s.mp, 0o755)
	s.d = proc.Mount(t, exec.Command(testenv.Bin("chronicle-fs"), "mount", "--config", s.cfg, "--log-level", "info", s.mp), s.mp, 20*time.Second, nil)
}

var allViews = []string{"top1.npy", "top10.npy", "top25.npy", "trades.npy", "bbo.npy"}

// TestViewsEveryTier: for every partition of every bundled capture, the views read through
// the mount from hot, warm, cold and remote are byte-identical and equal bookview's
// rendering of the refinery's file; every top-N row equals this test's own replay of the
// partition from its start (after that depth update); the book at 1,000 random instants,
// read through the mount, equals that replay up to the instant; the independent Python
// rebuild agrees on top 25 at every event and with chronicle_q.book_at; chronicle-q
// prints the same book.
func TestViewsEveryTier(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts FUSE for real and must run as root")
	}
	seed := testkit.Seed(t)
	began := time.Now()
	dir := t.TempDir()
	staged, parts := refine(t, dir)
	srv := s3test.Start(t)
	sets := placeEverywhere(t, dir, staged, srv)
	for _, s := range sets {
		s.mount(t)
	}
	py, repo := testenv.Python(t), testenv.RepoRoot(t)
	rng := rand.New(rand.NewSource(seed))
	t.Logf("refined and placed in every tier in %v", time.Since(began).Round(time.Millisecond))
	for _, logical := range parts {
		began := time.Now()
		local := filepath.Join(staged, filepath.FromSlash(logical))
		if _, err := os.Stat(filepath.Join(local, bookindex.Dir, bookindex.EventsName)); err != nil {
			t.Fatalf("%s: the refinery wrote no events index: %v", logical, err)
		}
		bk, bf, err := bookindex.ReadBooks(local)
		if err != nil {
			t.Fatalf("%s: the refinery wrote no book index: %v", logical, err)
		}
		_, recs, err := books.ReadFile(filepath.Join(local, layout.BookName))
		if err != nil {
			t.Fatal(err)
		}
		// What the book index costs (docs/format/index.md, "Size").
		ist, _ := bf.Stat()
		bst, _ := os.Stat(filepath.Join(local, layout.BookName))
		bf.Close()
		t.Logf("%s: index/books.idx %d checkpoints, %d bytes, %.2f%% of book.q", logical, len(bk.Entries), ist.Size(), 100*float64(ist.Size())/float64(bst.Size()))
		want := map[string][]byte{}
		l, err := bookview.OpenDir(local)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range allViews {
			v, _ := bookview.ParseName(name)
			f := l.OpenView(v, nil)
			b := make([]byte, f.Size())
			if _, err := f.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			want[name] = b
		}
		l.Close()
		for _, s := range sets {
			for _, name := range allViews {
				p := filepath.Join(s.part(logical), "views", name)
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				got := testkit.ReadFile(t, p)
				if st.Size() != int64(len(want[name])) || !bytes.Equal(got, want[name]) {
					t.Fatalf("%s %s from %s: %d bytes (stat %d), want %d identical bytes", logical, name, s.tier, len(got), st.Size(), len(want[name]))
				}
			}
			if x, err := testkit.ServedTier(filepath.Join(s.part(logical), "views", "top10.npy")); err != nil || x != s.tier.String() {
				t.Fatalf("%s: views served from %q (%v), want %s", logical, x, err, s.tier)
			}
		}
		tViews := time.Since(began)
		rows := checkRows(t, logical, recs, want)
		tRows := time.Since(began)
		// The book at random instants, read through the remote mount.
		n := checkBookAt(t, logical, sets[3].part(logical), recs, rng, 1000)
		tAt := time.Since(began)
		t.Logf("%s: %d depth updates; views identical from hot, warm, cold and remote (%v); every row (%v) and %d books at random instants (%v) equal the replay",
			logical, rows, tViews.Round(time.Millisecond), (tRows - tViews).Round(time.Millisecond), n, (tAt - tRows).Round(time.Millisecond))
		began = time.Now()

		args := []string{filepath.Join(repo, "python", "check_views.py"), "--book", filepath.Join(local, layout.BookName),
			"--instants", "24", "--seed", fmt.Sprint(seed)}
		for _, s := range sets {
			args = append(args, "--part", s.part(logical))
		}
		out, err := exec.Command(py, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: the independent Python rebuild disagrees: %v\n%s", logical, err, out)
		}
		t.Logf("%s (%v)", strings.TrimSpace(string(out)), time.Since(began).Round(time.Millisecond))
	}
	checkCLI(t, sets[3], parts, rng)
}

// replay is this test's reading of the book (docs/format/views.md), with maps: events in
// file order; a valid run replaces the book, an invalid run or a book_invalid record makes
// it unknown, level records change it while known.
type replay struct {
	books.View
	lastRecv  int64
	lastSeq   uint64
	lastFlags uint16
}

func (r *replay) apply(x *format.BookRecord) (row bool) {
	r.Apply(x)
	switch {
	case x.TypeID == format.TypeSnapshotEnd || x.TypeID == format.TypeBookInvalid:
		r.lastRecv, r.lastSeq, r.lastFlags = x.RecvTs, x.Seq, x.Flags
	case x.TypeID == format.TypeLevel && x.Flags&format.FlagSnapshot == 0 && x.Flags&format.FlagLast != 0:
		r.lastRecv, r.lastSeq, r.lastFlags = x.RecvTs, x.Seq, x.Flags
		return true
	}
	return false
}

// best returns the n best levels of a side, best first (a selection: sorting the whole
// side after every depth update would dominate the test).
func best(m map[int64]int64, n int, desc bool) []bookview.Level {
	out := make([]bookview.Level, 0, n+1)
	better := func(a, b int64) bool { return a > b == desc }
	for p, q := range m {
		if len(out) == n && !better(p, out[n-1].Price) {
			continue
		}
		i := sort.Search(len(out), func(i int) bool { return better(p, out[i].Price) })
		out = append(out, bookview.Level{})
		copy(out[i+1:], out[i:])
		out[i] = bookview.Level{Price: p, Qty: q}
		if len(out) > n {
			out = out[:n]
		}
	}
	return out
}

// checkRows compares every row of the top-N views with the replay's book after that depth
// update, field by field.
func checkRows(t *testing.T, logical string, recs []format.BookRecord, views map[string][]byte) int {
	t.Helper()
	r := &replay{}
	row := 0
	le := binary.LittleEndian
	for i := range recs {
		x := &recs[i]
		if !r.apply(x) {
			continue
		}
		bids, asks := best(r.Bids, 25, true), best(r.Asks, 25, false)
		crossed := r.Known && len(bids) > 0 && len(asks) > 0 && bids[0].Price >= asks[0].Price
		if crossed != (x.Flags&format.FlagCrossed != 0) {
			t.Fatalf("%s: depth update at record %d: replay crossed %v, the refinery's flag says %v", logical, i, crossed, !crossed)
		}
		for _, n := range []int{1, 10, 25} {
			v := bookview.View{Kind: bookview.KindTop, N: n}
			b := views[v.Name()][v.DataOffset()+int64(row)*v.RowSize():][:v.RowSize()]
			flags := uint32(x.Flags) & (bookview.RowBadTsRecv | bookview.RowTsEstimated)
			var reason uint32
			switch {
			case !r.Known:
				flags |= bookview.RowInvalid
				reason = uint32(r.Reason)
			case crossed:
				flags |= bookview.RowCrossed
			}
			if int64(le.Uint64(b[0:])) != x.ExchTs || int64(le.Uint64(b[8:])) != x.RecvTs || le.Uint64(b[16:]) != x.Seq ||
				le.Uint32(b[24:]) != flags || le.Uint32(b[28:]) != reason {
				t.Fatalf("%s %s row %d (record %d): header fields differ", logical, v.Name(), row, i)
			}
			for side, lv := range [][]bookview.Level{bids, asks} {
				for k := range n {
					var p, q int64
					if r.Known && k < len(lv) {
						p, q = lv[k].Price, lv[k].Qty
					}
					if gp, gq := int64(le.Uint64(b[32+side*16*n+8*k:])), int64(le.Uint64(b[32+side*16*n+8*n+8*k:])); gp != p || gq != q {
						t.Fatalf("%s %s row %d side %d level %d: %d/%d, replay %d/%d", logical, v.Name(), row, side, k, gp, gq, p, q)
					}
				}
			}
		}
		row++
	}
	for _, n := range []int{1, 10, 25} {
		v := bookview.View{Kind: bookview.KindTop, N: n}
		if got := (int64(len(views[v.Name()])) - v.DataOffset()) / v.RowSize(); got != int64(row) {
			t.Fatalf("%s %s: %d rows, the replay has %d depth updates", logical, v.Name(), got, row)
		}
	}
	return row
}

// checkBookAt asks bookview, reading through the mount, for the book at k random instants
// (and at the edges; all in one walk, every 25th also alone) and compares each with the replay
// from the partition's start up to the instant. The captures' book events are in time order (checked), so the replay
// applies every event whose first record is at or before the instant.
func checkBookAt(t *testing.T, logical, mdir string, recs []format.BookRecord, rng *rand.Rand, k int) int {
	t.Helper()
	p, err := bookview.OpenDir(mdir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dayLo, dayHi, _ := p.Day()
	lo, hi := recs[0].ExchTs, recs[0].ExchTs
	for _, x := range recs {
		lo, hi = min(lo, x.ExchTs), max(hi, x.ExchTs)
	}
	ts := []int64{dayLo, dayHi - 1, lo, hi}
	for range k {
		ts = append(ts, lo-1e9+rng.Int63n(hi-lo+2e9))
	}
	// Event starts, in file order, must be in time order for the replay's rule.
	var starts []int
	in, last := false, int64(-1<<63)
	for i, x := range recs {
		if x.TypeID == format.TypeTrade || x.TypeID == format.TypeBBO || !format.KnownType(x.TypeID) {
			continue
		}
		if !in {
			if x.ExchTs < last {
				t.Fatalf("%s: book event at record %d is earlier than the one before it", logical, i)
			}
			starts, last, in = append(starts, i), x.ExchTs, true
		}
		if x.TypeID == format.TypeSnapshotEnd || x.TypeID == format.TypeBookInvalid ||
			x.TypeID == format.TypeLevel && x.Flags&(format.FlagSnapshot|format.FlagLast) == format.FlagLast {
			in = false
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	r, next, ev := &replay{}, 0, 0
	checked, i := 0, 0
	// One forward walk (BooksAt) answers every instant; every 25th is also asked alone
	// (BookAt: a seek to the snapshot run before it).
	err = p.BooksAt(ts, 0, func(at int64, got *bookview.State, err error) error {
		for ev < len(starts) && recs[starts[ev]].ExchTs <= at {
			end := len(recs)
			if ev+1 < len(starts) {
				end = starts[ev+1]
			}
			for ; next < end; next++ {
				r.apply(&recs[next])
			}
			ev++
		}
		if i++; i%25 == 0 {
			alone, aerr := p.BookAt(at, 0)
			if (aerr == nil) != (err == nil) || aerr != nil && aerr.Error() != err.Error() ||
				aerr == nil && (alone.Valid != got.Valid || alone.Record != got.Record || alone.Seq != got.Seq || len(alone.Bids) != len(got.Bids) ||
					len(alone.Bids) > 0 && alone.Bids[0] != got.Bids[0] || len(alone.Asks) > 0 && alone.Asks[len(alone.Asks)-1] != got.Asks[len(got.Asks)-1]) {
				return fmt.Errorf("book at %s alone differs from the walk's: %+v %v / %+v %v", bookview.FormatTime(at), alone, aerr, got, err)
			}
		}
		switch {
		case at < dayLo || at >= dayHi:
			if !errors.Is(err, bookview.ErrOutsideDay) {
				return fmt.Errorf("book at %s outside the day: %v", bookview.FormatTime(at), err)
			}
			return nil
		case !r.Seeded:
			var nb *bookview.NoBookError
			if !errors.As(err, &nb) {
				return fmt.Errorf("book at %s before the first book: %+v, %v", bookview.FormatTime(at), got, err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("book at %s: %v", bookview.FormatTime(at), err)
		}
		if got.Valid != r.Known || got.Reason != r.Reason {
			return fmt.Errorf("book at %s: valid %v reason %d, replay %v %d", bookview.FormatTime(at), got.Valid, got.Reason, r.Known, r.Reason)
		}
		if r.Known && (!sameSide(got.Bids, r.Bids, true) || !sameSide(got.Asks, r.Asks, false)) {
			return fmt.Errorf("book at %s: %d/%d levels differ from the replay's %d/%d", bookview.FormatTime(at), len(got.Bids), len(got.Asks), len(r.Bids), len(r.Asks))
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", logical, err)
	}
	return checked
}

// sameSide reports whether levels (best first) are exactly the map's levels in order.
func sameSide(levels []bookview.Level, m map[int64]int64, desc bool) bool {
	if len(levels) != len(m) {
		return false
	}
	for i, l := range levels {
		if q, ok := m[l.Price]; !ok || q != l.Qty {
			return false
		}
		if i > 0 && (desc && levels[i-1].Price <= l.Price || !desc && levels[i-1].Price >= l.Price) {
			return false // bids from the highest down, asks from the lowest up
		}
	}
	return true
}

// checkCLI has chronicle-q, reading through the remote set's configuration (S3), print the
// book at instants of each partition and top-N rows; both equal bookview's answers.
func checkCLI(t *testing.T, s *tierSet, parts []string, rng *rand.Rand) {
	t.Helper()
	for _, logical := range parts {
		p, err := bookview.OpenDir(s.part(logical))
		if err != nil {
			t.Fatal(err)
		}
		lo, hi, _ := p.Span()
		at := lo + rng.Int63n(hi-lo+1)
		want, werr := p.BookAt(at, 5)
		rows := p.Rows(bookview.View{Kind: bookview.KindTop, N: 3})
		p.Close()
		part := strings.TrimPrefix(logical, "v1/")
		cmd := exec.Command(testenv.Bin("chronicle-q"), "--config", s.cfg, "book", "--json", "--depth", "5", part, bookview.FormatTime(at))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if werr != nil {
			if err == nil || !strings.HasPrefix(stderr.String(), "chronicle-q: ") {
				t.Fatalf("chronicle-q book %s at %s: %v %s, bookview says %v", part, bookview.FormatTime(at), err, stderr.String(), werr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("chronicle-q book %s: %v %s", part, err, stderr.String())
		}
		var j struct {
			Valid bool        `json:"valid"`
			Bids  [][2]string `json:"bids"`
			Asks  [][2]string `json:"asks"`
		}
		if err := json.Unmarshal(out, &j); err != nil {
			t.Fatal(err)
		}
		if j.Valid != want.Valid || len(j.Bids) != len(want.Bids) || len(j.Bids) > 0 && j.Bids[0][0] != format.FormatDecimal(want.Bids[0].Price, want.PriceDecimals) {
			t.Fatalf("chronicle-q book %s at %s: %s, bookview %+v", part, bookview.FormatTime(at), out, want)
		}
		out = []byte(proc.Run(t, testenv.Bin("chronicle-q"), "--config", s.cfg, "top", "--n", "3", part))
		recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil || int64(len(recs)-1) != rows {
			t.Fatalf("chronicle-q top %s: %d rows (%v), want %d", part, len(recs)-1, err, rows)
		}
	}
}

// TestViewsDamage: the real daemon serves a partition whose events index is damaged, and
// one whose book does not match its index, with EIO on their views and a log line naming
// them; the mount lives and another partition's views read.
func TestViewsDamage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts FUSE for real and must run as root")
	}
	dir := t.TempDir()
	c := kit.Get("usdm")
	j, r := filepath.Join(dir, "J"), filepath.Join(dir, "R")
	proc.Run(t, testenv.Bin("chronicle-feed"), append([]string{"replay", "--speed", "0", "--venue", c.Venue, "--journal-dir", j,
		"--metrics-addr", "", "--log-level", "warn"}, c.Paths(testenv.CapturesDir())...)...)
	proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--seal-all", "--root", r, j)
	warm := filepath.Join(dir, "warm")
	good := "v1/binance-perp/eth-usdt/2024-08-09"
	src := filepath.Join(r, filepath.FromSlash(good))
	copyTree(t, filepath.Join(r, "v1"), filepath.Join(warm, "v1"))
	badIdx, badBook := "v1/binance-perp/eth-usdt/2024-08-10", "v1/binance-perp/eth-usdt/2024-08-11"
	for _, p := range []string{badIdx, badBook} {
		copyTree(t, src, filepath.Join(warm, filepath.FromSlash(p)))
	}
	ev := filepath.Join(warm, filepath.FromSlash(badIdx), bookindex.Dir, bookindex.EventsName)
	b := testkit.ReadFile(t, ev)
	b[bookindex.HeaderSize+5] ^= 0x40
	os.WriteFile(ev, b, 0o644)
	// The other book loses its depth updates' LAST flags: the index promises rows it has not.
	bp := filepath.Join(warm, filepath.FromSlash(badBook), layout.BookName)
	bb := testkit.ReadFile(t, bp)
	for off := format.HeaderSize; off+64 <= len(bb); off += 64 {
		if binary.LittleEndian.Uint16(bb[off:]) == format.TypeLevel {
			bb[off+2] &^= byte(format.FlagLast)
		}
	}
	os.WriteFile(bp, bb, 0o644)

	mp := filepath.Join(dir, "mnt")
	os.MkdirAll(mp, 0o755)
	d := proc.Mount(t, exec.Command(testenv.Bin("chronicle-fs"), "mount", "--warm", warm, "--hot", "", "--cold", "", "--remote", "",
		"--metrics-addr", "", "--log-level", "info", "--log-format", "json", mp), mp, 20*time.Second, nil)
	for _, p := range []string{badIdx, badBook} {
		_, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(p), "views", "top10.npy"))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s views/top10.npy: %v, want EIO", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(good), "views", "top10.npy")); err != nil || len(b) < 1000 {
		t.Fatalf("intact partition: %d bytes, %v", len(b), err)
	}
	if _, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(badIdx), layout.BookName)); err != nil {
		t.Fatalf("book.q of the partition with the damaged index: %v", err)
	}
	testenv.WaitFor(t, "log lines naming both partitions", 5*time.Second, func() bool {
		out := d.Output()
		return strings.Contains(out, "2024-08-10") && strings.Contains(out, "2024-08-11") && strings.Contains(out, "corrupt")
	})
	select {
	case <-d.Done():
		t.Fatalf("chronicle-fs exited: %v", d.Err())
	default:
	}
}
