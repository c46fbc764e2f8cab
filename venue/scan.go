package venue

import (
	"bytes"
	"encoding/binary"

	"github.com/chronicle/chronicle/fault"
)

// Scanner walks JSON without allocating, for venue decoders: objects and arrays member by
// member (no callbacks), strings as raw bytes, integers, exact decimals, and any other
// value passed over with its whole grammar checked (strings and escapes, numbers,
// literals, nesting to MaxDepth), so a decoder accepts only valid JSON, also in the parts
// it does not read. Errors are *fault.Error at the scanner's offset.
type Scanner struct {
	B []byte
	I int
}

// MaxDepth bounds the nesting a Scanner passes over, so hostile input cannot exhaust the
// stack.
const MaxDepth = 64

// Fail returns the error for field at the current offset.
func (s *Scanner) Fail(field string, err error) error {
	return fault.Field(min(s.I, len(s.B)), field, err)
}

// WS skips whitespace.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Peek returns the next non-space byte, or 0 at the end.
func (s *Scanner) Peek() byte {
	s.WS()
	if s.I < len(s.B) {
		return s.B[s.I]
	}
	return 0
}

// Expect consumes c after optional whitespace.
func (s *Scanner) Expect(c byte) bool {
	if s.Peek() == c && s.I < len(s.B) {
		s.I++
		return true
	}
	return false
}

// Close consumes c (a closing bracket) if it comes next: an empty object or array.
func (s *Scanner) Close(c byte) bool { return s.Expect(c) }

// More is called after a member or element: it consumes a comma (more=true) or the
// closing bracket end (more=false); anything else is not JSON (ok=false).
func (s *Scanner) More(end byte) (more, ok bool) {
	switch s.Peek() {
	case ',':
		s.I++
		return true, true
	case end:
		s.I++
		return false, true
	}
	return false, false
}

// Key reads an object member's key and its colon. Keys with escapes are refused: no venue
// escapes its keys, and reading them raw would misname the member.
func (s *Scanner) Key() ([]byte, bool) {
	raw, esc, ok := s.Str()
	if !ok || esc || !s.Expect(':') {
		return nil, false
	}
	return raw, true
}

// Str reads a string and returns its raw bytes between the quotes; esc reports escapes
// (checked for validity).
func (s *Scanner) Str() (raw []byte, esc bool, ok bool) {
	if !s.Expect('"') {
		return nil, false, false
	}
	start := s.I
	b := s.B
	for s.I < len(b) {
		c := b[s.I]
		switch {
		case c == '"':
			raw = b[start:s.I]
			s.I++
			return raw, esc, true
		case c == '\\':
			if !s.escape() {
				return nil, false, false
			}
			esc = true
		case c < 0x20:
			return nil, false, false
		default:
			s.I++
		}
	}
	return nil, false, false
}

// escape passes over one escape sequence at s.I.
func (s *Scanner) escape() bool {
	b := s.B
	if s.I+1 >= len(b) {
		return false
	}
	switch b[s.I+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.I += 2
		return true
	case 'u':
		if s.I+6 > len(b) {
			return false
		}
		for _, h := range b[s.I+2 : s.I+6] {
			if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
				return false
			}
		}
		s.I += 6
		return true
	}
	return false
}

// Int reads a JSON integer; fractions, exponents, leading zeros and overflow are refused.
func (s *Scanner) Int() (int64, bool) {
	s.WS()
	neg := false
	if s.I < len(s.B) && s.B[s.I] == '-' {
		neg = true
		s.I++
	}
	v, ok := s.digits(len(s.B))
	if !ok {
		return 0, false
	}
	if s.I < len(s.B) {
		switch s.B[s.I] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		return -v, true
	}
	return v, true
}

// digits reads [0-9]+ up to end as a non-negative int64 without leading zeros.
func (s *Scanner) digits(end int) (int64, bool) {
	start := s.I
	var v int64
	for s.I < end && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		d := int64(s.B[s.I] - '0')
		if v > (1<<63-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
		s.I++
	}
	n := s.I - start
	if n == 0 || (n > 1 && s.B[start] == '0') {
		return 0, false
	}
	return v, true
}

