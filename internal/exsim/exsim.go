// Package exsim is a local Binance exchange simulator for tests and demos: USD-M futures,
// COIN-M futures and spot, each with its own stream shapes and REST depth endpoint
// (/fapi/v1/depth, /dapi/v1/depth, /api/v3/depth). It serves the combined-stream websocket
// (/stream?streams=..., under any path prefix) and the venue's REST depth snapshot (under
// any prefix too) on 127.0.0.1, replays a capture to every subscribed connection, keeps
// each symbol's book so snapshots agree with the stream (and serve the recorded snapshot
// verbatim, in the venue's shape, while the book is still that snapshot), enforces REST
// request weight, and injects faults on demand: disconnects, sequence gaps, malformed,
// oversized and broken frames, trickled (slow) frames, delayed REST replies, and snapshots
// ahead of or behind the stream. It logs exactly which message it wrote to which
// connection, so tests can check the journal against what was really sent.
package exsim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/binance"
)

// Options configure a simulator.
type Options struct {
	// Venue is the venue id whose protocol is served: binance-perp (USD-M, the default),
	// binance-coinm or binance-spot.
	Venue string
	// Records is the capture to replay: stream messages are published in order; REST
	// snapshots seed the books (the first per symbol; a snapshot without a symbol belongs
	// to the capture's only depth symbol).
	Records []capture.Record
	// Speed scales the capture's own pacing: 1 = original, 10 = ten times faster,
	// 0 = as fast as the sockets take it.
	Speed float64
	// Interval, if set, publishes one message per interval instead.
	Interval time.Duration
	// WeightPerMinute is the REST weight budget per window before 429 (default: the
	// venue's, 2400 on futures, 6000 on spot).
	WeightPerMinute int
	// WeightWindow is the budget's window, aligned to the epoch (default one minute, as
	// Binance; tests that must not see a reset use a long one).
	WeightWindow time.Duration
	// PingInterval makes the server ping every connection (0: never).
	PingInterval time.Duration
	Logger       *slog.Logger
}

// SnapshotMode selects which book state a REST snapshot returns.
type SnapshotMode int

const (
	SnapshotCurrent SnapshotMode = iota // the book after the last published update
	SnapshotAhead                       // N unpublished updates ahead of the stream
	SnapshotBehind                      // N updates behind the stream (stale)
)

type message struct {
	stream string // the stream's name (Binance) or key (request-subscribed venues)
	symbol string
	kind   venue.Kind
	frame  []byte // encoded text frame
	diff   *diff
	// Request-subscribed venues (OKX, Kraken).
	control bool       // the recorder's control message: not replayed
	update  *rawUpdate // a depth message's levels as the exchange's strings
}

// Sim is a running simulator.
type Sim struct {
	opt       Options
	log       *slog.Logger
	v         venue.Venue
	sm        *subMarket // request-subscribed venues; nil for Binance
	depthPath string     // the venue's REST depth endpoint
	msgs      []message
	recv      []int64 // capture receive times, for pacing
	ln        net.Listener
	srv       *http.Server

	mu        sync.Mutex
	conns     []*Conn
	books     map[string]*book // current state per symbol
	seeds     map[string]*book // initial state per symbol, for rebuilding
	next      int              // index of the next message to publish
	skip      map[string]int   // stream -> messages still to withhold
	skipped   []int
	snapMode  SnapshotMode
	snapN     int
	restDelay time.Duration
	maxAge    time.Duration
	trickle   int
	trickleD  time.Duration
	weightWin int64
	weightUse int
	requests  []SnapshotLog
	served    map[string]bool // symbols that got a snapshot (200)
	corruptN  map[string]int  // stream -> depth updates still to corrupt
	autoPlay  bool
	paused    bool
	stopAt    int
	resume    chan struct{}
	started   bool
	done      chan struct{}
	closed    chan struct{}
	wg        sync.WaitGroup
}

// SnapshotLog is one REST request the simulator answered.
type SnapshotLog struct {
	Symbol       string
	Limit        int
	Status       int
	LastUpdateID int64
	At           time.Time
}

