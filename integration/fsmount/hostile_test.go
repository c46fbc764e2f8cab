package fsmount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
	"golang.org/x/sys/unix"
)

// hostile is one adversarial entry: a partition made bad by damage, and what opening its
// book.q must give.
type hostile struct {
	date  string
	tier  string
	want  syscall.Errno // errno of opening (and reading) book.q
	build func(t *testing.T, e *env, k layout.Key)
}

// TestHostileTree mounts a tree holding damaged and adversarial entries in every tier beside
// good partitions. The mount must stay up; each bad book gives a clear errno and a log line
// naming it while its directory still lists; every good partition reads byte-identical
// afterwards; the daemon's memory stays bounded.
func TestHostileTree(t *testing.T) {
	e := newEnv(t, "file")
	good := map[layout.Key][]byte{}
	seed := int64(0)
	place := func(date, tier string) []byte {
		k := keyOn(date)
		seed++
		b := testkit.Book(t, k, 5000, seed)
		switch tier {
		case "hot":
			testkit.PlacePlain(t, e.roots.Hot, k, b)
		case "warm":
			testkit.PlacePlain(t, e.roots.Warm, k, b)
		case "cold":
			testkit.PlaceCold(t, e.roots.Cold, k, b, 64<<10)
		case "remote":
			testkit.PlaceCold(t, e.roots.Cold, k, b, 64<<10)
			testkit.PlaceRemote(t, e.roots.Cold, e.store, k)
		}
		return b
	}
	for i, tier := range []string{"hot", "warm", "cold", "remote"} {
		date := fmt.Sprintf("2023-01-%02d", i+1)
		good[keyOn(date)] = place(date, tier)
	}

	book := func(root string, k layout.Key) string {
		return filepath.Join(testkit.PartDir(root, k), layout.BookName)
	}
	flip := func(p string, off int64) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if off < 0 {
			off += int64(len(b))
		}
		b[off] ^= 0x5a
		os.WriteFile(p, b, 0o644)
	}
	writeStub := func(k layout.Key, mut func(s string) string) {
		p := filepath.Join(testkit.PartDir(e.roots.Cold, k), layout.StubName)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p, []byte(mut(string(b))), 0o644)
	}
	cases := []hostile{
		{"2024-01-01", "hot", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // truncated header
			place(k.Date, "hot")
			os.Truncate(book(e.roots.Hot, k), 100)
		}},
		{"2024-01-02", "hot", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // header bit flip
			place(k.Date, "hot")
			flip(book(e.roots.Hot, k), 2) // the magic
		}},
		{"2024-01-03", "hot", syscall.ENOENT, func(t *testing.T, e *env, k layout.Key) { // symlink out of the root
			os.MkdirAll(testkit.PartDir(e.roots.Hot, k), 0o755)
			os.Symlink("/etc/passwd", book(e.roots.Hot, k))
		}},
		// Not regular files: never a partition (not listed, ENOENT), and opening must not hang.
		{"2024-01-04", "hot", syscall.ENOENT, func(t *testing.T, e *env, k layout.Key) { // a FIFO
			os.MkdirAll(testkit.PartDir(e.roots.Hot, k), 0o755)
			unix.Mkfifo(book(e.roots.Hot, k), 0o644)
		}},
		{"2024-01-05", "hot", syscall.ENOENT, func(t *testing.T, e *env, k layout.Key) { // a device
			os.MkdirAll(testkit.PartDir(e.roots.Hot, k), 0o755)
			unix.Mknod(book(e.roots.Hot, k), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3)))
		}},
		{"2024-01-06", "warm", syscall.EACCES, func(t *testing.T, e *env, k layout.Key) { // a foreign owner's file
			place(k.Date, "warm")
			os.Chown(book(e.roots.Warm, k), 12345, 12345)
		}},
		{"2024-01-07", "warm", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // a journal where a book belongs
			os.MkdirAll(testkit.PartDir(e.roots.Warm, k), 0o755)
			testkit.WriteFileSync(t, book(e.roots.Warm, k), journalBytes(t))
		}},
		{"2024-01-08", "cold", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // truncated .zst
			place(k.Date, "cold")
			os.Truncate(filepath.Join(testkit.PartDir(e.roots.Cold, k), layout.ZstName), 1000)
		}},
		{"2024-01-09", "cold", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // bit-flipped .idx
			place(k.Date, "cold")
			flip(filepath.Join(testkit.PartDir(e.roots.Cold, k), layout.IdxName), 30)
		}},
		{"2024-01-10", "cold", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // .zst frame damaged
			place(k.Date, "cold")
			flip(filepath.Join(testkit.PartDir(e.roots.Cold, k), layout.ZstName), 200)
		}},
		{"2024-01-11", "remote", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // stub promising a huge .idx
			place(k.Date, "remote")
			writeStub(k, func(s string) string { return replaceSize(s, "idx", "1099511627776") })
		}},
		{"2024-01-12", "remote", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // negative size
			place(k.Date, "remote")
			writeStub(k, func(s string) string { return replaceSize(s, "zst", "-5") })
		}},
		{"2024-01-13", "remote", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // pointing at another partition
			place(k.Date, "remote")
			writeStub(k, func(s string) string { return strings.ReplaceAll(s, k.Date, "2023-01-04") })
		}},
		{"2024-01-14", "remote", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // pointing outside the store
			place(k.Date, "remote")
			writeStub(k, func(s string) string { return strings.ReplaceAll(s, "file://", "file:///etc/x") })
		}},
		{"2024-01-15", "remote", syscall.EIO, func(t *testing.T, e *env, k layout.Key) { // garbage
			place(k.Date, "remote")
			writeStub(k, func(string) string { return "{\"format\": \x00garbage" })
		}},
	}
	for _, c := range cases {
		c.build(t, e, keyOn(c.date))
	}
	// Not partitions at all: names the mount must never show or serve.
	sym := filepath.Dir(testkit.PartDir(e.roots.Hot, keyOn("2024-01-01")))
	os.WriteFile(filepath.Join(sym, ".hidden"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(testkit.PartDir(e.roots.Hot, keyOn("2024-01-02")), "book.q.tmp-123"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(testkit.PartDir(e.roots.Hot, keyOn("2024-01-02")), "meta.json"), []byte("\x00\xffgarbage"), 0o644)
	os.Symlink("/etc", filepath.Join(e.roots.Warm, "v1", "evil"))
	// The bucket's own copies of stubs (what research hosts read) damaged too.
	k := keyOn("2024-01-16")
	place(k.Date, "remote")
	if _, err := e.store.Put(context.Background(), stub.ObjectKey(k), bytes.NewReader([]byte("not json")), 8, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(testkit.PartDir(e.roots.Cold, k), layout.StubName)) // only the bucket knows it

	d := start(t, e.config(t, ""), mountpoint(t))
	mp := d.mp
	symDir := filepath.Join(mp, "v1", "binance-perp", keyOn("2024-01-01").Symbol)
	ents, err := os.ReadDir(symDir)
	if err != nil {
		t.Fatalf("the symbol directory does not list: %v", err)
	}
	listed := map[string]bool{}
	for _, de := range ents {
		listed[de.Name()] = true
	}
	for _, c := range cases {
		k := keyOn(c.date)
		dir := filepath.Join(mp, filepath.FromSlash(k.Dir()))
		if _, err := os.ReadDir(dir); err != nil && c.want != syscall.ENOENT {
			t.Errorf("%s (%s): its directory does not list: %v", c.date, c.tier, err)
		}
		p := filepath.Join(dir, layout.BookName)
		done := make(chan error, 1)
		go func() { _, err := os.ReadFile(p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, c.want) {
				t.Errorf("%s (%s): read book.q: %v, want %v", c.date, c.tier, err, c.want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s (%s): reading book.q hangs", c.date, c.tier)
		}
		if c.want != syscall.ENOENT && !loggedSoon(d, k.Date) {
			t.Errorf("%s (%s): no log line names it", c.date, c.tier)
		}
	}
	for _, name := range []string{".hidden"} {
		if listed[name] {
			t.Errorf("%s listed", name)
		}
		if _, err := os.Stat(filepath.Join(symDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s served when named: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(mp, "v1", "evil")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("symlink out of the root served: %v", err)
	}
	tmp := filepath.Join(mp, filepath.FromSlash(keyOn("2024-01-02").Dir()), "book.q.tmp-123")
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file served when named: %v", err)
	}
	if _, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(k.Dir()), layout.BookName)); !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bucket-only partition with a garbage stub copy: %v, want EIO or ENOENT", err)
	}
	// Still up, and every good partition byte for byte.
	for k, want := range good {
		got, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(k.Dir()), layout.BookName))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("good partition %s after the hostile ones: %d bytes, %v", k, len(got), err)
		}
	}
	rss := testenv.PeakRSS(t, d.cmd.Process.Pid)
	t.Logf("chronicle-fs peak RSS %d MiB over %d hostile entries", rss>>20, len(cases)+5)
	if limit := int64(64<<20) + 200<<20; rss > limit {
		t.Errorf("peak RSS %d MiB above %d MiB (frame cache + 200 MiB)", rss>>20, limit>>20)
	}
}

func replaceSize(s, obj, v string) string {
	i := strings.Index(s, `"`+obj+`": {`)
	j := strings.Index(s[i:], `"size": `) + i + len(`"size": `)
	k := j + strings.IndexAny(s[j:], ",\n")
	return s[:j] + v + s[k:]
}

// journalBytes is a small valid journal file: a .q, but not a book.
func journalBytes(t *testing.T) []byte {
	p := filepath.Join(t.TempDir(), "j.q")
	a, err := format.Create(p, format.NewJournalHeader("binance-perp", "seg"), format.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.AppendJournal(format.JournalMessage, 1, 1, []byte(`{"e":"x"}`))
	a.Seal()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyOn(date string) layout.Key {
	return layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: date}
}

// loggedSoon waits a little for a log line containing s (stderr is read asynchronously).
func loggedSoon(d *daemon, s string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if d.logged(s) {
			return true
		}
	}
	return false
}
