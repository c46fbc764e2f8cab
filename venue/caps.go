package venue

import "time"

// Capabilities beyond the Binance-shaped contract of Venue. A venue implements the ones its
// exchange needs; the feed and the refinery find them by type assertion, so a venue that
// does not need one (Binance subscribes by URL, bridges REST snapshots, sends no checksum)
// implements nothing more.

// Subscriber is implemented by venues whose websocket takes subscribe requests after it
// connects (OKX, Kraken) instead of naming the streams in its URL. Such venues also send
// each depth stream's snapshot on the websocket, right after the subscription: the feed
// asks them for no REST snapshot, and resubscribes a stream to get a new one.
type Subscriber interface {
	// Subscribe returns the requests that subscribe the streams, in order, each within
	// the venue's request size limit.
	Subscribe(streams []Stream) ([][]byte, error)
	// Unsubscribe returns the requests that end the streams' subscriptions.
	Unsubscribe(streams []Stream) ([][]byte, error)
	// KeepAlive is the request the client sends when the server has been quiet.
	KeepAlive() KeepAlive
	// Control reads a control message (one Parse classified as KindControl).
	Control(msg []byte) Control
}

// KeepAlive is a venue's application-level keep-alive: send Message once the connection
// has carried nothing for Idle; the server's answer is a Control of kind ControlPong.
type KeepAlive struct {
	Message []byte
	Idle    time.Duration
}

// ControlKind says what a control message is.
type ControlKind uint8

const (
	ControlInfo         ControlKind = iota // a status or notice with no consequence
	ControlSubscribed                      // a subscription took effect
	ControlUnsubscribed                    // a subscription ended
	ControlError                           // a request failed (Text says why)
	ControlHeartbeat                       // the server's keep-alive
	ControlPong                            // the answer to our keep-alive
)

func (k ControlKind) String() string {
	switch k {
	case ControlSubscribed:
		return "subscribed"
	case ControlUnsubscribed:
		return "unsubscribed"
	case ControlError:
		return "error"
	case ControlHeartbeat:
		return "heartbeat"
	case ControlPong:
		return "pong"
	}
	return "info"
}

// Control is what a control message says.
type Control struct {
	Kind   ControlKind
	Stream string // the key of the stream the message is about, when it names one
	Text   string // an error's code and message
}

// Checksummer is implemented by venues whose depth messages carry the exchange's own
// checksum of the top of its book (Message.HasChecksum): the refinery recomputes it after
// every such message and compares.
type Checksummer interface {
	// ChecksumDepth is the number of levels per side the checksum covers.
	ChecksumDepth() int
	// Checksum computes the exchange's checksum of a book given by its best levels,
	// best first, at most ChecksumDepth a side, at the scale sc, written on the wire as w.
	Checksum(bids, asks []Level, sc Scale, w Wire) uint32
}

// Scale is the fixed-point scale of one instrument's prices and sizes.
type Scale struct{ Price, Qty uint8 }

// ScaledDecoder is implemented by venues whose instruments have scales of their own (from
// their reference data): DecodeAt decodes like Decode, each number at the scale that
// scales gives the message's instrument (Message.Scale says which); Decode uses the
// venue's default, Decimals.
type ScaledDecoder interface {
	DecodeAt(msg []byte, m *Message, scales *Scales) error
}

// Scales maps instruments to their scales; the zero value gives every instrument Default.
type Scales struct {
	Default Scale
	by      map[string]Scale
}

// Of returns the scale of an instrument (Default when it has none); it does not allocate.
func (s *Scales) Of(sym []byte) Scale {
	if sc, ok := s.by[string(sym)]; ok {
		return sc
	}
	return s.Default
}

// Has reports whether the instrument has a scale of its own.
func (s *Scales) Has(sym string) bool {
	_, ok := s.by[sym]
	return ok
}

// Set gives an instrument its scale.
func (s *Scales) Set(sym string, sc Scale) {
	if s.by == nil {
		s.by = map[string]Scale{}
	}
	s.by[sym] = sc
}

// Clone returns an independent copy.
func (s *Scales) Clone() Scales {
	c := Scales{Default: s.Default}
	if s.by != nil {
		c.by = s.All()
	}
	return c
}

// All returns a copy of every instrument's scale.
func (s *Scales) All() map[string]Scale {
	out := make(map[string]Scale, len(s.by))
	for k, v := range s.by {
		out[k] = v
	}
	return out
}

// Referencer is implemented by venues whose instruments are described by REST reference
// data (OKX public/instruments, Kraken AssetPairs): tick and lot sizes, hence each
// instrument's scales, and contract values. The feed journals those bodies beside the
// messages (format.JournalReference), so that the refinery reads them from the journal.
type Referencer interface {
	// ReferenceRequests are the URLs whose bodies describe every instrument.
	ReferenceRequests(restBase string) []string
	// DecodeReference reads one such body, appending its instruments to dst. A body that
	// is not the venue's reference data is an error.
	DecodeReference(body []byte, dst []Spec) ([]Spec, error)
}

// Spec is one instrument as the venue's reference data describes it.
type Spec struct {
	Symbol      string // as the venue's messages name it ("BTC-USD-220527", "XBT/CHF")
	Type        string // "spot", "swap", "futures"
	Base, Quote string
	Scale       Scale  // exact scales: the decimals of the tick and lot sizes
	TickSize    string // price increment, exact decimal
	LotSize     string // size increment, exact decimal
	Instrument         // what a size counts; contract value and currency
	ExpiryNs    int64  // expiry of a dated future, ns since the epoch; 0 = none
}
