package lazyfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain doubles as the mmap helper: with LAZYFS_TEST_MMAP set it maps that file,
// writes and msyncs "synced", then writes "LOST" without msync, and exits.
func TestMain(m *testing.M) {
	if p := os.Getenv("LAZYFS_TEST_MMAP"); p != "" {
		os.Exit(mmapHelper(p))
	}
	os.Exit(m.Run())
}

func mmapHelper(p string) int {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	copy(mem, "synced")
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	copy(mem[6:], "LOST")
	unix.Munmap(mem)
	return 0
}

func mount(t *testing.T) *FS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("lazyfs mounts with mount(2) and needs root")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	seed := filepath.Join(dir, "seed")
	os.MkdirAll(filepath.Join(seed, "d"), 0o755)
	os.WriteFile(filepath.Join(seed, "d", "old"), []byte("old"), 0o644)
	lz, err := Mount(mnt, filepath.Join(dir, "base"), seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lz.Close() })
	return lz
}

func syncPath(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func content(t *testing.T, p string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// TestPowerCut: each way of writing keeps exactly what was fsynced.
func TestPowerCut(t *testing.T) {
	lz := mount(t)
	m := lz.Dir()
	d := filepath.Join(m, "d")
	w := func(name, s string) string {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// never synced, name synced: comes back empty
	w("nosync", "lost")
	// file synced, name not: gone
	syncPath(t, w("filesync", "data"))
	// both synced, then more data unsynced: the synced content
	p := w("both", "kept")
	syncPath(t, p)
	// renamed over without a directory sync: the old name stays
	tmp := w("tmp", "renamed")
	syncPath(t, tmp)
	syncPath(t, d)
	if err := os.Rename(tmp, filepath.Join(d, "final")); err != nil {
		t.Fatal(err)
	}
	// unlinked without a directory sync: comes back
	if err := os.Remove(filepath.Join(d, "old")); err != nil {
		t.Fatal(err)
	}
	// a hard link made durable
	if err := os.Link(p, filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	// a new directory whose own entries were never synced
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	w("sub/inner", "x")
	// mmap + msync is durable, mmap alone is not
	mm := w("mapped", "0000000000")
	syncPath(t, mm)
	syncPath(t, d)
	// The mapping is written by another process: a page fault served by this process's
	// own FUSE server would deadlock a stop-the-world of its garbage collector.
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "LAZYFS_TEST_MMAP="+mm)
	if out, err := helper.CombinedOutput(); err != nil {
		t.Fatalf("mmap helper: %v\n%s", err, out)
	}
	// in-place writes: only the fsynced one counts
	pp := w("patched", "0123456789")
	syncPath(t, pp)
	pf, err := os.OpenFile(pp, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pf.WriteAt([]byte("AB"), 4)
	pf.Sync()
	pf.WriteAt([]byte("XY"), 0)
	pf.WriteAt([]byte("tail"), 10)
	pf.Close()
	f2 := w("both", "kept and more") // rewritten in place, not synced
	_ = f2
	syncPath(t, d) // entries now: nosync, filesync, both, final, link, sub, mapped (old gone)
	if err := os.Remove(filepath.Join(d, "filesync")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "late"), []byte("late"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := lz.Restart(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"nosync": "", "filesync": "data", "both": "kept", "final": "renamed", "link": "kept",
		"mapped": "synced0000", "patched": "0123AB6789",
	} {
		got, ok := content(t, filepath.Join(d, name))
		if !ok || got != want {
			t.Errorf("%s: %q (exists %v), want %q", name, got, ok, want)
		}
	}
	for _, gone := range []string{"old", "tmp", "late", "sub/inner"} {
		if _, ok := content(t, filepath.Join(d, gone)); ok {
			t.Errorf("%s survived the power cut", gone)
		}
	}
	if st, err := os.Stat(filepath.Join(d, "sub")); err != nil || !st.IsDir() {
		t.Errorf("sub: %v", err)
	}
	// The file system works after the restart.
	p = w("again", "again")
	syncPath(t, p)
	syncPath(t, d)
	if err := lz.Restart(); err != nil {
		t.Fatal(err)
	}
	if got, _ := content(t, p); got != "again" {
		t.Fatalf("after a second restart: %q", got)
	}
	if b, ok := lz.Durable("d/again"); !ok || !bytes.Equal(b, []byte("again")) {
		t.Fatalf("Durable: %q %v", b, ok)
	}
	st := lz.Stats()
	if st.Cuts != 2 || st.FileSyncs == 0 || st.DirSyncs == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCutRefusesWrites: after Cut every change fails; Restart brings the mount back.
func TestCutRefusesWrites(t *testing.T) {
	lz := mount(t)
	p := filepath.Join(lz.Dir(), "d", "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	lz.Cut()
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("write after the cut succeeded")
	}
	if err := f.Sync(); err == nil {
		t.Fatal("fsync after the cut succeeded")
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(lz.Dir(), "d", "g"), nil, 0o644); err == nil {
		t.Fatal("create after the cut succeeded")
	}
	if err := lz.Restart(); err != nil {
		t.Fatal(err)
	}
	if got, ok := content(t, filepath.Join(lz.Dir(), "d", "old")); !ok || got != "old" {
		t.Fatalf("seed file: %q %v", got, ok)
	}
	if lz.Stats().Dropped == 0 {
		t.Fatal("no refused operation counted")
	}
}
