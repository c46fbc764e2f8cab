package venue

import "testing"

// FuzzDecimal: Decimal (its one-pass path for the usual numbers) reads exactly what the
// digit-by-digit decimalSlow reads: the same value, fraction digits, verdict and position.
func FuzzDecimal(f *testing.F) {
	for _, s := range []string{`"30238.8"`, `"0.00000500"`, `"1618678133.136361"`, `"1."`, `".5"`, `"1.05"`,
		`"1.0"`, `"00"`, `"9223372036854775807"`, `"922337203685477580.7"`, `"123456789012345678"`,
		`"1234567890123456789"`, `"11802.77325050"`, `"12345678.123456789"`, `"1.2.3"`, `"-1"`, `"1e5"`, ` "5"`, `"5`, `""`, `"0.0000000000000000001"`} {
		f.Add([]byte(s), uint8(8))
	}
	f.Fuzz(func(t *testing.T, in []byte, decimals uint8) {
		decimals %= 19
		a, b := Scanner{B: in}, Scanner{B: in}
		v, frac, ok := a.Decimal(decimals)
		var wv int64
		var wfrac int
		wok := b.Expect('"')
		if wok {
			wv, wfrac, wok = b.decimalSlow(decimals)
		}
		if ok != wok || ok && (v != wv || frac != wfrac) || a.I != b.I {
			t.Fatalf("%q at %d: Decimal %d, %d, %v at %d; digit by digit %d, %d, %v at %d",
				in, decimals, v, frac, ok, a.I, wv, wfrac, wok, b.I)
		}
	})
}
