package format

import (
	"encoding/binary"
	"fmt"
)

// BookRecordSize is the size of every canonical book record. 64 bytes keeps each record in
// one cache line and every field naturally aligned.
const BookRecordSize = 64

// Canonical record type ids (u16 at offset 0). New versions of a message get new ids;
// readers skip ids they do not know.
const (
	TypeLevel         uint16 = 1 // price level update: side, price, qty (0 deletes the level)
	TypeTrade         uint16 = 2 // trade: aggressor side, price, qty, trade id
	TypeBBO           uint16 = 3 // best bid/offer: bid in price/qty, ask in aux0/aux1
	TypeSnapshotBegin uint16 = 4 // a full book restatement starts; aux0 = level records that follow
	TypeSnapshotEnd   uint16 = 5 // the restatement is complete
	TypeBookInvalid   uint16 = 6 // a sequence gap: the book is unreliable until the next snapshot
)

// Record flags (u16 at offset 2).
const (
	FlagBid         uint16 = 1 << 0 // bid side; for trades, the buyer was the aggressor
	FlagAsk         uint16 = 1 << 1 // ask side; for trades, the seller was the aggressor
	FlagSnapshot    uint16 = 1 << 2 // part of a snapshot run that restates the whole book
	FlagLast        uint16 = 1 << 3 // last record of one exchange event
	FlagBookInvalid uint16 = 1 << 4 // emitted between a gap and the resync snapshot
	FlagBadTsRecv   uint16 = 1 << 5 // the local receive time is known to be unreliable
	FlagCrossed     uint16 = 1 << 6 // after this event the book is crossed (best bid >= best ask)
	FlagTsEstimated uint16 = 1 << 7 // the venue sent no exchange time: ts_exchange is estimated
	// FlagChecksum: a level record's aux0 holds the checksum of the book after its event,
	// as the exchange sent it (venues that send one: OKX signed, Kraken unsigned).
	FlagChecksum uint16 = 1 << 8
)

// Reasons a book is invalid, carried in a book_invalid record's Qty and named in a
// partition's completeness list (format/meta).
const (
	InvalidNoSnapshot   int64 = 1 // no snapshot has seeded the book yet
	InvalidSequence     int64 = 2 // the venue's sequence rule failed: updates are missing
	InvalidDisconnect   int64 = 3 // the connection carrying the depth stream dropped
	InvalidFeedRestart  int64 = 4 // the feed restarted (a new session)
	InvalidWriteFailed  int64 = 5 // the feed could not journal what it received
	InvalidRolloverLost int64 = 6 // a connection rollover lost events
	InvalidOversized    int64 = 7 // a message above the feed's size limit was dropped
	InvalidJournalLost  int64 = 8 // journal segments were missing when the refinery read them
	InvalidBadMessage   int64 = 9 // a depth message could not be decoded
	// InvalidNotCaptured names, in meta.json only, the stretch of a partition's day before
	// the first record of a capture (no record carries it: nothing was received then).
	InvalidNotCaptured int64 = 10
	// InvalidChecksum: the rebuilt book disagreed with the checksum the exchange sent
	// with an update (OKX, Kraken); the book is invalid until the next snapshot.
	InvalidChecksum int64 = 11
)

// InvalidReasonName names a book_invalid reason code ("sequence").
func InvalidReasonName(code int64) string {
	switch code {
	case InvalidNoSnapshot:
		return "no_snapshot"
	case InvalidSequence:
		return "sequence"
	case InvalidDisconnect:
		return "disconnect"
	case InvalidFeedRestart:
		return "feed_restart"
	case InvalidWriteFailed:
		return "write_failed"
	case InvalidRolloverLost:
		return "rollover_lost"
	case InvalidOversized:
		return "oversized"
	case InvalidJournalLost:
		return "journal_lost"
	case InvalidBadMessage:
		return "bad_message"
	case InvalidNotCaptured:
		return "not_captured"
	case InvalidChecksum:
		return "checksum"
	}
	return fmt.Sprintf("reason(%d)", code)
}

