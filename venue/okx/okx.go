// Package okx implements venue.Venue for OKX's public market-data websocket (API v5) as
// one venue, "okx": spot, perpetual swaps and dated futures share one endpoint and one
// connection, and an instrument id names its type (BTC-USDT, UNI-USD-SWAP,
// BTC-USD-220527), so the instrument type is part of the symbol rather than of the venue.
//
// Streams are channels subscribed by request after connecting ({"op":"subscribe"}); each
// message names its channel and instrument in "arg". The order book ("books", 400 levels)
// starts with a snapshot on the websocket ("action":"snapshot"), then updates; every
// message carries OKX's CRC32 checksum of the top 25 levels, and since 2023 a
// seqId/prevSeqId chain. Prices and sizes are exact decimals at each instrument's scale,
// taken from the public/instruments reference data (tick and lot size), which also gives
// the contract value of swaps and futures. See docs/venues.md.
package okx

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle/chronicle/venue"
)

// Name is the venue id.
const Name = "okx"

// Endpoints and published limits (www.okx.com/docs-v5, "WebSocket" and "Public data").
const (
	DefaultWSBase   = "wss://ws.okx.com:8443"
	WSPath          = "/ws/v5/public"
	DefaultRESTBase = "https://www.okx.com"
	InstrumentsPath = "/api/v5/public/instruments"
	// MaxRequestBytes is the largest subscribe request OKX takes (64 KB of channels).
	MaxRequestBytes = 64 << 10
	// SubscribeRequestsPerHour: subscribe, unsubscribe and login requests a connection may
	// send in an hour.
	SubscribeRequestsPerHour = 480
	// MaxStreamsPerConn is Chronicle's cap (OKX states none): one journal slot's streams.
	MaxStreamsPerConn = 240
	// PingIdle: OKX closes a connection that carried nothing for 30 s; the client sends
	// "ping" (answered "pong") when it has been quiet for less than that.
	PingIdle = 20 * time.Second
)

// DefaultScale is the scale of an instrument the reference data has not described: 8
// decimals for prices and sizes, as fine as most OKX ticks and every lot size in its
// listings (a few spot instruments tick in 1e-9 to 1e-12 and need their instruments
// entry).
var DefaultScale = venue.Scale{Price: 8, Qty: 8}

// InstTypes are the instrument types Chronicle fetches reference data for.
var InstTypes = []string{"SPOT", "SWAP", "FUTURES"}

func init() { venue.Register(Venue{}) }

// Venue is OKX; it is stateless.
type Venue struct{}

var (
	_ venue.Venue         = Venue{}
	_ venue.Subscriber    = Venue{}
	_ venue.Checksummer   = Venue{}
	_ venue.ScaledDecoder = Venue{}
	_ venue.Referencer    = Venue{}
)

func (Venue) Name() string { return Name }

// DefaultWSBase and DefaultRESTBase are the production endpoints.
func (Venue) DefaultWSBase() string   { return DefaultWSBase }
func (Venue) DefaultRESTBase() string { return DefaultRESTBase }

func (Venue) Limits() venue.Limits {
	return venue.Limits{
		MaxStreamsPerConn:        MaxStreamsPerConn,
		MaxConnAge:               24 * time.Hour, // OKX states none; a day, as elsewhere
		RESTWeightPerMin:         600,            // public/instruments: 20 requests per 2 s
		SubscribeRequestsPerHour: SubscribeRequestsPerHour,
	}
}

// Decimals is the default scale (DecodeAt uses each instrument's own).
func (Venue) Decimals() (price, qty uint8) { return DefaultScale.Price, DefaultScale.Qty }

// channel is one OKX channel Chronicle knows.
type channel struct {
	name  string
	kind  venue.Kind
	noID  bool
	depth int // book levels a side (book channels)
}

var channels = []channel{
	{"books", venue.KindDepth, false, 400},
	{"books-l2-tbt", venue.KindDepth, false, 400},
	{"books50-l2-tbt", venue.KindDepth, false, 50},
	{"trades", venue.KindTrade, false, 0},
	{"tickers", venue.KindBookTicker, true, 0},
}

func channelNamed(name []byte) (channel, bool) {
	for _, c := range channels {
		if string(name) == c.name {
			return c, true
		}
	}
	return channel{}, false
}

