package config

import (
	"fmt"
	"os"
	"strings"
)

// Host is the [host] section, read by every daemon of a capture host: the host's stable
// id. It names the host in meta.json (source.host), in the journal's connect records, in
// the claims and stubs of its uploads, and in the bucket key of a partition it uploads
// when another host holds the key (hosts/{id}). Two hosts must never share one.
type Host struct {
	ID string `toml:"id" flag:"host-id" help:"this host's id (default the hostname)"`
}

// How a host id was set (meta.json source.host.from).
const (
	HostFromConfig   = "config"   // [host] id, or a --host-id flag
	HostFromHostname = "hostname" // the machine's name, none being configured
)

// ResolveHost returns the host id to use and where it came from: id when set (it must be
// a valid host id), else the machine's hostname, lowercased, with characters a host id
// cannot hold replaced by '-'.
func ResolveHost(id string) (string, string, error) {
	if id != "" {
		if !ValidHostID(id) {
			return "", "", fmt.Errorf("[host] id %q: want 1-64 of a-z 0-9 '-' '_' '.', not starting with '.'", id)
		}
		return id, HostFromConfig, nil
	}
	name, err := os.Hostname()
	if err != nil {
		return "", "", fmt.Errorf("no [host] id set and no hostname: %w", err)
	}
	h := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, name)
	h = strings.TrimLeft(h, ".")
	if len(h) > 64 {
		h = h[:64]
	}
	if !ValidHostID(h) {
		return "", "", fmt.Errorf("no [host] id set and hostname %q makes no host id: set [host] id", name)
	}
	return h, HostFromHostname, nil
}

// ValidHostID reports whether s can be a host id: 1-64 bytes of lowercase letters,
// digits, '-', '_' and '.', not starting with '.' (layout.ValidName's rule: an id is a
// component of bucket keys).
func ValidHostID(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
