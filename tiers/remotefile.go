package tiers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/diskcache"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// Files of bucket partitions other than the book (meta.json, index/, derived/): up to
// wholeFileMax bytes they are fetched whole, checked against the SHA-256 the stub records
// and kept in the disk cache; larger ones (a day's parquet) are read by ranged GETs.
const wholeFileMax = 16 << 20

// openBucketFile opens a file of a partition only the bucket holds.
func (r *Resolver) openBucketFile(ctx context.Context, k layout.Key, bs *bstub, rest string) (Handle, error) {
	f := bs.s.File(rest)
	if f == nil {
		if _, isDir := bs.entries(rest); isDir {
			return nil, fmt.Errorf("%s/%s: %w", k.Dir(), rest, ErrIsDir)
		}
		return nil, fmt.Errorf("%s/%s: %w", k.Dir(), rest, ErrNotFound)
	}
	key := bs.fileKey(k, rest)
	uri := r.store.URI(key)
	h := &bytesHandle{sealedFile: sealedFile{tier: layout.Remote, src: uri, mtime: bs.s.UploadedAt, version: "remote:" + f.SHA256}}
	if f.Size > wholeFileMax {
		h.ra, h.size = &remoteAt{r: r, key: key, uri: uri, size: f.Size}, f.Size
		return h, nil
	}
	b, err := r.fetchVerified(ctx, key, uri, f.Size, f.SHA256)
	if err != nil {
		return nil, err
	}
	h.ra, h.size = bytes.NewReader(b), int64(len(b))
	return h, nil
}

// fetchVerified returns a whole small object whose size and SHA-256 are known: from the
// disk cache, or one GET checked against the hash (and then cached).
func (r *Resolver) fetchVerified(ctx context.Context, key, uri string, size int64, sha string) ([]byte, error) {
	ck := "f-" + sha
	if dc := r.opts.DiskCache; dc != nil {
		if b, ok := dc.Get(ck); ok && int64(len(b)) == size {
			return b, nil
		}
	}
	b, err := r.getAll(ctx, key, uri, size)
	if err != nil {
		return nil, err
	}
	if got := objstore.SHA256Hex(b); got != sha {
		return nil, fmt.Errorf("%s: %w: sha256 %s, stub says %s", uri, objstore.ErrChecksumMismatch, got, sha)
	}
	if dc := r.opts.DiskCache; dc != nil {
		dc.Put(ck, b)
	}
	return b, nil
}

// bytesHandle serves a remote file other than a book, sealed by construction.
type bytesHandle struct {
	sealedFile
	ra   io.ReaderAt
	size int64
}

func (h *bytesHandle) ReadAt(p []byte, off int64) (int, error) {
	return readBefore(h.ra, p, off, h.size)
}
func (h *bytesHandle) Size() int64  { return h.size }
func (h *bytesHandle) Close() error { return nil }

// frameCachedAt reads a remote .zst through the disk cache, one entry per compressed
// frame, named by the object's SHA-256 and the frame's number (content-addressed: never
// stale). Reads that are whole runs of frames (all the qzst reader makes of frame data)
// are served from the cache when every frame is there, and otherwise fetched with one GET
// whose frames are then cached; other reads (the seek table) pass through.
type frameCachedAt struct {
	src    io.ReaderAt
	frames []qzst.Frame
	id     string // object SHA-256
	cache  *diskcache.Cache
}

func (c *frameCachedAt) ReadAt(p []byte, off int64) (int, error) {
	n := len(c.frames)
	i := sort.Search(n, func(i int) bool { return int64(c.frames[i].CompressedOffset) >= off })
	end := off + int64(len(p))
	if i == n || int64(c.frames[i].CompressedOffset) != off {
		return c.src.ReadAt(p, off)
	}
	j := i // frames i..j-1 make up the read exactly, or the read is not frame-aligned
	for j < n && int64(c.frames[j].CompressedOffset) < end {
		j++
	}
	last := c.frames[j-1]
	if int64(last.CompressedOffset)+int64(last.CompressedSize) != end {
		return c.src.ReadAt(p, off)
	}
	hit := true
	for k := i; k < j && hit; k++ {
		f := c.frames[k]
		b, ok := c.cache.Get(c.key(k))
		if !ok || len(b) != int(f.CompressedSize) {
			hit = false
			break
		}
		copy(p[int64(f.CompressedOffset)-off:], b)
	}
	if hit {
		return len(p), nil
	}
	got, err := c.src.ReadAt(p, off)
	if err != nil && !(err == io.EOF && got == len(p)) {
		return got, err
	}
	for k := i; k < j; k++ {
		f := c.frames[k]
		s := int64(f.CompressedOffset) - off
		c.cache.Put(c.key(k), p[s:s+int64(f.CompressedSize)])
	}
	return got, nil
}

func (c *frameCachedAt) key(frame int) string { return fmt.Sprintf("z-%s-%d", c.id, frame) }

// StreamRange streams one compressed frame (qzst.RangeStreamer): from the disk cache, or from
// the store as it arrives, cached once all of it has been read. Other ranges are read whole.
func (c *frameCachedAt) StreamRange(off, n int64) (io.ReadCloser, error) {
	i := sort.Search(len(c.frames), func(i int) bool { return int64(c.frames[i].CompressedOffset) >= off })
	rs, streams := c.src.(qzst.RangeStreamer)
	if i == len(c.frames) || int64(c.frames[i].CompressedOffset) != off || int64(c.frames[i].CompressedSize) != n || !streams {
		b := make([]byte, n)
		if _, err := c.ReadAt(b, off); err != nil && !(err == io.EOF && n == int64(len(b))) {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	if b, ok := c.cache.Get(c.key(i)); ok && int64(len(b)) == n {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	rc, err := rs.StreamRange(off, n)
	if err != nil {
		return nil, err
	}
	return &teeFrame{rc: rc, buf: make([]byte, 0, n), put: func(b []byte) { c.cache.Put(c.key(i), b) }}, nil
}

// teeFrame keeps what a frame's stream delivered and caches it when the stream closes
// complete.
type teeFrame struct {
	rc  io.ReadCloser
	buf []byte
	put func([]byte)
}

func (t *teeFrame) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

func (t *teeFrame) Close() error {
	err := t.rc.Close()
	if len(t.buf) == cap(t.buf) {
		t.put(t.buf)
	}
	return err
}

// remoteBookSource is the ReaderAt the qzst reader of a remote book reads: the store,
// through the disk cache when there is one.
func (r *Resolver) remoteBookSource(s *stub.Stub, zk string, idx *qzst.Index) io.ReaderAt {
	src := &remoteAt{r: r, key: zk, uri: s.Zst.URI, size: s.Zst.Size}
	if r.opts.DiskCache == nil {
		return src
	}
	return &frameCachedAt{src: src, frames: idx.Frames, id: s.Zst.SHA256, cache: r.opts.DiskCache}
}
