package etl

import (
	"bytes"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
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
