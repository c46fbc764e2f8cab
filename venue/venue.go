// Package venue is the contract between Chronicle and an exchange. A venue says which
// websocket URLs carry which streams, reads from each raw message just what the feed needs
// to route it and to see sequence gaps (Parse: cheap, no allocation), decodes messages and
// REST depth snapshots fully for the refinery (Decode, DecodeSnapshot: exact fixed-point
// prices and sizes), and states its book rules (Check, SnapshotBridge) and rate limits.
//
// Adding a venue (OKX, Bybit...) means one new package implementing Venue, registering it
// in its init, and one import line in venue/all; see docs/venues.md.
package venue

import (
	"errors"
	"time"
)

// Kind classifies a stream by what the feed does with it.
type Kind uint8

const (
	KindOther      Kind = iota // journaled as received, no ordering id: switched at connection boundaries
	KindDepth                  // order book diffs: ordered, checked for gaps, resynced by REST snapshot
	KindTrade                  // trades, ordered by trade id
	KindAggTrade               // aggregated trades, ordered by aggregate trade id
	KindBookTicker             // best bid/ask, ordered by book update id
	// KindControl is a venue's control message (a subscription reply, a heartbeat, a pong,
	// a status event): journaled on its connection's own channel, never refined.
	KindControl
)

// Why a message could not be read; a *ParseError says where.
var (
	ErrSyntax       = errors.New("malformed json")
	ErrNotEnvelope  = errors.New("not a stream message")
	ErrMissingField = errors.New("missing field")
	ErrBadField     = errors.New("invalid field")
)

func (k Kind) String() string {
	switch k {
	case KindDepth:
		return "depth"
	case KindTrade:
		return "trade"
	case KindAggTrade:
		return "aggTrade"
	case KindBookTicker:
		return "bookTicker"
	case KindControl:
		return "control"
	}
	return "other"
}

// Kinds lists every Kind, for metrics set up ahead of the hot path.
var Kinds = []Kind{KindOther, KindDepth, KindTrade, KindAggTrade, KindBookTicker, KindControl}

// Subscription is what to capture.
type Subscription struct {
	Symbols []string // venue symbols, any case ("ETHUSDT")
	// Streams per symbol: "depth", "trade", "aggTrade", "bookTicker", or any other stream
	// suffix the venue accepts ("kline_1m", "markPrice@1s"), journaled without sequencing.
	Streams    []string
	DepthSpeed string // update speed of the depth stream ("0ms", "100ms"); "" = venue default
	// MaxStreamsPerConn caps streams per websocket connection; 0 = the venue's limit.
	MaxStreamsPerConn int
	// Routes maps a stream kind name ("depth", "trade", ...) to a URL path prefix for venues
	// that serve stream families on separate paths; streams without a route use the base.
	Routes map[string]string
	// BookDepth is the number of levels a side of a book subscription covers, for venues
	// that take one (Kraken: 10, 25, 100, 500, 1000); 0 = the venue's default.
	BookDepth int
}

// Stream is one subscribed stream.
type Stream struct {
	// Name is the stream's key: exactly as the venue names it inside each message
	// ("ethusdt@depth@0ms"), or, for venues whose messages name the channel and the
	// instrument apart, the two joined by StreamName ("books:BTC-USDT").
	Name   string
	Symbol string // venue symbol it belongs to ("ETHUSDT")
	Kind   Kind
	// NoID marks a stream whose events carry no ordering id (Kraken trades and tickers,
	// OKX tickers): it is never deduplicated by id, and switches connection at a rollover's
	// end. A depth stream without ids is switched at the new connection's snapshot.
	NoID bool
}

// StreamName is the key of a stream that a venue names by channel and instrument apart.
func StreamName(channel, inst string) string { return channel + ":" + inst }

// Connection is one websocket connection: its URL and the streams it carries.
type Connection struct {
	URL     string
	Streams []Stream
}

