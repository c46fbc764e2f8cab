package meta_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

func ts(s string) meta.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return meta.Time(t.UnixNano())
}

func iv(from, to string) meta.Interval { return meta.Interval{From: ts(from), To: ts(to)} }

// full is a Meta with every field set (checked by TestFullIsFull).
func full() *meta.Meta {
	return &meta.Meta{
		Version: 1, Venue: "binance-perp", Date: "2024-08-08",
		SymbolID: 7, SymbolCode: "new-usdt", SymbolVersionID: 71,
		SymbolVersions: []meta.SymbolVersion{
			{SymbolVersionID: 70, SymbolCode: "old-usdt", RawSymbol: "OLDUSDT", Interval: iv("2024-08-08T00:00:00Z", "2024-08-08T12:34:56.123456789Z")},
			{SymbolVersionID: 71, SymbolCode: "new-usdt", RawSymbol: "NEWUSDT", Interval: iv("2024-08-08T12:34:56.123456789Z", "2024-08-09T00:00:00Z")},
		},
		Unmapped:      true,
		Instrument:    &meta.Instrument{QtyUnit: "contracts", ContractSize: "10", ContractCurrency: "USD"},
		PriceDecimals: 8, QtyDecimals: 3,
		Sealed:         true,
		IngestTime:     ts("2024-08-09T00:10:00.000000001Z"),
		EventTimeRange: &meta.Interval{From: ts("2024-08-08T23:54:16.303Z"), To: ts("2024-08-08T23:59:59.999999999Z")},
		Records:        map[string]int64{"total": 74655, "depth": 60000, "trade": 14076, "weird key \"\\\n": 1},
		Events:         meta.Events{DepthUpdates: 6580, Trades: 14076, BBO: 53992, Snapshots: 2, BookInvalid: 1},
		Completeness: meta.Completeness{
			Complete: true,
			Invalid: []meta.Invalid{
				{Interval: iv("2024-08-08T23:54:16Z", "2024-08-08T23:54:17.5Z"), Reason: "no_snapshot"},
				{Interval: iv("2024-08-08T23:59:00Z", "2024-08-08T23:59:00Z"), Reason: "disconnect", Open: true},
			},
			Gaps: []meta.Gap{{Interval: iv("2024-08-08T23:55:00Z", "2024-08-08T23:55:01Z"), Stream: "ethusdt@trade", Missing: 3}},
		},
		Checks:     meta.Checks{CrossedEvents: 1, TickerChecks: 53992, TickerMismatches: 2},
		LatePolicy: meta.LateStream,
		Synthetic:  true,
		Source: meta.Source{Pipeline: "chronicle-etl", Venue: "binance-perp",
			Segments: []meta.Segment{
				{Name: "binance-perp.000001.jrn", XXH64: "0123456789abcdef", End: 123456, Complete: true},
				{Name: "binance-perp.000002.jrn", XXH64: "fedcba9876543210", End: 42, Complete: true},
			},
			Note: "unicode: ∆ é 😀 <&>", Host: &meta.Host{ID: "capture-a", From: meta.HostFromConfig}},
		Merge: &meta.Merge{Base: "capture-a",
			Hosts: []meta.MergeHost{
				{ID: "capture-a", Segments: []meta.Segment{{Name: "00000001-20240808T230000Z.q", XXH64: "0123456789abcdef", End: 99, Complete: true}},
					DepthUpdates: 6000, Trades: 14000, BBO: 50000},
				{ID: "capture-b", Segments: []meta.Segment{{Name: "00000001-20240808T230000Z.q", XXH64: "fedcba9876543210", End: 98, Complete: true}},
					DepthUpdates: 575, Trades: 76, BBO: 3992},
			},
			Supplied: []meta.Supplied{
				{Interval: iv("2024-08-08T23:54:16Z", "2024-08-08T23:56:00Z"), Host: "capture-a", DepthUpdates: 100},
				{Interval: iv("2024-08-08T23:56:00Z", "2024-08-08T23:56:02Z"), Host: "capture-b", DepthUpdates: 10},
			}},
	}
}

// minimal is the smallest valid document.
const minimal = `{"version":1,"venue":"binance-perp","date":"2024-08-08","symbol_code":"eth-usdt","late_policy":"reject"}`

// nonZero fails for every zero-valued field reachable from v (bools must be true,
// slices and maps non-empty), so the round trip below covers every field Meta has.
func nonZero(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			t.Errorf("%s is nil", path)
			return
		}
		nonZero(t, path, v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			nonZero(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			t.Errorf("%s is empty", path)
		}
		if v.Kind() == reflect.Slice {
			for i := 0; i < v.Len(); i++ {
				nonZero(t, path, v.Index(i))
			}
		}
	default:
		if v.IsZero() && !strings.HasSuffix(path, "Open") {
			t.Errorf("%s is zero", path)
		}
	}
}

