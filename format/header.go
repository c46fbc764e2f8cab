package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"time"
)

// Container constants. See docs/format/q.md for the byte diagram.
const (
	// Magic opens every .q file. The high byte and the trailing newline catch 7-bit and
	// text-mode mangling, as PNG's signature does.
	Magic = "\x89CHRONQ\n"

	Version = 1

	// HeaderSize is what this version writes: one page, so records start page-aligned and
	// numpy.memmap(offset=HeaderSize) maps them directly. Readers accept any multiple of 64
	// from MinHeaderSize up to MaxHeaderSize, as declared in the header itself.
	HeaderSize    = 4096
	MinHeaderSize = 256
	MaxHeaderSize = 1 << 20

	// Byte offsets inside the header.
	offMagic      = 0
	offVersion    = 8
	offLayout     = 10
	offHeaderSize = 12
	offRecordSize = 16
	offCRC        = 20
	offCommitted  = 24 // 8-byte aligned: published with one atomic store
	offState      = 32 // 4-byte aligned: sealed bit, atomic store
	offSymbolID   = 64
	offDate       = 68
	offSymVersion = 72
	offCreated    = 80
	offPriceDec   = 88
	offQtyDec     = 89
	offVenue      = 96
	offSymbolCode = 128
	identityEnd   = 256 // bytes [64,256) are the immutable identity block

	VenueLen      = 32
	SymbolCodeLen = 64

	stateSealed = 1
)

// Layout says what records follow the header.
type Layout uint16

const (
	LayoutBook    Layout = 1 // fixed-size canonical book records (BookRecordSize bytes)
	LayoutJournal Layout = 2 // variable-length framed raw journal records
)

// What identifies a .q file: a header that fails these is not one of ours.
var (
	ErrBadMagic           = errors.New("bad magic")
	ErrUnsupportedVersion = errors.New("unsupported version")
	ErrHeaderChecksum     = errors.New("header checksum mismatch")
)

