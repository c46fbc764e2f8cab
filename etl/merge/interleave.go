package merge

import (
	"context"
	"fmt"
	"sort"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/venue"
)

// The second pass interleaves the two journals into one that reads as if one host with
// both hosts' connections had captured it:
//
//   - every message once: the same event seen by both hosts (matched by the venue's join
//     rule) is taken from the base host, with the base's receive time; events only one
//     host saw are taken from it, placed by the exchange's own clock: each frame's receive
//     time less its host's latency, as the host's latest depth update shows it (receive
//     time minus the update's event time). Hosts' receive clocks and latencies differ, and
//     a host catching up on a backlog receives events late: the exchange's times keep
//     what one host received before a disconnect ahead of what the other received after;
//   - per stream in the venue's order: nothing goes out behind a later event of its stream
//     (ids, as Check says), so trades and tickers are de-duplicated by id and depth updates
//     joined by their sequence ids;
//   - a host's connection events (connects, disconnects, gaps, feed restarts, missing
//     segments, undecodable depth messages) reach the merged journal only when no host
//     continues the symbol's chain past the last update merged (the survey's runs);
//   - every REST snapshot (the refinery uses one only while the book is unknown).
//
// The base host is the one whose id sorts first, so the same inputs make the same journal
// whichever host was named first.

// window is how far (exchange-aligned time) each host's journal is read ahead of the
// other's: an event both hosts received lies within it on both sides.
const window = int64(5e9)

// item is a frame waiting in a host's queue.
type item struct {
	h    int
	typ  uint16
	ch   uint16
	recv int64
	mt   int64 // exchange-aligned time: recv less the host's latency (lag)
	seg  int
	lost bool
	pl   []byte

	msg    bool // a parsed message of a known kind
	stream int  // index into interleaver.streams
	ev     venue.Event
	key    uint64
	done   bool  // emitted or dropped
	pair   *item // the other host's copy of the same event
}

// hostQueue is one host's frames read ahead, in journal order.
type hostQueue struct {
	src      *frameSource
	prod     *producer
	items    []*item
	head     int
	eof      bool
	lastMT   int64
	unpaired map[uint64][]*item // messages not matched yet, by join key
	byStream map[int][]*item    // pending unmatched messages per stream, in order
	ch       *channels
	read     int64
	lag      int64 // the host's latency at its journal's start (firstLag)
}

