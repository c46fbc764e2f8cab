// Package lazyfs is a FUSE file system for power-cut tests, in the manner of LazyFS
// (dsrhaslab/lazyfs, used by Jepsen): it passes every operation through to a backing
// directory, so the processes on the mount see a normal file system, and it keeps on the
// side what a disk would still hold after a power cut: the content of each file as of its
// last fsync, and the entries of each directory as of the directory's last fsync. Cut
// stops the file system as a power cut would (every later write fails), and Restart
// replaces the backing directory with that durable image and mounts it again, so the
// processes restarted on it find exactly what an fsync-strict disk would have kept:
//
//   - data written but not fsynced (write(2) or a shared mapping not msynced) is lost: a
//     file whose name survived but that was never fsynced comes back empty;
//   - a created, renamed, linked or unlinked name that its directory was not fsynced
//     after is undone (the file content follows the inode, not the name);
//   - everything present when the file system was mounted is durable.
//
// This is the strictest POSIX reading (no ext4 auto_da_alloc, no ordered-data
// journaling): what it keeps is what every file system keeps. Only a test can import it.
//
// Run the programs under test as separate processes. The test process serves the mount,
// and must not fault in pages of a file mapped from it: the page fault waits for this
// process's FUSE server, whose goroutines a garbage-collector stop-the-world has parked.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// ErrCut is what operations get after Cut, until Restart.
var ErrCut = errors.New("lazyfs: power is cut")

// Stats count what the file system saw since it was created.
type Stats struct {
	FileSyncs int64 // fsync/fdatasync/msync of files
	DirSyncs  int64 // fsync of directories
	Writes    int64 // write requests (including the write-back of shared mappings)
	Cuts      int   // power cuts
	Dropped   int64 // operations refused while the power was cut
}

// kind of an object.
const (
	kindFile byte = 'f'
	kindDir  byte = 'd'
	kindLink byte = 'l'
)

// object is the durable state of one inode: what a power cut leaves of it.
type object struct {
	kind    byte
	mode    uint32
	data    []byte            // files: content at the last fsync
	synced  bool              // files: data is a copy made by an fsync (or the scan)
	entries map[string]uint64 // directories: entries at the last fsync
	target  string            // symlinks (durable with the entry that names them)
}

// FS is a mounted lazy file system.
type FS struct {
	mnt  string // mount point
	base string // holds the backing directories
	back string // current backing directory
	gen  int

	server *fuse.Server

	mu     sync.Mutex
	cut    bool
	nextID uint64
	ids    map[uint64]uint64 // backing inode number -> object id
	objs   map[uint64]*object
	rootID uint64
	stats  Stats
	// dirty lists, per file object, the byte ranges written since its last fsync (all:
	// re-read it whole), so an fsync copies only what changed.
	dirty map[uint64]*extents
}

// extents is a set of byte ranges [off, end), kept sorted and merged.
type extents struct {
	all bool
	r   [][2]int64
}

func (e *extents) add(off, end int64) {
	if e.all || end <= off {
		return
	}
	r := append(e.r, [2]int64{off, end})
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	out := r[:1]
	for _, x := range r[1:] {
		if l := &out[len(out)-1]; x[0] <= l[1] {
			l[1] = max(l[1], x[1])
		} else {
			out = append(out, x)
		}
	}
	if len(out) > 64 { // too scattered to be worth tracking
		e.all, out = true, nil
	}
	e.r = out
}

// Mount mounts a lazy file system on mnt (an existing empty directory). Its backing
// directories live under base; seed, when not "", is copied in first and is durable.
func Mount(mnt, base, seed string) (*FS, error) {
	lz := &FS{mnt: mnt, base: base}
	lz.back = filepath.Join(base, "backing-1")
	lz.gen = 1
	if err := os.MkdirAll(lz.back, 0o755); err != nil {
		return nil, err
	}
	if seed != "" {
		if err := copyTree(seed, lz.back); err != nil {
			return nil, err
		}
	}
	if err := lz.mount(); err != nil {
		return nil, err
	}
	return lz, nil
}

// Dir is the mount point.
func (lz *FS) Dir() string { return lz.mnt }

// Stats returns the counters.
func (lz *FS) Stats() Stats {
	lz.mu.Lock()
	defer lz.mu.Unlock()
	return lz.stats
}

