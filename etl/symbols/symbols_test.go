package symbols_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/deploy"
	"github.com/chronicle/chronicle/etl/symbols"
)

func ns(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

const header = "symbol_id,symbol_version_id,venue,raw_symbol,symbol_code,valid_from,valid_to\n"

// parse is ParseCSV that turns a panic into a test failure, so that one bad input does
// not take the whole test binary down.
func parse(t testing.TB, csv, name string) (tab *symbols.Table, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("ParseCSV panics on %q: %v", csv, r)
		}
	}()
	return symbols.ParseCSV([]byte(csv), name)
}

func TestDefault(t *testing.T) {
	tab, err := symbols.Default()
	if err != nil {
		t.Fatal(err)
	}
	if tab.Source() != "embedded:dim_symbol.csv" {
		t.Errorf("source %q", tab.Source())
	}
	sum := sha256.Sum256(deploy.DimSymbolCSV)
	if tab.Hash() != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %s", tab.Hash())
	}
	// Load("") is the embedded default.
	l, err := symbols.Load("")
	if err != nil || l.Hash() != tab.Hash() || !reflect.DeepEqual(l.Rows(), tab.Rows()) {
		t.Fatalf("Load(\"\"): %v", err)
	}
	usdm, cf := ns("2024-08-08T23:55:00Z"), ns("2021-07-22T22:26:00Z")
	cases := []struct {
		venue, raw string
		ts         int64
		id         uint32
		code       string
	}{
		{"binance-perp", "ETHUSDT", usdm, 2, "eth-usdt"},
		{"binance-coinm", "ETHUSD_PERP", usdm, 102, "eth-usd-perp"},
		{"binance-spot", "ETHUSDT", usdm, 202, "eth-usdt"},
		{"binance-perp", "SUSHIUSDT", cf, 3, "sushi-usdt"},
		{"binance-perp", "AKROUSDT", cf, 4, "akro-usdt"},
		{"binance-perp", "KEEPUSDT", cf, 5, "keep-usdt"},
		{"binance-perp", "CTKUSDT", cf, 6, "ctk-usdt"},
		// the captures cross midnight
		{"binance-perp", "ETHUSDT", ns("2024-08-09T00:00:01Z"), 2, "eth-usdt"},
		{"binance-spot", "ETHUSDT", ns("2024-08-09T00:05:05Z"), 202, "eth-usdt"},
	}
	for _, c := range cases {
		r, ok := tab.Resolve(c.venue, c.raw, c.ts)
		if !ok || r.SymbolID != c.id || r.SymbolCode != c.code || r.Venue != c.venue || r.RawSymbol != c.raw || !r.Contains(c.ts) {
			t.Errorf("%s/%s at %d: %+v %v, want id %d code %s", c.venue, c.raw, c.ts, r, ok, c.id, c.code)
		}
	}
	// Not mapped: unknown symbol or venue, other case, before valid_from.
	for _, c := range []struct {
		venue, raw string
		ts         int64
	}{
		{"binance-perp", "DOGEUSDT", usdm},
		{"binance-futures", "ETHUSDT", usdm},
		{"binance-perp", "ethusdt", usdm},
		{"binance-perp", "ETHUSDT", ns("2019-12-31T23:59:59.999999999Z")},
		{"binance-spot", "ETHUSDT", ns("2016-06-01T00:00:00Z")},
	} {
		if r, ok := tab.Resolve(c.venue, c.raw, c.ts); ok {
			t.Errorf("%s/%s at %d resolves to %+v", c.venue, c.raw, c.ts, r)
		}
	}
	// The ETHUSDT of spot and of USD-M are different symbols with the same code.
	if v := tab.Versions(2, symbols.MinTime, symbols.MaxTime); len(v) != 1 || v[0].Venue != "binance-perp" {
		t.Errorf("versions of 2: %+v", v)
	}
}

