package fs

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// Every mount a test makes is unmounted and every goroutine it started is gone.
// With CHRONICLE_MMAP_SUM set, the binary is mappedSum's child instead.
func TestMain(m *testing.M) {
	if p := os.Getenv("CHRONICLE_MMAP_SUM"); p != "" {
		os.Exit(mmapSumChild(p))
	}
	goleak.VerifyTestMain(m)
}

// mappedSum returns the SHA-256 of the file at p read through a shared mapping of its first n
// bytes, taken in a child process. A test must not fault in pages of its own mount: a page
// fault cannot be preempted, so a garbage collection that stops the world while one waits
// for the mount's server goroutine deadlocks the process (go-fuse says so too).
func mappedSum(t *testing.T, p string, n int) [sha256.Size]byte {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CHRONICLE_MMAP_SUM="+p, fmt.Sprintf("CHRONICLE_MMAP_LEN=%d", n))
	out, err := cmd.Output()
	var sum [sha256.Size]byte
	if err != nil || len(out) != len(sum) {
		t.Fatalf("mapping %s in a child: %v (%d bytes out)", p, err, len(out))
	}
	copy(sum[:], out)
	return sum
}

func mmapSumChild(p string) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("CHRONICLE_MMAP_LEN"), &n); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := os.Open(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sum := sha256.Sum256(m)
	unix.Munmap(m)
	os.Stdout.Write(sum[:])
	return 0
}
