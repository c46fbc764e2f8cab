// Package meta reads and writes a partition's meta.json: who the partition is (venue,
// symbol identity and every dim_symbol version in force during its date), where it came
// from (the journal segments, with hashes), what it holds (exchange-time range, record and
// event counts) and how complete it is (invalid-book intervals with their reasons, crossed
// books, ticker self-checks), and the late-data policy it was sealed under.
//
// The byte-level specification is docs/format/meta.md. Every writer (chronicle-etl, the
// synthetic-partition writer, test fixtures) goes through this package; readers accept any
// version-1 document, including fields added later, and reject other versions.
package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/layout"
)

// Version is the meta.json version this package writes and reads.
const Version = 1

// MaxSize bounds a meta.json: a reader never loads more.
const MaxSize = 4 << 20

// ErrInvalid reports a meta.json that does not parse or breaks a rule of the spec.
var ErrInvalid = errors.New("invalid meta.json")

// Late-data policies.
const (
	LateReject = "reject"      // events for a sealed partition are counted, logged and dropped
	LateStream = "late_stream" // they go to the late stream outside the partition
)

// Time is an exact UTC instant, written as RFC 3339 with nanoseconds
// ("2024-08-08T23:54:16.303000000Z").
type Time int64

// Layout of Time in JSON: fixed nine fraction digits, so strings sort as times.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Ns is the instant in nanoseconds since the Unix epoch.
func (t Time) Ns() int64 { return int64(t) }

func (t Time) String() string { return time.Unix(0, int64(t)).UTC().Format(timeLayout) }

func (t Time) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

func (t *Time) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return &timeError{string(b), "is not RFC 3339"}
	}
	if v.Before(minTime) || v.After(maxTime) {
		return &timeError{string(b), "is outside 1677-09-21..2262-04-11"}
	}
	*t = Time(v.UnixNano())
	return nil
}

var minTime, maxTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// timeError is a time value that does not parse; Parse locates it in the document.
type timeError struct{ value, why string }

func (e *timeError) Error() string { return fmt.Sprintf("time %q %s", e.value, e.why) }

// Interval is a half-open exchange-time interval [From, To).
type Interval struct {
	From Time `json:"from"`
	To   Time `json:"to"`
}

// SymbolVersion is one dim_symbol row in force during part of the partition's date.
type SymbolVersion struct {
	SymbolVersionID uint64 `json:"symbol_version_id"`
	SymbolCode      string `json:"symbol_code"`
	RawSymbol       string `json:"raw_symbol"`
	Interval               // clipped to the date
}

// Segment is one journal segment the partition was built from.
type Segment struct {
	Name string `json:"name"`
	// XXH64 is the xxHash64 (hex) of the segment's frame bytes [header_size, End): of the
	// whole segment when Complete, else of the part read when the partition was written.
	XXH64    string `json:"xxh64"`
	End      int64  `json:"end"`
	Complete bool   `json:"complete"`
}

// Source says where the partition came from.
type Source struct {
	Pipeline string    `json:"pipeline"`           // "chronicle-etl", "chronicle-etl synth", ...
	Venue    string    `json:"venue"`              // the journal's venue
	Segments []Segment `json:"segments,omitempty"` // in journal order
	Note     string    `json:"note,omitempty"`     // free text (a synthetic partition's seed)
	// Host is the capture host that refined the partition (added within version 1; absent
	// in documents written before host ids existed, and in merged partitions, whose hosts
	// are in Merge).
	Host *Host `json:"host,omitempty"`
}

// Host is a capture host's stable id and how it was set.
type Host struct {
	ID string `json:"id"`
	// From says where the id came from: "config" ([host] id, or --host-id) or "hostname"
	// (the machine's name, when none was configured).
	From string `json:"from"`
}

// Ways a host id is set (Host.From).
const (
	HostFromConfig   = "config"
	HostFromHostname = "hostname"
)

