// Package binance implements venue.Venue for Binance USD-M perpetual futures
// ("binance-perp"): combined-stream websocket URLs split under the per-connection stream
// limit, the routing and sequence fields of depthUpdate (U/u/pu), trade, aggTrade and
// bookTicker messages, and the /fapi/v1/depth REST snapshot with its request weights.
package binance

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle/chronicle/venue"
)

// Name is the venue id of Binance USD-M perpetual futures.
const Name = "binance-perp"

// Published limits (developers.binance.com, USD-M futures, checked 2024-2025). The
// stream cap has been documented as 200 and as 1024; 200 is the safe one.
const (
	MaxStreamsPerConn = 200
	MaxConnAge        = 24 * time.Hour
	RESTWeightPerMin  = 2400
	UsedWeightHeader  = "X-Mbx-Used-Weight-1m"
	DefaultWSBase     = "wss://fstream.binance.com"
	DefaultRESTBase   = "https://fapi.binance.com"
	DepthPath         = "/fapi/v1/depth"
)

// Perp is the Binance USD-M perpetual futures venue.
type Perp struct{}

var _ venue.Venue = Perp{}

// New returns the venue.
func New() Perp { return Perp{} }

func (Perp) Name() string { return Name }

func (Perp) Limits() venue.Limits {
	return venue.Limits{
		MaxStreamsPerConn: MaxStreamsPerConn,
		MaxConnAge:        MaxConnAge,
		RESTWeightPerMin:  RESTWeightPerMin,
		UsedWeightHeader:  UsedWeightHeader,
	}
}

// DepthWeight is the request weight of /fapi/v1/depth for a limit, or 0 for a limit the
// endpoint does not accept.
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

func validSymbol(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validSuffix(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '@') {
			return false
		}
	}
	return true
}

// streamFor builds one stream of a symbol from a stream spec of the subscription.
func streamFor(sym, spec, speed string) (venue.Stream, error) {
	lower := strings.ToLower(sym)
	switch spec {
	case "depth":
		name := lower + "@depth"
		if speed != "" && speed != "250ms" {
			if !validSuffix(speed) {
				return venue.Stream{}, fmt.Errorf("depth speed %q: %w", speed, venue.ErrBadStream)
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
func (Perp) Plan(wsBase string, sub venue.Subscription) ([]venue.Connection, error) {
	if wsBase == "" {
		wsBase = DefaultWSBase
	}
	wsBase = strings.TrimRight(wsBase, "/")
	if u, err := url.Parse(wsBase); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("websocket base %q: %w", wsBase, venue.ErrBadStream)
	}
	max := sub.MaxStreamsPerConn
	if max <= 0 || max > MaxStreamsPerConn {
		max = MaxStreamsPerConn
	}
	if len(sub.Symbols) == 0 || len(sub.Streams) == 0 {
		return nil, fmt.Errorf("plan: no symbols or no streams: %w", venue.ErrBadStream)
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
			st, err := streamFor(sym, spec, sub.DepthSpeed)
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

// SnapshotRequest returns the /fapi/v1/depth URL and weight for a symbol.
func (Perp) SnapshotRequest(restBase, symbol string, limit int) (venue.SnapshotRequest, error) {
	w := DepthWeight(limit)
	if w == 0 {
		return venue.SnapshotRequest{}, fmt.Errorf("depth limit %d (allowed 5, 10, 20, 50, 100, 500, 1000): %w", limit, venue.ErrBadField)
	}
	sym := strings.ToUpper(symbol)
	if !validSymbol(sym) {
		return venue.SnapshotRequest{}, fmt.Errorf("symbol %q: %w", symbol, venue.ErrBadSymbol)
	}
	if restBase == "" {
		restBase = DefaultRESTBase
	}
	return venue.SnapshotRequest{
		URL:    strings.TrimRight(restBase, "/") + DepthPath + "?symbol=" + sym + "&limit=" + strconv.Itoa(limit),
		Weight: w,
	}, nil
}