func (lz *FS) mount() error {
	if err := lz.scan(); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(lz.back, &st); err != nil {
		return err
	}
	root := &gofs.LoopbackRoot{Path: lz.back, Dev: uint64(st.Dev)}
	root.RootNode = &node{LoopbackNode: gofs.LoopbackNode{RootData: root}, lz: lz}
	zero := time.Duration(0)
	server, err := gofs.Mount(lz.mnt, root.RootNode, &gofs.Options{
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName: "lazyfs", Name: "lazyfs", DirectMount: true, DirectMountStrict: true,
			DisableSplice: true, MaxWrite: 1 << 20,
		},
	})
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s: %w", lz.mnt, err)
	}
	lz.server = server
	return nil
}

// scan makes everything in the backing directory durable (at mount time).
func (lz *FS) scan() error {
	lz.mu.Lock()
	defer lz.mu.Unlock()
	lz.ids, lz.objs, lz.nextID, lz.dirty = map[uint64]uint64{}, map[uint64]*object{}, 0, map[uint64]*extents{}
	id, err := lz.scanPath(lz.back)
	lz.rootID = id
	return err
}

func (lz *FS) scanPath(p string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return 0, err
	}
	if id, ok := lz.ids[st.Ino]; ok { // a hard link seen before
		return id, nil
	}
	o := &object{mode: st.Mode & 0o7777}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		o.kind, o.entries = kindDir, map[string]uint64{}
		ents, err := os.ReadDir(p)
		if err != nil {
			return 0, err
		}
		id := lz.newID(st.Ino, o)
		for _, e := range ents {
			cid, err := lz.scanPath(filepath.Join(p, e.Name()))
			if err != nil {
				return 0, err
			}
			o.entries[e.Name()] = cid
		}
		return id, nil
	case unix.S_IFREG:
		o.kind = kindFile
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		o.data, o.synced = b, true
	case unix.S_IFLNK:
		o.kind = kindLink
		t, err := os.Readlink(p)
		if err != nil {
			return 0, err
		}
		o.target = t
	default:
		return 0, fmt.Errorf("lazyfs: %s: only files, directories and symlinks are modelled", p)
	}
	return lz.newID(st.Ino, o), nil
}

func (lz *FS) newID(ino uint64, o *object) uint64 {
	lz.nextID++
	lz.ids[ino] = lz.nextID
	lz.objs[lz.nextID] = o
	return lz.nextID
}

// born registers an object created through the mount: nothing of it is durable yet
// (a directory has no durable entries, a file no durable content).
func (lz *FS) born(ino uint64, mode uint32, target string) {
	o := &object{mode: mode & 0o7777, target: target}
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		o.kind, o.entries = kindDir, map[string]uint64{}
	case unix.S_IFLNK:
		o.kind = kindLink
	default:
		o.kind = kindFile
	}
	lz.mu.Lock()
	lz.newID(ino, o)
	lz.mu.Unlock()
}

// refuse reports whether the power is cut (and counts the refusal).
func (lz *FS) refuse() bool {
	lz.mu.Lock()
	defer lz.mu.Unlock()
	if lz.cut {
		lz.stats.Dropped++
	}
	return lz.cut
}

// idOf returns the object of a backing inode, registering an unknown one (created
// outside the mount's view: not durable).
func (lz *FS) idOfLocked(st *unix.Stat_t) uint64 {
	if id, ok := lz.ids[st.Ino]; ok {
		return id
	}
	o := &object{mode: st.Mode & 0o7777, kind: kindFile}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		o.kind, o.entries = kindDir, map[string]uint64{}
	case unix.S_IFLNK:
		o.kind = kindLink
	}
	return lz.newID(st.Ino, o)
}

// markDirty notes that bytes [off, off+n) of the file open on fd changed (n < 0: anything).
func (lz *FS) markDirty(fd int, off, n int64) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return
	}
	lz.mu.Lock()
	defer lz.mu.Unlock()
	lz.markDirtyLocked(lz.idOfLocked(&st), off, n)
}

func (lz *FS) markDirtyLocked(id uint64, off, n int64) {
	d := lz.dirty[id]
	if d == nil {
		d = &extents{}
		lz.dirty[id] = d
	}
	if n < 0 {
		d.all, d.r = true, nil
		return
	}
	d.add(off, off+n)
}

