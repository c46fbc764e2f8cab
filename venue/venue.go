// Package venue is the small contract between chronicle-feed and an exchange. A venue
// says which websocket URLs carry which streams, reads from each raw message just what the
// feed needs to route it and to see sequence gaps (never a full decode: book building is
// the ETL's job), and describes its REST depth snapshot and rate limits.
//
// Adding a venue (OKX, Bybit...) means one new package implementing Venue and one line in
// the feed's venue table; see docs/venues.md.
package venue

import "time"

// Kind classifies a stream by what the feed does with it.
type Kind uint8

const (
	KindOther      Kind = iota // journaled as received, no ordering id: switched at connection boundaries
	KindDepth                  // order book diffs: ordered, checked for gaps, resynced by REST snapshot
	KindTrade                  // trades, ordered by trade id
	KindAggTrade               // aggregated trades, ordered by aggregate trade id
	KindBookTicker             // best bid/ask, ordered by book update id
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
	}
	return "other"
}

// Kinds lists every Kind, for metrics set up ahead of the hot path.
var Kinds = []Kind{KindOther, KindDepth, KindTrade, KindAggTrade, KindBookTicker}

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
}

// Stream is one subscribed stream.
type Stream struct {
	Name   string // exactly as the venue names it inside each message ("ethusdt@depth@0ms")
	Symbol string // venue symbol it belongs to ("ETHUSDT")
	Kind   Kind
}

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

// Snapshot is what the feed reads from a REST depth snapshot body.
type Snapshot struct {
	LastUpdateID int64
}

// Limits are the venue's published connection and REST limits.
type Limits struct {
	MaxStreamsPerConn int           // streams one websocket connection may carry
	MaxConnAge        time.Duration // the venue drops a connection after this long
	RESTWeightPerMin  int           // REST request weight allowed per IP per minute
	UsedWeightHeader  string        // response header reporting weight used in the window
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
}