func (l Layout) String() string {
	switch l {
	case LayoutBook:
		return "book"
	case LayoutJournal:
		return "journal"
	}
	return fmt.Sprintf("layout(%d)", uint16(l))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded container header.
type Header struct {
	Version    uint16
	Layout     Layout
	HeaderSize uint32 // bytes before the first record
	RecordSize uint32 // fixed record size, 0 for variable-length (journal)

	// Committed is the file offset just past the last whole record. It is the single source
	// of truth for how much of a growing file is readable.
	Committed uint64
	Sealed    bool

	SymbolID        uint32
	SymbolVersionID uint64
	Date            uint32 // partition date as YYYYMMDD (UTC), 0 when not partitioned
	CreatedNs       int64
	PriceDecimals   uint8 // price = raw / 10^PriceDecimals
	QtyDecimals     uint8 // quantity = raw / 10^QtyDecimals
	Venue           string
	SymbolCode      string
}

// NewBookHeader returns a header for a canonical book file with the standard sizes.
func NewBookHeader(venue, symbolCode string, symbolID uint32, date uint32) Header {
	return Header{
		Version: Version, Layout: LayoutBook, HeaderSize: HeaderSize, RecordSize: BookRecordSize,
		Venue: venue, SymbolCode: symbolCode, SymbolID: symbolID, Date: date,
		PriceDecimals: DefaultDecimals, QtyDecimals: DefaultDecimals,
	}
}

// NewJournalHeader returns a header for a raw journal segment.
func NewJournalHeader(venue, tag string) Header {
	return Header{Version: Version, Layout: LayoutJournal, HeaderSize: HeaderSize, Venue: venue, SymbolCode: tag}
}

// DataStart is the offset of the first record.
func (h *Header) DataStart() int64 { return int64(h.HeaderSize) }

// DataLen is the number of committed record bytes.
func (h *Header) DataLen() int64 { return int64(h.Committed) - int64(h.HeaderSize) }

// Records is the number of committed fixed-size records (0 for variable layouts).
func (h *Header) Records() int64 {
	if h.RecordSize == 0 {
		return 0
	}
	return h.DataLen() / int64(h.RecordSize)
}

// DateTime returns the partition date as a UTC midnight, or the zero time.
func (h *Header) DateTime() time.Time {
	if h.Date == 0 {
		return time.Time{}
	}
	return time.Date(int(h.Date/10000), time.Month(h.Date/100%100), int(h.Date%100), 0, 0, 0, 0, time.UTC)
}

// DateOf converts a time to the YYYYMMDD form of its UTC date.
func DateOf(t time.Time) uint32 {
	t = t.UTC()
	return uint32(t.Year()*10000 + int(t.Month())*100 + t.Day())
}

func (h *Header) validateForWrite() error {
	switch {
	case h.HeaderSize < MinHeaderSize || h.HeaderSize > MaxHeaderSize || h.HeaderSize%64 != 0:
		return fmt.Errorf("%w: header size %d", ErrBadHeader, h.HeaderSize)
	case h.Layout == LayoutBook && h.RecordSize != BookRecordSize:
		return fmt.Errorf("%w: book layout needs record size %d, got %d", ErrBadHeader, BookRecordSize, h.RecordSize)
	case h.Layout == LayoutJournal && h.RecordSize != 0:
		return fmt.Errorf("%w: journal layout is variable-length, got record size %d", ErrBadHeader, h.RecordSize)
	case h.Layout != LayoutBook && h.Layout != LayoutJournal:
		return fmt.Errorf("%w: unknown layout %d", ErrBadHeader, h.Layout)
	case len(h.Venue) > VenueLen || strings.IndexByte(h.Venue, 0) >= 0:
		return fmt.Errorf("%w: venue %q longer than %d bytes or has NUL", ErrBadHeader, h.Venue, VenueLen)
	case len(h.SymbolCode) > SymbolCodeLen || strings.IndexByte(h.SymbolCode, 0) >= 0:
		return fmt.Errorf("%w: symbol code %q longer than %d bytes or has NUL", ErrBadHeader, h.SymbolCode, SymbolCodeLen)
	case h.PriceDecimals > MaxDecimals || h.QtyDecimals > MaxDecimals:
		return fmt.Errorf("%w: decimals above %d", ErrBadHeader, MaxDecimals)
	}
	return nil
}

// MarshalBinary encodes the header into HeaderSize bytes, computing the checksum.
func (h *Header) MarshalBinary() ([]byte, error) {
	if h.Version == 0 {
		h.Version = Version
	}
	if h.HeaderSize == 0 {
		h.HeaderSize = HeaderSize
	}
	if err := h.validateForWrite(); err != nil {
		return nil, err
	}
	if h.Committed < uint64(h.HeaderSize) {
		h.Committed = uint64(h.HeaderSize)
	}
	b := make([]byte, h.HeaderSize)
	le := binary.LittleEndian
	copy(b[offMagic:], Magic)
	le.PutUint16(b[offVersion:], h.Version)
	le.PutUint16(b[offLayout:], uint16(h.Layout))
	le.PutUint32(b[offHeaderSize:], h.HeaderSize)
	le.PutUint32(b[offRecordSize:], h.RecordSize)
	le.PutUint64(b[offCommitted:], h.Committed)
	if h.Sealed {
		le.PutUint32(b[offState:], stateSealed)
	}
	le.PutUint32(b[offSymbolID:], h.SymbolID)
	le.PutUint32(b[offDate:], h.Date)
	le.PutUint64(b[offSymVersion:], h.SymbolVersionID)
	le.PutUint64(b[offCreated:], uint64(h.CreatedNs))
	b[offPriceDec] = h.PriceDecimals
	b[offQtyDec] = h.QtyDecimals
	copy(b[offVenue:offVenue+VenueLen], h.Venue)
	copy(b[offSymbolCode:offSymbolCode+SymbolCodeLen], h.SymbolCode)
	le.PutUint32(b[offCRC:], headerCRC(b))
	return b, nil
}

// headerCRC covers the immutable parts: the prologue before the checksum and the identity
// block. The committed length and state change while a file grows, so they are excluded.
func headerCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:offCRC])
	return crc32.Update(c, castagnoli, b[offSymbolID:identityEnd])
}

