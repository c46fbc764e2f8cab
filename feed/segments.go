package feed

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
)

// JournalOptions configure a segmented journal.
type JournalOptions struct {
	Dir       string
	Venue     string
	Period    time.Duration // roll period, aligned to multiples since the epoch
	ChunkSize int64
	MaxSize   int64 // per segment; a full segment rolls early
	// NoPrefault leaves pages to be faulted in on first write (tests on tiny tmpfs).
	NoPrefault bool
	// FS is what the journal's directory is changed through (made, a pre-created segment
	// renamed into place, leftovers removed, fsynced after a roll and at close); nil is
	// the real filesystem (tests inject faults, internal/testkit/faults). A segment's own
	// bytes are format.Appender's: mapped, not written through FS.
	FS vfs.FS
}

// Journal is the feed's segmented raw journal: one format.Appender at a time, rolled by
// record time at period boundaries (or early when a segment fills), with the next segment
// created ahead of time off the append path. All appends happen under one mutex, so every
// connection's reader can call it while the journal keeps a single writer.
type Journal struct {
	opt JournalOptions
	log *slog.Logger
	m   *Metrics

	mu       sync.Mutex
	cur      *format.Appender
	curSeg   journal.Segment
	curStart int64            // period start, ns
	curEnd   int64            // roll when a record's time reaches this, ns
	next     *format.Appender // pre-created under a temporary name, or nil
	nextPath string
	closed   bool
	onRoll   func(now int64) // restates open connections in a new segment; runs under mu
	// onWritable runs under mu once records are journaled again after failed appends,
	// right after the gap record that counts them.
	onWritable func(now int64)
	floor      int64 // start (or last record) of the newest segment found at open
	sealedAt   int64 // modification time of the newest segment found at open

	// records that could not be written since the last success, for the gap record
	lost       int64
	lostFrom   int64
	lostTo     int64
	lastErrLog time.Time
	// After a segment could not be created, appends that need one fail at once until
	// nextCreate (createRetry later), instead of each trying again on a full device.
	createRetry time.Duration
	nextCreate  time.Time
	createErr   error

	curBytes atomic.Int64
	curSeq   atomic.Uint64
	lock     *os.File
	sealWG   sync.WaitGroup
}

const lockFile = ".lock"
const nextPrefix = ".next-"

var (
	ErrLocked        = errors.New("journal directory is locked by another writer")
	ErrJournalClosed = errors.New("journal closed")
)

// OpenJournal takes the directory's writer lock, seals segments a crashed writer left
// open, and resumes the newest one if it belongs to the period containing now (ns) —
// appending after its last whole record — or starts a new one.
func OpenJournal(opt JournalOptions, now int64, log *slog.Logger, m *Metrics) (*Journal, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = newMetrics(nil, opt.Venue)
	}
	if opt.Period <= 0 {
		opt.Period = time.Hour
	}
	if opt.FS == nil {
		opt.FS = vfs.OS{}
	}
	if err := vfs.MkdirAll(opt.FS, opt.Dir); err != nil {
		return nil, fmt.Errorf("journal dir: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(opt.Dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", opt.Dir, ErrLocked)
		}
		return nil, fmt.Errorf("journal lock: %w", err)
	}
	j := &Journal{opt: opt, log: log, m: m, lock: lf, createRetry: 100 * time.Millisecond}
	if err := j.recover(now); err != nil {
		j.unlock()
		return nil, err
	}
	return j, nil
}

func (j *Journal) fopt() format.Options {
	return format.Options{ChunkSize: j.opt.ChunkSize, MaxSize: j.opt.MaxSize, NoPrefault: j.opt.NoPrefault}
}

func (j *Journal) periodStart(t int64) int64 {
	p := int64(j.opt.Period)
	return t - ((t%p)+p)%p
}

