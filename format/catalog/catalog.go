// Package catalog reads and writes the per-symbol catalogs the tier manager keeps in the
// bucket (docs/format/catalog.md): every version of a partition one host uploaded for one
// symbol, with its stub, in one object, so that a research host describes a symbol's
// partitions with one GET instead of a listing and a GET per partition. A catalog is a
// cache, never the truth: readers use it only where the bucket's listing agrees with it
// and no upload is pending, and confirm it against the partition's own stub before they
// serve a byte.
package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/layout"
	"github.com/klauspost/compress/zstd"
)

// Format and Version identify a catalog.
const (
	Format  = "chronicle-catalog"
	Version = 1
	// Root is the key prefix of every catalog, beside v1/ below the remote root.
	Root = "catalog"
	// MaxCompressed and MaxJSON bound a catalog object and its decompressed JSON: readers
	// refuse larger ones before allocating.
	MaxCompressed = 64 << 20
	MaxJSON       = 256 << 20
	// MaxVersions bounds the versions one catalog lists (a century of days, three
	// versions each).
	MaxVersions = 120000

	catalogSuffix = ".json.zst"
	pendingInfix  = ".pending."
)

// ErrInvalid reports a catalog that does not decode or contradicts itself.
var ErrInvalid = errors.New("invalid catalog")

// Entry is one version of one partition: the stub the host uploaded for it.
type Entry struct {
	Date string     `json:"date"`
	Slot string     `json:"slot"`
	Stub *stub.Stub `json:"stub"`
	// Hive is the key (below the remote root) of the Hive-style copy of this version's
	// derived/book.parquet this host published, "" when none (docs/format/hive.md).
	Hive string `json:"hive,omitempty"`
}

// Catalog is one host's catalog of one symbol.
type Catalog struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	Host      string    `json:"host"`
	Venue     string    `json:"venue"`
	Symbol    string    `json:"symbol"`
	WrittenAt time.Time `json:"written_at"`
	Versions  []Entry   `json:"versions"`
}

// Dir is the key prefix (ending in '/') of a symbol's catalogs and pending markers.
func Dir(venue, symbol string) string {
	return path.Join(Root, layout.LayoutVersion, venue, symbol) + "/"
}

// Key is the key of host's catalog of a symbol.
func Key(venue, symbol, host string) string { return Dir(venue, symbol) + host + catalogSuffix }

// PendingKey is the key of the marker a host puts before it changes a partition's versions
// in the bucket and deletes once its catalog says what it did.
func PendingKey(k layout.Key, host string) string {
	return Dir(k.Venue, k.Symbol) + host + pendingInfix + k.Date
}

// Name is what a key in a symbol's catalog directory stands for.
type Name struct {
	Host    string
	Date    string // pending markers: the partition's date
	Pending bool
}

// ParseName reads a key's last component in a catalog directory: "{host}.json.zst" or
// "{host}.pending.{date}". false: neither (readers ignore it).
func ParseName(name string) (Name, bool) {
	if h, ok := strings.CutSuffix(name, catalogSuffix); ok {
		return Name{Host: h}, layout.ValidName(h)
	}
	i := strings.LastIndex(name, pendingInfix)
	if i < 0 {
		return Name{}, false
	}
	n := Name{Host: name[:i], Date: name[i+len(pendingInfix):], Pending: true}
	return n, layout.ValidName(n.Host) && layout.ValidDate(n.Date)
}

var (
	encOnce sync.Once
	enc     *zstd.Encoder
	dec     *zstd.Decoder
)

func codecs() {
	encOnce.Do(func() {
		enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		dec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxJSON))
	})
}

// Marshal sorts the versions and encodes the catalog: JSON, zstd-compressed.
func (c *Catalog) Marshal() ([]byte, error) {
	c.Format, c.Version = Format, Version
	c.Sort()
	if err := c.check("catalog"); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	codecs()
	return enc.EncodeAll(b, make([]byte, 0, len(b)/4)), nil
}