func TestFullIsFull(t *testing.T) {
	nonZero(t, "Meta", reflect.ValueOf(full()))
}

func TestRoundTrip(t *testing.T) {
	m := full()
	b, err := meta.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("}\n")) || !bytes.HasPrefix(b, []byte("{\n  \"version\": 1,\n")) {
		t.Fatalf("not an indented document with a final newline:\n%s", b)
	}
	got, err := meta.Parse(b, "meta.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", got, m)
	}
	b2, err := meta.Marshal(got)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("re-marshal differs: %v\n%s", err, b2)
	}
	// The exact text of the times: nine fraction digits, UTC.
	for _, want := range []string{
		`"ingest_time": "2024-08-09T00:10:00.000000001Z"`,
		`"from": "2024-08-08T23:54:16.303000000Z"`,
		`"to": "2024-08-08T12:34:56.123456789Z"`,
		`"late_policy": "late_stream"`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("document lacks %s", want)
		}
	}
	// Minimal document: absent optional parts stay absent.
	mm, err := meta.Parse([]byte(minimal), "m")
	if err != nil {
		t.Fatal(err)
	}
	if mm.EventTimeRange != nil || mm.Instrument != nil || mm.Records != nil || mm.IngestTime != 0 || mm.LatePolicy != meta.LateReject {
		t.Fatalf("minimal: %+v", mm)
	}
	b, err = meta.Marshal(mm)
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"instrument", "unmapped", "synthetic", "segments", "note"} {
		if bytes.Contains(b, []byte(`"`+absent+`"`)) {
			t.Errorf("minimal document marshals %q:\n%s", absent, b)
		}
	}
	if back, err := meta.Parse(b, "m"); err != nil || !reflect.DeepEqual(back, mm) {
		t.Fatalf("minimal round trip: %v", err)
	}
	// Marshal validates.
	bad := full()
	bad.LatePolicy = "drop"
	if _, err := meta.Marshal(bad); !errors.Is(err, meta.ErrInvalid) {
		t.Fatalf("Marshal of an invalid Meta: %v", err)
	}
}

