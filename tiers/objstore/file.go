package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/chronicle/chronicle/internal/fileutil"
	"golang.org/x/sys/unix"
)

// xattrSHA256 caches an object's digest on its inode as "hex size mtime_ns";
// size and mtime let Head notice a file changed behind our back.
const xattrSHA256 = "user.chronicle.sha256"

// ErrKeyConflict: the file backend, like S3 gateways over a POSIX filesystem, cannot hold
// both "a" and "a/b".
var ErrKeyConflict = errors.New("key conflicts with an existing key")

// fileStore keeps objects as plain files under a root directory: key "a/b"
// is root/a/b. Writes go to a temp file in the same directory, are fsynced
// and renamed into place, and the directory is fsynced, so a crash leaves
// either the old object or the new one (plus, at worst, a temp file that
// List ignores).
type fileStore struct {
	loc  Location
	root string
	log  *slog.Logger
}

func newFileStore(loc Location, log *slog.Logger) (*fileStore, error) {
	if err := os.MkdirAll(loc.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	return &fileStore{loc: loc, root: loc.Dir, log: log}, nil
}

func (s *fileStore) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

func (s *fileStore) URI(key string) string            { return s.loc.URI(key) }
func (s *fileStore) KeyOf(uri string) (string, error) { return s.loc.KeyOf(uri) }
func (s *fileStore) Close() error                     { return nil }

func (s *fileStore) Put(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("put: %w", err)
	}
	if size < 0 {
		return ObjectInfo{}, fmt.Errorf("put %q: negative size %d: %w", key, size, ErrShortInput)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	dst := s.path(key)
	if err := s.mkdirAll(filepath.Dir(dst)); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix+"*")
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	// One pass: the bytes hashed are the bytes written.
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.NewSectionReader(r, 0, size)})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: copy: %w", key, err)
	}
	if n != size {
		return ObjectInfo{}, fmt.Errorf("put %q: read %d of %d bytes: %w", key, n, size, ErrShortInput)
	}
	d := sum(h)
	if err := checkExpected(key, d, opts.SHA256); err != nil {
		return ObjectInfo{}, err
	}
	if err := tmp.Sync(); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: fsync: %w", key, err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	s.setCachedSHA(tmp, d, st)
	if err := tmp.Close(); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: close: %w", key, err)
	}
	info := ObjectInfo{
		Key: key, Size: size, ETag: hexOf(d), SHA256: hexOf(d),
		ServerChecksum: b64Of(d), ChecksumType: "FULL_OBJECT", Parts: 1, ModTime: st.ModTime(),
	}
	if opts.IfAbsent {
		// link(2) fails with EEXIST when the name exists, atomically, on local
		// filesystems and NFS alike: the create-only counterpart of the rename below.
		err := os.Link(tmp.Name(), dst)
		os.Remove(tmp.Name())
		done = true
		if err != nil {
			return s.existing(ctx, key, dst, info, err)
		}
	} else {
		if err := os.Rename(tmp.Name(), dst); err != nil {
			if isDirErr(err) {
				return ObjectInfo{}, fmt.Errorf("put %q: a key below it exists: %w", key, ErrKeyConflict)
			}
			return ObjectInfo{}, fmt.Errorf("put %q: rename: %w", key, err)
		}
		done = true
	}
	if err := fileutil.SyncDir(filepath.Dir(dst)); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	return info, nil
}

// existing settles a create-only Put whose link failed: the same bytes already there are
// success (Existed), other bytes ErrExists, a directory of other keys ErrKeyConflict.
func (s *fileStore) existing(ctx context.Context, key, dst string, want ObjectInfo, linkErr error) (ObjectInfo, error) {
	if !errors.Is(linkErr, fs.ErrExist) {
		if isDirErr(linkErr) {
			return ObjectInfo{}, fmt.Errorf("put %q: %w: %v", key, ErrKeyConflict, linkErr)
		}
		return ObjectInfo{}, fmt.Errorf("put %q: link: %w", key, linkErr)
	}
	if st, err := os.Lstat(dst); err == nil && st.IsDir() {
		return ObjectInfo{}, fmt.Errorf("put %q: a key below it exists: %w", key, ErrKeyConflict)
	}
	got, err := s.Head(ctx, key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: if absent: %w", key, err)
	}
	if got.Size != want.Size || got.SHA256 != want.SHA256 {
		return ObjectInfo{}, fmt.Errorf("put %q: holds %d bytes sha256 %s, not the %d bytes sha256 %s sent: %w",
			key, got.Size, got.SHA256, want.Size, want.SHA256, ErrExists)
	}
	got.Existed, got.Parts = true, 1
	return got, nil
}

// Conditional: a file store always creates objects only if absent when asked.
func (s *fileStore) Conditional(context.Context) (bool, error) { return true, nil }

// mkdirAll creates dir and its missing parents, fsyncing each new entry's
// parent so the path survives a crash.
func (s *fileStore) mkdirAll(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is an object: %w", dir, ErrKeyConflict)
		}
		return nil
	}
	if dir == s.root || !errors.Is(err, fs.ErrNotExist) {
		if isDirErr(err) {
			return fmt.Errorf("%s: a parent is an object: %w", dir, ErrKeyConflict)
		}
		return err
	}
	if err := s.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fileutil.SyncDir(filepath.Dir(dir))
}

func isDirErr(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY)
}