// syncFile makes a file's current backing content its durable content: the ranges written
// since the last fsync are copied over (the whole file when that is not known).
func (lz *FS) syncFile(fd int) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	lz.mu.Lock()
	defer lz.mu.Unlock()
	if lz.cut {
		lz.stats.Dropped++
		return syscall.EIO
	}
	id := lz.idOfLocked(&st)
	o := lz.objs[id]
	d := lz.dirty[id]
	delete(lz.dirty, id)
	size := st.Size
	data := o.data
	ranges := [][2]int64{{0, size}}
	if d != nil && !d.all && o.synced {
		ranges = d.r
		if int64(len(data)) > size {
			data = data[:size]
		}
		data = append(data, make([]byte, size-int64(len(data)))...)
	} else if d == nil && o.synced && int64(len(data)) == size {
		ranges = nil // nothing written since the last fsync
	} else {
		data = make([]byte, size)
	}
	for _, r := range ranges {
		lo, hi := r[0], min(r[1], size)
		for off := lo; off < hi; {
			k, err := unix.Pread(fd, data[off:hi], off)
			if err != nil {
				return gofs.ToErrno(err)
			}
			if k == 0 {
				break
			}
			off += int64(k)
		}
	}
	o.data, o.mode, o.synced = data, st.Mode&0o7777, true
	lz.stats.FileSyncs++
	return 0
}

// syncDir makes a directory's current backing entries its durable entries.
func (lz *FS) syncDir(fd int) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return gofs.ToErrno(err)
	}
	type ent struct {
		name string
		st   unix.Stat_t
	}
	var list []ent
	for _, e := range ents {
		var cst unix.Stat_t
		if err := unix.Fstatat(fd, e.Name(), &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		list = append(list, ent{e.Name(), cst})
	}
	lz.mu.Lock()
	defer lz.mu.Unlock()
	if lz.cut {
		lz.stats.Dropped++
		return syscall.EIO
	}
	o := lz.objs[lz.idOfLocked(&st)]
	o.kind, o.entries = kindDir, map[string]uint64{}
	for _, e := range list {
		o.entries[e.name] = lz.idOfLocked(&e.st)
	}
	lz.stats.DirSyncs++
	return 0
}

// Cut cuts the power: from now on every operation that would change the file system, and
// every fsync, fails with EIO. Kill the processes using the mount, then call Restart.
func (lz *FS) Cut() {
	lz.mu.Lock()
	lz.cut = true
	lz.stats.Cuts++
	lz.mu.Unlock()
}

// Restart brings the power back: it unmounts, rebuilds the backing directory from the
// durable image (what an fsync-strict disk holds after the cut) and mounts it again. The
// processes that used the mount must have exited. Without a Cut first, it cuts now.
func (lz *FS) Restart() error {
	lz.Cut()
	if err := lz.unmount(); err != nil {
		return err
	}
	lz.gen++
	next := filepath.Join(lz.base, fmt.Sprintf("backing-%d", lz.gen))
	if err := os.Mkdir(next, 0o755); err != nil {
		return err
	}
	lz.mu.Lock()
	err := lz.rebuild(lz.rootID, next, map[uint64]string{})
	lz.mu.Unlock()
	if err != nil {
		return fmt.Errorf("lazyfs: rebuild: %w", err)
	}
	old := lz.back
	lz.back = next
	os.RemoveAll(old)
	lz.mu.Lock()
	lz.cut = false
	lz.mu.Unlock()
	return lz.mount()
}

