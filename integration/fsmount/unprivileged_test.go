package fsmount

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
)

// TestUnprivilegedMount: a researcher without root mounts the tree through the setuid
// fusermount3 helper (mount(2) needs CAP_SYS_ADMIN), reads a book byte for byte, and
// SIGTERM unmounts it again through the helper.
func TestUnprivilegedMount(t *testing.T) {
	const nobody = 65534
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Fatal("fusermount3 (Debian fuse3) is needed: run scripts/deps.sh")
	}
	// fusermount3 opens /dev/fuse as the user: Debian makes it 0666, some containers 0600.
	if fi, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatal(err)
	} else if mode := fi.Mode().Perm(); mode&0o006 != 0o006 {
		if err := os.Chmod("/dev/fuse", mode|0o666); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod("/dev/fuse", mode) })
		t.Logf("/dev/fuse was %v: opened to users for this test, as Debian ships it", mode)
	}
	e := newEnv(t, "file")
	k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-08"}
	book := testkit.Book(t, k, 20000, 1)
	testkit.PlacePlain(t, e.roots.Warm, k, book)
	// The user's own folders: the mount point and the disk cache (by default under the
	// user's $HOME/.cache, which this test's environment points at root's).
	home := t.TempDir()
	mp, cache := filepath.Join(home, "mnt"), filepath.Join(home, "cache")
	for _, d := range []string{mp, cache} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(t, fmt.Sprintf("disk_cache_dir = %q\n", cache))
	// The user needs to reach the binary, the config, the tiers and the mount point: open
	// the test's private temporary folders to others (read and traverse only).
	for _, p := range []string{binPath, cfg, e.roots.Warm, e.roots.Remote, home} {
		opened(t, strings.TrimPrefix(p, "file://"))
	}
	d := launch(t, "", &syscall.Credential{Uid: nobody, Gid: nobody}, cfg, mp)
	if !strings.Contains(mountOptions(t, mp), "user_id=65534") {
		t.Fatalf("mount options %q: not mounted for the user", mountOptions(t, mp))
	}
	// Without allow_other only the user who mounted may enter: read as that user.
	cat := exec.Command("cat", filepath.Join(mp, filepath.FromSlash(k.Dir()), layout.BookName))
	cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var out, errb bytes.Buffer
	cat.Stdout, cat.Stderr = &out, &errb
	if err := cat.Run(); err != nil {
		t.Fatalf("cat as nobody: %v: %s", err, errb.String())
	}
	if !bytes.Equal(out.Bytes(), book) {
		t.Fatalf("read %d bytes as nobody, want the %d-byte book", out.Len(), len(book))
	}
	d.signal(syscall.SIGTERM)
	if code, ok := d.wait(20 * time.Second); !ok || code != 0 {
		d.dumpLog()
		t.Fatalf("SIGTERM: exited %v with code %d, want 0", ok, code)
	}
	if isMounted(t, mp) {
		t.Fatal("still mounted after SIGTERM")
	}
}

// opened makes p and every folder above it up to the system's temporary folder readable
// and traversable by others.
func opened(t *testing.T, p string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for q := p; q != tmp && q != "/" && q != "."; q = filepath.Dir(q) {
		fi, err := os.Stat(q)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(q, fi.Mode().Perm()|0o005); err != nil {
			t.Fatal(err)
		}
	}
}
