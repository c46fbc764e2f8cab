// Package binance implements venue.Venue for Binance's three public market-data APIs:
// USD-M perpetual futures ("binance-perp"), COIN-M futures ("binance-coinm") and spot
// ("binance-spot"). They share the combined-stream websocket envelope and the message
// shapes; they differ in URLs, limits, the depth chain rule (futures chain each update to
// the previous by `pu`; spot by `U == previous u + 1`), the snapshot bridge, which fields
// each message carries (spot bookTicker has no event type and no time; the spot snapshot no
// time and no symbol) and what a quantity counts (COIN-M sizes are contracts).
package binance

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle/chronicle/venue"
)

// Venue ids.
const (
	Name      = "binance-perp"  // USD-M perpetual futures
	CoinMName = "binance-coinm" // COIN-M futures
	SpotName  = "binance-spot"  // spot
)

// USD-M published limits (developers.binance.com, checked 2024-2025). The stream cap has
// been documented as 200 and as 1024; 200 is the safe one.
const (
	MaxStreamsPerConn = 200
	MaxConnAge        = 24 * time.Hour
	RESTWeightPerMin  = 2400
	UsedWeightHeader  = "X-Mbx-Used-Weight-1m"
	DefaultWSBase     = "wss://fstream.binance.com"
	DefaultRESTBase   = "https://fapi.binance.com"
	DepthPath         = "/fapi/v1/depth"
)

// Decimals is the fixed-point scale of every Binance price and quantity in canonical
// records: spot quotes carry 8 decimals, futures fewer, so 8 keeps all of them exact.
const Decimals = 8

func init() {
	venue.Register(New())
	venue.Register(NewCoinM())
	venue.Register(NewSpot())
}

// market is what differs between the three APIs.
type market struct {
	name               string
	wsBase, restBase   string
	depthPath          string
	maxStreams         int
	weightPerMin       int
	depthWeight        func(limit int) int
	spot               bool   // spot chain and bridge rules, no pu
	plainDepthSpeed    string // the speed the plain "@depth" stream has
	fastestDepth       string
	contractInstrument func(symbol string) venue.Instrument
	shapes             *kindShapes // the member order of each kind of message (shape.go)
}

var (
	usdm = &market{
		name: Name, wsBase: DefaultWSBase, restBase: DefaultRESTBase, depthPath: DepthPath,
		maxStreams: MaxStreamsPerConn, weightPerMin: RESTWeightPerMin, depthWeight: DepthWeight,
		plainDepthSpeed: "250ms", fastestDepth: "0ms", shapes: &futuresShapes,
	}
	coinm = &market{
		name: CoinMName, wsBase: "wss://dstream.binance.com", restBase: "https://dapi.binance.com",
		depthPath: "/dapi/v1/depth", maxStreams: 200, weightPerMin: 2400, depthWeight: DepthWeight,
		plainDepthSpeed: "250ms", fastestDepth: "0ms", contractInstrument: coinmInstrument, shapes: &coinmShapes,
	}
	spot = &market{
		name: SpotName, wsBase: "wss://stream.binance.com:9443", restBase: "https://api.binance.com",
		depthPath: "/api/v3/depth", maxStreams: 1024, weightPerMin: 6000, depthWeight: spotDepthWeight,
		spot: true, plainDepthSpeed: "1000ms", fastestDepth: "100ms", shapes: &spotShapes,
	}
)

// Venue is one of the three Binance APIs. The zero value is not usable: use New,
// NewCoinM or NewSpot.
type Venue struct{ m *market }

var _ venue.Venue = Venue{}

// New returns USD-M perpetual futures ("binance-perp").
func New() Venue { return Venue{usdm} }

// NewCoinM returns COIN-M futures ("binance-coinm").
func NewCoinM() Venue { return Venue{coinm} }

// NewSpot returns spot ("binance-spot").
func NewSpot() Venue { return Venue{spot} }

func (v Venue) Name() string { return v.m.name }

// DefaultWSBase and DefaultRESTBase are the venue's production endpoints.
func (v Venue) DefaultWSBase() string   { return v.m.wsBase }
func (v Venue) DefaultRESTBase() string { return v.m.restBase }

func (v Venue) Limits() venue.Limits {
	return venue.Limits{
		MaxStreamsPerConn: v.m.maxStreams,
		MaxConnAge:        MaxConnAge,
		RESTWeightPerMin:  v.m.weightPerMin,
		UsedWeightHeader:  UsedWeightHeader,
		DefaultDepthSpeed: v.m.fastestDepth,
	}
}

func (Venue) Decimals() (price, qty uint8) { return Decimals, Decimals }

