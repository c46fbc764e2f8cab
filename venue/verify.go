package venue

// Verdict is what a Verifier says of one message.
type Verdict uint8

const (
	VerifyNone     Verdict = iota // nothing to check: not depth, no checksum, or no snapshot yet
	VerifyOK                      // the book after the message has the exchange's checksum
	VerifyMismatch                // it does not: the book is wrong until the next snapshot
	VerifyBad                     // the message cannot be decoded
)

func (v Verdict) String() string {
	switch v {
	case VerifyOK:
		return "ok"
	case VerifyMismatch:
		return "mismatch"
	case VerifyBad:
		return "bad"
	}
	return "none"
}

// Verifier follows one depth stream of a Checksummer venue with a SortedBook and checks
// every checksum the stream carries. The feed keeps one per depth stream, to resubscribe
// the stream (and get a new snapshot) at the first mismatch; the refinery checks again
// with its own book and is the record of truth.
type Verifier struct {
	v      Venue
	cs     Checksummer
	sd     ScaledDecoder
	scales *Scales
	book   SortedBook
	m      Message
	live   bool
	sc     Scale
	wire   Wire
}

// NewVerifier returns a verifier for v's depth streams, or nil when v sends no checksum.
// scales (may be nil) gives the instruments' scales, as the refinery decodes them.
func NewVerifier(v Venue, scales *Scales) *Verifier {
	cs, ok := v.(Checksummer)
	if !ok {
		return nil
	}
	x := &Verifier{v: v, cs: cs, scales: scales}
	x.sd, _ = v.(ScaledDecoder)
	return x
}

// Verify decodes one message of the stream, applies it to the book and checks the
// checksum it carries.
func (x *Verifier) Verify(msg []byte) Verdict {
	m := &x.m
	var err error
	if x.sd != nil && x.scales != nil {
		err = x.sd.DecodeAt(msg, m, x.scales)
	} else {
		err = x.v.Decode(msg, m)
	}
	if err != nil {
		x.live = false
		return VerifyBad
	}
	if m.Kind != KindDepth {
		return VerifyNone
	}
	switch {
	case m.Snapshot:
		x.book.Reset(m.Bids, m.Asks)
		x.live, x.sc = true, m.Scale
	case !x.live:
		return VerifyNone
	case m.Scale != x.sc:
		x.live = false // the instrument's scale changed under the book: wait for a snapshot
		return VerifyNone
	default:
		for _, l := range m.Bids {
			x.book.Set(true, l)
		}
		for _, l := range m.Asks {
			x.book.Set(false, l)
		}
	}
	x.book.Trim(m.Depth)
	if m.Wire.Known {
		x.wire = m.Wire
	}
	if !m.HasChecksum {
		return VerifyNone
	}
	n := x.cs.ChecksumDepth()
	if x.cs.Checksum(x.book.Top(true, n), x.book.Top(false, n), x.sc, x.wire) != m.Checksum {
		x.live = false
		return VerifyMismatch
	}
	return VerifyOK
}

// Live reports whether the verifier holds a book (a snapshot arrived and no mismatch
// since).
func (x *Verifier) Live() bool { return x.live }

// Top returns copies of the verifier's book's best n levels a side.
func (x *Verifier) Top(n int) (bids, asks []Level) {
	return append([]Level(nil), x.book.Top(true, n)...), append([]Level(nil), x.book.Top(false, n)...)
}