func (j *Journal) recover(now int64) error {
	// Temporary files of an interrupted create or pre-create were never visible as
	// segments: remove them.
	ents, err := j.opt.FS.ReadDir(j.opt.Dir)
	if err != nil {
		return fmt.Errorf("journal dir: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, nextPrefix) || (fileutil.IsTemp(n) && !strings.Contains(n, journal.CheckpointFile)) {
			j.opt.FS.Remove(filepath.Join(j.opt.Dir, n))
		}
	}
	segs, err := journal.List(j.opt.Dir)
	if err != nil {
		return err
	}
	if len(segs) > 0 {
		// The wall clock may have stepped back since the newest segment was written: never
		// start or resume before it (segments do not overlap).
		newest := segs[len(segs)-1]
		j.floor = newest.Start.UnixNano()
		if fi, err := os.Stat(filepath.Join(j.opt.Dir, newest.Name)); err == nil {
			j.sealedAt = fi.ModTime().UnixNano()
		}
		now = max(now, j.floor)
	}
	for i, s := range segs {
		path := filepath.Join(j.opt.Dir, s.Name)
		h, err := format.ReadHeaderFile(path)
		if err != nil {
			// Do not stop capturing for an old damaged segment; the ETL reports it.
			j.log.Error("journal segment unreadable", "segment", s.Name, "err", err)
			continue
		}
		if h.Sealed {
			continue
		}
		last := i == len(segs)-1
		a, err := format.OpenAppender(path, j.fopt())
		if err != nil {
			j.log.Error("journal segment cannot be reopened", "segment", s.Name, "err", err)
			if last {
				break // start a fresh segment after it
			}
			continue
		}
		if last {
			j.floor = max(j.floor, a.LastRecvTs())
			j.sealedAt = 0 // not sealed: its last record says more than its mtime
			now = max(now, j.floor)
		}
		ps := j.periodStart(now)
		if last && j.periodStart(s.Start.UnixNano()) == ps {
			j.cur, j.curSeg = a, s
			j.curStart, j.curEnd = ps, ps+int64(j.opt.Period)
			j.curBytes.Store(a.Committed())
			j.curSeq.Store(s.Seq)
			j.m.segments.WithLabelValues("resumed").Inc()
			j.log.Info("journal resumed", "segment", s.Name, "committed", a.Committed())
			return nil
		}
		if err := a.Seal(); err != nil {
			j.log.Error("journal seal after crash", "segment", s.Name, "err", err)
		} else {
			j.m.segments.WithLabelValues("recovered").Inc()
			j.log.Info("journal segment sealed after restart", "segment", s.Name)
		}
	}
	var seq uint64 = 1
	if len(segs) > 0 {
		seq = segs[len(segs)-1].Seq + 1
	}
	a, seg, err := j.create(seq, j.periodStart(now))
	if err != nil {
		return err
	}
	ps := j.periodStart(now)
	j.cur, j.curSeg, j.curStart, j.curEnd = a, seg, ps, ps+int64(j.opt.Period)
	j.curBytes.Store(a.Committed())
	j.curSeq.Store(seq)
	return nil
}

func (j *Journal) header(start int64) format.Header {
	h := format.NewJournalHeader(j.opt.Venue, "feed")
	h.Date = format.DateOf(time.Unix(0, start))
	return h
}

// create makes segment seq directly under its final name.
func (j *Journal) create(seq uint64, start int64) (*format.Appender, journal.Segment, error) {
	seg := journal.Segment{Seq: seq, Start: time.Unix(0, start).UTC().Truncate(time.Second), Name: journal.SegmentName(seq, time.Unix(0, start))}
	a, err := format.Create(filepath.Join(j.opt.Dir, seg.Name), j.header(start), j.fopt())
	if err != nil {
		return nil, seg, fmt.Errorf("create journal segment: %w", err)
	}
	j.log.Info("journal segment created", "segment", seg.Name)
	return a, seg, nil
}