func (q *hostQueue) front() *item {
	for q.head < len(q.items) && q.items[q.head].done {
		q.items[q.head] = nil
		q.head++
	}
	if q.head > 4096 && q.head*2 > len(q.items) {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	if q.head < len(q.items) {
		return q.items[q.head]
	}
	return nil
}

// pendingOf returns the first pending message of stream s in the queue.
func (q *hostQueue) pendingOf(s int) *item {
	l := q.byStream[s]
	for len(l) > 0 && l[0].done {
		l = l[1:]
	}
	if len(l) == 0 {
		delete(q.byStream, s)
		return nil
	}
	q.byStream[s] = l
	return l[0]
}

// stats says what the interleave did.
type stats struct {
	Frames      [2]int64 // frames read
	Emitted     int64    // frames written to the merged journal
	Common      int64    // messages both hosts had (taken once)
	Only        [2]int64 // messages only this host had
	Stale       int64    // messages behind their stream (duplicates by id)
	Suppressed  int64    // host connection events that lost nothing of the merge
	Invalidated int64    // ... that did: passed on to the merged journal
	Snapshots   int64
}

// source records, per stream, which host supplied its events from which id on.
type source struct {
	from int64 // first id of the stretch
	host int
}

// interleaver is the second pass.
type interleaver struct {
	v       venue.Venue
	rule    joinRule
	sv      *survey
	q       [2]*hostQueue
	out     *journalWriter
	streams []streamInfo
	byName  map[string]int
	last    []int64 // per stream: id of the last event merged (0: none)
	started []bool
	lastU   map[string]int64 // per symbol: the last depth update merged
	gone    map[string]bool  // per symbol: a loss was passed on after the last depth update
	sources [][]source       // per stream
	st      stats
}

func newInterleaver(v venue.Venue, rule joinRule, sv *survey, hosts [2]*hostJournal, syms []string, bySym map[string][]streamInfo, out *journalWriter) *interleaver {
	m := &interleaver{v: v, rule: rule, sv: sv, out: out, byName: map[string]int{}, lastU: map[string]int64{}, gone: map[string]bool{}}
	for _, s := range syms {
		for _, st := range bySym[s] {
			m.byName[st.name] = len(m.streams)
			m.streams = append(m.streams, st)
		}
	}
	m.last = make([]int64, len(m.streams))
	m.started = make([]bool, len(m.streams))
	m.sources = make([][]source, len(m.streams))
	for h := range 2 {
		m.q[h] = &hostQueue{src: newFrameSource(hosts[h]), unpaired: map[uint64][]*item{}, byStream: map[int][]*item{}, ch: newChannels()}
	}
	return m
}

func (m *interleaver) close() {
	for _, q := range m.q {
		if q.prod != nil {
			close(q.prod.stop)
			for range q.prod.ch { // the producer returns, then closes ch
			}
		}
		q.src.close()
	}
}

// producer reads one host's journal in its own goroutine, parsing each message and
// computing its join key, and hands the frames over in batches.
type producer struct {
	ch    chan []*item
	stop  chan struct{}
	err   error // set before ch is closed
	batch []*item
	next  int
}

const batchFrames = 512

// start runs a host's producer.
func (m *interleaver) start(h int, src *frameSource) *producer {
	p := &producer{ch: make(chan []*item, 8), stop: make(chan struct{})}
	go func() {
		defer close(p.ch)
		// Each frame's place on the exchange's clock: a dated depth update's own event
		// time; another frame's receive time less the host's latency, as its latest depth
		// update measured it. After a loss (a disconnect, a new connection, a gap) that
		// latency says nothing of the new connection, and a host reconnecting to a market
		// that moved on receives it in a burst: the frames until the next dated depth update
		// wait (held) and take its time.
		lag := m.q[h].lag
		fresh := false
		var held []*item
		var msg venue.Message
		// Items and their payloads are allocated a batch at a time: one allocation each
		// instead of two per frame.
		var items []item
		var arena []byte
		batch := make([]*item, 0, batchFrames)
		send := func() bool {
			select {
			case p.ch <- batch:
			case <-p.stop:
				return false
			}
			batch = make([]*item, 0, batchFrames)
			return true
		}
		release := func(mt int64) {
			for _, x := range held {
				x.mt = mt
			}
			batch = append(batch, held...)
			held = held[:0]
		}
		for {
			f, err := src.next()
			if err != nil {
				p.err = err
				return
			}
			if f == nil {
				release(lastRecv(batch, held) - lag)
				if len(batch) > 0 {
					send()
				}
				return
			}
			if len(items) == 0 {
				items = make([]item, batchFrames)
			}
			if len(arena) < len(f.Payload) {
				arena = make([]byte, max(len(f.Payload), 1<<20))
			}
			pl := arena[:len(f.Payload):len(f.Payload)]
			arena = arena[len(f.Payload):]
			copy(pl, f.Payload)
			it := &items[0]
			items = items[1:]
			m.makeItem(it, h, f, pl)
			var exch int64
			dated := it.msg && it.ev.Kind == venue.KindDepth
			if dated {
				exch, dated = m.eventTime(pl, &msg)
			}
			switch {
			case dated:
				lag = it.recv - exch
				it.mt = exch
				release(it.mt)
				fresh = false
			case fresh && len(held) < maxHeld:
				held = append(held, it) // everything, in order, until a depth update dates it
				continue
			default:
				release(it.recv - lag) // a full hold goes with the latency it has
				it.mt = it.recv - lag
				if it.lost || loses(it) {
					fresh = true
				}
			}
			batch = append(batch, it)
			if len(batch) >= batchFrames && len(held) == 0 && !send() {
				return
			}
		}
	}()
	return p
}

// maxHeld bounds the frames a producer holds back for a depth update to date them.
const maxHeld = 1 << 16

func lastRecv(batch, held []*item) int64 {
	if len(held) > 0 {
		return held[len(held)-1].recv
	}
	if len(batch) > 0 {
		return batch[len(batch)-1].recv
	}
	return 0
}

// loses reports frames after which the host's connection (and its latency) is new: a
// disconnect other than a rollover, a connect that takes over from nothing, a gap record.
func loses(it *item) bool {
	switch it.typ {
	case format.JournalDisconnect:
		var d journal.Disconnect
		return journal.Decode(it.pl, &d) == nil && d.Kind != journal.DisconnectRollover
	case format.JournalConnect:
		var c journal.Connect
		return journal.Decode(it.pl, &c) == nil && !c.Carried && c.Replaces == nil
	case format.JournalGap:
		return true
	}
	return false
}

// makeItem fills it with a frame (its payload copied to pl) and a message's stream, ids
// and join key.
func (m *interleaver) makeItem(it *item, h int, f *frame, pl []byte) {
	*it = item{h: h, typ: f.TypeID, ch: f.Channel, recv: f.RecvTs, seg: f.seg, lost: f.lost, pl: pl}
	if it.typ == format.JournalMessage {
		if ev, err := m.v.Parse(it.pl); err == nil && ev.Kind != venue.KindOther {
			if s, ok := m.byName[string(ev.Stream)]; ok {
				it.msg, it.stream, it.ev, it.key = true, s, ev, m.rule.key(it.pl, ev)
				it.ev.Stream = nil // aliases the payload; the index says which stream
			}
		}
	}
}

// read appends the host's next frame to its queue; false at its end.
func (m *interleaver) read(h int) (bool, error) {
	q := m.q[h]
	if q.eof {
		return false, nil
	}
	p := q.prod
	if p.next == len(p.batch) {
		b, ok := <-p.ch
		if !ok {
			q.eof = true
			return false, p.err
		}
		p.batch, p.next = b, 0
	}
	it := p.batch[p.next]
	p.batch[p.next] = nil
	p.next++
	m.st.Frames[h]++
	q.read += format.JournalFrameLen(len(it.pl))
	q.lastMT = max(q.lastMT, it.mt)
	if it.msg {
		m.match(it)
	}
	q.items = append(q.items, it)
	return true, nil
}

// match pairs a message with the other host's copy of its event, if that was read.
func (m *interleaver) match(it *item) {
	o := m.q[1-it.h]
	if l := o.unpaired[it.key]; len(l) > 0 {
		p := l[0]
		if len(l) == 1 {
			delete(o.unpaired, it.key)
		} else {
			o.unpaired[it.key] = l[1:]
		}
		if !p.done {
			it.pair, p.pair = p, it
			m.st.Common++
			return
		}
	}
	q := m.q[it.h]
	q.unpaired[it.key] = append(q.unpaired[it.key], it)
	q.byStream[it.stream] = append(q.byStream[it.stream], it)
}

// fill reads both journals ahead of the later of their next frames by window (each
// queue holds at least one frame unless its journal ended).
func (m *interleaver) fill() error {
	horizon := int64(-1 << 63)
	for h := range 2 {
		q := m.q[h]
		for q.front() == nil && !q.eof {
			if _, err := m.read(h); err != nil {
				return err
			}
		}
		if f := q.front(); f != nil {
			horizon = max(horizon, f.mt)
		}
	}
	for h := range 2 {
		q := m.q[h]
		for !q.eof && q.lastMT <= horizon+window {
			if _, err := m.read(h); err != nil {
				return err
			}
		}
	}
	return nil
}

// firstLag is a host's latency when its journal begins: receive time minus event time
// of its first depth update (0 when it has none), for the frames before it.
func (m *interleaver) firstLag(j *hostJournal) (int64, error) {
	src := newFrameSource(j)
	defer src.close()
	var msg venue.Message
	for {
		f, err := src.next()
		if err != nil || f == nil {
			return 0, err
		}
		if f.TypeID != format.JournalMessage {
			continue
		}
		if ev, err := m.v.Parse(f.Payload); err == nil && ev.Kind == venue.KindDepth {
			if exch, ok := m.eventTime(f.Payload, &msg); ok {
				return f.RecvTs - exch, nil
			}
		}
	}
}

// eventTime is a depth update's exchange event time: the venue's EventTime where it has one
// (a few bytes read), else Decode's (every level parsed; msg is its scratch).
func (m *interleaver) eventTime(pl []byte, msg *venue.Message) (int64, bool) {
	if t, ok := m.v.(venue.EventTimer); ok {
		return t.EventTime(pl)
	}
	if m.v.Decode(pl, msg) != nil || msg.ExchNs == 0 {
		return 0, false
	}
	return msg.ExchNs, true
}

// pick chooses the next frame to merge: the earlier of the two hosts' next frames on the
// base clock, except that the other host's copy of an event the base also has waits for
// the base's.
func (m *interleaver) pick() *item {
	a, b := m.q[0].front(), m.q[1].front()
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case b.pair != nil && !b.pair.done:
		return a
	case a.mt <= b.mt:
		return a
	}
	return b
}