// New prepares a simulator from a capture; Start serves it.
func New(opt Options) (*Sim, error) {
	if opt.Venue == "" {
		opt.Venue = binance.Name
	}
	v, err := venue.Lookup(opt.Venue)
	if err != nil {
		return nil, fmt.Errorf("exsim: %w", err)
	}
	if sub, ok := v.(venue.Subscriber); ok {
		return newSubSim(opt, v, sub)
	}
	req, err := v.SnapshotRequest("http://exsim", "BTCUSDT", 1000)
	if err != nil {
		return nil, fmt.Errorf("exsim: venue %s: %w", opt.Venue, err)
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, fmt.Errorf("exsim: venue %s: %w", opt.Venue, err)
	}
	if opt.WeightPerMinute <= 0 {
		opt.WeightPerMinute = v.Limits().RESTWeightPerMin
	}
	if opt.WeightWindow <= 0 {
		opt.WeightWindow = time.Minute
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sim{opt: opt, log: log, v: v, depthPath: u.Path, books: map[string]*book{}, seeds: map[string]*book{}, skip: map[string]int{},
		served: map[string]bool{}, corruptN: map[string]int{}, resume: make(chan struct{}), done: make(chan struct{}), closed: make(chan struct{})}
	var orphanSnaps []capture.Record
	var recvNs []int64
	for _, r := range opt.Records {
		switch r.Kind {
		case capture.KindMessage:
			ev, err := v.Parse(r.Payload)
			if err != nil {
				continue // the simulator replays stream messages only
			}
			m := message{stream: string(ev.Stream), kind: ev.Kind, frame: frame(opText, r.Payload)}
			m.symbol = strings.ToUpper(m.stream[:strings.IndexByte(m.stream+"@", '@')])
			if ev.Kind == venue.KindDepth {
				bids, asks, err := depthLevels(r.Payload)
				if err != nil {
					return nil, fmt.Errorf("exsim: capture line %d: %w", r.Line, err)
				}
				m.diff = &diff{U: ev.First, u: ev.ID, bids: bids, asks: asks, symbol: m.symbol}
			}
			s.msgs = append(s.msgs, m)
			recvNs = append(recvNs, r.RecvNs)
		case capture.KindSnapshot:
			if r.Symbol == "" {
				orphanSnaps = append(orphanSnaps, r)
				continue
			}
			if _, ok := s.seeds[r.Symbol]; !ok {
				b := newBook()
				if err := b.seed(r.Payload); err != nil {
					return nil, err
				}
				s.seeds[r.Symbol] = b
			}
		}
	}
	if len(s.msgs) == 0 {
		return nil, ErrNoMessages
	}
	depthSyms := map[string]bool{}
	for _, m := range s.msgs {
		if m.kind == venue.KindDepth {
			depthSyms[m.symbol] = true
		}
	}
	if len(orphanSnaps) > 0 && len(depthSyms) == 1 {
		for sym := range depthSyms {
			if _, ok := s.seeds[sym]; !ok {
				b := newBook()
				if err := b.seed(orphanSnaps[0].Payload); err != nil {
					return nil, err
				}
				s.seeds[sym] = b
			}
		}
	}
	for sym := range depthSyms {
		if s.seeds[sym] == nil {
			s.seeds[sym] = s.emptyBook(sym)
		}
		s.books[sym] = s.seeds[sym].clone()
	}
	s.recv = recvNs
	return s, nil
}

// newSubSim prepares a simulator of a request-subscribed venue.
func newSubSim(opt Options, v venue.Venue, sub venue.Subscriber) (*Sim, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.WeightWindow <= 0 {
		opt.WeightWindow = time.Minute
	}
	s := &Sim{opt: opt, log: log, v: v, books: map[string]*book{}, seeds: map[string]*book{}, skip: map[string]int{},
		served: map[string]bool{}, corruptN: map[string]int{}, resume: make(chan struct{}), done: make(chan struct{}), closed: make(chan struct{})}
	if err := s.newSubMarket(sub, opt.Records); err != nil {
		return nil, err
	}
	if len(s.sm.order) == 0 {
		return nil, ErrNoMessages
	}
	return s, nil
}

// emptyBook is the book of a symbol the capture has no snapshot for, in the venue's shape.
func (s *Sim) emptyBook(sym string) *book {
	b := newBook()
	switch s.v.Name() {
	case binance.SpotName:
		b.shape = spotShape
	case binance.CoinMName:
		pair, _, _ := strings.Cut(sym, "_")
		sj, _ := json.Marshal(sym)
		pj, _ := json.Marshal(pair)
		b.shape, b.extra = coinmShape, map[string]json.RawMessage{"symbol": sj, "pair": pj}
	default:
		b.shape = futuresShape
	}
	return b
}

// Venue is the venue whose protocol the simulator serves.
func (s *Sim) Venue() venue.Venue { return s.v }

// Handler serves the venue's websocket (any path ending in /stream) and REST depth
// snapshot (any path ending in the venue's depth path), so the simulator can be mounted
// under a prefix beside others on one server (http.StripPrefix is not needed).
func (s *Sim) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.sm != nil {
			if body := s.sm.restFor(r.URL); body != nil {
				w.Header().Set("Content-Type", "application/json")
				w.Write(body)
				return
			}
			if strings.HasSuffix(r.URL.Path, s.sm.wsPath) {
				s.serveWS(w, r)
				return
			}
			http.NotFound(w, r)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, s.depthPath):
			s.serveDepth(w, r)
		case strings.HasSuffix(r.URL.Path, "/stream"):
			s.serveWS(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// Start listens on 127.0.0.1 (an ephemeral port) and serves websocket and REST. The
// publisher waits for Play.
func (s *Sim) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(ln)
	}()
	return nil
}

