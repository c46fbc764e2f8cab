package lifecycle

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
)

// What stops a local move before it starts.
var (
	// ErrNotSealed: the book is still being written (no sealed flag, or its file is longer
	// than its committed length because the writer is closing it). It is never moved.
	ErrNotSealed = errors.New("book is not sealed")
	// ErrNoSource: the partition is no longer where the plan found it.
	ErrNoSource = errors.New("partition not found in its source tier")
	// ErrConflict: a partition is in two tiers with different content, and both copies are
	// intact. Nothing is deleted; readers keep seeing the higher tier. An operator decides.
	ErrConflict = errors.New("partition differs between tiers")
)

func (m *Manager) dirOf(t layout.Tier, k layout.Key) string {
	if t == layout.Remote {
		t = layout.Cold
	}
	return filepath.Join(m.roots.Local(t), filepath.FromSlash(k.Dir()))
}

// sealedBook checks the source book of a move: a plain canonical book, sealed, and
// trimmed to its committed length (a writer that set the flag may still be truncating).
func (m *Manager) sealedBook(p string) (format.Header, int64, error) {
	h, size, err := m.readBookHeader(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return h, 0, fmt.Errorf("%s: %w", p, ErrNoSource)
		}
		return h, 0, err
	}
	if !h.Sealed || size != int64(h.Committed) {
		return h, 0, fmt.Errorf("%s: %w (sealed %v, %d bytes, committed %d)", p, ErrNotSealed, h.Sealed, size, h.Committed)
	}
	return h, size, nil
}

// holdsBook reports whether dir has any book file (so it must not be written into).
func (m *Manager) holdsBook(dir string) bool {
	for _, n := range []string{layout.BookName, layout.ZstName, layout.StubName} {
		if vfs.Exists(m.fs, filepath.Join(dir, n)) {
			return true
		}
	}
	return false
}

// rollbackDest removes what a failed move wrote into a destination that held no book.
func (m *Manager) rollbackDest(dir string) {
	if m.holdsBook(dir) {
		return
	}
	if err := m.mv.removeTree(dir); err != nil {
		m.log.Warn("rollback: destination left for recovery", "dir", dir, "err", err)
	}
}

// moveLocal is hot -> warm: a plain copy of a sealed book and its files.
func (m *Manager) moveLocal(ctx context.Context, mv Move, progress func(int64)) error {
	src, dst := m.dirOf(mv.From, mv.Key), m.dirOf(mv.To, mv.Key)
	srcBook, dstBook := filepath.Join(src, layout.BookName), filepath.Join(dst, layout.BookName)
	h, size, err := m.sealedBook(srcBook)
	if err != nil {
		return err
	}
	if m.holdsBook(dst) {
		return fmt.Errorf("%s already holds a book: %w", dst, ErrConflict)
	}
	committed := false
	defer func() {
		if !committed {
			m.rollbackDest(dst)
		}
	}()
	if err := vfs.MkdirAll(m.fs, dst); err != nil {
		return fmt.Errorf("mkdir %s: %w", dst, err)
	}
	// meta.json, index/ and derived/ first: the book, which makes the copy visible to the
	// resolver, comes last.
	if err := m.mv.copyAux(ctx, src, dst, true, false); err != nil {
		return err
	}
	renamed, err := m.mv.copyFile(ctx, srcBook, dstBook, size, progress, func(f vfs.File) error {
		got, err := format.ReadHeader(f, size, f.Name())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrVerify, err)
		}
		if !got.Sealed || got.Committed != h.Committed {
			return fmt.Errorf("%s: %w: header sealed %v committed %d, source %d", f.Name(), ErrVerify, got.Sealed, got.Committed, h.Committed)
		}
		return nil
	})
	committed = renamed
	if err != nil {
		return err
	}
	// Past the commit point: the copy is complete and durable; finish even if ctx ended.
	return m.mv.removeSource(src, layout.BookName)
}

