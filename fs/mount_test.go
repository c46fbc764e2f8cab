package fs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
	"golang.org/x/sys/unix"
)

type testMount struct {
	fs    *FS
	m     *Mount
	dir   string
	roots layout.Roots
	store objstore.Store
}

// mountTiers mounts roots (and store as the remote tier) in a temporary folder; the mount
// is unmounted at cleanup.
func mountTiers(t *testing.T, roots layout.Roots, store objstore.Store, tweak func(*Config)) *testMount {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("FUSE tests mount for real and need root (DirectMount)")
	}
	if store != nil {
		roots.Remote = store.URI("")
	}
	cache, err := qzst.NewCache(qzst.CacheOptions{MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tiers.New(roots, tiers.Options{Store: store, Cache: cache, RemoteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.CacheBytes = 32 << 20
	cfg.WatchInterval = 20 * time.Millisecond
	if tweak != nil {
		tweak(&cfg)
	}
	f, err := New(res, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := CleanStale(dir, true, nil); err != nil {
		t.Fatal(err)
	}
	m, err := f.Mount(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(5 * time.Second); err != nil {
			t.Errorf("unmount: %v", err)
		}
		res.Close()
		cache.Close()
	})
	return &testMount{fs: f, m: m, dir: dir, roots: roots, store: store}
}

func (tm *testMount) path(k layout.Key, name string) string {
	return filepath.Join(tm.dir, filepath.FromSlash(k.Dir()), name)
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func xattr(t *testing.T, p, name string) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(p, name, buf)
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", p, name, err)
	}
	return string(buf[:n])
}

func keyOn(date string) layout.Key {
	k := testkit.Key
	k.Date = date
	return k
}

// TestServesEveryTier places one partition in each tier and reads each through the mount:
// bytes, sizes, inode numbers, listings, xattrs, and passthrough for sealed local files.
func TestServesEveryTier(t *testing.T) {
	seed := testkit.Seed(t)
	roots := testkit.Roots(t)
	store := testkit.FileStore(t)
	parts := map[layout.Tier]layout.Key{layout.Hot: keyOn("2024-08-10"), layout.Warm: keyOn("2024-08-09"), layout.Cold: keyOn("2024-08-08"), layout.Remote: keyOn("2024-08-07")}
	books := map[layout.Tier][]byte{}
	for tier, k := range parts {
		books[tier] = testkit.Book(t, k, 20000+int64(tier)*777, seed+int64(tier))
		switch tier {
		case layout.Hot:
			testkit.PlacePlain(t, roots.Hot, k, books[tier])
		case layout.Warm:
			testkit.PlacePlain(t, roots.Warm, k, books[tier])
		default:
			testkit.PlaceCold(t, roots.Cold, k, books[tier], 256<<10)
			if tier == layout.Remote {
				testkit.PlaceRemote(t, roots.Cold, store, k)
			}
		}
	}
	tm := mountTiers(t, roots, store, nil)
	for tier, k := range parts {
		p := tm.path(k, layout.BookName)
		if got := readFile(t, p); !bytes.Equal(got, books[tier]) {
			t.Fatalf("%s: book.q through the mount differs from the original (%d vs %d bytes)", tier, len(got), len(books[tier]))
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != int64(len(books[tier])) || st.Ino != inoOf(k.Dir()+"/book.q") || st.Mode != syscall.S_IFREG|0o444 {
			t.Fatalf("%s: stat size %d ino %d mode %o; want %d, %d, 0100444", tier, st.Size, st.Ino, st.Mode, len(books[tier]), inoOf(k.Dir()+"/book.q"))
		}
		if got := xattr(t, p, XattrTier); got != tier.String() {
			t.Fatalf("%s: %s = %q", tier, XattrTier, got)
		}
		if got := xattr(t, p, XattrSealed); got != "true" {
			t.Fatalf("%s: %s = %q", tier, XattrSealed, got)
		}
		src := xattr(t, p, XattrSource)
		if tier == layout.Remote && !strings.HasPrefix(src, "file://") || tier != layout.Remote && !strings.HasPrefix(src, tm.roots.Local(tier)) {
			t.Fatalf("%s: source %q", tier, src)
		}
		if got := readFile(t, tm.path(k, layout.MetaName)); !bytes.Equal(got, testkit.Meta(k)) {
			t.Fatalf("%s: meta.json = %q", tier, got)
		}
		if got := readFile(t, tm.path(k, testkit.IndexName)); !bytes.Equal(got, testkit.IndexBytes(k)) {
			t.Fatalf("%s: %s = %q", tier, testkit.IndexName, got)
		}
		ents, err := os.ReadDir(filepath.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if want := "book.npy book.q index meta.json views"; strings.Join(names, " ") != want {
			t.Fatalf("%s: partition lists %q, want %q", tier, names, want)
		}
	}
	ents, err := os.ReadDir(filepath.Join(tm.dir, "v1", testkit.Key.Venue, testkit.Key.Symbol))
	if err != nil {
		t.Fatal(err)
	}
	var dates []string
	for _, e := range ents {
		dates = append(dates, e.Name())
	}
	sort.Strings(dates)
	if got := strings.Join(dates, " "); got != "2024-08-07 2024-08-08 2024-08-09 2024-08-10" {
		t.Fatalf("symbol directory lists %q", got)
	}
	st := tm.fs.Stats()
	if tm.m.PassthroughOffered() {
		for _, tier := range []layout.Tier{layout.Hot, layout.Warm} {
			if st.OpensPassthrough[tier] == 0 || st.Reads[tier] != 0 {
				t.Errorf("%s: %d passthrough opens, %d reads served by the daemon; want passthrough and none served",
					tier, st.OpensPassthrough[tier], st.Reads[tier])
			}
		}
		if st.PassthroughFallbackReads != 0 {
			t.Errorf("%d reads fell back from passthrough", st.PassthroughFallbackReads)
		}
	} else {
		t.Log("kernel does not offer FUSE passthrough: every file is served by the daemon")
	}
	// Compressed books are served by the daemon (their meta.json, a plain local file, may
	// still pass through).
	for _, tier := range []layout.Tier{layout.Cold, layout.Remote} {
		if st.Reads[tier] == 0 || st.ReadBytes[tier] < uint64(len(books[tier])) {
			t.Errorf("%s: %d reads of %d bytes; want the book served by the daemon", tier, st.Reads[tier], st.ReadBytes[tier])
		}
	}
	want := DefaultConfig().ReadAheadKB
	if ra, err := ReadAheadKB(tm.dir); err != nil || ra != want {
		t.Errorf("read_ahead_kb = %d, %v; want %d", ra, err, want)
	}
}

// TestReadOnly checks that nothing can be written, created or removed.
func TestReadOnly(t *testing.T) {
	roots := testkit.Roots(t)
	testkit.PlacePlain(t, roots.Warm, testkit.Key, testkit.Book(t, testkit.Key, 100, 1))
	tm := mountTiers(t, roots, nil, nil)
	p := tm.path(testkit.Key, layout.BookName)
	if _, err := os.OpenFile(p, os.O_RDWR, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	if _, err := os.Create(tm.path(testkit.Key, "new")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create: %v, want EROFS", err)
	}
	if err := os.Remove(p); !errors.Is(err, syscall.EROFS) {
		t.Errorf("remove: %v, want EROFS", err)
	}
	if err := unix.Setxattr(p, "user.x", []byte("y"), 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("setxattr: %v, want EROFS", err)
	}
}

// TestSymlinksNotFollowed plants symlinks in a tier root, to a file outside and as a
// partition directory: neither is served.
func TestSymlinksNotFollowed(t *testing.T) {
	roots := testkit.Roots(t)
	k := testkit.Key
	testkit.PlacePlain(t, roots.Warm, k, testkit.Book(t, k, 100, 1))
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	if err := os.Symlink(secret, filepath.Join(testkit.PartDir(roots.Warm, k), "leak.json")); err != nil {
		t.Fatal(err)
	}
	k2 := keyOn("2024-08-01")
	os.MkdirAll(filepath.Dir(testkit.PartDir(roots.Warm, k2)), 0o755)
	if err := os.Symlink(testkit.PartDir(roots.Warm, k), testkit.PartDir(roots.Warm, k2)); err != nil {
		t.Fatal(err)
	}
	tm := mountTiers(t, roots, nil, nil)
	if _, err := os.ReadFile(tm.path(k, "leak.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("symlink to a file outside the root: %v, want not found", err)
	}
	if _, err := os.Stat(tm.path(k2, layout.BookName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("symlinked partition: %v, want not found", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(tm.path(k, "")))
	for _, e := range ents {
		if e.Name() == "leak.json" {
			t.Errorf("symlink listed in the partition")
		}
	}
}

// TestStaleMountCleaned leaves a mount whose daemon is gone (the /dev/fuse descriptor is
// closed) and checks that CleanStale detaches it and a new mount works on the same folder.
func TestStaleMountCleaned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt")
	os.MkdirAll(dir, 0o755)
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := "fd=" + strconv.Itoa(fd) + ",rootmode=40000,user_id=0,group_id=0"
	if err := unix.Mount("chronicle", dir, "fuse.chronicle", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	unix.Close(fd) // the "daemon" dies
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); !errors.Is(err, unix.ENOTCONN) {
		unix.Unmount(dir, unix.MNT_DETACH)
		t.Fatalf("stat of an orphaned mount: %v, want ENOTCONN", err)
	}
	if err := CleanStale(dir, true, nil); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatalf("after CleanStale: %v", err)
	}
	if mounted, _, _ := mountedAt(dir); mounted {
		t.Fatal("still mounted after CleanStale")
	}
	// A live mount is refused.
	roots := testkit.Roots(t)
	tm := mountTiers(t, roots, nil, nil)
	if err := CleanStale(tm.dir, true, nil); !errors.Is(err, ErrMounted) {
		t.Fatalf("CleanStale on a live mount: %v, want ErrMounted", err)
	}
	if err := CheckMountPoint(tm.dir, false); !errors.Is(err, ErrMounted) {
		t.Fatalf("CheckMountPoint on a live mount: %v, want ErrMounted", err)
	}
}

// TestMissingMountPoint: a mount point that does not exist is refused, and nothing is
// created, unless mkdir asks for it.
func TestMissingMountPoint(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "typo", "mnt")
	if err := CheckMountPoint(dir, false); !errors.Is(err, ErrNoMountPoint) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("CheckMountPoint: %v, want ErrNoMountPoint naming %s", err, dir)
	}
	if err := CleanStale(dir, false, nil); !errors.Is(err, ErrNoMountPoint) {
		t.Fatalf("CleanStale: %v, want ErrNoMountPoint", err)
	}
	if _, err := os.Stat(filepath.Join(base, "typo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused mount point's parent exists: %v", err)
	}
	if err := CheckMountPoint(dir, true); err != nil {
		t.Fatal(err)
	}
	if err := CleanStale(dir, true, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("mkdir: %v", err)
	}
	f := filepath.Join(base, "file")
	os.WriteFile(f, nil, 0o644)
	if err := CheckMountPoint(f, true); !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("a file as mount point: %v", err)
	}
	if err := LazyUnmount(base); !errors.Is(err, ErrNotMounted) {
		t.Fatalf("LazyUnmount of a plain folder: %v, want ErrNotMounted", err)
	}
}

// TestEmptyTiers mounts tiers that hold nothing yet: v1 is there and empty, and a partition
// written afterwards shows up without a remount.
func TestEmptyTiers(t *testing.T) {
	roots := testkit.Roots(t)
	tm := mountTiers(t, roots, nil, nil)
	ents, err := os.ReadDir(filepath.Join(tm.dir, "v1"))
	if err != nil || len(ents) != 0 {
		t.Fatalf("empty v1: %v, %v", ents, err)
	}
	if _, err := os.Stat(filepath.Join(tm.dir, "v1")); err != nil {
		t.Fatal(err)
	}
	book := testkit.Book(t, testkit.Key, 100, 5)
	testkit.PlacePlain(t, roots.Warm, testkit.Key, book)
	if got := readFile(t, tm.path(testkit.Key, layout.BookName)); !bytes.Equal(got, book) {
		t.Fatal("partition placed after mounting: bytes differ")
	}
}

// TestListingCacheFollowsChanges: a directory listed again within dir_timeout is served
// from the kernel's cache, yet a partition that appears or goes shows once dir_timeout has
// passed.
func TestListingCacheFollowsChanges(t *testing.T) {
	roots := testkit.Roots(t)
	day := func(d string) layout.Key { k := testkit.Key; k.Date = d; return k }
	for _, d := range []string{"2024-08-07", "2024-08-08"} {
		testkit.PlacePlain(t, roots.Warm, day(d), testkit.Book(t, day(d), 100, 1))
	}
	const dirTimeout = 100 * time.Millisecond
	tm := mountTiers(t, roots, nil, func(c *Config) { c.DirTimeout = dirTimeout })
	symDir := filepath.Dir(tm.path(testkit.Key, ""))
	list := func() string {
		t.Helper()
		ents, err := os.ReadDir(symDir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return strings.Join(names, " ")
	}
	// becomes lists until the listing is want, which must happen within dir_timeout.
	becomes := func(what, want string) {
		t.Helper()
		start := time.Now()
		for {
			got := list()
			if got == want {
				return
			}
			if time.Since(start) > dirTimeout+2*time.Second {
				t.Fatalf("%s: still lists %q, want %q", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for range 3 {
		becomes("at rest", "2024-08-07 2024-08-08")
	}
	// In another tier: the symbol directory's attributes (the warm one's) do not change, so
	// only the daemon can tell the kernel that its cached listing is stale.
	testkit.PlaceCold(t, roots.Cold, day("2024-08-09"), testkit.Book(t, day("2024-08-09"), 100, 2), 64<<10)
	becomes("after a new partition", "2024-08-07 2024-08-08 2024-08-09")
	if err := os.RemoveAll(testkit.PartDir(roots.Warm, day("2024-08-07"))); err != nil {
		t.Fatal(err)
	}
	becomes("after a partition went", "2024-08-08 2024-08-09")
	for range 2 {
		if got := list(); got != "2024-08-08 2024-08-09" {
			t.Fatalf("lists %q again", got)
		}
	}
}

// TestForgetsLeastRecentlyUsedPartitions: past max_known_partitions the kernel is asked to
// forget the least recently used partition directories, so the daemon's inodes stay bounded
// after a walk of every partition, and a forgotten partition reads again as before.
func TestForgetsLeastRecentlyUsedPartitions(t *testing.T) {
	const parts, budget = 40, 5
	roots := testkit.Roots(t)
	books := map[layout.Key][]byte{}
	for i := range parts {
		k := testkit.Key
		k.Date = time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
		books[k] = testkit.Book(t, k, 50, int64(i))
		testkit.PlacePlain(t, roots.Warm, k, books[k])
	}
	tm := mountTiers(t, roots, nil, func(c *Config) { c.MaxKnownPartitions = budget })
	walk := func() {
		t.Helper()
		for k, want := range books {
			if _, err := os.ReadDir(filepath.Dir(tm.path(k, layout.BookName))); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, tm.path(k, layout.BookName)); !bytes.Equal(got, want) {
				t.Fatalf("%s: read %d bytes, want the %d-byte book", k, len(got), len(want))
			}
		}
	}
	walk()
	var known, children int
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps := tm.fs.partList()
		known, children = len(ps), -1
		if known > 0 {
			if _, sym := ps[0].Parent(); sym != nil {
				children = len(sym.Children())
			}
		}
		if known <= budget && children >= 0 && children <= budget {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a walk of %d partitions: %d known, %d inodes under the symbol; want at most %d", parts, known, children, budget)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := tm.fs.st.forgotten.Load(); n < parts-budget {
		t.Fatalf("%d partitions forgotten, want at least %d", n, parts-budget)
	}
	walk() // forgotten partitions are looked up again
}

// TestNPYFromTierFile reads book.npy of hot and warm books through a real mount, with read(2)
// and through a mapping, with the default 1 MiB requests (replies written from a mapping of
// the tier file) and with requests small enough to splice: the bytes are the NPY header and
// the book's records, and the kernel took the records from the tier file, never copied
// through the daemon.
func TestNPYFromTierFile(t *testing.T) {
	seed := testkit.Seed(t)
	roots := testkit.Roots(t)
	parts := map[layout.Tier]layout.Key{layout.Hot: keyOn("2024-08-10"), layout.Warm: keyOn("2024-08-09")}
	books := map[layout.Tier][]byte{}
	for tier, k := range parts {
		books[tier] = testkit.Book(t, k, 70000+int64(tier)*777, seed+int64(tier)) // 4.5 MiB
		testkit.PlacePlain(t, roots.Local(tier), k, books[tier])
	}
	for _, mw := range []int{1 << 20, 256 << 10} {
		t.Run(fmt.Sprintf("max_write=%d", mw), func(t *testing.T) {
			tm := mountTiers(t, roots, nil, func(c *Config) { c.MaxWrite = mw })
			for tier, k := range parts {
				p := tm.path(k, NPYName)
				got := readFile(t, p)
				records, off, err := parseNPY(got)
				book := books[tier]
				if err != nil || off != format.HeaderSize || records != int64(len(book)-format.HeaderSize)/format.BookRecordSize ||
					!bytes.Equal(got[off:], book[format.HeaderSize:]) {
					t.Fatalf("%s: book.npy (%d bytes): %d records at %d, records equal %v: %v", tier, len(got), records, off,
						len(got) > int(off) && bytes.Equal(got[off:], book[format.HeaderSize:]), err)
				}
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				m, err := unix.Mmap(int(f.Fd()), 0, len(got), unix.PROT_READ, unix.MAP_SHARED)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				same := bytes.Equal(m, got)
				unix.Munmap(m)
				if !same {
					t.Fatalf("%s: mapped book.npy differs", tier)
				}
			}
			st := tm.fs.Stats()
			zc := st.NPYSpliced
			if mw == 1<<20 {
				zc = st.NPYMapped
			}
			if zc == 0 {
				t.Fatalf("no reply taken from the tier file: %+v", st)
			}
			t.Logf("book.npy replies: %d spliced, %d from a mapping, of %d reads", st.NPYSpliced, st.NPYMapped, st.Reads[layout.Hot]+st.Reads[layout.Warm])
		})
	}
}