// Precreate prepares the next segment under a temporary name if the roll is within lead
// of now. It runs off the append path (the maintenance goroutine), so the roll itself
// is a rename.
func (j *Journal) Precreate(now int64, lead time.Duration) error {
	j.mu.Lock()
	need := !j.closed && j.next == nil && now >= j.curEnd-int64(lead)
	start := j.curEnd
	j.mu.Unlock()
	if !need {
		return nil
	}
	f, err := os.CreateTemp(j.opt.Dir, nextPrefix+"*"+journal.Ext)
	if err != nil {
		return fmt.Errorf("precreate segment: %w", err)
	}
	path := f.Name()
	f.Close()
	// format.Create makes it, and refuses an existing file (a .next-* leftover is removed
	// by the next recovery).
	if err := j.opt.FS.Remove(path); err != nil {
		return fmt.Errorf("precreate segment: %w", err)
	}
	a, err := format.Create(path, j.header(start), j.fopt())
	if err != nil {
		return fmt.Errorf("precreate segment: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.next != nil {
		a.Close()
		j.opt.FS.Remove(path)
		return nil
	}
	j.next, j.nextPath = a, path
	return nil
}

// Lock and Unlock bracket a group of appends that must be journaled together.
func (j *Journal) Lock()   { j.mu.Lock() }
func (j *Journal) Unlock() { j.mu.Unlock() }

// Append journals one record.
func (j *Journal) Append(typeID, channel uint16, recvNs int64, payload []byte) error {
	j.mu.Lock()
	err := j.AppendLocked(typeID, channel, recvNs, payload)
	j.mu.Unlock()
	return err
}

// AppendLocked journals one record; the caller holds Lock. It rolls to a new segment
// when the record's time reaches the period end or the segment is full. A failure (the
// device is full...) is counted and returned, never half-written; once appends succeed
// again a gap record says how many records were lost and when.
func (j *Journal) AppendLocked(typeID, channel uint16, recvNs int64, payload []byte) error {
	if j.closed {
		return ErrJournalClosed
	}
	if recvNs >= j.curEnd {
		if err := j.rollLocked(recvNs, false); err != nil {
			return j.failed(recvNs, err)
		}
	}
	if j.lost > 0 {
		g := journal.Gap{Reason: journal.GapWriteFailed, Lost: j.lost, FromNs: j.lostFrom, ToNs: j.lostTo}
		if err := j.write(format.JournalGap, journal.ChannelFeed, recvNs, mustJSON(g)); err != nil {
			return j.failed(recvNs, err)
		}
		j.m.gaps.WithLabelValues(journal.GapWriteFailed).Inc()
		j.log.Warn("journal writable again", "lost_records", j.lost, "segment", j.curSeg.Name)
		j.lost = 0 // a record failing next starts a new loss window
		if j.onWritable != nil {
			j.onWritable(recvNs)
		}
	}
	if err := j.write(typeID, channel, recvNs, payload); err != nil {
		return j.failed(recvNs, err)
	}
	return nil
}

func (j *Journal) write(typeID, channel uint16, recvNs int64, payload []byte) error {
	err := j.cur.AppendJournal(typeID, channel, recvNs, payload)
	if err != nil && errors.Is(err, format.ErrFull) {
		if rerr := j.rollLocked(recvNs, true); rerr != nil {
			return rerr
		}
		err = j.cur.AppendJournal(typeID, channel, recvNs, payload)
	}
	if err == nil {
		j.curBytes.Store(j.cur.Committed())
	}
	return err
}

func (j *Journal) failed(recvNs int64, err error) error {
	reason := "other"
	switch {
	case errors.Is(err, syscall.ENOSPC):
		reason = "device_full"
	case errors.Is(err, format.ErrFull):
		reason = "segment_full"
	case errors.Is(err, format.ErrPayloadTooLarge):
		reason = "too_large"
	case errors.Is(err, format.ErrClosed), errors.Is(err, ErrJournalClosed):
		reason = "closed"
	}
	j.m.appendErrors.WithLabelValues(reason).Inc()
	if j.lost == 0 {
		j.lostFrom = recvNs
	}
	j.lost++
	j.lostTo = recvNs
	if time.Since(j.lastErrLog) > 10*time.Second {
		j.lastErrLog = time.Now()
		j.log.Error("journal append failed", "reason", reason, "segment", j.curSeg.Name, "lost_records", j.lost, "err", err)
	}
	return fmt.Errorf("journal %s: %w", j.curSeg.Name, err)
}

// rollLocked switches to the next segment. A period roll names it after the period it
// opens; an early roll (full segment) after the record's second.
func (j *Journal) rollLocked(t int64, full bool) error {
	seq := j.curSeg.Seq + 1
	start := j.periodStart(t)
	if full {
		start = t - t%int64(time.Second)
	}
	seg := journal.Segment{Seq: seq, Start: time.Unix(0, start).UTC(), Name: journal.SegmentName(seq, time.Unix(0, start))}
	var a *format.Appender
	if j.next != nil {
		if err := j.opt.FS.Rename(j.nextPath, filepath.Join(j.opt.Dir, seg.Name)); err != nil {
			j.log.Warn("pre-created journal segment not renamed into place; creating it", "segment", seg.Name, "err", err)
			j.next.Close()
			j.opt.FS.Remove(j.nextPath)
			j.next = nil
		} else {
			a = j.next
			j.next = nil
		}
	}
	if a == nil {
		if j.createErr != nil && time.Now().Before(j.nextCreate) {
			return j.createErr
		}
		var err error
		if a, seg, err = j.create(seq, start); err != nil {
			j.createErr, j.nextCreate = err, time.Now().Add(j.createRetry)
			return err
		}
		j.createErr = nil
	}
	old, oldSeg := j.cur, j.curSeg
	j.cur, j.curSeg = a, seg
	j.curStart = j.periodStart(t)
	j.curEnd = j.curStart + int64(j.opt.Period)
	j.curBytes.Store(a.Committed())
	j.curSeq.Store(seq)
	j.m.segments.WithLabelValues("rolled").Inc()
	// Seal the old segment off the append path: nobody appends to it any more. The
	// directory sync after it makes the new segment's name durable too (a pre-created
	// segment was renamed into place above): a sealed segment is never followed by one that
	// a power cut would turn back into a .next-* leftover.
	j.sealWG.Add(1)
	go func() {
		defer j.sealWG.Done()
		if err := old.Seal(); err != nil {
			j.log.Error("seal journal segment", "segment", oldSeg.Name, "err", err)
			return
		}
		if err := j.opt.FS.SyncDir(j.opt.Dir); err != nil {
			j.log.Error("seal journal segment", "segment", oldSeg.Name, "err", err)
			return
		}
		j.m.segments.WithLabelValues("sealed").Inc()
		j.log.Info("journal segment sealed", "segment", oldSeg.Name)
	}()
	if j.onRoll != nil {
		j.onRoll(t)
	}
	return nil
}

// RollIfDue rolls when the wall clock has passed the period end even if no record came,
// so a quiet feed's segments are still sealed on time.
func (j *Journal) RollIfDue(now int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || now < j.curEnd {
		return nil
	}
	if err := j.rollLocked(now, false); err != nil {
		return j.failed(now, err)
	}
	return nil
}

// Segment returns the current segment.
func (j *Journal) Segment() journal.Segment {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.curSeg
}

// Sync flushes the current segment.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	return j.cur.Sync()
}

