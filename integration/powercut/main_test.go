// Package powercut runs the real binaries (chronicle-feed, chronicle-etl, chronicle-tier)
// on a LazyFS-style file system (internal/testkit/lazyfs) and cuts the power at random
// moments: what was not fsynced is dropped, as a disk would drop it, and the next run must
// find nothing acknowledged lost, nothing duplicated, every file readable and every
// partition served by exactly one tier. Seeds are printed; CHRONICLE_SEED replays a run
// and CHRONICLE_CRASH_RUNS sets the number of cuts per test (50, or 10 with -short).
package powercut

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/lazyfs"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithCommands(m, "chronicle-tier", "chronicle-etl", "chronicle-feed"))
}

func newRand(t *testing.T) *rand.Rand {
	s := uint64(testenv.Seed(t))
	return rand.New(rand.NewPCG(s, s^0x5eed))
}

// mountLazy mounts a lazy file system holding a copy of seed (durable) and unmounts it at
// the end of the test.
func mountLazy(t *testing.T, seed string) *lazyfs.FS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("power-cut tests mount FUSE with mount(2) and need root")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	lz, err := lazyfs.Mount(mnt, filepath.Join(dir, "base"), seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lz.Close() })
	return lz
}

// start starts a binary; it is killed at the end of the test, never left holding the mount.
func start(t *testing.T, name string, args ...string) *proc.Proc {
	t.Helper()
	return proc.Start(t, exec.Command(testenv.Bin(name), args...))
}

// run runs a binary to completion and fails the test if it exits non-zero.
func run(t *testing.T, what string, name string, args ...string) string {
	t.Helper()
	p := start(t, name, args...)
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Fatalf("%s: %s %v: %v\n%s", what, name, args, err, p.Output())
		}
	case <-time.After(2 * time.Minute):
		p.Cmd.Process.Kill()
		t.Fatalf("%s: %s %v did not finish\n%s", what, name, args, p.Output())
	}
	return p.Output()
}

// cutDuring starts the binary, cuts the power after delay (or lets it finish first),
// kills it, and brings the power back. It reports whether the cut came before the end.
func cutDuring(t *testing.T, lz *lazyfs.FS, delay time.Duration, name string, args ...string) (cut bool, log string) {
	t.Helper()
	p := start(t, name, args...)
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Fatalf("%s %v exited by itself: %v\n%s", name, args, err, p.Output())
		}
	case <-time.After(delay):
		cut = true
		lz.Cut()
		p.Cmd.Process.Kill()
		p.Wait()
	}
	if err := lz.Restart(); err != nil {
		t.Fatal(err)
	}
	return cut, p.Output()
}

// readAll reads every regular file below root: after a power cut each must be readable.
func readAll(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if _, err := os.ReadFile(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the power cut: %v", err)
	}
}
