package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
)

// TestLockTree: a second holder of any root is refused with ErrLocked naming the root and
// the holder's pid; a waiting one gets the tree as soon as it is released. (Two real
// processes: integration/tiermgr TestOneOwnerPerTree.)
func TestLockTree(t *testing.T) {
	dir := t.TempDir()
	roots := layout.Roots{Hot: filepath.Join(dir, "hot"), Warm: filepath.Join(dir, "warm"), Cold: filepath.Join(dir, "cold")}
	ctx := context.Background()
	l, err := lifecycle.LockTree(ctx, roots, lifecycle.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Another tree sharing only the cold root is refused too.
	other := layout.Roots{Warm: filepath.Join(dir, "warm2"), Cold: roots.Cold}
	_, err = lifecycle.LockTree(ctx, other, lifecycle.LockOptions{})
	want := fmt.Sprintf("pid %d", os.Getpid())
	if !errors.Is(err, lifecycle.ErrLocked) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), roots.Cold) {
		t.Fatalf("second lock: %v, want ErrLocked naming %s and %s", err, roots.Cold, want)
	}
	// The refused attempt released the roots it had taken (warm2).
	l2, err := lifecycle.LockTree(ctx, layout.Roots{Warm: other.Warm}, lifecycle.LockOptions{})
	if err != nil {
		t.Fatalf("warm2 still locked after a refused attempt: %v", err)
	}
	l2.Unlock()

	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := lifecycle.LockTree(tctx, roots, lifecycle.LockOptions{Wait: true, Poll: 10 * time.Millisecond, OnWait: func(error) { waited = true }}); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("waiting lock while held: %v (waited %v)", err, waited)
	}
	go func() { time.Sleep(50 * time.Millisecond); l.Unlock() }()
	l3, err := lifecycle.LockTree(ctx, roots, lifecycle.LockOptions{Wait: true, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("waiting lock after release: %v", err)
	}
	l3.Unlock()
}