func TestTime(t *testing.T) {
	cases := []struct {
		t    meta.Time
		text string
	}{
		{0, "1970-01-01T00:00:00.000000000Z"},
		{1, "1970-01-01T00:00:00.000000001Z"},
		{-1, "1969-12-31T23:59:59.999999999Z"},
		{meta.Time(1723161256303000000), "2024-08-08T23:54:16.303000000Z"},
		{meta.Time(1723161599999999999), "2024-08-08T23:59:59.999999999Z"},
		{meta.Time(math.MaxInt64), "2262-04-11T23:47:16.854775807Z"},
		{meta.Time(math.MinInt64), "1677-09-21T00:12:43.145224192Z"},
	}
	for _, c := range cases {
		b, err := c.t.MarshalText()
		if err != nil || string(b) != c.text || c.t.String() != c.text {
			t.Errorf("%d marshals as %s (%v), want %s", int64(c.t), b, err, c.text)
		}
		var back meta.Time
		if err := back.UnmarshalText(b); err != nil || back != c.t || back.Ns() != int64(c.t) {
			t.Errorf("%s parses as %d (%v), want %d", b, int64(back), err, int64(c.t))
		}
		// through JSON too
		j, err := json.Marshal(struct{ T meta.Time }{c.t})
		if err != nil || string(j) != `{"T":"`+c.text+`"}` {
			t.Errorf("json %s %v", j, err)
		}
	}
	// Inputs with fewer (or no) fraction digits, or another zone, parse exactly.
	for _, c := range []struct {
		text string
		want int64
	}{
		{"2024-08-08T23:54:16Z", 1723161256000000000},
		{"2024-08-08T23:54:16.3Z", 1723161256300000000},
		{"2024-08-08T23:54:16.303Z", 1723161256303000000},
		{"2024-08-08T23:54:16.000001Z", 1723161256000001000},
		{"2024-08-08T23:54:16.123456789Z", 1723161256123456789},
		{"2024-08-09T01:54:16.5+02:00", 1723161256500000000},
		{"2024-08-08T20:24:16.5-03:30", 1723161256500000000},
	} {
		var got meta.Time
		if err := got.UnmarshalText([]byte(c.text)); err != nil || int64(got) != c.want {
			t.Errorf("%s: %d %v, want %d", c.text, int64(got), err, c.want)
		}
	}
	for _, bad := range []string{"", "2024-08-08", "2024-08-08T23:54:16", "2024-08-08 23:54:16Z", "1723161256303", "2024-13-08T00:00:00Z", "2024-08-08T24:00:01Z"} {
		var got meta.Time
		if err := got.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %d", bad, int64(got))
		}
	}
	// Fixed-width text sorts as the times do.
	rnd := rand.New(rand.NewSource(testenv.Seed(t)))
	for i := 0; i < 2000; i++ {
		a, b := meta.Time(rnd.Uint64()), meta.Time(rnd.Uint64())
		if i%2 == 0 {
			b = a + meta.Time(rnd.Int63n(2000)) - 1000
		}
		if (a < b) != (a.String() < b.String()) || len(a.String()) != 30 {
			t.Fatalf("%d < %d is %v, but %s < %s is %v", a, b, a < b, a, b, a.String() < b.String())
		}
	}
	t.Run("out of range", func(t *testing.T) {
		// Time.UnmarshalText used to wrap these (2300-01-01 became 1715-06-13T00:25:26.290448384Z).
		for _, s := range []string{"2300-01-01T00:00:00Z", "1600-01-01T00:00:00Z", "2262-04-11T23:47:16.854775808Z"} {
			var got meta.Time
			if err := got.UnmarshalText([]byte(s)); err == nil {
				t.Errorf("%s accepted as %s", s, got)
			}
		}
	})
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	m := full()
	if err := meta.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	want, _ := meta.Marshal(m)
	p := filepath.Join(dir, meta.FileName)
	check := func(want []byte) {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("content %v:\n%s", err, got)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 || ents[0].Name() != meta.FileName {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("directory holds %v (temporary files left?)", names)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
			t.Fatalf("mode %v", st.Mode())
		}
	}
	check(want)
	back, err := meta.Read(p)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("Read: %v", err)
	}
	// Replace it.
	m2 := full()
	m2.Sealed, m2.Events.Trades = false, 99
	if err := meta.Write(dir, m2); err != nil {
		t.Fatal(err)
	}
	want2, _ := meta.Marshal(m2)
	check(want2)
	// An invalid Meta is refused, and the document in place is untouched.
	bad := full()
	bad.Version = 2
	if err := meta.Write(dir, bad); !errors.Is(err, meta.ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Write of an invalid Meta: %v", err)
	}
	check(want2)
	// Exact bytes.
	if err := meta.WriteBytes(dir, []byte(minimal)); err != nil {
		t.Fatal(err)
	}
	check([]byte(minimal))
	// A missing directory fails and creates nothing.
	if err := meta.Write(filepath.Join(dir, "nope"), m); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
	check([]byte(minimal))
}

// A reader racing a writer sees the old document or the new one, never a part of one.
func TestWriteAtomicForReaders(t *testing.T) {
	dir := t.TempDir()
	a, b := full(), full()
	b.Source.Note = strings.Repeat("x", 200000) // large enough to be written in several pieces
	if err := meta.Write(dir, a); err != nil {
		t.Fatal(err)
	}
	const writes = 40
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < writes; i++ {
			m := a
			if i%2 == 0 {
				m = b
			}
			if err := meta.Write(dir, m); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			wg.Wait()
			if reads == 0 {
				t.Log("the reader never overlapped a write")
			}
			return
		default:
		}
		got, err := meta.Read(filepath.Join(dir, meta.FileName))
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		if !reflect.DeepEqual(got, a) && !reflect.DeepEqual(got, b) {
			t.Fatalf("read %d: a document that was never written", reads)
		}
		reads++
	}
}

