package capture

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

var captures = testenv.CapturesDir()

func TestJSONLCapture(t *testing.T) {
	recs, err := ReadAll(captures + "binance-usdm_ethusdt_20240808.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 74655 {
		t.Fatalf("records %d, want 74655", len(recs))
	}
	var snaps int
	for i, r := range recs {
		if r.Line != i+1 {
			t.Fatalf("record %d line %d", i, r.Line)
		}
		if r.Kind == KindSnapshot {
			snaps++
			if r.Line != 41 {
				t.Errorf("snapshot at line %d, want 41", r.Line)
			}
		}
	}
	if snaps != 1 {
		t.Fatalf("snapshots %d, want 1", snaps)
	}
	if recs[0].RecvNs != 1723161255088156767 || !bytes.HasPrefix(recs[0].Payload, []byte(`{"stream":"ethusdt@depth@0ms"`)) {
		t.Fatalf("first record %d %.60s", recs[0].RecvNs, recs[0].Payload)
	}
}

func TestCryptofeedPair(t *testing.T) {
	ws := captures + "cryptofeed_binance-futures.ws.txt"
	http := PairedHTTP(ws)
	if filepath.Base(http) != "cryptofeed_binance-futures.http.txt" {
		t.Fatalf("paired http %q", http)
	}
	w, err := ReadAll(ws)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ReadAll(http)
	if err != nil {
		t.Fatal(err)
	}
	if w[0].Kind != KindConnect || !strings.HasPrefix(w[0].URL, "wss://fstream.binance.com/stream?streams=") {
		t.Fatalf("first ws record %+v", w[0])
	}
	if len(w) != 1536 || len(h) != 4 {
		t.Fatalf("ws %d http %d records", len(w), len(h))
	}
	syms := map[string]bool{}
	for _, r := range h {
		if r.Kind != KindSnapshot || !bytes.HasPrefix(r.Payload, []byte(`{"lastUpdateId"`)) {
			t.Fatalf("http record %+v", r)
		}
		syms[r.Symbol] = true
	}
	for _, s := range []string{"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"} {
		if !syms[s] {
			t.Errorf("no snapshot for %s", s)
		}
	}
	m := Merge(w, h)
	if len(m) != len(w)+len(h) {
		t.Fatalf("merged %d", len(m))
	}
	for i := 1; i < len(m); i++ {
		if m[i].RecvNs < m[i-1].RecvNs && m[i].Kind == KindSnapshot {
			t.Fatalf("merge out of order at %d", i)
		}
	}
}

func TestParseSecondsExact(t *testing.T) {
	for in, want := range map[string]int64{
		"1626992741.06217":     1626992741062170000,
		"1626992741":           1626992741000000000,
		"1626992741.123456789": 1626992741123456789,
		"1.0000000019":         1000000001,
	} {
		got, err := ParseSeconds(in)
		if err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".5", "1e9", "-1", "12a.3", "1.2.3", "99999999999"} {
		if _, err := ParseSeconds(bad); !errors.Is(err, ErrBadTimestamp) {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestBadLinesAreTyped(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.jsonl")
	os.WriteFile(p, []byte("1 {\"stream\":\"a\",\"data\":{}}\nxx {}\n"), 0o644)
	r, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || le.File != p || !errors.Is(err, ErrBadTimestamp) {
		t.Fatalf("err %v", err)
	}
	if _, err := NewReader(strings.NewReader("hello world\n"), "x"); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestGzipDetectedByMagic(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte("5 {\"lastUpdateId\":1,\"bids\":[],\"asks\":[]}\n"))
	zw.Close()
	r, err := NewReader(&b, "mem")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.Next()
	if err != nil || rec.Kind != KindSnapshot || rec.RecvNs != 5 {
		t.Fatalf("%+v %v", rec, err)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add(uint8(1), []byte(`1723161255088156767 {"stream":"ethusdt@trade","data":{}}`))
	f.Add(uint8(1), []byte(`1 {"lastUpdateId":5,"bids":[]}`))
	f.Add(uint8(2), []byte(`wss://x/stream?streams=a <-> 1626992740.9`))
	f.Add(uint8(2), []byte(`1626992741.06217: {"stream":"a","data":{}}`))
	f.Add(uint8(3), []byte(`https://fapi.binance.com/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000 -> 1626992741.301402: {"lastUpdateId":1}`))
	f.Fuzz(func(t *testing.T, fm uint8, line []byte) {
		rec, err := ParseLine(Format(fm%4), line)
		if err != nil {
			return
		}
		if rec.Kind != KindConnect && (len(rec.Payload) == 0 || rec.Payload[0] != '{') {
			t.Fatalf("accepted payload %q", rec.Payload)
		}
		if rec.RecvNs < 0 {
			t.Fatalf("negative time %d", rec.RecvNs)
		}
	})
}
