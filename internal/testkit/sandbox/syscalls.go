package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
)

var (
	groupsOnce sync.Once
	groups     map[string][]string
	groupsErr  error
)

// SyscallGroups are systemd's system-call groups (@system-service, @privileged...) as this
// machine's systemd defines them, read from `systemd-analyze syscall-filter`; members may
// name other groups.
func SyscallGroups() (map[string][]string, error) {
	groupsOnce.Do(func() {
		out, err := exec.Command("systemd-analyze", "syscall-filter").Output()
		if err != nil {
			groupsErr = fmt.Errorf("systemd-analyze syscall-filter: %w", err)
			return
		}
		groups = parseSyscallGroups(out)
		if len(groups["@system-service"]) == 0 {
			groupsErr = fmt.Errorf("systemd-analyze syscall-filter: no @system-service group in its output")
		}
	})
	return groups, groupsErr
}

// parseSyscallGroups reads the listing: a group's name at the start of a line, then its
// members indented below it; "#" lines are comments.
func parseSyscallGroups(out []byte) map[string][]string {
	g := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		t := strings.TrimSpace(line)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
		case line[0] != ' ' && line[0] != '\t':
			cur = t
			if !strings.HasPrefix(cur, "@") {
				cur = "" // the trailing "ungrouped" listing and the like
			}
		case cur != "":
			g[cur] = append(g[cur], t)
		}
	}
	return g
}

// expand returns the system calls of names (system calls or @groups), groups expanded.
func expand(g map[string][]string, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	seen := map[string]bool{}
	var walk func(n string) error
	walk = func(n string) error {
		if !strings.HasPrefix(n, "@") {
			out[n] = true
			return nil
		}
		if seen[n] {
			return nil
		}
		seen[n] = true
		m, ok := g[n]
		if !ok {
			return fmt.Errorf("unknown system-call group %s", n)
		}
		for _, x := range m {
			if err := walk(x); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := walk(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AllowedSyscalls is the allow list systemd builds from a unit's SystemCallFilter=
// assignments: the first assignment decides allow-list mode (no "~"), later "~" assignments
// remove, later plain ones add; @default is always allowed. Settings that imply filters
// (ProtectClock=, ProtectKernelModules=, ProtectKernelLogs=, PrivateDevices=,
// ProtectHostname=) remove their system calls too. It returns nil when the unit has no
// allow list.
func AllowedSyscalls(u *Unit) ([]string, error) {
	g, err := SyscallGroups()
	if err != nil {
		return nil, err
	}
	assigns := u.Values("Service", "SystemCallFilter")
	if len(assigns) == 0 || strings.HasPrefix(assigns[0], "~") {
		return nil, nil
	}
	allow, err := expand(g, []string{"@default"})
	if err != nil {
		return nil, err
	}
	for _, a := range assigns {
		deny := strings.HasPrefix(a, "~")
		set, err := expand(g, strings.Fields(strings.TrimPrefix(a, "~")))
		if err != nil {
			return nil, fmt.Errorf("%s SystemCallFilter=%s: %w", u.Name, a, err)
		}
		for s := range set {
			allow[s] = !deny
		}
	}
	var implied []string
	if u.Bool("Service", "ProtectClock", false) {
		implied = append(implied, "@clock")
	}
	if u.Bool("Service", "ProtectKernelModules", false) {
		implied = append(implied, "@module")
	}
	if u.Bool("Service", "ProtectKernelLogs", false) {
		implied = append(implied, "syslog")
	}
	if u.Bool("Service", "PrivateDevices", false) {
		implied = append(implied, "@raw-io")
	}
	if u.Bool("Service", "ProtectHostname", false) {
		implied = append(implied, "sethostname", "setdomainname")
	}
	deny, err := expand(g, implied)
	if err != nil {
		return nil, err
	}
	var out []string
	for s, ok := range allow {
		if ok && !deny[s] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}
