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
