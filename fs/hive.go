package fs

import (
	"context"
	"path"
	"syscall"
	"time"

	"github.com/chronicle/chronicle/layout"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The Hive-style tree (docs/format/hive.md): beside v1/, the mount root shows
//
//	hive/book/venue={venue}/symbol={symbol}/date={date}/book.parquet
//
// for every partition that has derived/book.parquet, whatever tier holds it, so that
// DuckDB, Polars and Spark read the mount with hive partitioning (filters on venue, symbol
// and date skip whole directories). Each book.parquet is the partition's own file: the
// same inode as v1/.../derived/book.parquet, like a hard link.

// hiveNode is a directory of the Hive tree: level 0 hive/, 1 hive/book/, 2 a venue=, 3 a
// symbol=, 4 a date= directory.
type hiveNode struct {
	gofs.Inode
	fs    *FS
	level int
	key   layout.Key // the venue, symbol and date named so far
}

var (
	_ gofs.NodeLookuper       = (*hiveNode)(nil)
	_ gofs.NodeOpendirHandler = (*hiveNode)(nil)
	_ gofs.NodeGetattrer      = (*hiveNode)(nil)
	_ gofs.NodeSetattrer      = (*hiveNode)(nil)
	_ gofs.NodeAccesser       = (*hiveNode)(nil)
	_ gofs.NodeStatfser       = (*hiveNode)(nil)
)

// shown is the node's path below the mount root.
func (d *hiveNode) shown() string {
	parts := []string{layout.HiveDir, layout.HiveTable}
	vals := []string{d.key.Venue, d.key.Symbol, d.key.Date}
	for i := 0; i < d.level-1; i++ {
		parts = append(parts, layout.HiveDirName(i, vals[i]))
	}
	return path.Join(parts[:min(d.level+1, len(parts))]...)
}

// source is the v1 directory the node mirrors (levels 2 to 4).
func (d *hiveNode) source() string {
	return path.Join(append([]string{layout.LayoutVersion}, []string{d.key.Venue, d.key.Symbol, d.key.Date}[:d.level-1]...)...)
}

// parquet is the logical path of a partition's derived parquet.
func parquet(k layout.Key) string { return path.Join(k.Dir(), layout.DerivedBook) }

// lookupHive answers the name hive at the mount root.
func (d *dirNode) lookupHive(ctx context.Context, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fs
	ino := inoOf(layout.HiveDir)
	ch := d.NewInode(ctx, &hiveNode{fs: f}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
	if _, ok := ch.Operations().(*hiveNode); !ok {
		return nil, f.collision(layout.HiveDir, ch)
	}
	f.fillDir(&out.Attr, ino, time.Time{})
	out.SetEntryTimeout(f.cfg.SealedTimeout)
	out.SetAttrTimeout(f.cfg.DirTimeout)
	return ch, 0
}

func (d *hiveNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fs.fillDir(&out.Attr, inoOf(d.shown()), time.Time{})
	out.SetTimeout(d.fs.cfg.DirTimeout)
	return 0
}

func (d *hiveNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (d *hiveNode) Access(ctx context.Context, mask uint32) syscall.Errno { return access(mask) }

func (d *hiveNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(out)
}

// names lists the node's children.
func (d *hiveNode) names() ([]string, error) {
	switch d.level {
	case 0:
		return []string{layout.HiveTable}, nil
	case 4:
		if _, err := d.fs.res.Stat(parquet(d.key)); err != nil {
			return nil, err
		}
		return []string{layout.HiveFile}, nil
	}
	ents, err := d.fs.res.ReadDir(d.source())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir {
			continue
		}
		if d.level == 3 {
			// Only partitions with a parquet: a date= directory engines find empty
			// would be a partition of no rows.
			k := d.key
			k.Date = e.Name
			if _, err := d.fs.res.Stat(parquet(k)); err != nil {
				continue
			}
		}
		out = append(out, layout.HiveDirName(d.level-1, e.Name))
	}
	return out, nil
}

func (d *hiveNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	names, err := d.names()
	if err != nil {
		return nil, 0, d.fs.errno("readdir", d.shown(), err)
	}
	out := make([]fuse.DirEntry, 0, len(names))
	for _, n := range names {
		mode := uint32(syscall.S_IFDIR)
		ino := inoOf(path.Join(d.shown(), n))
		if d.level == 4 {
			mode, ino = syscall.S_IFREG, inoOf(parquet(d.key))
		}
		out = append(out, fuse.DirEntry{Name: n, Mode: mode, Ino: ino})
	}
	return newDirHandle(out, d.Lookup), 0, 0
}

func (d *hiveNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fs
	shown := path.Join(d.shown(), name)
	switch d.level {
	case 0:
		if name != layout.HiveTable {
			return nil, syscall.ENOENT
		}
		return d.child(ctx, &hiveNode{fs: f, level: 1}, out)
	case 4:
		if name != layout.HiveFile {
			return nil, syscall.ENOENT
		}
		logical := parquet(d.key)
		e, err := f.res.Stat(logical)
		if err != nil {
			return nil, f.errno("lookup", shown, err)
		}
		ino := inoOf(logical)
		ch := d.NewInode(ctx, newFileNode(f, logical, "", kindPlain), gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino})
		if _, ok := ch.Operations().(*fileNode); !ok {
			return nil, f.collision(logical, ch)
		}
		f.fillFile(&out.Attr, ino, e.Size, e.ModTime)
		out.SetEntryTimeout(f.cfg.DirTimeout)
		out.SetAttrTimeout(f.cfg.DirTimeout)
		return ch, 0
	}
	v, ok := layout.ParseHiveDir(d.level-1, name)
	if !ok {
		return nil, syscall.ENOENT
	}
	k := d.key
	switch d.level {
	case 1:
		k.Venue = v
	case 2:
		k.Symbol = v
	case 3:
		k.Date = v
	}
	n := &hiveNode{fs: f, level: d.level + 1, key: k}
	check := n.source()
	if d.level == 3 {
		check = parquet(k)
	}
	if _, err := f.res.Stat(check); err != nil {
		return nil, f.errno("lookup", shown, err)
	}
	return d.child(ctx, n, out)
}

func (d *hiveNode) child(ctx context.Context, n *hiveNode, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fs
	shown := n.shown()
	ino := inoOf(shown)
	ch := d.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
	if _, ok := ch.Operations().(*hiveNode); !ok {
		return nil, f.collision(shown, ch)
	}
	f.fillDir(&out.Attr, ino, time.Time{})
	out.SetEntryTimeout(f.cfg.DirTimeout)
	out.SetAttrTimeout(f.cfg.DirTimeout)
	return ch, 0
}
