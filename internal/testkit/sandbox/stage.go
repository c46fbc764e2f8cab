package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Main runs a launcher stage when this process was started as one (the test binary is its
// own launcher); it returns at once otherwise. Call it first in TestMain.
func Main() {
	stage := os.Getenv(envStage)
	if stage == "" {
		return
	}
	s, err := readSpec(os.Getenv(envSpec))
	if err == nil {
		switch stage {
		case "1":
			err = stage1(s)
		case "2":
			err = stage2(s)
		default:
			err = fmt.Errorf("unknown stage %q", stage)
		}
	}
	fmt.Fprintf(os.Stderr, "sandbox stage %s of %s: %v\n", stage, os.Getenv(envSpec), err)
	os.Exit(126)
}

// stage1 runs as root inside the namespaces the parent made: it builds the unit's view of
// the file system, then hands over to setpriv, which becomes the service user and execs
// stage 2.
func stage1(s *Spec) error {
	if s.MountNS {
		if err := setupMounts(s); err != nil {
			return err
		}
	}
	if s.PrivateNetwork {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bring up lo: %w", err)
		}
	}
	unix.Umask(s.UMask)
	if s.NoFile > 0 {
		lim := unix.Rlimit{Cur: s.NoFile, Max: s.NoFile}
		err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		if err == unix.EPERM {
			// Without CAP_SYS_RESOURCE (some containers) the hard limit cannot rise: keep
			// the machine's where the unit asks for more.
			var cur unix.Rlimit
			if unix.Getrlimit(unix.RLIMIT_NOFILE, &cur) == nil && cur.Max < lim.Max {
				lim = unix.Rlimit{Cur: cur.Max, Max: cur.Max}
			}
			err = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		}
		if err != nil {
			return fmt.Errorf("LimitNOFILE: %w", err)
		}
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{"setpriv"}, s.Setpriv...)
	argv = append(argv, "--", self)
	env := []string{envStage + "=2", envSpec + "=" + os.Getenv(envSpec), EnvSeccomp + "=" + os.Getenv(EnvSeccomp),
		"NOTIFY_SOCKET=" + os.Getenv("NOTIFY_SOCKET")}
	return syscall.Exec(setprivPath, argv, env)
}

// setprivPath is util-linux's setpriv (Debian keeps it in /usr/bin).
const setprivPath = "/usr/bin/setpriv"

// stage2 runs as the service user with its capabilities and no_new_privs: it installs the
// seccomp filter and execs the daemon, as systemd does last before execve.
func stage2(s *Spec) error {
	env := s.Env
	if n := os.Getenv("NOTIFY_SOCKET"); n != "" { // the service manager's, as systemd sets it
		env = append(env, "NOTIFY_SOCKET="+n)
	}
	for _, e := range env {
		if strings.HasPrefix(e, "LISTEN_FDS=") {
			env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
			break
		}
	}
	if err := loadFilter(s); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return syscall.Exec(s.Argv[0], s.Argv, env)
}

// setupMounts emulates systemd's file-system namespacing in this (new) mount namespace.
func setupMounts(s *Spec) error {
	mount := func(src, dst, fstype string, flags uintptr, data string) error {
		if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
			return fmt.Errorf("mount %s on %s (%s): %w", src, dst, fstype, err)
		}
		return nil
	}
	// Nothing done here reaches the host; the host's later mounts still come in.
	if err := mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	if s.ProcOptions != "" {
		if err := mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, s.ProcOptions); err != nil {
			return err
		}
	}
	if s.PrivateDevices {
		if err := privateDev(s.DevStaging, mount); err != nil {
			return err
		}
	}
	// Each listed path becomes a mount of its own, so its mode can differ from its parent's.
	binds := append(append([]string{}, s.ReadWrite...), s.ReadOnly...)
	sort.Slice(binds, func(i, j int) bool { return len(binds[i]) < len(binds[j]) }) // parents first
	for _, p := range binds {
		if err := mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
	}
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	under := func(p string, roots ...string) bool {
		for _, r := range roots {
			if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, "/")+"/") {
				return true
			}
		}
		return false
	}
	readOnly := func(skipAPI bool, roots ...string) error {
		for _, m := range mounts {
			if !under(m.dir, roots...) || under(m.dir, s.ReadWrite...) || (skipAPI && under(m.dir, "/dev", "/proc", "/sys")) {
				continue
			}
			err := unix.Mount("", m.dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|m.flags, "")
			if err != nil && slices.Contains(roots, m.dir) {
				return fmt.Errorf("remount %s read-only: %w", m.dir, err)
			}
		}
		return nil
	}
	if s.ProtectSystem == "strict" {
		// All but the API file systems, which PrivateDevices= and ProtectKernelTunables=
		// cover.
		if err := readOnly(true, "/"); err != nil {
			return err
		}
	}
	if err := readOnly(false, s.ReadOnly...); err != nil {
		return err
	}
	if s.KernelTunables {
		for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
			if _, err := os.Stat(p); err == nil {
				if err := mount(p, p, "", unix.MS_BIND, ""); err != nil {
					return err
				}
				mounts = append(mounts, mountPoint{dir: p})
			}
		}
		if err := readOnly(false, "/sys", "/proc/sys", "/proc/sysrq-trigger"); err != nil {
			return err
		}
	}
	if s.PrivateTmp {
		for _, p := range []string{"/tmp", "/var/tmp"} {
			if err := mount("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
				return err
			}
		}
	}
	if s.ProtectHome {
		for _, p := range []string{"/home", "/root", "/run/user"} {
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if err := mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=000"); err != nil {
				return err
			}
		}
	}
	return nil
}

// privateDev builds a /dev with only the API devices (null, zero, full, random, urandom,
// tty), pts and the host's shared memory, and moves it over /dev.
func privateDev(staging string, mount func(string, string, string, uintptr, string) error) error {
	if err := mount("tmpfs", staging, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755"); err != nil {
		return err
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(staging, n)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := mount("/dev/"+n, p, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if _, err := os.Stat("/dev/" + d); err != nil {
			continue
		}
		p := filepath.Join(staging, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		if err := mount("/dev/"+d, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		if err := os.Symlink(target, filepath.Join(staging, name)); err != nil {
			return err
		}
	}
	return mount(staging, "/dev", "", unix.MS_MOVE, "")
}

type mountPoint struct {
	dir   string
	flags uintptr // per-mount flags to keep on a read-only remount
}

// mountPoints lists this namespace's mounts from /proc/self/mountinfo.
func mountPoints() ([]mountPoint, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountPoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fl := strings.Split(sc.Text(), " ")
		if len(fl) < 6 {
			continue
		}
		m := mountPoint{dir: unescape(fl[4])}
		for _, o := range strings.Split(fl[5], ",") {
			switch o {
			case "nosuid":
				m.flags |= unix.MS_NOSUID
			case "nodev":
				m.flags |= unix.MS_NODEV
			case "noexec":
				m.flags |= unix.MS_NOEXEC
			case "noatime":
				m.flags |= unix.MS_NOATIME
			case "nodiratime":
				m.flags |= unix.MS_NODIRATIME
			case "relatime":
				m.flags |= unix.MS_RELATIME
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// loopbackUp brings up lo in a new network namespace, as systemd does for PrivateNetwork=.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
