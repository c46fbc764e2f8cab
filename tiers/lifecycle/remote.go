package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/lifecycle/vfs"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// remoteCleanupTimeout bounds the deletes of a rollback, which run even after ctx ended.
const remoteCleanupTimeout = 30 * time.Second

// ErrUploadMismatch: the object store holds something other than what was uploaded
// (size, SHA-256 or ETag). The local copy stays; the remote objects were deleted.
var ErrUploadMismatch = errors.New("uploaded object does not match")

// upload is cold -> remote, the architecture's object storage protocol:
//
//  0. write the upload intent (so a crash mid-upload leaves no orphan objects)
//  1. upload book.q.zst and book.q.zst.idx
//  2. verify size and SHA-256 (and ETag / server checksum where they mean something)
//     2b. upload and verify the files that travel with the book (meta.json, index/,
//     derived/), then the bucket's copy of the stub, last (publish.go)
//  3. write book.q.zst.remote.json atomically        <- commit point
//  4. delete the intent, then the local .zst (the book: readers switch to the stub),
//     then the .idx
//
// Any failure before 3 deletes the uploaded objects and leaves the local copy as it was.
func (m *Manager) upload(ctx context.Context, mv Move, progress func(int64)) error {
	if m.store == nil {
		return fmt.Errorf("%s: %w", mv.Key, tiers.ErrNoRemote)
	}
	dir := m.dirOf(layout.Cold, mv.Key)
	zp, ip := filepath.Join(dir, layout.ZstName), filepath.Join(dir, layout.IdxName)
	if vfs.Exists(m.fs, filepath.Join(dir, layout.StubName)) {
		return fmt.Errorf("%s already has a remote stub: %w", dir, ErrConflict)
	}
	ib, idx, err := m.readIdx(ip)
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	zf, err := m.fs.Open(zp)
	if err != nil {
		return fmt.Errorf("open %s: %w", zp, err)
	}
	defer zf.Close()
	st, err := zf.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", zp, err)
	}
	if st.Size() != idx.ZstSize {
		return fmt.Errorf("%s: %w: %d bytes, its index says %d", zp, ErrVerify, st.Size(), idx.ZstSize)
	}
	hdr, err := readZstHeader(zf, st.Size(), idx, zp)
	if err != nil {
		return err
	}
	zstSHA := hex.EncodeToString(idx.SHA256[:])
	if idx.SHA256 == [32]byte{} { // an index rebuilt from the seek table carries no hash
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(&sourceReader{ctx: ctx, r: zf, lim: m.mv.lim}, 0, st.Size())); err != nil {
			return fmt.Errorf("hash %s: %w", zp, err)
		}
		zstSHA = hex.EncodeToString(h.Sum(nil))
	}
	idxSum := sha256.Sum256(ib)
	idxSHA := hex.EncodeToString(idxSum[:])
	zk, ik := stub.Keys(mv.Key)

	intent, _ := json.Marshal(map[string]any{"zst": m.store.URI(zk), "idx": m.store.URI(ik), "started": time.Now().UTC()})
	if renamed, err := m.mv.writeSmall(filepath.Join(dir, intentName), append(intent, '\n')); err != nil {
		if renamed {
			m.rollbackUpload(mv.Key, dir)
		}
		return fmt.Errorf("write upload intent: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			m.rollbackUpload(mv.Key, dir)
		}
	}()

	t0 := time.Now()
	zr := &sourceReader{ctx: ctx, r: zf, lim: m.mv.lim, progress: progress}
	zinfo, err := m.store.Put(ctx, zk, zr, st.Size(), objstore.PutOptions{SHA256: zstSHA})
	if err != nil {
		return fmt.Errorf("upload %s: %w", zp, err)
	}
	iinfo, err := m.store.Put(ctx, ik, bytes.NewReader(ib), int64(len(ib)), objstore.PutOptions{SHA256: idxSHA})
	if err != nil {
		return fmt.Errorf("upload %s: %w", ip, err)
	}
	tPut := time.Since(t0)
	if err := m.verifyRemote(ctx, zk, st.Size(), zstSHA, zinfo); err != nil {
		return err
	}
	if err := m.verifyRemote(ctx, ik, int64(len(ib)), idxSHA, iinfo); err != nil {
		return err
	}

	files, err := m.uploadFiles(ctx, mv.Key, dir)
	if err != nil {
		return err
	}
	tVerify := time.Since(t0) - tPut
	sb, err := m.encodeStub(mv.Key, &stub.Stub{
		Zst:              stub.Object{URI: m.store.URI(zk), Size: st.Size(), ETag: zinfo.ETag, SHA256: zstSHA},
		Idx:              stub.Object{URI: m.store.URI(ik), Size: int64(len(ib)), ETag: iinfo.ETag, SHA256: idxSHA},
		UncompressedSize: idx.Size,
		HeaderSize:       int64(hdr.HeaderSize),
		UploadedAt:       m.now().UTC().Truncate(time.Millisecond),
		Files:            files,
	}, StubPath(dir))
	if err != nil {
		return err
	}
	// The bucket's copy of the stub goes last: its presence says the partition is whole.
	if err := m.putStubObject(ctx, mv.Key, sb); err != nil {
		return err
	}
	renamed, err := m.mv.writeSmall(StubPath(dir), sb)
	committed = renamed
	if err != nil {
		return fmt.Errorf("write stub: %w", err)
	}
	// Past the commit point: finish even if ctx ended.
	if err := m.mv.removeFiles(dir, intentName); err != nil {
		return err
	}
	zr.done(st.Size())
	if err := m.mv.removeFiles(dir, layout.ZstName, layout.IdxName); err != nil {
		return err
	}
	m.log.Debug("upload steps", "partition", mv.Key.String(), "put_s", tPut.Seconds(), "verify_s", tVerify.Seconds(),
		"stub_and_delete_s", (time.Since(t0) - tPut - tVerify).Seconds(), "parts", zinfo.Parts)
	return nil
}