// compress is warm -> cold (or a plain book already in cold, in place): transcode to a
// seekable .zst and its .idx, verify the decoded bytes against the source, commit the
// .idx then the .zst, then remove the source.
func (m *Manager) compress(ctx context.Context, mv Move, progress func(int64)) error {
	src, dst := m.dirOf(mv.From, mv.Key), m.dirOf(layout.Cold, mv.Key)
	inPlace := src == dst
	srcBook := filepath.Join(src, layout.BookName)
	h, size, err := m.sealedBook(srcBook)
	if err != nil {
		return err
	}
	if !inPlace && m.holdsBook(dst) {
		return fmt.Errorf("%s already holds a book: %w", dst, ErrConflict)
	}
	if inPlace && (vfs.Exists(m.fs, filepath.Join(dst, layout.ZstName)) || vfs.Exists(m.fs, filepath.Join(dst, layout.StubName))) {
		return fmt.Errorf("%s holds book.q and a compressed or remote book: %w", dst, ErrConflict)
	}
	committed := false
	var zs, xs *staged
	defer func() {
		m.mv.discard(zs, xs)
		if !committed && !inPlace {
			m.rollbackDest(dst)
		}
	}()
	if err := vfs.MkdirAll(m.fs, dst); err != nil {
		return fmt.Errorf("mkdir %s: %w", dst, err)
	}
	if !inPlace {
		if err := m.mv.copyAux(ctx, src, dst, true, false); err != nil {
			return err
		}
	}
	in, err := m.fs.Open(srcBook)
	if err != nil {
		return fmt.Errorf("open %s: %w", srcBook, err)
	}
	defer in.Close()
	if err := m.deriveIfWanted(ctx, mv, in, h, size, filepath.Join(dst, layout.DerivedDir, "book.parquet")); err != nil {
		return err
	}
	if zs, err = m.mv.stage(filepath.Join(dst, layout.ZstName)); err != nil {
		return err
	}
	if xs, err = m.mv.stage(filepath.Join(dst, layout.IdxName)); err != nil {
		return err
	}
	t0 := time.Now()
	sr := &sourceReader{ctx: ctx, r: in, lim: m.mv.lim, progress: progress}
	res, err := m.transcode(ctx, mv, sr, in, size, zs, xs, srcBook)
	if err != nil {
		return err
	}
	tTranscode := time.Since(t0)
	idx, err := m.verifyStaged(ctx, zs, xs, res, size)
	if err != nil {
		return err
	}
	tVerify := time.Since(t0) - tTranscode
	if err := zs.finish(); err != nil {
		return err
	}
	if err := xs.finish(); err != nil {
		return err
	}
	renamed, err := m.mv.commit(xs, zs) // the index first: a visible .zst always has its .idx
	committed = renamed
	if renamed {
		zs, xs = nil, nil
	}
	if err != nil {
		return err
	}
	sr.done(size)
	if inPlace {
		err = m.mv.removeFiles(src, layout.BookName)
	} else {
		err = m.mv.removeSource(src, layout.BookName)
	}
	m.log.Debug("compress steps", "partition", mv.Key.String(), "transcode_s", tTranscode.Seconds(),
		"fsync_and_verify_s", tVerify.Seconds(), "commit_and_delete_s", (time.Since(t0) - tTranscode - tVerify).Seconds(),
		"ratio", float64(size)/float64(idx.ZstSize))
	return err
}

// deriveIfWanted writes derived/book.parquet when configured and missing. Data parquet
// cannot represent (ErrDeriveRange) is logged and the move goes on without it.
func (m *Manager) deriveIfWanted(ctx context.Context, mv Move, in vfs.File, h format.Header, size int64, parquet string) error {
	if m.cfg.Derive != DeriveParquet || vfs.Exists(m.fs, parquet) {
		return nil
	}
	err := m.derive(ctx, in, h, size, parquet)
	if err == nil {
		return nil
	}
	m.met.DeriveFailures.Inc()
	if !errors.Is(err, ErrDeriveRange) {
		return err
	}
	m.log.Error("derive parquet impossible; moving without it", "partition", mv.Key.String(), "err", err)
	return nil
}

