package okx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/venue"
)

// ReferenceRequests are the public/instruments listings of spot, swaps and futures.
func (Venue) ReferenceRequests(restBase string) []string {
	if restBase == "" {
		restBase = DefaultRESTBase
	}
	restBase = strings.TrimRight(restBase, "/")
	out := make([]string, len(InstTypes))
	for i, t := range InstTypes {
		out[i] = restBase + InstrumentsPath + "?instType=" + t
	}
	return out
}

type instrumentsBody struct {
	Code *string      `json:"code"`
	Msg  string       `json:"msg"`
	Data []instrument `json:"data"`
}

type instrument struct {
	InstID   string `json:"instId"`
	InstType string `json:"instType"`
	TickSz   string `json:"tickSz"`
	LotSz    string `json:"lotSz"`
	CtVal    string `json:"ctVal"`
	CtValCcy string `json:"ctValCcy"`
	CtType   string `json:"ctType"`
	ExpTime  string `json:"expTime"`
	BaseCcy  string `json:"baseCcy"`
	QuoteCcy string `json:"quoteCcy"`
	Uly      string `json:"uly"`
}

// ErrReference: a body is not OKX's instrument listing, or an instrument in it is invalid.
var ErrReference = errors.New("invalid okx instruments body")

// DecodeReference reads a public/instruments body ({"code":"0","data":[...]}): each
// instrument's scales are the decimals of its tick and lot sizes, a swap's or future's
// sizes count contracts worth ctVal ctValCcy, a future expires at expTime.
func (Venue) DecodeReference(body []byte, dst []venue.Spec) ([]venue.Spec, error) {
	var b instrumentsBody
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&b); err != nil {
		return dst, fault.Field(int(d.InputOffset()), "", fmt.Errorf("%w: %v", ErrReference, err))
	}
	if b.Code == nil || b.Data == nil {
		return dst, fault.Field(0, "data", fmt.Errorf("%w: no code or data", ErrReference))
	}
	if *b.Code != "0" {
		return dst, fault.Field(0, "code", fmt.Errorf("%w: error %s %s", ErrReference, *b.Code, b.Msg))
	}
	for i, in := range b.Data {
		sp, err := spec(in)
		if err != nil {
			return dst, fault.Field(0, fmt.Sprintf("data[%d]", i), err)
		}
		dst = append(dst, sp)
	}
	return dst, nil
}

func spec(in instrument) (venue.Spec, error) {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: %s: "+f, append([]any{ErrReference, in.InstID}, a...)...)
	}
	if !validSymbol(in.InstID) {
		return venue.Spec{}, bad("instId")
	}
	pd, ok := decimalsOf(in.TickSz)
	if !ok {
		return venue.Spec{}, bad("tickSz %q", in.TickSz)
	}
	qd, ok := decimalsOf(in.LotSz)
	if !ok {
		return venue.Spec{}, bad("lotSz %q", in.LotSz)
	}
	sp := venue.Spec{Symbol: in.InstID, Type: strings.ToLower(in.InstType), Scale: venue.Scale{Price: pd, Qty: qd},
		TickSize: in.TickSz, LotSize: in.LotSz, Base: in.BaseCcy, Quote: in.QuoteCcy}
	switch sp.Type {
	case "spot", "margin":
		sp.Instrument = venue.Instrument{QtyUnit: "base"}
	case "swap", "futures", "option":
		if _, ok := decimalsOf(in.CtVal); !ok {
			return venue.Spec{}, bad("ctVal %q", in.CtVal)
		}
		sp.Instrument = venue.Instrument{QtyUnit: "contracts", ContractSize: in.CtVal, ContractCurrency: in.CtValCcy}
		if base, quote, ok := strings.Cut(in.Uly, "-"); ok && sp.Base == "" {
			sp.Base, sp.Quote = base, quote
		}
	default:
		return venue.Spec{}, bad("instType %q", in.InstType)
	}
	if in.ExpTime != "" {
		ms, err := strconv.ParseInt(in.ExpTime, 10, 64)
		if err != nil || ms <= 0 || ms > maxMillis {
			return venue.Spec{}, bad("expTime %q", in.ExpTime)
		}
		sp.ExpiryNs = ms * 1e6
	}
	return sp, nil
}

// decimalsOf returns the fraction digits of a positive exact decimal ("0.00000001" -> 8,
// "0.1" -> 1, "1" -> 0, "0.50" -> 1: trailing zeros do not count).
func decimalsOf(s string) (uint8, bool) {
	if s == "" {
		return 0, false
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || (frac != "" && !allDigits(frac)) {
		return 0, false
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 18 || strings.Trim(intPart+frac, "0") == "" {
		return 0, false
	}
	return uint8(len(frac)), true
}
