package fsmount

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"golang.org/x/sys/unix"
)

// TestKill9Restart kills the daemon with SIGKILL, which leaves a dead mount ("transport
// endpoint is not connected"), and starts it again on the same mount point: it must clean
// up by itself. Then SIGTERM unmounts and exits 0.
func TestKill9Restart(t *testing.T) {
	e := newEnv(t, "file")
	book := testkit.Book(t, testkit.Key, 5000, 1)
	testkit.PlacePlain(t, e.roots.Warm, testkit.Key, book)
	cfg := e.config(t, "")
	mp := mountpoint(t)
	p := filepath.Join(mp, filepath.FromSlash(testkit.Key.Dir()), layout.BookName)

	d := start(t, cfg, mp)
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, book) {
		t.Fatalf("first daemon: %d bytes, %v", len(got), err)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.wait(10 * time.Second); !ok {
		t.Fatal("killed daemon did not exit")
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(mp, &sfs); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("after kill -9: statfs %s: %v, want ENOTCONN", mp, err)
	}

	d2 := start(t, cfg, mp)
	if !d2.logged("stale mount from a crashed daemon") {
		t.Error("restart did not report cleaning the stale mount")
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, book) {
		t.Fatalf("restarted daemon: %d bytes, %v", len(got), err)
	}
	d2.signal(syscall.SIGTERM)
	code, ok := d2.wait(10 * time.Second)
	if !ok || code != 0 {
		t.Fatalf("SIGTERM: exited %v with code %d, want 0", ok, code)
	}
	if isMounted(t, mp) {
		t.Fatal("still mounted after SIGTERM")
	}
	if !d2.logged(`"msg":"unmounted"`) {
		t.Error("no clean unmount logged")
	}
}

// TestSigtermWhileBusy sends SIGTERM while a file is open: the mount is detached lazily,
// the open file keeps reading, and the daemon exits 0 as soon as it is closed.
func TestSigtermWhileBusy(t *testing.T) {
	e := newEnv(t, "file")
	book := testkit.Book(t, testkit.Key, 5000, 2)
	testkit.PlaceCold(t, e.roots.Cold, testkit.Key, book, 64<<10) // served by the daemon, not passthrough
	mp := mountpoint(t)
	d := start(t, e.config(t, "shutdown_grace = \"30s\"\n"), mp)
	f, err := os.Open(filepath.Join(mp, filepath.FromSlash(testkit.Key.Dir()), layout.BookName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.signal(syscall.SIGTERM)
	if d.waitLog("mount busy: detaching lazily; open files keep working", 10*time.Second) == nil {
		d.dumpLog()
		t.Fatal("no lazy detach logged")
	}
	if isMounted(t, mp) {
		t.Error("mount point still attached after the lazy detach")
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	got := make([]byte, len(book))
	if n, err := f.ReadAt(got, 0); n != len(book) || !bytes.Equal(got, book) {
		t.Fatalf("open file after the detach: %d bytes, %v", n, err)
	}
	if _, ok := d.wait(200 * time.Millisecond); ok {
		t.Fatal("daemon exited while a file was still open")
	}
	f.Close()
	code, ok := d.wait(10 * time.Second)
	if !ok || code != 0 {
		t.Fatalf("after the last close: exited %v, code %d; want 0", ok, code)
	}
}

// TestRemoteFailureEIO freezes the S3 server: a read that needs it must fail with EIO once
// the remote timeout has passed, never hang; after the server resumes, reads work again.
func TestRemoteFailureEIO(t *testing.T) {
	e := newEnv(t, "s3")
	book := testkit.Book(t, testkit.Key, 40000, 3)
	testkit.PlaceCold(t, e.roots.Cold, testkit.Key, book, 64<<10)
	testkit.PlaceRemote(t, e.roots.Cold, e.store, testkit.Key)
	mp := mountpoint(t)
	start(t, e.config(t, "remote_timeout = \"2s\"\n"), mp)
	p := filepath.Join(mp, filepath.FromSlash(testkit.Key.Dir()), layout.BookName)
	f, err := os.Open(p) // fetches and caches the index while the server is up
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}

	e.srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			e.srv.Resume()
		}
	}()
	type result struct {
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		buf := make([]byte, 1<<20)
		_, err := f.ReadAt(buf, int64(len(book))/2)
		done <- result{err, time.Since(start)}
	}()
	select {
	case r := <-done:
		if !errors.Is(r.err, syscall.EIO) {
			t.Fatalf("read with the server frozen: %v, want EIO", r.err)
		}
		t.Logf("EIO after %v (remote_timeout 2s, request_timeout %v)", r.elapsed, testkit.S3Config(e.srv).RequestTimeout)
	case <-time.After(60 * time.Second):
		t.Fatal("read hung with the server frozen")
	}
	e.srv.Resume()
	resumed = true
	got := make([]byte, len(book))
	if n, err := f.ReadAt(got, 0); n != len(book) || !bytes.Equal(got, book) {
		t.Fatalf("after resume: %d bytes, %v", n, err)
	}
}
