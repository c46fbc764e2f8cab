package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// PeakRSS is a process's peak resident set (VmHWM of /proc/PID/status), in bytes.
func PeakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status: VmHWM %q: %v", pid, v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status: no VmHWM", pid)
	return 0
}

// DropCaches writes back dirty pages and drops the kernel's page, dentry and inode
// caches (root only): a benchmark's cold read starts from the device or the network.
func DropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200)
}

// Tmpfs mounts a tmpfs of size ("2m", "16m") on a new temporary directory, unmounted when
// the test ends (root only): a small device for tests that fill it.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a %s tmpfs (the test needs root): %v", size, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// FillDevice writes dir/filler until the device is full, then gives back spare bytes; it
// returns the filler's path (remove it to make room again).
func FillDevice(t testing.TB, dir string, spare int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<16)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(max(0, st.Size()-spare)); err != nil {
		t.Fatal(err)
	}
	return p
}