// TypeName returns a short name for a record type id.
func TypeName(t uint16) string {
	switch t {
	case TypeLevel:
		return "level"
	case TypeTrade:
		return "trade"
	case TypeBBO:
		return "bbo"
	case TypeSnapshotBegin:
		return "snapshot_begin"
	case TypeSnapshotEnd:
		return "snapshot_end"
	case TypeBookInvalid:
		return "book_invalid"
	}
	return fmt.Sprintf("type(%d)", t)
}

// BookRecord is one canonical record. Field meaning per type is in docs/format/q.md:
//
//	level:          Seq = venue final update id (u; OKX seqId), Aux0 = first update id (U), or with
//	                FlagChecksum the exchange's checksum of the book after the event, Aux1 = previous
//	                final id (pu; OKX prevSeqId)
//	trade:          Seq = trade id, Aux0/Aux1 = first/last constituent trade id for aggregated trades
//	bbo:            Price/Qty = best bid, Aux0/Aux1 = best ask price/qty, Seq = venue update id
//	snapshot_begin: Seq = snapshot's last update id, Aux0 = number of level records that follow
//	snapshot_end:   Seq = snapshot's last update id
//	book_invalid:   Seq = update id where the gap was seen, Aux0 = expected, Aux1 = received, Qty = reason code
//	                (checksum: Aux0 = the exchange's checksum, Aux1 = the rebuilt book's)
type BookRecord struct {
	TypeID   uint16
	Flags    uint16
	SymbolID uint32
	ExchTs   int64 // exchange event time, ns since the Unix epoch, UTC
	RecvTs   int64 // local receive time, ns since the Unix epoch, UTC
	Seq      uint64
	Price    int64 // fixed point, header PriceDecimals
	Qty      int64 // fixed point, header QtyDecimals
	Aux0     int64
	Aux1     int64
}

// Side returns FlagBid, FlagAsk or 0.
func (r *BookRecord) Side() uint16 { return r.Flags & (FlagBid | FlagAsk) }

// Put encodes r into b[:BookRecordSize]. It panics if b is shorter, like binary.PutUint64.
func (r *BookRecord) Put(b []byte) {
	_ = b[BookRecordSize-1]
	le := binary.LittleEndian
	le.PutUint16(b[0:], r.TypeID)
	le.PutUint16(b[2:], r.Flags)
	le.PutUint32(b[4:], r.SymbolID)
	le.PutUint64(b[8:], uint64(r.ExchTs))
	le.PutUint64(b[16:], uint64(r.RecvTs))
	le.PutUint64(b[24:], r.Seq)
	le.PutUint64(b[32:], uint64(r.Price))
	le.PutUint64(b[40:], uint64(r.Qty))
	le.PutUint64(b[48:], uint64(r.Aux0))
	le.PutUint64(b[56:], uint64(r.Aux1))
}

// DecodeBook decodes b[:BookRecordSize]. It panics if b is shorter.
func DecodeBook(b []byte) (r BookRecord) {
	_ = b[BookRecordSize-1]
	le := binary.LittleEndian
	r.TypeID = le.Uint16(b[0:])
	r.Flags = le.Uint16(b[2:])
	r.SymbolID = le.Uint32(b[4:])
	r.ExchTs = int64(le.Uint64(b[8:]))
	r.RecvTs = int64(le.Uint64(b[16:]))
	r.Seq = le.Uint64(b[24:])
	r.Price = int64(le.Uint64(b[32:]))
	r.Qty = int64(le.Uint64(b[40:]))
	r.Aux0 = int64(le.Uint64(b[48:]))
	r.Aux1 = int64(le.Uint64(b[56:]))
	return r
}

// KnownType reports whether this version of the reader understands type id t.
func KnownType(t uint16) bool { return t >= TypeLevel && t <= TypeBookInvalid }
