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
	"strings"

	"github.com/BurntSushi/toml"
)

// Log is the [log] section.
type Log struct {
	Level  string `toml:"level" flag:"log-level" help:"debug, info, warn, error"`
	Format string `toml:"format" flag:"log-format" help:"json or text"`
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