// WSURL is the websocket base URL (ws://127.0.0.1:port).
func (s *Sim) WSURL() string { return "ws://" + s.ln.Addr().String() }

// RESTURL is the REST base URL (http://127.0.0.1:port).
func (s *Sim) RESTURL() string { return "http://" + s.ln.Addr().String() }

// Len is the number of stream messages in the capture.
func (s *Sim) Len() int { return len(s.msgs) }

// Payload returns message i as the exchange sends it.
func (s *Sim) Payload(i int) []byte {
	f := s.msgs[i].frame
	return f[len(f)-payloadLen(f):]
}

func payloadLen(f []byte) int {
	switch n := f[1] & 0x7f; n {
	case 126:
		return len(f) - 4
	case 127:
		return len(f) - 10
	default:
		return int(n)
	}
}

// Stream returns the stream name of message i.
func (s *Sim) Stream(i int) string { return s.msgs[i].stream }

// Play starts publishing (or resumes after Pause).
func (s *Sim) Play() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked()
}

func (s *Sim) startLocked() {
	if s.paused {
		s.paused = false
		close(s.resume)
		s.resume = make(chan struct{})
	}
	if !s.started {
		s.started = true
		s.wg.Add(1)
		go s.publish()
	}
}

// PlayUntil publishes up to (not including) message n, then pauses; it returns once the
// publisher has stopped there (or published everything).
func (s *Sim) PlayUntil(n int) {
	s.mu.Lock()
	s.stopAt = n
	s.mu.Unlock()
	s.Play()
	for {
		s.mu.Lock()
		done := s.next >= min(n, len(s.msgs)) && (s.paused || s.next == len(s.msgs))
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-s.closed:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// Pause stops publishing after the current message.
func (s *Sim) Pause() {
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
}

// Done is closed when every message has been published.
func (s *Sim) Done() <-chan struct{} { return s.done }

// Published is the number of messages published so far (sent or withheld).
func (s *Sim) Published() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

func (s *Sim) publish() {
	defer s.wg.Done()
	defer close(s.done)
	start := time.Now()
	for i := range s.msgs {
		var due time.Time
		switch {
		case s.opt.Interval > 0:
			due = start.Add(time.Duration(i) * s.opt.Interval)
		case s.opt.Speed > 0:
			due = start.Add(time.Duration(float64(s.recv[i]-s.recv[0]) / s.opt.Speed))
		}
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-s.closed:
				return
			}
		}
		s.mu.Lock()
		if s.stopAt > 0 && i >= s.stopAt {
			s.stopAt = 0
			s.paused = true
		}
		for s.paused {
			ch := s.resume
			s.mu.Unlock()
			pausedAt := time.Now()
			select {
			case <-ch:
			case <-s.closed:
				return
			}
			start = start.Add(time.Since(pausedAt))
			s.mu.Lock()
		}
		m := &s.msgs[i]
		if m.diff != nil {
			s.books[m.symbol].apply(m.diff)
		}
		out := m.frame
		if s.sm != nil {
			if !s.publishSubLocked(m, i) {
				s.next = i + 1
				s.mu.Unlock()
				continue
			}
			if n := s.corruptN[m.stream]; n > 0 && m.update != nil && !m.update.snapshot {
				if p, ok := corrupt(m.frame[len(m.frame)-payloadLen(m.frame):]); ok {
					s.corruptN[m.stream] = n - 1
					out = frame(opText, p)
					s.log.Info("exsim corrupted an update", "message", i, "stream", m.stream)
				}
			}
		}
		withhold := false
		if n := s.skip[m.stream]; n > 0 {
			s.skip[m.stream] = n - 1
			s.skipped = append(s.skipped, i)
			withhold = true
		}
		s.next = i + 1
		if !withhold {
			now := time.Now()
			for _, c := range s.conns {
				if c.subscribed(m.stream) {
					if s.maxAge > 0 && now.Sub(c.opened) > s.maxAge {
						go c.drop(false, 0)
						continue
					}
					c.enqueue(item{idx: i, frame: out})
				}
			}
		}
		s.mu.Unlock()
	}
}

