package feed

import (
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/venue"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed struct types are marshaled here
	}
	return b
}

// streamState is what the recorder knows of one stream of a slot. It lives as long as the
// slot, across its connections, and is only touched under the journal lock.
type streamState struct {
	info  venue.Stream
	hasID bool // the stream's events carry an ordering id

	have     bool    // lastID is set
	lastID   int64   // highest id journaled
	lastFrom *wsConn // the connection that journaled it

	// Depth chain bookkeeping, to spot a snapshot older than the chain it should seed.
	needSnap   bool  // a snapshot is wanted for the current chain
	chainFresh bool  // the chain restarted since needSnap was set
	chainPrev  int64 // Prev of the chain's first event
	snapRecv   bool
	snapID     int64

	// Venues that send snapshots on the websocket: the checksum verifier of a depth stream,
	// and, for a depth stream without ids, the connection whose messages are journaled
	// (the incoming one of a rollover from its snapshot on; nil: the active one).
	ver    *venue.Verifier
	follow *wsConn

	// Rollover overlap (see gate).
	aligned      bool
	incomingSeen bool
	incomingMax  int64
	activeInOver bool
	involved     bool // counted in the slot's pendingAlign
}

// slotState is one planned connection slot: its streams and its live connections.
type slotState struct {
	idx      int
	plan     venue.Connection
	streams  []streamState
	byName   map[string]int
	active   *wsConn // the connection whose messages are journaled
	incoming *wsConn // a rollover connection overlapping active, or nil
	last     *wsConn // the last connection attached (for snapshots while reconnecting)

	pendingAlign  int           // streams involved in the overlap and not yet aligned
	strongAligned int           // alignments proving A read past B's start
	handover      chan struct{} // signalled when the incoming connection can take over
}

func newSlot(idx int, plan venue.Connection) *slotState {
	sl := &slotState{idx: idx, plan: plan, byName: make(map[string]int, len(plan.Streams)), handover: make(chan struct{}, 1)}
	for i, s := range plan.Streams {
		sl.streams = append(sl.streams, streamState{info: s, hasID: s.Kind != venue.KindOther && s.Kind != venue.KindControl && !s.NoID})
		sl.byName[s.Name] = i
	}
	return sl
}

// snapshotRequester is the part of the snapshot fetcher the recorder calls.
type snapshotRequester interface {
	request(symbol, reason string, delay time.Duration)
}

// Recorder turns what connections read into journal records: it routes each message to
// its stream's channel, applies the venue's sequence rule, writes gap and connection
// event records, and during a rollover journals each message once. Live capture and
// replay both go through it.
type Recorder struct {
	v       venue.Venue
	sub     venue.Subscriber // set for venues subscribed by request, whose snapshots come on the websocket
	scales  *venue.Scales    // instrument scales from the reference data (under the journal lock)
	j       *Journal
	m       *Metrics
	log     *slog.Logger
	snap    snapshotRequester // nil in replay
	session int64
	host    string     // this capture host's id, in every connect record
	clock   *wallClock // receive times of live capture
	slots   []*slotState
	bySym   map[string][2]int // symbol -> slot, stream index of its depth stream

	afterCommit func(recvNs, commitNs int64) // test hook
	// resubscribe asks a connection for a new subscription of a stream (nil in replay).
	resubscribe func(c *wsConn, st venue.Stream, reason string)
}

func newRecorder(v venue.Venue, j *Journal, m *Metrics, log *slog.Logger, session int64, slots []*slotState) *Recorder {
	r := &Recorder{v: v, j: j, m: m, log: log, session: session, slots: slots, bySym: map[string][2]int{}, clock: &wallClock{}}
	r.sub, _ = v.(venue.Subscriber)
	def := venue.Scale{}
	def.Price, def.Qty = v.Decimals()
	r.scales = &venue.Scales{Default: def}
	for _, sl := range slots {
		for i := range sl.streams {
			st := &sl.streams[i]
			if st.info.Kind == venue.KindDepth {
				r.bySym[st.info.Symbol] = [2]int{sl.idx, i}
				if r.sub != nil {
					st.ver = venue.NewVerifier(v, r.scales)
				}
			}
		}
	}
	j.onRoll = r.restateLocked
	j.onWritable = r.writableLocked
	return r
}

