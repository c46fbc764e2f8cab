// Package layout is what every Chronicle binary shares about the tree: the tier names and
// roots, the partition key v1/{venue}/{symbol}/{date}, logical paths below the mount root,
// and the file names inside a partition. It imports nothing of Chronicle's, so the capture
// host's binaries (chronicle-feed, chronicle-etl) link it without the object-store code.
// docs/resolution.md describes the layout.
package layout

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Tier names a storage tier, in resolution priority order.
type Tier uint8

const (
	Hot Tier = iota
	Warm
	Cold
	Remote
	NumTiers
)

var tierNames = [...]string{"hot", "warm", "cold", "remote"}

func (t Tier) String() string {
	if int(t) < len(tierNames) {
		return tierNames[t]
	}
	return fmt.Sprintf("tier(%d)", uint8(t))
}

// ParseTier parses a tier name.
func ParseTier(s string) (Tier, error) {
	for i, n := range tierNames {
		if s == n {
			return Tier(i), nil
		}
	}
	return 0, fmt.Errorf("unknown tier %q (want hot, warm, cold or remote)", s)
}

// File names inside a partition directory.
const (
	LayoutVersion = "v1"
	BookName      = "book.q"
	ZstName       = "book.q.zst"
	IdxName       = "book.q.zst.idx"
	StubName      = "book.q.zst.remote.json"
	// ClaimName is the object that makes one host the writer of a partition's key in the
	// bucket (docs/format/remote-claim.md); never a local file.
	ClaimName = "book.q.zst.claim"
	// CollisionName records, in a cold partition directory, that another host holds the
	// partition's key in the bucket: the book stays local, uploaded under this host's key.
	CollisionName = "book.q.zst.collision.json"
	MetaName      = "meta.json"
	IndexDir      = "index"
	DerivedDir    = "derived"
	DateLayout    = "2006-01-02"
)

// ErrInvalidPath reports a path, key or name outside the v1 layout.
var ErrInvalidPath = errors.New("invalid logical path")

// Roots are the four tier locations: the [tiers] table of the shared configuration.
type Roots struct {
	Hot    string `toml:"hot" flag:"hot" help:"hot tier root"`
	Warm   string `toml:"warm" flag:"warm" help:"warm tier root"`
	Cold   string `toml:"cold" flag:"cold" help:"cold tier root"`
	Remote string `toml:"remote" flag:"remote" help:"remote tier URI: s3://bucket/prefix or file:///dir"` // object-store URI: s3://bucket/prefix or file:///dir; "" for none
	// AllowSharedRoots accepts local roots that other users can write to (without the
	// sticky bit) or that another user owns, with a warning, instead of refusing to start
	// (CheckRoots).
	AllowSharedRoots bool `toml:"allow_shared_roots" json:"-"`
}

// DefaultRoots are the production defaults of decisions.md.
func DefaultRoots() Roots {
	return Roots{Hot: "/dev/shm/chronicle", Warm: "/mnt/nvme-warm/chronicle", Cold: "/mnt/hdd/chronicle"}
}

// Local returns the local root of tier t ("" for Remote).
func (r Roots) Local(t Tier) string {
	switch t {
	case Hot:
		return r.Hot
	case Warm:
		return r.Warm
	case Cold:
		return r.Cold
	}
	return ""
}

// Key identifies one partition.
type Key struct {
	Venue, Symbol, Date string
}

// Dir is the partition's relative directory, e.g. v1/binance-perp/eth-usdt/2024-08-08.
func (k Key) Dir() string { return path.Join(LayoutVersion, k.Venue, k.Symbol, k.Date) }

func (k Key) String() string { return k.Dir() }

// Time returns the partition date at UTC midnight.
func (k Key) Time() (time.Time, error) { return time.Parse(DateLayout, k.Date) }

// NewKey builds and validates a key.
func NewKey(venue, symbol string, date time.Time) (Key, error) {
	k := Key{Venue: venue, Symbol: symbol, Date: date.UTC().Format(DateLayout)}
	return k, k.Validate()
}

// Validate checks every component.
func (k Key) Validate() error {
	if !ValidName(k.Venue) {
		return fmt.Errorf("%w: venue %q", ErrInvalidPath, k.Venue)
	}
	if !ValidName(k.Symbol) {
		return fmt.Errorf("%w: symbol %q", ErrInvalidPath, k.Symbol)
	}
	if !ValidDate(k.Date) {
		return fmt.Errorf("%w: date %q is not YYYY-MM-DD", ErrInvalidPath, k.Date)
	}
	return nil
}

