package fileutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, body := range []string{"one\n", "two\n"} {
		if err := WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != body {
			t.Fatalf("read %q, %v; want %q", b, err, body)
		}
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	es, _ := os.ReadDir(dir)
	if len(es) != 1 {
		t.Fatalf("left behind: %v", es)
	}
	// A failed write names the file and leaves the old content.
	if err := WriteFile(filepath.Join(dir, "no", "such"), []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "no/such") {
		t.Fatalf("err %v", err)
	}
}

func TestMkdirAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "c")
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(f, 0o755); err == nil {
		t.Fatal("a file taken for a directory")
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err %v", err)
	}
}

func TestEncodeJSON(t *testing.T) {
	b, err := EncodeJSON(map[string]int{"a": 1})
	if err != nil || string(b) != "{\n  \"a\": 1\n}\n" {
		t.Fatalf("%q %v", b, err)
	}
}

func TestTempNames(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "book.q.zst")
	if got := TempName(final, "x1"); got != filepath.Join(dir, ".book.q.zst.tmp-x1") {
		t.Fatalf("TempName %q", got)
	}
	f, err := CreateTemp(final)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	base := filepath.Base(f.Name())
	if !strings.HasPrefix(base, ".book.q.zst.tmp-") || !IsTemp(base) {
		t.Fatalf("CreateTemp made %q", base)
	}
	for _, n := range []string{"book.q", ".hidden", "book.q.tmp-1", "meta.json"} {
		if IsTemp(n) {
			t.Errorf("IsTemp(%q)", n)
		}
	}
	// RemoveTemps takes the temporaries, spares what keep accepts, and leaves the rest.
	keep := filepath.Base(TempName(final, "intent"))
	for _, n := range []string{keep, "book.q", ".hidden"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".d.tmp-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTemps(dir, func(n string) bool { return n == keep }); err != nil {
		t.Fatal(err)
	}
	var left []string
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != ".book.q.zst.tmp-intent .d.tmp-1 .hidden book.q" {
		t.Fatalf("left %v", left)
	}
	if err := RemoveTemps(filepath.Join(dir, "missing"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestWriteJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	if err := WriteJSON(p, map[string]int{"n": 2}, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "{\n  \"n\": 2\n}\n" {
		t.Fatalf("%q %v", b, err)
	}
	if err := WriteJSON(p, func() {}, 0o600); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("unencodable value: %v", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	type doc struct {
		A int `json:"a"`
	}
	var d doc
	if err := DecodeJSON([]byte(`{"a": 1}`+"\n"), &d); err != nil || d.A != 1 {
		t.Fatalf("%+v, %v", d, err)
	}
	for _, bad := range []string{`{"a": 1, "b": 2}`, `{"a": 1} {}`, `{"a": "x"}`, `{"a":`, ``} {
		if err := DecodeJSON([]byte(bad), &d); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
