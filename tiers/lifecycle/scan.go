package lifecycle

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/lifecycle/vfs"
)

// dirState is what one local tier root holds of one partition.
type dirState struct {
	tier                   tiers.Tier // Hot, Warm or Cold (the root)
	dir                    string
	book, zst, idx, stub   bool
	intent                 bool
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
	tier tiers.Tier // Remote for stubs
	kind copyKind
	dir  string
}

func (c bookCopy) String() string {
	switch c.kind {
	case kindZstd:
		return "cold (" + tiers.ZstName + ")"
	case kindStub:
		return "remote (" + tiers.StubName + ")"
	}
	return c.tier.String() + " (" + tiers.BookName + ")"
}

// partition gathers the directories of one key across the local roots.
type partition struct {
	key  tiers.Key
	dirs [3]*dirState // by root: Hot, Warm, Cold
}

// copies lists the book copies in resolution priority order.
func (p *partition) copies() []bookCopy {
	var out []bookCopy
	for t := tiers.Hot; t <= tiers.Cold; t++ {
		d := p.dirs[t]
		if d == nil {
			continue
		}
		if d.book {
			out = append(out, bookCopy{tier: t, kind: kindPlain, dir: d.dir})
		}
		if t == tiers.Cold && d.zst {
			out = append(out, bookCopy{tier: tiers.Cold, kind: kindZstd, dir: d.dir})
		}
		if t == tiers.Cold && d.stub {
			out = append(out, bookCopy{tier: tiers.Remote, kind: kindStub, dir: d.dir})
		}
	}
	return out
}

// view is one scan of every local root.
type view struct {
	parts map[tiers.Key]*partition
	keys  []tiers.Key // sorted
}

func (v *view) get(k tiers.Key) *partition {
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
func scan(fsys vfs.FS, roots tiers.Roots, withSizes bool) (*view, error) {
	v := &view{parts: map[tiers.Key]*partition{}}
	for t := tiers.Hot; t <= tiers.Cold; t++ {
		root := roots.Local(t)
		if root == "" {
			continue
		}
		base := filepath.Join(root, tiers.LayoutVersion)
		venues, err := readDirs(fsys, base)
		if err != nil {
			return nil, err
		}
		for _, ven := range venues {
			if !tiers.ValidName(ven) {
				continue
			}
			syms, err := readDirs(fsys, filepath.Join(base, ven))
			if err != nil {
				return nil, err
			}
			for _, sym := range syms {
				if !tiers.ValidName(sym) {
					continue
				}
				dates, err := readDirs(fsys, filepath.Join(base, ven, sym))
				if err != nil {
					return nil, err
				}
				for _, date := range dates {
					k := tiers.Key{Venue: ven, Symbol: sym, Date: date}
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

func scanDir(fsys vfs.FS, t tiers.Tier, dir string, withSizes bool) (*dirState, error) {
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
		case e.Type().IsRegular() && name == tiers.BookName:
			d.book = true
		case e.Type().IsRegular() && name == tiers.ZstName:
			d.zst = true
		case e.Type().IsRegular() && name == tiers.IdxName:
			d.idx = true
		case e.Type().IsRegular() && name == tiers.StubName:
			d.stub = true
		case tiers.IsTemp(name):
		default:
			d.aux++
		}
		if (name == tiers.BookName || name == tiers.ZstName) && withSizes {
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
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := walkTemps(fsys, p, d, withSizes); err != nil {
				return err
			}
			continue
		}
		if withSizes || tiers.IsTemp(e.Name()) {
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
			case tiers.IsTemp(e.Name()):
				d.foreignTemps = append(d.foreignTemps, tempFile{path: p, mtime: fi.ModTime()})
			}
		}
	}
	return nil
}
