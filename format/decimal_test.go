package format

import (
	"errors"
	"testing"
)

func TestParseDecimal(t *testing.T) {
	good := []struct {
		s   string
		dec uint8
		v   int64
	}{
		{"2500.12", 8, 250012000000},
		{"0.001", 8, 100000},
		{"-1.5", 2, -150},
		{"+7", 0, 7},
		{"3.1000", 2, 310},
		{"92233720368.54775807", 8, 9223372036854775807},
		{"-92233720368.54775808", 8, -9223372036854775808},
		{".5", 1, 5},
		{"5.", 1, 50},
	}
	for _, c := range good {
		v, err := ParseDecimal([]byte(c.s), c.dec)
		if err != nil || v != c.v {
			t.Errorf("%q@%d = %d, %v; want %d", c.s, c.dec, v, err, c.v)
		}
	}
	bad := []struct {
		s   string
		dec uint8
	}{
		{"", 8}, {"-", 8}, {".", 8}, {"1.2.3", 8}, {"1e5", 8}, {"0.123", 2}, {"92233720368.54775808", 8}, {"99999999999999999999", 0}, {"200000000000.00000000", 8}, {"184467440737.09551616", 8}, {"-200000000000", 8}, {"1", 19},
	}
	for _, c := range bad {
		if v, err := ParseDecimal([]byte(c.s), c.dec); !errors.Is(err, ErrDecimal) {
			t.Errorf("%q@%d = %d, %v; want ErrDecimal", c.s, c.dec, v, err)
		}
	}
	if s := FormatDecimal(-150, 2); s != "-1.50" {
		t.Errorf("format: %s", s)
	}
	if s := FormatDecimal(250012000000, 8); s != "2500.12000000" {
		t.Errorf("format: %s", s)
	}
}