// StubPath is the stub's path in a cold partition directory.
func StubPath(dir string) string { return filepath.Join(dir, layout.StubName) }

// verifyRemote checks an uploaded object against what was sent: the size and SHA-256 Put
// reports, then a Head: size, the SHA-256 the store recorded, the ETag (same object as the
// Put; for file:// it is the SHA-256 itself), and the server's full-object checksum when
// the server computed one. remote_verify = "readback" also downloads and hashes it.
func (m *Manager) verifyRemote(ctx context.Context, key string, size int64, sha string, put objstore.ObjectInfo) error {
	uri := m.store.URI(key)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", uri, ErrUploadMismatch, fmt.Sprintf(format, args...))
	}
	if put.Size != size || put.SHA256 != sha {
		return bad("put reports %d bytes sha256 %s, sent %d bytes sha256 %s", put.Size, put.SHA256, size, sha)
	}
	head, err := m.store.Head(ctx, key)
	if err != nil {
		return fmt.Errorf("verify %s: %w", uri, err)
	}
	if head.Size != size {
		return bad("store holds %d bytes, sent %d", head.Size, size)
	}
	if head.SHA256 != sha {
		return bad("store records sha256 %q, sent %s", head.SHA256, sha)
	}
	if put.ETag != "" && head.ETag != "" && put.ETag != head.ETag {
		return bad("etag %q after upload, %q now", put.ETag, head.ETag)
	}
	if strings.HasPrefix(uri, "file://") && head.ETag != sha {
		return bad("file store etag %q is not the sha256 %s", head.ETag, sha)
	}
	if head.ChecksumType == "FULL_OBJECT" && head.ServerChecksum != "" {
		raw, _ := hex.DecodeString(sha)
		if want := base64.StdEncoding.EncodeToString(raw); head.ServerChecksum != want {
			return bad("server checksum %q, want %q", head.ServerChecksum, want)
		}
	}
	if m.cfg.RemoteVerify == RemoteVerifyRead {
		rc, err := m.store.GetRange(ctx, key, 0, size)
		if err != nil {
			return fmt.Errorf("verify %s: read back: %w", uri, err)
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.Copy(h, rc)
		if err != nil {
			return fmt.Errorf("verify %s: read back: %w", uri, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sha {
			return bad("read back %d bytes sha256 %s", n, got)
		}
	}
	return nil
}

// rollbackUpload deletes a partition's remote objects and then its intent. If the store
// cannot be reached the intent stays, and the next recovery tries again.
func (m *Manager) rollbackUpload(k layout.Key, dir string) {
	if err := m.deleteRemote(k); err != nil {
		m.log.Warn("rollback upload: remote objects left for the next recovery", "partition", k.String(), "err", err)
		return
	}
	if err := m.mv.removeFiles(dir, intentName); err != nil {
		m.log.Warn("rollback upload: intent left for the next recovery", "partition", k.String(), "err", err)
	}
}

// deleteRemote deletes every object of partition k: the stub copy first (so that research
// hosts stop seeing the partition before its files go), then the rest under its prefix.
func (m *Manager) deleteRemote(k layout.Key) error {
	if m.store == nil {
		return tiers.ErrNoRemote
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteCleanupTimeout)
	defer cancel()
	if err := m.store.Delete(ctx, stub.ObjectKey(k)); err != nil {
		return err
	}
	objs, err := m.store.List(ctx, k.Dir()+"/")
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		if err := m.store.Delete(ctx, o.Key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remoteAt reads one object by ranged GETs.
type remoteAt struct {
	ctx   context.Context
	store objstore.Store
	key   string
	size  int64
}

func (r *remoteAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-off)
	if err := objstore.ReadRange(r.ctx, r.store, r.key, off, p[:n]); err != nil {
		return 0, err
	}
	if int(n) < len(p) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// openRemote opens a stub's book for reading (recovery compares it with another copy).
func (m *Manager) openRemote(ctx context.Context, k layout.Key, dir string) (*stub.Stub, *qzst.Reader, error) {
	s, zk, ik, err := m.readStub(k, dir)
	if err != nil {
		return nil, nil, err
	}
	ib := make([]byte, s.Idx.Size)
	if err := objstore.ReadRange(ctx, m.store, ik, 0, ib); err != nil {
		return nil, nil, err
	}
	if sum := sha256.Sum256(ib); hex.EncodeToString(sum[:]) != s.Idx.SHA256 {
		return nil, nil, fmt.Errorf("%s: %w: sha256 %x, stub says %s", s.Idx.URI, objstore.ErrChecksumMismatch, sum, s.Idx.SHA256)
	}
	idx, err := qzst.ParseIndex(ib, s.Idx.URI)
	if err != nil {
		return nil, nil, err
	}
	r, err := qzst.Open(&remoteAt{ctx: ctx, store: m.store, key: zk, size: s.Zst.Size}, s.Zst.Size, idx, nil, qzst.ReaderOptions{Name: s.Zst.URI, Readahead: -1})
	if err != nil {
		return nil, nil, err
	}
	return s, r, nil
}

// readStub reads, parses and validates a partition's stub.
func (m *Manager) readStub(k layout.Key, dir string) (s *stub.Stub, zk, ik string, err error) {
	p := StubPath(dir)
	b, err := m.mv.readSmall(p, 1<<20)
	if err != nil {
		return nil, "", "", err
	}
	s, err = stub.Parse(b, p)
	if err != nil {
		return nil, "", "", err
	}
	if m.store == nil {
		return nil, "", "", fmt.Errorf("%s: %w", p, tiers.ErrNoRemote)
	}
	zk, ik, err = s.Validate(m.store, k, p)
	return s, zk, ik, err
}

// readZstHeader reads the book header at the start of a seekable .zst.
func readZstHeader(f io.ReaderAt, size int64, idx *qzst.Index, name string) (format.Header, error) {
	zr, err := qzst.Open(f, size, idx, nil, qzst.ReaderOptions{Name: name, Readahead: -1})
	if err != nil {
		return format.Header{}, err
	}
	defer zr.Close()
	return format.ReadHeader(zr, idx.Size, name)
}