// An SCD2 rename: one symbol_id, two versions with different symbol_code, the boundary
// inside a day at nanosecond precision. [from, to): the boundary instant is the new row.
func TestRename(t *testing.T) {
	const boundary = "2024-08-08T12:34:56.123456789Z"
	b := ns(boundary)
	for _, c := range []struct {
		name       string
		oldRaw     string
		newRaw     string
		csv        string
		resolveOld bool // the old raw symbol still resolves after the boundary (same raw)
	}{
		{"code rename", "XUSDT", "XUSDT", header +
			"7,71,binance-perp,XUSDT,x-new," + boundary + ",\n" + // file order is not time order
			"7,70,binance-perp,XUSDT,x-old,2024-01-01," + boundary + "\n", true},
		{"raw and code rename", "OLDUSDT", "NEWUSDT", header +
			"7,70,binance-perp,OLDUSDT,old-usdt,2024-01-01T00:00:00Z," + boundary + "\n" +
			"7,71,binance-perp,NEWUSDT,new-usdt," + boundary + ",\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := parse(t, c.csv, "rename.csv")
			if err != nil {
				t.Fatal(err)
			}
			at := func(raw string, ts int64) uint64 {
				r, ok := tab.Resolve("binance-perp", raw, ts)
				if !ok {
					return 0
				}
				if r.SymbolID != 7 {
					t.Fatalf("symbol_id %d", r.SymbolID)
				}
				return r.VersionID
			}
			for _, x := range []struct {
				raw  string
				ts   int64
				want uint64
			}{
				{c.oldRaw, ns("2024-01-01T00:00:00Z"), 70},
				{c.oldRaw, ns("2024-01-01T00:00:00Z") - 1, 0},
				{c.oldRaw, b - 1, 70},
				{c.newRaw, b, 71},
				{c.newRaw, b + 1, 71},
				{c.newRaw, ns("2262-01-01T00:00:00Z"), 71},
			} {
				if got := at(x.raw, x.ts); got != x.want {
					t.Errorf("%s at %d (boundary %+d): version %d, want %d", x.raw, x.ts, x.ts-b, got, x.want)
				}
			}
			if !c.resolveOld {
				if got := at(c.oldRaw, b); got != 0 {
					t.Errorf("old raw symbol at the boundary: version %d", got)
				}
				if got := at(c.newRaw, b-1); got != 0 {
					t.Errorf("new raw symbol before the boundary: version %d", got)
				}
			}
			r70, _ := tab.Resolve("binance-perp", c.oldRaw, b-1)
			r71, _ := tab.Resolve("binance-perp", c.newRaw, b)
			if r70.To != b || r71.From != b || r71.To != symbols.MaxTime || r70.SymbolCode == r71.SymbolCode {
				t.Fatalf("rows %+v %+v", r70, r71)
			}
			day, next := ns("2024-08-08T00:00:00Z"), ns("2024-08-09T00:00:00Z")
			for _, v := range []struct {
				from, to int64
				want     []uint64
			}{
				{day, next, []uint64{70, 71}}, // by From, whatever the file order
				{symbols.MinTime, symbols.MaxTime, []uint64{70, 71}},
				{day, b, []uint64{70}},
				{b, next, []uint64{71}},
				{b - 1, b, []uint64{70}},
				{b, b + 1, []uint64{71}},
				{b - 1, b + 1, []uint64{70, 71}},
				{ns("2023-01-01T00:00:00Z"), ns("2024-01-01T00:00:00Z"), nil},
			} {
				var got []uint64
				for _, r := range tab.Versions(7, v.from, v.to) {
					got = append(got, r.VersionID)
				}
				if !reflect.DeepEqual(got, v.want) {
					t.Errorf("Versions(7, %+d, %+d from the boundary) = %v, want %v", v.from-b, v.to-b, got, v.want)
				}
			}
			if v := tab.Versions(8, symbols.MinTime, symbols.MaxTime); len(v) != 0 {
				t.Errorf("unknown symbol_id: %v", v)
			}
		})
	}
}