// transcode writes the seekable zstd book and its index into the staged files: every
// frame is decoded and compared with its source block before it is written (VerifyFrames).
func (m *Manager) transcode(ctx context.Context, mv Move, sr *sourceReader, in vfs.File, size int64, zs, xs *staged, srcBook string) (*qzst.Result, error) {
	zw, xw := newAsyncWriter(zs.f), bufio.NewWriterSize(xs.f, 64<<10)
	res, err := qzst.TranscodeTo(ctx, sr, size, zw, xw, qzst.Options{
		BlockSize: m.cfg.BlockSize, Level: m.cfg.ZstdLevel, Concurrency: m.cfg.Threads, Logger: m.log,
		MaxInFlight: 32 << 20, Encoder: m.cfg.ZstdEncoder, VerifyFrames: true, Name: zs.tmp})
	if cerr := zw.Close(); cerr != nil {
		err = fmt.Errorf("write %s: %w", zs.tmp, cerr) // the cause behind any "earlier write failed"
	}
	if ce := (*qzst.CorruptError)(nil); errors.As(err, &ce) { // a frame failed its check
		return res, fmt.Errorf("transcode %s: %w: %w", srcBook, ErrVerify, err)
	}
	if err != nil {
		return res, fmt.Errorf("transcode %s: %w", srcBook, err)
	}
	if err := xw.Flush(); err != nil {
		return res, fmt.Errorf("write %s: %w", xs.tmp, err)
	}
	return res, nil
}

// verifyStaged makes the staged files durable and shows they hold what was verified: the
// index read back and parsed, and the .zst's size, seek table and SHA-256 read back
// against it.
func (m *Manager) verifyStaged(ctx context.Context, zs, xs *staged, res *qzst.Result, size int64) (*qzst.Index, error) {
	for _, s := range []*staged{zs, xs} {
		if err := s.f.Sync(); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", s.tmp, err)
		}
	}
	ib := make([]byte, res.IndexSize+1)
	if k, _ := xs.f.ReadAt(ib, 0); int64(k) != res.IndexSize {
		return nil, fmt.Errorf("read back %s: %w: %d bytes, wrote %d", xs.tmp, ErrVerify, k, res.IndexSize)
	}
	idx, err := qzst.ParseIndex(ib[:res.IndexSize], xs.tmp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if idx.Size != size || idx.SHA256 != res.SHA256 {
		return nil, fmt.Errorf("%s: %w: index read back describes %d bytes sha256 %x, transcoded %d bytes sha256 %x", xs.tmp, ErrVerify, idx.Size, idx.SHA256, size, res.SHA256)
	}
	st, err := zs.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", zs.tmp, err)
	}
	if err := qzst.Verify(ctx, zs.f, st.Size(), idx, qzst.VerifyOptions{Name: zs.tmp, HashOnly: true}); err != nil {
		var ce *qzst.CorruptError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w: %w", ErrVerify, err)
		}
		return nil, fmt.Errorf("verify %s: %w", zs.tmp, err)
	}
	return idx, nil
}

// derive writes derived/book.parquet from the source book and reads it back.
func (m *Manager) derive(ctx context.Context, src io.ReaderAt, h format.Header, size int64, dst string) error {
	if err := vfs.MkdirAll(m.fs, filepath.Dir(dst)); err != nil {
		return fmt.Errorf("%w: mkdir %s: %w", ErrDerive, filepath.Dir(dst), err)
	}
	s, err := m.mv.stage(dst)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDerive, err)
	}
	renamed := false
	defer m.mv.discardUnless(&renamed, s)
	w := bufio.NewWriterSize(s.f, 1<<20)
	sum, err := WriteParquet(ctx, &sourceReader{ctx: ctx, r: src, lim: m.mv.lim}, h, size, w)
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrDerive, s.tmp, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync %s: %w", ErrDerive, s.tmp, err)
	}
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDerive, err)
	}
	got, err := ReadParquetSum(s.f, st.Size(), s.tmp)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("%w: %s read back %+v, wrote %+v", ErrDerive, s.tmp, got, sum)
	}
	if err := s.finish(); err != nil {
		return fmt.Errorf("%w: %w", ErrDerive, err)
	}
	renamed, err = m.mv.commit(s)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDerive, err)
	}
	return nil
}

// readIdx reads and parses a local .idx.
func (m *Manager) readIdx(p string) ([]byte, *qzst.Index, error) {
	b, err := m.mv.readSmall(p, 1<<30)
	if err != nil {
		return nil, nil, err
	}
	idx, err := qzst.ParseIndex(b, p)
	if err != nil {
		return nil, nil, err
	}
	return b, idx, nil
}
