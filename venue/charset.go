package venue

// A Charset is the bytes a venue allows in a name it checks (symbols, pairs, channels,
// stream suffixes): one table lookup a byte.
type Charset [256]bool

// NewCharset allows the bytes of the ranges (pairs of first and last byte: "AZ09" is
// capitals and digits) and the single bytes of singles.
func NewCharset(ranges, singles string) *Charset {
	var c Charset
	for i := 0; i+1 < len(ranges); i += 2 {
		for b := int(ranges[i]); b <= int(ranges[i+1]); b++ {
			c[b] = true
		}
	}
	for i := 0; i < len(singles); i++ {
		c[singles[i]] = true
	}
	return &c
}

// Valid: s is 1 to max bytes long and every byte is allowed.
func (c *Charset) Valid(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !c[s[i]] {
			return false
		}
	}
	return true
}
