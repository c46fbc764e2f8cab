package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func writeUnit(t *testing.T, text string) *Unit {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.service")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := ParseUnit(p)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseUnit(t *testing.T) {
	u := writeUnit(t, `# comment
[Service]
; another
ReadWritePaths=/a /b
ReadWritePaths=/c
CapabilityBoundingSet=CAP_SYS_ADMIN
CapabilityBoundingSet=
ExecStart=+/bin/sh -c 'echo $$(id -u) "a b"' x\
  y
NoNewPrivileges=yes
`)
	if got := u.List("Service", "ReadWritePaths"); !slices.Equal(got, []string{"/a", "/b", "/c"}) {
		t.Errorf("ReadWritePaths %q", got)
	}
	if got := u.List("Service", "CapabilityBoundingSet"); got != nil {
		t.Errorf("an empty assignment resets a list: %q", got)
	}
	cmds, err := u.Commands("ExecStart")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/sh", "-c", `echo $(id -u) "a b"`, "x", "y"}; len(cmds) != 1 || !cmds[0].Privileged || !slices.Equal(cmds[0].Argv, want) {
		t.Errorf("ExecStart %+v, want + and %q", cmds, want)
	}
	if !u.Bool("Service", "NoNewPrivileges", false) || u.Bool("Service", "PrivateTmp", false) {
		t.Error("booleans")
	}
	if _, err := parseCommand("/bin/x $HOME"); err == nil {
		t.Error("a variable expansion the launcher cannot do must be refused, not passed on")
	}
	if _, err := ParseUnit(writeUnitPath(t, "[Service]\nnot a setting\n")); err == nil {
		t.Error("a line that is not Key=value must be an error")
	}
}

func writeUnitPath(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "y.service")
	os.WriteFile(p, []byte(text), 0o644)
	return p
}

// TestAllowedSyscalls: allow list, later removals, @default, and what other settings imply.
func TestAllowedSyscalls(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is missing (scripts/deps.sh installs Debian's systemd)")
	}
	u := writeUnit(t, `[Service]
SystemCallFilter=@system-service mount
SystemCallFilter=~@privileged @resources
ProtectClock=yes
`)
	got, err := AllowedSyscalls(u)
	if err != nil {
		t.Fatal(err)
	}
	has := func(s string) bool { return slices.Contains(got, s) }
	for _, s := range []string{"read", "openat", "execve", "exit_group", "mount", "clone"} {
		if !has(s) {
			t.Errorf("%s is not allowed", s)
		}
	}
	for _, s := range []string{"setuid", "chown", "setrlimit", "settimeofday", "clock_settime", "umount2", "reboot"} {
		if has(s) {
			t.Errorf("%s is allowed", s)
		}
	}
	if l, _ := AllowedSyscalls(writeUnit(t, "[Service]\nSystemCallFilter=~@mount\n")); l != nil {
		t.Errorf("a deny-only filter has no allow list: %d calls", len(l))
	}
}
