package lifecycle

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
)

// dirState is what one local tier root holds of one partition.
type dirState struct {
	tier                   layout.Tier // Hot, Warm or Cold (the root)
	dir                    string
	book, zst, idx, stub   bool
	intent                 bool
	collision              bool       // book.q.zst.collision.json: kept local, another host holds the key
	aux                    int        // other entries: meta.json, index/, derived/, ...
	ownTemps, foreignTemps []tempFile // anywhere below dir
	bytes                  int64      // sum of regular file sizes (for status)
	bookBytes              int64      // book.q or book.q.zst size
}

type tempFile struct {
	path  string
	mtime time.Time
}

// hasBook reports whether the directory holds a book the resolver would find.
func (d *dirState) hasBook() bool { return d != nil && (d.book || d.zst || d.stub) }

// copyKind is one way a partition's book is held.
type copyKind uint8

const (
	kindPlain copyKind = iota // book.q
	kindZstd                  // book.q.zst + .idx
	kindStub                  // book.q.zst.remote.json (remote tier)
)

// bookCopy is one copy of a partition's book: the unit recovery compares.
type bookCopy struct {
	tier layout.Tier // Remote for stubs
	kind copyKind
	dir  string
}

func (c bookCopy) String() string {
	switch c.kind {
	case kindZstd:
		return "cold (" + layout.ZstName + ")"
	case kindStub:
		return "remote (" + layout.StubName + ")"
	}
	return c.tier.String() + " (" + layout.BookName + ")"
}

// partition gathers the directories of one key across the local roots.
type partition struct {
	key  layout.Key
	dirs [3]*dirState // by root: Hot, Warm, Cold
}

// copies lists the book copies in resolution priority order.
func (p *partition) copies() []bookCopy {
	var out []bookCopy
	for t := layout.Hot; t <= layout.Cold; t++ {
		d := p.dirs[t]
		if d == nil {
			continue
		}
		if d.book {
			out = append(out, bookCopy{tier: t, kind: kindPlain, dir: d.dir})
		}
		if t == layout.Cold && d.zst {
			out = append(out, bookCopy{tier: layout.Cold, kind: kindZstd, dir: d.dir})
		}
		if t == layout.Cold && d.stub {
			out = append(out, bookCopy{tier: layout.Remote, kind: kindStub, dir: d.dir})
		}
	}
	return out
}

// view is one scan of every local root.
type view struct {
	parts map[layout.Key]*partition
	keys  []layout.Key // sorted
}

func (v *view) get(k layout.Key) *partition {
	p := v.parts[k]
	if p == nil {
		p = &partition{key: k}
		v.parts[k] = p
		v.keys = append(v.keys, k)
	}
	return p
}

// scan walks v1/{venue}/{symbol}/{date}/ under each local root. withSizes also sums file
// sizes (status only).
func scan(fsys vfs.FS, roots layout.Roots, withSizes bool) (*view, error) {
	v := &view{parts: map[layout.Key]*partition{}}
	for t := layout.Hot; t <= layout.Cold; t++ {
		root := roots.Local(t)
		if root == "" {
			continue
		}
		base := filepath.Join(root, layout.LayoutVersion)
		venues, err := readDirs(fsys, base)
		if err != nil {
			return nil, err
		}
		for _, ven := range venues {
			if !layout.ValidName(ven) {
				continue
			}
			syms, err := readDirs(fsys, filepath.Join(base, ven))
			if err != nil {
				return nil, err
			}
			for _, sym := range syms {
				if !layout.ValidName(sym) {
					continue
				}
				dates, err := readDirs(fsys, filepath.Join(base, ven, sym))
				if err != nil {
					return nil, err
				}
				for _, date := range dates {
					k := layout.Key{Venue: ven, Symbol: sym, Date: date}
					if k.Validate() != nil {
						continue
					}
					d, err := scanDir(fsys, t, filepath.Join(base, ven, sym, date), withSizes)
					if err != nil {
						return nil, err
					}
					v.get(k).dirs[t] = d
				}
			}
		}
	}
	sort.Slice(v.keys, func(i, j int) bool { return v.keys[i].Dir() < v.keys[j].Dir() })
	return v, nil
}

// readDirs lists the subdirectory names of dir; a missing dir is empty.
func readDirs(fsys vfs.FS, dir string) ([]string, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func scanDir(fsys vfs.FS, t layout.Tier, dir string, withSizes bool) (*dirState, error) {
	d := &dirState{tier: t, dir: dir}
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == intentName:
			d.intent = true
		case e.Type().IsRegular() && name == layout.BookName:
			d.book = true
		case e.Type().IsRegular() && name == layout.ZstName:
			d.zst = true
		case e.Type().IsRegular() && name == layout.IdxName:
			d.idx = true
		case e.Type().IsRegular() && name == layout.StubName:
			d.stub = true
		case e.Type().IsRegular() && name == layout.CollisionName:
			d.collision = true
		case layout.IsTemp(name):
		default:
			d.aux++
		}
		if (name == layout.BookName || name == layout.ZstName) && withSizes {
			if fi, err := e.Info(); err == nil {
				d.bookBytes = fi.Size()
			}
		}
	}
	if err := walkTemps(fsys, dir, d, withSizes); err != nil {
		return nil, err
	}
	return d, nil
}

// walkTemps collects temporary files anywhere below dir (and sizes when asked).
func walkTemps(fsys vfs.FS, dir string, d *dirState, withSizes bool) error {
	ents, err := readDirIfExists(fsys, dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := walkTemps(fsys, p, d, withSizes); err != nil {
				return err
			}
			continue
		}
		if withSizes || layout.IsTemp(e.Name()) {
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if withSizes && fi.Mode().IsRegular() {
				d.bytes += fi.Size()
			}
			switch {
			case e.Name() == intentName:
			case isOwnTemp(e.Name()):
				d.ownTemps = append(d.ownTemps, tempFile{path: p, mtime: fi.ModTime()})
			case layout.IsTemp(e.Name()):
				d.foreignTemps = append(d.foreignTemps, tempFile{path: p, mtime: fi.ModTime()})
			}
		}
	}
	return nil
}

// readDirIfExists lists dir; a directory that does not exist has no entries.
func readDirIfExists(fsys vfs.FS, dir string) ([]fs.DirEntry, error) {
	ents, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return ents, nil
}
