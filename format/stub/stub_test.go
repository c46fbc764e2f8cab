package stub

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jsonMarshalRaw encodes a stub without Marshal's normalisation of format and version.
func jsonMarshalRaw(s *Stub) ([]byte, error) { return json.Marshal(s) }

func validStub() *Stub {
	h := strings.Repeat("ab", 32)
	return &Stub{
		Zst:              Object{URI: "s3://b/p/v1/binance-perp/eth-usdt/2024-08-08/book.q.zst", Size: 100, ETag: "x", SHA256: h},
		Idx:              Object{URI: "s3://b/p/v1/binance-perp/eth-usdt/2024-08-08/book.q.zst.idx", Size: 10, ETag: "y", SHA256: h},
		UncompressedSize: 1000, UploadedAt: time.Unix(1700000000, 0).UTC(),
		Files: []File{{Name: "meta.json", Size: 5, SHA256: h}, {Name: "index/time.idx", Size: 0, SHA256: h}},
	}
}

func TestStubRoundTrip(t *testing.T) {
	s := validStub()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b, "x.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip %+v != %+v", got, s)
	}
	for name, in := range map[string]string{
		"unknown field": strings.Replace(string(b), `"version": 2`, `"version": 2, "cmd": "rm -rf /"`, 1),
		"trailing":      string(b) + "{}",
		"not json":      "hello",
		"empty":         "",
		"huge":          strings.Repeat(" ", maxSize+1),
		"v1 with files": strings.Replace(string(b), `"version": 2`, `"version": 1`, 1),
		"v3":            strings.Replace(string(b), `"version": 2`, `"version": 3`, 1),
		"book as file":  strings.Replace(string(b), `"meta.json"`, `"book.q"`, 1),
		"escape":        strings.Replace(string(b), `"meta.json"`, `"../x"`, 1),
		"hidden":        strings.Replace(string(b), `"meta.json"`, `".x"`, 1),
		"temp":          strings.Replace(string(b), `"meta.json"`, `"index/x.tmp-1"`, 1),
		"absolute":      strings.Replace(string(b), `"meta.json"`, `"/etc/passwd"`, 1),
		"twice":         strings.Replace(string(b), `"index/time.idx"`, `"meta.json"`, 1),
		"negative size": strings.Replace(string(b), `"size": 5`, `"size": -5`, 1),
	} {
		if _, err := Parse([]byte(in), "x.json"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVersion1StillReads(t *testing.T) {
	s := validStub()
	s.Files = nil
	b, _ := s.Marshal()
	b = []byte(strings.Replace(string(b), `"version": 2`, `"version": 1`, 1))
	got, err := Parse(b, "v1.json")
	if err != nil || got.Version != 1 || len(got.Files) != 0 {
		t.Fatalf("version 1 stub: %+v %v", got, err)
	}
}

func FuzzParse(f *testing.F) {
	b, _ := validStub().Marshal()
	f.Add(b)
	f.Add([]byte(`{"format":"chronicle-remote-stub","version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b, "fuzz.json")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if s.Zst.Size <= 0 || s.Idx.Size <= 0 || len(s.Zst.SHA256) != 64 || s.UncompressedSize < 0 {
			t.Fatalf("accepted inconsistent stub %+v", s)
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out, "re.json"); err != nil {
			t.Fatalf("re-encoded stub rejected: %v", err)
		}
	})
}
