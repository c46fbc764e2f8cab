package kraken

import (
	"hash/crc32"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/venuefuzz"
	"github.com/chronicle/chronicle/venue"
)

// FuzzDecode: Parse and DecodeAt on anything, seeded with the capture's messages (every
// trade, ticker and control message, every snapshot, one update in ten).
func FuzzDecode(f *testing.F) {
	// One update (a message with a checksum) in ten.
	update := func(n int, msg []byte) bool { return n%10 == 0 || !strings.Contains(string(msg), `"c":"`) }
	kit.FuzzDecode(f, update,
		`[1,{"a":[["5.0","0.00000000","1.000001","r"]]},{"b":[],"c":"0"},"book-10","XBT/USD"]`,
		`{"event":"subscriptionStatus","status":"error","errorMessage":"Subscription depth not supported"}`)
}

// FuzzChecksum: Checksum, and the checksum from kept pieces (venuefuzz.CheckPieces), equal Kraken's rule computed from strings written with the
// wire's fraction digits (format.FormatDecimal), the point and leading zeros removed.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, uint8(2), uint8(8), uint8(8), uint8(8))
	f.Fuzz(func(t *testing.T, raw []byte, pd, qd, pw, qw uint8) {
		pd, qd = pd%11, qd%11
		pw, qw = pd+pw%5, qd+qw%5 // the wire writes at least the scale's digits
		bids, asks := venuefuzz.Levels(raw, 40, 1)
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
	valid := func(s venue.Spec) bool { return validPair(s.Symbol) && s.Scale.Price <= 16 && s.Scale.Qty <= 16 }
	kit.FuzzReference(f, ErrReference, valid,
		`{"error":[],"result":{"XXMRZUSD":{"wsname":"XMR/USD","pair_decimals":2,"lot_decimals":8}}}`,
		`{"error":["EGeneral:Internal error"]}`)
}
