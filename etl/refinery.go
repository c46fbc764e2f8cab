package etl

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/venue"
)

// chanInfo is what a journal channel carries, from the connect records.
type chanInfo struct {
	Stream string
	Symbol string
	Kind   string
	Conn   uint16 // the connection's own channel
}

// Refinery turns one venue's journal into canonical partitions. It is not safe for
// concurrent use: one goroutine feeds it frames in journal order, which makes its output a
// pure function of the journal, the configuration and dim_symbol, so a restart from a
// checkpoint regenerates exactly the bytes an uninterrupted run writes.
type Refinery struct {
	cfg   Config
	v     venue.Venue
	root  string // output tier root
	fs    vfs.FS // what the durable writes (checkpoint, meta.json, directories) go through
	log   *slog.Logger
	m     *venueMetrics
	table atomic.Pointer[symbols.Table]

	priceDec, qtyDec uint8

	// Venues beyond Binance's shape (docs/venues.md): instruments with scales of their own
	// (decoded at the scale each symbol was pinned to by its first message, else the one
	// its reference data gives), books whose snapshots come on the websocket, and the
	// exchange's checksum of the book after each update.
	sd      venue.ScaledDecoder
	cs      venue.Checksummer
	pcs     venue.PieceChecksummer // cs, when its checksum is one piece per level
	wsBooks bool
	scales  venue.Scales
	specs   map[string]venue.Spec // reference data, by symbol (checkpointed)
	trimB   []venue.Level
	trimA   []venue.Level

	// Journal-derived state (checkpointed).
	clock    int64 // latest exchange time seen on the venue
	skew     int64 // exchange minus receive time of the latest message that had both
	haveSkew bool
	session  int64
	channels map[uint16]chanInfo
	snapReq  map[uint16]string // channel -> symbol of the last snapshot request
	syms     map[string]*symState
	parts    map[partKey]*partition
	segs     map[string]*segHash

	// Per frame.
	recvNs  int64
	segName string
	touched []*partition
	msg     venue.Message
	snap    venue.BookSnapshot

	undated  []undatedMsg // timeless messages waiting for the first exchange time (checkpointed)
	flushing bool

	nextSeal int64 // venue clock at which the next partition is due to be sealed
	holders  map[string]*symState
	diverged int64 // records that differed from what an earlier run left (logged)

	// beforeSeal makes the refinery's state durable (a checkpoint) between preparing
	// partitions for their seal and setting their sealed bits; nil in tests that do not
	// checkpoint.
	beforeSeal func() error
	sealHook   func(stage string) error // test hook (Options.sealHook)
	// flushInput brings the segments' hashes up to the frames refined (the source hashes
	// them in large pieces): before they are written into meta.json or a checkpoint.
	flushInput func()

	host        *meta.Host // source.host of every meta.json (Options.Host)
	live        bool       // tailing a live journal: the runner commits after each batch of frames
	fopt        format.Options
	afterCommit func(recvNs int64) // called for each frame whose records a commit published
	batchRecv   []int64            // receive times of the frames written since the last commit (afterCommit)
	wrote       bool               // the current frame wrote records
	lastSym     *symState          // the symbol of the last message (most messages follow one of the same symbol)
	cnt         counters           // hot-path metrics, added to the registry in batches
	snapBids    []levelT           // a snapshot run's levels (reused)
	snapAsks    []levelT
	ahead       *ahead   // messages decoded ahead on another core, or nil
	segSeq      uint64   // sequence number of the segment of the current frame
	ownBids     []levelT // r.msg's own level arrays (a message taken from ahead lends it the entry's)
	ownAsks     []levelT
	ownTrades   []venue.Trade
}

// counters are the metrics every message touches, counted here and added to the
// Prometheus series every few thousand frames (publishMetrics): an atomic add per message
// and series would cost more than the rest of a ticker's refining.
type counters struct {
	depth, trade, ticker, other, crossed, tickerChecks int64
	checksumChecks                                     int64
	ahead                                              int64 // messages decoded ahead (aheadTaken)
}

// publishMetrics adds the counts kept since the last call to the series.
func (r *Refinery) publishMetrics() {
	c := &r.cnt
	aheadTaken.Add(c.ahead)
	c.ahead = 0
	for _, x := range [...]struct {
		n *int64
		c interface{ Add(float64) }
	}{{&c.depth, r.m.depth}, {&c.trade, r.m.trade}, {&c.ticker, r.m.ticker}, {&c.other, r.m.other},
		{&c.crossed, r.m.crossed}, {&c.tickerChecks, r.m.tickerChecks}, {&c.checksumChecks, r.m.checksumChecks}} {
		if *x.n != 0 {
			x.c.Add(float64(*x.n))
			*x.n = 0
		}
	}
}

func newRefinery(cfg Config, v venue.Venue, root string, table *symbols.Table, log *slog.Logger, m *venueMetrics) *Refinery {
	r := &Refinery{cfg: cfg, v: v, root: root, fs: vfs.OS{}, log: log, m: m,
		channels: map[uint16]chanInfo{}, snapReq: map[uint16]string{}, syms: map[string]*symState{},
		parts: map[partKey]*partition{}, segs: map[string]*segHash{}, holders: map[string]*symState{},
		nextSeal: 1<<63 - 1}
	r.priceDec, r.qtyDec = v.Decimals()
	r.sd, _ = v.(venue.ScaledDecoder)
	r.cs, _ = v.(venue.Checksummer)
	r.pcs, _ = v.(venue.PieceChecksummer)
	_, r.wsBooks = v.(venue.Subscriber)
	r.scales.Default = venue.Scale{Price: r.priceDec, Qty: r.qtyDec}
	r.specs = map[string]venue.Spec{}
	r.table.Store(table)
	return r
}

// setSpec records an instrument of the venue's reference data. Its scale applies to a
// symbol whose messages have not been decoded yet; a symbol keeps the scale of its first
// message (its book and open partitions are at that scale).
func (r *Refinery) setSpec(sp venue.Spec) {
	r.specs[sp.Symbol] = sp
	if s := r.syms[sp.Symbol]; s != nil && s.ScaleSet {
		if s.Scale != sp.Scale {
			r.log.Warn("instrument scale changed; the symbol keeps the scale it started with", "symbol", sp.Symbol,
				"price_decimals", s.Scale.Price, "qty_decimals", s.Scale.Qty, "new_price_decimals", sp.Scale.Price, "new_qty_decimals", sp.Scale.Qty)
		}
		return
	}
	r.scales.Set(sp.Symbol, sp.Scale)
}

// onReference reads a journaled body of the venue's reference data.
func (r *Refinery) onReference(rec *format.JournalRecord) error {
	rv, ok := r.v.(venue.Referencer)
	if !ok {
		r.m.skipped.WithLabelValues("reference").Inc()
		return nil
	}
	specs, err := rv.DecodeReference(rec.Payload, nil)
	if err != nil {
		r.m.skipped.WithLabelValues("bad_reference").Inc()
		r.log.Warn("undecodable reference data", "segment", r.segName, "offset", rec.Offset, "err", err)
		return nil
	}
	for _, sp := range specs {
		r.setSpec(sp)
	}
	return nil
}

