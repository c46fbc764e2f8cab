package okx

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

// FuzzDecode: Parse and DecodeAt on anything, seeded with every message of the capture
// (at the capture's instrument scales and at the default ones).
func FuzzDecode(f *testing.F) {
	recs := readCapture(f)
	scales, _ := scalesOf(f, recs)
	for _, r := range recs {
		if r.Kind == capture.KindMessage {
			f.Add(r.Payload)
		}
	}
	for _, s := range []string{"pong", `{"event":"error","code":"60012","msg":"Invalid request"}`,
		`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","checksum":0,"seqId":5,"prevSeqId":5}]}`,
		`{"data":[{"asks":[["1","2","0","1"]],"bids":[],"ts":"1","checksum":7}],"action":"snapshot","arg":{"channel":"books","instId":"BTC-USDT"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		venuefuzz.CheckDecode(t, Venue{}, in, scales, "pong")
		venuefuzz.CheckDecode(t, Venue{}, in, nil, "pong")
	})
}

// FuzzChecksum: Checksum, and the checksum from kept pieces (venuefuzz.CheckPieces), equal the rule computed from strings (format.FormatDecimal with
// its trailing zeros cut), for any levels and scales.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, uint8(1), uint8(8))
	f.Add([]byte{}, uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, pd, qd uint8) {
		pd, qd = pd%19, qd%19
		var bids, asks []venue.Level
		for i := 0; i+9 <= len(raw) && len(bids)+len(asks) < 80; i += 9 {
			l := venue.Level{Price: int64(binary.LittleEndian.Uint32(raw[i+1:])) + 1, Qty: int64(binary.LittleEndian.Uint32(raw[i+5:]))}
			if raw[i]&1 == 0 {
				bids = append(bids, l)
			} else {
				asks = append(asks, l)
			}
		}
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
	for _, r := range readCapture(f) {
		if r.Kind == capture.KindSnapshot {
			f.Add(r.Payload[:min(len(r.Payload), 4096)])
		}
	}
	f.Add([]byte(`{"code":"0","data":[{"instId":"BTC-USDT","instType":"SPOT","tickSz":"0.1","lotSz":"0.00000001"}]}`))
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
			if !validSymbol(s.Symbol) || s.Scale.Price > 18 || s.Scale.Qty > 18 || s.QtyUnit == "" {
				t.Fatalf("spec %+v", s)
			}
		}
	})
}