// rebuild writes the durable tree of directory id into dir.
func (lz *FS) rebuild(id uint64, dir string, made map[uint64]string) error {
	o := lz.objs[id]
	names := make([]string, 0, len(o.entries))
	for n := range o.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cid := o.entries[n]
		c := lz.objs[cid]
		p := filepath.Join(dir, n)
		switch c.kind {
		case kindDir:
			if _, dup := made[cid]; dup {
				continue // one directory under two names (an unsynced cross-directory rename): keep the first
			}
			made[cid] = p
			if err := os.Mkdir(p, os.FileMode(c.mode)|0o700); err != nil {
				return err
			}
			if err := lz.rebuild(cid, p, made); err != nil {
				return err
			}
			os.Chmod(p, os.FileMode(c.mode))
		case kindLink:
			if err := os.Symlink(c.target, p); err != nil {
				return err
			}
		default:
			if first, ok := made[cid]; ok {
				if err := os.Link(first, p); err != nil {
					return err
				}
				continue
			}
			made[cid] = p
			if err := os.WriteFile(p, c.data, 0o600); err != nil {
				return err
			}
			if err := os.Chmod(p, os.FileMode(c.mode)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (lz *FS) unmount() error {
	if lz.server == nil {
		return nil
	}
	var st unix.Stat_t
	conn := -1
	if unix.Stat(lz.mnt, &st) == nil {
		conn = int(unix.Minor(uint64(st.Dev)))
	}
	var err error
	for range 50 {
		if err = lz.server.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		// Still busy: detach it; the kernel ends the session once the last user is gone.
		if derr := unix.Unmount(lz.mnt, unix.MNT_DETACH); derr != nil {
			return fmt.Errorf("lazyfs: unmount %s: %w (detach: %v)", lz.mnt, err, derr)
		}
	}
	done := make(chan struct{})
	go func() { lz.server.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// A process still holds the mount (a test that failed before stopping it): abort
		// the connection, so that this process is not stuck behind it.
		abort(conn)
		<-done
	}
	lz.server = nil
	return err
}

// abort aborts FUSE connection conn through fusectl (mounted if it is not).
func abort(conn int) {
	if conn < 0 {
		return
	}
	const ctl = "/sys/fs/fuse/connections"
	if ents, _ := os.ReadDir(ctl); len(ents) == 0 {
		unix.Mount("fusectl", ctl, "fusectl", 0, "")
	}
	os.WriteFile(fmt.Sprintf("%s/%d/abort", ctl, conn), []byte("1"), 0)
}

// Close unmounts and removes the backing directories.
func (lz *FS) Close() error {
	err := lz.unmount()
	os.RemoveAll(lz.base)
	return err
}

// Durable returns the durable content of the file at rel (relative to the mount), as a
// power cut now would leave it, and whether it would exist at all.
func (lz *FS) Durable(rel string) ([]byte, bool) {
	lz.mu.Lock()
	defer lz.mu.Unlock()
	id := lz.rootID
	for _, part := range splitPath(rel) {
		o := lz.objs[id]
		if o == nil || o.kind != kindDir {
			return nil, false
		}
		cid, ok := o.entries[part]
		if !ok {
			return nil, false
		}
		id = cid
	}
	o := lz.objs[id]
	if o == nil || o.kind != kindFile {
		return nil, false
	}
	return append([]byte(nil), o.data...), true
}

func splitPath(rel string) []string {
	var out []string
	for cur := filepath.Clean("/" + rel); cur != "/"; cur = filepath.Dir(cur) {
		out = append([]string{filepath.Base(cur)}, out...)
	}
	return out
}

// copyTree copies src into dst (files, directories, symlinks).
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(t, fi.Mode().Perm()|0o700)
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, t)
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return nil
	})
}

// ---- the FUSE side ----

// node is a loopback node that records creations and refuses changes while cut.
type node struct {
	gofs.LoopbackNode
	lz *FS
}

// WrapChild makes every node the loopback creates below the root one of ours.
func (n *node) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	if _, ok := ops.(*node); ok {
		return ops
	}
	return &node{LoopbackNode: gofs.LoopbackNode{RootData: n.RootData}, lz: n.lz}
}