// Sort orders the versions by date, then slot.
func (c *Catalog) Sort() {
	slices.SortFunc(c.Versions, func(a, b Entry) int {
		if d := strings.Compare(a.Date, b.Date); d != 0 {
			return d
		}
		return strings.Compare(a.Slot, b.Slot)
	})
}

// Parse decodes and checks a catalog object; name labels errors. Every stub in it is
// checked as stub.Parse checks a stub, and must be the version of its entry's slot.
func Parse(b []byte, name string) (*Catalog, error) {
	if len(b) > MaxCompressed {
		return nil, fmt.Errorf("%s: %w: %d bytes, limit %d", name, ErrInvalid, len(b), MaxCompressed)
	}
	codecs()
	raw, err := dec.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: zstd: %v", name, ErrInvalid, err)
	}
	if len(raw) > MaxJSON {
		return nil, fmt.Errorf("%s: %w: %d bytes of JSON, limit %d", name, ErrInvalid, len(raw), MaxJSON)
	}
	var c Catalog
	if err := fileutil.DecodeJSON(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if err := c.check(name); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Catalog) check(name string) error {
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%s: %w: field %s: %s", name, ErrInvalid, field, fmt.Sprintf(why, args...))
	}
	switch {
	case c.Format != Format:
		return bad("format", "%q, want %q", c.Format, Format)
	case c.Version != Version:
		return bad("version", "%d, this reader knows %d", c.Version, Version)
	case !layout.ValidName(c.Host):
		return bad("host", "%q is not a host id", c.Host)
	case !layout.ValidName(c.Venue):
		return bad("venue", "%q is not a venue name", c.Venue)
	case !layout.ValidName(c.Symbol):
		return bad("symbol", "%q is not a symbol name", c.Symbol)
	case len(c.Versions) > MaxVersions:
		return bad("versions", "%d entries, at most %d", len(c.Versions), MaxVersions)
	}
	for i, e := range c.Versions {
		field := fmt.Sprintf("versions[%d]", i)
		k := layout.Key{Venue: c.Venue, Symbol: c.Symbol, Date: e.Date}
		switch {
		case k.Validate() != nil:
			return bad(field+".date", "%q is not a date", e.Date)
		case !stub.ValidSlot(e.Slot):
			return bad(field+".slot", "%q is not a slot", e.Slot)
		case stub.SlotHost(e.Slot) != "" && stub.SlotHost(e.Slot) != c.Host:
			return bad(field+".slot", "%q: a catalog lists only its own host's versions below hosts/", e.Slot)
		case e.Stub == nil:
			return bad(field+".stub", "missing")
		case i > 0 && (e.Date < c.Versions[i-1].Date || e.Date == c.Versions[i-1].Date && e.Slot <= c.Versions[i-1].Slot):
			return bad(field, "not after versions[%d] (sorted by date and slot, each once)", i-1)
		case e.Hive != "" && e.Hive != layout.HiveRel(k):
			return bad(field+".hive", "%q, this partition's Hive key is %q", e.Hive, layout.HiveRel(k))
		}
		if err := e.Stub.Check(name + ": " + field + ".stub"); err != nil {
			return err
		}
		if e.Stub.Slot != e.Slot {
			return bad(field+".stub.slot", "%q in the entry of slot %q", e.Stub.Slot, e.Slot)
		}
		if e.Stub.Host != "" && e.Stub.Host != c.Host {
			return bad(field+".stub.host", "%q in host %q's catalog", e.Stub.Host, c.Host)
		}
	}
	return nil
}

// Find returns the entry of a date and slot, nil when there is none.
func (c *Catalog) Find(date, slot string) *Entry {
	i, ok := slices.BinarySearchFunc(c.Versions, Entry{Date: date, Slot: slot}, func(a, b Entry) int {
		if d := strings.Compare(a.Date, b.Date); d != 0 {
			return d
		}
		return strings.Compare(a.Slot, b.Slot)
	})
	if !ok {
		return nil
	}
	return &c.Versions[i]
}
