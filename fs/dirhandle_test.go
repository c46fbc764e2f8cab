package fs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// TestReaddirPlusAnswersDirectories: a listing hands the kernel its sub-directories (the
// daemon looked them up: they are in its tree before anyone asked for them by name) and no
// file (a view's attributes render its partition's views; a book's may fetch a stub); with
// readdirplus off nothing is looked up until asked.
func TestReaddirPlusAnswersDirectories(t *testing.T) {
	for _, plus := range []bool{true, false} {
		roots := testkit.Roots(t)
		dates := []string{"2024-08-07", "2024-08-08", "2024-08-09"}
		for _, d := range dates {
			testkit.PlacePlain(t, roots.Warm, keyOn(d), testkit.Book(t, keyOn(d), 100, 1))
		}
		tm := mountTiers(t, roots, nil, func(c *Config) { c.ReaddirPlus = plus })
		part := tm.path(keyOn(dates[0]), "")
		if _, err := os.Stat(filepath.Join(part, "..", "..")); err != nil { // the venue: no partition looked up yet
			t.Fatal(err)
		}
		if _, err := os.ReadDir(filepath.Dir(part)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(part); err != nil {
			t.Fatal(err) // a lookup (the first date), so that the daemon knows one partition
		}
		sym := tm.inode(t, filepath.Dir(part))
		var got []string
		for name := range sym.Children() {
			got = append(got, name)
		}
		slices.Sort(got)
		want := dates
		if !plus {
			want = dates[:1] // only the one stat looked up
		}
		if !slices.Equal(got, want) {
			t.Fatalf("readdirplus %v: after ls of the symbol the daemon holds %q, want %q", plus, got, want)
		}
		ents, err := os.ReadDir(part)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == ViewsDir && e.IsDir() }) {
			t.Fatalf("partition lists %v, want views/ among them", ents)
		}
		if plus {
			p := tm.inode(t, part)
			if p.GetChild(ViewsDir) == nil {
				t.Fatal("after ls of a partition its views/ was not answered with the listing")
			}
			for name, ch := range p.Children() {
				if !ch.IsDir() {
					t.Fatalf("ls of a partition looked up the file %s", name)
				}
			}
		}
		// Everything still reads.
		if b := readFile(t, filepath.Join(part, layout.BookName)); len(b) == 0 {
			t.Fatal("empty book")
		}
	}
}

// TestGonePartitionNameDropped: partition directories' names and attributes are kept long
// (readdirplus hands them out for a whole walk), so the watch must drop them when the
// partition goes: stat fails soon after, not an hour later.
func TestGonePartitionNameDropped(t *testing.T) {
	roots := testkit.Roots(t)
	k := keyOn("2024-08-07")
	testkit.PlacePlain(t, roots.Warm, k, testkit.Book(t, k, 100, 1))
	tm := mountTiers(t, roots, nil, nil)
	part := tm.path(k, "")
	if _, err := os.ReadDir(filepath.Dir(part)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(filepath.Join(part, ViewsDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(testkit.PartDir(roots.Warm, k)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(part)
		_, verr := os.Stat(filepath.Join(part, ViewsDir))
		if errors.Is(err, fs.ErrNotExist) && errors.Is(verr, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the partition went: stat %v, stat of its views/ %v; want both gone", err, verr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inode is the daemon's node of a directory of the mount at or above a partition the
// daemon knows (it climbs from one to the root, then walks down p).
func (tm *testMount) inode(t *testing.T, p string) *gofs.Inode {
	t.Helper()
	parts := tm.fs.partList()
	if len(parts) == 0 {
		t.Fatal("the daemon knows no partition")
	}
	cur := &parts[0].Inode
	for {
		_, parent := cur.Parent()
		if parent == nil {
			break
		}
		cur = parent
	}
	rel, err := filepath.Rel(tm.dir, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(filepath.ToSlash(rel), "/") {
		if cur = cur.GetChild(name); cur == nil {
			t.Fatalf("%s: not in the daemon's tree", p)
		}
	}
	return cur
}
