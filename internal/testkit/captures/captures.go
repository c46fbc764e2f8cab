// Package captures holds what an independent rebuild (not Chronicle code) found in each
// bundled real capture (../shared/data/captures), for tests to check Chronicle's output
// against: per symbol and UTC date, the depth updates applied from the snapshot bridge on
// (dated by E), the trades (dated by T), the bookTicker self-checks, and the final best
// bid/ask. The figures are the refinery issue's; every test that needs them reads them here.
package captures

import (
	"encoding/json"
	"strings"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/exsim"
)

// Day is the figures of one symbol on one date; -1 (or "") where there is no figure.
type Day struct {
	Depth, Trades, Checks, Mismatches int64
	Bid, Ask                          string // final best bid / ask
}

// Capture is one bundled capture (an exsim.Set: name, venue id, files) with its figures
// by partition directory: symbol code -> date -> figures.
type Capture struct {
	exsim.Set
	Symbols map[string]map[string]Day
}

// All are the bundled captures, in exsim.Bundled's order. The cryptofeed set has no
// figures beyond its four symbol identities.
var All = []Capture{
	{set("usdm"), map[string]map[string]Day{
		"eth-usdt": {
			"2024-08-08": {6575, 14051, 551, 0, "2681.59", "2681.60"},
			"2024-08-09": {6, 25, -1, -1, "2681.38", "2681.39"},
		}}},
	{set("coinm"), map[string]map[string]Day{
		"eth-usd-perp": {
			"2024-08-08": {22804, 1732, 1340, 0, "2682.01", "2682.02"},
			"2024-08-09": {16329, 1863, 938, 0, "2677.00", "2677.01"},
		}}},
	{set("spot"), map[string]map[string]Day{
		"eth-usdt": {
			"2024-08-08": {3421, 6098, 575, 0, "2682.50", "2682.51"},
			"2024-08-09": {3048, 8417, 481, 0, "2677.60", "2677.61"},
		}}},
	{set("cryptofeed"), map[string]map[string]Day{
		"sushi-usdt": {"2021-07-22": {-1, -1, -1, 0, "", ""}},
		"akro-usdt":  {"2021-07-22": {-1, -1, -1, 0, "", ""}},
		"keep-usdt":  {"2021-07-22": {-1, -1, -1, 0, "", ""}},
		"ctk-usdt":   {"2021-07-22": {-1, -1, -1, 0, "", ""}},
	}},
}

func set(name string) exsim.Set {
	for _, s := range exsim.Bundled() {
		if s.Name == name {
			return s
		}
	}
	panic("captures: no bundled set " + name)
}

// Get returns the capture with the given set name.
func Get(name string) Capture {
	for _, c := range All {
		if c.Name == name {
			return c
		}
	}
	panic("captures: no capture " + name)
}

// Subscribed are the bundled captures of venues subscribed by request (OKX, Kraken),
// whose books come with the exchange's checksums.
var Subscribed = []exsim.Set{set("okx"), set("kraken")}

// Figures are what encoding/json (not Chronicle's decoders) finds for one instrument of an
// OKX or Kraken capture: book messages that carry a checksum, book updates (snapshots
// excluded), trades (each of a message that carries several) and ticker messages.
type Figures struct{ Checks, Updates, Trades, Tickers int64 }

// Count reads a capture's records (merged as capture.ReadMerged reads them) with
// encoding/json and counts Figures by instrument (OKX instId, Kraken pair).
func Count(venueName string, recs []capture.Record) map[string]*Figures {
	out := map[string]*Figures{}
	get := func(sym string) *Figures {
		if out[sym] == nil {
			out[sym] = &Figures{}
		}
		return out[sym]
	}
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		switch venueName {
		case "okx":
			var m struct {
				Arg    struct{ Channel, InstID string }
				Action string
				Data   []map[string]json.RawMessage
			}
			if json.Unmarshal(r.Payload, &m) != nil || m.Data == nil {
				continue
			}
			f := get(m.Arg.InstID)
			switch m.Arg.Channel {
			case "books":
				if _, ok := m.Data[0]["checksum"]; ok {
					f.Checks++
				}
				if m.Action == "update" {
					f.Updates++
				}
			case "trades":
				f.Trades += int64(len(m.Data))
			case "tickers":
				f.Tickers++
			}
		case "kraken-spot":
			var a []json.RawMessage
			if json.Unmarshal(r.Payload, &a) != nil || len(a) < 4 {
				continue
			}
			var channel, pair string
			json.Unmarshal(a[len(a)-2], &channel)
			json.Unmarshal(a[len(a)-1], &pair)
			f := get(pair)
			switch {
			case strings.HasPrefix(channel, "book-"):
				for _, p := range a[1 : len(a)-2] {
					var obj map[string]json.RawMessage
					json.Unmarshal(p, &obj)
					if _, ok := obj["c"]; ok {
						f.Checks++
						f.Updates++
					}
				}
			case channel == "trade":
				var ts [][]string
				json.Unmarshal(a[1], &ts)
				f.Trades += int64(len(ts))
			case channel == "ticker":
				f.Tickers++
			}
		}
	}
	return out
}
