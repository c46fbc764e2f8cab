package lifecycle

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// RecoverReport counts what recovery did.
type RecoverReport struct {
	Finished         int // interrupted moves completed (the source copy removed)
	RolledBack       int // interrupted moves undone (the damaged or unfinished copy removed)
	IntentRolledBack int // uploads that never reached their stub: remote objects deleted
	Leftovers        int // partition directories without a book, removed
	Temps            int // temporary files removed
	Conflicts        int // partitions in two tiers with different intact content (left alone)
	Errors           []error
}

func (r RecoverReport) changed() bool {
	return r.Finished+r.RolledBack+r.IntentRolledBack+r.Leftovers+r.Temps > 0
}

// Recover brings every partition back to exactly one tier. It runs at the start of every
// scan, when no move is in flight:
//
//  1. an upload intent without a stub: delete the remote objects, then the intent;
//  2. remove the manager's temporary files, and other writers' older than stale_temp;
//  3. a partition in two tiers: if the lower copy (the destination of a move) is
//     intact and identical to the upper one, finish the move (remove the upper copy);
//     if it is damaged or incomplete, roll back (remove it); if both are intact and
//     differ, report ErrConflict and touch nothing;
//  4. partition directories without any book, while the partition lives in another
//     tier, are leftovers of a move: remove them.
//
// Errors of single partitions are logged and returned in the report; they do not stop
// the others.
func (m *Manager) Recover(ctx context.Context) (RecoverReport, error) {
	var rep RecoverReport
	v, err := scan(m.fs, m.roots, false)
	if err != nil {
		return rep, err
	}
	for _, k := range v.keys {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := m.recoverOne(ctx, v.parts[k], &rep); err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("recover %s: %w", k, err))
			m.log.Error("recovery failed", "partition", k.String(), "err", err)
		}
	}
	if rep.changed() || rep.Conflicts > 0 {
		m.log.Info("recovery", "finished", rep.Finished, "rolled_back", rep.RolledBack, "intents", rep.IntentRolledBack,
			"leftovers", rep.Leftovers, "temps", rep.Temps, "conflicts", rep.Conflicts, "errors", len(rep.Errors))
	}
	return rep, nil
}

