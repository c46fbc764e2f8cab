// Package symbols is the refinery's dim_symbol: an SCD type 2 table that maps a venue's
// raw symbol at an exchange time to a stable symbol_id, the canonical symbol_code in force
// then (the partition directory) and the symbol_version_id of that row.
//
// Rows come from a CSV file (the default ships in deploy/dim_symbol.csv, which the main
// embeds and hands to SetDefault) or from
// Parquet (the data-lake option); both have the columns
//
//	symbol_id, symbol_version_id, venue, raw_symbol, symbol_code, valid_from, valid_to
//
// with valid_from inclusive and valid_to exclusive, in exchange time (UTC). An empty
// valid_from means "since always", an empty valid_to "still in force". Load refuses a
// table whose rows overlap for one (venue, raw_symbol) or one symbol_id, so resolution is
// never ambiguous. Spec: docs/format/dim-symbol.md.
package symbols

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/chronicle/chronicle/layout"
)

// ErrInvalid reports a table that cannot be used; the message names the file, row and field.
var ErrInvalid = errors.New("invalid dim_symbol table")

// Open ends: an interval with From = MinTime started before any data, one with To =
// MaxTime is still in force.
const (
	MinTime int64 = math.MinInt64
	MaxTime int64 = math.MaxInt64
)

// Row is one version of one symbol.
type Row struct {
	SymbolID   uint32
	VersionID  uint64
	Venue      string
	RawSymbol  string // as the venue spells it (upper case for Binance)
	SymbolCode string // canonical, lower case: the partition directory
	From, To   int64  // [From, To) exchange time, ns
}

// Contains reports whether the row is in force at ts.
func (r *Row) Contains(ts int64) bool { return ts >= r.From && ts < r.To }

// Table is a loaded, validated dim_symbol.
type Table struct {
	source string
	hash   string
	rows   []Row
	byRaw  map[rawKey][]int // rows of one (venue, raw symbol), by From
	byID   map[uint32][]int // rows of one symbol_id, by From
}

type rawKey struct{ venue, raw string }

// Source names where the table came from ("embedded:dim_symbol.csv" or a path).
func (t *Table) Source() string { return t.source }

// Hash is the SHA-256 of the table's bytes, so a checkpoint can tell which table it used.
func (t *Table) Hash() string { return t.hash }

// Rows returns every row, in file order.
func (t *Table) Rows() []Row { return t.rows }

// Resolve returns the row in force for a venue's raw symbol at exchange time ts.
func (t *Table) Resolve(venue, raw string, ts int64) (Row, bool) {
	rows := t.byRaw[rawKey{venue, raw}]
	// Rows are sorted by From and do not overlap: the candidate is the last one starting
	// at or before ts.
	i := sort.Search(len(rows), func(i int) bool { return t.rows[rows[i]].From > ts }) - 1
	if i >= 0 && t.rows[rows[i]].Contains(ts) {
		return t.rows[rows[i]], true
	}
	return Row{}, false
}

// Versions returns the rows of a symbol_id in force during [from, to), by From.
func (t *Table) Versions(symbolID uint32, from, to int64) []Row {
	var out []Row
	for _, i := range t.byID[symbolID] {
		r := t.rows[i]
		if r.From < to && r.To > from {
			out = append(out, r)
		}
	}
	return out
}

// embedded is the table in force when none is configured. The main hands it in
// (deploy.DimSymbolCSV), so that the refinery links no operator files of its own.
var embedded atomic.Pointer[[]byte]

// SetDefault sets the CSV table Default and Load("") parse: the main's embedded
// deploy/dim_symbol.csv. Call it before the first Load.
func SetDefault(csv []byte) { embedded.Store(&csv) }

// ErrNoDefault reports a Load("") with no table handed to SetDefault.
var ErrNoDefault = errors.New("no dim_symbol table: set [etl] dim_symbol, or hand the embedded one to symbols.SetDefault")

// Default returns the table handed to SetDefault (deploy/dim_symbol.csv in the mains).
func Default() (*Table, error) {
	p := embedded.Load()
	if p == nil {
		return nil, ErrNoDefault
	}
	return ParseCSV(*p, "embedded:dim_symbol.csv")
}

// Load reads a table from a .csv or .parquet file; an empty path loads the embedded default.
func Load(path string) (*Table, error) {
	if path == "" {
		return Default()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dim_symbol: %w", err)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return ParseCSV(b, path)
	case ".parquet":
		return ParseParquet(b, path)
	}
	return nil, fmt.Errorf("%s: %w: want a .csv or .parquet file", path, ErrInvalid)
}

