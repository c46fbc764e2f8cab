// Package testenv finds the real external tools that integration tests use as independent
// readers (numpy, pandas, the zstd CLI, getfattr, versitygw). `make test` installs them; a
// test that needs one fails with a clear message instead of silently skipping.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/bytesize"
)

// Python returns an interpreter that imports numpy and pandas. Debian's python3-numpy
// imports only under /usr/bin/python3, which is tried first.
func Python(t testing.TB) string {
	t.Helper()
	cands := []string{os.Getenv("CHRONICLE_PYTHON"), "/usr/bin/python3", "python3"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if err := exec.Command(c, "-c", "import numpy, pandas").Run(); err == nil {
			return c
		}
	}
	t.Fatalf("no python3 with numpy and pandas (tried %s); run `make deps` (apt-get install python3-numpy python3-pandas)", strings.Join(cands, ", "))
	return ""
}

// Tool returns the path of a command-line tool or fails the test naming the package to install.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found; run `make deps` (apt-get install %s)", name, debianPackage)
	}
	return p
}

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// CapturesDir returns the directory of the real exchange captures (with a trailing slash):
// $CHRONICLE_SHARED/data/captures, else shared/data/captures beside the repository or
// beside any folder above the working directory (CI lays shared/ beside its clone).
func CapturesDir() string {
	const rel = "data/captures/"
	if s := os.Getenv("CHRONICLE_SHARED"); s != "" {
		return filepath.Join(s, rel) + "/"
	}
	dir, err := os.Getwd()
	for err == nil {
		cand := filepath.Join(dir, "shared", rel)
		if st, e := os.Stat(cand); e == nil && st.IsDir() {
			return cand + "/"
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "/work/shared/" + rel
}

// Seed returns $CHRONICLE_SEED, or a fresh seed, and logs it so that a failing randomized
// test can be replayed exactly.
func Seed(t testing.TB) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("CHRONICLE_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CHRONICLE_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (set CHRONICLE_SEED to replay)", seed)
	return seed
}

// CrashRuns is how many crashes (kill -9, power cuts) a crash test makes:
// $CHRONICLE_CRASH_RUNS, else 50, or 10 with -short.
func CrashRuns(t testing.TB) int {
	t.Helper()
	n := 50
	if testing.Short() {
		n = 10
	}
	if s := os.Getenv("CHRONICLE_CRASH_RUNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("CHRONICLE_CRASH_RUNS=%q: %v", s, err)
		}
		n = v
	}
	return n
}

// WaitFor polls ok until it holds, failing the test after d; what names the wait.
func WaitFor(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FastDir returns a temporary directory on tmpfs (/dev/shm) when there is one, removed at
// the end of the test: for tests that fsync many small files, where a disk would only add
// time (and a slow fsync can make a fuzzer take an iteration for a hang).
func FastDir(t testing.TB) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "chronicle-test-*"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// BenchBytes is the size of a benchmark's large files: $CHRONICLE_BENCH_BYTES (a byte
// count, suffixes KiB, MiB, GiB allowed; `make bench BENCH_BYTES=...` sets it), else def.
// The one size knob of every benchmark.
func BenchBytes(b testing.TB, def int64) int64 {
	s := os.Getenv("CHRONICLE_BENCH_BYTES")
	if s == "" {
		return def
	}
	n, err := bytesize.Parse(s)
	if err != nil || n < 1<<20 {
		b.Fatalf("CHRONICLE_BENCH_BYTES=%q: want a byte count of at least 1 MiB", s)
	}
	return n
}

// BenchCount is a benchmark's whole-number knob: $name, which must be at least least,
// else def.
func BenchCount(b testing.TB, name string, def, least int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		b.Fatalf("%s=%q: want a whole number of at least %d", name, s, least)
	}
	return n
}

// BuildCommands builds the repository's commands (names under cmd/, e.g. "chronicle-fs")
// into a new temporary directory and returns it; for TestMain of tests that run the real
// binaries. The caller removes the directory.
func BuildCommands(names ...string) (string, error) {
	dir, err := os.MkdirTemp("", "chronicle-bin-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "github.com/chronicle/chronicle/cmd/"+n)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build %v: %w\n%s", names, err, out)
	}
	return dir, nil
}

// binDir is where RunWithCommands built the commands.
var binDir string

// RunWithCommands is the body of TestMain in packages that run the real binaries: it
// builds the named commands (BuildCommands), runs the tests, removes the binaries and
// returns the exit code. Bin gives each binary's path.
func RunWithCommands(m *testing.M, names ...string) int {
	dir, err := BuildCommands(names...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// RunAsRoot is RunWithCommands for tests that must run as root: as any other user it
// prints why (the package's tests and what they need root for) and fails.
func RunAsRoot(m *testing.M, why string, names ...string) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, why)
		return 1
	}
	return RunWithCommands(m, names...)
}

// Bin is the path of a command (e.g. "chronicle-etl") that RunWithCommands built.
func Bin(name string) string { return filepath.Join(binDir, name) }

// BinDir is the directory that holds them.
func BinDir() string { return binDir }