// Instrument: COIN-M sizes count contracts of a fixed USD value; USD-M and spot sizes
// count the base asset.
func (v Venue) Instrument(symbol string) venue.Instrument {
	if v.m.contractInstrument != nil {
		return v.m.contractInstrument(symbol)
	}
	return venue.Instrument{QtyUnit: "base"}
}

// coinmInstrument: BTCUSD contracts are worth 100 USD, every other COIN-M contract 10 USD
// (Binance's contract specifications).
func coinmInstrument(symbol string) venue.Instrument {
	size := "10"
	if strings.HasPrefix(strings.ToUpper(symbol), "BTCUSD") {
		size = "100"
	}
	return venue.Instrument{QtyUnit: "contracts", ContractSize: size, ContractCurrency: "USD"}
}

// Symbol returns the venue symbol of a stream name: "ethusd_perp@depth@0ms" -> "ETHUSD_PERP".
func (Venue) Symbol(stream string) string {
	sym, _, _ := strings.Cut(stream, "@")
	return strings.ToUpper(sym)
}

// DepthWeight is the request weight of the futures depth endpoints (USD-M and COIN-M) for
// a limit, or 0 for a limit the endpoint does not accept.
func DepthWeight(limit int) int {
	switch limit {
	case 5, 10, 20, 50:
		return 2
	case 100:
		return 5
	case 500:
		return 10
	case 1000:
		return 20
	}
	return 0
}

// spotDepthWeight is /api/v3/depth's weight: 5 up to 100 levels, 25 up to 500, 50 up to
// 1000, 250 up to 5000.
func spotDepthWeight(limit int) int {
	switch {
	case limit < 1 || limit > 5000:
		return 0
	case limit <= 100:
		return 5
	case limit <= 500:
		return 25
	case limit <= 1000:
		return 50
	}
	return 250
}

// Binance symbols are capitals, digits and underscores ("BTCUSD_PERP"); stream suffixes
// ("kline_1m", "markPrice@1s") letters, digits, underscores and at signs.
var symbolChars, suffixChars = venue.NewCharset("AZ09", "_"), venue.NewCharset("azAZ09", "_@")

func validSymbol(s string) bool { return symbolChars.Valid(s, 32) }
func validSuffix(s string) bool { return suffixChars.Valid(s, 64) }

// streamFor builds one stream of a symbol from a stream spec of the subscription.
func (v Venue) streamFor(sym, spec, speed string) (venue.Stream, error) {
	lower := strings.ToLower(sym)
	switch spec {
	case "depth":
		name := lower + "@depth"
		if speed != "" && speed != v.m.plainDepthSpeed {
			if !validSuffix(speed) || (v.m.spot && speed != "100ms") {
				return venue.Stream{}, fmt.Errorf("%s depth speed %q: %w", v.m.name, speed, venue.ErrBadStream)
			}
			name += "@" + speed
		}
		return venue.Stream{Name: name, Symbol: sym, Kind: venue.KindDepth}, nil
	case "trade":
		return venue.Stream{Name: lower + "@trade", Symbol: sym, Kind: venue.KindTrade}, nil
	case "aggTrade":
		return venue.Stream{Name: lower + "@aggTrade", Symbol: sym, Kind: venue.KindAggTrade}, nil
	case "bookTicker":
		return venue.Stream{Name: lower + "@bookTicker", Symbol: sym, Kind: venue.KindBookTicker}, nil
	}
	if !validSuffix(spec) {
		return venue.Stream{}, fmt.Errorf("stream %q: %w", spec, venue.ErrBadStream)
	}
	return venue.Stream{Name: lower + "@" + spec, Symbol: sym, Kind: venue.KindOther}, nil
}

