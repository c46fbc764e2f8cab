package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/tiermove"
	"github.com/chronicle/chronicle/layout"
	"golang.org/x/sys/unix"
)

// TestMoveWhileReading moves two partitions warm -> cold -> remote while readers hash them
// in a loop (reopening each time) and another reader keeps one descriptor open across both
// moves. Every read must succeed with the original bytes; afterwards new opens are served
// by the remote tier with the same inode numbers.
func TestMoveWhileReading(t *testing.T) {
	seed := testkit.Seed(t)
	roots := testkit.Roots(t)
	store := testkit.FileStore(t)
	held, free := keyOn("2024-08-08"), keyOn("2024-08-09")
	books := map[layout.Key][]byte{held: testkit.Book(t, held, 40000, seed), free: testkit.Book(t, free, 30000, seed+1)}
	for k, b := range books {
		testkit.PlacePlain(t, roots.Warm, k, b)
	}
	tm := mountTiers(t, roots, store, nil)
	var inos = map[layout.Key]uint64{}
	for k := range books {
		fi, err := os.Stat(tm.path(k, layout.BookName))
		if err != nil {
			t.Fatal(err)
		}
		inos[k] = fi.Sys().(*syscall.Stat_t).Ino
	}

	loops := testkit.NewLoops(t)
	var hashes atomic.Int64
	for k, want := range books {
		wantSum := testkit.SHA256(want)
		for range 2 {
			loops.Go(func() error {
				sum, n, err := testkit.HashFile(tm.path(k, layout.BookName))
				if err != nil || sum != wantSum || n != int64(len(want)) {
					return fmt.Errorf("%s: hash loop: %d bytes, match %v, err %v", k.Date, n, sum == wantSum, err)
				}
				hashes.Add(1)
				return nil
			})
		}
	}
	f, err := os.Open(tm.path(held, layout.BookName))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed))
	want := books[held]
	buf := make([]byte, 256<<10)
	loops.Go(func() error {
		off := rng.Int63n(int64(len(want)))
		n, err := f.ReadAt(buf[:1+rng.Intn(len(buf))], off)
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			return fmt.Errorf("held descriptor: pread at %d: %d bytes, %v", off, n, err)
		}
		return nil
	})

	pause := func() { time.Sleep(300 * time.Millisecond) }
	pause()
	for k := range books {
		if err := tiermove.WarmToCold(roots.Warm, roots.Cold, k, 256<<10); err != nil {
			t.Fatal(err)
		}
	}
	pause()
	for k := range books {
		if err := tiermove.ColdToRemote(roots.Cold, store, k); err != nil {
			t.Fatal(err)
		}
	}
	pause()
	loops.Stop()
	f.Close()
	if loops.Errs.Load() > 0 {
		t.FailNow()
	}
	t.Logf("%d whole-file hashes through the moves", hashes.Load())

	// Once every handle is released, a new open is served by the remote tier.
	before := tm.fs.Stats().Reads[layout.Remote]
	deadline := time.Now().Add(5 * time.Second)
	for tm.fs.Stats().Reads[layout.Remote] == before {
		if time.Now().After(deadline) {
			t.Fatal("reads never reached the remote tier after the moves")
		}
		if got := readUncached(t, tm.path(free, layout.BookName)); !bytes.Equal(got, books[free]) {
			t.Fatal("remote bytes differ")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for k := range books {
		p := tm.path(k, layout.BookName)
		if got := xattr(t, p, XattrTier); got != "remote" {
			t.Errorf("%s: tier %q after the moves", k.Date, got)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if ino := fi.Sys().(*syscall.Stat_t).Ino; ino != inos[k] {
			t.Errorf("%s: inode %d after the moves, was %d", k.Date, ino, inos[k])
		}
		if got := readFile(t, tm.path(k, layout.MetaName)); !bytes.Equal(got, testkit.Meta(k)) {
			t.Errorf("%s: meta.json after the moves: %q", k.Date, got)
		}
	}
}

// TestSealWhileOpen opens a growing book (served through the page cache), seals it, and
// opens it again while the first descriptor is still open. The kernel refuses a
// passthrough open of an inode that has a cached open (the open would fail with EIO), so
// the second open must be served too; once all are closed, passthrough returns.
func TestSealWhileOpen(t *testing.T) {
	seed := testkit.Seed(t)
	roots := testkit.Roots(t)
	k := testkit.Key
	g := testkit.NewGrowing(t, roots.Hot, k, seed)
	for range 1000 {
		if err := g.Append(); err != nil {
			t.Fatal(err)
		}
	}
	tm := mountTiers(t, roots, nil, nil)
	p := tm.path(k, layout.BookName)
	a, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	first, err := io.ReadAll(a)
	if err != nil || int64(len(first)) != format.HeaderSize+1000*format.BookRecordSize {
		t.Fatalf("growing book: %d bytes, %v", len(first), err)
	}
	if got := xattr(t, p, XattrSealed); got != "false" {
		t.Fatalf("sealed = %q while growing", got)
	}
	if err := g.A.Seal(); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // growing attribute timeout
	for i := range 3 {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("open %d after sealing, first descriptor still open: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("open %d after sealing: %d bytes differ from the sealed file (%d)", i, len(got), len(want))
		}
	}
	if got := xattr(t, p, XattrSealed); got != "true" {
		t.Fatalf("sealed = %q after Seal", got)
	}
	a.Close()
	if !tm.m.PassthroughOffered() {
		return
	}
	before := tm.fs.Stats().OpensPassthrough[layout.Hot]
	deadline := time.Now().Add(5 * time.Second)
	for tm.fs.Stats().OpensPassthrough[layout.Hot] == before {
		if time.Now().After(deadline) {
			t.Fatal("no passthrough open after every served handle was closed")
		}
		if got := readFile(t, p); !bytes.Equal(got, want) {
			t.Fatal("bytes differ")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGrowingVisible appends records to a hot book while a reader polls it through the
// mount the way `tail -f` does: every record must arrive, whole and in order. The delay
// between commit and visibility is logged (no threshold: it depends on the machine).
func TestGrowingVisible(t *testing.T) {
	seed := testkit.Seed(t)
	roots := testkit.Roots(t)
	k := testkit.Key
	g := testkit.NewGrowing(t, roots.Hot, k, seed)
	if err := g.Append(); err != nil {
		t.Fatal(err)
	}
	tm := mountTiers(t, roots, nil, nil)
	const total = 3000
	writerErr := make(chan error, 1)
	go func() {
		for g.N < total {
			if err := g.Append(); err != nil {
				writerErr <- err
				return
			}
			if g.N%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		writerErr <- g.A.Seal()
	}()
	f, err := os.Open(tm.path(k, layout.BookName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lat []time.Duration
	off, next := int64(format.HeaderSize), int64(0)
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(30 * time.Second)
	for next < total {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d of %d records", next, total)
		}
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
		n -= n % format.BookRecordSize
		now := time.Now().UnixNano()
		for i := 0; i < n; i += format.BookRecordSize {
			r := format.DecodeBook(buf[i : i+format.BookRecordSize])
			want := books.Record(seed, next)
			want.Aux1 = r.Aux1
			if r != want {
				t.Fatalf("record %d: %+v, want %+v", next, r, want)
			}
			lat = append(lat, time.Duration(now-r.Aux1))
			next++
		}
		off += int64(n)
		if n == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	if err := <-writerErr; err != nil {
		t.Fatal(err)
	}
	if n, err := f.ReadAt(buf, off); n != 0 || err != io.EOF {
		t.Fatalf("after the last record: %d bytes, %v", n, err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("%d records seen in order; commit-to-visible p50 %v p99 %v max %v (growing_timeout %v, 200us poll)",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], tm.fs.cfg.GrowingTimeout)
}

// readUncached drops the file's pages from the kernel's cache first, so the read reaches the
// daemon (sealed books keep their page cache across opens).
func readUncached(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSmallFilesFollowMove: meta.json may differ between tiers and a file may exist in one
// tier only. With directory and small-file timeouts long enough that the kernel would never
// ask again by itself, the watcher must drop what it cached when the partition moves.
func TestSmallFilesFollowMove(t *testing.T) {
	roots := testkit.Roots(t)
	k := testkit.Key
	testkit.PlacePlain(t, roots.Warm, k, testkit.Book(t, k, 1000, 1))
	testkit.WriteFileSync(t, filepath.Join(testkit.PartDir(roots.Warm, k), "warm-only.txt"), []byte("warm\n"))
	tm := mountTiers(t, roots, nil, func(c *Config) {
		c.DirTimeout, c.NegativeTimeout = time.Hour, time.Hour
	})
	if got := readFile(t, tm.path(k, layout.MetaName)); !bytes.Equal(got, testkit.Meta(k)) {
		t.Fatalf("meta.json %q", got)
	}
	readFile(t, tm.path(k, "warm-only.txt"))
	if _, err := os.Stat(tm.path(k, "cold-only.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	// The cold copy of meta.json says more (a mover may record the move), and cold has a file
	// warm had not.
	cm := meta.New(k.Venue, k.Date, k.Symbol, 1)
	cm.Source.Note = "moved by the tier manager"
	coldMeta := meta.MustMarshal(cm)
	cd := testkit.PartDir(roots.Cold, k)
	testkit.WriteFileSync(t, filepath.Join(cd, layout.MetaName), coldMeta)
	testkit.WriteFileSync(t, filepath.Join(cd, "cold-only.txt"), []byte("cold\n"))
	if err := os.Remove(filepath.Join(testkit.PartDir(roots.Warm, k), "warm-only.txt")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(testkit.PartDir(roots.Warm, k), layout.MetaName))
	if err := tiermove.WarmToCold(roots.Warm, roots.Cold, k, 64<<10); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		meta, err := os.ReadFile(tm.path(k, layout.MetaName))
		_, errGone := os.Stat(tm.path(k, "warm-only.txt"))
		cold, errNew := os.ReadFile(tm.path(k, "cold-only.txt"))
		if err == nil && bytes.Equal(meta, coldMeta) && errors.Is(errGone, os.ErrNotExist) && errNew == nil && string(cold) == "cold\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the move: meta.json %q (%v), warm-only: %v, cold-only %q (%v)", meta, err, errGone, cold, errNew)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
