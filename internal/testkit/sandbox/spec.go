package sandbox

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Spec is what the launcher's stages apply, derived from a unit by Host.Spec. It travels to
// the stages as a JSON file.
type Spec struct {
	Unit string

	// Stage 1: as root, in the namespaces the parent created.
	MountNS        bool
	PrivateNetwork bool
	UTSNamespace   bool
	ProtectSystem  string   // "strict" or ""
	ReadWrite      []string // rebased ReadWritePaths= and State/CacheDirectory=
	ReadOnly       []string // rebased ReadOnlyPaths=
	PrivateTmp     bool
	ProtectHome    bool
	PrivateDevices bool
	DevStaging     string // an empty folder for the private /dev while it is built
	KernelTunables bool   // ProtectKernelTunables= (and ProtectControlGroups=): /sys, /proc/sys read-only
	ProcOptions    string // ProtectProc=, ProcSubset=: options of a new /proc
	UMask          int
	NoFile         uint64 // LimitNOFILE=, 0: unchanged

	// setpriv(1)
	Setpriv []string

	// Stage 2: as the service user, right before the daemon: the seccomp filter.
	Syscalls           []string // allow list; nil: no filter
	Families           []int    // RestrictAddressFamilies=; nil: any
	Errno              int      // SystemCallErrorNumber=; 0: kill the process
	MemoryDenyWX       bool
	RestrictNamespaces bool
	RestrictSUIDSGID   bool

	Argv []string
	Env  []string
}

// Stage executables and their environment.
const (
	envStage = "CHRONICLE_SANDBOX_STAGE"
	envSpec  = "CHRONICLE_SANDBOX_SPEC"
	// EnvSeccomp=log turns the filter's default action into "log" (the kernel logs each
	// call the unit would deny, to the audit log or dmesg), to find what a daemon misses.
	EnvSeccomp = "CHRONICLE_SANDBOX_SECCOMP"
)

// entry returns the fields of the first line of a passwd or group file (colon-separated)
// that names name and has at least n fields; nil when there is none.
func entry(file, name string, n int) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Split(sc.Text(), ":"); len(fl) >= n && fl[0] == name {
			return fl, nil
		}
	}
	return nil, sc.Err()
}

// lookupID is a user's ids and home from the root's passwd file.
func lookupID(file, name string) (int, int, string, error) {
	fl, err := entry(file, name, 4)
	if err != nil {
		return 0, 0, "", err
	}
	if fl == nil {
		return 0, 0, "", fmt.Errorf("%s: no entry for %s (missing from the unit's sysusers.d?)", file, name)
	}
	id, err1 := strconv.Atoi(fl[2])
	gid, err2 := strconv.Atoi(fl[3])
	if err1 != nil || err2 != nil {
		return 0, 0, "", fmt.Errorf("%s: bad entry for %s", file, name)
	}
	home := ""
	if len(fl) >= 6 {
		home = fl[5]
	}
	return id, gid, home, nil
}

var families = map[string]int{"AF_UNIX": unix.AF_UNIX, "AF_LOCAL": unix.AF_UNIX, "AF_INET": unix.AF_INET,
	"AF_INET6": unix.AF_INET6, "AF_NETLINK": unix.AF_NETLINK, "AF_PACKET": unix.AF_PACKET}

func errnoValue(name string) (int, error) {
	for e := 1; e < 200; e++ {
		if unix.ErrnoName(unix.Errno(e)) == name {
			return e, nil
		}
	}
	return 0, fmt.Errorf("unknown errno %q", name)
}

// capName turns CAP_SYS_ADMIN into setpriv's sys_admin.
func capName(c string) string { return strings.ToLower(strings.TrimPrefix(c, "CAP_")) }

// pathWord finds absolute paths inside command words and scripts.
var pathWord = regexp.MustCompile(`/[A-Za-z0-9._@+-][A-Za-z0-9._@+/-]*`)

