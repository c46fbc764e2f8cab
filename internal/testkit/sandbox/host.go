package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/proc"
	"golang.org/x/sys/unix"
)

// Host is a test root laid out like a host the units are installed on: ROOT/etc/passwd
// and group with the users of deploy/sysusers.d (numbers chosen by systemd-sysusers, not
// taken on this machine), the folders of deploy/tmpfiles.d owned by them, the binaries in
// ROOT/usr/local/bin. It lives outside /tmp, which PrivateTmp= hides.
type Host struct {
	Root   string
	Deploy string // the repository's deploy/ folder
	n      int
}

// Skip skips t where the emulation cannot run: not root, or without systemd's tools.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox: needs root to build namespaces and change users")
	}
	for _, tool := range []string{"systemd-analyze", "systemd-sysusers", "systemd-tmpfiles", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("sandbox: %s is missing (Debian: systemd, util-linux; scripts/deps.sh installs them)", tool)
		}
	}
}

// NewHost lays out a test root (removed at the end of the test) from deploy's sysusers.d
// and tmpfiles.d files, and copies the binaries named (paths) into ROOT/usr/local/bin.
func NewHost(t testing.TB, deploy string, binaries ...string) *Host {
	t.Helper()
	base := os.Getenv("CHRONICLE_SANDBOX_DIR")
	if base == "" {
		base = "/var/lib"
	}
	root, err := os.MkdirTemp(base, "chronicle-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	h := &Host{Root: root, Deploy: deploy}
	for _, d := range []string{"etc/chronicle", "usr/local/bin", "usr/local/libexec", "run/sandbox", "var/lib", "var/cache"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// The machine's users stay taken, so the new ones get numbers no one here has.
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		if err := copyFile(filepath.Join("/etc", f), filepath.Join(root, "etc", f), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	run(t, "systemd-sysusers", "--root="+root, filepath.Join(deploy, "sysusers.d/chronicle.conf"))
	run(t, "systemd-tmpfiles", "--create", "--root="+root, filepath.Join(deploy, "tmpfiles.d/chronicle.conf"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, h.launcher(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range binaries {
		if err := copyFile(b, filepath.Join(root, "usr/local/bin", filepath.Base(b)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *Host) launcher() string { return filepath.Join(h.Root, "usr/local/libexec/chronicle-sandbox") }

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// copyFile hard-links src to dst when they share a file system, else copies it.
func copyFile(src, dst string, mode os.FileMode) error {
	if err := os.Link(src, dst); err == nil {
		return os.Chmod(dst, mode)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Path is p of the unit's world inside the test root.
func (h *Host) Path(p string) string { return filepath.Join(h.Root, p) }

// IDs are the user and group numbers systemd-sysusers gave name in the test root.
func (h *Host) IDs(t testing.TB, name string) (uid, gid int) {
	t.Helper()
	uid, gid, _, err := lookupID(h.Path("etc/passwd"), name)
	if err != nil {
		t.Fatal(err)
	}
	return uid, gid
}

// Unit parses deploy/NAME.
func (h *Host) Unit(t testing.TB, name string) *Unit {
	t.Helper()
	u, err := ParseUnit(filepath.Join(h.Deploy, name))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Options are what a launch adds to the unit, the way systemd's manager would.
type Options struct {
	Argv  []string   // replaces the unit's command (probes of the sandbox itself)
	Args  []string   // appended to the command line (test-only flags)
	Files []*os.File // passed as fds 3, 4... with LISTEN_FDS (socket activation)
	Names []string   // LISTEN_FDNAMES
	Env   []string   // more environment
}

// Command builds the unit's command (ExecStart=, or another Exec*= key's first entry) under
// the unit's sandbox, ready for proc.Start. Unless the command is "+", it runs through the
// two launcher stages.
func (h *Host) Command(t testing.TB, u *Unit, key string, o Options) *exec.Cmd {
	t.Helper()
	cmds, err := u.Commands(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) == 0 {
		t.Fatalf("%s has no %s=", u.Name, key)
	}
	return h.command(t, u, cmds[0], o)
}

func (h *Host) command(t testing.TB, u *Unit, c Command, o Options) *exec.Cmd {
	t.Helper()
	s, err := h.Spec(u, c)
	if err != nil {
		t.Fatal(err)
	}
	if o.Argv != nil {
		s.Argv = append([]string{}, o.Argv...)
	}
	s.Argv = append(s.Argv, o.Args...)
	s.Env = append(s.Env, o.Env...)
	if len(o.Files) > 0 {
		s.Env = append(s.Env, fmt.Sprintf("LISTEN_FDS=%d", len(o.Files)), "LISTEN_FDNAMES="+strings.Join(o.Names, ":"))
	}
	if c.Privileged {
		cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
		cmd.Env = s.Env
		cmd.ExtraFiles = o.Files
		return cmd
	}
	h.n++
	specPath := h.Path(fmt.Sprintf("run/sandbox/%s-%d.json", u.Name, h.n))
	if err := s.write(specPath); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(h.launcher())
	cmd.Env = []string{envStage + "=1", envSpec + "=" + specPath, EnvSeccomp + "=" + os.Getenv(EnvSeccomp)}
	cmd.ExtraFiles = o.Files
	var flags uintptr
	if s.MountNS {
		flags |= unix.CLONE_NEWNS
	}
	if s.PrivateNetwork {
		flags |= unix.CLONE_NEWNET
	}
	if s.UTSNamespace {
		flags |= unix.CLONE_NEWUTS
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start starts the unit's ExecStart= under its sandbox with the notify socket where the
// service user can reach it (ROOT/run), and fails the test unless it reports READY=1
// within the time given by ready (proc.Proc.Ready). The daemon's stdin is /dev/null; its
// output is kept.
func (h *Host) Start(t testing.TB, u *Unit, o Options) *proc.Proc {
	t.Helper()
	cmd := h.Command(t, u, "ExecStart", o)
	h.n++
	notify := h.Path(fmt.Sprintf("run/sandbox/notify-%d", h.n))
	return proc.StartNotify(t, cmd, notify)
}

// Post runs the unit's ExecStartPost= lines in order (after READY=1, as systemd does),
// failing the test if one fails that is not "-".
func (h *Host) Post(t testing.TB, u *Unit) {
	t.Helper()
	cmds, err := u.Commands("ExecStartPost")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		cmd := h.command(t, u, c, Options{})
		out, err := cmd.CombinedOutput()
		if err != nil && !c.IgnoreFail {
			t.Fatalf("%s ExecStartPost %q: %v\n%s", u.Name, cmd.Args, err, out)
		}
	}
}
