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
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// remoteCleanupTimeout bounds the deletes of a rollback, which run even after ctx ended.
const remoteCleanupTimeout = 30 * time.Second

// ErrUploadMismatch: the object store holds something other than what was uploaded
// (size, SHA-256 or ETag). The local copy stays; the remote objects were deleted.
var ErrUploadMismatch = errors.New("uploaded object does not match")

// upload is cold -> remote, the architecture's object storage protocol, for a bucket many
// hosts share:
//
//  0. write the upload intent (the slot it will claim and its nonce), so a crash
//     mid-upload leaves nothing of its own behind and nothing of others is touched
//  1. claim the partition's key (claim.go): the first host to claim it is its only
//     writer. A key held by another host: claim this host's own slot, hosts/{id}, instead
//     (the intent rewritten first), and keep the partition local
//  2. upload book.q.zst and book.q.zst.idx (created only if absent where the store can),
//     verify size and SHA-256 (and ETag / server checksum where they mean something),
//     then the files that travel with the book (meta.json, index/, derived/), then the
//     bucket's copy of the stub, last (publish.go)
//  3. write book.q.zst.remote.json atomically (book.q.zst.collision.json when the key
//     was held by another host)                                <- commit point
//  4. delete the intent, then the local .zst (the book: readers switch to the stub),
//     then the .idx; a collision keeps them (readers keep the local copy)
//
// Any failure before 3 deletes what this upload put and its claim, and leaves the local
// copy as it was.
func (m *Manager) upload(ctx context.Context, mv Move, progress func(int64)) error {
	if m.store == nil {
		return fmt.Errorf("%s: %w", mv.Key, tiers.ErrNoRemote)
	}
	k := mv.Key
	dir := m.dirOf(layout.Cold, k)
	zp, ip := filepath.Join(dir, layout.ZstName), filepath.Join(dir, layout.IdxName)
	for _, name := range []string{layout.StubName, layout.CollisionName} {
		if vfs.Exists(m.fs, filepath.Join(dir, name)) {
			return fmt.Errorf("%s already has %s: %w", dir, name, ErrConflict)
		}
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
	slot := ""
	if md, err := m.readMeta(filepath.Join(dir, layout.MetaName)); err == nil && md.Merge != nil {
		slot = stub.SlotMerged // an A/B merge: its own slot, which the research view prefers
	}
	nonce := newNonce()
	in := intent{Host: m.host, Slot: &slot, Nonce: nonce}
	writeIntent := func() error {
		zk, ik := stub.KeysIn(k, *in.Slot)
		in.Zst, in.Idx, in.Started = m.store.URI(zk), m.store.URI(ik), time.Now().UTC()
		b, _ := json.Marshal(in)
		renamed, err := m.mv.writeSmall(filepath.Join(dir, intentName), append(b, '\n'))
		if err != nil && renamed {
			m.rollbackUpload(k, dir, in)
		}
		if err != nil {
			return fmt.Errorf("write upload intent: %w", err)
		}
		return nil
	}
	if err := writeIntent(); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			m.rollbackUpload(k, dir, in)
		}
	}()
	// Readers stop trusting the catalogs for this partition until this host's catalog
	// says what the upload did (catalog.go).
	if err := m.markPending(ctx, k); err != nil {
		return err
	}

	cr, err := m.claim(ctx, k, slot, nonce, zstSHA, idxSHA)
	if err != nil {
		return err
	}
	var col *stub.Collision
	if !cr.held && cr.adopt == nil {
		// Another host holds the key: this host's version goes to its own slot, and the
		// partition stays local.
		m.met.Collisions.Inc()
		m.log.Warn("another host holds the partition's key in the bucket: kept local, uploading under this host's slot",
			"partition", k.String(), "holder", cr.holderName(), "slot", stub.HostSlot(m.host))
		col = &stub.Collision{Partition: k.Dir(), Host: m.host, Holder: cr.holder, DetectedAt: m.now().UTC().Truncate(time.Millisecond)}
		if cr.holder == nil {
			col.HolderStub = cr.holderStub
		}
		slot = stub.HostSlot(m.host)
		*in.Slot = slot
		if err := writeIntent(); err != nil {
			return err
		}
		if cr, err = m.claim(ctx, k, slot, nonce, zstSHA, idxSHA); err != nil {
			return err
		}
		if !cr.held && cr.adopt == nil {
			return fmt.Errorf("%s: slot %s: %w (holder %s)", k, slot, ErrHostIDTaken, cr.holderName())
		}
	}
	var sb []byte
	if cr.adopt != nil {
		// This host's own finished upload of the same book, from an earlier life of this
		// cold tree: record it instead of uploading again.
		m.log.Info("the bucket already holds this host's upload of the partition: recorded, not uploaded again", "partition", k.String(), "slot", slot)
		if sb, err = m.encodeStub(k, cr.adopt, StubPath(dir)); err != nil {
			return err
		}
	} else if sb, err = m.uploadObjects(ctx, k, dir, slot, nonce, zf, st.Size(), zstSHA, ib, idxSHA, idx.Size, int64(hdr.HeaderSize), progress); err != nil {
		return err
	}
	if col != nil {
		s, err := stub.Parse(sb, StubPath(dir))
		if err != nil {
			return err
		}
		col.Uploaded = s
		cb, err := col.Marshal()
		if err != nil {
			return err
		}
		renamed, err := m.mv.writeSmall(filepath.Join(dir, layout.CollisionName), cb)
		committed = renamed
		if err != nil {
			return fmt.Errorf("write collision record: %w", err)
		}
		// Past the commit point. The book stays here: the key serves another host's.
		return m.mv.removeFiles(dir, intentName)
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
	if progress != nil && cr.adopt != nil {
		progress(st.Size())
	}
	if err := m.mv.removeFiles(dir, layout.ZstName, layout.IdxName); err != nil {
		return err
	}
	return nil
}

