package vfs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFile: the file is replaced whole with the mode asked for, and no temporary file
// stays behind, after a success or a failure.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, s := range []string{"first", "second, longer"} {
		if err := WriteFile(OS{}, p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("read %q, want %q", b, s)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if err := WriteFile(OS{}, filepath.Join(dir, "missing", "x"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote into a missing directory")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("entries %v, want the file alone", ents)
	}
}

// TestMkdirAllThroughSymlink: a root that is a symbolic link to a directory is used, as
// os.MkdirAll would.
func TestMkdirAllThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(OS{}, filepath.Join(link, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(target, "a", "b")); err != nil || !st.IsDir() {
		t.Fatalf("stat: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(OS{}, filepath.Join(dir, "file", "x")); err == nil {
		t.Fatal("made a directory below a file")
	}
}
