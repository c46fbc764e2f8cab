package etl

import (
	"github.com/chronicle/chronicle/etl/book"
	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

// phase is where a symbol's book stands in Binance's local-book procedure.
type phase uint8

const (
	phaseAwaiting phase = iota // no usable snapshot: depth updates are buffered
	phaseBridging              // a snapshot is held until the update that bridges it arrives
	phaseLive                  // the book is valid; every update must continue the chain
)

// bufUpdate is a depth update kept while the book waits for a snapshot.
type bufUpdate struct {
	ExchNs, RecvNs    int64
	First, Last, Prev int64
	Bids, Asks        []venue.Level
	Segment           string // journal segment it came from
}

func (u *bufUpdate) event() venue.Event {
	return venue.Event{Kind: venue.KindDepth, ID: u.Last, First: u.First, Prev: u.Prev}
}

// heldSnap is a REST snapshot waiting for its bridging update.
type heldSnap struct {
	L          int64
	Bids, Asks []venue.Level
}

// top is the best bid and ask after one applied depth update, for ticker self-checks.
type top struct {
	U, Ts    int64
	Bid, Ask venue.Level // zero when the side is empty
}

// pendingTicker waits for the depth update its id names.
type pendingTicker struct {
	U        int64
	Bid, Ask venue.Level
}

const (
	ringSize       = 512  // applied updates remembered for tickers that arrive after them
	maxPendingTick = 4096 // tickers remembered until their depth update arrives
)

// symState is everything the refinery knows about one venue symbol. Exported fields are
// checkpointed (gob); the book is saved through book.State.
type symState struct {
	Raw   string
	Phase phase
	LastU int64 // last applied depth update id (live)
	Buf   []bufUpdate
	Snap  *heldSnap
	// Why and since when the book is not live.
	InvalidReason int64
	InvalidFrom   int64
	NextSnap      int64 // exchange time of the next periodic snapshot run
	BookDay       int64 // day of the last applied depth update
	// Records of a later day than BookDay, held until the depth stream crosses midnight
	// or the venue clock passes HoldDeadline.
	Hold         []format.BookRecord
	HoldSegs     []string
	HoldDeadline int64
	// Per-stream continuity.
	LastTrade, LastTradeTs int64
	LastAgg, LastAggTs     int64
	LastTickerU            int64
	Ring                   []top // circular, RingPos is the next slot
	RingPos                int
	RingLen                int
	Pending                []pendingTicker
	LastExch               int64 // exchange time of the symbol's latest event
	// Fresh until the symbol's first partition opens: that partition holds the start of
	// its capture (meta.json's not_captured and first no_snapshot intervals), which is
	// FirstSeen, the earliest exchange time among the symbol's messages until then
	// (updates buffered before a snapshot and dropped as stale count too).
	Fresh     bool
	FirstSeen int64
	// Venues whose instruments have scales of their own: the scale the symbol's messages
	// decode at, fixed by its first message (ScaleSet), and how the venue writes its
	// numbers (for the checksum).
	Scale    venue.Scale
	ScaleSet bool
	Wire     venue.Wire

	book book.Book

	// The checksum of the book's top, while no update has touched it (venues that send
	// checksums; not checkpointed: recomputed after a restart).
	csValid  bool
	csSum    uint32
	csWire   venue.Wire
	csB, csA []venue.Level
	// The checksum string's pieces of csB and csA (venue.PieceChecksummer).
	csPB, csPA venue.Pieces

	// Caches of the last resolution and partition (not checkpointed: rebuilt on use).
	resTable *symbols.Table
	resRow   symbols.Row
	lastPart *partition
}

func newSymState(raw string, ts int64) *symState {
	return &symState{Raw: raw, Phase: phaseAwaiting, InvalidReason: format.InvalidNoSnapshot, InvalidFrom: ts, Fresh: true}
}

func (s *symState) live() bool { return s.Phase == phaseLive }

func (s *symState) pushTop(u, ts int64) {
	if s.Ring == nil {
		s.Ring = make([]top, ringSize)
	}
	t := top{U: u, Ts: ts}
	if l, ok := s.book.BestBid(); ok {
		t.Bid = l
	}
	if l, ok := s.book.BestAsk(); ok {
		t.Ask = l
	}
	s.Ring[s.RingPos] = t
	s.RingPos = (s.RingPos + 1) % ringSize
	s.RingLen = min(s.RingLen+1, ringSize)
}

// findTop returns the remembered top of book after update u.
func (s *symState) findTop(u int64) (top, bool) {
	// Entries are in increasing U from the oldest; binary search over the ring.
	lo, hi := 0, s.RingLen
	for lo < hi {
		mid := (lo + hi) / 2
		e := s.Ring[(s.RingPos-s.RingLen+mid+ringSize)%ringSize]
		switch {
		case e.U == u:
			return e, true
		case e.U < u:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return top{}, false
}

func (s *symState) clearTops() { s.RingLen, s.RingPos = 0, 0 }