// Merge describes a partition written by chronicle-etl merge from several hosts'
// captures of the same streams (added within version 1).
type Merge struct {
	// Base is the host whose copy of an event is used when several hosts have it; the
	// others fill its holes. It is the host whose id sorts first, never chosen by the
	// order the inputs were named in.
	Base string `json:"base"`
	// Hosts are the inputs, sorted by id: the journal segments each was read from, and
	// how many of the partition's depth updates, trades and tickers came from each.
	Hosts []MergeHost `json:"hosts"`
	// Supplied cuts the partition's book into stretches of exchange time whose depth
	// updates all came from one host, in time order.
	Supplied []Supplied `json:"supplied"`
}

// MergeHost is one input of a merge.
type MergeHost struct {
	ID           string    `json:"id"`
	Segments     []Segment `json:"segments"`
	DepthUpdates int64     `json:"depth_updates"`
	Trades       int64     `json:"trades"`
	BBO          int64     `json:"bbo"`
}

// Supplied is one stretch of a merged book and the host its depth updates came from:
// from the exchange time of its first update to that of the next stretch's first (the
// last stretch ends just after the partition's last record).
type Supplied struct {
	Interval
	Host         string `json:"host"`
	DepthUpdates int64  `json:"depth_updates"`
}

// Invalid is an interval during which the book was unreliable, with why.
type Invalid struct {
	Interval
	Reason string `json:"reason"` // format.InvalidReasonName: sequence, disconnect, no_snapshot...
	Open   bool   `json:"open,omitempty"`
}

// Gap is an interval during which events of a non-book stream are missing (trade ids
// skipped), while the book itself stayed valid.
type Gap struct {
	Interval
	Stream  string `json:"stream"`
	Missing int64  `json:"missing"` // ids skipped
}

// Completeness is what is known to be missing from the partition.
type Completeness struct {
	// Complete is true when the book was valid throughout and no stream lost events.
	Complete bool      `json:"complete"`
	Invalid  []Invalid `json:"invalid"`
	Gaps     []Gap     `json:"gaps"`
}

// Events counts exchange events, as researchers count them.
type Events struct {
	DepthUpdates int64 `json:"depth_updates"` // applied depth updates (non-snapshot level records flagged last)
	Trades       int64 `json:"trades"`
	BBO          int64 `json:"bbo"`
	Snapshots    int64 `json:"snapshots"` // snapshot runs
	BookInvalid  int64 `json:"book_invalid"`
}

// Checks are the refinery's self-checks.
type Checks struct {
	CrossedEvents    int64 `json:"crossed_events"` // depth updates after which the book was crossed
	TickerChecks     int64 `json:"ticker_checks"`  // tickers compared with the rebuilt book
	TickerMismatches int64 `json:"ticker_mismatches"`
	// Venues whose depth messages carry the exchange's checksum of its book (OKX,
	// Kraken): messages whose checksum was compared with the rebuilt book's, and those
	// that disagreed. Absent for venues that send none.
	ChecksumChecks     *int64 `json:"checksum_checks,omitempty"`
	ChecksumMismatches *int64 `json:"checksum_mismatches,omitempty"`
}

// Instrument says what quantities count (venue.Instrument).
type Instrument struct {
	QtyUnit          string `json:"qty_unit"`
	ContractSize     string `json:"contract_size,omitempty"`
	ContractCurrency string `json:"contract_currency,omitempty"`
	// From the venue's reference data, when it publishes one (OKX, Kraken).
	Type     string `json:"type,omitempty"`      // spot, swap, futures
	TickSize string `json:"tick_size,omitempty"` // price increment, exact decimal
	LotSize  string `json:"lot_size,omitempty"`  // size increment, exact decimal
	Expiry   *Time  `json:"expiry,omitempty"`    // a dated contract's expiry
}