// writableLocked runs once the journal takes records again after failed appends (the
// device was full...): records of every stream may be missing, and the refinery drops
// every book at the write_failed gap, so each depth stream starts a new chain and needs a
// new snapshot.
//
// A venue that sends its snapshots on the websocket is asked again for the stream instead
// (a resubscription; its verifier waits for the new snapshot).
func (r *Recorder) writableLocked(now int64) {
	for _, sl := range r.slots {
		for i := range sl.streams {
			st := &sl.streams[i]
			if st.info.Kind != venue.KindDepth {
				continue
			}
			st.needSnap, st.chainFresh, st.snapRecv = true, false, false
			switch {
			case r.sub != nil:
				if c := sl.active; c != nil && r.resubscribe != nil {
					r.resubscribe(c, st.info, journal.SnapshotWriteFailed)
				}
			case r.snap != nil:
				r.snap.request(st.info.Symbol, journal.SnapshotWriteFailed, 0)
			}
		}
	}
}

// onMessage journals one websocket message read by c at recvNs.
func (r *Recorder) onMessage(c *wsConn, recvNs int64, msg []byte, binary bool) {
	sl := c.slot
	idx := -1
	var ev venue.Event
	var perr error
	if !binary {
		ev, perr = r.v.Parse(msg)
		if perr == nil {
			key := ev.Key(c.key)
			if ev.Inst != nil {
				c.key = key // the buffer grows once, then is reused
			}
			if i, ok := sl.byName[string(key)]; ok {
				idx = i
			}
		}
	}
	j := r.j
	if perr == nil && !binary && ev.Kind == venue.KindControl {
		// Subscription replies, heartbeats, pongs: kept on the connection's channel.
		err := j.Append(format.JournalMessage, c.connCh, recvNs, msg)
		if err == nil {
			r.m.messages[venue.KindControl].Inc()
			r.m.bytes.Add(float64(len(msg)))
		}
		if r.sub != nil {
			r.onControl(c, r.sub.Control(msg))
		}
		return
	}
	j.Lock()
	if idx < 0 {
		// Unroutable messages are kept (never lose what was received) on the
		// connection's own channel, and counted.
		err := j.AppendLocked(format.JournalMessage, c.connCh, recvNs, msg)
		j.Unlock()
		reason := "unknown_stream"
		switch {
		case binary:
			reason = "binary"
		case perr != nil:
			reason = parseReason(perr)
		}
		r.m.malformed.WithLabelValues(reason).Inc()
		if err == nil {
			r.m.bytes.Add(float64(len(msg)))
		}
		return
	}
	st := &sl.streams[idx]
	if !r.gate(c, sl, st, &ev) {
		j.Unlock()
		r.m.overlapDropped.Inc()
		return
	}
	gap := false
	seq := venue.SeqUnknown
	if st.hasID && st.have && ev.ID != 0 {
		if seq = r.v.Check(st.lastID, ev); seq == venue.SeqGap {
			gap = true
			g := journal.Gap{Reason: journal.GapSequence, Stream: st.info.Name, Symbol: st.info.Symbol,
				LastID: st.lastID, First: ev.First, Prev: ev.Prev, ID: ev.ID}
			j.AppendLocked(format.JournalGap, c.channels[idx], recvNs, mustJSON(g))
		}
	}
	if r.sub == nil && st.info.Kind == venue.KindDepth && (gap || (st.needSnap && !st.chainFresh) || !st.have) {
		r.chainStartLocked(st, &ev, gap)
	}
	switch {
	case !st.hasID || ev.ID == 0:
	case !st.have || ev.ID > st.lastID:
		st.lastID, st.have, st.lastFrom = ev.ID, true, c
	case r.sub != nil && st.info.Kind == venue.KindDepth && (ev.Snapshot || seq == venue.SeqNext):
		// A new chain (a snapshot) or a sequence reset (seqId below prevSeqId) continues
		// from this id.
		st.lastID, st.lastFrom = ev.ID, c
	}
	t0 := time.Now()
	err := j.AppendLocked(format.JournalMessage, c.channels[idx], recvNs, msg)
	t1 := time.Now()
	if sl.incoming != nil && st.hasID {
		r.checkAlignedLocked(sl, st)
	}
	mismatch := false
	if err == nil && st.ver != nil {
		// The feed keeps its own small book of each checksummed stream, to resubscribe
		// at the first mismatch; it runs under the journal lock so that it sees the
		// stream's messages in journal order, also across a rollover's two connections.
		switch st.ver.Verify(msg) {
		case venue.VerifyMismatch:
			mismatch = true
			g := journal.Gap{Reason: journal.GapChecksum, Stream: st.info.Name, Symbol: st.info.Symbol, ID: ev.ID}
			j.AppendLocked(format.JournalGap, c.channels[idx], recvNs, mustJSON(g))
		case venue.VerifyOK:
			r.m.checksums.WithLabelValues("ok").Inc()
		}
	}
	j.Unlock()
	if mismatch {
		r.m.checksums.WithLabelValues("mismatch").Inc()
		r.m.gaps.WithLabelValues(journal.GapChecksum).Inc()
		r.log.Warn("checksum mismatch: resubscribing", "stream", st.info.Name, "id", ev.ID)
		if r.resubscribe != nil {
			r.resubscribe(c, st.info, journal.ResubscribeChecksum)
		}
	}
	if err != nil {
		return
	}
	r.m.messages[ev.Kind].Inc()
	r.m.bytes.Add(float64(len(msg)))
	r.m.appendLatency.Observe(t1.Sub(t0).Seconds())
	commit := t1.UnixNano()
	r.m.recvToCommit.Observe(float64(commit-recvNs) / 1e9)
	if gap {
		r.m.gaps.WithLabelValues(journal.GapSequence).Inc()
		switch {
		case r.sub != nil && r.resubscribe != nil:
			r.resubscribe(c, st.info, journal.ResubscribeSequence)
		case r.snap != nil:
			r.snap.request(st.info.Symbol, journal.SnapshotGap, 0)
		}
	}
	if r.afterCommit != nil {
		r.afterCommit(recvNs, commit)
	}
}

