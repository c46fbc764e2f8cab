package stub

import (
	"encoding/json"
	"errors"
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
	if *got != *s {
		t.Fatalf("round trip %+v != %+v", got, s)
	}
	for name, in := range map[string]string{
		"unknown field": strings.Replace(string(b), `"version": 1`, `"version": 1, "cmd": "rm -rf /"`, 1),
		"trailing":      string(b) + "{}",
		"not json":      "hello",
		"empty":         "",
		"huge":          strings.Repeat(" ", maxSize+1),
	} {
		if _, err := Parse([]byte(in), "x.json"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
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
