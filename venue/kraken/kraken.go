// Package kraken implements venue.Venue for Kraken's public spot websocket, API v1
// ("kraken-spot"). Streams are subscribed by request after connecting, one request per
// channel type listing its pairs; data messages are JSON arrays
// [channelID, payload..., channelName, pair], event messages JSON objects.
//
// The book channel ("book-N", N the subscribed depth) starts with a snapshot on the
// websocket ("as"/"bs"), then updates ("a"/"b"), each carrying "c", Kraken's CRC32 of the
// top 10 levels. Levels carry no sequence id: the checksum is the book's only check. A
// local book keeps the subscribed depth (Kraken sends no delete for a level that leaves
// it, and republishes, flagged "r", a level that comes back into range). Trades and
// tickers carry no id. Scales come from the AssetPairs reference data (pair_decimals,
// lot_decimals); the websocket writes every price of a pair with a fixed number of
// fraction digits of its own (often more than pair_decimals), which the checksum keeps.
// See docs/venues.md.
package kraken

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle/chronicle/venue"
)

// Name is the venue id.
const Name = "kraken-spot"

// Endpoints and limits (docs.kraken.com, "Spot Websockets (v1)" and "AssetPairs").
const (
	DefaultWSBase   = "wss://ws.kraken.com"
	DefaultRESTBase = "https://api.kraken.com"
	AssetPairsPath  = "/0/public/AssetPairs"
	// DefaultBookDepth is the depth Chronicle subscribes to (Kraken takes 10, 25, 100,
	// 500, 1000).
	DefaultBookDepth = 1000
	// MaxStreamsPerConn is Chronicle's cap (Kraken states none): one journal slot's streams.
	MaxStreamsPerConn = 240
	// PingIdle: Kraken sends a heartbeat every second a subscribed connection is otherwise
	// quiet; silence this long means trouble, and the client pings.
	PingIdle = 10 * time.Second
)

// BookDepths are the depths Kraken's book subscription takes.
var BookDepths = []int{10, 25, 100, 500, 1000}

// DefaultScale is the scale of a pair the reference data has not described: 8 price
// decimals (most pairs need fewer; the few with 9 or 10 need their AssetPairs entry) keep
// even the far orders of a 1000-level book (Kraken's shows asks near 1e10) within an
// int64; volumes have 8.
var DefaultScale = venue.Scale{Price: 8, Qty: 8}

func init() { venue.Register(Venue{}) }

// Venue is Kraken spot; it is stateless.
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
		MaxStreamsPerConn: MaxStreamsPerConn,
		MaxConnAge:        24 * time.Hour, // Kraken states none; a day, as elsewhere
		RESTWeightPerMin:  60,             // public REST: about one call a second
	}
}

// Decimals is the default scale (DecodeAt uses each pair's own).
func (Venue) Decimals() (price, qty uint8) { return DefaultScale.Price, DefaultScale.Qty }

// kindOf maps a channel name to its kind: "book-N" is depth, "trade" trades, "ticker"
// the best bid and ask; anything else (spread, ohlc-N) is journaled unrefined.
func kindOf(channel []byte) venue.Kind {
	switch {
	case len(channel) > 5 && string(channel[:5]) == "book-":
		return venue.KindDepth
	case string(channel) == "trade":
		return venue.KindTrade
	case string(channel) == "ticker":
		return venue.KindBookTicker
	}
	return venue.KindOther
}