func parseReason(err error) string {
	switch {
	case errors.Is(err, venue.ErrNotEnvelope):
		return "not_envelope"
	case errors.Is(err, venue.ErrMissingField):
		return "missing_field"
	case errors.Is(err, venue.ErrBadField):
		return "bad_field"
	}
	return "syntax"
}

// chainStartLocked notes the first depth event of a new chain (after a connect or a gap)
// and checks it against a snapshot that already arrived.
func (r *Recorder) chainStartLocked(st *streamState, ev *venue.Event, gap bool) {
	if gap {
		st.needSnap, st.snapRecv = true, false
	}
	st.chainFresh, st.chainPrev = true, ev.Prev
	if st.needSnap && st.snapRecv {
		r.judgeSnapshotLocked(st, ev.Prev)
	}
}

// judgeSnapshotLocked decides whether the snapshot received can seed the chain; a stale
// one is followed by another request.
func (r *Recorder) judgeSnapshotLocked(st *streamState, chainPrev int64) {
	first := venue.Event{Kind: venue.KindDepth, Prev: chainPrev}
	if r.v.Bridges(venue.Snapshot{LastUpdateID: st.snapID}, first) {
		st.needSnap = false
		return
	}
	st.snapRecv = false
	r.m.snapshots.WithLabelValues("stale").Inc()
	r.log.Warn("snapshot older than the diff chain: asking again", "symbol", st.info.Symbol, "last_update_id", st.snapID, "chain_prev", chainPrev)
	if r.snap != nil {
		r.snap.request(st.info.Symbol, journal.SnapshotStale, 500*time.Millisecond)
	}
}

// gate decides, during a rollover, whether a message is journaled, so that each event is
// journaled once and the stream has no hole (docs/chronicle-feed.md, "Rollover"). Outside a
// rollover only the active connection is journaled.
//
// The incoming connection B may contribute to a stream once it is aligned: it delivered
// an event at or before the last one journaled (or one continuing it exactly), or the
// active connection A has journaled everything B delivered so far. After that each event
// is journaled by whichever connection delivers it first (its id is above the last
// journaled). Until then B's events are dropped: A will deliver them. Streams without
// ids switch when A is retired.
func (r *Recorder) gate(c *wsConn, sl *slotState, st *streamState, ev *venue.Event) bool {
	if c != sl.active && c != sl.incoming {
		return false
	}
	if !st.hasID || ev.ID == 0 {
		if r.sub != nil && st.info.Kind == venue.KindDepth {
			return r.followLocked(c, sl, st, ev)
		}
		return c == sl.active
	}
	// An id at or below the last one journaled by another connection is that event
	// again (a promoted connection still behind its predecessor). The venue's own
	// repeats on one connection are kept: the journal keeps what the venue sent.
	dup := st.have && ev.ID <= st.lastID && st.lastFrom != c
	if sl.incoming == nil {
		return !dup
	}
	if c == sl.active {
		if !st.activeInOver {
			st.activeInOver = true
			r.involveLocked(sl, st)
		}
		return !(st.aligned && dup)
	}
	if st.aligned {
		return !dup
	}
	switch {
	case dup:
		// B is at or behind what A journaled: it holds everything after this.
		r.alignLocked(sl, st, true)
		return false
	case st.have && st.info.Kind == venue.KindDepth && ev.Prev == st.lastID:
		r.alignLocked(sl, st, false)
		return true
	}
	// B is ahead of A: drop, A will deliver it; B aligns once A has passed it.
	if !st.incomingSeen {
		st.incomingSeen = true
		r.involveLocked(sl, st)
	}
	st.incomingMax = max(st.incomingMax, ev.ID)
	return false
}