// uploadObjects puts a version's objects into slot (this upload holds its claim): the
// .zst and .idx, the travelling files, and the stub copy last; it returns the stub.
func (m *Manager) uploadObjects(ctx context.Context, k layout.Key, dir, slot, nonce string, zf io.ReaderAt, zsize int64, zstSHA string,
	ib []byte, idxSHA string, logical, headerSize int64, progress func(int64)) ([]byte, error) {
	zk, ik := stub.KeysIn(k, slot)
	ifAbsent, err := m.store.Conditional(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	zr := &sourceReader{ctx: ctx, r: zf, lim: m.mv.lim, progress: progress}
	zinfo, err := m.store.Put(ctx, zk, zr, zsize, objstore.PutOptions{SHA256: zstSHA, IfAbsent: ifAbsent})
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", filepath.Join(dir, layout.ZstName), err)
	}
	iinfo, err := m.store.Put(ctx, ik, bytes.NewReader(ib), int64(len(ib)), objstore.PutOptions{SHA256: idxSHA, IfAbsent: ifAbsent})
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", filepath.Join(dir, layout.IdxName), err)
	}
	tPut := time.Since(t0)
	if err := m.verifyRemote(ctx, zk, zsize, zstSHA, zinfo); err != nil {
		return nil, err
	}
	if err := m.verifyRemote(ctx, ik, int64(len(ib)), idxSHA, iinfo); err != nil {
		return nil, err
	}
	files, err := m.uploadFiles(ctx, k, slot, dir, ifAbsent)
	if err != nil {
		return nil, err
	}
	tVerify := time.Since(t0) - tPut
	sb, err := m.encodeStub(k, &stub.Stub{
		Zst:              stub.Object{URI: m.store.URI(zk), Size: zsize, ETag: zinfo.ETag, SHA256: zstSHA},
		Idx:              stub.Object{URI: m.store.URI(ik), Size: int64(len(ib)), ETag: iinfo.ETag, SHA256: idxSHA},
		UncompressedSize: logical,
		HeaderSize:       headerSize,
		UploadedAt:       m.now().UTC().Truncate(time.Millisecond),
		Files:            files,
		Host:             m.host,
		Slot:             slot,
		Claim:            nonce,
	}, StubPath(dir))
	if err != nil {
		return nil, err
	}
	// The bucket's copy of the stub goes last: its presence says the version is whole.
	if err := m.putStubObject(ctx, k, slot, sb, ifAbsent); err != nil {
		return nil, err
	}
	zr.done(zsize)
	m.log.Debug("upload steps", "partition", k.String(), "slot", slot, "put_s", tPut.Seconds(), "verify_s", tVerify.Seconds(),
		"stub_s", (time.Since(t0) - tPut - tVerify).Seconds(), "parts", zinfo.Parts)
	return sb, nil
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

// rollbackUpload deletes what the upload in put into the store, and its claim, then the
// intent. If the store cannot be reached the intent stays, and the next recovery tries
// again.
func (m *Manager) rollbackUpload(k layout.Key, dir string, in intent) {
	if err := m.deleteOwn(k, in.slot(), in.Nonce); err != nil {
		m.log.Warn("rollback upload: remote objects left for the next recovery", "partition", k.String(), "err", err)
		return
	}
	if err := m.mv.removeFiles(dir, intentName); err != nil {
		m.log.Warn("rollback upload: intent left for the next recovery", "partition", k.String(), "err", err)
	}
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
