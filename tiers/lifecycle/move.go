package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
)

// This file is the one move mechanism every policy uses. A file reaches its final name
// only as: write a temporary file beside it -> fsync the file -> fsync the directory ->
// rename -> fsync the directory. A source is deleted only after its copy is in place and
// durable, the book first (so the resolver moves on to the copy at once), then the rest.

// tmpTag begins the tag of the manager's temporary names (fileutil.TempName(final,
// tmpTag+random)): layout.IsTemp recognises them, so they are never listed or resolved;
// recovery removes every one at the start of a scan, and tmpMarker tells them from other
// writers'.
const (
	tmpTag    = "tier-"
	tmpMarker = ".tmp-" + tmpTag
)

// intentName is the upload intent of a partition being sent to the object store; see
// upload. It is an own temporary name too, but recovery reads it before cleaning temps.
var intentName = filepath.Base(fileutil.TempName(layout.StubName, tmpTag+"intent"))

// ErrVerify: a copy does not match its source (checksum, size, header or decoded bytes).
// The copy was discarded; the source is untouched.
var ErrVerify = errors.New("copy does not match its source")

func tempPath(final string) string {
	var b [6]byte
	rand.Read(b[:])
	return fileutil.TempName(final, tmpTag+hex.EncodeToString(b[:]))
}

// isOwnTemp reports names the manager creates and recovery may always remove.
func isOwnTemp(name string) bool {
	return fileutil.IsTemp(name) && strings.Contains(name, tmpMarker)
}

// bookNames are the files that make a partition's book in some tier; everything else in
// a partition directory (meta.json, index/, derived/) travels with it.
var bookNames = map[string]bool{layout.BookName: true, layout.ZstName: true, layout.IdxName: true, layout.StubName: true, layout.CollisionName: true}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// mover performs the file steps.
type mover struct {
	fs  vfs.FS
	lim *limiter
	log *slog.Logger
}

// staged is a file being written under a temporary name.
type staged struct {
	tmp, final string
	f          vfs.File
}

func (m *mover) stage(final string) (*staged, error) {
	tmp := tempPath(final)
	f, err := m.fs.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	return &staged{tmp: tmp, final: final, f: f}, nil
}

// finish fsyncs and closes a staged file.
func (s *staged) finish() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.tmp, err)
	}
	f := s.f
	s.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.tmp, err)
	}
	return nil
}

// discard closes and removes staged files that were not committed (best effort: a
// leftover is removed by the next recovery).
// discardUnless discards staged copies unless *renamed: for a defer taken before the rename.
func (m *mover) discardUnless(renamed *bool, ss ...*staged) {
	if !*renamed {
		m.discard(ss...)
	}
}

func (m *mover) discard(ss ...*staged) {
	for _, s := range ss {
		if s == nil {
			continue
		}
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
		if err := m.fs.Remove(s.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("remove temporary file", "file", s.tmp, "err", err)
		}
	}
}

// commit renames finished staged files into place, in order, all in one directory:
// fsync dir (the temporaries' entries) -> rename each -> fsync dir. renamed reports
// whether any rename happened: from then on the new file may be visible, so a failure
// must not be rolled back by deleting the source's counterpart.
func (m *mover) commit(ss ...*staged) (renamed bool, err error) {
	dir := filepath.Dir(ss[0].final)
	if err := m.fs.SyncDir(dir); err != nil {
		return false, fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	for _, s := range ss {
		if err := m.fs.Rename(s.tmp, s.final); err != nil {
			return renamed, fmt.Errorf("rename %s: %w", s.final, err)
		}
		renamed = true
	}
	if err := m.fs.SyncDir(dir); err != nil {
		return true, fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return true, nil
}

// copyFile copies the first n bytes of src (all of it when n < 0) to dst through a
// temporary file and commits it. The copy is checked before the rename: CRC-32C of the
// bytes written, of the temporary file read back, and of a second read of the source
// must agree, so neither a bad write nor a bad read goes unnoticed. check, when set,
// sees the finished temporary file before it is committed.
func (m *mover) copyFile(ctx context.Context, src, dst string, n int64, progress func(int64), check func(vfs.File) error) (renamed bool, err error) {
	in, err := m.fs.Open(src)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	if n < 0 {
		st, err := in.Stat()
		if err != nil {
			return false, fmt.Errorf("stat %s: %w", src, err)
		}
		n = st.Size()
	}
	sr := &sourceReader{ctx: ctx, r: in, lim: m.lim, progress: progress}
	s, err := m.stage(dst)
	if err != nil {
		return false, err
	}
	defer m.discardUnless(&renamed, s)
	written, err := copyCRC(ctx, s.f, sr, n)
	if err != nil {
		return false, fmt.Errorf("copy %s to %s: %w", src, s.tmp, err)
	}
	if err := s.f.Sync(); err != nil {
		return false, fmt.Errorf("fsync %s: %w", s.tmp, err)
	}
	back, err := crcOf(ctx, s.f, n, nil)
	if err != nil {
		return false, fmt.Errorf("read back %s: %w", s.tmp, err)
	}
	again, err := crcOf(ctx, in, n, m.lim)
	if err != nil {
		return false, fmt.Errorf("re-read %s: %w", src, err)
	}
	if written != back || written != again {
		return false, fmt.Errorf("copy %s to %s: %w: crc32c written %08x, read back %08x, source re-read %08x", src, dst, ErrVerify, written, back, again)
	}
	if st, err := s.f.Stat(); err != nil || st.Size() != n {
		if err == nil {
			err = fmt.Errorf("%w: %d bytes, want %d", ErrVerify, st.Size(), n)
		}
		return false, fmt.Errorf("copy %s: %w", s.tmp, err)
	}
	if check != nil {
		if err := check(s.f); err != nil {
			return false, err
		}
	}
	if err := s.finish(); err != nil {
		return false, err
	}
	renamed, err = m.commit(s)
	sr.done(n)
	return renamed, err
}

const copyChunk = 1 << 20

// copyCRC copies exactly n bytes of src from offset 0 to w and returns their CRC-32C.
func copyCRC(ctx context.Context, w io.Writer, src io.ReaderAt, n int64) (uint32, error) {
	return readCRC(ctx, src, n, nil, w)
}

// crcOf reads n bytes of r and returns their CRC-32C.
func crcOf(ctx context.Context, r io.ReaderAt, n int64, lim *limiter) (uint32, error) {
	return readCRC(ctx, r, n, lim, nil)
}

// readCRC reads exactly n bytes of r from offset 0 in chunks, paced by lim (nil: not
// paced), writes each chunk to w (nil: nowhere) and returns their CRC-32C.
func readCRC(ctx context.Context, r io.ReaderAt, n int64, lim *limiter, w io.Writer) (uint32, error) {
	buf := make([]byte, min(n, copyChunk))
	var c uint32
	for off := int64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b := buf[:min(int64(len(buf)), n-off)]
		if err := lim.wait(ctx, len(b)); err != nil {
			return 0, err
		}
		if k, err := r.ReadAt(b, off); k < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("read at %d: %w", off, err)
		}
		c = crc32.Update(c, castagnoli, b)
		if w != nil {
			if _, err := w.Write(b); err != nil {
				return 0, err
			}
		}
		off += int64(len(b))
	}
	return c, nil
}