func TestParseInvalid(t *testing.T) {
	doc := func(edit func(m map[string]any)) string {
		b, _ := meta.Marshal(full())
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			panic(err)
		}
		edit(m)
		out, _ := json.Marshal(m)
		return string(out)
	}
	set := func(path string, v any) func(map[string]any) {
		return func(m map[string]any) {
			keys := strings.Split(path, ".")
			var cur any = m
			for _, k := range keys[:len(keys)-1] {
				switch c := cur.(type) {
				case map[string]any:
					cur = c[k]
				case []any:
					cur = c[k[0]-'0']
				}
			}
			cur.(map[string]any)[keys[len(keys)-1]] = v
		}
	}
	good, _ := meta.Marshal(full())
	cases := []struct {
		name string
		doc  string
		want string // named in the message (field or offset)
		bug  string // the reported bug this case once caught (fixed)
	}{
		{"version 0", doc(set("version", 0)), "version", ""},
		{"version 2", doc(set("version", 2)), "version", ""},
		{"version missing", doc(func(m map[string]any) { delete(m, "version") }), "version", ""},
		{"version string", doc(set("version", "1")), "version", ""},
		{"version fraction", doc(set("version", 1.5)), "version", ""},
		{"null document", "null", "version", ""},
		{"empty object", "{}", "version", ""},
		{"date Feb 30", doc(set("date", "2024-02-30")), "date", ""},
		{"date unpadded", doc(set("date", "2024-8-8")), "date", ""},
		{"date compact", doc(set("date", "20240808")), "date", ""},
		{"date with time", doc(set("date", "2024-08-08T00:00:00Z")), "date", ""},
		{"date empty", doc(set("date", "")), "date", ""},
		{"venue empty", doc(set("venue", "")), "venue", ""},
		{"symbol_code empty", doc(set("symbol_code", "")), "symbol_code", ""},
		{"late_policy unknown", doc(set("late_policy", "drop")), "late_policy", ""},
		{"late_policy case", doc(set("late_policy", "Reject")), "late_policy", ""},
		{"late_policy missing", doc(func(m map[string]any) { delete(m, "late_policy") }), "late_policy", ""},
		{"decimals above 18", doc(set("price_decimals", 19)), "decimals", ""},
		{"decimals negative", doc(set("qty_decimals", -1)), "qty_decimals", ""},
		{"negative record count", doc(set("records.total", -1)), "records.total", ""},
		{"negative symbol_id", doc(set("symbol_id", -1)), "symbol_id", ""},
		{"negative event count", doc(set("events.trades", -1)), "events.trades", "negative counts in events are accepted"},
		{"negative check count", doc(set("checks.crossed_events", -5)), "checks.crossed_events", "negative counts in checks are accepted"},
		{"negative gap count", doc(set("completeness.gaps.0.missing", -3)), "completeness.gaps[0]", "a negative gaps[].missing is accepted"},
		{"inverted event_time_range", doc(set("event_time_range.from", "2024-08-09T00:00:00Z")), "event_time_range", ""},
		{"inverted invalid interval", doc(set("completeness.invalid.1.from", "2024-08-08T23:59:00.000000001Z")), "completeness.invalid[1]", ""},
		{"invalid without reason", doc(set("completeness.invalid.0.reason", "")), "completeness.invalid[0]", ""},
		{"inverted symbol version", doc(set("symbol_versions.1.to", "2024-08-08T12:34:56.123456788Z")), "symbol_versions[1]", ""},
		{"inverted gap", doc(set("completeness.gaps.0.to", "2024-08-08T23:54:59Z")), "completeness.gaps[0]", "inverted completeness.gaps intervals are accepted"},
		{"host id invalid", doc(set("source.host.id", "Capture A")), "source.host", ""},
		{"host from unknown", doc(set("source.host.from", "guess")), "source.host", ""},
		{"merge base not an input", doc(set("merge.base", "capture-c")), "merge.base", ""},
		{"merge hosts unsorted", doc(set("merge.hosts.0.id", "capture-z")), "merge.hosts[1]", ""},
		{"merge host twice", doc(set("merge.hosts.1.id", "capture-a")), "merge.hosts[1]", ""},
		{"merge supplied by a stranger", doc(set("merge.supplied.1.host", "capture-c")), "merge.supplied[1]", ""},
		{"merge supplied overlapping", doc(set("merge.supplied.1.from", "2024-08-08T23:55:00Z")), "merge.supplied[1]", ""},
		{"merge negative count", doc(set("merge.hosts.0.trades", -1)), "merge.hosts[0]", ""},
		{"time not a string", doc(set("ingest_time", 1723161256)), "ingest_time", ""},
		{"bad time", doc(set("ingest_time", "yesterday")), "ingest_time", "a bad time string is reported without the field's name or an offset"},
		{"time out of range", doc(set("ingest_time", "2300-01-01T00:00:00Z")), "ingest_time", "times outside 1677..2262 wrap around int64 nanoseconds"},
		{"syntax error", strings.Replace(string(good), `"version": 1,`, `"version": 1,,`, 1), "offset 18", ""}, // the stray comma is byte 17: 18 bytes read
		{"truncated", string(good[:len(good)/2]), "EOF", ""},
		{"trailing garbage", string(good) + "x", "offset", ""},
		{"second document", string(good) + string(good), "offset", ""},
		{"trailing brace", string(good) + "}", "offset", "a trailing '}' or ']' after the document is accepted (json.Decoder.More)"},
		{"trailing bracket", string(good) + "]", "offset", "a trailing '}' or ']' after the document is accepted (json.Decoder.More)"},
		{"array", "[" + string(good) + "]", "Meta", ""},
		{"too large", string(good) + strings.Repeat(" ", meta.MaxSize+1-len(good)), "bytes", ""},
		{"empty", "", "EOF", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := meta.Parse([]byte(c.doc), "part/meta.json")
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !errors.Is(err, meta.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), "part/meta.json: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name the file and %q", err, c.want)
			}
		})
	}
	// Exactly MaxSize is allowed.
	at := string(good) + strings.Repeat("\n", meta.MaxSize-len(good))
	if _, err := meta.Parse([]byte(at), "m"); err != nil {
		t.Fatalf("document of exactly MaxSize: %v", err)
	}
	// Read refuses a file over MaxSize without loading it all.
	dir := t.TempDir()
	p := filepath.Join(dir, meta.FileName)
	if err := os.WriteFile(p, []byte(at+" "), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := meta.Read(p); !errors.Is(err, meta.ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Read of a large file: %v", err)
	}
	if err := os.WriteFile(p, []byte(at), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := meta.Read(p); err != nil {
		t.Fatalf("Read of a MaxSize file: %v", err)
	}
	if _, err := meta.Read(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of a missing file: %v", err)
	}
}

// Readers accept fields added by later writers of version 1, anywhere in the document.
func TestParseUnknownFields(t *testing.T) {
	b, _ := meta.Marshal(full())
	var m map[string]any
	json.Unmarshal(b, &m)
	m["future_top"] = map[string]any{"x": []any{1, "two", nil}}
	m["events"].(map[string]any)["liquidations"] = 17
	m["source"].(map[string]any)["machine"] = "etl-1"
	m["source"].(map[string]any)["segments"].([]any)[0].(map[string]any)["compression"] = "zstd"
	m["completeness"].(map[string]any)["invalid"].([]any)[0].(map[string]any)["detail"] = "gap of 12 updates"
	m["symbol_versions"].([]any)[0].(map[string]any)["listed"] = true
	b2, _ := json.Marshal(m)
	got, err := meta.Parse(b2, "m")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full()) {
		t.Fatalf("with unknown fields:\n%+v", got)
	}
	// Members in another order and with other spacing parse the same.
	var buf bytes.Buffer
	json.Compact(&buf, b)
	if got, err := meta.Parse(buf.Bytes(), "m"); err != nil || !reflect.DeepEqual(got, full()) {
		t.Fatalf("compact: %v", err)
	}
}