// Event is what the feed reads from a message. Stream aliases the message bytes.
type Event struct {
	Stream []byte
	Kind   Kind
	// ID orders the stream's events (depth: last update id; trade: trade id...); 0 when the
	// stream has none.
	ID int64
	// First and Prev are the depth update range start and the previous event's last id,
	// for venues that chain diffs; 0 when absent.
	First int64
	Prev  int64
	// Inst is the instrument the stream is for when the venue's messages name it apart from
	// the channel in Stream (OKX arg.instId, Kraken's pair); nil otherwise. It aliases the
	// message bytes too. The stream's key is then StreamName(Stream, Inst) (see Key).
	Inst []byte
	// Snapshot marks a depth message that restates the whole book, on venues that send
	// their snapshots over the websocket (OKX "action":"snapshot", Kraken "as"/"bs").
	Snapshot bool
}

// Key returns the stream's key (Stream.Name), built in buf when the venue names the
// channel and the instrument apart; it allocates nothing once buf has grown.
func (e *Event) Key(buf []byte) []byte {
	if e.Inst == nil {
		return e.Stream
	}
	buf = append(buf[:0], e.Stream...)
	buf = append(buf, ':')
	return append(buf, e.Inst...)
}

// Seq is the verdict of a venue's sequence rule on the next event of a stream.
type Seq uint8

const (
	SeqNext    Seq = iota // follows the last event directly
	SeqStale              // already covered by the last event (replay or overlap duplicate)
	SeqGap                // events are missing in between
	SeqUnknown            // the stream has no sequence rule
)

func (s Seq) String() string {
	switch s {
	case SeqNext:
		return "next"
	case SeqStale:
		return "stale"
	case SeqGap:
		return "gap"
	}
	return "unknown"
}

// SnapshotRequest is how to fetch one REST depth snapshot.
type SnapshotRequest struct {
	URL    string
	Weight int // request weight the venue charges
}

// ErrSnapshotError: a REST depth snapshot body is an error response ({"code":...}).
var ErrSnapshotError = errors.New("snapshot body is an error response")

// Why a subscription plan was refused.
var (
	ErrBadSymbol      = errors.New("invalid symbol")
	ErrBadStream      = errors.New("invalid stream")
	ErrTooManyStreams = errors.New("too many streams")
)

// Snapshot is what the feed reads from a REST depth snapshot body.
type Snapshot struct {
	LastUpdateID int64
}

// Level is one price level at the venue's decimal scales: price and the new absolute
// quantity (0 deletes the level).
type Level struct{ Price, Qty int64 }

// Message is a fully decoded websocket message, for the refinery. Decode fills every field
// the message kind has and zeroes the others; Bids and Asks keep their capacity from call
// to call, and Symbol aliases the message bytes.
type Message struct {
	Event         // stream, kind and ordering ids, as Parse reads them
	Symbol []byte // venue symbol named in the payload ("s")
	ExchNs int64  // event time (Binance "E"), ns since the epoch; 0 when the message has none
	TxNs   int64  // transaction or trade time (Binance "T"), ns; 0 when none

	Bids, Asks []Level // depth: the changed levels, in message order

	Price, Qty int64 // trade and aggTrade
	BuyerMaker bool  // trade: the buyer was the maker, so the seller was the aggressor
	// FirstTrade and LastTrade are an aggregated trade's constituent trade ids.
	FirstTrade, LastTrade int64

	BidPrice, BidQty, AskPrice, AskQty int64 // bookTicker

	// Trades are the trades of a message that carries several (OKX, Kraken), in message
	// order; when the venue fills it, Price, Qty, BuyerMaker and TxNs stay zero.
	Trades []Trade

	// Depth messages of venues that send a checksum of the book (Checksummer).
	HasChecksum bool
	Checksum    uint32 // the exchange's checksum of the book after this message, as 32 bits
	// Depth is how many levels a side of the local book keeps, when the venue stops
	// sending deletes for levels that leave its range (Kraken: the subscribed depth): after
	// each message the worse levels are dropped. 0 keeps every level.
	Depth int
	// Wire says how the message wrote its numbers, which the checksum needs.
	Wire Wire
	// Scale is the scale the numbers were decoded at (ScaledDecoder venues; else zero).
	Scale Scale
}

// Trade is one trade of a message that carries several.
type Trade struct {
	ID         int64 // trade id; 0 when the venue sends none (Kraken)
	TxNs       int64 // trade time, ns
	Price, Qty int64
	BuyerMaker bool // the buyer was the maker, so the seller was the aggressor
}