// Close stops everything and closes every connection.
func (s *Sim) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	s.mu.Lock()
	conns := append([]*Conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
	var err error
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = s.srv.Shutdown(ctx)
		cancel()
	}
	s.wg.Wait()
	return err
}

// --- fault injection -------------------------------------------------------------------

// DropConnections ends every open connection the way a network failure does: messages
// already written are delivered, then the TCP stream ends without a close frame. With
// closeFrame, the server sends a close frame (code 1001) first, as at a planned restart.
func (s *Sim) DropConnections(closeFrame bool) {
	s.mu.Lock()
	conns := append([]*Conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.drop(closeFrame, 1001)
	}
}

// SkipNext withholds the next n messages of a stream from every connection: the book
// moves on, the subscribers see a sequence gap.
func (s *Sim) SkipNext(stream string, n int) {
	s.mu.Lock()
	s.skip[stream] += n
	s.mu.Unlock()
}

// Skipped returns the indices of withheld messages.
func (s *Sim) Skipped() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.skipped...)
}

// Inject sends a raw text message to every open connection now (malformed JSON, an
// oversized message...). Its sent-log index is -1.
func (s *Sim) Inject(payload []byte) { s.InjectFrame(frame(opText, payload)) }

// InjectFrame sends arbitrary bytes as if they were a frame (a binary frame, a frame with
// reserved bits set, a lying length...).
func (s *Sim) InjectFrame(raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.enqueue(item{idx: -1, frame: raw})
	}
}

// SetTrickle makes every later frame go out chunk bytes at a time with a pause between
// chunks, so the client's reads return partial frames (slow reads). chunk 0 turns it off.
func (s *Sim) SetTrickle(chunk int, pause time.Duration) {
	s.mu.Lock()
	s.trickle, s.trickleD = chunk, pause
	for _, c := range s.conns {
		c.setTrickle(chunk, pause)
	}
	s.mu.Unlock()
}

// SetSnapshot chooses which book state REST snapshots return.
func (s *Sim) SetSnapshot(mode SnapshotMode, n int) {
	s.mu.Lock()
	s.snapMode, s.snapN = mode, n
	s.mu.Unlock()
}

// SetRESTDelay delays every REST reply.
func (s *Sim) SetRESTDelay(d time.Duration) {
	s.mu.Lock()
	s.restDelay = d
	s.mu.Unlock()
}

// SetMaxConnAge makes the server drop connections older than d, as Binance does at 24 h.
func (s *Sim) SetMaxConnAge(d time.Duration) {
	s.mu.Lock()
	s.maxAge = d
	s.mu.Unlock()
}

// --- observation -----------------------------------------------------------------------

// Conns returns every connection accepted so far, in accept order.
func (s *Sim) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Conn(nil), s.conns...)
}

