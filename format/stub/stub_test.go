package stub

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/layout"
)

func validStub() *Stub {
	h := strings.Repeat("ab", 32)
	return &Stub{
		Zst:              Object{URI: "s3://b/p/v1/binance-perp/eth-usdt/2024-08-08/book.q.zst", Size: 100, ETag: "x", SHA256: h},
		Idx:              Object{URI: "s3://b/p/v1/binance-perp/eth-usdt/2024-08-08/book.q.zst.idx", Size: 10, ETag: "y", SHA256: h},
		UncompressedSize: 1000, UploadedAt: time.Unix(1700000000, 0).UTC(),
		Files: []File{{Name: "meta.json", Size: 5, SHA256: h}, {Name: "index/time.idx", Size: 0, SHA256: h}},
		Host:  "capture-a", Claim: strings.Repeat("c3", 16),
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
		"unknown field": strings.Replace(string(b), `"version": 3`, `"version": 3, "cmd": "rm -rf /"`, 1),
		"trailing":      string(b) + "{}",
		"not json":      "hello",
		"empty":         "",
		"huge":          strings.Repeat(" ", maxSize+1),
		"v1 with files": strings.Replace(string(b), `"version": 3`, `"version": 1`, 1),
		"v2 with host":  strings.Replace(string(b), `"version": 3`, `"version": 2`, 1),
		"v4":            strings.Replace(string(b), `"version": 3`, `"version": 4`, 1),
		"no host":       strings.Replace(string(b), `"host": "capture-a"`, `"host": ""`, 1),
		"bad host":      strings.Replace(string(b), `"host": "capture-a"`, `"host": "Capture A"`, 1),
		"bad claim":     strings.Replace(string(b), `"claim": "c3`, `"claim": "C3`, 1),
		"bad slot":      strings.Replace(string(b), `"host": "capture-a"`, `"host": "capture-a", "slot": "hosts/../x"`, 1),
		"other slot":    strings.Replace(string(b), `"host": "capture-a"`, `"host": "capture-a", "slot": "elsewhere"`, 1),
		"file in hosts": strings.Replace(string(b), `"meta.json"`, `"hosts/b/meta.json"`, 1),
		"file merged":   strings.Replace(string(b), `"meta.json"`, `"merged/meta.json"`, 1),
		"claim as file": strings.Replace(string(b), `"meta.json"`, `"book.q.zst.claim"`, 1),
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
	s.Files, s.Host, s.Claim, s.Version = nil, "", "", 1
	b, _ := s.Marshal()
	got, err := Parse(b, "v1.json")
	if err != nil || got.Version != 1 || len(got.Files) != 0 {
		t.Fatalf("version 1 stub: %+v %v", got, err)
	}
}

func FuzzParse(f *testing.F) {
	b, _ := validStub().Marshal()
	consistent := func(t *testing.T, s *Stub) {
		if s.Zst.Size <= 0 || s.Idx.Size <= 0 || len(s.Zst.SHA256) != 64 || s.UncompressedSize < 0 {
			t.Fatalf("accepted inconsistent stub %+v", s)
		}
	}
	fuzzDocument(f, Parse, consistent, b, []byte(`{"format":"chronicle-remote-stub","version":1}`))
}

// A version's stub names its slot's objects, and only those.
func TestSlotKeys(t *testing.T) {
	k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}
	store := uriRoot("s3://b/p/")
	s := validStub()
	if _, _, err := s.Validate(store, k, "x"); err != nil {
		t.Fatalf("slot \"\": %v", err)
	}
	s.Slot = HostSlot("capture-b")
	if _, _, err := s.Validate(store, k, "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a hosts/ slot naming the key's own objects validated: %v", err)
	}
	zk, ik := KeysIn(k, s.Slot)
	s.Zst.URI, s.Idx.URI = "s3://b/p/"+zk, "s3://b/p/"+ik
	if gz, gi, err := s.Validate(store, k, "x"); err != nil || gz != "v1/binance-perp/eth-usdt/2024-08-08/hosts/capture-b/book.q.zst" || gi != ik {
		t.Fatalf("hosts/capture-b: %q %q %v", gz, gi, err)
	}
	b, _ := s.Marshal()
	if got, err := Parse(b, "x"); err != nil || got.Slot != "hosts/capture-b" || SlotHost(got.Slot) != "capture-b" {
		t.Fatalf("round trip of a hosts/ slot: %+v %v", got, err)
	}
	for slot, ok := range map[string]bool{"": true, "merged": true, "hosts/a-1": true, "hosts/": false, "hosts/A": false, "hosts/a/b": false, "merged/x": false} {
		if ValidSlot(slot) != ok {
			t.Errorf("ValidSlot(%q) = %v", slot, !ok)
		}
	}
	if ClaimKey(k, "") != "v1/binance-perp/eth-usdt/2024-08-08/book.q.zst.claim" || ClaimsPrefix(k, "merged") != "v1/binance-perp/eth-usdt/2024-08-08/merged/claims/" {
		t.Fatalf("claim keys %q %q", ClaimKey(k, ""), ClaimsPrefix(k, "merged"))
	}
}

// uriRoot maps URIs below root to keys (objstore.Location.KeyOf without the checks).
type uriRoot string

func (r uriRoot) KeyOf(uri string) (string, error) {
	k, ok := strings.CutPrefix(uri, string(r))
	if !ok {
		return "", errors.New("outside")
	}
	return k, nil
}
