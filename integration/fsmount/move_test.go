package fsmount

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"golang.org/x/sys/unix"
)

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
		t.Run(backend, func(t *testing.T) { testMove(t, backend, false) })
	}
	// The same with the tier manager's own mover (tiers/lifecycle) doing the moves.
	t.Run("lifecycle", func(t *testing.T) { testMove(t, "file", true) })
}

// mover moves one partition to the next tier down.
type mover func(k layout.Key, to layout.Tier) error

func testMover(t *testing.T, e *env, useLifecycle bool) mover {
	if !useLifecycle {
		return func(k layout.Key, to layout.Tier) error {
			if to == layout.Cold {
				return testkit.MoveWarmToCold(e.roots.Warm, e.roots.Cold, k, 256<<10)
			}
			return testkit.MoveColdToRemote(e.roots.Cold, e.store, k)
		}
	}
	cfg := lifecycle.DefaultConfig()
	cfg.BlockSize = 256 << 10
	m, err := lifecycle.New(lifecycle.Options{Config: cfg, Roots: e.roots, Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	return func(k layout.Key, to layout.Tier) error {
		mv := lifecycle.Move{Key: k, Policy: lifecycle.WarmToCold, From: layout.Warm, To: layout.Cold}
		if to == layout.Remote {
			mv = lifecycle.Move{Key: k, Policy: lifecycle.ColdToRemote, From: layout.Cold, To: layout.Remote}
		}
		return m.Move(context.Background(), mv, nil)
	}
}

// testMove moves two partitions warm -> cold -> remote (copying, fsyncing, renaming and
// deleting as the tier manager does, or with the tier manager's mover itself), while readers work on them through the mount:
//   - "held": a Python process keeps numpy mappings of book.q and book.npy made before the
//     moves, and a Go reader keeps one descriptor open for pread;
//   - "free": Go readers reopen and hash book.q and book.npy in a loop, dropping the page
//     cache each time so every pass is served by whatever tier the open resolved.
//
// Zero errors and zero mismatches are allowed, and the metrics must show that cold and
// remote actually served reads during the moves.
func testMove(t *testing.T, backend string, useLifecycle bool) {
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
	move := testMover(t, e, useLifecycle)
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

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errs, passes atomic.Int64
	fail := func(format string, args ...any) {
		errs.Add(1)
		t.Errorf(format, args...)
	}
	loop := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(); err != nil {
					fail("%v", err)
					return
				}
				passes.Add(1)
			}
		}()
	}
	wantBook := testkit.SHA256(books[free])
	wantNPY := sha256Tail(books[free][format.HeaderSize:])
	for range 2 {
		loop(func() error {
			sum, n, err := hashUncached(path(free, layout.BookName), 0)
			if err != nil || sum != wantBook {
				return fmt.Errorf("free book.q: %d bytes, digest match %v: %v", n, sum == wantBook, err)
			}
			return nil
		})
	}
	loop(func() error {
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
	loop(func() error {
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
	close(stop)
	wg.Wait()
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
		passes.Load(), pyLoops, coldBytes, remoteBytes)
	if errs.Load() > 0 {
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
