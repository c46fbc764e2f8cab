package merge

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/venue"
)

type metaSegment = meta.Segment

// partitions lists the partition directories (relative paths) the refinery wrote below
// root: v1/..., and the unmapped and late streams beside it; every one holds a meta.json
// or a book.
func partitions(root string) ([]string, error) {
	var out []string
	for _, top := range []string{"v1", "unmapped", "late"} {
		base := filepath.Join(root, top)
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() && strings.Count(filepath.ToSlash(rel), "/") == 3 {
				out = append(out, rel)
				return filepath.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// annotator writes the merge's provenance into each partition's meta.json.
type annotator struct {
	v     venue.Venue
	sv    *survey
	il    *interleaver
	hosts [2]string
	segs  [2][]meta.Segment
}

// annotate rewrites a merged partition's meta.json: its source is the merge, its
// ingest_time the latest receive time of the inputs (so the document, like the book, is a
// function of the journals), and merge says which host supplied which stretch of the book
// and how many of its records.
func (a *annotator) annotate(dir string) error {
	mp := filepath.Join(dir, meta.FileName)
	m, err := meta.Read(mp)
	if err != nil {
		return err
	}
	raws := map[string]bool{}
	for _, sv := range m.SymbolVersions {
		raws[strings.ToUpper(sv.RawSymbol)] = true
	}
	mg := &meta.Merge{Base: a.hosts[0]}
	for i, id := range a.hosts {
		mg.Hosts = append(mg.Hosts, meta.MergeHost{ID: id, Segments: a.segs[i]})
	}
	if err := a.attribute(filepath.Join(dir, "book.q"), raws, mg); err != nil {
		return err
	}
	m.Merge = mg
	m.IngestTime = meta.Time(a.sv.maxRecv)
	m.Source = meta.Source{Pipeline: "chronicle-etl merge", Venue: m.Source.Venue,
		Note: fmt.Sprintf("merged from the journals of %s and %s", a.hosts[0], a.hosts[1])}
	return meta.Write(dir, m)
}

// attribute reads the book's records and finds, for each depth update, trade and ticker,
// the host whose message the merge took (by stream and id).
func (a *annotator) attribute(book string, raws map[string]bool, mg *meta.Merge) error {
	br, f, err := format.OpenBookFile(book)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	streams := map[venue.Kind][]int{} // the partition's streams, by kind
	for i, s := range a.il.streams {
		if raws[s.symbol] {
			streams[s.kind] = append(streams[s.kind], i)
		}
	}
	hostOf := func(k venue.Kind, id int64) int {
		for _, s := range streams[k] {
			src := a.il.sources[s]
			i := sort.Search(len(src), func(i int) bool { return src[i].from > id }) - 1
			if i >= 0 {
				return src[i].host
			}
		}
		return -1
	}
	var cur *meta.Supplied
	var last int64
	it := br.Iter()
	for it.Next() {
		r := it.Record()
		last = r.ExchTs
		h := -1
		switch {
		case r.TypeID == format.TypeLevel && r.Flags&format.FlagSnapshot == 0 && r.Flags&format.FlagLast != 0:
			if h = hostOf(venue.KindDepth, int64(r.Seq)); h < 0 {
				continue
			}
			mg.Hosts[h].DepthUpdates++
			if cur == nil || cur.Host != a.hosts[h] {
				if cur != nil {
					cur.To = meta.Time(r.ExchTs)
				}
				mg.Supplied = append(mg.Supplied, meta.Supplied{Interval: meta.Interval{From: meta.Time(r.ExchTs)}, Host: a.hosts[h]})
				cur = &mg.Supplied[len(mg.Supplied)-1]
			}
			cur.DepthUpdates++
		case r.TypeID == format.TypeTrade:
			k := venue.KindTrade
			if r.Aux0 != 0 || r.Aux1 != 0 {
				k = venue.KindAggTrade
			}
			if h = hostOf(k, int64(r.Seq)); h >= 0 {
				mg.Hosts[h].Trades++
			}
		case r.TypeID == format.TypeBBO:
			if h = hostOf(venue.KindBookTicker, int64(r.Seq)); h >= 0 {
				mg.Hosts[h].BBO++
			}
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if cur != nil {
		cur.To = meta.Time(max(last, int64(cur.From)) + 1)
	}
	// Stretches are in record order; keep them in time order and disjoint for readers.
	for i := 1; i < len(mg.Supplied); i++ {
		if mg.Supplied[i].From < mg.Supplied[i-1].To {
			mg.Supplied[i].From = mg.Supplied[i-1].To
		}
		if mg.Supplied[i].To < mg.Supplied[i].From {
			mg.Supplied[i].To = mg.Supplied[i].From
		}
	}
	return nil
}

// publish moves a merged partition into the output root, atomically (one rename of its
// directory); one already there is left alone when it holds the same files, and refused
// otherwise: a merge never replaces a partition.
func publish(src, dst string) (bool, error) {
	if _, err := os.Lstat(dst); err == nil {
		same, err := sameTree(src, dst)
		if err != nil {
			return false, err
		}
		if !same {
			return false, fmt.Errorf("%s: %w (the merge's is in %s)", dst, ErrExists, src)
		}
		return false, nil
	}
	if err := fileutil.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	if err := syncTree(src); err != nil {
		return false, err
	}
	if err := os.Rename(src, dst); err != nil {
		return false, err
	}
	return true, fileutil.SyncDir(filepath.Dir(dst))
}

// syncTree fsyncs every file and directory below dir.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return fileutil.SyncDir(p)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// sameTree reports whether two directories hold the same files with the same bytes.
func sameTree(a, b string) (bool, error) {
	list := func(root string) (map[string]string, error) {
		out := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(root, p)
				out[rel] = p
			}
			return nil
		})
		return out, err
	}
	fa, err := list(a)
	if err != nil {
		return false, err
	}
	fb, err := list(b)
	if err != nil {
		return false, err
	}
	if len(fa) != len(fb) {
		return false, nil
	}
	for rel, pa := range fa {
		pb, ok := fb[rel]
		if !ok {
			return false, nil
		}
		ba, err := os.ReadFile(pa)
		if err != nil {
			return false, err
		}
		bb, err := os.ReadFile(pb)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(ba, bb) {
			return false, nil
		}
	}
	return true, nil
}