func (s *fileStore) setCachedSHA(f *os.File, d digest, st os.FileInfo) {
	v := fmt.Sprintf("%s %d %d", hexOf(d), st.Size(), st.ModTime().UnixNano())
	if err := unix.Fsetxattr(int(f.Fd()), xattrSHA256, []byte(v), 0); err != nil {
		// Without xattrs Head re-hashes the file; correct, only slower.
		s.log.Debug("objstore: cannot cache sha256 in xattr", "file", f.Name(), "err", err)
	}
}

// cachedSHA returns the digest recorded on f if it still matches f's size and
// mtime, else "".
func cachedSHA(f *os.File, st os.FileInfo) string {
	buf := make([]byte, 128)
	n, err := unix.Fgetxattr(int(f.Fd()), xattrSHA256, buf)
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(buf[:n]))
	if len(fields) != 3 || !validHexSHA256(fields[0]) {
		return ""
	}
	size, err1 := strconv.ParseInt(fields[1], 10, 64)
	mtime, err2 := strconv.ParseInt(fields[2], 10, 64)
	if err1 != nil || err2 != nil || size != st.Size() || mtime != st.ModTime().UnixNano() {
		return ""
	}
	return fields[0]
}

// open opens key's file for reading, mapping absence to ErrNotFound.
func (s *fileStore) open(op, key string) (*os.File, os.FileInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil, fmt.Errorf("%s %q: %w", op, key, ErrNotFound)
		}
		return nil, nil, fmt.Errorf("%s %q: %w", op, key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s %q: %w", op, key, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s %q: not a regular file: %w", op, key, ErrNotFound)
	}
	return f, st, nil
}

func (s *fileStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("head: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("head %q: %w", key, err)
	}
	f, st, err := s.open("head", key)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer f.Close()
	sha := cachedSHA(f, st)
	if sha == "" {
		h := sha256.New()
		if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: f}); err != nil {
			return ObjectInfo{}, fmt.Errorf("head %q: hash: %w", key, err)
		}
		d := sum(h)
		sha = hexOf(d)
		s.setCachedSHA(f, d, st)
	}
	d, _ := decodeHex(sha)
	return ObjectInfo{
		Key: key, Size: st.Size(), ETag: sha, SHA256: sha,
		ServerChecksum: b64Of(d), ChecksumType: "FULL_OBJECT", ModTime: st.ModTime(),
	}, nil
}

func decodeHex(s string) (d digest, ok bool) {
	if !validHexSHA256(s) {
		return d, false
	}
	_, err := hex.Decode(d[:], []byte(s))
	return d, err == nil
}

func (s *fileStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkRangeArgs(key, off, n); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	f, st, err := s.open("get", key)
	if err != nil {
		return nil, err
	}
	if off+n > st.Size() {
		f.Close()
		return nil, fmt.Errorf("get: %w", outOfRange(key, off, n, st.Size()))
	}
	return &fileRange{f: f, sr: io.NewSectionReader(f, off, n), key: key, off: off, n: n}, nil
}

// fileRange yields exactly n bytes; a file truncated under it is an error.
type fileRange struct {
	f      *os.File
	sr     *io.SectionReader
	key    string
	off, n int64
	got    int64
}

func (r *fileRange) Read(p []byte) (int, error) {
	k, err := r.sr.Read(p)
	r.got += int64(k)
	if err == io.EOF && r.got < r.n {
		return k, fmt.Errorf("get %q [%d,+%d): file ended after %d bytes: %w", r.key, r.off, r.n, r.got, io.ErrUnexpectedEOF)
	}
	return k, err
}

func (r *fileRange) Close() error { return r.f.Close() }

func (s *fileStore) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	p := s.path(key)
	if st, err := os.Lstat(p); err == nil && st.IsDir() {
		return nil // a directory of other keys, not an object
	}
	err := os.Remove(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err == nil {
		if err := fileutil.SyncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("delete %q: %w", key, err)
		}
	}
	return nil
}

func (s *fileStore) ListDir(ctx context.Context, dir string) ([]string, []ObjectInfo, error) {
	if err := checkDir(dir); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	p := s.root
	if dir != "" {
		p = s.path(strings.TrimSuffix(dir, "/"))
	}
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w: %w", s.URI(dir), ErrUnavailable, err)
	}
	var dirs []string
	var objs []ObjectInfo
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) || ValidateKey(dir+name) != nil {
			continue
		}
		switch {
		case e.IsDir():
			dirs = append(dirs, name)
		case e.Type().IsRegular():
			if fi, err := e.Info(); err == nil {
				objs = append(objs, ObjectInfo{Key: dir + name, Size: fi.Size(), ModTime: fi.ModTime()})
			}
		}
	}
	return dirs, objs, nil // os.ReadDir sorts by name
}

func (s *fileStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk only below the deepest directory the prefix pins down.
	start := s.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if err := checkPath(prefix[:i]); err != nil {
			return nil, nil // no valid key can have this prefix
		}
		start = s.path(prefix[:i])
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) || ValidateKey(key) != nil {
			return nil
		}
		info := ObjectInfo{Key: key}
		if f, err := os.Open(p); err == nil {
			if st, err := f.Stat(); err == nil {
				info.Size, info.ModTime = st.Size(), st.ModTime()
				info.SHA256 = cachedSHA(f, st)
				info.ETag = info.SHA256
			}
			f.Close()
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// ctxReader lets long copies notice cancellation between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var _ Store = (*fileStore)(nil)
