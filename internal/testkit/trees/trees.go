// Package trees reads the partition trees a refinery writes into maps of relative path to
// bytes and compares two of them byte for byte: the check of tests that refine the same
// journal twice (killed, power cut, live against a backfill) and want the same output.
package trees

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
)

// Refined maps every file below root, outside the refinery's state (.chronicle-etl), to
// its bytes, with meta.json's ingest_time zeroed: the only field that is not a function
// of the journal.
func Refined(t testing.TB, root string) map[string][]byte {
	t.Helper()
	return read(t, root, root, false)
}

// Served maps every file of the partitions below root/v1 (book.q, meta.json with its
// ingest time zeroed, index/...) to its bytes, keyed relative to root; book.npy and views/,
// which the mount makes up, are left out, and each book.q is cut to its committed records. Through a
// mount, each book.q reads from whatever tier holds it.
func Served(t testing.TB, root string) map[string][]byte {
	t.Helper()
	return read(t, root, filepath.Join(root, "v1"), true)
}

// read walks dir below root (not entering .chronicle-etl); served is Served's treatment
// of book.npy and book.q.
func read(t testing.TB, root, dir string, served bool) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if fi.Name() == ".chronicle-etl" || served && fi.Name() == "views" && p != dir {
				return filepath.SkipDir // views/ is made up by the mount, like book.npy
			}
			return nil
		}
		if served && fi.Name() == "book.npy" {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if fi.Name() == meta.FileName {
			m, err := meta.Parse(b, p)
			if err != nil {
				return err
			}
			m.IngestTime = 0
			if b, err = meta.Marshal(m); err != nil {
				return err
			}
		}
		if served && fi.Name() == "book.q" {
			// A growing book's file runs past its committed records (the writer grows it
			// in chunks); what it holds is the committed part.
			h, err := format.ReadHeader(bytes.NewReader(b), int64(len(b)), p)
			if err != nil {
				return err
			}
			b = b[:h.Committed]
		}
		out[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Same fails the test unless want and got hold the same files with the same bytes (and
// want is not empty); what names the comparison.
func Same(t testing.TB, want, got map[string][]byte, what string) {
	t.Helper()
	var a, b []string
	for k := range want {
		a = append(a, k)
	}
	for k := range got {
		b = append(b, k)
	}
	sort.Strings(a)
	sort.Strings(b)
	if len(a) == 0 || strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("%s: files differ:\nwant %v\ngot  %v", what, a, b)
	}
	for _, k := range a {
		if !bytes.Equal(want[k], got[k]) {
			t.Fatalf("%s: %s differs (%d vs %d bytes)", what, k, len(want[k]), len(got[k]))
		}
	}
}
