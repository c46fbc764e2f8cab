// Package bytesize reads and prints byte counts in the units operators write ("256MiB",
// "1.5 GiB"). It is a leaf: the standard library only, so any floor may print a size.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads a byte count: a plain number or one with a KiB/MiB/GiB/TiB (or K/M/G/T)
// suffix.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a byte count such as 268435456 or 256MiB", s)
	}
	return v * mult, nil
}

// Format prints a byte count for people, in the units Parse reads ("1.5 GiB"); a
// negative count is "unknown".
func Format(n int64) string {
	const unit = 1024
	switch {
	case n < 0:
		return "unknown"
	case n < unit:
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Size is a byte count a setting holds: it reads "1GiB" or a plain byte count alike from
// a TOML file (string or integer) and from a flag (it is a pflag.Value), and prints in the
// largest unit that divides it exactly, so a flag's default reads as it would be written.
type Size int64

// String prints s as Parse reads it: "256MiB", or the plain count when no unit divides it.
func (s Size) String() string {
	n := int64(s)
	if n > 0 {
		for _, u := range []struct {
			suffix string
			m      int64
		}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
			if n%u.m == 0 {
				return fmt.Sprintf("%d%s", n/u.m, u.suffix)
			}
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses a flag's value (pflag.Value).
func (s *Size) Set(text string) error {
	v, err := Parse(text)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// Type names the value in a flag's help (pflag.Value).
func (s *Size) Type() string { return "size" }

// UnmarshalText reads a TOML value: "256MiB" or an integer byte count.
func (s *Size) UnmarshalText(b []byte) error { return s.Set(string(b)) }

// MarshalText prints s as String does.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
