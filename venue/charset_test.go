package venue

import "testing"

func TestCharset(t *testing.T) {
	c := NewCharset("AZ09", "-.")
	for s, want := range map[string]bool{"BTC-USDT": true, "ETH2.S": true, "": false, "btc": false,
		"BTC/USD": false, "ABCDEFGH": true, "ABCDEFGHI": false, "A\x00": false, "\xff": false} {
		if got := c.Valid(s, 8); got != want {
			t.Errorf("Valid(%q, 8) = %v, want %v", s, got, want)
		}
	}
}