// run merges everything.
func (m *interleaver) run(ctx context.Context, progress func(int64)) error {
	for h, q := range m.q {
		q.prod = m.start(h, q.src)
	}
	var reported int64
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := m.fill(); err != nil {
			return err
		}
		it := m.pick()
		if it == nil {
			return nil
		}
		if err := m.take(it); err != nil {
			return err
		}
		if progress != nil {
			if n := m.q[0].read + m.q[1].read; n-reported > 1<<20 {
				progress(n - reported)
				reported = n
			}
		}
	}
}

// retire forgets a message that was merged or dropped without being matched.
func (m *interleaver) retire(it *item) {
	it.done = true
	if !it.msg || it.pair != nil {
		return
	}
	q := m.q[it.h]
	if l := q.unpaired[it.key]; len(l) > 0 {
		for i, x := range l {
			if x == it {
				l = append(l[:i:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(q.unpaired, it.key)
		} else {
			q.unpaired[it.key] = l
		}
	}
	q.pendingOf(it.stream) // drops merged messages from the head of the stream's list
}

// take merges one frame.
func (m *interleaver) take(it *item) error {
	m.retire(it)
	if it.lost {
		if err := m.lost(it); err != nil {
			return err
		}
	}
	switch it.typ {
	case format.JournalMessage:
		if it.msg {
			return m.message(it)
		}
		return m.unparsed(it)
	case format.JournalRESTSnapshot:
		return m.snapshot(it)
	case format.JournalConnect:
		_, restart, syms, ok := m.q[it.h].ch.connect(m.v, it.pl)
		if !ok {
			return nil
		}
		if restart {
			syms = m.hostSymbols(it.h)
		}
		return m.lose(it, syms, "connection replaced")
	case format.JournalDisconnect:
		var d journal.Disconnect
		if journal.Decode(it.pl, &d) != nil || d.Kind == journal.DisconnectRollover {
			return nil
		}
		return m.lose(it, m.q[it.h].ch.depthOn(it.ch), "disconnected: "+d.Reason)
	case format.JournalSnapshotRequest:
		var r journal.SnapshotRequest
		if journal.Decode(it.pl, &r) == nil && r.Symbol != "" {
			m.q[it.h].ch.snapReq[it.ch] = r.Symbol
		}
		return nil
	case format.JournalGap:
		return m.gap(it)
	}
	return nil
}

// message merges a parsed message: dropped when its stream already went past it; else
// any event of its stream only the other host has and that comes before it goes first.
func (m *interleaver) message(it *item) error {
	if m.stale(it) {
		m.st.Stale++
		if it.pair != nil {
			it.pair.done = true
		}
		return nil
	}
	o := m.q[1-it.h]
	for {
		p := o.pendingOf(it.stream)
		if p == nil || p.pair != nil || p.ev.ID >= it.ev.ID {
			break
		}
		m.retire(p)
		if m.stale(p) {
			m.st.Stale++
			continue
		}
		if err := m.emitMessage(p); err != nil {
			return err
		}
	}
	if it.pair != nil {
		it.pair.done = true
		if it.h != 0 { // never chosen first, but be exact: the base's copy is the one written
			it = it.pair
		}
	}
	return m.emitMessage(it)
}

// stale: the stream already went past this event.
func (m *interleaver) stale(it *item) bool {
	s := it.stream
	if !m.started[s] {
		return false
	}
	return m.v.Check(m.last[s], it.ev) == venue.SeqStale
}

func (m *interleaver) emitMessage(it *item) error {
	s := it.stream
	st := &m.streams[s]
	if it.pair == nil {
		m.st.Only[it.h]++
	}
	if src := m.sources[s]; len(src) == 0 || src[len(src)-1].host != it.h {
		m.sources[s] = append(m.sources[s], source{from: it.ev.ID, host: it.h})
	}
	m.last[s], m.started[s] = it.ev.ID, true
	if st.kind == venue.KindDepth {
		m.lastU[st.symbol], m.gone[st.symbol] = it.ev.ID, false
	}
	return m.out.message(st, it.recv, it.pl)
}

// unparsed handles a message Parse could not read: on a depth channel the refinery drops
// that book (bad_message), which the merge passes on only when the chain is not continued.
func (m *interleaver) unparsed(it *item) error {
	ci, ok := m.q[it.h].ch.byCh[it.ch]
	if !ok || ci.kind != "depth" {
		return nil // other streams are not refined
	}
	if !m.chainLost(ci.symbol) {
		m.st.Suppressed++
		return nil
	}
	m.st.Invalidated++
	m.gone[ci.symbol] = true
	return m.out.badMessage(ci.symbol, it.recv, it.pl)
}

// chainLost: the symbol's merged book has started, no host continues its chain past the
// last update merged, and no loss was passed on since that update (the merged book is
// unknown already: another loss would only drop what it has buffered towards a resync).
func (m *interleaver) chainLost(sym string) bool {
	last, ok := m.lastU[sym]
	return ok && !m.gone[sym] && !m.sv.continues(sym, last)
}

// lose passes a host's loss of the books of syms on to the merged journal, for those
// whose chain no host continues, as a disconnect of their connection.
func (m *interleaver) lose(it *item, syms []string, why string) error {
	sort.Strings(syms)
	for _, sym := range syms {
		if !m.chainLost(sym) {
			m.st.Suppressed++
			continue
		}
		m.st.Invalidated++
		m.gone[sym] = true
		if err := m.out.disconnect(sym, it.recv, fmt.Sprintf("merge: host %d %s", it.h, why)); err != nil {
			return err
		}
	}
	return nil
}

// lost: segments of a host's journal are missing before this frame.
func (m *interleaver) lost(it *item) error {
	return m.lose(it, m.hostSymbols(it.h), "journal segments missing")
}

// hostSymbols lists the symbols whose depth streams a host's connections carried.
func (m *interleaver) hostSymbols(h int) []string {
	seen := map[string]bool{}
	var out []string
	for _, ci := range m.q[h].ch.byCh {
		if ci.kind == "depth" && !seen[ci.symbol] {
			seen[ci.symbol] = true
			out = append(out, ci.symbol)
		}
	}
	return out
}

// gap passes a host's gap record on when it loses a chain no host continues.
func (m *interleaver) gap(it *item) error {
	var g journal.Gap
	if journal.Decode(it.pl, &g) != nil {
		return nil
	}
	if g.Reason == journal.GapWriteFailed {
		return m.lose(it, m.hostSymbols(it.h), "could not journal records")
	}
	ci, ok := m.q[it.h].ch.byCh[it.ch]
	if !ok || ci.kind != "depth" {
		return nil
	}
	if !m.chainLost(ci.symbol) {
		m.st.Suppressed++
		return nil
	}
	m.st.Invalidated++
	m.gone[ci.symbol] = true
	return m.out.gap(ci.symbol, it.recv, it.pl)
}

// snapshot writes a REST snapshot on its symbol's depth stream. Every host's is written:
// the refinery ignores those that come while its book is valid, and a second copy of one
// it holds changes nothing.
func (m *interleaver) snapshot(it *item) error {
	ch := m.q[it.h].ch
	sym := ch.snapReq[it.ch]
	if ci, ok := ch.byCh[it.ch]; ok && ci.kind == "depth" && ci.symbol != "" {
		sym = ci.symbol
	}
	if sym == "" {
		var s venue.BookSnapshot
		if m.v.DecodeSnapshot(it.pl, &s) == nil {
			sym = s.Symbol
		}
	}
	if sym == "" {
		return nil // the refinery could not place it either
	}
	m.st.Snapshots++
	return m.out.snapshot(sym, it.recv, it.pl)
}
