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