// SetTable swaps the dim_symbol table; it applies from the next frame.
func (r *Refinery) SetTable(t *symbols.Table) { r.table.Store(t) }

// frame processes one journal record.
func (r *Refinery) frame(rec *format.JournalRecord, seg string) error {
	r.recvNs, r.segName = rec.RecvTs, seg
	var err error
	switch rec.TypeID {
	case format.JournalMessage:
		err = r.onMessage(rec)
	case format.JournalRESTSnapshot:
		err = r.onSnapshot(rec)
	case format.JournalConnect:
		err = r.onConnect(rec)
	case format.JournalDisconnect:
		err = r.onDisconnect(rec)
	case format.JournalSnapshotRequest:
		var q journal.SnapshotRequest
		if journal.Decode(rec.Payload, &q) == nil && q.Symbol != "" {
			r.snapReq[rec.Channel] = q.Symbol
		}
	case format.JournalGap:
		err = r.onGap(rec)
	case format.JournalReference:
		err = r.onReference(rec)
	default:
		r.m.skipped.WithLabelValues("unknown_record").Inc()
	}
	if err != nil {
		return err
	}
	return r.endFrame()
}

// endFrame flushes holds and seals partitions whose grace has passed. What the frame wrote
// is published by the next commit: the runner's, after a batch of frames (live) or at a
// checkpoint.
func (r *Refinery) endFrame() error {
	if len(r.holders) > 0 {
		for _, raw := range sortedKeys(r.holders) {
			s := r.holders[raw]
			if r.clock >= s.HoldDeadline {
				if err := r.flushHold(s); err != nil {
					return err
				}
			}
		}
	}
	if r.afterCommit != nil && r.wrote {
		r.batchRecv = append(r.batchRecv, r.recvNs)
	}
	r.wrote = false
	if r.clock >= r.nextSeal {
		return r.sealDue()
	}
	return nil
}

