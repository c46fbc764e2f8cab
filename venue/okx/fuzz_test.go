package okx

import (
	"hash/crc32"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/venuefuzz"
	"github.com/chronicle/chronicle/venue"
)

// FuzzDecode: Parse and DecodeAt on anything, seeded with every message of the capture
// (at the capture's instrument scales and at the default ones).
func FuzzDecode(f *testing.F) {
	kit.FuzzDecode(f, nil, "pong", `{"event":"error","code":"60012","msg":"Invalid request"}`,
		`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","checksum":0,"seqId":5,"prevSeqId":5}]}`,
		`{"data":[{"asks":[["1","2","0","1"]],"bids":[],"ts":"1","checksum":7}],"action":"snapshot","arg":{"channel":"books","instId":"BTC-USDT"}}`)
}

// FuzzChecksum: Checksum, and the checksum from kept pieces (venuefuzz.CheckPieces), equal the rule computed from strings (format.FormatDecimal with
// its trailing zeros cut), for any levels and scales.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, uint8(1), uint8(8))
	f.Add([]byte{}, uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, pd, qd uint8) {
		pd, qd = pd%19, qd%19
		bids, asks := venuefuzz.Levels(raw, 80, 0)
		sc := venue.Scale{Price: pd, Qty: qd}
		var parts []string
		str := func(v int64, d uint8) string {
			s := format.FormatDecimal(v, d)
			if strings.Contains(s, ".") {
				s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
			}
			return s
		}
		for i := 0; i < 25; i++ {
			if i < len(bids) {
				parts = append(parts, str(bids[i].Price, pd), str(bids[i].Qty, qd))
			}
			if i < len(asks) {
				parts = append(parts, str(asks[i].Price, pd), str(asks[i].Qty, qd))
			}
		}
		want := crc32.ChecksumIEEE([]byte(strings.Join(parts, ":")))
		if got := (Venue{}).Checksum(bids, asks, sc, venue.Wire{}); got != want {
			t.Fatalf("checksum %d, want %d (%s)", got, want, strings.Join(parts, ":"))
		}
		venuefuzz.CheckPieces(t, Venue{}, bids, asks, sc, venue.Wire{})
	})
}

// FuzzDecodeReference: a damaged instruments body is an error naming where, never a panic.
func FuzzDecodeReference(f *testing.F) {
	valid := func(s venue.Spec) bool {
		return validSymbol(s.Symbol) && s.Scale.Price <= 18 && s.Scale.Qty <= 18 && s.QtyUnit != ""
	}
	kit.FuzzReference(f, ErrReference, valid,
		`{"code":"0","data":[{"instId":"BTC-USDT","instType":"SPOT","tickSz":"0.1","lotSz":"0.00000001"}]}`)
}