var columns = []string{"symbol_id", "symbol_version_id", "venue", "raw_symbol", "symbol_code", "valid_from", "valid_to"}

// ParseCSV reads the CSV form: a header row naming the columns (any order, extra columns
// ignored), then one row per version. Lines starting with '#' are comments.
func ParseCSV(b []byte, name string) (*Table, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: header: %v", name, ErrInvalid, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	for _, c := range columns {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("%s: %w: header has no %q column", name, ErrInvalid, c)
		}
	}
	var rows []Row
	var where []string // each row's file:line, for errors about several rows
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
		}
		line, _ := r.FieldPos(0)
		get := func(c string) string {
			if i := col[c]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		bad := func(field string, err error) error {
			return fmt.Errorf("%s:%d: %w: %s: %v", name, line, ErrInvalid, field, err)
		}
		var row Row
		id, err := strconv.ParseUint(get("symbol_id"), 10, 32)
		if err != nil {
			return nil, bad("symbol_id", err)
		}
		ver, err := strconv.ParseUint(get("symbol_version_id"), 10, 64)
		if err != nil {
			return nil, bad("symbol_version_id", err)
		}
		row.SymbolID, row.VersionID = uint32(id), ver
		row.Venue, row.RawSymbol, row.SymbolCode = get("venue"), get("raw_symbol"), get("symbol_code")
		if row.From, err = parseTime(get("valid_from"), MinTime); err != nil {
			return nil, bad("valid_from", err)
		}
		if row.To, err = parseTime(get("valid_to"), MaxTime); err != nil {
			return nil, bad("valid_to", err)
		}
		if err := check(&row); err != nil {
			return nil, bad(err.field, err.err)
		}
		rows = append(rows, row)
		where = append(where, fmt.Sprintf("%s:%d", name, line))
	}
	return build(rows, where, b, name)
}

// parseTime accepts RFC 3339 (with or without fraction) or a bare date (midnight UTC),
// within the instants int64 nanoseconds can hold (1677-09-21 to 2262-04-11).
func parseTime(s string, empty int64) (int64, error) {
	if s == "" {
		return empty, nil
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return unixNano(t)
		}
	}
	return 0, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
}