// commitTouched publishes what the partitions written since the last commit hold. A live
// refinery commits after each batch of frames (each frame once it has caught up: readers
// see every exchange event as one step, and every frame of a batch as soon as the batch
// is done); a backfill commits at checkpoints and writes in large chunks meanwhile.
func (r *Refinery) commitTouched() error {
	for _, p := range r.touched {
		if err := p.commit(); err != nil {
			return err
		}
		r.m.records.Add(float64(p.written))
		p.written = 0
	}
	r.touched = r.touched[:0]
	if r.afterCommit != nil {
		for _, recv := range r.batchRecv {
			r.afterCommit(recv)
		}
		r.batchRecv = r.batchRecv[:0]
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func (r *Refinery) sym(raw string, ts int64) *symState {
	s := r.syms[raw]
	if s == nil {
		s = newSymState(raw, ts)
		r.syms[raw] = s
	}
	return s
}

// plausible rejects exchange times that cannot be right: a damaged message must not move
// the venue clock a day ahead and seal every partition.
func (r *Refinery) plausible(ts int64) bool {
	return ts > 946684800e9 && ts <= r.recvNs+dayNs // after 2000-01-01, at most a day past receipt
}

func (r *Refinery) onMessage(rec *format.JournalRecord) error {
	m := &r.msg
	if err := r.decode(rec); err != nil {
		r.m.malformed.Inc()
		r.log.Debug("undecodable message", "segment", r.segName, "offset", rec.Offset, "err", err)
		// A depth message that cannot be read breaks the chain: say so now.
		if ci, ok := r.channels[rec.Channel]; ok && ci.Kind == "depth" {
			if s := r.syms[ci.Symbol]; s != nil {
				return r.invalidate(s, format.InvalidBadMessage, s.LastExch, 0, 0, 0, true)
			}
		}
		return nil
	}
	if m.Kind == venue.KindOther || m.Kind == venue.KindControl {
		r.cnt.other++
		return nil
	}
	ts := m.ExchNs
	if (m.Kind == venue.KindTrade || m.Kind == venue.KindAggTrade) && len(m.Trades) == 0 {
		ts = m.TxNs // trades are dated by their trade time (several: each by its own)
	}
	estimated := false
	if ts == 0 {
		if !r.haveSkew && !r.flushing {
			// Nothing has told the exchange's clock yet: wait for the first message that
			// does (the receive clock may be far from it, as when replaying old data live).
			if len(r.undated) < maxUndated && (len(r.undated) == 0 || r.recvNs-r.undated[0].RecvNs < undatedSpan) {
				r.undated = append(r.undated, undatedMsg{Payload: bytes.Clone(rec.Payload), Channel: rec.Channel, RecvNs: r.recvNs, Segment: r.segName})
				return nil
			}
			if err := r.flushUndated(rec); err != nil { // waited long enough
				return err
			}
		}
		// Spot bookTicker carries no time: estimate it from the latest message that had
		// one (same connection latency), and flag the record.
		ts, estimated = r.recvNs, true
		if r.haveSkew {
			ts += r.skew
		}
	} else if m.ExchNs != 0 {
		r.skew, r.haveSkew = m.ExchNs-r.recvNs, true
		if len(r.undated) > 0 && !r.flushing {
			if err := r.flushUndated(rec); err != nil {
				return err
			}
		}
	}
	if !r.plausible(ts) {
		r.m.malformed.Inc()
		r.log.Warn("implausible exchange time", "segment", r.segName, "offset", rec.Offset, "ts", ts, "recv", r.recvNs)
		if m.Kind == venue.KindDepth {
			if s := r.syms[string(m.Symbol)]; s != nil {
				return r.invalidate(s, format.InvalidBadMessage, s.LastExch, uint64(m.ID), 0, 0, true)
			}
		}
		return nil
	}
	s := r.lastSym
	if s == nil || s.Raw != string(m.Symbol) {
		s = r.sym(string(m.Symbol), ts)
		r.lastSym = s
	}
	if s.Fresh && (s.FirstSeen == 0 || ts < s.FirstSeen) {
		s.FirstSeen = ts
	}
	if r.sd != nil && !s.ScaleSet {
		s.Scale, s.ScaleSet = m.Scale, true
		r.scales.Set(s.Raw, m.Scale)
	}
	var err error
	switch m.Kind {
	case venue.KindDepth:
		r.cnt.depth++
		if r.wsBooks {
			err = r.onWSDepth(s, ts)
		} else {
			err = r.onDepth(s, ts)
		}
	case venue.KindTrade, venue.KindAggTrade:
		r.cnt.trade++
		if len(m.Trades) > 0 {
			err = r.onTrades(s)
		} else {
			err = r.onTrade(s, ts)
		}
	case venue.KindBookTicker:
		r.cnt.ticker++
		err = r.onTicker(s, ts, estimated)
	}
	s.LastExch = max(s.LastExch, ts)
	r.clock = max(r.clock, ts)
	return err
}

// undatedMsg is a message without exchange time received before the journal showed any:
// it waits, in the checkpoint too, for the first message that dates it.
type undatedMsg struct {
	Payload []byte
	Channel uint16
	RecvNs  int64
	Segment string
}

// At most this many undated messages, received within this span, wait for a dated one;
// then they are dated by their receive time.
const (
	maxUndated  = 4096
	undatedSpan = int64(5 * time.Second)
)

// flushUndated refines the waiting undated messages, in journal order, before cur (nil at
// the end of a backfill): dated by the skew cur revealed, or by their receive time when
// none is known. It leaves r.msg holding cur again.
func (r *Refinery) flushUndated(cur *format.JournalRecord) error {
	held := r.undated
	r.undated = nil
	recv, seg := r.recvNs, r.segName
	r.flushing = true
	defer func() { r.flushing = false }()
	for i := range held {
		u := &held[i]
		r.recvNs, r.segName = u.RecvNs, u.Segment
		if err := r.onMessage(&format.JournalRecord{TypeID: format.JournalMessage, Channel: u.Channel, RecvTs: u.RecvNs, Payload: u.Payload}); err != nil {
			return err
		}
	}
	r.recvNs, r.segName = recv, seg
	if cur != nil {
		return r.decodeOwn(cur.Payload) // decoded once already
	}
	return nil
}

// decode decodes a journal message into r.msg: the decoding made ahead on another core
// when there is one for this frame, else here.
func (r *Refinery) decode(rec *format.JournalRecord) error {
	if r.ahead != nil && !r.flushing && !r.ahead.stopped {
		if ok, err := r.ahead.take(r.segSeq, rec.Offset, rec.Payload, &r.msg); ok {
			if r.sd == nil || r.msg.Scale == r.scales.Of(r.msg.Symbol) {
				r.cnt.ahead++
				return err
			}
			// Decoded at another scale than this refinery's (see aheadDecoder): again here.
		}
	}
	return r.decodeOwn(rec.Payload)
}

// decodeOwn decodes payload into r.msg with r.msg's own level and trade arrays, at the
// symbol's scale for venues that have them.
func (r *Refinery) decodeOwn(payload []byte) error {
	r.msg.Bids, r.msg.Asks, r.msg.Trades = r.ownBids, r.ownAsks, r.ownTrades
	var err error
	if r.sd != nil {
		err = r.sd.DecodeAt(payload, &r.msg, &r.scales)
	} else {
		err = r.v.Decode(payload, &r.msg)
	}
	r.ownBids, r.ownAsks, r.ownTrades = r.msg.Bids, r.msg.Asks, r.msg.Trades
	return err
}

// ---- depth ----

func (r *Refinery) onDepth(s *symState, ts int64) error {
	m := &r.msg
	if s.live() {
		switch r.v.Check(s.LastU, m.Event) {
		case venue.SeqNext:
			return r.applyDepth(s, &depthUpdate{exch: ts, recv: r.recvNs, first: m.First, last: m.ID, prev: m.Prev,
				bids: m.Bids, asks: m.Asks, seg: r.segName})
		case venue.SeqStale:
			r.m.duplicates.Inc()
			return nil
		}
		if err := r.invalidate(s, format.InvalidSequence, ts, uint64(m.ID), s.LastU, m.Prev, false); err != nil {
			return err
		}
	}
	if len(s.Buf) >= r.cfg.MaxBuffered {
		s.Buf = append(s.Buf[:0], s.Buf[1:]...)
		r.m.bufferDropped.Inc()
	}
	s.Buf = append(s.Buf, bufUpdate{ExchNs: ts, RecvNs: r.recvNs, First: m.First, Last: m.ID, Prev: m.Prev,
		Bids: append([]venue.Level(nil), m.Bids...), Asks: append([]venue.Level(nil), m.Asks...), Segment: r.segName})
	return r.drain(s)
}

// drain applies buffered updates once a snapshot is held.
func (r *Refinery) drain(s *symState) error {
	n := 0
	defer func() { s.Buf = append(s.Buf[:0], s.Buf[n:]...) }()
	for n < len(s.Buf) {
		u := &s.Buf[n]
		switch s.Phase {
		case phaseAwaiting:
			return nil
		case phaseBridging:
			switch r.v.SnapshotBridge(s.Snap.L, u.event()) {
			case venue.BridgeBefore:
				n++
			case venue.BridgeApplies:
				n++
				if err := r.goLive(s, u); err != nil {
					return err
				}
			default:
				// The snapshot is older than the chain: wait for the next (the feed asks
				// again with reason "stale").
				s.Snap, s.Phase = nil, phaseAwaiting
				r.m.staleSnapshots.Inc()
				return nil
			}
		case phaseLive:
			switch r.v.Check(s.LastU, u.event()) {
			case venue.SeqNext:
				n++
				if err := r.applyDepth(s, u.update()); err != nil {
					return err
				}
			case venue.SeqStale:
				n++
			default:
				if err := r.invalidate(s, format.InvalidSequence, u.ExchNs, uint64(u.Last), s.LastU, u.Prev, false); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// goLive seeds the book with the held snapshot and applies the bridging update.
func (r *Refinery) goLive(s *symState, u *bufUpdate) error {
	snap := s.Snap
	if err := s.book.Reset(snap.Bids, snap.Asks); err != nil {
		r.log.Warn("unusable snapshot", "symbol", s.Raw, "err", err)
		s.Snap, s.Phase = nil, phaseAwaiting
		return nil
	}
	ts := u.ExchNs
	// The partition is found while the book still counts as invalid, so one created now
	// records the invalid stretch from its midnight to this resync.
	p, err := r.part(s, ts, true)
	if err != nil {
		return err
	}
	s.Phase, s.Snap, s.LastU = phaseLive, nil, snap.L
	s.BookDay = dayOf(ts)
	s.clearTops()
	r.closeInvalid(s, ts)
	if p != nil {
		if err := r.snapshotRun(s, p, ts, u.RecvNs, uint64(snap.L), u.Segment); err != nil {
			return err
		}
	} else {
		s.NextSnap = r.nextBoundary(ts)
	}
	r.m.resyncs.Inc()
	return r.applyDepth(s, u.update())
}

// depthUpdate is one depth event as applyDepth takes it: the message just decoded, or an
// update that waited in the buffer for its snapshot (bufUpdate.update).
type depthUpdate struct {
	exch, recv int64 // exchange and receive times
	// The update's ids as its level records carry them: aux0 (its first id, or the
	// exchange's checksum under FlagChecksum), seq (its last id), aux1 (the previous
	// update's last id).
	first, last, prev int64
	bids, asks        []venue.Level
	seg               string // the journal segment it came from
	// What an update of a venue beyond Binance's shape adds: the depth its book keeps
	// (levels past it are dropped, written as deletes in the same event) and flags for
	// every record of the event (FlagChecksum).
	depth int
	flags uint16
}

// update is the buffered update as applyDepth takes it.
func (u *bufUpdate) update() *depthUpdate {
	return &depthUpdate{exch: u.ExchNs, recv: u.RecvNs, first: u.First, last: u.Last, prev: u.Prev,
		bids: u.Bids, asks: u.Asks, seg: u.Segment}
}

// applyDepth applies one update to a live book and writes its level records.
func (r *Refinery) applyDepth(s *symState, u *depthUpdate) error {
	ts, last := u.exch, u.last
	if day := dayOf(ts); day > s.BookDay {
		if err := r.flushHold(s); err != nil {
			return err
		}
		s.BookDay = day
	}
	p, err := r.part(s, ts, false)
	if err != nil {
		return err
	}
	if p != nil {
		if err := r.periodic(s, p, ts, u.recv, u.seg); err != nil {
			return err
		}
	}
	if s.book.Apply(true, u.bids) != nil || s.book.Apply(false, u.asks) != nil {
		return r.invalidate(s, format.InvalidBadMessage, ts, uint64(last), s.LastU, u.prev, false)
	}
	var trimB, trimA []venue.Level
	if u.depth > 0 {
		r.trimB = s.book.Trim(true, u.depth, r.trimB[:0])
		r.trimA = s.book.Trim(false, u.depth, r.trimA[:0])
		trimB, trimA = r.trimB, r.trimA
	}
	s.LastU = last
	crossed := s.book.Crossed()
	if crossed {
		r.cnt.crossed++
	}
	if p != nil {
		p.noteSegment(u.seg)
		rec := format.BookRecord{TypeID: format.TypeLevel, SymbolID: p.key.SymbolID, ExchTs: ts, RecvTs: u.recv,
			Seq: uint64(last), Aux0: u.first, Aux1: u.prev}
		if err := p.levels(&rec, u.bids, u.asks, trimB, trimA, u.flags, crossed); err != nil {
			return err
		}
		r.touch(p)
	}
	s.pushTop(last, ts)
	r.resolvePending(s, last, ts)
	return nil
}

// ---- books whose snapshots come on the websocket (OKX, Kraken) ----

// onWSDepth applies a depth message of a venue that sends its snapshots on the websocket:
// a snapshot resets the book (and makes it valid), an update applies to a valid book when
// the venue's chain allows (OKX seqId/prevSeqId; Kraken has none), and every message that
// carries the exchange's checksum is checked against the book after it.
func (r *Refinery) onWSDepth(s *symState, ts int64) error {
	m := &r.msg
	if m.Wire.Known {
		s.Wire = m.Wire
	}
	if m.Snapshot {
		return r.wsSnapshot(s, ts)
	}
	if !s.live() {
		r.m.skipped.WithLabelValues("no_snapshot").Inc() // the book waits for its snapshot
		return nil
	}
	switch r.v.Check(s.LastU, m.Event) {
	case venue.SeqNext, venue.SeqUnknown:
	case venue.SeqStale:
		r.m.duplicates.Inc()
		return nil
	default:
		return r.invalidate(s, format.InvalidSequence, ts, uint64(m.ID), s.LastU, m.Prev, false)
	}
	u := depthUpdate{exch: ts, recv: r.recvNs, last: m.ID, prev: m.Prev, bids: m.Bids, asks: m.Asks, seg: r.segName, depth: m.Depth}
	if m.HasChecksum {
		u.first, u.flags = int64(m.Checksum), format.FlagChecksum
	}
	if s.csValid && r.touchesTop(s, m) {
		s.csValid = false
	}
	if err := r.applyDepth(s, &u); err != nil {
		return err
	}
	if m.HasChecksum && s.live() {
		return r.checksum(s, ts, uint64(m.ID), m.Checksum)
	}
	return nil
}

// wsSnapshot makes the book the snapshot's and writes a snapshot run restating it.
func (r *Refinery) wsSnapshot(s *symState, ts int64) error {
	m := &r.msg
	if s.live() && dayOf(ts) > s.BookDay {
		if err := r.flushHold(s); err != nil {
			return err
		}
	}
	s.csValid = false
	if err := s.book.Reset(m.Bids, m.Asks); err != nil {
		r.log.Warn("unusable snapshot", "symbol", s.Raw, "err", err)
		r.m.badSnapshots.Inc()
		return r.invalidate(s, format.InvalidBadMessage, ts, uint64(m.ID), 0, 0, true)
	}
	if m.Depth > 0 {
		s.book.Trim(true, m.Depth, nil)
		s.book.Trim(false, m.Depth, nil)
	}
	// The partition is found while the book still counts as invalid, so one created now
	// records the invalid stretch from its midnight to this snapshot.
	p, err := r.part(s, ts, true)
	if err != nil {
		return err
	}
	s.Phase, s.Snap, s.LastU, s.Buf = phaseLive, nil, m.ID, s.Buf[:0]
	s.BookDay = dayOf(ts)
	s.clearTops()
	r.closeInvalid(s, ts)
	if p != nil {
		if err := r.snapshotRun(s, p, ts, r.recvNs, uint64(m.ID), r.segName); err != nil {
			return err
		}
	} else {
		s.NextSnap = r.nextBoundary(ts)
	}
	r.m.resyncs.Inc()
	if m.HasChecksum {
		return r.checksum(s, ts, uint64(m.ID), m.Checksum)
	}
	return nil
}

// checksum compares the exchange's checksum of the book after an event with the rebuilt
// book's; a mismatch makes the book invalid (reason checksum) until the next snapshot.
// Both count in the partition of the event.
//
// The checksum reads only the book's top levels: while updates change levels below them
// it stays the one last computed (touchesTop), which spares most updates of a deep book
// the walk to the top and the hashing. When it is recomputed, the strings of the levels
// still in the top since the last one are copied, not written again (venue.Pieces).
func (r *Refinery) checksum(s *symState, ts int64, seq uint64, want uint32) error {
	got := s.csSum
	if !s.csValid || s.csWire != s.Wire {
		n := r.cs.ChecksumDepth()
		s.csB = s.book.Top(true, n, s.csB[:0])
		s.csA = s.book.Top(false, n, s.csA[:0])
		if r.pcs != nil {
			s.csPB.Update(s.csB, true, r.pcs, s.Scale, s.Wire)
			s.csPA.Update(s.csA, false, r.pcs, s.Scale, s.Wire)
			got = r.pcs.ChecksumPieces(&s.csPB, &s.csPA)
		} else {
			got = r.cs.Checksum(s.csB, s.csA, s.Scale, s.Wire)
		}
		s.csSum, s.csWire, s.csValid = got, s.Wire, true
	}
	p := r.openPart(s, ts)
	r.cnt.checksumChecks++
	if p != nil {
		p.st.ChecksumChecks++
	}
	if got == want {
		return nil
	}
	r.m.checksumMismatches.Inc()
	if p != nil {
		p.st.ChecksumMismatches++
	}
	r.log.Warn("checksum mismatch: the book is invalid until the next snapshot", "symbol", s.Raw, "seq", seq,
		"exchange", want, "book", got, "segment", r.segName)
	return r.invalidate(s, format.InvalidChecksum, ts, seq, int64(want), int64(got), false)
}

// touchesTop reports whether an update may change the top levels the last checksum read:
// a level at or above the worst of them on its side, any level on a side that had fewer,
// or a depth kept shallower than the checksum reads.
func (r *Refinery) touchesTop(s *symState, m *venue.Message) bool {
	n := r.cs.ChecksumDepth()
	if m.Depth > 0 && m.Depth <= n || len(s.csB) < n && len(m.Bids) > 0 || len(s.csA) < n && len(m.Asks) > 0 {
		return true
	}
	if len(m.Bids) > 0 {
		worst := s.csB[len(s.csB)-1].Price
		for _, l := range m.Bids {
			if l.Price >= worst {
				return true
			}
		}
	}
	if len(m.Asks) > 0 {
		worst := s.csA[len(s.csA)-1].Price
		for _, l := range m.Asks {
			if l.Price <= worst {
				return true
			}
		}
	}
	return false
}

// ---- snapshots ----

func (r *Refinery) onSnapshot(rec *format.JournalRecord) error {
	sym := r.snapReq[rec.Channel]
	if ci, ok := r.channels[rec.Channel]; ok && ci.Symbol != "" && ci.Kind == "depth" {
		sym = ci.Symbol
	}
	if err := r.v.DecodeSnapshot(rec.Payload, &r.snap); err != nil {
		r.m.badSnapshots.Inc()
		r.log.Warn("undecodable snapshot", "segment", r.segName, "offset", rec.Offset, "err", err)
		return nil
	}
	if sym == "" {
		sym = r.snap.Symbol
	}
	if sym == "" {
		r.m.badSnapshots.Inc()
		r.log.Warn("snapshot of an unknown symbol", "segment", r.segName, "offset", rec.Offset)
		return nil
	}
	s := r.sym(sym, r.clock)
	if s.live() {
		r.m.ignoredSnapshots.Inc()
		return nil
	}
	s.Snap = &heldSnap{L: r.snap.LastUpdateID, Bids: append([]venue.Level(nil), r.snap.Bids...),
		Asks: append([]venue.Level(nil), r.snap.Asks...)}
	s.Phase = phaseBridging
	return r.drain(s)
}

// snapshotRun writes a run restating the whole book into p.
func (r *Refinery) snapshotRun(s *symState, p *partition, ts, recv int64, seq uint64, seg string) error {
	bids, asks := s.book.Depth()
	rec := format.BookRecord{TypeID: format.TypeSnapshotBegin, Flags: format.FlagSnapshot, SymbolID: p.key.SymbolID,
		ExchTs: ts, RecvTs: recv, Seq: seq, Aux0: int64(bids + asks)}
	if !s.live() {
		rec.Flags |= format.FlagBookInvalid
		rec.Aux0 = 0
	}
	if err := p.write(&rec); err != nil {
		return err
	}
	if s.live() {
		r.snapBids, r.snapAsks = s.book.AppendBids(r.snapBids[:0]), s.book.AppendAsks(r.snapAsks[:0])
		lr := format.BookRecord{TypeID: format.TypeLevel, SymbolID: p.key.SymbolID, ExchTs: ts, RecvTs: recv, Seq: seq}
		if err := p.snapshotLevels(&lr, r.snapBids, r.snapAsks); err != nil {
			return err
		}
	}
	rec = format.BookRecord{TypeID: format.TypeSnapshotEnd, Flags: format.FlagSnapshot | format.FlagLast, SymbolID: p.key.SymbolID,
		ExchTs: ts, RecvTs: recv, Seq: seq}
	if !s.live() {
		rec.Flags |= format.FlagBookInvalid
	}
	if err := p.write(&rec); err != nil {
		return err
	}
	p.noteSegment(seg)
	r.touch(p)
	s.NextSnap = r.nextBoundary(ts)
	r.m.snapshots.Inc()
	return nil
}

type levelT = venue.Level

func (r *Refinery) nextBoundary(ts int64) int64 {
	iv := int64(r.cfg.SnapshotInterval)
	b := ts / iv
	if ts%iv < 0 {
		b--
	}
	return (b + 1) * iv
}

// periodic writes the periodic snapshot run when ts reaches the next boundary.
func (r *Refinery) periodic(s *symState, p *partition, ts, recv int64, seg string) error {
	if ts < s.NextSnap {
		return nil
	}
	if !s.live() {
		s.NextSnap = r.nextBoundary(ts)
		return nil
	}
	return r.snapshotRun(s, p, ts, recv, uint64(s.LastU), seg)
}

// ---- trades and tickers ----

func (r *Refinery) onTrade(s *symState, ts int64) error {
	m := &r.msg
	return r.trade(s, ts, venue.Trade{ID: m.ID, Price: m.Price, Qty: m.Qty, BuyerMaker: m.BuyerMaker}, m.Kind == venue.KindAggTrade)
}

// onTrades writes the trades of a message that carries several, each dated by its own
// time. Trades without ids (Kraken) are neither deduplicated nor checked for gaps.
func (r *Refinery) onTrades(s *symState) error {
	for _, t := range r.msg.Trades {
		if !r.plausible(t.TxNs) {
			r.m.malformed.Inc()
			continue
		}
		if err := r.trade(s, t.TxNs, t, false); err != nil {
			return err
		}
	}
	return nil
}

func (r *Refinery) trade(s *symState, ts int64, t venue.Trade, agg bool) error {
	m := &r.msg
	rec := format.BookRecord{TypeID: format.TypeTrade, Flags: format.FlagLast, ExchTs: ts, RecvTs: r.recvNs,
		Seq: uint64(t.ID), Price: t.Price, Qty: t.Qty}
	if t.BuyerMaker {
		rec.Flags |= format.FlagAsk // the seller took liquidity
	} else {
		rec.Flags |= format.FlagBid
	}
	last, lastTs, stream := &s.LastTrade, &s.LastTradeTs, "trade"
	if agg {
		rec.Aux0, rec.Aux1 = m.FirstTrade, m.LastTrade
		last, lastTs, stream = &s.LastAgg, &s.LastAggTs, "aggTrade"
	}
	if *last != 0 && t.ID != 0 {
		switch {
		case t.ID <= *last:
			r.m.duplicates.Inc()
			return nil
		case t.ID > *last+1:
			missing := t.ID - *last - 1
			r.m.gaps.WithLabelValues("trade").Inc()
			if p, err := r.part(s, ts, false); err != nil {
				return err
			} else if p != nil {
				p.st.Gaps = append(p.st.Gaps, meta.Gap{Interval: meta.Interval{From: meta.Time(max(*lastTs, p.dayStart)), To: meta.Time(ts)}, Stream: stream, Missing: missing})
			}
		}
	}
	if t.ID != 0 {
		*last, *lastTs = t.ID, ts
	}
	return r.emit(s, &rec)
}

func (r *Refinery) onTicker(s *symState, ts int64, estimated bool) error {
	m := &r.msg
	if m.ID != 0 && m.ID <= s.LastTickerU {
		r.m.duplicates.Inc()
		return nil
	}
	if m.ID != 0 {
		s.LastTickerU = m.ID
	}
	rec := format.BookRecord{TypeID: format.TypeBBO, Flags: format.FlagLast, ExchTs: ts, RecvTs: r.recvNs,
		Seq: uint64(m.ID), Price: m.BidPrice, Qty: m.BidQty, Aux0: m.AskPrice, Aux1: m.AskQty}
	if estimated {
		rec.Flags |= format.FlagTsEstimated
	}
	if err := r.emit(s, &rec); err != nil {
		return err
	}
	if m.ID == 0 {
		return nil // a ticker without an update id names no book state to compare with
	}
	t := pendingTicker{U: m.ID, Bid: venue.Level{Price: m.BidPrice, Qty: m.BidQty}, Ask: venue.Level{Price: m.AskPrice, Qty: m.AskQty}}
	if s.live() && t.U <= s.LastU {
		if tp, ok := s.findTop(t.U); ok {
			r.tickerCheck(s, tp, t)
		}
		return nil
	}
	if len(s.Pending) >= maxPendingTick {
		s.Pending = s.Pending[1:] // the oldest goes (appends move the rest now and then)
	}
	s.Pending = append(s.Pending, t)
	return nil
}

// resolvePending checks the tickers waiting for update u and drops those it passed.
func (r *Refinery) resolvePending(s *symState, u, ts int64) {
	n := 0
	for n < len(s.Pending) && s.Pending[n].U <= u {
		if s.Pending[n].U == u {
			r.tickerCheck(s, top{U: u, Ts: ts, Bid: bestOr(s, true), Ask: bestOr(s, false)}, s.Pending[n])
		}
		n++
	}
	switch {
	case n == len(s.Pending):
		s.Pending = s.Pending[:0]
	case n > 0:
		s.Pending = s.Pending[n:]
	}
}

func bestOr(s *symState, bid bool) venue.Level {
	var l venue.Level
	if bid {
		l, _ = s.book.BestBid()
	} else {
		l, _ = s.book.BestAsk()
	}
	return l
}

// tickerCheck compares a ticker with the rebuilt book after the update it names; the
// check counts in the partition of that update.
func (r *Refinery) tickerCheck(s *symState, t top, tk pendingTicker) {
	p := r.openPart(s, t.Ts)
	ok := t.Bid == tk.Bid && t.Ask == tk.Ask
	r.cnt.tickerChecks++
	if !ok {
		r.m.tickerMismatches.Inc()
		r.log.Warn("ticker disagrees with the book", "symbol", s.Raw, "u", t.U,
			"ticker", fmt.Sprintf("%d/%d %d/%d", tk.Bid.Price, tk.Bid.Qty, tk.Ask.Price, tk.Ask.Qty),
			"book", fmt.Sprintf("%d/%d %d/%d", t.Bid.Price, t.Bid.Qty, t.Ask.Price, t.Ask.Qty))
	}
	if p != nil {
		p.st.Checks++
		if !ok {
			p.st.Mismatches++
		}
	}
}

// emit writes a one-record event (trade, bbo): held while the depth stream has not yet
// crossed into the record's day, flagged while the book is invalid.
func (r *Refinery) emit(s *symState, rec *format.BookRecord) error {
	if s.live() && dayOf(rec.ExchTs) > s.BookDay && r.cfg.DayHold > 0 {
		if len(s.Hold) == 0 {
			s.HoldDeadline = (s.BookDay+1)*dayNs + int64(r.cfg.DayHold)
			r.holders[s.Raw] = s
		}
		s.Hold = append(s.Hold, *rec)
		s.HoldSegs = append(s.HoldSegs, r.segName)
		return nil
	}
	if !s.live() {
		rec.Flags |= format.FlagBookInvalid
	}
	return r.write(s, rec, r.segName)
}

func (r *Refinery) write(s *symState, rec *format.BookRecord, seg string) error {
	p, err := r.part(s, rec.ExchTs, false)
	if err != nil || p == nil {
		return err
	}
	if err := r.periodic(s, p, rec.ExchTs, rec.RecvTs, seg); err != nil {
		return err
	}
	rec.SymbolID = p.key.SymbolID
	if err := p.write(rec); err != nil {
		return err
	}
	p.noteSegment(seg)
	r.touch(p)
	return nil
}

// flushHold writes the held records of the next day: the new partition opens with the
// book as the previous day left it.
func (r *Refinery) flushHold(s *symState) error {
	if len(s.Hold) == 0 {
		return nil
	}
	hold, segs := s.Hold, s.HoldSegs
	s.Hold, s.HoldSegs = nil, nil
	delete(r.holders, s.Raw)
	for i := range hold {
		s.BookDay = max(s.BookDay, dayOf(hold[i].ExchTs))
		if err := r.write(s, &hold[i], segs[i]); err != nil {
			return err
		}
	}
	return nil
}

// ---- validity ----

// invalidate marks the book unreliable from ts: a book_invalid record, an open interval
// in the partition's completeness list, and every record flagged until the next snapshot.
// dropChain also forgets buffered updates and a held snapshot (a lost connection: the
// next chain starts afresh).
func (r *Refinery) invalidate(s *symState, reason, ts int64, seq uint64, expected, got int64, dropChain bool) error {
	if dropChain {
		s.Buf, s.Snap = s.Buf[:0], nil
		if s.Phase == phaseBridging {
			s.Phase = phaseAwaiting
		}
	}
	if !s.live() {
		return nil
	}
	if err := r.flushHold(s); err != nil {
		return err
	}
	r.m.gaps.WithLabelValues(format.InvalidReasonName(reason)).Inc()
	r.log.Info("book invalid", "symbol", s.Raw, "reason", format.InvalidReasonName(reason), "at", seq, "segment", r.segName)
	if ts == 0 {
		ts = s.LastExch
	}
	rec := format.BookRecord{TypeID: format.TypeBookInvalid, Flags: format.FlagBookInvalid | format.FlagLast,
		ExchTs: ts, RecvTs: r.recvNs, Seq: seq, Qty: reason, Aux0: expected, Aux1: got}
	p, err := r.part(s, ts, false)
	if err != nil {
		return err
	}
	s.Phase, s.Snap = phaseAwaiting, nil
	s.InvalidReason, s.InvalidFrom = reason, ts
	s.book.Clear()
	s.csValid = false
	s.clearTops()
	if p != nil {
		rec.SymbolID = p.key.SymbolID
		if err := p.write(&rec); err != nil {
			return err
		}
		p.noteSegment(r.segName)
		p.openInvalid(ts, reason)
		r.touch(p)
	}
	return nil
}

// closeInvalid ends the open invalid intervals of the symbol's partitions at a resync.
func (r *Refinery) closeInvalid(s *symState, ts int64) {
	for _, p := range r.parts {
		if p.raw == s.Raw && p.key.Kind != kindLate {
			p.closeInvalid(ts)
		}
	}
}

func (r *Refinery) touch(p *partition) {
	r.wrote = true
	for _, q := range r.touched {
		if q == p {
			return
		}
	}
	r.touched = append(r.touched, p)
}

// ---- connection events ----

func (r *Refinery) onConnect(rec *format.JournalRecord) error {
	var c journal.Connect
	if err := journal.Decode(rec.Payload, &c); err != nil {
		r.m.skipped.WithLabelValues("bad_event").Inc()
		return nil
	}
	for _, st := range c.Streams {
		sym := st.Symbol
		if sym == "" {
			sym = r.v.Symbol(st.Stream)
		}
		r.channels[st.Channel] = chanInfo{Stream: st.Stream, Symbol: sym, Kind: st.Kind, Conn: c.Channel}
	}
	if c.Carried {
		return nil
	}
	if r.session != 0 && c.Session != r.session {
		// A new feed process: every chain restarts.
		r.session = c.Session
		for _, raw := range sortedKeys(r.syms) {
			if err := r.invalidate(r.syms[raw], format.InvalidFeedRestart, 0, 0, 0, 0, true); err != nil {
				return err
			}
		}
		return nil
	}
	r.session = c.Session
	if c.Replaces != nil {
		return nil // a rollover: the journal continues each chain
	}
	return r.invalidateConn(c.Channel, format.InvalidDisconnect, true)
}

func (r *Refinery) onDisconnect(rec *format.JournalRecord) error {
	var d journal.Disconnect
	if err := journal.Decode(rec.Payload, &d); err != nil {
		r.m.skipped.WithLabelValues("bad_event").Inc()
		return nil
	}
	if d.Kind == journal.DisconnectRollover {
		return nil
	}
	return r.invalidateConn(rec.Channel, format.InvalidDisconnect, true)
}

// invalidateConn invalidates the books whose depth stream a connection carried.
func (r *Refinery) invalidateConn(conn uint16, reason int64, dropChain bool) error {
	var syms []string
	for _, ci := range r.channels {
		if ci.Conn == conn && ci.Kind == "depth" {
			syms = append(syms, ci.Symbol)
		}
	}
	sort.Strings(syms)
	for _, raw := range syms {
		if s := r.syms[raw]; s != nil {
			if err := r.invalidate(s, reason, 0, uint64(s.LastU), 0, 0, dropChain); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Refinery) onGap(rec *format.JournalRecord) error {
	var g journal.Gap
	if err := journal.Decode(rec.Payload, &g); err != nil {
		r.m.skipped.WithLabelValues("bad_event").Inc()
		return nil
	}
	var reason int64
	switch g.Reason {
	case journal.GapWriteFailed:
		for _, raw := range sortedKeys(r.syms) {
			if err := r.invalidate(r.syms[raw], format.InvalidWriteFailed, 0, 0, 0, 0, true); err != nil {
				return err
			}
		}
		return nil
	case journal.GapSequence:
		reason = format.InvalidSequence
	case journal.GapOversized:
		reason = format.InvalidOversized
	case journal.GapRolloverLost:
		reason = format.InvalidRolloverLost
	case journal.GapChecksum:
		reason = format.InvalidChecksum
	default:
		return nil
	}
	ci, ok := r.channels[rec.Channel]
	if !ok || ci.Kind != "depth" {
		return nil // trade gaps show in the trade ids; other streams are not refined
	}
	if s := r.syms[ci.Symbol]; s != nil {
		return r.invalidate(s, reason, 0, uint64(g.ID), g.LastID, g.Prev, reason != format.InvalidSequence && reason != format.InvalidChecksum)
	}
	return nil
}

// ---- partitions ----

// part returns the partition for the symbol's record at ts, creating it (with its opening
// snapshot run unless a run follows anyway), or nil when the record is late and rejected.
func (r *Refinery) part(s *symState, ts int64, runFollows bool) (*partition, error) {
	day := dayOf(ts)
	late := r.clock >= (day+1)*dayNs+int64(r.cfg.Grace)
	key, row, mapped := r.keyFor(s, ts, day)
	if p := s.lastPart; !late && p != nil && p.key == key && !p.gone {
		return p, nil
	}
	if late {
		r.m.late.WithLabelValues(r.cfg.LatePolicy).Inc()
		if r.cfg.LatePolicy != meta.LateStream {
			return nil, nil
		}
		key.Kind = kindLate
		runFollows = true // a late stream is a log of stragglers, not a book
	}
	if p := r.parts[key]; p != nil {
		if key.Kind != kindLate {
			s.lastPart = p
		}
		return p, nil
	}
	p := &partition{key: key, venue: r.v.Name(), raw: s.Raw, dayStart: day * dayNs, dayEnd: (day + 1) * dayNs, created: r.recvNs}
	if s.ScaleSet {
		p.scaled, p.priceDec, p.qtyDec = true, s.Scale.Price, s.Scale.Qty
	}
	switch {
	case mapped:
		p.code, p.versionID = row.SymbolCode, row.VersionID
		if vs := r.table.Load().Versions(row.SymbolID, p.dayStart, p.dayEnd); len(vs) > 0 {
			p.code, p.versionID = vs[0].SymbolCode, vs[0].VersionID // in force at the start of the date, or the first within it
		}
	default:
		p.code = lowerName(s.Raw)
		r.m.unmapped.Inc()
	}
	top := layout.LayoutVersion
	switch key.Kind {
	case kindUnmapped:
		top = UnmappedDir
	case kindLate:
		top = LateDir
	}
	p.dir = filepath.Join(r.root, top, p.venue, p.code, dateString(day))
	w, err := openWriter(r.fs, p.path(), headerFor(p, r.priceDec, r.qtyDec), -1, r.fopt)
	if err != nil {
		return nil, err
	}
	p.setWriter(w)
	r.parts[key] = p
	if key.Kind != kindLate {
		s.lastPart = p
	}
	r.m.partitionsOpen.Inc()
	r.log.Info("partition opened", "path", p.path())
	if key.Kind != kindLate {
		r.nextSeal = min(r.nextSeal, p.dayEnd+int64(r.cfg.Grace))
		if _, verify := w.(*verifier); !verify {
			// A new partition has its meta.json from the start (sealed: false).
			if err := r.writeMeta(p, r.metaFor(p, false)); err != nil {
				return nil, err
			}
			p.hasMeta = true
		}
		if !s.live() {
			from := max(s.InvalidFrom, p.dayStart)
			if s.Fresh { // the capture starts here
				from = ts
				if s.FirstSeen != 0 {
					from = min(from, s.FirstSeen)
				}
				p.st.CaptureFrom = from
			}
			p.openInvalid(from, s.InvalidReason)
		}
		s.Fresh = false
		if !runFollows {
			if err := r.snapshotRun(s, p, ts, r.recvNs, uint64(s.LastU), r.segName); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// keyFor resolves the symbol at ts against dim_symbol.
func (r *Refinery) keyFor(s *symState, ts, day int64) (partKey, symbols.Row, bool) {
	t := r.table.Load()
	if s.resTable == t && s.resRow.Contains(ts) {
		return partKey{Kind: kindV1, SymbolID: s.resRow.SymbolID, Day: day}, s.resRow, true
	}
	row, ok := t.Resolve(r.v.Name(), s.Raw, ts)
	if ok {
		s.resTable, s.resRow = t, row
	}
	if !ok {
		return partKey{Kind: kindUnmapped, Raw: s.Raw, Day: day}, row, false
	}
	return partKey{Kind: kindV1, SymbolID: row.SymbolID, Day: day}, row, true
}

// openPart returns the symbol's open partition for ts without creating one.
func (r *Refinery) openPart(s *symState, ts int64) *partition {
	key, _, _ := r.keyFor(s, ts, dayOf(ts))
	return r.parts[key]
}

// sealDue seals every partition whose day ended more than the grace ago.
func (r *Refinery) sealDue() error {
	next := int64(1<<63 - 1)
	var due []*partition
	for _, p := range r.parts {
		if p.key.Kind == kindLate {
			continue
		}
		if at := p.dayEnd + int64(r.cfg.Grace); r.clock >= at {
			due = append(due, p)
		} else {
			next = min(next, at)
		}
	}
	r.nextSeal = next
	return r.seal(due...)
}

// seal finishes partitions. The sealed bit is the hand-off to the tier manager, which moves
// only sealed books: once it is set the refinery never touches the partition again, not
// even after a crash. So, for each partition: index/, then meta.json (sealed), both
// durable with the directory; then a checkpoint that records the partitions as sealing
// (a restart finishes their seal, or finds them moved away, and never reopens them);
// and only then the sealed bit (trim, fsync).
func (r *Refinery) seal(ps ...*partition) error {
	sort.Slice(ps, func(i, j int) bool { return ps[i].path() < ps[j].path() })
	if len(ps) > 0 && r.flushInput != nil {
		r.flushInput()
	}
	metas := map[*partition]*meta.Meta{}
	for _, p := range ps {
		if err := p.commit(); err != nil {
			return err
		}
		if n := len(p.st.Invalid); n > 0 && p.st.Invalid[n-1].Open {
			p.st.Invalid[n-1].To = meta.Time(p.dayEnd) // still invalid at midnight: Open stays set
		}
		p.gone, p.sealing = true, true
		if !p.w.Writes() {
			continue // an earlier run sealed it; what this run regenerated was only compared
		}
		if err := buildIndex(p.dir); err != nil {
			return err
		}
		m := r.metaFor(p, true)
		if err := r.writeMeta(p, m); err != nil {
			return err
		}
		if err := r.fs.SyncDir(p.dir); err != nil {
			return err
		}
		metas[p] = m
	}
	if len(ps) > 0 && r.beforeSeal != nil {
		if err := r.beforeSeal(); err != nil {
			return err
		}
	}
	if len(ps) > 0 && r.sealHook != nil {
		if err := r.sealHook("checkpointed"); err != nil {
			return err
		}
	}
	for _, p := range ps {
		delete(r.parts, p.key)
		r.m.partitionsOpen.Dec()
		m := metas[p]
		if err := p.w.Seal(); err != nil {
			return fmt.Errorf("seal %s: %w", p.path(), err)
		}
		r.noteDiverged(p)
		if m == nil {
			continue
		}
		r.m.sealed.Inc()
		r.log.Info("partition sealed", "path", p.path(), "records", m.Records["total"], "depth_updates", m.Events.DepthUpdates,
			"trades", m.Events.Trades, "complete", m.Completeness.Complete)
	}
	if len(ps) > 0 {
		r.pruneSegs()
	}
	if len(ps) > 0 && r.sealHook != nil {
		return r.sealHook("sealed")
	}
	return nil
}

func (r *Refinery) noteDiverged(p *partition) {
	if d := p.w.Diverged(); d > 0 {
		r.diverged += d
		r.m.diverged.Add(float64(d))
		r.log.Error("rebuilt records differ from the file an earlier run left", "path", p.path(), "records", d)
	}
}

// writeMeta replaces the partition's meta.json atomically and durably (through r.fs).
func (r *Refinery) writeMeta(p *partition, m *meta.Meta) error {
	b, err := meta.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(p.dir, meta.FileName), err)
	}
	return vfs.WriteFile(r.fs, filepath.Join(p.dir, meta.FileName), b, 0o644)
}

// metaFor builds the partition's meta.json.
func (r *Refinery) metaFor(p *partition, sealed bool) *meta.Meta {
	st := &p.st
	m := &meta.Meta{
		Version: meta.Version, Venue: p.venue, Date: dateString(p.key.Day), SymbolID: p.key.SymbolID,
		SymbolCode: p.code, SymbolVersionID: p.versionID, Unmapped: p.key.Kind == kindUnmapped,
		PriceDecimals: r.priceDec, QtyDecimals: r.qtyDec, Sealed: sealed, IngestTime: meta.Time(time.Now().UnixNano()),
		Records: map[string]int64{}, LatePolicy: r.cfg.LatePolicy,
		Events: meta.Events{DepthUpdates: st.DepthUpdates, Trades: st.Trades, BBO: st.BBO, Snapshots: st.Snapshots, BookInvalid: st.BookInvalid},
		Checks: meta.Checks{CrossedEvents: st.Crossed, TickerChecks: st.Checks, TickerMismatches: st.Mismatches},
		Source: meta.Source{Pipeline: "chronicle-etl", Venue: r.v.Name(), Segments: r.segmentInfo(st.Segments), Host: r.host},
	}
	if p.scaled {
		m.PriceDecimals, m.QtyDecimals = p.priceDec, p.qtyDec
	}
	if r.cs != nil {
		checks, mismatches := st.ChecksumChecks, st.ChecksumMismatches
		m.Checks.ChecksumChecks, m.Checks.ChecksumMismatches = &checks, &mismatches
	}
	inst := r.v.Instrument(p.raw)
	m.Instrument = &meta.Instrument{QtyUnit: inst.QtyUnit, ContractSize: inst.ContractSize, ContractCurrency: inst.ContractCurrency}
	if sp, ok := r.specs[p.raw]; ok {
		mi := m.Instrument
		mi.QtyUnit, mi.ContractSize, mi.ContractCurrency = sp.QtyUnit, sp.ContractSize, sp.ContractCurrency
		mi.Type, mi.TickSize, mi.LotSize = sp.Type, sp.TickSize, sp.LotSize
		if sp.ExpiryNs != 0 {
			e := meta.Time(sp.ExpiryNs)
			mi.Expiry = &e
		}
	}
	var total int64
	for t, n := range st.Counts {
		if n > 0 {
			name := "unknown"
			if t > 0 {
				name = format.TypeName(uint16(t))
			}
			m.Records[name] = n
			total += n
		}
	}
	m.Records["total"] = total
	if st.HaveTs {
		m.EventTimeRange = &meta.Interval{From: meta.Time(st.FirstTs), To: meta.Time(st.LastTs)}
	}
	m.Completeness.Invalid = p.invalidForMeta()
	for i := range m.Completeness.Invalid {
		if iv := &m.Completeness.Invalid[i]; iv.Open && !sealed {
			iv.To = meta.Time(max(min(r.clock, p.dayEnd), int64(iv.From))) // so far
		}
	}
	m.Completeness.Gaps = append([]meta.Gap{}, st.Gaps...)
	m.Completeness.Complete = len(m.Completeness.Invalid) == 0 && len(st.Gaps) == 0
	if p.key.Kind == kindUnmapped {
		m.SymbolVersions = []meta.SymbolVersion{{SymbolCode: p.code, RawSymbol: p.raw, Interval: meta.Interval{From: meta.Time(p.dayStart), To: meta.Time(p.dayEnd)}}}
	} else {
		for _, v := range r.table.Load().Versions(p.key.SymbolID, p.dayStart, p.dayEnd) {
			m.SymbolVersions = append(m.SymbolVersions, meta.SymbolVersion{SymbolVersionID: v.VersionID, SymbolCode: v.SymbolCode,
				RawSymbol: v.RawSymbol, Interval: meta.Interval{From: meta.Time(max(v.From, p.dayStart)), To: meta.Time(min(v.To, p.dayEnd))}})
		}
	}
	return m
}
