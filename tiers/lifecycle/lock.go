package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/layout"
)

// ErrLocked: another chronicle-tier holds the tier tree (LockTree); the error names its pid.
var ErrLocked = errors.New("tier tree is locked")

// LockName is the lock file chronicle-tier keeps in each local tier root. It is hidden, so
// the resolver never lists or serves it.
const LockName = ".chronicle-tier.lock"

// TreeLock is the exclusive ownership of a tier tree by one process: a flock on LockName in
// every local root (hot, warm, cold). The kernel drops it when the process dies, however it
// dies, so a crash never leaves a stale lock; the file keeps the holder's pid so a second
// instance can say who holds it.
//
// Only the holder recovers and moves. Recovery treats every upload intent and temporary
// file of its own naming as a leftover of a dead process; the lock is what makes that true
// (no other live manager can be writing them).
type TreeLock struct {
	files []*os.File
}

// LockOptions configure LockTree.
type LockOptions struct {
	// Wait blocks until every root is free instead of failing at once.
	Wait bool
	// Poll is how often a waiting LockTree retries (default 200 ms).
	Poll time.Duration
	// OnWait, if set, is called once when LockTree starts waiting, with the error it would
	// otherwise have returned.
	OnWait func(error)
}

// LockTree takes the lock of every local root, in the order hot, warm, cold. If another
// process holds one it fails with ErrLocked naming the root and the holder's pid, or, with
// Wait, retries until ctx ends. Roots are created if missing (0755).
func LockTree(ctx context.Context, roots layout.Roots, opt LockOptions) (*TreeLock, error) {
	if opt.Poll <= 0 {
		opt.Poll = 200 * time.Millisecond
	}
	waited := false
	for {
		l, err := tryLockTree(roots)
		if err == nil {
			return l, nil
		}
		if !opt.Wait || !errors.Is(err, ErrLocked) {
			return nil, err
		}
		if !waited && opt.OnWait != nil {
			opt.OnWait(err)
		}
		waited = true
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the tier lock: %w (last: %w)", ctx.Err(), err)
		case <-time.After(opt.Poll):
		}
	}
}

func tryLockTree(roots layout.Roots) (*TreeLock, error) {
	l := &TreeLock{}
	seen := map[string]bool{}
	for t := layout.Hot; t <= layout.Cold; t++ {
		root := roots.Local(t)
		if root == "" || seen[filepath.Clean(root)] {
			continue
		}
		seen[filepath.Clean(root)] = true
		f, err := lockRoot(t, root)
		if err != nil {
			l.Unlock()
			return nil, err
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

func lockRoot(t layout.Tier, root string) (*os.File, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("[tiers] %s %s: %w", t, root, err)
	}
	p := filepath.Join(root, LockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tier lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s tier %s: %w by %s", t, root, ErrLocked, holder(p))
		}
		return nil, fmt.Errorf("tier lock %s: %w", p, err)
	}
	// Ours now: say who holds it. A reader that races this write sees an empty file and
	// retries (holder).
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// holder describes the process holding the lock file at p ("pid 1234", or "another
// process" when the file does not say).
func holder(p string) string {
	for range 10 {
		b, err := os.ReadFile(p)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return fmt.Sprintf("pid %d (%s)", pid, p)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "another process (" + p + ")"
}

// Unlock releases every root. The pid stays in the files; it only matters while locked.
func (l *TreeLock) Unlock() {
	if l == nil {
		return
	}
	for _, f := range l.files {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
	l.files = nil
}
