package fsmount

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

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