func (n *node) backing(name string) string {
	return filepath.Join(n.lz.back, n.EmbeddedInode().Path(nil), name)
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if n.lz.refuse() {
		return nil, nil, 0, syscall.EIO
	}
	_, existed := os.Lstat(n.backing(name))
	ch, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return ch, fh, fl, errno
	}
	if existed != nil {
		n.lz.born(out.Attr.Ino, out.Attr.Mode, "")
	}
	return ch, &file{lf: fh.(*gofs.LoopbackFile), lz: n.lz}, fl, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.lz.refuse() {
		return nil, syscall.EIO
	}
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.lz.born(out.Attr.Ino, out.Attr.Mode, "")
	}
	return ch, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.lz.refuse() {
		return nil, syscall.EIO
	}
	if mode&unix.S_IFMT != unix.S_IFREG && mode&unix.S_IFMT != 0 {
		return nil, syscall.EPERM // only regular files are modelled
	}
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 {
		n.lz.born(out.Attr.Ino, out.Attr.Mode, "")
	}
	return ch, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.lz.refuse() {
		return nil, syscall.EIO
	}
	ch, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.lz.born(out.Attr.Ino, out.Attr.Mode, target)
	}
	return ch, errno
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.lz.refuse() {
		return nil, syscall.EIO
	}
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.lz.refuse() {
		return syscall.EIO
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.lz.refuse() {
		return syscall.EIO
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.lz.refuse() {
		return syscall.EIO
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.lz.refuse() {
		return syscall.EIO
	}
	if lf, ok := f.(*file); ok {
		f = lf.lf
	}
	errno := n.LoopbackNode.Setattr(ctx, f, in, out)
	if _, ok := in.GetSize(); ok && errno == 0 {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(n.lz.back, n.EmbeddedInode().Path(nil)), &st) == nil {
			n.lz.mu.Lock()
			n.lz.markDirtyLocked(n.lz.idOfLocked(&st), 0, -1)
			n.lz.mu.Unlock()
		}
	}
	return errno
}

func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if lf, ok := f.(*file); ok {
		f = lf.lf
	}
	return n.LoopbackNode.Getattr(ctx, f, out)
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if n.lz.refuse() {
		return syscall.EIO
	}
	return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if n.lz.refuse() {
		return syscall.EIO
	}
	return n.LoopbackNode.Removexattr(ctx, attr)
}

func (n *node) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.EXDEV // callers fall back to read and write, which are modelled
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_TRUNC) != 0 && n.lz.refuse() {
		return nil, 0, syscall.EIO
	}
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	return &file{lf: fh.(*gofs.LoopbackFile), lz: n.lz}, fl, 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	p := filepath.Join(n.lz.back, n.EmbeddedInode().Path(nil))
	fd, err := unix.Open(p, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, gofs.ToErrno(err)
	}
	ds, errno := gofs.NewLoopbackDirStream(p)
	if errno != 0 {
		unix.Close(fd)
		return nil, 0, errno
	}
	return &dir{ds: ds, fd: fd, lz: n.lz}, 0, 0
}

// file is a loopback file handle whose fsync records the durable content. It does not
// offer passthrough: every write and fsync must come through here.
type file struct {
	lf *gofs.LoopbackFile
	lz *FS
}

func (f *file) fd() int {
	fd, _ := f.lf.PassthroughFd()
	return fd
}

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.lf.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if f.lz.refuse() {
		return 0, syscall.EIO
	}
	f.lz.mu.Lock()
	f.lz.stats.Writes++
	f.lz.mu.Unlock()
	n, errno := f.lf.Write(ctx, data, off)
	if n > 0 {
		f.lz.markDirty(f.fd(), off, int64(n))
	}
	return n, errno
}

func (f *file) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }
func (f *file) Flush(ctx context.Context) syscall.Errno   { return f.lf.Flush(ctx) }

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if f.lz.refuse() {
		return syscall.EIO
	}
	return f.lz.syncFile(f.fd())
}

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.lf.Getattr(ctx, out)
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if f.lz.refuse() {
		return syscall.EIO
	}
	f.lz.markDirty(f.fd(), 0, -1)
	return f.lf.Setattr(ctx, in, out)
}

func (f *file) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if f.lz.refuse() {
		return syscall.EIO
	}
	f.lz.markDirty(f.fd(), int64(off), int64(size))
	return f.lf.Allocate(ctx, off, size, mode)
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}

// dir is a directory handle whose fsync records the durable entries.
type dir struct {
	ds gofs.DirStream
	fd int
	lz *FS
}

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.ds.(gofs.FileReaddirenter).Readdirent(ctx)
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.ds.(gofs.FileSeekdirer).Seekdir(ctx, off)
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	d.ds.(gofs.FileReleasedirer).Releasedir(ctx, flags)
	unix.Close(d.fd)
}

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if d.lz.refuse() {
		return syscall.EIO
	}
	return d.lz.syncDir(d.fd)
}