// A table with open ends on both sides and back-to-back versions.
func TestOpenEnds(t *testing.T) {
	tab, err := parse(t, header+
		"1,1,binance-perp,A,a-1,,2020-01-01\n"+
		"1,2,binance-perp,A,a-2,2020-01-01,2021-01-01T00:00:00.5Z\n"+
		"1,3,binance-perp,A,a-3,2021-01-01T00:00:00.5Z,\n", "open.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ts   int64
		want uint64
	}{
		{symbols.MinTime, 1}, {0, 1}, {ns("2020-01-01T00:00:00Z") - 1, 1}, {ns("2020-01-01T00:00:00Z"), 2},
		{ns("2021-01-01T00:00:00.499999999Z"), 2}, {ns("2021-01-01T00:00:00.5Z"), 3}, {symbols.MaxTime - 1, 3},
	} {
		r, ok := tab.Resolve("binance-perp", "A", c.ts)
		if !ok || r.VersionID != c.want {
			t.Errorf("at %d: %+v %v, want version %d", c.ts, r, ok, c.want)
		}
	}
	rows := tab.Rows()
	if rows[0].From != symbols.MinTime || rows[2].To != symbols.MaxTime {
		t.Fatalf("open ends %+v", rows)
	}
}

func TestCSVForms(t *testing.T) {
	want := []symbols.Row{
		{SymbolID: 9, VersionID: 90, Venue: "binance-spot", RawSymbol: "BTCUSDT", SymbolCode: "btc-usdt", From: ns("2017-01-01T00:00:00Z"), To: symbols.MaxTime},
		{SymbolID: 10, VersionID: 100, Venue: "binance-perp", RawSymbol: "BTCUSDT", SymbolCode: "btc-usdt", From: symbols.MinTime, To: ns("2024-02-29T23:00:00+01:00")},
	}
	for _, c := range []struct{ name, csv string }{
		{"plain", header +
			"9,90,binance-spot,BTCUSDT,btc-usdt,2017-01-01T00:00:00Z,\n" +
			"10,100,binance-perp,BTCUSDT,btc-usdt,,2024-02-29T22:00:00Z\n"},
		{"comments, blank lines, CRLF", "# dim_symbol\r\n#\r\n" + strings.ReplaceAll(header, "\n", "\r\n") +
			"# spot\r\n9,90,binance-spot,BTCUSDT,btc-usdt,2017-01-01,\r\n\r\n" +
			"# perp\r\n10,100,binance-perp,BTCUSDT,btc-usdt,,2024-02-29T23:00:00+01:00\r\n"},
		{"column order, case, spaces, extra columns", " Valid_To ,raw_symbol,note,SYMBOL_CODE,venue,symbol_version_id,valid_from,symbol_id\n" +
			",BTCUSDT,\"spot, since launch\",btc-usdt,binance-spot,90, 2017-01-01T00:00:00.000000000Z ,9\n" +
			"2024-02-29T22:00:00Z, BTCUSDT ,,btc-usdt,binance-perp,100,,10\n"},
		{"quoted fields", header +
			"\"9\",\"90\",\"binance-spot\",\"BTCUSDT\",\"btc-usdt\",\"2017-01-01T00:00:00Z\",\"\"\n" +
			"10,100,binance-perp,BTCUSDT,btc-usdt,\"\",2024-02-29T22:00:00Z\n"},
		{"short rows mean empty trailing fields", header +
			"9,90,binance-spot,BTCUSDT,btc-usdt,2017-01-01\n" +
			"10,100,binance-perp,BTCUSDT,btc-usdt,,2024-02-29T22:00:00Z\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := parse(t, c.csv, "forms.csv")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tab.Rows(), want) {
				t.Fatalf("rows\n%+v\nwant\n%+v", tab.Rows(), want)
			}
			sum := sha256.Sum256([]byte(c.csv))
			if tab.Hash() != hex.EncodeToString(sum[:]) || tab.Source() != "forms.csv" {
				t.Fatalf("hash %s source %s", tab.Hash(), tab.Source())
			}
		})
	}
}

