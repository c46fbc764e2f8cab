package lifecycle_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// fullTmpfs mounts a 4 MiB tmpfs and fills it but for spare bytes; it returns the mount
// point and the filler's path.
func fullTmpfs(t *testing.T, spare int64) (string, string) {
	t.Helper()
	dir := testenv.Tmpfs(t, "4m")
	return dir, testenv.FillDevice(t, dir, spare)
}

// TestFullTarget: each policy's destination (warm, cold, a file:// remote) is a tmpfs with
// no room for the partition. The move fails with ENOSPC, is counted and backed off; the
// source keeps serving identical bytes; the destination holds no temporary file, no
// partial copy and no orphan object. Once space returns, the next try moves it.
func TestFullTarget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to layout.Tier
		date     string
	}{
		{"hot->warm", layout.Hot, layout.Warm, "2025-12-31"},
		{"warm->cold", layout.Warm, layout.Cold, "2025-06-01"},
		{"cold->remote", layout.Cold, layout.Remote, "2023-01-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, filler := fullTmpfs(t, 64<<10)
			var store objstore.Store
			if tc.to == layout.Remote {
				s, err := objstore.Open(context.Background(), "file://"+filepath.Join(target, "remote"), objstore.Config{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				store = s
			}
			e := lt.NewEnv(t, "", store)
			switch tc.to {
			case layout.Warm:
				e.Roots.Warm = filepath.Join(target, "warm")
			case layout.Cold:
				e.Roots.Cold = filepath.Join(target, "cold")
			}
			p := lt.NewPartition(t, key(tc.date), 40000, 7) // 2.5 MB book
			e.Place(t, p, tc.from)
			cfg := testConfig()
			cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour
			now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
			m := newManager(t, e, cfg, "2026-01-01T12:00:00Z", func(o *lifecycle.Options) {
				o.Now = func() time.Time { return now }
			})
			res, err := m.Apply(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Failed != 1 || res.Moved != 0 || !errors.Is(errors.Join(res.Errors...), syscall.ENOSPC) {
				t.Fatalf("apply on a full target: %+v", res)
			}
			// The source serves, identical; the target holds nothing of the move.
			e.CheckReadable(t, []lt.Partition{p})
			if cs := e.Copies(p.Key); len(cs) != 1 {
				t.Fatalf("copies after the failed move: %v", cs)
			}
			filepath.WalkDir(target, func(path string, d fs.DirEntry, err error) error {
				// (the file store may keep an empty directory where objects were deleted)
				partial := strings.Contains(path, p.Key.Date) && !(tc.to == layout.Remote && d.IsDir())
				if err == nil && (layout.IsTemp(d.Name()) && d.Name() != lifecycle.LockName || partial) {
					t.Fatalf("left on the full target: %s", path)
				}
				return nil
			})
			if store != nil {
				if objs, _ := store.List(context.Background(), ""); len(objs) > 0 {
					t.Fatalf("orphan objects: %v", objs)
				}
			}
			// Backed off: not retried before retry_min, even with room again.
			os.Remove(filler)
			if res, _ := m.Apply(context.Background(), nil); res.Moved+res.Failed != 0 {
				t.Fatalf("retried within the backoff: %+v", res)
			}
			now = now.Add(time.Hour + time.Second)
			res, err = m.Apply(context.Background(), nil)
			if err != nil || res.Moved == 0 || res.Failed != 0 {
				t.Fatalf("apply once space returned: %+v %v", res, err)
			}
			e.Check(t, []lt.Partition{p})
		})
	}
}

// TestHotSettleMonotonic: a sealed hot book without meta.json whose modification time says
// it has been idle for ten hours (a wall clock stepped forward, or a restored file) still
// waits hot_settle from when the manager first saw it unchanged; a change restarts the wait.
func TestHotSettleMonotonic(t *testing.T) {
	e := lt.NewEnv(t, "", nil)
	p := lt.NewPartition(t, key("2025-12-31"), 500, 3)
	delete(p.Aux, layout.MetaName) // a writer that does not write meta.json
	e.Place(t, p, layout.Hot)
	book := filepath.Join(e.Roots.Hot, filepath.FromSlash(p.Key.Dir()), layout.BookName)
	old := time.Now().Add(-10 * time.Hour)
	os.Chtimes(book, old, old)
	cfg := testConfig()
	cfg.HotSettle = 300 * time.Millisecond
	m := newManager(t, e, cfg, "2026-01-01T12:00:00Z")
	moved := func() int {
		res, err := m.Apply(context.Background(), nil)
		if err != nil || res.Failed > 0 {
			t.Fatalf("apply: %+v %v", res, err)
		}
		return res.Moved
	}
	if moved() != 0 {
		t.Fatal("moved at first sight, on its old modification time")
	}
	time.Sleep(200 * time.Millisecond)
	newer := old.Add(time.Second) // the writer touched it: the wait starts over
	os.Chtimes(book, newer, newer)
	if moved() != 0 {
		t.Fatal("moved right after a change")
	}
	time.Sleep(cfg.HotSettle + 100*time.Millisecond)
	if moved() != 1 {
		t.Fatal("not moved once settled")
	}
	if e.Check(t, []lt.Partition{p})[p.Key] != layout.Warm {
		t.Fatal("not in warm")
	}
}