// specChannel maps a subscription's stream spec to a channel: the generic names (depth,
// trade, bookTicker) or OKX's own; any other channel name is journaled unrefined.
func specChannel(spec string) (channel, error) {
	switch spec {
	case "depth":
		spec = "books"
	case "trade":
		spec = "trades"
	case "bookTicker", "ticker":
		spec = "tickers"
	}
	if c, ok := channelNamed([]byte(spec)); ok {
		return c, nil
	}
	if !validChannel(spec) {
		return channel{}, fmt.Errorf("okx channel %q: %w", spec, venue.ErrBadStream)
	}
	return channel{name: spec, kind: venue.KindOther, noID: true}, nil
}

// OKX channels are lower-case letters, digits and dashes, instrument ids upper-case ones.
var channelChars, symbolChars = venue.NewCharset("az09", "-"), venue.NewCharset("AZ09", "-")

func validChannel(s string) bool { return channelChars.Valid(s, 64) }
func validSymbol(s string) bool  { return symbolChars.Valid(s, 64) }

// Symbol returns the instrument of a stream key ("books:BTC-USDT" -> "BTC-USDT").
func (Venue) Symbol(stream string) string {
	_, inst, _ := strings.Cut(stream, ":")
	return inst
}

// Plan puts all streams of an instrument on one connection and packs instruments in order
// onto as few connections as the stream cap allows. Every connection is the public
// endpoint {base}/ws/v5/public; its streams are subscribed by request (Subscribe).
func (v Venue) Plan(wsBase string, sub venue.Subscription) ([]venue.Connection, error) {
	wsBase, max, err := venue.PlanBase(wsBase, DefaultWSBase, sub, MaxStreamsPerConn)
	if err != nil {
		return nil, err
	}
	if len(sub.Streams) > max {
		return nil, fmt.Errorf("%d streams an instrument, limit %d: %w", len(sub.Streams), max, venue.ErrTooManyStreams)
	}
	var chans []venue.Stream
	for _, spec := range sub.Streams {
		c, err := specChannel(spec)
		if err != nil {
			return nil, err
		}
		chans = append(chans, venue.Stream{Name: c.name, Kind: c.kind, NoID: c.noID})
	}
	bad := func(raw string) error { return fmt.Errorf("symbol %q: %w", raw, venue.ErrBadSymbol) }
	return venue.PackSymbols(wsBase+WSPath, max, sub.Symbols, validSymbol, bad, chans)
}

type subArg struct {
	Channel string `json:"channel"`
	InstID  string `json:"instId"`
}

type subReq struct {
	Op   string   `json:"op"`
	Args []subArg `json:"args"`
}

// Subscribe returns {"op":"subscribe","args":[{"channel":...,"instId":...},...]}
// requests, each under OKX's 64 KB limit.
func (Venue) Subscribe(streams []venue.Stream) ([][]byte, error) {
	return requests("subscribe", streams)
}

// Unsubscribe returns the matching {"op":"unsubscribe",...} requests.
func (Venue) Unsubscribe(streams []venue.Stream) ([][]byte, error) {
	return requests("unsubscribe", streams)
}

func requests(op string, streams []venue.Stream) ([][]byte, error) {
	var out [][]byte
	req := subReq{Op: op}
	size := 0
	for _, st := range streams {
		ch, inst, ok := strings.Cut(st.Name, ":")
		if !ok || !validChannel(ch) || !validSymbol(inst) {
			return nil, fmt.Errorf("okx stream %q: %w", st.Name, venue.ErrBadStream)
		}
		n := len(ch) + len(inst) + 32
		if size+n > MaxRequestBytes-64 && len(req.Args) > 0 {
			b, _ := json.Marshal(req)
			out = append(out, b)
			req.Args, size = nil, 0
		}
		req.Args = append(req.Args, subArg{ch, inst})
		size += n
	}
	if len(req.Args) > 0 {
		b, _ := json.Marshal(req)
		out = append(out, b)
	}
	return out, nil
}

// KeepAlive: the text "ping", answered "pong".
func (Venue) KeepAlive() venue.KeepAlive {
	return venue.KeepAlive{Message: []byte("ping"), Idle: PingIdle}
}