// followLocked gates a depth stream without ids on a venue that sends its snapshots on
// the websocket: the incoming connection of a rollover takes the stream over at its
// snapshot (which restates the whole book, so nothing is lost or doubled), and from then
// on only its messages are journaled. Such a switch counts as a strong alignment: the new
// connection has restated the book.
func (r *Recorder) followLocked(c *wsConn, sl *slotState, st *streamState, ev *venue.Event) bool {
	cur := st.follow
	if cur == nil || (cur != sl.active && cur != sl.incoming) {
		cur = sl.active
	}
	if c == cur {
		return true
	}
	if c == sl.incoming && ev.Snapshot {
		st.follow = c
		if !st.aligned {
			st.aligned = true
			sl.strongAligned++
			if st.involved {
				sl.pendingAlign--
			}
			if sl.pendingAlign == 0 {
				select {
				case sl.handover <- struct{}{}:
				default:
				}
			}
		}
		return true
	}
	return false
}

// involveLocked counts a stream that must align before the handover.
func (r *Recorder) involveLocked(sl *slotState, st *streamState) {
	if !st.aligned && !st.involved {
		st.involved = true
		sl.pendingAlign++
	}
}

// checkAlignedLocked runs after A journaled an event: once A has passed everything B
// delivered, B is aligned.
func (r *Recorder) checkAlignedLocked(sl *slotState, st *streamState) {
	if !st.aligned && st.incomingSeen && st.lastID >= st.incomingMax {
		r.alignLocked(sl, st, true)
	}
}

// alignLocked marks B aligned on a stream. strong says the evidence shows A has read
// past B's first message (all streams of a connection share one ordered socket, so A
// then has nothing older in flight on any stream). The handover waits for every stream
// involved in the overlap to align and for at least one strong alignment.
func (r *Recorder) alignLocked(sl *slotState, st *streamState, strong bool) {
	if st.aligned {
		return
	}
	st.aligned = true
	if strong {
		sl.strongAligned++
	}
	if st.involved {
		sl.pendingAlign--
	}
	if sl.pendingAlign == 0 && sl.strongAligned > 0 {
		select {
		case sl.handover <- struct{}{}:
		default:
		}
	}
}

func (r *Recorder) resetOverlapLocked(sl *slotState) {
	sl.pendingAlign, sl.strongAligned = 0, 0
	for i := range sl.streams {
		st := &sl.streams[i]
		st.aligned, st.incomingSeen, st.incomingMax, st.activeInOver, st.involved = false, false, 0, false, false
	}
	select {
	case <-sl.handover:
	default:
	}
}

// onOversized records a message above the size limit: not journaled, counted, and marked
// by a gap record on its stream (found from the message's first bytes) or connection.
func (r *Recorder) onOversized(c *wsConn, recvNs int64, head []byte, size int64) {
	ch := c.connCh
	g := journal.Gap{Reason: journal.GapOversized, Bytes: size}
	// The message is cut short, so a full parse fails; its stream name comes first.
	if name, ok := streamPrefix(head); ok {
		if i, ok := c.slot.byName[name]; ok {
			ch, g.Stream, g.Symbol = c.channels[i], c.slot.streams[i].info.Name, c.slot.streams[i].info.Symbol
		}
	}
	r.j.Append(format.JournalGap, ch, recvNs, mustJSON(g))
	r.m.rejected.WithLabelValues("oversized").Inc()
	r.m.gaps.WithLabelValues(journal.GapOversized).Inc()
	r.log.Warn("message above the size limit dropped", "bytes", size, "stream", g.Stream)
}

