package layout

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/fileutil"
)

func TestKey(t *testing.T) {
	k, err := NewKey("binance-perp", "eth-usdt", time.Date(2024, 8, 8, 23, 59, 59, 0, time.UTC))
	if err != nil || k.Dir() != "v1/binance-perp/eth-usdt/2024-08-08" {
		t.Fatalf("NewKey: %v %v", k, err)
	}
	for _, bad := range []Key{
		{Venue: "Binance", Symbol: "eth-usdt", Date: "2024-08-08"},
		{Venue: "binance-perp", Symbol: ".hidden", Date: "2024-08-08"},
		{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-8-8"},
		{Venue: "binance-perp", Symbol: strings.Repeat("x", 65), Date: "2024-08-08"},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("%+v validated: %v", bad, err)
		}
	}
}

func TestParseLogical(t *testing.T) {
	l, err := ParseLogical("/v1/binance-perp/eth-usdt/2024-08-08/index/time.idx")
	if err != nil {
		t.Fatal(err)
	}
	if l.Depth() != 5 || l.Key.Dir() != "v1/binance-perp/eth-usdt/2024-08-08" || l.Rest != "index/time.idx" ||
		l.Name() != "time.idx" || l.Rel() != "v1/binance-perp/eth-usdt/2024-08-08/index/time.idx" {
		t.Fatalf("parsed %+v", l)
	}
	if r, err := ParseLogical("v1"); err != nil || r.Depth() != 0 || r.Name() != "v1" || r.Rel() != "v1" {
		t.Fatalf("root: %+v %v", r, err)
	}
	for _, bad := range []string{"v2/x", "v1/../etc", "v1/a/b/20240808", "v1/a/b/2024-08-08/.x", "v1/a/b/2024-08-08/x\x00y", "v1/A"} {
		if _, err := ParseLogical(bad); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("%q parsed: %v", bad, err)
		}
	}
}

// FuzzParseLogical: whatever the mount is asked for, a parsed path stays inside its tier
// root (no "..", no empty or hidden component) and round-trips through Rel.
func FuzzParseLogical(f *testing.F) {
	for _, s := range []string{"v1", "v1/binance-perp/eth-usdt/2024-08-08/book.q", "v1/a/b/2024-02-30", "/v1//a", "v1/a/b/2024-08-08/index/../../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		l, err := ParseLogical(p)
		if err != nil {
			return
		}
		rel := l.Rel()
		for _, c := range strings.Split(rel, "/") {
			if c == "" || c == "." || c == ".." || strings.HasPrefix(c, ".") {
				t.Fatalf("%q parsed into %q", p, rel)
			}
		}
		again, err := ParseLogical(rel)
		if err != nil || again.Rel() != rel || again.Key != l.Key || again.Rest != l.Rest {
			t.Fatalf("%q -> %q does not round-trip: %+v %v", p, rel, again, err)
		}
	})
}

// TestValidDateAgreesWithTimeParse: the fast check accepts exactly what time.Parse does.
func TestValidDateAgreesWithTimeParse(t *testing.T) {
	for _, s := range []string{"2024-02-29", "2023-02-29", "2024-13-01", "2024-00-10", "2024-01-00", "2024-04-31",
		"0000-01-01", "9999-12-31", "2024-1-01", "2024-01-1x", "+024-01-01", "2024/01/01", "", "2024-01-011"} {
		_, err := time.Parse(DateLayout, s)
		if got, want := ValidDate(s), err == nil && len(s) == 10; got != want {
			t.Errorf("ValidDate(%q) = %v, time.Parse says %v", s, got, want)
		}
	}
	day := time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 20000; i++ {
		if s := day.AddDate(0, 0, i).Format(DateLayout); !ValidDate(s) {
			t.Fatalf("ValidDate(%q) = false", s)
		}
	}
}

// Every writer's temporary name (fileutil's one rule) is hidden from listings.
func TestIsTempKnowsTempName(t *testing.T) {
	for _, final := range []string{BookName, ZstName, "meta.json", "index/books.idx"} {
		if n := filepath.Base(fileutil.TempName(final, "x")); !IsTemp(n) || !fileutil.IsTemp(n) {
			t.Errorf("%s: temporary name %q not recognised", final, n)
		}
	}
}