func TestInvalidCSV(t *testing.T) {
	row := func(id, ver, venue, raw, code, from, to string) string {
		return strings.Join([]string{id, ver, venue, raw, code, from, to}, ",") + "\n"
	}
	good := row("1", "1", "binance-perp", "A", "a", "2024-01-01", "")
	cases := []struct {
		name string
		csv  string
		want []string // substrings of the message besides the file name
		bug  string   // the reported bug this case once caught (fixed)
	}{
		{"empty file", "", []string{"header"}, ""},
		{"only comments", "# nothing\n", []string{"header"}, ""},
		{"missing column", "symbol_id,symbol_version_id,venue,raw_symbol,symbol_code,valid_from\n1,1,binance-perp,A,a,\n", []string{`"valid_to"`}, ""},
		{"missing symbol_id column", "symbol_version_id,venue,raw_symbol,symbol_code,valid_from,valid_to\n", []string{`"symbol_id"`}, ""},
		{"symbol_id 0", header + good + row("0", "2", "binance-perp", "B", "b", "", ""), []string{"bad.csv:3:", "symbol_id"}, ""},
		{"symbol_id negative", header + row("-1", "2", "binance-perp", "B", "b", "", ""), []string{"bad.csv:2:", "symbol_id"}, ""},
		{"symbol_id not a number", header + row("x", "2", "binance-perp", "B", "b", "", ""), []string{"bad.csv:2:", "symbol_id"}, ""},
		{"symbol_id above uint32", header + row("4294967296", "2", "binance-perp", "B", "b", "", ""), []string{"bad.csv:2:", "symbol_id"}, ""},
		{"symbol_version_id 0", header + row("2", "0", "binance-perp", "B", "b", "", ""), []string{"bad.csv:2:", "symbol_version_id"}, ""},
		{"symbol_version_id empty", header + row("2", "", "binance-perp", "B", "b", "", ""), []string{"bad.csv:2:", "symbol_version_id"}, ""},
		{"bad venue", header + row("2", "2", "Binance Perp", "B", "b", "", ""), []string{"bad.csv:2:", "venue"}, ""},
		{"empty raw_symbol", header + row("2", "2", "binance-perp", "", "b", "", ""), []string{"bad.csv:2:", "raw_symbol"}, ""},
		{"symbol_code upper case", "# c\n" + header + good + row("2", "2", "binance-perp", "B", "B-USDT", "", ""), []string{"bad.csv:4:", "symbol_code"}, ""},
		{"symbol_code with slash", header + row("2", "2", "binance-perp", "B", "b/usdt", "", ""), []string{"bad.csv:2:", "symbol_code"}, ""},
		{"symbol_code dot", header + row("2", "2", "binance-perp", "B", "..", "", ""), []string{"bad.csv:2:", "symbol_code"}, ""},
		{"symbol_code empty", header + row("2", "2", "binance-perp", "B", "", "", ""), []string{"bad.csv:2:", "symbol_code"}, ""},
		{"valid_to before valid_from", header + row("2", "2", "binance-perp", "B", "b", "2024-02-01", "2024-01-01"), []string{"bad.csv:2:", "valid_to"}, ""},
		{"valid_to equals valid_from", header + row("2", "2", "binance-perp", "B", "b", "2024-02-01T00:00:00Z", "2024-02-01"), []string{"bad.csv:2:", "valid_to"}, ""},
		{"bad month", header + row("2", "2", "binance-perp", "B", "b", "2024-13-01", ""), []string{"bad.csv:2:", "valid_from"}, ""},
		{"time with a space", header + row("2", "2", "binance-perp", "B", "b", "2024-01-01 00:00:00", ""), []string{"bad.csv:2:", "valid_from"}, ""},
		{"time without zone", header + row("2", "2", "binance-perp", "B", "b", "", "2024-01-01T00:00:00"), []string{"bad.csv:2:", "valid_to"}, ""},
		{"unix time", header + row("2", "2", "binance-perp", "B", "b", "1704067200", ""), []string{"bad.csv:2:", "valid_from"}, ""},
		{"time beyond int64 ns", header + row("2", "2", "binance-perp", "B", "b", "", "2300-01-01"), []string{"bad.csv:2:", "valid_to"},
			"times outside 1677-09-21..2262-04-11 wrap around int64 nanoseconds (valid_to 2300-01-01 becomes 1715-06-13T00:25:26.290448384Z)"},
		{"time before int64 ns", header + row("2", "2", "binance-perp", "B", "b", "1600-01-01", ""), []string{"bad.csv:2:", "valid_from"},
			"times outside 1677-09-21..2262-04-11 wrap around int64 nanoseconds"},
		{"duplicate symbol_version_id", header + good + row("2", "1", "binance-perp", "B", "b", "", ""), []string{"symbol_version_id 1"}, ""},
		{"overlap for one raw symbol", header +
			row("1", "1", "binance-perp", "A", "a", "2024-01-01", "2024-03-01") +
			row("2", "2", "binance-perp", "A", "a2", "2024-02-01T00:00:00Z", ""), []string{"binance-perp/A", "overlap"}, ""},
		{"overlap for one raw symbol, open start", header +
			row("1", "1", "binance-perp", "A", "a", "2024-01-01", "") +
			row("2", "2", "binance-perp", "A", "a2", "", "2024-01-01T00:00:00.000000001Z"), []string{"binance-perp/A", "overlap"}, ""},
		{"overlap of one symbol_id", header +
			row("1", "1", "binance-perp", "A", "a", "2024-01-01", "2024-03-01") +
			row("1", "2", "binance-perp", "B", "b", "2024-02-29T23:59:59.999999999Z", ""), []string{"symbol_id 1", "overlap"}, ""},
		{"identical rows", header + good + row("1", "2", "binance-perp", "A", "a", "2024-01-01", ""), []string{"overlap"}, ""},
		{"one symbol_id on two venues", header +
			row("1", "1", "binance-perp", "A", "a", "2024-01-01", "2024-02-01") +
			row("1", "2", "binance-spot", "A", "a", "2024-02-01", ""), []string{"symbol_id 1", "binance-perp", "binance-spot"}, ""},
		{"bare quote", header + good + "2,2,binance-perp,B\"X,b,,\n", []string{"bad.csv", "3"}, ""},
		{"unterminated quote", header + good + "\"2,2,binance-perp,B,b,,\n", []string{"bad.csv"},
			"ParseCSV panics (csv.Reader.FieldPos out of range) on a CSV syntax error"},
		{"bad quote in header", "symbol_id,\"venue\"x\n", []string{"header"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab, err := parse(t, c.csv, "bad.csv")
			if err == nil {
				t.Fatalf("accepted: %+v", tab.Rows())
			}
			if !errors.Is(err, symbols.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "bad.csv") {
				t.Errorf("error %q does not start with the file name", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not name %q", msg, w)
				}
			}
		})
	}
}