// bookDepth reads N from "book-N" (0 when it is not a valid depth).
func bookDepth(channel []byte) int {
	if len(channel) <= 5 || string(channel[:5]) != "book-" {
		return 0
	}
	n := 0
	for _, c := range channel[5:] {
		if c < '0' || c > '9' || n > 1e6 {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// specChannel maps a subscription's stream spec to a channel name.
func specChannel(spec string, depth int) (string, venue.Kind, error) {
	switch spec {
	case "depth", "book":
		if depth == 0 {
			depth = DefaultBookDepth
		}
		if !validDepth(depth) {
			return "", 0, fmt.Errorf("kraken book depth %d (want one of %v): %w", depth, BookDepths, venue.ErrBadStream)
		}
		return "book-" + strconv.Itoa(depth), venue.KindDepth, nil
	case "trade":
		return "trade", venue.KindTrade, nil
	case "ticker", "bookTicker":
		return "ticker", venue.KindBookTicker, nil
	case "spread":
		return "spread", venue.KindOther, nil
	}
	if i, ok := strings.CutPrefix(spec, "ohlc-"); ok {
		if n, err := strconv.Atoi(i); err == nil && n > 0 && n <= 21600 {
			return spec, venue.KindOther, nil
		}
	}
	return "", 0, fmt.Errorf("kraken channel %q: %w", spec, venue.ErrBadStream)
}

func validDepth(d int) bool {
	for _, x := range BookDepths {
		if x == d {
			return true
		}
	}
	return false
}

// validPair: Kraken's websocket names pairs BASE/QUOTE in capitals ("XBT/USD",
// "1INCH/EUR", "ETH2.S/ETH").
func validPair(s string) bool {
	base, quote, ok := strings.Cut(s, "/")
	return ok && validAsset(base) && validAsset(quote)
}

// assetChars: Kraken's assets are capitals, digits and dots.
var assetChars = venue.NewCharset("AZ09", ".")

func validAsset(s string) bool { return assetChars.Valid(s, 16) }

// Symbol returns the pair of a stream key ("book-1000:XMR/USD" -> "XMR/USD").
func (Venue) Symbol(stream string) string {
	_, pair, _ := strings.Cut(stream, ":")
	return pair
}

// Plan puts all streams of a pair on one connection and packs pairs in order onto as few
// connections as the stream cap allows; the streams are subscribed by request.
func (Venue) Plan(wsBase string, sub venue.Subscription) ([]venue.Connection, error) {
	wsBase, max, err := venue.PlanBase(wsBase, DefaultWSBase, sub, MaxStreamsPerConn)
	if err != nil {
		return nil, err
	}
	if len(sub.Streams) > max {
		return nil, fmt.Errorf("%d streams a pair, limit %d: %w", len(sub.Streams), max, venue.ErrTooManyStreams)
	}
	var chans []venue.Stream
	for _, spec := range sub.Streams {
		name, kind, err := specChannel(spec, sub.BookDepth)
		if err != nil {
			return nil, err
		}
		chans = append(chans, venue.Stream{Name: name, Kind: kind, NoID: true}) // Kraken v1 sends no ids at all
	}
	bad := func(raw string) error {
		return fmt.Errorf("pair %q (want BASE/QUOTE as the websocket names it): %w", raw, venue.ErrBadSymbol)
	}
	return venue.PackSymbols(wsBase+"/", max, sub.Symbols, validPair, bad, chans)
}

type subscription struct {
	Name     string `json:"name"`
	Depth    int    `json:"depth,omitempty"`
	Interval int    `json:"interval,omitempty"`
}

type subReq struct {
	Event        string       `json:"event"`
	Pair         []string     `json:"pair"`
	Subscription subscription `json:"subscription"`
}

// Subscribe returns one {"event":"subscribe","pair":[...],"subscription":{...}} request
// per channel, listing its pairs in order.
func (Venue) Subscribe(streams []venue.Stream) ([][]byte, error) {
	return requests("subscribe", streams)
}

// Unsubscribe returns the matching {"event":"unsubscribe",...} requests.
func (Venue) Unsubscribe(streams []venue.Stream) ([][]byte, error) {
	return requests("unsubscribe", streams)
}

func requests(event string, streams []venue.Stream) ([][]byte, error) {
	byChan := map[string]*subReq{}
	var order []string
	for _, st := range streams {
		ch, pair, ok := strings.Cut(st.Name, ":")
		if !ok || !validPair(pair) {
			return nil, fmt.Errorf("kraken stream %q: %w", st.Name, venue.ErrBadStream)
		}
		r := byChan[ch]
		if r == nil {
			sub, err := subscriptionOf(ch)
			if err != nil {
				return nil, err
			}
			r = &subReq{Event: event, Subscription: sub}
			byChan[ch] = r
			order = append(order, ch)
		}
		r.Pair = append(r.Pair, pair)
	}
	out := make([][]byte, 0, len(order))
	for _, ch := range order {
		b, _ := json.Marshal(byChan[ch])
		out = append(out, b)
	}
	return out, nil
}

// subscriptionOf is the subscription object of a channel name ("book-1000" ->
// {"name":"book","depth":1000}).
func subscriptionOf(ch string) (subscription, error) {
	if d := bookDepth([]byte(ch)); d > 0 {
		return subscription{Name: "book", Depth: d}, nil
	}
	if i, ok := strings.CutPrefix(ch, "ohlc-"); ok {
		n, err := strconv.Atoi(i)
		if err != nil {
			return subscription{}, fmt.Errorf("kraken channel %q: %w", ch, venue.ErrBadStream)
		}
		return subscription{Name: "ohlc", Interval: n}, nil
	}
	switch ch {
	case "trade", "ticker", "spread":
		return subscription{Name: ch}, nil
	}
	return subscription{}, fmt.Errorf("kraken channel %q: %w", ch, venue.ErrBadStream)
}

// KeepAlive: {"event":"ping"}, answered {"event":"pong"}.
func (Venue) KeepAlive() venue.KeepAlive {
	return venue.KeepAlive{Message: []byte(`{"event":"ping"}`), Idle: PingIdle}
}

// Control reads an event message: heartbeat, pong, systemStatus, subscriptionStatus.
func (Venue) Control(msg []byte) venue.Control {
	var ev struct {
		Event        string        `json:"event"`
		Status       string        `json:"status"`
		ChannelName  string        `json:"channelName"`
		Pair         string        `json:"pair"`
		ErrorMessage string        `json:"errorMessage"`
		Subscription *subscription `json:"subscription"`
	}
	if json.Unmarshal(msg, &ev) != nil {
		s := string(msg)
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		return venue.Control{Kind: venue.ControlInfo, Text: s}
	}
	switch ev.Event {
	case "heartbeat":
		return venue.Control{Kind: venue.ControlHeartbeat}
	case "pong":
		return venue.Control{Kind: venue.ControlPong}
	case "subscriptionStatus":
		c := venue.Control{}
		ch := ev.ChannelName
		if ch == "" && ev.Subscription != nil {
			ch = ev.Subscription.Name
			if ev.Subscription.Depth > 0 {
				ch += "-" + strconv.Itoa(ev.Subscription.Depth)
			}
		}
		if ch != "" && ev.Pair != "" {
			c.Stream = venue.StreamName(ch, ev.Pair)
		}
		switch ev.Status {
		case "subscribed":
			c.Kind = venue.ControlSubscribed
		case "unsubscribed":
			c.Kind = venue.ControlUnsubscribed
		case "error":
			c.Kind, c.Text = venue.ControlError, ev.ErrorMessage
		default:
			c.Kind, c.Text = venue.ControlInfo, ev.Status
		}
		return c
	}
	return venue.Control{Kind: venue.ControlInfo, Text: strings.TrimSpace(ev.Event + " " + ev.Status)}
}

// Check: Kraken's messages carry no ids; a book snapshot starts a chain, and the
// checksums check the book.
func (Venue) Check(_ int64, ev venue.Event) venue.Seq {
	if ev.Kind == venue.KindDepth && ev.Snapshot {
		return venue.SeqNext
	}
	return venue.SeqUnknown
}

// Kraken books start with a websocket snapshot: there is no REST snapshot to bridge.

// ErrNoRESTSnapshot: the venue sends its snapshots on the websocket.
var ErrNoRESTSnapshot = fmt.Errorf("kraken sends book snapshots on the websocket: %w", venue.ErrBadStream)

func (Venue) Bridges(venue.Snapshot, venue.Event) bool { return true }
func (Venue) SnapshotRequest(string, string, int) (venue.SnapshotRequest, error) {
	return venue.SnapshotRequest{}, ErrNoRESTSnapshot
}
func (Venue) ParseSnapshot([]byte) (venue.Snapshot, error) {
	return venue.Snapshot{}, ErrNoRESTSnapshot
}
func (Venue) DecodeSnapshot([]byte, *venue.BookSnapshot) error { return ErrNoRESTSnapshot }
func (Venue) SnapshotBridge(int64, venue.Event) venue.Bridge   { return venue.BridgeApplies }

// Instrument: spot sizes count the base asset.
func (Venue) Instrument(string) venue.Instrument { return venue.Instrument{QtyUnit: "base"} }

// Code is the canonical symbol code Chronicle gives a pair: lower case, dash-separated,
// with Kraken's own asset codes for bitcoin and dogecoin written as the rest of the
// market writes them (XBT/CHF -> btc-chf, XDG/USD -> doge-usd), so that one asset has one
// code across venues. dim_symbol rows use it.
func Code(pair string) string {
	base, quote, _ := strings.Cut(pair, "/")
	return strings.ToLower(asset(base) + "-" + asset(quote))
}

func asset(a string) string {
	switch a {
	case "XBT":
		return "BTC"
	case "XDG":
		return "DOGE"
	}
	return a
}