// streamPrefix reads the stream name from the start of a truncated combined-stream
// message, {"stream":"name",...
func streamPrefix(head []byte) (string, bool) {
	const p = `{"stream":"`
	if len(head) < len(p) || string(head[:len(p)]) != p {
		return "", false
	}
	rest := head[len(p):]
	for i, b := range rest {
		if b == '"' {
			return string(rest[:i]), true
		}
	}
	return "", false
}

// connectPayload is c's Connect record.
func (r *Recorder) connectPayload(c *wsConn, carried bool, replaces *uint64) []byte {
	ev := journal.Connect{Session: r.session, Slot: c.slot.idx, Gen: c.gen, Channel: c.connCh, URL: c.url,
		Carried: carried, Replaces: replaces, Replay: c.replay, Host: r.host}
	for i, s := range c.slot.streams {
		ev.Streams = append(ev.Streams, journal.StreamInfo{Channel: c.channels[i], Stream: s.info.Name, Symbol: s.info.Symbol, Kind: s.info.Kind.String()})
	}
	return mustJSON(ev)
}

// attach makes c the slot's active connection (reason says why its depth streams need a
// snapshot) or, with replaces set, the incoming side of a rollover.
func (r *Recorder) attach(c *wsConn, replaces *uint64, now int64) {
	sl := c.slot
	r.j.Lock()
	defer r.j.Unlock()
	if replaces != nil {
		r.resetOverlapLocked(sl)
		sl.incoming = c
	} else {
		sl.active = c
		sl.last = c
		for i := range sl.streams {
			st := &sl.streams[i]
			st.follow = nil
			if st.info.Kind == venue.KindDepth {
				st.needSnap, st.chainFresh, st.snapRecv = true, false, false
				if r.sub != nil {
					// A new connection's streams start with new snapshots.
					st.have = false
				}
			}
		}
	}
	r.j.AppendLocked(format.JournalConnect, c.connCh, now, r.connectPayload(c, false, replaces))
}

// promote ends a rollover: the incoming connection becomes the active one. Streams on
// which B was still ahead of A (A died, or the overlap timed out) may miss the events
// only B had delivered: each gets a gap record, and depth streams a snapshot.
//
// Unless forced, it only promotes if the handover condition still holds: a stream may have
// become involved between the signal and now.
func (r *Recorder) promote(sl *slotState, now int64, force bool) bool {
	var resync []string
	var restream []venue.Stream
	r.j.Lock()
	if sl.incoming == nil || (!force && (sl.pendingAlign > 0 || sl.strongAligned == 0)) {
		r.j.Unlock()
		return false
	}
	for i := range sl.streams {
		st := &sl.streams[i]
		if st.hasID && !st.aligned && st.incomingSeen {
			g := journal.Gap{Reason: journal.GapRolloverLost, Stream: st.info.Name, Symbol: st.info.Symbol, LastID: st.lastID}
			r.j.AppendLocked(format.JournalGap, sl.incoming.channels[i], now, mustJSON(g))
			r.m.gaps.WithLabelValues(journal.GapRolloverLost).Inc()
			if st.info.Kind == venue.KindDepth {
				st.needSnap, st.chainFresh, st.snapRecv = true, false, false
				resync = append(resync, st.info.Symbol)
				restream = append(restream, st.info)
			}
		}
	}
	promoted := sl.incoming
	sl.active, sl.incoming = sl.incoming, nil
	sl.last = sl.active
	for i := range sl.streams {
		sl.streams[i].follow = nil
	}
	r.resetOverlapLocked(sl)
	r.j.Unlock()
	if r.sub != nil {
		for _, st := range restream {
			if r.resubscribe != nil {
				r.resubscribe(promoted, st, journal.GapRolloverLost)
			}
		}
		return true
	}
	for _, sym := range resync {
		if r.snap != nil {
			r.snap.request(sym, journal.SnapshotGap, 0)
		}
	}
	return true
}

