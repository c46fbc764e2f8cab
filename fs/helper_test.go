package fs

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"golang.org/x/sys/unix"
)

// helperFS is an FS over one plain warm book, set to mount through the helper at sock.
func helperFS(t *testing.T, sock string) (*FS, []byte, layout.Key) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("FUSE tests mount for real and need root")
	}
	roots := testkit.Roots(t)
	k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}
	book := testkit.Book(t, k, 5000, 1)
	testkit.PlacePlain(t, roots.Warm, k, book)
	cache, err := qzst.NewCache(qzst.CacheOptions{MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tiers.New(roots, tiers.Options{Cache: cache, RemoteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close(); cache.Close() })
	cfg := DefaultConfig()
	cfg.CacheBytes = 32 << 20
	cfg.MountSocket = sock
	f, err := New(res, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f, book, k
}

// TestMountThroughHelper: the daemon mounts through a helper socket the way
// deploy/chronicle-fs-mount@.service serves it (fusermount3 with the connection as
// $_FUSE_COMMFD, then a lazy unmount once it ends), serves the book, and Unmount closes the
// connection and returns once the session has ended.
func TestMountThroughHelper(t *testing.T) {
	fusermount, err := exec.LookPath("fusermount3")
	if err != nil {
		t.Fatal("fusermount3 (Debian fuse3) is needed: run scripts/deps.sh")
	}
	tmp := t.TempDir()
	dir, sock := filepath.Join(tmp, "mnt"), filepath.Join(tmp, "m.sock")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	helper := make(chan error, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			helper <- err
			return
		}
		cf, err := c.File()
		c.Close()
		if err != nil {
			helper <- err
			return
		}
		cmd := exec.Command(fusermount, "-o", "ro,nosuid,nodev,default_permissions,auto_unmount,fsname=chronicle,subtype=chronicle", "--", dir)
		cmd.Env, cmd.ExtraFiles = []string{"_FUSE_COMMFD=3"}, []*os.File{cf}
		out, err := cmd.CombinedOutput()
		cf.Close()
		if err != nil {
			err = fmt.Errorf("fusermount3: %w: %s", err, out)
		}
		unix.Unmount(dir, unix.MNT_DETACH) // the unit's ExecStopPost
		helper <- err
	}()
	f, book, k := helperFS(t, sock)
	m, err := f.Mount(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Read by another process: go-fuse cannot run its poll hack on a descriptor-passed
	// mount, so a reader in this process could wait on a FUSE_POLL of its own at exit.
	got, err := exec.Command("cat", filepath.Join(dir, filepath.FromSlash(k.Dir()), layout.BookName)).Output()
	if err != nil || !bytes.Equal(got, book) {
		t.Fatalf("read %d bytes through the helper's mount (%v), want the %d-byte book", len(got), err, len(book))
	}
	if err := m.Unmount(10 * time.Second); err != nil {
		t.Fatalf("unmount through the helper: %v", err)
	}
	if err := <-helper; err != nil {
		t.Fatalf("helper: %v", err)
	}
	if ok, _, _ := mountedAt(dir); ok {
		t.Fatal("still mounted")
	}
}

// TestHelperRefuses: a helper that closes the connection without a descriptor (its mount
// failed) is a clear error, not a hang.
func TestHelperRefuses(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.AcceptUnix(); err == nil {
			c.Close()
		}
	}()
	f, _, _ := helperFS(t, sock)
	_, err = f.Mount(filepath.Join(t.TempDir(), "mnt"))
	if err == nil || !strings.Contains(err.Error(), "without a descriptor") || !strings.Contains(err.Error(), sock) {
		t.Fatalf("mount through a refusing helper: %v", err)
	}
}