// Wire is how a venue writes the numbers of one instrument's book, for its checksum:
// fraction digits of prices and of sizes, or -1 for "as few as the value needs" (OKX
// writes 30316 and 5.16; Kraken pads every price of a pair to the same digits). Known is
// false when the message had no number to tell.
type Wire struct {
	PriceFrac, QtyFrac int8
	Known              bool
}

// BookSnapshot is a fully decoded REST depth snapshot.
type BookSnapshot struct {
	LastUpdateID int64
	ExchNs       int64  // event time when the venue sends one, else 0
	Symbol       string // when the body names it, else ""
	Bids, Asks   []Level
}

// Bridge is where a depth update stands relative to a REST snapshot.
type Bridge uint8

const (
	BridgeBefore  Bridge = iota // the snapshot already covers the update: drop it
	BridgeApplies               // the first update to apply on top of the snapshot
	BridgeAfter                 // updates between the snapshot and this one are missing
)

func (b Bridge) String() string {
	switch b {
	case BridgeBefore:
		return "before"
	case BridgeApplies:
		return "applies"
	}
	return "after"
}

// Instrument describes what a symbol's quantities count, for partition metadata.
type Instrument struct {
	QtyUnit          string `json:"qty_unit"`                    // "base" (coins) or "contracts"
	ContractSize     string `json:"contract_size,omitempty"`     // value of one contract, exact decimal
	ContractCurrency string `json:"contract_currency,omitempty"` // currency of ContractSize
}

// Limits are the venue's published connection and REST limits.
type Limits struct {
	MaxStreamsPerConn int           // streams one websocket connection may carry
	MaxConnAge        time.Duration // the venue drops a connection after this long
	RESTWeightPerMin  int           // REST request weight allowed per IP per minute
	UsedWeightHeader  string        // response header reporting weight used in the window
	DefaultDepthSpeed string        // the fastest depth stream speed ("0ms"; spot "100ms")
	// SubscribeRequestsPerHour caps subscribe and unsubscribe requests on one connection
	// (OKX 480); 0 = the venue states no cap (or subscribes by URL).
	SubscribeRequestsPerHour int
}

// Venue is one exchange's market-data protocol. Implementations are stateless and safe
// for concurrent use; Parse must not allocate.
type Venue interface {
	// Name is the venue id used in paths and journal headers ("binance-perp").
	Name() string
	Limits() Limits
	// Plan splits a subscription into connections under the per-connection stream limit,
	// keeping all streams of a symbol on one connection.
	Plan(wsBase string, sub Subscription) ([]Connection, error)
	// Parse reads routing and sequence fields from one websocket message.
	Parse(msg []byte) (Event, error)
	// Check applies the stream's sequence rule to ev, given the ID of the last event kept.
	Check(lastID int64, ev Event) Seq
	// Bridges reports whether a snapshot with this last update id can be joined to a diff
	// chain that starts with ev (the snapshot is not older than the chain).
	Bridges(snap Snapshot, first Event) bool
	SnapshotRequest(restBase, symbol string, limit int) (SnapshotRequest, error)
	ParseSnapshot(body []byte) (Snapshot, error)

	// The refinery's side.

	// Decimals are the fixed-point scales Decode uses for prices and quantities.
	Decimals() (price, qty uint8)
	// Decode decodes a whole websocket message into m, validating every field its kind
	// needs. Messages of kind KindOther decode their envelope only.
	Decode(msg []byte, m *Message) error
	// DecodeSnapshot decodes a whole REST depth snapshot body into s.
	DecodeSnapshot(body []byte, s *BookSnapshot) error
	// SnapshotBridge applies the venue's local-book rule to a depth update buffered while
	// waiting for a snapshot with the given last update id.
	SnapshotBridge(lastUpdateID int64, ev Event) Bridge
	// Instrument describes a symbol's quantities.
	Instrument(symbol string) Instrument
	// Symbol returns the venue symbol of a stream name ("ethusdt@depth@0ms" -> "ETHUSDT").
	Symbol(stream string) string
}
