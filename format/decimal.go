package format

import (
	"errors"
	"fmt"
	"strconv"
)

// DefaultDecimals is the fixed-point scale for prices and quantities in canonical files:
// 8 decimals covers every Binance instrument's tick and step sizes exactly and leaves
// headroom up to 92 billion units in an int64.
const (
	DefaultDecimals = 8
	MaxDecimals     = 18
)

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// ErrDecimal: text that is not a plain decimal, or one that does not fit the fixed point.
var ErrDecimal = errors.New("invalid decimal")

// ParseDecimal parses an exchange decimal string such as "2500.12" or "-0.001" into an
// int64 scaled by 10^decimals. It is exact: digits beyond the scale must be zeros, and
// overflow is an error, never a rounding.
func ParseDecimal(s []byte, decimals uint8) (int64, error) {
	if decimals > MaxDecimals {
		return 0, fmt.Errorf("%w: scale %d above %d", ErrDecimal, decimals, MaxDecimals)
	}
	i, neg := 0, false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg, i = s[0] == '-', 1
	}
	if i == len(s) {
		return 0, fmt.Errorf("%w: %q", ErrDecimal, s)
	}
	var v uint64
	const limit = uint64(1) << 63
	digits, frac, seenDot := 0, 0, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && !seenDot:
			seenDot = true
			continue
		case c < '0' || c > '9':
			return 0, fmt.Errorf("%w: %q", ErrDecimal, s)
		}
		digits++
		if seenDot {
			frac++
			if frac > int(decimals) {
				if c != '0' {
					return 0, fmt.Errorf("%w: %q has more than %d decimals", ErrDecimal, s, decimals)
				}
				continue
			}
		}
		d := uint64(c - '0')
		if v > (limit-d)/10 { // checked before the multiplication, which could wrap
			return 0, fmt.Errorf("%w: %q overflows int64 at scale %d", ErrDecimal, s, decimals)
		}
		v = v*10 + d
	}
	if digits == 0 {
		return 0, fmt.Errorf("%w: %q", ErrDecimal, s)
	}
	if frac > int(decimals) {
		frac = int(decimals)
	}
	for ; frac < int(decimals); frac++ {
		if v > limit/10 {
			return 0, fmt.Errorf("%w: %q overflows int64 at scale %d", ErrDecimal, s, decimals)
		}
		v *= 10
	}
	if neg {
		return -int64(v), nil // v == 1<<63 wraps to MinInt64, which is exact
	}
	if v == limit {
		return 0, fmt.Errorf("%w: %q overflows int64 at scale %d", ErrDecimal, s, decimals)
	}
	return int64(v), nil
}

// FormatDecimal renders a fixed-point value with exactly decimals fractional digits.
func FormatDecimal(v int64, decimals uint8) string {
	if decimals == 0 || decimals > MaxDecimals {
		return strconv.FormatInt(v, 10)
	}
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	p := uint64(pow10[decimals])
	s := fmt.Sprintf("%d.%0*d", u/p, int(decimals), u%p)
	if neg {
		return "-" + s
	}
	return s
}