// Control reads an event message ({"event":"subscribe"|"unsubscribe"|"error"|"notice"...})
// or "pong".
func (Venue) Control(msg []byte) venue.Control {
	if string(msg) == "pong" {
		return venue.Control{Kind: venue.ControlPong}
	}
	var ev struct {
		Event string  `json:"event"`
		Arg   *subArg `json:"arg"`
		Code  string  `json:"code"`
		Msg   string  `json:"msg"`
	}
	if json.Unmarshal(msg, &ev) != nil {
		return venue.Control{Kind: venue.ControlInfo, Text: truncate(string(msg))}
	}
	c := venue.Control{Kind: venue.ControlInfo}
	if ev.Arg != nil {
		c.Stream = venue.StreamName(ev.Arg.Channel, ev.Arg.InstID)
	}
	switch ev.Event {
	case "subscribe":
		c.Kind = venue.ControlSubscribed
	case "unsubscribe":
		c.Kind = venue.ControlUnsubscribed
	case "error":
		c.Kind, c.Text = venue.ControlError, ev.Code+" "+ev.Msg
	default:
		c.Text = strings.TrimSpace(ev.Event + " " + ev.Code + " " + ev.Msg)
	}
	return c
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Check applies OKX's book chain: an update follows when its prevSeqId is the last seqId
// (also after a sequence reset, where seqId drops below prevSeqId, and for the keep-alive
// update that repeats the seqId with no levels); a snapshot starts a new chain. Without
// seqIds (before 2023) the book has no sequence rule: its checksums check it. Trades are
// ordered by trade id.
func (Venue) Check(lastID int64, ev venue.Event) venue.Seq {
	switch ev.Kind {
	case venue.KindDepth:
		switch {
		case ev.Snapshot:
			return venue.SeqNext
		case ev.ID == 0 && ev.Prev == 0:
			return venue.SeqUnknown
		case ev.Prev == lastID:
			return venue.SeqNext
		case ev.ID <= lastID && ev.Prev <= ev.ID:
			return venue.SeqStale
		}
		return venue.SeqGap
	case venue.KindTrade:
		if ev.ID != 0 && ev.ID <= lastID {
			return venue.SeqStale
		}
	}
	return venue.SeqUnknown
}

// OKX books start with a websocket snapshot: there is no REST snapshot to bridge.

// ErrNoRESTSnapshot: the venue sends its snapshots on the websocket.
var ErrNoRESTSnapshot = fmt.Errorf("okx sends book snapshots on the websocket: %w", venue.ErrBadStream)

func (Venue) Bridges(venue.Snapshot, venue.Event) bool { return true }
func (Venue) SnapshotRequest(string, string, int) (venue.SnapshotRequest, error) {
	return venue.SnapshotRequest{}, ErrNoRESTSnapshot
}
func (Venue) ParseSnapshot([]byte) (venue.Snapshot, error) {
	return venue.Snapshot{}, ErrNoRESTSnapshot
}
func (Venue) DecodeSnapshot([]byte, *venue.BookSnapshot) error { return ErrNoRESTSnapshot }
func (Venue) SnapshotBridge(int64, venue.Event) venue.Bridge   { return venue.BridgeApplies }

// Instrument guesses from the instrument id alone what its sizes count (spot: the base
// asset; swaps and futures: contracts, whose value only the reference data gives).
func (Venue) Instrument(symbol string) venue.Instrument {
	if instType(symbol) == "spot" {
		return venue.Instrument{QtyUnit: "base"}
	}
	return venue.Instrument{QtyUnit: "contracts"}
}

// instType reads the type an instrument id spells: BASE-QUOTE is spot, ...-SWAP a
// perpetual, ...-YYMMDD a dated future, ...-YYMMDD-STRIKE-C|P an option.
func instType(id string) string {
	parts := strings.Split(id, "-")
	switch {
	case len(parts) == 3 && parts[2] == "SWAP":
		return "swap"
	case len(parts) == 3 && len(parts[2]) == 6 && allDigits(parts[2]):
		return "futures"
	case len(parts) == 5:
		return "option"
	}
	return "spot"
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Code is the canonical symbol code Chronicle gives an instrument id: lower case, and a
// dated future's expiry written out (BTC-USD-220527 -> btc-usd-2022-05-27), so the code
// of every contract names the day it expires. dim_symbol rows use it.
func Code(id string) string {
	id = strings.ToLower(id)
	if instType(strings.ToUpper(id)) == "futures" {
		i := strings.LastIndexByte(id, '-')
		d := id[i+1:]
		return id[:i] + "-20" + d[0:2] + "-" + d[2:4] + "-" + d[4:6]
	}
	return id
}
