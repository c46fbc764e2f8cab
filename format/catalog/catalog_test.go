package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/klauspost/compress/zstd"
)

func testStub(date, slot string) *stub.Stub {
	h := strings.Repeat("ab", 32)
	dir := "s3://b/p/v1/binance-perp/eth-usdt/" + date + "/"
	if slot != "" {
		dir += slot + "/"
	}
	return &stub.Stub{Format: stub.Format, Version: stub.Version,
		Zst:              stub.Object{URI: dir + "book.q.zst", Size: 100, ETag: "x", SHA256: h},
		Idx:              stub.Object{URI: dir + "book.q.zst.idx", Size: 10, ETag: "y", SHA256: h},
		UncompressedSize: 1000, HeaderSize: 4096 % 1000, UploadedAt: time.Unix(1700000000, 0).UTC(),
		Files: []stub.File{{Name: "meta.json", Size: 5, SHA256: h}, {Name: "derived/book.parquet", Size: 9, SHA256: h}},
		Host:  "capture-a", Slot: slot, Claim: strings.Repeat("c3", 16),
	}
}

func testCatalog() *Catalog {
	k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-09"}
	return &Catalog{Host: "capture-a", Venue: "binance-perp", Symbol: "eth-usdt", WrittenAt: time.Unix(1700000001, 0).UTC(),
		Versions: []Entry{
			{Date: "2024-08-09", Slot: "", Stub: testStub("2024-08-09", ""), Hive: layout.HiveRel(k)},
			{Date: "2024-08-08", Slot: "hosts/capture-a", Stub: testStub("2024-08-08", "hosts/capture-a")},
			{Date: "2024-08-08", Slot: "merged", Stub: testStub("2024-08-08", "merged")},
		}}
}

// rawJSON returns the catalog's JSON as written, for edits.
func rawJSON(t *testing.T, c *Catalog) string {
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := zstd.NewReader(nil)
	defer d.Close()
	raw, err := d.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func compress(s string) []byte {
	e, _ := zstd.NewWriter(nil)
	defer e.Close()
	return e.EncodeAll([]byte(s), nil)
}

func TestRoundTrip(t *testing.T) {
	c := testCatalog()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b, "cat")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n%+v\n%+v", got, c)
	}
	if got.Versions[0].Date != "2024-08-08" || got.Versions[0].Slot != "hosts/capture-a" || got.Versions[1].Slot != "merged" {
		t.Fatalf("not sorted by date and slot: %+v", got.Versions)
	}
	if e := got.Find("2024-08-08", "merged"); e == nil || e.Stub.Slot != "merged" {
		t.Fatalf("Find merged: %+v", e)
	}
	if e := got.Find("2024-08-08", ""); e != nil {
		t.Fatalf("Find of an absent slot: %+v", e)
	}
}

func TestInvalid(t *testing.T) {
	good := rawJSON(t, testCatalog())
	for name, in := range map[string]string{
		"not json":       "hello",
		"unknown field":  strings.Replace(good, `"host":"capture-a",`, `"host":"capture-a","cmd":1,`, 1),
		"trailing":       good + "{}",
		"format":         strings.Replace(good, Format, "other", 1),
		"version":        strings.Replace(good, `"version":1,"host"`, `"version":2,"host"`, 1),
		"host":           strings.Replace(good, `"host":"capture-a","venue"`, `"host":"A B","venue"`, 1),
		"venue":          strings.Replace(good, `"venue":"binance-perp"`, `"venue":"../x"`, 1),
		"date":           strings.Replace(good, `"date":"2024-08-09"`, `"date":"2024-02-30"`, 1),
		"slot":           strings.Replace(good, `"slot":"merged"`, `"slot":"other"`, 1),
		"other host":     strings.ReplaceAll(good, `hosts/capture-a`, `hosts/capture-b`),
		"unsorted":       strings.Replace(good, `"date":"2024-08-09"`, `"date":"2024-08-01"`, 1),
		"no stub":        strings.Replace(good, `"stub":{`, `"stub":null,"x":{`, 1),
		"stub slot":      strings.Replace(good, `"slot":"merged","stub":{`, `"slot":"","stub":{`, 1),
		"bad stub":       strings.Replace(good, `"size":100`, `"size":-1`, 1),
		"stub host":      strings.Replace(good, `"host":"capture-a","slot":"merged"`, `"host":"capture-b","slot":"merged"`, 1),
		"wrong hive key": strings.Replace(good, `date=2024-08-09`, `date=2024-08-10`, 1),
	} {
		if in == good {
			t.Fatalf("%s: the edit did not apply", name)
		}
		if _, err := Parse(compress(in), "cat"); !errors.Is(err, ErrInvalid) && !errors.Is(err, stub.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		} else if !strings.Contains(err.Error(), "cat") {
			t.Errorf("%s: %v does not name the object", name, err)
		}
	}
	if _, err := Parse([]byte("plain json"), "cat"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("uncompressed: %v", err)
	}
	if _, err := Parse(make([]byte, MaxCompressed+1), "cat"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestNames(t *testing.T) {
	k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}
	if got := Key("binance-perp", "eth-usdt", "cap.a"); got != "catalog/v1/binance-perp/eth-usdt/cap.a.json.zst" {
		t.Fatal(got)
	}
	if got := PendingKey(k, "cap.a"); got != "catalog/v1/binance-perp/eth-usdt/cap.a.pending.2024-08-08" {
		t.Fatal(got)
	}
	for in, want := range map[string]Name{
		"cap.a.json.zst":                {Host: "cap.a"},
		"cap.a.pending.2024-08-08":      {Host: "cap.a", Date: "2024-08-08", Pending: true},
		"x.pending.2024-08-08.json.zst": {Host: "x.pending.2024-08-08"},
	} {
		if got, ok := ParseName(in); !ok || got != want {
			t.Errorf("ParseName(%q) = %+v %v, want %+v", in, got, ok, want)
		}
	}
	for _, in := range []string{"cap.a.json", ".x.json.zst", "a.pending.2024-13-01", "A.json.zst", "a.pending."} {
		if n, ok := ParseName(in); ok {
			t.Errorf("ParseName(%q) = %+v, want refused", in, n)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, err := testCatalog().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(compress(`{"format":"chronicle-catalog","version":1,"host":"a","venue":"v","symbol":"s","written_at":"2024-01-01T00:00:00Z","versions":[]}`))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, stub.ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// What parses encodes again and parses to the same catalog.
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed catalog: %v", err)
		}
		again, err := Parse(out, "again")
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		a, _ := json.Marshal(c)
		b2, _ := json.Marshal(again)
		if string(a) != string(b2) {
			t.Fatalf("round trip differs:\n%s\n%s", a, b2)
		}
	})
}
