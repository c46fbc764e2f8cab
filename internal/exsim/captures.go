package exsim

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/binance"
	"github.com/chronicle/chronicle/venue/kraken"
	"github.com/chronicle/chronicle/venue/okx"
)

// Set is one capture the simulator serves as one market: a name (the URL prefix it is
// served under when several share a server), the venue whose protocol it speaks, and its
// files, which are one stream in order.
type Set struct {
	Name  string
	Venue string
	Files []string
}

// Bundled lists the real captures in ../shared/data/captures (see its README), with file
// names relative to that directory.
func Bundled() []Set {
	return []Set{
		{"usdm", binance.Name, []string{"binance-usdm_ethusdt_20240808.jsonl.gz"}},
		{"coinm", binance.CoinMName, []string{"binance-coinm_ethusd_perp_20240808.jsonl.gz", "binance-coinm_ethusd_perp_20240809.jsonl.gz"}},
		{"spot", binance.SpotName, []string{"binance-spot_ethusdt_20240808.jsonl.gz", "binance-spot_ethusdt_20240809.jsonl.gz"}},
		{"cryptofeed", binance.Name, []string{"cryptofeed_binance-futures.ws.txt"}},
		{"okx", okx.Name, []string{"cryptofeed_okx.ws.txt"}},
		{"kraken", kraken.Name, []string{"cryptofeed_kraken-book.ws.txt", "cryptofeed_kraken-trade.ws.txt", "cryptofeed_kraken-ticker.ws.txt"}},
	}
}

// Paths returns the set's files below dir.
func (s Set) Paths(dir string) []string {
	out := make([]string, len(s.Files))
	for i, f := range s.Files {
		out[i] = filepath.Join(dir, f)
	}
	return out
}

// Load reads a capture's files as one stream merged by receive time, as chronicle-feed's
// replay does (capture.OpenMerged): a cryptofeed websocket log brings the REST log beside
// it (X.ws.txt with X.http.txt).
func Load(paths ...string) ([]capture.Record, error) { return capture.ReadMerged(paths) }

// Subscription is what a client subscribes to in order to receive every message of the
// capture: its symbols and stream kinds in order of first appearance and the depth
// stream's speed. It is checked against the venue's own plan, so a feed configured with
// it asks for exactly the capture's stream names.
func (s *Sim) Subscription() (venue.Subscription, error) {
	if s.sm != nil {
		return s.subSubscription()
	}
	var sub venue.Subscription
	names := map[string]bool{}
	speedSet := false
	for i := range s.msgs {
		name := s.msgs[i].stream
		if names[name] {
			continue
		}
		names[name] = true
		sym, rest, ok := strings.Cut(name, "@")
		if !ok {
			return sub, fmt.Errorf("exsim: stream %q has no kind", name)
		}
		if up := strings.ToUpper(sym); !slices.Contains(sub.Symbols, up) {
			sub.Symbols = append(sub.Symbols, up)
		}
		spec := rest
		if kind, speed, _ := strings.Cut(rest, "@"); kind == "depth" {
			if speedSet && speed != sub.DepthSpeed {
				return sub, fmt.Errorf("exsim: depth streams at two speeds (%q and %q): one subscription cannot ask for both", sub.DepthSpeed, speed)
			}
			spec, sub.DepthSpeed, speedSet = "depth", speed, true
		}
		if !slices.Contains(sub.Streams, spec) {
			sub.Streams = append(sub.Streams, spec)
		}
	}
	plan, err := s.v.Plan("ws://exsim", sub)
	if err != nil {
		return sub, fmt.Errorf("exsim: %w", err)
	}
	planned := map[string]bool{}
	for _, c := range plan {
		for _, st := range c.Streams {
			planned[st.Name] = true
		}
	}
	for name := range names {
		if !planned[name] {
			return sub, fmt.Errorf("exsim: the %s plan for %v does not name the capture's stream %q", s.v.Name(), sub, name)
		}
	}
	return sub, nil
}

// SentCount is the number of capture messages written to connections so far (injected
// frames not counted).
func (s *Sim) SentCount() int {
	n := 0
	for _, c := range s.Conns() {
		for _, idx := range c.Sent() {
			if idx >= 0 {
				n++
			}
		}
	}
	return n
}
