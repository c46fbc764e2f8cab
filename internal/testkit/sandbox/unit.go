// Package sandbox starts a daemon the way systemd would start it from a unit file in deploy/,
// on machines where PID 1 is not systemd: it reads the unit's sandbox settings and applies
// them itself (a mount namespace emulating ProtectSystem=, ProtectHome=, PrivateTmp=,
// PrivateDevices=, ReadWritePaths=...; a network namespace for PrivateNetwork=; the unit's
// user, capability sets and no_new_privs through setpriv(1); a seccomp filter built from
// SystemCallFilter=, SystemCallArchitectures=, RestrictAddressFamilies=,
// MemoryDenyWriteExecute=, RestrictNamespaces= and RestrictSUIDSGID=). The settings are
// never repeated in tests: change the unit and the test follows. docs/reliability.md lists
// what only systemd itself can apply.
//
// Paths in a unit are rebased under a test root (Host.Root), laid out by the unit's own
// sysusers.d and tmpfiles.d files, so /dev/shm/chronicle becomes ROOT/dev/shm/chronicle.
package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Unit is a parsed systemd unit file: per section, each key's assignments in order.
type Unit struct {
	Path string
	Name string // file name, e.g. chronicle-feed.service
	sec  map[string]map[string][]string
}

// ParseUnit reads a unit file (systemd.syntax(7)): sections, Key=value lines, comments
// (# and ;), and lines continued by a trailing backslash.
func ParseUnit(path string) (*Unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &Unit{Path: path, Name: baseName(path), sec: map[string]map[string][]string{}}
	sc := bufio.NewScanner(f)
	section, cont, lineNo := "", "", 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if cont == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cont += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, cont = cont+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u.sec[section] == nil {
				u.sec[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("%s:%d: not a Key=value line in a section: %q", path, lineNo, line)
		}
		k = strings.TrimSpace(k)
		u.sec[section][k] = append(u.sec[section][k], strings.TrimSpace(v))
	}
	return u, sc.Err()
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Values are every assignment of key in section, in order.
func (u *Unit) Values(section, key string) []string { return u.sec[section][key] }

// Last is the last assignment of key ("" if none): for single-valued settings.
func (u *Unit) Last(section, key string) string {
	v := u.sec[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// List is a space-separated list setting: each assignment appends, an empty one resets.
func (u *Unit) List(section, key string) []string {
	var out []string
	for _, v := range u.sec[section][key] {
		if v == "" {
			out = nil
			continue
		}
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// Bool is a boolean setting (yes/true/on/1); def when unset.
func (u *Unit) Bool(section, key string, def bool) bool {
	switch strings.ToLower(u.Last(section, key)) {
	case "":
		return def
	case "1", "yes", "true", "on":
		return true
	}
	return false
}

// Command is one Exec*= line: its prefixes and its words, quotes removed and $$ unescaped.
type Command struct {
	Privileged bool // "+": run with full privileges, outside the sandbox
	IgnoreFail bool // "-": a failure is ignored
	Argv       []string
}

// Commands parses every assignment of an Exec*= key of [Service].
func (u *Unit) Commands(key string) ([]Command, error) {
	var out []Command
	for _, v := range u.Values("Service", key) {
		if v == "" {
			out = nil
			continue
		}
		c, err := parseCommand(v)
		if err != nil {
			return nil, fmt.Errorf("%s %s=%s: %w", u.Name, key, v, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseCommand(s string) (Command, error) {
	var c Command
	for len(s) > 0 && strings.ContainsRune("@-:+!", rune(s[0])) {
		switch s[0] {
		case '+':
			c.Privileged = true
		case '-':
			c.IgnoreFail = true
		case '@', ':', '!':
			return c, fmt.Errorf("prefix %q is not supported here", s[0])
		}
		s = s[1:]
	}
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quote  byte
	)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0 && ch == quote:
			quote = 0
		case quote == 0 && (ch == '\'' || ch == '"'):
			quote, inWord = ch, true
		case quote == 0 && (ch == ' ' || ch == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\\' && quote != '\'' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == '$' && i+1 < len(s) && s[i+1] == '$':
			cur.WriteByte('$')
			i++
			inWord = true
		case ch == '$':
			return c, fmt.Errorf("environment variable expansion is not supported here")
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return c, fmt.Errorf("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return c, fmt.Errorf("empty command")
	}
	c.Argv = words
	return c, nil
}