// docs/format/dim-symbol.md: "an error names the file, the line or row, and the field".
// The table-wide rules (overlaps, duplicate versions, one venue per symbol_id) are
// checked after parsing and name versions or data-row ordinals, not the file's lines.
func TestInvalidCSVNamesLines(t *testing.T) {
	for _, c := range []struct {
		name  string
		csv   string
		lines []string
	}{
		{"duplicate version", "# comment\n" + header + "1,7,binance-perp,A,a,,\n# comment\n2,7,binance-perp,B,b,,\n", []string{"3", "5"}},
		{"overlap", "# comment\n" + header + "1,8,binance-perp,A,a,2024-01-01,\n\n2,9,binance-perp,A,a,2024-06-01,\n", []string{"3", "5"}},
		{"two venues", header + "# c\n1,8,binance-perp,A,a,2024-01-01,2024-02-01\n1,9,binance-spot,A,a,2024-02-01,\n", []string{"3", "4"}},
	} {
		_, err := parse(t, c.csv, "bad.csv")
		if !errors.Is(err, symbols.ErrInvalid) {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, l := range c.lines {
			if !regexp.MustCompile(`\b` + l + `\b`).MatchString(err.Error()) {
				t.Errorf("%s: error %q does not name line %s", c.name, err, l)
			}
		}
	}
}

func TestParquet(t *testing.T) {
	rows := []symbols.Row{
		{SymbolID: 7, VersionID: 70, Venue: "binance-perp", RawSymbol: "OLDUSDT", SymbolCode: "old-usdt", From: symbols.MinTime, To: ns("2024-08-08T12:34:56.123456789Z")},
		{SymbolID: 7, VersionID: 71, Venue: "binance-perp", RawSymbol: "NEWUSDT", SymbolCode: "new-usdt", From: ns("2024-08-08T12:34:56.123456789Z"), To: symbols.MaxTime},
		{SymbolID: 4294967295, VersionID: 1 << 62, Venue: "binance-coinm", RawSymbol: "ETHUSD_PERP", SymbolCode: "eth-usd-perp", From: -1, To: 1},
		{SymbolID: 8, VersionID: 80, Venue: "binance-spot", RawSymbol: "ETHUSDT", SymbolCode: "eth-usdt", From: symbols.MinTime + 1, To: symbols.MaxTime - 1},
	}
	var buf bytes.Buffer
	if err := symbols.WriteParquet(&buf, rows); err != nil {
		t.Fatal(err)
	}
	tab, err := symbols.ParseParquet(buf.Bytes(), "dim.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tab.Rows(), rows) {
		t.Fatalf("round trip\n%+v\nwant\n%+v", tab.Rows(), rows)
	}
	sum := sha256.Sum256(buf.Bytes())
	if tab.Hash() != hex.EncodeToString(sum[:]) || tab.Source() != "dim.parquet" {
		t.Fatalf("hash %s source %s", tab.Hash(), tab.Source())
	}
	if r, ok := tab.Resolve("binance-perp", "NEWUSDT", rows[1].From); !ok || r.VersionID != 71 {
		t.Fatalf("resolve: %+v %v", r, ok)
	}
	// The CSV default exported to Parquet reads back the same rows.
	def, _ := symbols.Default()
	buf.Reset()
	if err := symbols.WriteParquet(&buf, def.Rows()); err != nil {
		t.Fatal(err)
	}
	back, err := symbols.ParseParquet(buf.Bytes(), "default.parquet")
	if err != nil || !reflect.DeepEqual(back.Rows(), def.Rows()) {
		t.Fatalf("default via parquet: %v", err)
	}

	// Load picks the parser by extension.
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pq := buf.Bytes()
	csv := []byte(header + "1,1,binance-perp,A,a,,\n")
	for _, c := range []struct {
		name string
		body []byte
		rows int
		ok   bool
	}{
		{"dim.parquet", pq, len(def.Rows()), true},
		{"DIM.PARQUET", pq, len(def.Rows()), true},
		{"dim.csv", csv, 1, true},
		{"dim.CSV", csv, 1, true},
		{"parquet-as.csv", pq, 0, false},
		{"csv-as.parquet", csv, 0, false},
		{"dim.txt", csv, 0, false},
		{"dim", csv, 0, false},
		{"dim.csv.gz", csv, 0, false},
	} {
		p := write(c.name, c.body)
		tab, err := symbols.Load(p)
		if c.ok {
			if err != nil || len(tab.Rows()) != c.rows || tab.Source() != p {
				t.Errorf("Load(%s): %v", c.name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, symbols.ErrInvalid) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("Load(%s): %v, want ErrInvalid naming the file", c.name, err)
		}
	}
	if _, err := symbols.Load(filepath.Join(dir, "missing.csv")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	// Invalid Parquet tables are refused like CSV ones, naming the row.
	for _, c := range []struct {
		name string
		rows []symbols.Row
		want string
	}{
		{"bad code", []symbols.Row{rows[0], {SymbolID: 9, VersionID: 90, Venue: "binance-perp", RawSymbol: "X", SymbolCode: "X", From: symbols.MinTime, To: symbols.MaxTime}}, "row 2"}, // rows count from 1
		{"inverted", []symbols.Row{{SymbolID: 9, VersionID: 90, Venue: "binance-perp", RawSymbol: "X", SymbolCode: "x", From: 5, To: 5}}, "valid_to"},
		{"zero id", []symbols.Row{{SymbolID: 0, VersionID: 90, Venue: "binance-perp", RawSymbol: "X", SymbolCode: "x", From: symbols.MinTime, To: symbols.MaxTime}}, "symbol_id"},
		{"overlap", []symbols.Row{rows[0], {SymbolID: 9, VersionID: 90, Venue: "binance-perp", RawSymbol: "OLDUSDT", SymbolCode: "x", From: 0, To: symbols.MaxTime}}, "overlap"},
	} {
		buf.Reset()
		if err := symbols.WriteParquet(&buf, c.rows); err != nil {
			t.Fatal(err)
		}
		_, err := symbols.ParseParquet(buf.Bytes(), "bad.parquet")
		if !errors.Is(err, symbols.ErrInvalid) || !strings.Contains(err.Error(), "bad.parquet") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid naming %q", c.name, err, c.want)
		}
	}
	if _, err := symbols.ParseParquet([]byte("PAR1 not really"), "junk.parquet"); !errors.Is(err, symbols.ErrInvalid) {
		t.Errorf("junk parquet: %v", err)
	}
}

// checkTable verifies what Load promises of an accepted table: every row is valid and in
// force over exactly its interval (Resolve at both ends), no two versions of one raw
// symbol or one symbol_id overlap, a symbol_id stays on one venue, version ids are
// unique, and Versions returns a symbol's rows by From.
func checkTable(t *testing.T, tab *symbols.Table) {
	t.Helper()
	rows := tab.Rows()
	seenVer := map[uint64]bool{}
	for i, r := range rows {
		if r.SymbolID == 0 || r.VersionID == 0 || r.From >= r.To || r.Venue == "" || r.RawSymbol == "" || r.SymbolCode == "" {
			t.Fatalf("row %d accepted: %+v", i, r)
		}
		if seenVer[r.VersionID] {
			t.Fatalf("version %d twice", r.VersionID)
		}
		seenVer[r.VersionID] = true
		for _, ts := range []int64{r.From, r.To - 1, r.From/2 + r.To/2} {
			got, ok := tab.Resolve(r.Venue, r.RawSymbol, ts)
			if !ok || got != r {
				t.Fatalf("row %d %+v: Resolve at %d gives %+v %v", i, r, ts, got, ok)
			}
		}
		if r.To != symbols.MaxTime {
			if got, ok := tab.Resolve(r.Venue, r.RawSymbol, r.To); ok && got == r {
				t.Fatalf("row %d in force at its valid_to", i)
			}
		}
		for j, o := range rows[:i] {
			overlap := r.From < o.To && o.From < r.To
			if overlap && (r.SymbolID == o.SymbolID || r.Venue == o.Venue && r.RawSymbol == o.RawSymbol) {
				t.Fatalf("rows %d and %d overlap: %+v %+v", j, i, o, r)
			}
			if r.SymbolID == o.SymbolID && r.Venue != o.Venue {
				t.Fatalf("symbol_id %d on two venues", r.SymbolID)
			}
		}
		vs := tab.Versions(r.SymbolID, symbols.MinTime, symbols.MaxTime)
		found := false
		for k, v := range vs {
			if k > 0 && vs[k-1].From >= v.From {
				t.Fatalf("Versions not by From: %+v", vs)
			}
			found = found || v == r
		}
		if !found {
			t.Fatalf("Versions(%d) misses %+v", r.SymbolID, r)
		}
	}
}

func TestDefaultIsConsistent(t *testing.T) {
	tab, err := symbols.Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Rows()) != 23 { // Binance 10, OKX 3, Kraken 10
		t.Fatalf("%d rows", len(tab.Rows()))
	}
	checkTable(t, tab)
}

func FuzzParseCSV(f *testing.F) {
	f.Add(string(deploy.DimSymbolCSV))
	f.Add(header + "7,70,binance-perp,OLDUSDT,old-usdt,2024-01-01,2024-08-08T12:34:56.123456789Z\n7,71,binance-perp,NEWUSDT,new-usdt,2024-08-08T12:34:56.123456789Z,\n")
	f.Add(header + "1,1,binance-perp,A,a,,2020-01-01\n1,2,binance-perp,A,a-2,2020-01-01,\n2,3,binance-spot,A,a,2019-12-31T23:59:59.999999999Z,\n")
	f.Add(header + "1,1,binance-perp,A,a,2024-01-01,2024-03-01\n2,2,binance-perp,A,a2,2024-02-01,\n")
	f.Add("valid_to,raw_symbol,symbol_code,venue,symbol_version_id,valid_from,symbol_id\n,X,x,binance-spot,5,2024-01-01T00:00:00+02:00,3\n# c\n")
	f.Add(header + "1,1,binance-perp,A,a,2024-01-01,2023-01-01\n")
	f.Fuzz(func(t *testing.T, csv string) {
		tab, err := parse(t, csv, "fuzz.csv")
		if err != nil {
			if !errors.Is(err, symbols.ErrInvalid) || !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error %v: not ErrInvalid or does not name the file", err)
			}
			return
		}
		if len(tab.Rows()) > 200 {
			return // the checks below are quadratic
		}
		checkTable(t, tab)
	})
}