// QuotedInt reads an integer written as a JSON string ("1652459225464"), as OKX and Kraken
// send ids and times.
func (s *Scanner) QuotedInt() (int64, bool) {
	if !s.Expect('"') {
		return 0, false
	}
	end := bytes.IndexByte(s.B[s.I:], '"')
	if end < 0 {
		return 0, false
	}
	end += s.I
	v, ok := s.digits(end)
	if !ok || s.I != end {
		return 0, false
	}
	s.I++
	return v, true
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// Pow10 returns 10^n for 0 <= n <= 18.
func Pow10(n int) int64 { return pow10[n] }

// Decimal reads an exact non-negative decimal written as a JSON string ("30238.8",
// "0.00000500") at scale decimals: digits, at most one point with digits on both sides,
// no sign, no exponent. Fraction digits beyond the scale must be zeros (the value is
// exact at the scale); frac is the number of fraction digits as written. The scaled value
// must fit an int64.
func (s *Scanner) Decimal(decimals uint8) (v int64, frac int, ok bool) {
	if s.I < len(s.B) && s.B[s.I] == '"' {
		s.I++
	} else if !s.Expect('"') {
		return 0, 0, false
	}
	// The usual case in one pass over each run of digits: an integer part, a fraction,
	// at most 18 digits kept (no overflow to check) and a scale pow10 holds. Anything
	// else goes digit by digit below, which decides and fails the same way
	// (FuzzDecimal checks the two agree).
	b, i := s.B, s.I
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		if !digits8(w) {
			break
		}
		v = v*1e8 + int64(combine8(w))
		i += 8
	}
	for i < len(b) && b[i]-'0' < 10 {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	nd := i - s.I
	if nd > 0 && nd <= 18 && int(decimals) < len(pow10) && i < len(b) {
		used := 0
		if b[i] == '.' {
			i++
			fs := i
			for i+8 <= len(b) && i-fs+8 <= int(decimals) {
				w := binary.LittleEndian.Uint64(b[i:])
				if !digits8(w) {
					break
				}
				v = v*1e8 + int64(combine8(w))
				i += 8
			}
			for i < len(b) && b[i]-'0' < 10 && i-fs < int(decimals) {
				v = v*10 + int64(b[i]-'0')
				i++
			}
			used = i - fs
			for i < len(b) && b[i] == '0' {
				i++ // zeros past the scale
			}
			frac = i - fs
		}
		if i < len(b) && b[i] == '"' && (frac > 0 || b[i-1] != '.') && nd+used <= 18 {
			mul := pow10[int(decimals)-used]
			if v <= (1<<63-1)/mul {
				s.I = i + 1
				return v * mul, frac, true
			}
		}
	}
	return s.decimalSlow(decimals)
}

// digits8 reports whether the eight bytes of w (little-endian) are all ASCII digits.
func digits8(w uint64) bool {
	const lo, six = 0x3030303030303030, 0x0606060606060606
	return w&0xF0F0F0F0F0F0F0F0 == lo && (w+six)&0xF0F0F0F0F0F0F0F0 == lo
}

// combine8 is the value of eight ASCII digits (digits8), the first byte the most
// significant: pairs, then fours, then the eight combined by multiplications.
func combine8(w uint64) uint64 {
	w -= 0x3030303030303030
	w = (w*10 + w>>8) & 0x00FF00FF00FF00FF
	w = (w*100 + w>>16) & 0x0000FFFF0000FFFF
	return (w*10000 + w>>32) & 0xFFFFFFFF
}

// decimalSlow is Decimal digit by digit, after the opening quote.
func (s *Scanner) decimalSlow(decimals uint8) (v int64, frac int, ok bool) {
	b := s.B
	i := s.I
	digits := 0
	frac = -1
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			if frac >= 0 {
				frac++
				if frac > int(decimals) {
					if c != '0' {
						return 0, 0, false // finer than the scale
					}
					continue
				}
			}
			if v > (1<<63-1-int64(c-'0'))/10 {
				return 0, 0, false
			}
			v = v*10 + int64(c-'0')
			digits++
		case c == '.' && frac < 0 && digits > 0:
			frac = 0
		case c == '"':
			if digits == 0 || frac == 0 {
				return 0, 0, false
			}
			if frac < 0 {
				frac = 0
			}
			used := min(frac, int(decimals))
			mul := pow10[int(decimals)-used]
			if v > (1<<63-1)/mul {
				return 0, 0, false
			}
			s.I = i + 1
			return v * mul, frac, true
		default:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// Skip passes over one value of any type, checking its whole grammar.
func (s *Scanner) Skip() bool { return s.value(1) }

func (s *Scanner) value(depth int) bool {
	if depth > MaxDepth {
		return false
	}
	switch c := s.Peek(); {
	case c == '"':
		_, _, ok := s.Str()
		return ok
	case c == '{' || c == '[':
		return s.container(c == '{', depth)
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *Scanner) container(obj bool, depth int) bool {
	end := byte(']')
	if obj {
		end = '}'
	}
	s.I++
	if s.Close(end) {
		return true
	}
	for {
		if obj {
			if _, _, ok := s.Str(); !ok || !s.Expect(':') {
				return false
			}
		}
		if !s.value(depth + 1) {
			return false
		}
		more, ok := s.More(end)
		if !ok {
			return false
		}
		if !more {
			return true
		}
	}
}

func (s *Scanner) literal(l string) bool {
	if len(s.B)-s.I >= len(l) && string(s.B[s.I:s.I+len(l)]) == l {
		s.I += len(l)
		return true
	}
	return false
}

// number passes over a JSON number.
func (s *Scanner) number() bool {
	i, ok := SkipNumber(s.B, s.I)
	if ok {
		s.I = i
	}
	return ok
}

// SkipNumber returns the end of the JSON number -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// that starts at b[i], and false when none does: the grammar every venue's scanner checks.
func SkipNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	run := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	if n := run(); n == 0 || (n > 1 && b[start] == '0') {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if run() == 0 {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if run() == 0 {
			return i, false
		}
	}
	return i, true
}

// End reports whether only whitespace is left.
func (s *Scanner) End() bool {
	s.WS()
	return s.I == len(s.B)
}