// copyAux copies everything in srcDir except book files and temporaries to dstDir,
// recursively, each file through copyFile. With onlyMissing it copies just the files dstDir
// lacks (recovery finishing a move whose copy may predate a late meta.json). Symlinks and
// special files are skipped: the resolver never serves them.
func (m *mover) copyAux(ctx context.Context, srcDir, dstDir string, top, onlyMissing bool) error {
	ents, err := m.fs.ReadDir(srcDir)
	if err != nil {
		return fmt.Errorf("list %s: %w", srcDir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if layout.IsTemp(name) || (top && bookNames[name]) {
			continue
		}
		src, dst := filepath.Join(srcDir, name), filepath.Join(dstDir, name)
		switch {
		case e.IsDir():
			if err := vfs.MkdirAll(m.fs, dst); err != nil {
				return fmt.Errorf("mkdir %s: %w", dst, err)
			}
			if err := m.copyAux(ctx, src, dst, false, onlyMissing); err != nil {
				return err
			}
		case e.Type().IsRegular():
			if onlyMissing && vfs.Exists(m.fs, dst) {
				continue
			}
			if _, err := m.copyFile(ctx, src, dst, -1, nil, nil); err != nil {
				return err
			}
		default:
			m.log.Warn("not moving a non-regular file", "file", src)
		}
	}
	return nil
}

// removeFiles removes names from dir in order, fsyncing the directory after each, so
// the first is gone for good before the next goes. Missing files are fine.
func (m *mover) removeFiles(dir string, names ...string) error {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := m.fs.Remove(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("remove %s: %w", p, err)
		}
		if err := m.fs.SyncDir(dir); err != nil {
			return fmt.Errorf("fsync dir %s: %w", dir, err)
		}
	}
	return nil
}

// removeTree removes dir and everything below it, children first, fsyncing each
// directory after its entries are gone and the parent after dir itself.
func (m *mover) removeTree(dir string) error {
	ents, err := readDirIfExists(m.fs, dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := m.removeTree(p); err != nil {
				return err
			}
			continue
		}
		if err := m.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	if len(ents) > 0 {
		if err := m.fs.SyncDir(dir); err != nil {
			return fmt.Errorf("fsync dir %s: %w", dir, err)
		}
	}
	if err := m.fs.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if err := m.fs.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("fsync dir %s: %w", filepath.Dir(dir), err)
	}
	return nil
}

// removeSource deletes a moved partition's source directory: its book files first (in
// the order given), then the rest.
func (m *mover) removeSource(dir string, book ...string) error {
	if err := m.removeFiles(dir, book...); err != nil {
		return err
	}
	return m.removeTree(dir)
}

// readSmall reads a whole small file (index, stub), refusing one above limit bytes.
func (m *mover) readSmall(p string, limit int64) ([]byte, error) {
	f, err := m.fs.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return format.ReadAllLimit(f, p, limit)
}

// writeSmall writes b to p atomically, reading it back before the rename.
func (m *mover) writeSmall(p string, b []byte) (renamed bool, err error) {
	s, err := m.stage(p)
	if err != nil {
		return false, err
	}
	defer m.discardUnless(&renamed, s)
	if _, err := s.f.Write(b); err != nil {
		return false, fmt.Errorf("write %s: %w", s.tmp, err)
	}
	if err := s.f.Sync(); err != nil {
		return false, fmt.Errorf("fsync %s: %w", s.tmp, err)
	}
	back := make([]byte, len(b)+1)
	if k, _ := s.f.ReadAt(back, 0); k != len(b) || string(back[:k]) != string(b) {
		return false, fmt.Errorf("write %s: %w: read back %d bytes that differ", s.tmp, ErrVerify, k)
	}
	if err := s.finish(); err != nil {
		return false, err
	}
	return m.commit(s)
}