// WaitConns waits until n connections are open (not closed) or the timeout passes.
func (s *Sim) WaitConns(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		open := 0
		for _, c := range s.Conns() {
			if !c.Closed() {
				open++
			}
		}
		if open >= n {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// Flush waits until every open connection has written everything queued to it.
func (s *Sim) Flush(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		busy := false
		for _, c := range s.Conns() {
			if c.pending() > 0 {
				busy = true
			}
		}
		if !busy {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

// Snapshots returns every REST depth request answered.
func (s *Sim) Snapshots() []SnapshotLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SnapshotLog(nil), s.requests...)
}

// --- REST ------------------------------------------------------------------------------

func (s *Sim) serveDepth(w http.ResponseWriter, r *http.Request) {
	sym := strings.ToUpper(r.URL.Query().Get("symbol"))
	limit := 500
	if l := r.URL.Query().Get("limit"); l != "" {
		limit, _ = strconv.Atoi(l)
	}
	weight := 0 // the venue's weight for the limit; 0: a limit it refuses
	if req, err := s.v.SnapshotRequest("http://exsim", "BTCUSDT", limit); err == nil {
		weight = req.Weight
	}
	s.mu.Lock()
	delay := s.restDelay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		}
	}
	s.mu.Lock()
	now := time.Now()
	win := now.UnixNano() / int64(s.opt.WeightWindow)
	if win != s.weightWin {
		s.weightWin, s.weightUse = win, 0
	}
	status := http.StatusOK
	var body []byte
	var lastID int64
	b := s.books[sym]
	switch {
	case weight == 0:
		status, body = http.StatusBadRequest, []byte(`{"code":-1130,"msg":"Invalid limit."}`)
		weight = 1
	case b == nil:
		status, body = http.StatusBadRequest, []byte(`{"code":-1121,"msg":"Invalid symbol."}`)
		weight = 1
	}
	if s.weightUse+weight > s.opt.WeightPerMinute {
		status = http.StatusTooManyRequests
		body = []byte(`{"code":-1003,"msg":"Too many requests."}`)
		left := time.Duration((win+1)*int64(s.opt.WeightWindow) - now.UnixNano())
		w.Header().Set("Retry-After", strconv.FormatInt(int64((left+time.Second-1)/time.Second), 10))
	} else {
		s.weightUse += weight
	}
	if status == http.StatusOK {
		snap := s.bridgeableLocked(sym, s.snapshotLocked(sym))
		lastID = snap.lastID
		E, T := s.lastTimesLocked()
		body = snap.body(limit, E, T)
	}
	w.Header().Set(s.v.Limits().UsedWeightHeader, strconv.Itoa(s.weightUse))
	s.requests = append(s.requests, SnapshotLog{Symbol: sym, Limit: limit, Status: status, LastUpdateID: lastID, At: now})
	play := false
	if status == http.StatusOK {
		s.served[sym] = true
		play = s.autoPlay && len(s.served) == len(s.books)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
	if play {
		s.Play()
	}
}

// PlayAfterSnapshots makes the simulator start publishing once every symbol with a depth
// stream has been served a REST snapshot (at once if that happened already): a client
// that asks for snapshots when it connects then receives the capture from its first
// message, with the book the capture recorded, as deterministically as a replay.
//
// A request-subscribed market (OKX, Kraken) starts once every stream of the capture has a
// subscriber: the book snapshots then come in the capture's own order.
func (s *Sim) PlayAfterSnapshots() {
	s.mu.Lock()
	s.autoPlay = true
	ready := len(s.served) == len(s.books)
	if s.sm != nil {
		ready = s.allSubscribedLocked()
	}
	s.mu.Unlock()
	if ready {
		s.Play()
	}
}

// bridgeableLocked: a book taken exactly after a depth event has the event's last id,
// which the venue's rule may not join to the next event (futures: the first event applied
// must span the snapshot's id, U <= L <= u). A real exchange's snapshot id usually falls
// inside an event still in flight; the current book is then stated at the next event's
// first id (its levels are absolute quantities, so applying it gives the same book).
func (s *Sim) bridgeableLocked(sym string, b *book) *book {
	if s.snapMode != SnapshotCurrent || b.raw != nil {
		return b
	}
	for i := s.next; i < len(s.msgs); i++ {
		d := s.msgs[i].diff
		if d == nil || d.symbol != sym {
			continue
		}
		ev := venue.Event{Kind: venue.KindDepth, First: d.U, ID: d.u}
		if s.v.SnapshotBridge(b.lastID, ev) != venue.BridgeAfter || s.v.SnapshotBridge(d.U, ev) != venue.BridgeApplies {
			return b
		}
		c := *b
		c.lastID = d.U
		return &c
	}
	return b
}

// lastTimesLocked returns the event and transaction times (ms) of the last published
// message that has them, for a snapshot body's E and T.
func (s *Sim) lastTimesLocked() (E, T int64) {
	var m venue.Message
	for i := s.next - 1; i >= 0; i-- {
		if s.v.Decode(s.Payload(i), &m) == nil && m.ExchNs != 0 {
			E, T = m.ExchNs/1e6, m.TxNs/1e6
			if T == 0 {
				T = E
			}
			return E, T
		}
	}
	return 0, 0
}

// snapshotLocked builds the book the current snapshot mode asks for.
func (s *Sim) snapshotLocked(sym string) *book {
	cur := s.books[sym]
	switch s.snapMode {
	case SnapshotAhead:
		b := cur.clone()
		n := s.snapN
		for i := s.next; i < len(s.msgs) && n > 0; i++ {
			if d := s.msgs[i].diff; d != nil && d.symbol == sym && d.u > b.lastID {
				b.apply(d)
				n--
			}
		}
		return b
	case SnapshotBehind:
		// Rebuild from the seed up to n depth updates before the current position.
		var idx []int
		for i := 0; i < s.next; i++ {
			if d := s.msgs[i].diff; d != nil && d.symbol == sym {
				idx = append(idx, i)
			}
		}
		if len(idx) > s.snapN {
			idx = idx[:len(idx)-s.snapN]
		} else {
			idx = nil
		}
		b := s.seeds[sym].clone()
		for _, i := range idx {
			b.apply(s.msgs[i].diff)
		}
		return b
	}
	return cur
}

// --- websocket -------------------------------------------------------------------------

func (s *Sim) serveWS(w http.ResponseWriter, r *http.Request) {
	var streams []string
	if s.sm == nil {
		if !strings.HasSuffix(r.URL.Path, "/stream") {
			http.NotFound(w, r)
			return
		}
		streams = strings.Split(r.URL.Query().Get("streams"), "/")
		if len(streams) == 0 || streams[0] == "" {
			http.Error(w, `{"code":-1100,"msg":"no streams"}`, http.StatusBadRequest)
			return
		}
	}
	accepted := time.Now()
	nc, br, accept, err := hijack(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := newConn(nc, br, r.URL.Path, streams, s.log)
	c.opened = accepted
	if s.sm != nil {
		c.onText = func(p []byte) { s.onRequest(c, p) }
	}
	// Subscribed before the client learns the connection is open: whatever it does next
	// (ask for a snapshot, which may start the replay) cannot race the registration.
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		nc.Close()
		return
	default:
	}
	c.id = len(s.conns)
	c.setTrickle(s.trickle, s.trickleD)
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	if _, err := nc.Write(accept); err != nil {
		nc.Close() // the loops below see it and end the connection
	}
	s.log.Debug("exsim connection", "id", c.id, "streams", len(streams))
	if s.sm != nil && s.sm.name == "kraken-spot" {
		s.krakenHello(c)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.heartbeats(c) }()
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); c.writeLoop() }()
	go func() { defer s.wg.Done(); c.readLoop() }()
	if s.opt.PingInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTicker(s.opt.PingInterval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					c.enqueueFront(item{idx: -2, frame: frame(opPing, []byte("sim"))})
				case <-c.dead:
					return
				case <-s.closed:
					return
				}
			}
		}()
	}
}

type item struct {
	idx   int // message index; -1 injected; -2 control; -3 a rendered snapshot
	frame []byte
}

// Conn is one accepted websocket connection and its log.
type Conn struct {
	id      int
	nc      net.Conn
	br      *bufio.Reader
	path    string
	streams map[string]bool
	names   []string
	log     *slog.Logger
	opened  time.Time

	mu       sync.Mutex
	cond     *sync.Cond
	q        []item
	sent     []int
	sentAt   []int64
	dropping bool
	closeFr  bool
	closeCd  uint16
	closed   bool
	trickle  int
	trickleD time.Duration
	writing  int
	pongs    int
	pings    int
	closedAt time.Time
	dead     chan struct{}
	readDone chan struct{}
	// onText answers a client's text message (request-subscribed venues).
	onText    func([]byte)
	lastWrite int64
	// bulk (load mode): write whatever is queued in one call and keep no sent log.
	bulk bool
}