// Meta is one partition's meta.json.
type Meta struct {
	Version         int             `json:"version"`
	Venue           string          `json:"venue"`
	Date            string          `json:"date"` // YYYY-MM-DD, UTC exchange time
	SymbolID        uint32          `json:"symbol_id"`
	SymbolCode      string          `json:"symbol_code"`       // the directory name
	SymbolVersionID uint64          `json:"symbol_version_id"` // the version the directory is named after
	SymbolVersions  []SymbolVersion `json:"symbol_versions"`   // every version in force during the date
	Unmapped        bool            `json:"unmapped,omitempty"`
	Instrument      *Instrument     `json:"instrument,omitempty"`
	PriceDecimals   uint8           `json:"price_decimals"`
	QtyDecimals     uint8           `json:"qty_decimals"`

	Sealed         bool             `json:"sealed"` // false while the partition still grows
	IngestTime     Time             `json:"ingest_time"`
	EventTimeRange *Interval        `json:"event_time_range"` // first and last record's exchange time (To inclusive)
	Records        map[string]int64 `json:"records"`          // by record type name, and "total"
	Events         Events           `json:"events"`
	Completeness   Completeness     `json:"completeness"`
	Checks         Checks           `json:"checks"`
	LatePolicy     string           `json:"late_policy"`
	Synthetic      bool             `json:"synthetic,omitempty"`
	Source         Source           `json:"source"`
	// Merge is set on partitions chronicle-etl merge wrote (added within version 1).
	Merge *Merge `json:"merge,omitempty"`
}

// New returns a minimal valid document for a sealed partition (identity, defaults, empty
// counts): writers fill in what they know.
func New(venue, date, symbolCode string, symbolID uint32) *Meta {
	return &Meta{Version: Version, Venue: venue, Date: date, SymbolCode: symbolCode, SymbolID: symbolID,
		PriceDecimals: 8, QtyDecimals: 8, Sealed: true, Records: map[string]int64{"total": 0},
		LatePolicy: LateReject, Completeness: Completeness{Complete: true}}
}