// detach journals c's Disconnect record; call it after c's reader has stopped.
func (r *Recorder) detach(c *wsConn, kind, reason string, now int64) {
	d := journal.Disconnect{Session: r.session, Slot: c.slot.idx, Gen: c.gen, Kind: kind, Reason: reason, Messages: c.msgs.Load()}
	if code := websocket.CloseStatus(c.err); code != -1 {
		d.Code = int(code)
	}
	sl := c.slot
	r.j.Lock()
	if sl.active == c {
		sl.active = nil
	}
	if sl.incoming == c {
		sl.incoming = nil
		r.resetOverlapLocked(sl)
	}
	r.j.AppendLocked(format.JournalDisconnect, c.connCh, now, mustJSON(d))
	r.j.Unlock()
}

// restateLocked writes a carried Connect record for every open connection at the start
// of a new segment, so each segment maps its own channels.
func (r *Recorder) restateLocked(now int64) {
	for _, sl := range r.slots {
		for _, c := range []*wsConn{sl.active, sl.incoming} {
			if c != nil {
				r.j.AppendLocked(format.JournalConnect, c.connCh, now, r.connectPayload(c, true, nil))
			}
		}
	}
}

// depthChannelLocked returns the channel of a symbol's depth stream on the slot's active
// connection (or the last one, while it reconnects), and the stream name.
func (r *Recorder) depthChannelLocked(symbol string) (uint16, string, bool) {
	at, ok := r.bySym[symbol]
	if !ok {
		return 0, "", false
	}
	sl := r.slots[at[0]]
	c := sl.active
	if c == nil {
		c = sl.last
	}
	if c == nil {
		return 0, "", false
	}
	return c.channels[at[1]], sl.streams[at[1]].info.Name, true
}

// snapshotRequest journals that a snapshot is being requested and returns the channel
// its response will be journaled on; ok is false for a symbol without a depth stream.
func (r *Recorder) snapshotRequest(req journal.SnapshotRequest, now int64) (uint16, bool) {
	r.j.Lock()
	defer r.j.Unlock()
	ch, stream, ok := r.depthChannelLocked(req.Symbol)
	if !ok {
		return 0, false
	}
	req.Stream = stream
	r.j.AppendLocked(format.JournalSnapshotRequest, ch, now, mustJSON(req))
	return ch, true
}

// snapshotResponse journals a REST depth body on its request's channel and judges it
// against the diff chain.
func (r *Recorder) snapshotResponse(symbol string, ch uint16, recvNs int64, body []byte, snap venue.Snapshot, parsed bool) {
	r.j.Lock()
	defer r.j.Unlock()
	if err := r.j.AppendLocked(format.JournalRESTSnapshot, ch, recvNs, body); err != nil {
		return // not journaled: the chain still needs one (asked again once writable)
	}
	at, ok := r.bySym[symbol]
	if !parsed || !ok {
		return
	}
	st := &r.slots[at[0]].streams[at[1]]
	st.snapRecv, st.snapID = true, snap.LastUpdateID
	if st.needSnap && st.chainFresh {
		r.judgeSnapshotLocked(st, st.chainPrev)
	}
}

// onControl acts on a control message: subscription failures are logged and counted,
// the rest is kept in the journal only.
func (r *Recorder) onControl(c *wsConn, ctl venue.Control) {
	switch ctl.Kind {
	case venue.ControlError:
		r.m.subscriptionErrors.Inc()
		r.log.Warn("venue refused a request", "slot", c.slot.idx, "gen", c.gen, "stream", ctl.Stream, "error", ctl.Text)
	case venue.ControlSubscribed, venue.ControlUnsubscribed:
		r.log.Debug("subscription", "slot", c.slot.idx, "gen", c.gen, "stream", ctl.Stream, "event", ctl.Kind.String())
	case venue.ControlInfo:
		if ctl.Text != "" {
			r.log.Info("venue notice", "slot", c.slot.idx, "gen", c.gen, "text", ctl.Text)
		}
	}
}

// reference journals a body of the venue's reference data on the feed's channel and, when
// it decodes, gives the instruments' scales to the checksum verifiers. It reports whether
// it decoded.
func (r *Recorder) reference(recvNs int64, body []byte) (int, error) {
	rv, ok := r.v.(venue.Referencer)
	if !ok {
		return 0, nil
	}
	specs, derr := rv.DecodeReference(body, nil)
	r.j.Lock()
	defer r.j.Unlock()
	if err := r.j.AppendLocked(format.JournalReference, journal.ChannelFeed, recvNs, body); err != nil {
		return 0, err
	}
	if derr != nil {
		return 0, derr
	}
	for _, sp := range specs {
		r.scales.Set(sp.Symbol, sp.Scale)
	}
	return len(specs), nil
}