// Close seals the current segment, discards the pre-created one and releases the lock.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	var errs []error
	if err := j.cur.Seal(); err != nil {
		errs = append(errs, fmt.Errorf("seal %s: %w", j.curSeg.Name, err))
	} else {
		j.m.segments.WithLabelValues("sealed").Inc()
	}
	if j.next != nil {
		j.next.Close()
		j.opt.FS.Remove(j.nextPath)
		j.next = nil
	}
	// The current segment's name (perhaps renamed from a pre-created one) is durable.
	if err := j.opt.FS.SyncDir(j.opt.Dir); err != nil {
		errs = append(errs, err)
	}
	j.mu.Unlock()
	j.sealWG.Wait()
	j.unlock()
	return errors.Join(errs...)
}

// abandon releases everything without sealing, as a crash would (tests).
func (j *Journal) abandon() {
	j.mu.Lock()
	j.closed = true
	j.cur.Close()
	if j.next != nil {
		j.next.Close()
	}
	j.mu.Unlock()
	j.sealWG.Wait()
	j.unlock()
}

func (j *Journal) unlock() {
	if j.lock != nil {
		unix.Flock(int(j.lock.Fd()), unix.LOCK_UN)
		j.lock.Close()
		j.lock = nil
	}
}

// Floor is where the journal found when it was opened stops: the start of its newest
// segment, or that segment's last record if it was resumed (0 for an empty journal).
// Record times below it would overlap an earlier segment.
func (j *Journal) Floor() int64 { return j.floor }

// WallFloor is Floor for a journal written with the wall clock (live capture): also at or
// after the newest segment's seal (its modification time), which came after its last
// record. Replays, whose times are a capture's, use Floor.
func (j *Journal) WallFloor() int64 { return max(j.floor, j.sealedAt) }
