package binance

import (
	"bytes"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/venue"
)

// A minimal JSON scanner: enough to walk one object's members, take string and integer
// values, and skip anything else without allocating. It reads only as far as the feed
// needs; the ETL validates whole messages.

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(field string, err error) error {
	return fault.Field(min(s.i, len(s.b)), field, err)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// expect consumes byte c after optional whitespace.
func (s *scanner) expect(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string and returns its raw bytes between the quotes; esc reports escapes.
func (s *scanner) str() (raw []byte, esc bool, ok bool) {
	if !s.expect('"') {
		return nil, false, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, esc, true
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			esc = true
			s.i += 2
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

// int reads a JSON integer into an int64; fractions, exponents and overflow are rejected.
func (s *scanner) int() (int64, bool) {
	s.ws()
	neg := false
	if s.i < len(s.b) && s.b[s.i] == '-' {
		neg = true
		s.i++
	}
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if v > (1<<63-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
		s.i++
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// skip passes over one value of any type, checking bracket balance and string syntax
// (not number or literal syntax: that is the ETL's business).
func (s *scanner) skip() bool {
	depth := 0
	for {
		c := s.peek()
		switch c {
		case 0:
			return false
		case '"':
			if _, _, ok := s.str(); !ok {
				return false
			}
		case '{', '[':
			depth++
			s.i++
			continue
		case '}', ']':
			if depth == 0 {
				return false
			}
			depth--
			s.i++
		case ',', ':':
			if depth == 0 {
				return false
			}
			s.i++
			continue
		default:
			// number or literal: run to the next delimiter
			start := s.i
			for s.i < len(s.b) {
				d := s.b[s.i]
				if d == ',' || d == '}' || d == ']' || d == ' ' || d == '\t' || d == '\n' || d == '\r' || d == ':' {
					break
				}
				if d == '"' || d == '{' || d == '[' {
					return false
				}
				s.i++
			}
			if s.i == start {
				return false
			}
		}
		if depth == 0 {
			return true
		}
	}
}

// members walks an object's members, calling fn with each key (raw bytes) positioned at
// the value. fn must consume the value and returns stop=true to end the walk early.
func (s *scanner) members(fn func(key []byte) (stop bool, err error)) error {
	if !s.expect('{') {
		return s.fail("", venue.ErrSyntax)
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		key, _, ok := s.str()
		if !ok {
			return s.fail("", venue.ErrSyntax)
		}
		if !s.expect(':') {
			return s.fail(string(key), venue.ErrSyntax)
		}
		stop, err := fn(key)
		if err != nil || stop {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("", venue.ErrSyntax)
		}
	}
}

// other passes over the value of a member the decoder does not read.
func (s *scanner) other(key []byte) error {
	if !s.value(1) {
		return s.fail(string(key), venue.ErrSyntax)
	}
	return nil
}

// whole returns the error of a walk over a whole message, or a syntax error when bytes
// follow the message.
func (s *scanner) whole(err error) error {
	if err == nil && !s.end() {
		return s.fail("", venue.ErrSyntax)
	}
	return err
}

// boolean reads true or false.
func (s *scanner) boolean() (bool, bool) {
	s.ws()
	switch {
	case bytes.HasPrefix(s.b[s.i:], litTrue):
		s.i += len(litTrue)
		return true, true
	case bytes.HasPrefix(s.b[s.i:], litFalse):
		s.i += len(litFalse)
		return false, true
	}
	return false, false
}

var litTrue, litFalse = []byte("true"), []byte("false")

// maxDepth bounds the nesting of values the decoder validates, so that hostile input
// cannot exhaust the stack.
const maxDepth = 64

// value passes over one JSON value, checking its whole grammar (strings and their
// escapes, numbers, literals, nesting): the refinery's decoder accepts only valid JSON,
// also in members it does not read.
func (s *scanner) value(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		return s.strictStr()
	case c == '{' || c == '[':
		return s.container(c == '{', depth)
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal(litTrue)
	case c == 'f':
		return s.literal(litFalse)
	case c == 'n':
		return s.literal(litNull)
	}
	return false
}

// container passes over an object (obj) or an array at s.i, its items included.
func (s *scanner) container(obj bool, depth int) bool {
	end := byte(']')
	if obj {
		end = '}'
	}
	s.i++
	if s.peek() == end {
		s.i++
		return true
	}
	for {
		if obj {
			s.ws()
			if !s.strictStr() || !s.expect(':') {
				return false
			}
		}
		if !s.value(depth + 1) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case end:
			s.i++
			return true
		default:
			return false
		}
	}
}

var litNull = []byte("null")

func (s *scanner) literal(l []byte) bool {
	if bytes.HasPrefix(s.b[s.i:], l) {
		s.i += len(l)
		return true
	}
	return false
}

// number checks a JSON number (venue.SkipNumber).
func (s *scanner) number() bool {
	i, ok := venue.SkipNumber(s.b, s.i)
	if ok {
		s.i = i
	}
	return ok
}

// strictStr passes over a string, checking its escapes and that it holds no raw control
// characters.
func (s *scanner) strictStr() bool {
	if !s.expect('"') {
		return false
	}
	b := s.b
	for s.i < len(b) {
		c := b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			if s.i+1 >= len(b) {
				return false
			}
			switch b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(b) {
					return false
				}
				for _, h := range b[s.i+2 : s.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			s.i++
		}
	}
	return false
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}
