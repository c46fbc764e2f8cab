package kraken

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/venuefuzz"
	"github.com/chronicle/chronicle/venue"
)

// FuzzDecode: Parse and DecodeAt on anything, seeded with the capture's messages (every
// trade, ticker and control message, every snapshot, one update in ten).
func FuzzDecode(f *testing.F) {
	recs := readCapture(f)
	scales, _ := scalesOf(f, recs)
	n := 0
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		n++
		if strings.Contains(string(r.Payload), `"c":"`) && n%10 != 0 {
			continue
		}
		f.Add(r.Payload)
	}
	f.Add([]byte(`[1,{"a":[["5.0","0.00000000","1.000001","r"]]},{"b":[],"c":"0"},"book-10","XBT/USD"]`))
	f.Add([]byte(`{"event":"subscriptionStatus","status":"error","errorMessage":"Subscription depth not supported"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		venuefuzz.CheckDecode(t, Venue{}, in, scales)
		venuefuzz.CheckDecode(t, Venue{}, in, nil)
	})
}

// FuzzChecksum: Checksum, and the checksum from kept pieces (venuefuzz.CheckPieces), equal Kraken's rule computed from strings written with the
// wire's fraction digits (format.FormatDecimal), the point and leading zeros removed.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, uint8(2), uint8(8), uint8(8), uint8(8))
	f.Fuzz(func(t *testing.T, raw []byte, pd, qd, pw, qw uint8) {
		pd, qd = pd%11, qd%11
		pw, qw = pd+pw%5, qd+qw%5 // the wire writes at least the scale's digits
		var bids, asks []venue.Level
		for i := 0; i+9 <= len(raw) && len(bids)+len(asks) < 40; i += 9 {
			l := venue.Level{Price: int64(binary.LittleEndian.Uint32(raw[i+1:])) + 1, Qty: int64(binary.LittleEndian.Uint32(raw[i+5:])) + 1}
			if raw[i]&1 == 0 {
				bids = append(bids, l)
			} else {
				asks = append(asks, l)
			}
		}
		str := func(v int64, d, w uint8) string {
			s := format.FormatDecimal(v, d)
			if w > d {
				if d == 0 {
					s += "."
				}
				s += strings.Repeat("0", int(w-d))
			}
			return strings.TrimLeft(strings.ReplaceAll(s, ".", ""), "0")
		}
		var b strings.Builder
		for _, side := range [][]venue.Level{asks, bids} {
			for i, l := range side {
				if i == 10 {
					break
				}
				b.WriteString(str(l.Price, pd, pw))
				b.WriteString(str(l.Qty, qd, qw))
			}
		}
		want := crc32.ChecksumIEEE([]byte(b.String()))
		sc, w := venue.Scale{Price: pd, Qty: qd}, venue.Wire{PriceFrac: int8(pw), QtyFrac: int8(qw), Known: true}
		got := Venue{}.Checksum(bids, asks, sc, w)
		if got != want {
			t.Fatalf("checksum %d, want %d (%s)", got, want, b.String())
		}
		venuefuzz.CheckPieces(t, Venue{}, bids, asks, sc, w)
	})
}

// FuzzDecodeReference: a damaged AssetPairs body is an error naming where, never a panic.
func FuzzDecodeReference(f *testing.F) {
	f.Add([]byte(`{"error":[],"result":{"XXMRZUSD":{"wsname":"XMR/USD","pair_decimals":2,"lot_decimals":8}}}`))
	f.Add([]byte(`{"error":["EGeneral:Internal error"]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		specs, err := Venue{}.DecodeReference(in, nil)
		if err != nil {
			var fe *fault.Error
			if !errors.As(err, &fe) || !errors.Is(err, ErrReference) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		for _, s := range specs {
			if !validPair(s.Symbol) || s.Scale.Price > 16 || s.Scale.Qty > 16 {
				t.Fatalf("spec %+v", s)
			}
		}
	})
}