// Rebase maps a path of the unit to the test root when the root holds it (the unit's
// folders, binaries and configuration); other paths (/bin/sh, /sys, /usr/bin/fusermount3)
// are the machine's.
func (h *Host) Rebase(p string) string {
	if !strings.HasPrefix(p, "/") {
		return p
	}
	rp := filepath.Join(h.Root, p)
	if _, err := os.Lstat(rp); err == nil {
		return rp
	}
	return p
}

func (h *Host) rebaseWords(s string) string {
	return pathWord.ReplaceAllStringFunc(s, h.Rebase)
}

// Spec derives what the stages apply from unit u, with cmd its command to run (an entry of
// u.Commands("ExecStart")).
func (h *Host) Spec(u *Unit, cmd Command) (*Spec, error) {
	s := &Spec{Unit: u.Name, UMask: 0o022}
	get := func(k string) string { return u.Last("Service", k) }
	yes := func(k string) bool { return u.Bool("Service", k, false) }

	// The user, and what systemd creates for it.
	user, group := get("User"), get("Group")
	uid, gid, home := 0, 0, "/root"
	if user != "" && user != "root" {
		var err error
		if uid, gid, home, err = lookupID(filepath.Join(h.Root, "etc/passwd"), user); err != nil {
			return nil, err
		}
	}
	if group != "" {
		g, _, _, err := lookupGroup(filepath.Join(h.Root, "etc/group"), group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	if user != "" {
		env = append(env, "USER="+user, "LOGNAME="+user, "HOME="+h.Rebase(home), "SHELL=/usr/sbin/nologin")
	}
	for _, d := range []struct{ key, env, base string }{
		{"StateDirectory", "STATE_DIRECTORY", "/var/lib"}, {"CacheDirectory", "CACHE_DIRECTORY", "/var/cache"},
		{"RuntimeDirectory", "RUNTIME_DIRECTORY", "/run"}, {"LogsDirectory", "LOGS_DIRECTORY", "/var/log"}} {
		names := u.List("Service", d.key)
		if len(names) == 0 {
			continue
		}
		mode := os.FileMode(0o755)
		if m := get(d.key + "Mode"); m != "" {
			v, err := strconv.ParseUint(m, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("%s %sMode=%s: %w", u.Name, d.key, m, err)
			}
			mode = os.FileMode(v)
		}
		var dirs []string
		for _, n := range names {
			p := filepath.Join(h.Root, d.base, n)
			if err := os.MkdirAll(p, mode); err != nil {
				return nil, err
			}
			if err := os.Chmod(p, mode); err != nil {
				return nil, err
			}
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
			dirs = append(dirs, p)
			s.ReadWrite = append(s.ReadWrite, p)
		}
		env = append(env, d.env+"="+strings.Join(dirs, ":"))
	}
	for _, e := range u.Values("Service", "Environment") {
		for _, w := range strings.Fields(e) {
			env = append(env, strings.Trim(w, `"`))
		}
	}
	s.Env = env
	for _, a := range cmd.Argv {
		s.Argv = append(s.Argv, h.rebaseWords(a))
	}

	if cmd.Privileged {
		return s, nil // "+": none of the sandbox applies
	}

	// setpriv: identity, capabilities, no_new_privs.
	if uid != 0 || gid != 0 {
		s.Setpriv = append(s.Setpriv, "--reuid="+strconv.Itoa(uid), "--regid="+strconv.Itoa(gid), "--clear-groups")
	}
	if vals := u.Values("Service", "CapabilityBoundingSet"); len(vals) > 0 {
		set := "-all"
		for _, c := range u.List("Service", "CapabilityBoundingSet") {
			if strings.HasPrefix(c, "~") {
				return nil, fmt.Errorf("%s: inverted CapabilityBoundingSet= is not supported here", u.Name)
			}
			set += ",+" + capName(c)
		}
		s.Setpriv = append(s.Setpriv, "--bounding-set="+set)
	}
	amb := "-all"
	for _, c := range u.List("Service", "AmbientCapabilities") {
		amb += ",+" + capName(c)
	}
	s.Setpriv = append(s.Setpriv, "--inh-caps="+amb, "--ambient-caps="+amb)
	if yes("NoNewPrivileges") {
		s.Setpriv = append(s.Setpriv, "--no-new-privs")
	}

	// Namespaces and mounts.
	rebaseAll := func(key string) []string {
		var out []string
		for _, p := range u.List("Service", key) {
			out = append(out, h.Rebase(strings.TrimLeft(p, "-+")))
		}
		return out
	}
	listed := rebaseAll("ReadWritePaths")
	s.ReadWrite = append(s.ReadWrite, listed...)
	s.ReadOnly = rebaseAll("ReadOnlyPaths")
	switch ps := get("ProtectSystem"); ps {
	case "", "no", "false":
	case "strict":
		s.ProtectSystem = ps
	default:
		return nil, fmt.Errorf("%s: ProtectSystem=%s is not emulated (only strict)", u.Name, ps)
	}
	s.PrivateTmp, s.ProtectHome, s.PrivateDevices = yes("PrivateTmp"), yes("ProtectHome"), yes("PrivateDevices")
	s.KernelTunables = yes("ProtectKernelTunables") || yes("ProtectControlGroups")
	var procOpts []string
	if p := get("ProtectProc"); p != "" && p != "default" {
		procOpts = append(procOpts, "hidepid="+p)
	}
	if p := get("ProcSubset"); p == "pid" {
		procOpts = append(procOpts, "subset=pid")
	}
	s.ProcOptions = strings.Join(procOpts, ",")
	s.PrivateNetwork, s.UTSNamespace = yes("PrivateNetwork"), yes("ProtectHostname")
	// State and cache folders alone need no namespace (they are writable anyway).
	s.MountNS = s.ProtectSystem != "" || len(listed)+len(s.ReadOnly) > 0 || s.PrivateTmp || s.ProtectHome ||
		s.PrivateDevices || s.KernelTunables || s.ProcOptions != "" || yes("PrivateMounts") ||
		yes("ProtectKernelModules") || yes("ProtectKernelLogs")
	if s.PrivateDevices {
		s.DevStaging = filepath.Join(h.Root, "run/sandbox", "dev-"+u.Name)
		if err := os.MkdirAll(s.DevStaging, 0o755); err != nil {
			return nil, err
		}
	}
	if m := get("UMask"); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("%s UMask=%s: %w", u.Name, m, err)
		}
		s.UMask = int(v)
	}
	if l := get("LimitNOFILE"); l != "" {
		v, err := strconv.ParseUint(l, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s LimitNOFILE=%s: %w", u.Name, l, err)
		}
		s.NoFile = v
	}

	// The seccomp filter.
	var err error
	if s.Syscalls, err = AllowedSyscalls(u); err != nil {
		return nil, err
	}
	if fams := u.List("Service", "RestrictAddressFamilies"); len(fams) > 0 {
		s.Families = []int{}
		for _, f := range fams {
			n, ok := families[f]
			if !ok {
				return nil, fmt.Errorf("%s: address family %s is not known here", u.Name, f)
			}
			s.Families = append(s.Families, n)
		}
		sort.Ints(s.Families)
	}
	if e := get("SystemCallErrorNumber"); e != "" {
		if s.Errno, err = errnoValue(e); err != nil {
			return nil, fmt.Errorf("%s SystemCallErrorNumber=: %w", u.Name, err)
		}
	}
	s.MemoryDenyWX, s.RestrictNamespaces, s.RestrictSUIDSGID = yes("MemoryDenyWriteExecute"), yes("RestrictNamespaces"), yes("RestrictSUIDSGID")
	if a := get("SystemCallArchitectures"); a != "" && a != "native" {
		return nil, fmt.Errorf("%s: SystemCallArchitectures=%s is not emulated (only native)", u.Name, a)
	}
	return s, nil
}

// lookupGroup is a group's id from the root's group file.
func lookupGroup(file, name string) (int, int, string, error) {
	fl, err := entry(file, name, 3)
	if err != nil {
		return 0, 0, "", err
	}
	if fl == nil {
		return 0, 0, "", fmt.Errorf("%s: no group %s", file, name)
	}
	id, err := strconv.Atoi(fl[2])
	return id, id, "", err
}

func (s *Spec) write(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func readSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	return &s, json.Unmarshal(b, &s)
}
