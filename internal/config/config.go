// Package config loads the one TOML file shared by every Chronicle daemon. Each daemon
// decodes the sections it needs ([tiers], [remote], [log] and its own: [feed], [etl],
// [tier], [fs]) and ignores the others; an unknown key inside a section it reads is an error,
// so a typo never silently falls back to a default. Flags override the file.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Log is the [log] section.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // json or text
}

// DefaultLog logs info and above as JSON.
func DefaultLog() Log { return Log{Level: "info", Format: "json"} }

// Validate checks the level and the format, naming the key.
func (l Log) Validate() error {
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("[log] level %q: want debug, info, warn or error", l.Level)
	}
	switch strings.ToLower(l.Format) {
	case "json", "text", "":
	default:
		return fmt.Errorf("[log] format %q: want json or text", l.Format)
	}
	return nil
}

// Load decodes the named sections of the TOML file at path into the given pointers, which
// should already hold their defaults. An empty path loads nothing.
func Load(path string, sections map[string]any) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(string(b), path, sections)
}

// Decode is Load on a string (name labels errors).
func Decode(text, name string, sections map[string]any) error {
	var raw map[string]toml.Primitive
	md, err := toml.Decode(text, &raw)
	if err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	var errs []error
	for sec, dst := range sections {
		prim, ok := raw[sec]
		if !ok {
			continue
		}
		if err := md.PrimitiveDecode(prim, dst); err != nil {
			errs = append(errs, fmt.Errorf("config %s: [%s]: %w", name, sec, err))
		}
	}
	// Undecoded keys inside sections this daemon owns are typos.
	var unknown []string
	for _, k := range md.Undecoded() {
		if len(k) > 1 {
			if _, mine := sections[k[0]]; mine {
				unknown = append(unknown, k.String())
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs = append(errs, fmt.Errorf("config %s: unknown keys: %s", name, strings.Join(unknown, ", ")))
	}
	return errors.Join(errs...)
}

// ParseSize reads a byte count: a plain number or one with a KiB/MiB/GiB/TiB (or K/M/G/T)
// suffix.
func ParseSize(s string) (int64, error) {
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

// FormatSize prints a byte count for people, in the units ParseSize reads ("1.5 GiB");
// a negative count is "unknown".
func FormatSize(n int64) string {
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
