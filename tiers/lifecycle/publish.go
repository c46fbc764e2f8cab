package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// A remote partition is published when the bucket alone holds everything a reader needs:
// the book's .zst and .idx, the files that travel with it (meta.json, index/, derived/),
// and, last, a copy of the stub whose presence says the rest is there (research hosts list
// the bucket and read that copy; docs/research-hosts.md).

// maxTravelDepth bounds how deep below the partition directory travelling files are looked
// for (index/time.idx is depth 2).
const maxTravelDepth = 4

// travellingFiles lists the regular files of a cold partition directory that travel with
// the book, by name relative to dir, sorted: everything but the book's own files, the
// upload intent, and hidden or temporary names.
func (m *Manager) travellingFiles(dir string) ([]string, error) {
	var out []string
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		ents, err := m.fs.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return fmt.Errorf("list %s: %w", filepath.Join(dir, rel), err)
		}
		for _, e := range ents {
			name := path.Join(rel, e.Name())
			switch {
			case layout.IsTemp(e.Name()) || !layout.ValidFileName(e.Name()) || (rel == "" && stub.IsBookFile(e.Name())):
				continue
			case rel == "" && stub.Reserved(e.Name()):
				m.log.Warn("a partition file in a directory the bucket reserves for other versions does not travel", "file", filepath.Join(dir, e.Name()))
				continue
			case e.IsDir():
				if depth+1 < maxTravelDepth {
					if err := walk(name, depth+1); err != nil {
						return err
					}
				}
			case e.Type().IsRegular():
				out = append(out, name)
			}
		}
		return nil
	}
	return out, walk("", 0)
}

// uploadFiles uploads and verifies the travelling files of partition k (in cold dir) into
// its version's slot, created only if absent when ifAbsent.
func (m *Manager) uploadFiles(ctx context.Context, k layout.Key, slot, dir string, ifAbsent bool) ([]stub.File, error) {
	names, err := m.travellingFiles(dir)
	if err != nil {
		return nil, err
	}
	files := make([]stub.File, 0, len(names))
	for _, name := range names {
		f, err := m.putFile(ctx, stub.FileKeyIn(k, slot, name), filepath.Join(dir, filepath.FromSlash(name)), name, ifAbsent)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// putFile uploads one local file as the object key and verifies it.
func (m *Manager) putFile(ctx context.Context, key, p, name string, ifAbsent bool) (stub.File, error) {
	f, err := m.fs.Open(p)
	if err != nil {
		return stub.File{}, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return stub.File{}, fmt.Errorf("stat %s: %w", p, err)
	}
	if st.Size() > stub.MaxFileSize {
		return stub.File{}, fmt.Errorf("%s: %d bytes, larger than a partition file may be", p, st.Size())
	}
	src := &sourceReader{ctx: ctx, r: f, lim: m.mv.lim}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(src, 0, st.Size())); err != nil {
		return stub.File{}, fmt.Errorf("hash %s: %w", p, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	info, err := m.store.Put(ctx, key, src, st.Size(), objstore.PutOptions{SHA256: sum, IfAbsent: ifAbsent})
	if err != nil {
		return stub.File{}, fmt.Errorf("upload %s: %w", p, err)
	}
	if err := m.verifyRemote(ctx, key, st.Size(), sum, info); err != nil {
		return stub.File{}, err
	}
	return stub.File{Name: name, Size: st.Size(), SHA256: sum}, nil
}

// putStubObject uploads the bucket's copy of a version's stub, the last object of a
// publication, and verifies it.
func (m *Manager) putStubObject(ctx context.Context, k layout.Key, slot string, sb []byte, ifAbsent bool) error {
	sum := objstore.SHA256Hex(sb)
	key := stub.ObjectKeyIn(k, slot)
	info, err := m.store.Put(ctx, key, strings.NewReader(string(sb)), int64(len(sb)), objstore.PutOptions{SHA256: sum, IfAbsent: ifAbsent})
	if err != nil {
		return fmt.Errorf("upload stub %s: %w", m.store.URI(key), err)
	}
	return m.verifyRemote(ctx, key, int64(len(sb)), sum, info)
}

// encodeStub marshals s and checks it the way readers will.
func (m *Manager) encodeStub(k layout.Key, s *stub.Stub, name string) ([]byte, error) {
	sb, err := s.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode stub: %w", err)
	}
	parsed, err := stub.Parse(sb, name)
	if err == nil {
		_, _, err = parsed.Validate(m.store, k, name)
	}
	if err != nil {
		return nil, fmt.Errorf("stub for %s: %w", k, err)
	}
	return sb, nil
}

// needsPublish reports whether a remote partition's stub predates publication (version 1:
// the bucket lacks its travelling files and its stub copy). Versions already seen are
// remembered by the stub's modification time, so a scan reads each stub once.
func (m *Manager) needsPublish(dir string) bool {
	p := StubPath(dir)
	fi, err := m.fs.Lstat(p)
	if err != nil {
		return false
	}
	m.mu.Lock()
	seen, ok := m.stubSeen[p]
	m.mu.Unlock()
	if ok && seen.mtime.Equal(fi.ModTime()) {
		return seen.old
	}
	b, err := m.mv.readSmall(p, 1<<20)
	if err != nil {
		return false // recovery and the resolver report unreadable stubs
	}
	s, err := stub.Parse(b, p)
	if err != nil {
		return false
	}
	old := s.Version < 2 // publication (files and the stub copy) came with version 2
	m.mu.Lock()
	m.stubSeen[p] = stubSeen{mtime: fi.ModTime(), old: old}
	m.mu.Unlock()
	return old
}

type stubSeen struct {
	mtime time.Time
	old   bool
}

// publish brings a partition uploaded before publication existed into the bucket whole:
// its travelling files, then the stub copy, then the local stub rewritten at version 2
// (atomically: a crash leaves the old stub, and the next scan publishes again; the
// objects it put are the same bytes).
func (m *Manager) publish(ctx context.Context, mv Move) error {
	if m.store == nil {
		return fmt.Errorf("%s: no remote tier", mv.Key)
	}
	dir := m.dirOf(layout.Cold, mv.Key)
	s, _, _, err := m.readStub(mv.Key, dir)
	if err != nil {
		return err
	}
	// A partition uploaded before publication existed, by this host: its key is its own
	// (no claim was ever taken on it), so the files and the stub copy are written as
	// before claims, replacing what an interrupted publication left.
	files, err := m.uploadFiles(ctx, mv.Key, s.Slot, dir, false)
	if err != nil {
		return err
	}
	s.Files = files
	if s.Host == "" {
		s.Host = m.host
	}
	if s.HeaderSize == 0 { // a version 1 stub: read it from the remote book's first frame
		if _, r, err := m.openRemote(ctx, mv.Key, dir); err == nil {
			if h, err := format.ReadHeader(r, r.Size(), s.Zst.URI); err == nil {
				s.HeaderSize = int64(h.HeaderSize)
			}
			r.Close()
		}
	}
	sb, err := m.encodeStub(mv.Key, s, StubPath(dir))
	if err != nil {
		return err
	}
	if err := m.putStubObject(ctx, mv.Key, s.Slot, sb, false); err != nil {
		return err
	}
	if _, err := m.mv.writeSmall(StubPath(dir), sb); err != nil {
		return fmt.Errorf("rewrite stub: %w", err)
	}
	return nil
}