var minTime, maxTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// unixNano converts t, refusing instants UnixNano would wrap.
func unixNano(t time.Time) (int64, error) {
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%s is outside 1677-09-21..2262-04-11", t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

type fieldErr struct {
	field string
	err   error
}

func check(r *Row) *fieldErr {
	switch {
	case r.SymbolID == 0:
		return &fieldErr{"symbol_id", errors.New("0 is reserved for unmapped symbols")}
	case r.VersionID == 0:
		return &fieldErr{"symbol_version_id", errors.New("must be positive")}
	case !layout.ValidName(r.Venue):
		return &fieldErr{"venue", fmt.Errorf("%q is not a valid venue id", r.Venue)}
	case r.RawSymbol == "" || len(r.RawSymbol) > 64:
		return &fieldErr{"raw_symbol", fmt.Errorf("%q", r.RawSymbol)}
	case !layout.ValidName(r.SymbolCode):
		return &fieldErr{"symbol_code", fmt.Errorf("%q is not a valid directory name (lower case, digits, - _ .)", r.SymbolCode)}
	case r.From >= r.To:
		return &fieldErr{"valid_to", errors.New("not after valid_from")}
	}
	return nil
}

// pqRow is the Parquet schema: timestamps are optional (null = open end).
type pqRow struct {
	SymbolID        int64      `parquet:"symbol_id"`
	SymbolVersionID int64      `parquet:"symbol_version_id"`
	Venue           string     `parquet:"venue"`
	RawSymbol       string     `parquet:"raw_symbol"`
	SymbolCode      string     `parquet:"symbol_code"`
	ValidFrom       *time.Time `parquet:"valid_from,optional,timestamp(nanosecond)"`
	ValidTo         *time.Time `parquet:"valid_to,optional,timestamp(nanosecond)"`
}

// ParseParquet reads the Parquet form.
func ParseParquet(b []byte, name string) (*Table, error) {
	prs, err := parquet.Read[pqRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	rows := make([]Row, 0, len(prs))
	where := make([]string, 0, len(prs))
	for i, p := range prs {
		where = append(where, fmt.Sprintf("%s: row %d", name, i+1))
		row := Row{Venue: p.Venue, RawSymbol: p.RawSymbol, SymbolCode: p.SymbolCode, From: MinTime, To: MaxTime}
		if p.SymbolID <= 0 || p.SymbolID > math.MaxUint32 {
			return nil, fmt.Errorf("%s: row %d: %w: symbol_id %d", name, i+1, ErrInvalid, p.SymbolID)
		}
		if p.SymbolVersionID <= 0 {
			return nil, fmt.Errorf("%s: row %d: %w: symbol_version_id %d", name, i+1, ErrInvalid, p.SymbolVersionID)
		}
		row.SymbolID, row.VersionID = uint32(p.SymbolID), uint64(p.SymbolVersionID)
		var err error
		if p.ValidFrom != nil {
			if row.From, err = unixNano(*p.ValidFrom); err != nil {
				return nil, fmt.Errorf("%s: row %d: %w: valid_from: %v", name, i+1, ErrInvalid, err)
			}
		}
		if p.ValidTo != nil {
			if row.To, err = unixNano(*p.ValidTo); err != nil {
				return nil, fmt.Errorf("%s: row %d: %w: valid_to: %v", name, i+1, ErrInvalid, err)
			}
		}
		if err := check(&row); err != nil {
			return nil, fmt.Errorf("%s: row %d: %w: %s: %v", name, i+1, ErrInvalid, err.field, err.err)
		}
		rows = append(rows, row)
	}
	return build(rows, where, b, name)
}

// WriteParquet writes rows in the Parquet form (for tests and for exporting the CSV).
func WriteParquet(w io.Writer, rows []Row) error {
	out := make([]pqRow, len(rows))
	for i, r := range rows {
		out[i] = pqRow{SymbolID: int64(r.SymbolID), SymbolVersionID: int64(r.VersionID), Venue: r.Venue,
			RawSymbol: r.RawSymbol, SymbolCode: r.SymbolCode}
		if r.From != MinTime {
			t := time.Unix(0, r.From).UTC()
			out[i].ValidFrom = &t
		}
		if r.To != MaxTime {
			t := time.Unix(0, r.To).UTC()
			out[i].ValidTo = &t
		}
	}
	return parquet.Write(w, out)
}

// build indexes rows and refuses overlaps; where names each row (file:line) in errors.
func build(rows []Row, where []string, raw []byte, name string) (*Table, error) {
	sum := sha256.Sum256(raw)
	t := &Table{source: name, hash: hex.EncodeToString(sum[:]), rows: rows,
		byRaw: map[rawKey][]int{}, byID: map[uint32][]int{}}
	versions := map[uint64]int{}
	for i, r := range rows {
		if j, dup := versions[r.VersionID]; dup {
			return nil, fmt.Errorf("%s, %s: %w: symbol_version_id %d is used twice", where[j], where[i], ErrInvalid, r.VersionID)
		}
		versions[r.VersionID] = i
		k := rawKey{r.Venue, r.RawSymbol}
		t.byRaw[k] = append(t.byRaw[k], i)
		t.byID[r.SymbolID] = append(t.byID[r.SymbolID], i)
	}
	overlap := func(what string, idx []int) error {
		sort.SliceStable(idx, func(a, b int) bool { return rows[idx[a]].From < rows[idx[b]].From })
		for j := 1; j < len(idx); j++ {
			a, b := rows[idx[j-1]], rows[idx[j]]
			if b.From < a.To {
				return fmt.Errorf("%s, %s: %w: %s: versions %d and %d overlap", where[idx[j-1]], where[idx[j]], ErrInvalid, what, a.VersionID, b.VersionID)
			}
		}
		return nil
	}
	for k, idx := range t.byRaw {
		if err := overlap(k.venue+"/"+k.raw, idx); err != nil {
			return nil, err
		}
	}
	for id, idx := range t.byID {
		if err := overlap(fmt.Sprintf("symbol_id %d", id), idx); err != nil {
			return nil, err
		}
		for _, i := range idx[1:] {
			if rows[i].Venue != rows[idx[0]].Venue {
				return nil, fmt.Errorf("%s, %s: %w: symbol_id %d has rows on venues %s and %s", where[idx[0]], where[i], ErrInvalid, id, rows[idx[0]].Venue, rows[i].Venue)
			}
		}
	}
	return t, nil
}