// ValidDate reports whether s is a calendar date written YYYY-MM-DD (what time.Parse with
// DateLayout accepts, without its cost: listings validate thousands of dates).
func ValidDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	num := func(b string) int {
		n := 0
		for i := 0; i < len(b); i++ {
			if b[i] < '0' || b[i] > '9' {
				return -1
			}
			n = n*10 + int(b[i]-'0')
		}
		return n
	}
	y, m, d := num(s[:4]), num(s[5:7]), num(s[8:])
	if y < 0 || m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// ValidName reports whether s may be a venue or symbol directory: lowercase letters, digits,
// '-', '_' and '.', not starting with '.', at most 64 bytes.
func ValidName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ValidFileName accepts names of files inside a partition (meta.json, index/..., derived/...).
func ValidFileName(s string) bool {
	if s == "" || len(s) > 255 || s[0] == '.' || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/\x00")
}

// ValidFilePath accepts a '/'-separated path of a file inside a partition ("meta.json",
// "index/time.idx"): at most 4 components, each a ValidFileName and none temporary.
func ValidFilePath(p string) bool {
	parts := strings.Split(p, "/")
	if len(parts) > 4 {
		return false
	}
	for _, c := range parts {
		if !ValidFileName(c) || IsTemp(c) {
			return false
		}
	}
	return true
}

// Logical is a parsed logical path below the mount root.
type Logical struct {
	// Depth: 0 = "v1" (or ""), 1 = venue dir, 2 = symbol dir, 3 = partition dir, 4+ = a file
	// or directory inside the partition.
	Key  Key
	Rest string // path inside the partition ("book.q", "index/x"), "" for the directory itself
	raw  []string
}

// Components returns the path components after v1 (venue, symbol, date, ...).
func (l Logical) Components() []string { return l.raw }

// Name is the last component ("v1" for the root).
func (l Logical) Name() string {
	if len(l.raw) == 0 {
		return LayoutVersion
	}
	return l.raw[len(l.raw)-1]
}

// Rel is the clean relative path below a tier root: v1/venue/symbol/....
func (l Logical) Rel() string { return path.Join(append([]string{LayoutVersion}, l.raw...)...) }

// Depth returns how many components follow v1.
func (l Logical) Depth() int { return len(l.raw) }

// ParseLogical parses a slash-separated path such as "v1/binance-perp/eth-usdt/2024-08-08/book.q".
// It rejects anything that is not a clean path in the v1 layout.
func ParseLogical(p string) (Logical, error) {
	p = strings.Trim(p, "/")
	if p == "" || p == LayoutVersion {
		return Logical{}, nil
	}
	parts := strings.Split(p, "/")
	if parts[0] != LayoutVersion {
		return Logical{}, fmt.Errorf("%w: %q does not start with %s/", ErrInvalidPath, p, LayoutVersion)
	}
	parts = parts[1:]
	var l Logical
	for i, c := range parts {
		switch {
		case i < 2 && !ValidName(c):
			return l, fmt.Errorf("%w: %q: component %q", ErrInvalidPath, p, c)
		case i == 2:
			if !ValidDate(c) {
				return l, fmt.Errorf("%w: %q: date %q is not YYYY-MM-DD", ErrInvalidPath, p, c)
			}
		case i > 2 && (!ValidFileName(c) || IsTemp(c)): // hidden and temporary names: never served, even when named
			return l, fmt.Errorf("%w: %q: component %q", ErrInvalidPath, p, c)
		}
	}
	l.raw = parts
	if len(parts) > 0 {
		l.Key.Venue = parts[0]
	}
	if len(parts) > 1 {
		l.Key.Symbol = parts[1]
	}
	if len(parts) > 2 {
		l.Key.Date = parts[2]
	}
	if len(parts) > 3 {
		l.Rest = strings.Join(parts[3:], "/")
	}
	return l, nil
}

// IsTemp reports names that movers and writers use for files not yet in place; they are
// never listed or resolved. Every writer names them by fileutil.TempName (".name.tmp-tag");
// any hidden name and the dotless "*.tmp-*" of older writers are hidden as well.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") || strings.Contains(name, ".tmp-") || strings.HasSuffix(name, ".tmp")
}