// MustMarshal is Marshal for documents known to be valid (fixtures); it panics otherwise.
func MustMarshal(m *Meta) []byte {
	b, err := Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Validate checks the rules of docs/format/meta.md.
func (m *Meta) Validate() error {
	bad := func(field, f string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(f, a...))
	}
	if m.Version != Version {
		return bad("version", "%d, want %d", m.Version, Version)
	}
	if m.Venue == "" || len(m.Venue) > 32 {
		return bad("venue", "%q", m.Venue)
	}
	if d, err := time.Parse("2006-01-02", m.Date); err != nil || d.Format("2006-01-02") != m.Date {
		return bad("date", "%q is not YYYY-MM-DD", m.Date)
	}
	if m.SymbolCode == "" || len(m.SymbolCode) > 64 {
		return bad("symbol_code", "%q", m.SymbolCode)
	}
	switch m.LatePolicy {
	case LateReject, LateStream:
	default:
		return bad("late_policy", "%q (want reject or late_stream)", m.LatePolicy)
	}
	if m.PriceDecimals > 18 || m.QtyDecimals > 18 {
		return bad("price_decimals", "%d/%d above 18", m.PriceDecimals, m.QtyDecimals)
	}
	if r := m.EventTimeRange; r != nil && r.To < r.From {
		return bad("event_time_range", "ends before it starts")
	}
	for i, v := range m.Completeness.Invalid {
		if v.To < v.From || v.Reason == "" {
			return bad(fmt.Sprintf("completeness.invalid[%d]", i), "%s..%s %q", v.From, v.To, v.Reason)
		}
	}
	for i, v := range m.SymbolVersions {
		if v.To < v.From {
			return bad(fmt.Sprintf("symbol_versions[%d]", i), "ends before it starts")
		}
	}
	for k, n := range m.Records {
		if n < 0 {
			return bad("records."+k, "negative")
		}
	}
	for _, c := range []struct {
		name string
		n    int64
	}{{"events.depth_updates", m.Events.DepthUpdates}, {"events.trades", m.Events.Trades}, {"events.bbo", m.Events.BBO},
		{"events.snapshots", m.Events.Snapshots}, {"events.book_invalid", m.Events.BookInvalid},
		{"checks.crossed_events", m.Checks.CrossedEvents}, {"checks.ticker_checks", m.Checks.TickerChecks},
		{"checks.ticker_mismatches", m.Checks.TickerMismatches}, {"checks.checksum_checks", deref(m.Checks.ChecksumChecks)},
		{"checks.checksum_mismatches", deref(m.Checks.ChecksumMismatches)}} {
		if c.n < 0 {
			return bad(c.name, "negative")
		}
	}
	for i, g := range m.Completeness.Gaps {
		if g.To < g.From || g.Missing < 0 {
			return bad(fmt.Sprintf("completeness.gaps[%d]", i), "%s..%s missing %d", g.From, g.To, g.Missing)
		}
	}
	if h := m.Source.Host; h != nil && (!layout.ValidName(h.ID) || (h.From != HostFromConfig && h.From != HostFromHostname)) {
		return bad("source.host", "id %q from %q", h.ID, h.From)
	}
	if mg := m.Merge; mg != nil {
		hosts := map[string]bool{}
		for i, h := range mg.Hosts {
			if !layout.ValidName(h.ID) || hosts[h.ID] || (i > 0 && h.ID < mg.Hosts[i-1].ID) {
				return bad(fmt.Sprintf("merge.hosts[%d]", i), "id %q (ids must be valid, distinct and sorted)", h.ID)
			}
			if h.DepthUpdates < 0 || h.Trades < 0 || h.BBO < 0 {
				return bad(fmt.Sprintf("merge.hosts[%d]", i), "negative count")
			}
			hosts[h.ID] = true
		}
		if len(mg.Hosts) < 2 || !hosts[mg.Base] {
			return bad("merge.base", "%q among %d hosts", mg.Base, len(mg.Hosts))
		}
		for i, sp := range mg.Supplied {
			if sp.To < sp.From || !hosts[sp.Host] || (i > 0 && sp.From < mg.Supplied[i-1].To) || sp.DepthUpdates < 0 {
				return bad(fmt.Sprintf("merge.supplied[%d]", i), "%s..%s from %q", sp.From, sp.To, sp.Host)
			}
		}
	}
	return nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// Marshal validates m and encodes it, indented, with a final newline.
func Marshal(m *Meta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return fileutil.EncodeJSON(m)
}

// Parse decodes and validates a meta.json document. name labels errors.
func Parse(b []byte, name string) (*Meta, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", name, ErrInvalid, len(b), MaxSize)
	}
	var m Meta
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("%s: %w: offset %d: %v", name, ErrInvalid, se.Offset, err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("%s: %w: field %s: offset %d: %v", name, ErrInvalid, te.Field, te.Offset, err)
		}
		var ti *timeError
		if errors.As(err, &ti) {
			if off := bytes.Index(b, []byte(`"`+ti.value+`"`)); off >= 0 {
				return nil, fmt.Errorf("%s: %w: field %s: offset %d: %v", name, ErrInvalid, lastKey(b[:off]), off, err)
			}
		}
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if rest := bytes.TrimSpace(b[d.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("%s: %w: offset %d: data after the document", name, ErrInvalid, d.InputOffset())
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

// lastKey returns the last object key in b ("ingest_time"), to name the field a value
// error is in.
func lastKey(b []byte) string {
	i := bytes.LastIndex(b, []byte(`":`))
	if i < 0 {
		return "?"
	}
	j := bytes.LastIndexByte(b[:i], '"')
	if j < 0 {
		return "?"
	}
	return string(b[j+1 : i])
}

// Read reads and validates the meta.json at path.
func Read(path string) (*Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(b, path)
}

func readLimited(f *os.File) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(&limitReader{f: f, n: MaxSize + 1}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type limitReader struct {
	f *os.File
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// Write replaces dir/meta.json atomically: a temporary file, fsync, rename, fsync of the
// directory. A reader sees the old document or the new one, never a part.
func Write(dir string, m *Meta) error {
	b, err := Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, FileName), err)
	}
	return WriteBytes(dir, b)
}

// FileName is the document's name inside a partition directory.
const FileName = "meta.json"

// WriteBytes writes an already encoded document atomically (for fixtures that need exact
// bytes).
func WriteBytes(dir string, b []byte) error {
	return fileutil.WriteFile(filepath.Join(dir, FileName), b, 0o644)
}
