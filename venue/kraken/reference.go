package kraken

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/venue"
)

// ReferenceRequests: the AssetPairs listing.
func (Venue) ReferenceRequests(restBase string) []string {
	if restBase == "" {
		restBase = DefaultRESTBase
	}
	return []string{strings.TrimRight(restBase, "/") + AssetPairsPath}
}

type assetPair struct {
	WSName        string `json:"wsname"`
	PairDecimals  *int   `json:"pair_decimals"`
	LotDecimals   *int   `json:"lot_decimals"`
	TickSize      string `json:"tick_size"`
	LotMultiplier int    `json:"lot_multiplier"`
}

// ErrReference: a body is not Kraken's AssetPairs listing, or a pair in it is invalid.
var ErrReference = errors.New("invalid kraken AssetPairs body")

// DecodeReference reads an AssetPairs body ({"error":[],"result":{...}}): each pair, by
// the name the websocket uses (wsname), has prices at pair_decimals and volumes at
// lot_decimals. Pairs without a wsname (not on the websocket) are left out. The specs come
// in wsname order.
func (Venue) DecodeReference(body []byte, dst []venue.Spec) ([]venue.Spec, error) {
	var b struct {
		Error  []string             `json:"error"`
		Result map[string]assetPair `json:"result"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&b); err != nil {
		return dst, fault.Field(int(d.InputOffset()), "", fmt.Errorf("%w: %v", ErrReference, err))
	}
	if len(b.Error) > 0 {
		return dst, fault.Field(0, "error", fmt.Errorf("%w: %s", ErrReference, strings.Join(b.Error, "; ")))
	}
	if b.Result == nil {
		return dst, fault.Field(0, "result", fmt.Errorf("%w: no result", ErrReference))
	}
	keys := make([]string, 0, len(b.Result))
	for k, p := range b.Result {
		if p.WSName != "" {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return b.Result[keys[i]].WSName < b.Result[keys[j]].WSName })
	for _, k := range keys {
		p := b.Result[k]
		bad := func(f string) error {
			return fault.Field(0, "result."+k, fmt.Errorf("%w: %s: %s", ErrReference, k, f))
		}
		if !validPair(p.WSName) {
			return dst, bad("wsname " + p.WSName)
		}
		if p.PairDecimals == nil || p.LotDecimals == nil || *p.PairDecimals < 0 || *p.PairDecimals > 16 || *p.LotDecimals < 0 || *p.LotDecimals > 16 {
			return dst, bad("pair_decimals or lot_decimals")
		}
		base, quote, _ := strings.Cut(p.WSName, "/")
		sp := venue.Spec{Symbol: p.WSName, Type: "spot", Base: base, Quote: quote,
			Scale:    venue.Scale{Price: uint8(*p.PairDecimals), Qty: uint8(*p.LotDecimals)},
			TickSize: p.TickSize, LotSize: unit(*p.LotDecimals), Instrument: venue.Instrument{QtyUnit: "base"}}
		if sp.TickSize == "" {
			sp.TickSize = unit(*p.PairDecimals)
		}
		dst = append(dst, sp)
	}
	return dst, nil
}

// unit is 10^-d as an exact decimal ("0.00000001" for 8).
func unit(d int) string {
	if d == 0 {
		return "1"
	}
	return "0." + strings.Repeat("0", d-1) + "1"
}
