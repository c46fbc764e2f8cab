package venue

import (
	"fmt"
	"net/url"
	"strings"
)

// PlanBase checks what every venue's Plan checks first: the websocket base (def when
// empty; trailing slashes dropped) is a ws:// or wss:// URL with a host, and the
// subscription names symbols and streams. max is the subscription's stream cap a
// connection, at most (and by default) the venue's own venueMax.
func PlanBase(wsBase, def string, sub Subscription, venueMax int) (base string, max int, err error) {
	if wsBase == "" {
		wsBase = def
	}
	wsBase = strings.TrimRight(wsBase, "/")
	if u, err := url.Parse(wsBase); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return "", 0, fmt.Errorf("websocket base %q: %w", wsBase, ErrBadStream)
	}
	max = sub.MaxStreamsPerConn
	if max <= 0 || max > venueMax {
		max = venueMax
	}
	if len(sub.Symbols) == 0 || len(sub.Streams) == 0 {
		return "", 0, fmt.Errorf("plan: no symbols or no streams: %w", ErrBadStream)
	}
	return wsBase, max, nil
}

// PackSymbols plans venues whose connections all go to one URL and subscribe by request.
// Each symbol (trimmed, in capitals; bad makes the error for one valid refuses, repeats
// are dropped) has a stream on each channel of chans: the template named by its channel,
// named StreamName(channel, symbol) for the symbol. All of a symbol's streams share one
// connection, and symbols are packed in order onto as few connections as max streams
// each allows (len(chans) <= max).
func PackSymbols(wsURL string, max int, symbols []string, valid func(sym string) bool, bad func(raw string) error, chans []Stream) ([]Connection, error) {
	var conns []Connection
	var cur []Stream
	flush := func() {
		if len(cur) > 0 {
			conns = append(conns, Connection{URL: wsURL, Streams: cur})
			cur = nil
		}
	}
	seen := map[string]bool{}
	for _, raw := range symbols {
		sym := strings.ToUpper(strings.TrimSpace(raw))
		if !valid(sym) {
			return nil, bad(raw)
		}
		if seen[sym] {
			continue
		}
		seen[sym] = true
		if len(cur)+len(chans) > max {
			flush()
		}
		for _, c := range chans {
			c.Name, c.Symbol = StreamName(c.Name, sym), sym
			cur = append(cur, c)
		}
	}
	flush()
	return conns, nil
}