// Plan puts all streams of a symbol on one connection and packs symbols in order onto as
// few connections per route as the stream cap allows. URLs use the combined-stream form
// {base}{route}/stream?streams=a/b/c, whose messages carry the stream name.
func (v Venue) Plan(wsBase string, sub venue.Subscription) ([]venue.Connection, error) {
	wsBase, max, err := venue.PlanBase(wsBase, v.m.wsBase, sub, v.m.maxStreams)
	if err != nil {
		return nil, err
	}
	// Group streams by route, then pack symbols within each route.
	type group struct {
		route   string
		symbols [][]venue.Stream
	}
	var groups []*group
	byRoute := map[string]*group{}
	seen := map[string]bool{}
	for _, raw := range sub.Symbols {
		sym := strings.ToUpper(strings.TrimSpace(raw))
		if !validSymbol(sym) {
			return nil, fmt.Errorf("symbol %q: %w", raw, venue.ErrBadSymbol)
		}
		if seen[sym] {
			continue
		}
		seen[sym] = true
		perRoute := map[string][]venue.Stream{}
		var order []string
		for _, spec := range sub.Streams {
			st, err := v.streamFor(sym, spec, sub.DepthSpeed)
			if err != nil {
				return nil, err
			}
			route := sub.Routes[spec]
			if _, ok := perRoute[route]; !ok {
				order = append(order, route)
			}
			perRoute[route] = append(perRoute[route], st)
		}
		for _, route := range order {
			streams := perRoute[route]
			if len(streams) > max {
				return nil, fmt.Errorf("symbol %s needs %d streams, limit %d: %w", sym, len(streams), max, venue.ErrTooManyStreams)
			}
			g := byRoute[route]
			if g == nil {
				g = &group{route: route}
				byRoute[route] = g
				groups = append(groups, g)
			}
			g.symbols = append(g.symbols, streams)
		}
	}
	var conns []venue.Connection
	for _, g := range groups {
		var cur []venue.Stream
		flush := func() {
			if len(cur) == 0 {
				return
			}
			names := make([]string, len(cur))
			for i, s := range cur {
				names[i] = s.Name
			}
			conns = append(conns, venue.Connection{
				URL:     wsBase + strings.TrimRight(g.route, "/") + "/stream?streams=" + strings.Join(names, "/"),
				Streams: cur,
			})
			cur = nil
		}
		for _, streams := range g.symbols {
			if len(cur)+len(streams) > max {
				flush()
			}
			cur = append(cur, streams...)
		}
		flush()
	}
	return conns, nil
}

// SnapshotRequest returns the depth endpoint's URL and weight for a symbol.
func (v Venue) SnapshotRequest(restBase, symbol string, limit int) (venue.SnapshotRequest, error) {
	w := v.m.depthWeight(limit)
	if w == 0 {
		return venue.SnapshotRequest{}, fmt.Errorf("%s depth limit %d: %w", v.m.name, limit, venue.ErrBadField)
	}
	sym := strings.ToUpper(symbol)
	if !validSymbol(sym) {
		return venue.SnapshotRequest{}, fmt.Errorf("symbol %q: %w", symbol, venue.ErrBadSymbol)
	}
	if restBase == "" {
		restBase = v.m.restBase
	}
	return venue.SnapshotRequest{
		URL:    strings.TrimRight(restBase, "/") + v.m.depthPath + "?symbol=" + sym + "&limit=" + strconv.Itoa(limit),
		Weight: w,
	}, nil
}

// DepthPath returns the REST depth endpoint's path ("/fapi/v1/depth").
func (v Venue) DepthPath() string { return v.m.depthPath }

// Check applies the depth chain rule: on futures each update's pu equals the previous
// update's u; on spot each update's U is the previous u + 1. Other streams are ordered by
// their id but have no continuity rule.
func (v Venue) Check(lastID int64, ev venue.Event) venue.Seq {
	switch ev.Kind {
	case venue.KindDepth:
		next := ev.Prev == lastID
		if v.m.spot {
			next = ev.First == lastID+1
		}
		switch {
		case next:
			return venue.SeqNext
		case ev.ID <= lastID:
			return venue.SeqStale
		}
		return venue.SeqGap
	case venue.KindTrade, venue.KindAggTrade, venue.KindBookTicker:
		if ev.ID <= lastID {
			return venue.SeqStale
		}
	}
	return venue.SeqUnknown
}

// Bridges: a snapshot can seed a chain whose first diff is f when it is no older than the
// state f was applied to (futures: lastUpdateId >= f.pu; spot: lastUpdateId + 1 >= f.U);
// the refinery then drops the diffs the snapshot already covers.
func (v Venue) Bridges(snap venue.Snapshot, f venue.Event) bool {
	if v.m.spot {
		return snap.LastUpdateID+1 >= f.First
	}
	return snap.LastUpdateID >= f.Prev
}

// SnapshotBridge is Binance's local-book rule with a snapshot of last update id L: drop
// updates the snapshot already covers (u < L), apply the first one that reaches it, and
// report a gap when the first remaining update starts after it. Futures: the first
// applied update has U <= L <= u. Spot: U <= L+1 and u >= L; its updates chain by
// U == previous u + 1, so the one that starts right after the snapshot bridges too. An
// update that ends exactly at L (applied on both) restates levels whose final quantities
// the snapshot already holds, so applying it changes nothing.
func (v Venue) SnapshotBridge(L int64, ev venue.Event) venue.Bridge {
	first := L
	if v.m.spot {
		first++
	}
	switch {
	case ev.ID < L:
		return venue.BridgeBefore
	case ev.First <= first:
		return venue.BridgeApplies
	}
	return venue.BridgeAfter
}