// normalize maps the encodings of "nothing" that the omitempty members cannot keep apart
// after a round trip ("segments": [] marshals as an absent member).
func normalize(m *meta.Meta) {
	if len(m.Source.Segments) == 0 {
		m.Source.Segments = nil
	}
}

func FuzzParse(f *testing.F) {
	b, _ := meta.Marshal(full())
	f.Add(b)
	f.Add([]byte(minimal))
	mm := full()
	mm.Instrument, mm.EventTimeRange, mm.Records = nil, nil, nil
	mm.Completeness = meta.Completeness{Invalid: []meta.Invalid{}, Gaps: nil}
	b, _ = meta.Marshal(mm)
	f.Add(b)
	f.Add([]byte(`{"version":1,"venue":"v","date":"2024-02-29","symbol_code":"x","late_policy":"late_stream","ingest_time":"2024-02-29T01:02:03.4+05:00","source":{"segments":[]},"records":{}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m1, err := meta.Parse(in, "fuzz/meta.json")
		if err != nil {
			if !errors.Is(err, meta.ErrInvalid) || !strings.HasPrefix(err.Error(), "fuzz/meta.json: ") {
				t.Fatalf("error %v: not ErrInvalid or does not name the file", err)
			}
			return
		}
		b1, err := meta.Marshal(m1)
		if err != nil {
			t.Fatalf("accepted document does not marshal: %v", err)
		}
		m2, err := meta.Parse(b1, "fuzz/meta.json")
		if err != nil {
			t.Fatalf("re-marshalled document refused: %v\n%s", err, b1)
		}
		b2, err := meta.Marshal(m2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("second marshal differs: %v\n%s\n%s", err, b1, b2)
		}
		m3, _ := meta.Parse(b2, "fuzz/meta.json")
		if !reflect.DeepEqual(m2, m3) {
			t.Fatalf("round trip is not a fixed point:\n%+v\n%+v", m2, m3)
		}
		normalize(m1)
		if !reflect.DeepEqual(m1, m2) {
			t.Fatalf("round trip changed the document:\n%+v\n%+v", m1, m2)
		}
	})
}