// ParseHeader decodes and validates a header from b, which must hold at least MinHeaderSize
// bytes. name is used in errors only.
func ParseHeader(b []byte, name string) (Header, error) {
	var h Header
	if len(b) < len(Magic) || !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		if len(b) < len(Magic) {
			return h, corrupt(name, 0, ErrTruncated, "%d bytes, need at least %d for a header", len(b), MinHeaderSize)
		}
		return h, corrupt(name, offMagic, ErrBadMagic, "%q", b[:len(Magic)])
	}
	if len(b) < MinHeaderSize {
		return h, corrupt(name, 0, ErrTruncated, "%d bytes, need at least %d for a header", len(b), MinHeaderSize)
	}
	le := binary.LittleEndian
	h.Version = le.Uint16(b[offVersion:])
	if h.Version != Version {
		return h, corrupt(name, offVersion, ErrUnsupportedVersion, "version %d, this reader knows %d", h.Version, Version)
	}
	if got, want := le.Uint32(b[offCRC:]), headerCRC(b); got != want {
		return h, corrupt(name, offCRC, ErrHeaderChecksum, "stored %08x, computed %08x", got, want)
	}
	h.Layout = Layout(le.Uint16(b[offLayout:]))
	h.HeaderSize = le.Uint32(b[offHeaderSize:])
	h.RecordSize = le.Uint32(b[offRecordSize:])
	h.Committed = le.Uint64(b[offCommitted:])
	h.Sealed = le.Uint32(b[offState:])&stateSealed != 0
	h.SymbolID = le.Uint32(b[offSymbolID:])
	h.Date = le.Uint32(b[offDate:])
	h.SymbolVersionID = le.Uint64(b[offSymVersion:])
	h.CreatedNs = int64(le.Uint64(b[offCreated:]))
	h.PriceDecimals = b[offPriceDec]
	h.QtyDecimals = b[offQtyDec]
	h.Venue = cstring(b[offVenue : offVenue+VenueLen])
	h.SymbolCode = cstring(b[offSymbolCode : offSymbolCode+SymbolCodeLen])
	switch {
	case h.HeaderSize < MinHeaderSize || h.HeaderSize > MaxHeaderSize || h.HeaderSize%64 != 0:
		return h, corrupt(name, offHeaderSize, ErrBadHeader, "header size %d", h.HeaderSize)
	case h.Layout == LayoutBook && h.RecordSize != BookRecordSize:
		return h, corrupt(name, offRecordSize, ErrRecordSize, "book layout declares record size %d, want %d", h.RecordSize, BookRecordSize)
	case h.Layout == LayoutJournal && h.RecordSize != 0:
		return h, corrupt(name, offRecordSize, ErrRecordSize, "journal layout declares record size %d, want 0", h.RecordSize)
	case h.Layout != LayoutBook && h.Layout != LayoutJournal:
		return h, corrupt(name, offLayout, ErrBadHeader, "unknown layout %d", h.Layout)
	case h.Committed < uint64(h.HeaderSize):
		return h, corrupt(name, offCommitted, ErrBadHeader, "committed length %d below header size %d", h.Committed, h.HeaderSize)
	case h.RecordSize != 0 && (h.Committed-uint64(h.HeaderSize))%uint64(h.RecordSize) != 0:
		return h, corrupt(name, offCommitted, ErrRecordSize, "committed data length %d is not a multiple of record size %d", h.Committed-uint64(h.HeaderSize), h.RecordSize)
	case h.PriceDecimals > MaxDecimals || h.QtyDecimals > MaxDecimals:
		return h, corrupt(name, offPriceDec, ErrBadHeader, "decimals %d/%d above %d", h.PriceDecimals, h.QtyDecimals, MaxDecimals)
	}
	return h, nil
}

// ReadHeader reads and validates the header of r. It checks the committed length against
// size when size >= 0 (the file's current length).
func ReadHeader(r io.ReaderAt, size int64, name string) (Header, error) {
	buf := make([]byte, MinHeaderSize)
	n, err := r.ReadAt(buf, 0)
	if n < MinHeaderSize {
		if err == nil || err == io.EOF {
			return Header{}, corrupt(name, int64(n), ErrTruncated, "header needs %d bytes, file has %d", MinHeaderSize, n)
		}
		return Header{}, fmt.Errorf("read header of %s: %w", name, err)
	}
	h, err := ParseHeader(buf, name)
	if err != nil {
		return h, err
	}
	if size >= 0 && int64(h.Committed) > size {
		return h, corrupt(name, offCommitted, ErrTruncated, "header commits %d bytes, file has %d", h.Committed, size)
	}
	return h, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