// rescan re-reads one partition's directories.
func (m *Manager) rescan(k layout.Key) (*partition, error) {
	p := &partition{key: k}
	for t := layout.Hot; t <= layout.Cold; t++ {
		if m.roots.Local(t) == "" {
			continue
		}
		dir := m.dirOf(t, k)
		if _, err := m.fs.Lstat(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		d, err := scanDir(m.fs, t, dir, false)
		if err != nil {
			return nil, err
		}
		p.dirs[t] = d
	}
	return p, nil
}

func (m *Manager) recoverOne(ctx context.Context, p *partition, rep *RecoverReport) error {
	k := p.key
	log := m.log.With("partition", k.String())
	// 1. Upload intents.
	if d := p.dirs[layout.Cold]; d != nil && d.intent {
		if !d.stub && !d.collision {
			in := m.readIntent(d.dir)
			if err := m.deleteOwn(k, in.slot(), in.Nonce); err != nil {
				return fmt.Errorf("roll back interrupted upload: %w", err)
			}
			m.count(&rep.IntentRolledBack, "intent_rolled_back")
			log.Info("recovery: rolled back an interrupted upload (remote objects deleted)")
		}
		if err := m.mv.removeFiles(d.dir, intentName); err != nil {
			return err
		}
	}
	// 2. Temporary files.
	for _, d := range p.dirs {
		if d == nil {
			continue
		}
		var stale []tempFile
		stale = append(stale, d.ownTemps...)
		for _, t := range d.foreignTemps {
			if time.Since(t.mtime) > m.cfg.StaleTemp {
				stale = append(stale, t)
			}
		}
		for _, t := range stale {
			if err := m.mv.removeFiles(filepath.Dir(t.path), filepath.Base(t.path)); err != nil {
				return err
			}
			m.count(&rep.Temps, "temp_removed")
			log.Debug("recovery: removed temporary file", "file", t.path)
		}
	}
	// 3. Two tiers.
	for range 4 {
		q, err := m.rescan(k)
		if err != nil {
			return err
		}
		cs := q.copies()
		if len(cs) < 2 {
			break
		}
		if err := m.resolvePair(ctx, k, cs[0], cs[1], rep); err != nil {
			return err
		}
	}
	// 4. Leftovers.
	q, err := m.rescan(k)
	if err != nil {
		return err
	}
	cs := q.copies()
	for _, d := range q.dirs {
		if d == nil {
			continue
		}
		switch {
		case !d.hasBook() && len(cs) > 0:
			if err := m.mv.removeTree(d.dir); err != nil {
				return err
			}
			m.count(&rep.Leftovers, "leftover_removed")
			log.Info("recovery: removed leftover directory of a move", "dir", d.dir)
		case !d.hasBook():
			// Perhaps a writer creating the partition right now: not ours to touch.
			log.Debug("partition directory without a book in any tier; left alone", "dir", d.dir)
		case d.stub && !d.zst && d.idx:
			// The upload finished but died between deleting the .zst and the .idx.
			if err := m.mv.removeFiles(d.dir, layout.IdxName); err != nil {
				return err
			}
			m.count(&rep.Leftovers, "leftover_removed")
		}
	}
	return nil
}

// resolvePair settles a partition found in two tiers: upper is what readers see now,
// lower the destination of an interrupted move.
func (m *Manager) resolvePair(ctx context.Context, k layout.Key, upper, lower bookCopy, rep *RecoverReport) error {
	log := m.log.With("partition", k.String(), "upper", upper.String(), "lower", lower.String())
	if upper.kind == kindZstd && lower.kind == kindStub {
		return m.settleUpload(ctx, k, upper.dir, rep)
	}
	damaged, err := m.intact(ctx, k, lower)
	if err != nil {
		return err // cannot tell now (I/O, store unreachable): try again next scan
	}
	if damaged != nil {
		log.Warn("recovery: rolling back: the copy in the lower tier is damaged or incomplete", "why", damaged)
		return m.rollBack(lower, upper, rep)
	}
	if upper.kind == kindPlain {
		h, size, err := m.readBookHeader(filepath.Join(upper.dir, layout.BookName))
		if err == nil && (!h.Sealed || size != int64(h.Committed)) {
			m.count(&rep.Conflicts, "conflict")
			return fmt.Errorf("%s is still being written while %s exists: %w", upper, lower, ErrConflict)
		}
	}
	same, err := m.sameContent(ctx, k, upper, lower)
	if err != nil {
		upperDamaged, ierr := m.intact(ctx, k, upper)
		if ierr != nil || upperDamaged == nil {
			return err
		}
		same = false // unreadable upper: handled below
	}
	if same {
		if err := m.finishCopy(ctx, upper, lower); err != nil {
			return err
		}
		m.count(&rep.Finished, "finished")
		log.Info("recovery: finished an interrupted move (copies identical, upper removed)")
		return nil
	}
	upperDamaged, err := m.intact(ctx, k, upper)
	if err != nil {
		return err
	}
	if upperDamaged != nil {
		log.Warn("recovery: the upper copy is damaged and the lower intact: removing the upper", "why", upperDamaged)
		return m.rollBack(upper, lower, rep)
	}
	m.count(&rep.Conflicts, "conflict")
	return fmt.Errorf("%s and %s are both intact but differ: %w", upper, lower, ErrConflict)
}

// rollBack removes the damaged copy of a pair, keeping the other, and counts it.
func (m *Manager) rollBack(damaged, keep bookCopy, rep *RecoverReport) error {
	if err := m.dropCopy(damaged, keep); err != nil {
		return err
	}
	m.count(&rep.RolledBack, "rolled_back")
	return nil
}

func bookFiles(c bookCopy) []string {
	switch c.kind {
	case kindZstd:
		return []string{layout.ZstName, layout.IdxName}
	case kindStub:
		return []string{layout.StubName}
	}
	return []string{layout.BookName}
}

// finishCopy completes a move whose destination (lower) is complete: make sure the lower
// copy's directory is durable and has every file of the upper one, then remove the upper
// copy, book first.
func (m *Manager) finishCopy(ctx context.Context, upper, lower bookCopy) error {
	if err := m.fs.SyncDir(lower.dir); err != nil {
		return fmt.Errorf("fsync dir %s: %w", lower.dir, err)
	}
	if upper.dir == lower.dir {
		return m.mv.removeFiles(upper.dir, bookFiles(upper)...)
	}
	if err := m.mv.copyAux(ctx, upper.dir, lower.dir, true, true); err != nil {
		return err
	}
	if err := m.mv.removeFiles(upper.dir, bookFiles(upper)...); err != nil {
		return err
	}
	if m.holdsBook(upper.dir) {
		return nil // another copy shares the directory (cold .zst beside a stub)
	}
	return m.mv.removeTree(upper.dir)
}

// dropCopy removes one copy of a book, keeping the other.
func (m *Manager) dropCopy(drop, keep bookCopy) error {
	var s *stub.Stub
	if drop.kind == kindStub {
		if b, err := m.mv.readSmall(StubPath(drop.dir), 1<<20); err == nil {
			s, _ = stub.Parse(b, StubPath(drop.dir))
		}
	}
	if err := m.mv.removeFiles(drop.dir, bookFiles(drop)...); err != nil {
		return err
	}
	if drop.kind == kindStub {
		k, err := keyOfDir(drop.dir)
		if err == nil {
			if err := m.deleteStubbed(k, s); err != nil {
				m.log.Warn("recovery: remote objects of a dropped stub not deleted", "dir", drop.dir, "err", err)
			}
		}
	}
	if drop.dir == keep.dir || m.holdsBook(drop.dir) {
		return nil
	}
	return m.mv.removeTree(drop.dir)
}

// deleteStubbed deletes the remote version a dropped local stub described: the one it
// names (its slot and claim), or, for a stub too damaged to read, whichever of the key's
// own and merged slots this host holds a claim on.
func (m *Manager) deleteStubbed(k layout.Key, s *stub.Stub) error {
	if s != nil {
		return m.deleteOwn(k, s.Slot, s.Claim)
	}
	return errors.Join(m.deleteClaimed(k, ""), m.deleteClaimed(k, stub.SlotMerged))
}

// keyOfDir recovers the key from a partition directory path.
func keyOfDir(dir string) (layout.Key, error) {
	date := filepath.Base(dir)
	sym := filepath.Base(filepath.Dir(dir))
	ven := filepath.Base(filepath.Dir(filepath.Dir(dir)))
	k := layout.Key{Venue: ven, Symbol: sym, Date: date}
	return k, k.Validate()
}

// settleUpload handles a cold directory with both the .zst and a stub: an upload that got
// past its commit point. If the stub is valid and the remote objects match it and the
// local files, remove the local files; otherwise remove the stub and the remote objects.
func (m *Manager) settleUpload(ctx context.Context, k layout.Key, dir string, rep *RecoverReport) error {
	log := m.log.With("partition", k.String())
	rollback := func(why error) error {
		log.Warn("recovery: rolling back an upload whose stub does not match", "why", why)
		var s *stub.Stub
		if b, err := m.mv.readSmall(StubPath(dir), 1<<20); err == nil {
			s, _ = stub.Parse(b, StubPath(dir))
		}
		if err := m.mv.removeFiles(dir, layout.StubName); err != nil {
			return err
		}
		if err := m.deleteStubbed(k, s); err != nil {
			log.Warn("recovery: remote objects not deleted", "err", err)
		}
		m.count(&rep.RolledBack, "rolled_back")
		return nil
	}
	s, zk, ik, err := m.readStub(k, dir)
	if err != nil {
		if errors.Is(err, stub.ErrInvalid) {
			return rollback(err)
		}
		return err
	}
	ib, idx, err := m.readIdx(filepath.Join(dir, layout.IdxName))
	if err != nil {
		return err
	}
	if got := objstore.SHA256Hex(ib); got != s.Idx.SHA256 || int64(len(ib)) != s.Idx.Size {
		return rollback(fmt.Errorf("local .idx sha256 %s (%d bytes), stub %s (%d bytes)", got, len(ib), s.Idx.SHA256, s.Idx.Size))
	}
	if hex.EncodeToString(idx.SHA256[:]) != s.Zst.SHA256 || idx.ZstSize != s.Zst.Size || idx.Size != s.UncompressedSize {
		return rollback(fmt.Errorf("local index describes .zst sha256 %x (%d bytes), stub %s (%d bytes)", idx.SHA256, idx.ZstSize, s.Zst.SHA256, s.Zst.Size))
	}
	damaged, err := m.remoteDamage(ctx, s, zk, ik)
	if err != nil {
		return err
	}
	if damaged != nil {
		return rollback(damaged)
	}
	if err := m.fs.SyncDir(dir); err != nil {
		return err
	}
	if err := m.mv.removeFiles(dir, layout.ZstName, layout.IdxName); err != nil {
		return err
	}
	m.count(&rep.Finished, "finished")
	log.Info("recovery: finished an interrupted upload (local .zst and .idx removed)")
	return nil
}

// intact checks one copy on its own. damaged says why it cannot be trusted; err means
// it could not be checked now.
func (m *Manager) intact(ctx context.Context, k layout.Key, c bookCopy) (damaged, err error) {
	switch c.kind {
	case kindPlain:
		p := filepath.Join(c.dir, layout.BookName)
		h, size, err := m.readBookHeader(p)
		if err != nil {
			if isCorrupt(err) {
				return err, nil
			}
			return nil, err
		}
		if !h.Sealed || size != int64(h.Committed) {
			return fmt.Errorf("%s: not sealed (%d bytes, committed %d)", p, size, h.Committed), nil
		}
		return nil, nil
	case kindZstd:
		_, idx, err := m.readIdx(filepath.Join(c.dir, layout.IdxName))
		if err != nil {
			if isCorrupt(err) || errors.Is(err, fs.ErrNotExist) {
				return err, nil
			}
			return nil, err
		}
		zp := filepath.Join(c.dir, layout.ZstName)
		f, size, err := m.openSized(zp)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := qzst.Verify(ctx, f, size, idx, qzst.VerifyOptions{Name: zp, Concurrency: m.cfg.Threads}); err != nil {
			if isCorrupt(err) {
				return err, nil
			}
			return nil, err
		}
		return nil, nil
	case kindStub:
		s, zk, ik, err := m.readStub(k, c.dir)
		if err != nil {
			if errors.Is(err, stub.ErrInvalid) {
				return err, nil
			}
			return nil, err
		}
		return m.remoteDamage(ctx, s, zk, ik)
	}
	return nil, fmt.Errorf("unknown copy kind %d", c.kind)
}

// remoteDamage checks that the store holds the .zst and .idx a stub describes (keys zk and
// ik): damaged says what is missing or differs; err is a failure to ask (try again later).
func (m *Manager) remoteDamage(ctx context.Context, s *stub.Stub, zk, ik string) (damaged, err error) {
	for _, o := range []struct {
		key string
		obj stub.Object
	}{{zk, s.Zst}, {ik, s.Idx}} {
		h, err := m.store.Head(ctx, o.key)
		if err != nil {
			if errors.Is(err, objstore.ErrNotFound) {
				return err, nil
			}
			return nil, err
		}
		if h.Size != o.obj.Size || h.SHA256 != o.obj.SHA256 {
			return fmt.Errorf("%s: store holds %d bytes sha256 %q, stub says %d bytes sha256 %s", o.obj.URI, h.Size, h.SHA256, o.obj.Size, o.obj.SHA256), nil
		}
	}
	return nil, nil
}

func isCorrupt(err error) bool {
	var fe *format.CorruptError
	var qe *qzst.CorruptError
	return errors.As(err, &fe) || errors.As(err, &qe)
}

// logicalReader is a copy's logical book bytes.
type logicalReader struct {
	io.ReaderAt
	size  int64
	close func()
}

func (m *Manager) openLogical(ctx context.Context, k layout.Key, c bookCopy) (*logicalReader, error) {
	switch c.kind {
	case kindPlain:
		p := filepath.Join(c.dir, layout.BookName)
		h, _, err := m.readBookHeader(p)
		if err != nil {
			return nil, err
		}
		f, err := m.fs.Open(p)
		if err != nil {
			return nil, err
		}
		return &logicalReader{ReaderAt: f, size: int64(h.Committed), close: func() { f.Close() }}, nil
	case kindZstd:
		_, idx, err := m.readIdx(filepath.Join(c.dir, layout.IdxName))
		if err != nil {
			return nil, err
		}
		zp := filepath.Join(c.dir, layout.ZstName)
		f, size, err := m.openSized(zp)
		if err != nil {
			return nil, err
		}
		r, err := qzst.Open(f, size, idx, nil, qzst.ReaderOptions{Name: zp, Readahead: -1})
		if err != nil {
			f.Close()
			return nil, err
		}
		return &logicalReader{ReaderAt: r, size: r.Size(), close: func() { r.Close(); f.Close() }}, nil
	case kindStub:
		_, r, err := m.openRemote(ctx, k, c.dir)
		if err != nil {
			return nil, err
		}
		return &logicalReader{ReaderAt: r, size: r.Size(), close: func() { r.Close() }}, nil
	}
	return nil, fmt.Errorf("unknown copy kind %d", c.kind)
}

// sameContent compares two copies' logical bytes.
func (m *Manager) sameContent(ctx context.Context, k layout.Key, a, b bookCopy) (bool, error) {
	ra, err := m.openLogical(ctx, k, a)
	if err != nil {
		return false, err
	}
	defer ra.close()
	rb, err := m.openLogical(ctx, k, b)
	if err != nil {
		return false, err
	}
	defer rb.close()
	if ra.size != rb.size {
		return false, nil
	}
	ba, bb := make([]byte, copyChunk), make([]byte, copyChunk)
	for off := int64(0); off < ra.size; {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		n := min(int64(copyChunk), ra.size-off)
		if err := readFullAt(ra, ba[:n], off); err != nil {
			return false, err
		}
		if err := readFullAt(rb, bb[:n], off); err != nil {
			return false, err
		}
		if !bytes.Equal(ba[:n], bb[:n]) {
			return false, nil
		}
		off += n
	}
	return true, nil
}

func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read at %d: %w", off, err)
}

// count records one recovery outcome in the report and in the metrics.
func (m *Manager) count(field *int, outcome string) {
	*field++
	m.met.Recoveries.WithLabelValues(outcome).Inc()
}
