package exsim

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/binance"
)

// Load mode: a whole venue of M symbols, each its own copy of one real capture (renamed,
// its prices shifted by a whole number of units, started at its own point of the
// recording), played in a loop at a multiple of real time for as long as it runs, with the
// venue's connection limits: at most MaxStreamsPerConn streams per connection, a REST
// weight budget per window answered 429 with Retry-After when spent, and 418 (an IP ban,
// Retry-After its length) for a client that keeps asking after a 429.
//
// Every copy's depth updates chain (U/u/pu) across the loop: where the recording ends a
// synthetic update, chained to the last one, puts the book back to the recorded snapshot,
// and the next pass's ids are shifted to chain on to it (trade ids are shifted past the
// last pass's too). Each copy's book is kept from the updates it published, so the REST
// snapshot of any derived symbol bridges its stream at any moment.

// LoadOptions configure a load market.
type LoadOptions struct {
	// Venue is binance-perp (the default) or binance-spot.
	Venue string
	// Records is the source capture: one symbol with a depth stream and its REST snapshot
	// (the bundled USD-M capture).
	Records []capture.Record
	// Symbols is M, the number of derived symbols.
	Symbols int
	// Speed is the multiple of real time (1: the recording's own pace).
	Speed float64
	// PriceStep is the whole units added to copy k's prices, times k (default 1).
	PriceStep int64
	// WeightPerMinute and WeightWindow: the REST budget (default the venue's, per minute).
	WeightPerMinute int
	WeightWindow    time.Duration
	// BanFor is the first 418 ban's length; each later ban doubles it (default 2 minutes,
	// Binance's shortest).
	BanFor time.Duration
	// MaxStreamsPerConn refuses a websocket asking for more streams (default the venue's).
	MaxStreamsPerConn int
	Logger            *slog.Logger
}

// LoadStats are a load market's counters.
type LoadStats struct {
	Symbols          int   `json:"symbols"`
	Published        int64 `json:"published"`          // messages published (each copy's stream)
	Bytes            int64 `json:"bytes"`              // their payload bytes
	Bridges          int64 `json:"bridges"`            // loop-closing depth updates among them
	Connections      int   `json:"connections"`        // websocket connections accepted
	Refused          int   `json:"refused"`            // refused for too many streams
	SnapshotOK       int   `json:"snapshot_ok"`        // REST snapshots served (200)
	TooMany          int   `json:"too_many"`           // 429 answers
	Banned           int   `json:"banned"`             // 418 answers
	BadRequest       int   `json:"bad_request"`        // 400 answers
	SymbolsSnapshot  int   `json:"symbols_snapshot"`   // symbols served at least one snapshot
	WeightUsedWindow int   `json:"weight_used_window"` // weight spent in the current window
	// Speed is the current multiple of real time; BehindMs how far the publisher is behind
	// its schedule (it cannot keep up above a rate); Queued the frames waiting in the
	// connections' queues (the clients cannot keep up).
	Speed float64 `json:"speed"`
	// RatePerSymbol is one symbol's messages per second at speed 1 (the recording's).
	RatePerSymbol float64 `json:"rate_per_symbol"`
	BehindMs      int64   `json:"behind_ms"`
	Queued        int     `json:"queued"`
}

type loadKind uint8

const (
	hLit loadKind = iota
	hSymLower
	hSymUpper
	hID    // an order book update id (U, u, pu; bookTicker u)
	hTime  // an exchange time in ms (E, T), stored relative to the receive time
	hTrade // a trade id (t; aggTrade a, f, l)
	hPrice // a price string
)

type tpart struct {
	kind loadKind
	lit  []byte
	n    int64  // id, trade id, relative time (ms) or a price's integer part
	frac string // a price's fraction with its point ("" when none)
}

// srcMsg is one message of the source recording.
type srcMsg struct {
	recv   int64 // ns after the first message of the played region
	parts  []tpart
	stream int // index into Load.suffixes
	diff   *srcDiff
	// The ids it carries, for the loop's arithmetic.
	U, u, pu, trade int64
}

type srcDiff struct {
	U, u, pu   int64
	bids, asks []level
}

// LoadSim is a running load market.
type LoadSim struct {
	opt       LoadOptions
	v         venue.Venue
	log       *slog.Logger
	depthPath string
	spot      bool

	src      []srcMsg
	suffixes []string // stream suffixes of the source ("@depth@0ms", "@trade", ...)
	loopNs   int64    // one pass of the recording
	tradeLo  int64
	tradeHi  int64
	firstU   int64 // the region's first depth update
	firstPu  int64
	seed     *book // the book at the region's start (source ids)
	// Every copy's book at position p of a pass is the recording's book there (only ids
	// and prices differ), so books are not kept per copy: a snapshot rebuilds the book at
	// its copy's position from the nearest checkpoint (every ckptEvery updates), and the
	// loop-closing update's levels are the same for all.
	ckpts      []ckpt
	endBook    *book
	bridgeBids []level
	bridgeAsks []level
	base       string
	quote      string
	copies     []*copyState
	bySym      map[string]*copyState

	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	streams  map[string][]*Conn
	conns    []*Conn
	weightW  int64
	weightU  int
	warned   bool // a 429 was answered in the current window
	banUntil time.Time
	banNext  time.Duration
	stats    LoadStats
	autoPlay bool
	newSpeed float64      // set by SetSpeed, taken by the publisher
	behind   atomic.Int64 // ns the publisher is behind its schedule
	startCh  chan struct{}
	started  bool
	closed   chan struct{}
	wg       sync.WaitGroup
}

type ckpt struct {
	pos int
	b   *book
}

const ckptEvery = 128

type copyState struct {
	k       int
	sym     string
	lower   string
	shift   int64
	streams []string // stream names by suffix index
	lastU   int64    // the last published depth update's u, in the copy's ids
	pos     int
	loop    int64
	off     int64 // added to the source's update ids in this pass
	toff    int64 // added to the source's trade ids in this pass
	phase   int64 // recv of the first message of pass 0
	bridge  bool  // the next message is preceded by the loop-closing update
	served  bool
	vt      int64 // virtual time of the next message (heap key)
	hidx    int
}

// NewLoad derives M symbols from a capture; Start serves them.
func NewLoad(opt LoadOptions) (*LoadSim, error) {
	if opt.Venue == "" {
		opt.Venue = binance.Name
	}
	if opt.Venue != binance.Name && opt.Venue != binance.SpotName {
		return nil, fmt.Errorf("exsim: load mode serves %s and %s, not %s", binance.Name, binance.SpotName, opt.Venue)
	}
	v, err := venue.Lookup(opt.Venue)
	if err != nil {
		return nil, fmt.Errorf("exsim: %w", err)
	}
	if opt.Symbols < 1 || opt.Symbols > 10000 {
		return nil, fmt.Errorf("exsim: load of %d symbols: want 1 to 10000", opt.Symbols)
	}
	if opt.Speed <= 0 {
		return nil, fmt.Errorf("exsim: load speed %v: want a positive multiple of real time", opt.Speed)
	}
	if opt.PriceStep <= 0 {
		opt.PriceStep = 1
	}
	lim := v.Limits()
	if opt.WeightPerMinute <= 0 {
		opt.WeightPerMinute = lim.RESTWeightPerMin
	}
	if opt.WeightWindow <= 0 {
		opt.WeightWindow = time.Minute
	}
	if opt.BanFor <= 0 {
		opt.BanFor = 2 * time.Minute
	}
	if opt.MaxStreamsPerConn <= 0 {
		opt.MaxStreamsPerConn = lim.MaxStreamsPerConn
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	req, err := v.SnapshotRequest("http://exsim", "BTCUSDT", 1000)
	if err != nil {
		return nil, fmt.Errorf("exsim: %w", err)
	}
	i := strings.Index(req.URL[len("http://exsim"):], "?")
	l := &LoadSim{opt: opt, v: v, log: log, depthPath: req.URL[len("http://exsim"):][:max(i, 0)], spot: opt.Venue == binance.SpotName,
		bySym: map[string]*copyState{}, streams: map[string][]*Conn{}, banNext: opt.BanFor,
		startCh: make(chan struct{}), closed: make(chan struct{})}
	if err := l.parseSource(opt.Records); err != nil {
		return nil, err
	}
	l.derive()
	l.stats.Symbols = opt.Symbols
	return l, nil
}

// parseSource reads the recording's one depth symbol from its snapshot on: the played
// region starts at the update that bridges the snapshot.
func (l *LoadSim) parseSource(recs []capture.Record) error {
	var snap []byte
	var sym string
	type raw struct {
		recv    int64
		payload []byte
		ev      venue.Event
	}
	var msgs []raw
	for _, r := range recs {
		switch r.Kind {
		case capture.KindSnapshot:
			if snap == nil {
				snap = r.Payload
			}
		case capture.KindMessage:
			ev, err := l.v.Parse(r.Payload)
			if err != nil {
				continue
			}
			s := l.v.Symbol(string(ev.Stream))
			if ev.Kind == venue.KindDepth {
				if sym == "" {
					sym = s
				} else if s != sym {
					return fmt.Errorf("exsim: load source has depth streams of %s and %s: want one symbol", sym, s)
				}
			}
			msgs = append(msgs, raw{r.RecvNs, r.Payload, ev})
		}
	}
	if sym == "" || snap == nil {
		return fmt.Errorf("exsim: load source needs a depth stream and its REST snapshot: %w", ErrNoMessages)
	}
	l.seed = newBook()
	if err := l.seed.seed(snap); err != nil {
		return err
	}
	l.seed.raw = nil
	L := l.seed.lastID
	start := -1
	for i, m := range msgs {
		if m.ev.Kind == venue.KindDepth && l.v.Symbol(string(m.ev.Stream)) == sym && l.v.SnapshotBridge(L, m.ev) == venue.BridgeApplies {
			start = i
			break
		}
	}
	if start < 0 {
		return fmt.Errorf("exsim: no depth update of %s bridges its snapshot (lastUpdateId %d)", sym, L)
	}
	suffix := map[string]int{}
	lower := strings.ToLower(sym)
	t0 := msgs[start].recv
	var last int64
	l.tradeLo, l.tradeHi = -1, -1
	for _, m := range msgs[start:] {
		name := string(m.ev.Stream)
		if !strings.HasPrefix(name, lower+"@") {
			continue
		}
		suf := name[len(lower):]
		si, ok := suffix[suf]
		if !ok {
			si = len(l.suffixes)
			suffix[suf] = si
			l.suffixes = append(l.suffixes, suf)
		}
		recv := m.recv - t0
		if recv < last {
			recv = last // receive times never go back within the played region
		}
		last = recv
		sm := srcMsg{recv: recv, stream: si, U: -1, u: -1, pu: -1, trade: -1}
		if err := sm.scan(m.payload, lower, strings.ToUpper(sym), m.recv/1e6); err != nil {
			return fmt.Errorf("exsim: load source message of %s: %w", name, err)
		}
		if m.ev.Kind == venue.KindDepth {
			bids, asks, err := depthLevels(m.payload)
			if err != nil {
				return err
			}
			sm.diff = &srcDiff{U: sm.U, u: sm.u, pu: sm.pu, bids: bids, asks: asks}
			if l.firstU == 0 {
				l.firstU, l.firstPu = sm.U, sm.pu
			}
		}
		if sm.trade >= 0 {
			if l.tradeLo < 0 || sm.trade < l.tradeLo {
				l.tradeLo = sm.trade
			}
			l.tradeHi = max(l.tradeHi, sm.trade)
		}
		l.src = append(l.src, sm)
	}
	// One pass lasts the region plus the mean gap between its messages.
	l.loopNs = last + last/int64(max(len(l.src)-1, 1)) + 1
	l.base, l.quote = splitSymbol(sym)
	return nil
}

// splitSymbol splits a Binance symbol at its quote asset.
func splitSymbol(sym string) (base, quote string) {
	for _, q := range []string{"USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB"} {
		if strings.HasSuffix(sym, q) && len(sym) > len(q) {
			return sym[:len(sym)-len(q)], q
		}
	}
	return sym, ""
}

// DerivedSymbol is copy k's symbol: the source's base asset with k in three digits
// (ETH007USDT).
func (l *LoadSim) DerivedSymbol(k int) string { return fmt.Sprintf("%s%03d%s", l.base, k, l.quote) }

// derive sets up the M copies, each starting 1/M of a pass after the one before, with
// the book at its start (one pass over the recording's updates).
func (l *LoadSim) derive() {
	M := l.opt.Symbols
	starts := make([]int, M)
	for k := range M {
		phase := l.src[len(l.src)-1].recv * int64(k) / int64(M)
		starts[k] = sort.Search(len(l.src), func(i int) bool { return l.src[i].recv >= phase })
	}
	b := l.seed.clone()
	n := 0
	l.ckpts = []ckpt{{0, b.clone()}}
	lastU := make([]int64, len(l.src)+1) // the book's id before position i
	for i := range l.src {
		lastU[i] = b.lastID
		if d := l.src[i].diff; d != nil {
			applyLoad(b, d, d.u)
			if n++; n%ckptEvery == 0 {
				l.ckpts = append(l.ckpts, ckpt{i + 1, b.clone()})
			}
		}
	}
	lastU[len(l.src)] = b.lastID
	l.endBook = b
	l.bridgeBids = levelDiff(b.bids, l.seed.bids, true)
	l.bridgeAsks = levelDiff(b.asks, l.seed.asks, false)
	for k := range M {
		sym := l.DerivedSymbol(k)
		c := &copyState{k: k, sym: sym, lower: strings.ToLower(sym), shift: int64(k) * l.opt.PriceStep, lastU: lastU[starts[k]],
			pos: starts[k], phase: l.src[starts[k]].recv}
		for _, suf := range l.suffixes {
			c.streams = append(c.streams, c.lower+suf)
		}
		l.copies = append(l.copies, c)
		l.bySym[sym] = c
	}
}

// bookAt is the recording's book before position pos of a pass.
func (l *LoadSim) bookAt(pos int) *book {
	if pos >= len(l.src) {
		return l.endBook
	}
	i := sort.Search(len(l.ckpts), func(i int) bool { return l.ckpts[i].pos > pos }) - 1
	b := l.ckpts[i].b.clone()
	for p := l.ckpts[i].pos; p < pos; p++ {
		if d := l.src[p].diff; d != nil {
			applyLoad(b, d, d.u)
		}
	}
	return b
}

// levelDiff lists the levels that turn side cur into side want: want's levels that differ,
// and cur's that want lacks at zero, best first.
func levelDiff(cur, want map[string]string, desc bool) []level {
	type pq struct {
		f float64
		l level
	}
	var ls []pq
	for p := range cur {
		if _, ok := want[p]; !ok {
			f, _ := strconv.ParseFloat(p, 64)
			ls = append(ls, pq{f, level{p, "0"}})
		}
	}
	for p, q := range want {
		if cur[p] != q {
			f, _ := strconv.ParseFloat(p, 64)
			ls = append(ls, pq{f, level{p, q}})
		}
	}
	sort.Slice(ls, func(i, j int) bool { return (ls[i].f < ls[j].f) != desc })
	out := make([]level, len(ls))
	for i, x := range ls {
		out[i] = x.l
	}
	return out
}

// applyLoad applies an update's levels (absolute quantities, zero deletes) whatever its
// ids: the copy's book and its client's see the same updates in the same order.
func applyLoad(b *book, d *srcDiff, id int64) {
	b.lastID, b.raw = id, nil
	for _, lv := range d.bids {
		if isZero(lv[1]) {
			delete(b.bids, lv[0])
		} else {
			b.bids[lv[0]] = lv[1]
		}
	}
	for _, lv := range d.asks {
		if isZero(lv[1]) {
			delete(b.asks, lv[0])
		} else {
			b.asks[lv[0]] = lv[1]
		}
	}
}

// Symbols are the derived symbols, in order.
func (l *LoadSim) Symbols() []string {
	out := make([]string, len(l.copies))
	for i, c := range l.copies {
		out[i] = c.sym
	}
	return out
}

// Subscription is what a feed subscribes to for every derived stream.
func (l *LoadSim) Subscription() venue.Subscription {
	sub := venue.Subscription{Symbols: l.Symbols()}
	for _, suf := range l.suffixes {
		kind, speed, _ := strings.Cut(suf[1:], "@")
		if kind == "depth" {
			sub.DepthSpeed = speed
		}
		sub.Streams = append(sub.Streams, kind)
	}
	return sub
}

// Venue is the venue served.
func (l *LoadSim) Venue() venue.Venue { return l.v }

// Rate is the messages per second the market publishes: every copy at Speed.
func (l *LoadSim) Rate() float64 {
	return float64(len(l.src)) / (float64(l.loopNs) / 1e9) * l.opt.Speed * float64(len(l.copies))
}

// Stats returns the counters.
func (l *LoadSim) Stats() LoadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.WeightUsedWindow = l.weightU
	s.Speed = l.opt.Speed
	s.RatePerSymbol = float64(len(l.src)) / (float64(l.loopNs) / 1e9)
	s.BehindMs = l.behind.Load() / 1e6
	conns := append([]*Conn(nil), l.conns...)
	l.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		if !c.closed {
			s.Queued += len(c.q)
		}
		c.mu.Unlock()
	}
	l.mu.Lock()
	return s
}

// SetSpeed changes the pace from now on (a benchmark's ladder of rates).
func (l *LoadSim) SetSpeed(x float64) {
	if x > 0 {
		l.mu.Lock()
		l.newSpeed = x
		l.mu.Unlock()
	}
}

// Start listens on 127.0.0.1 (an ephemeral port).
func (l *LoadSim) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	l.ln = ln
	l.srv = &http.Server{Handler: l.Handler(), ReadHeaderTimeout: 5 * time.Second}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.srv.Serve(ln)
	}()
	return nil
}

// WSURL and RESTURL are the bases a feed points at (after Start).
func (l *LoadSim) WSURL() string   { return "ws://" + l.ln.Addr().String() }
func (l *LoadSim) RESTURL() string { return "http://" + l.ln.Addr().String() }

// Handler serves the websocket (a path ending in /stream), the REST depth snapshot (a
// path ending in the venue's depth path) and the counters as JSON (/exsim/stats).
func (l *LoadSim) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, l.depthPath):
			l.serveDepth(w, r)
		case strings.HasSuffix(r.URL.Path, "/stream"):
			l.serveWS(w, r)
		case strings.HasSuffix(r.URL.Path, "/exsim/speed") && r.Method == http.MethodPost:
			x, err := strconv.ParseFloat(r.URL.Query().Get("x"), 64)
			if err != nil || x <= 0 {
				http.Error(w, "want ?x=SPEED, a positive multiple of real time", http.StatusBadRequest)
				return
			}
			l.SetSpeed(x)
		case strings.HasSuffix(r.URL.Path, "/exsim/stats"):
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(l.Stats())
		default:
			http.NotFound(w, r)
		}
	})
}

// Play starts publishing; PlayAfterSnapshots starts once every symbol got a snapshot.
func (l *LoadSim) Play() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.playLocked()
}

func (l *LoadSim) playLocked() {
	if !l.started {
		l.started = true
		l.wg.Add(1)
		go l.publish()
	}
}

func (l *LoadSim) PlayAfterSnapshots() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.autoPlay = true
	if l.stats.SymbolsSnapshot == len(l.copies) {
		l.playLocked()
	}
}

// Close stops publishing and closes every connection.
func (l *LoadSim) Close() error {
	select {
	case <-l.closed:
		return nil
	default:
	}
	close(l.closed)
	l.mu.Lock()
	conns := append([]*Conn(nil), l.conns...)
	l.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
	var err error
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = l.srv.Shutdown(ctx)
		cancel()
	}
	l.wg.Wait()
	return err
}

// DropConnections ends every open connection as a network failure does.
func (l *LoadSim) DropConnections() {
	l.mu.Lock()
	conns := append([]*Conn(nil), l.conns...)
	l.mu.Unlock()
	for _, c := range conns {
		c.drop(false, 0)
	}
}

// --- publishing ------------------------------------------------------------------------

type copyHeap []*copyState

func (h copyHeap) Len() int           { return len(h) }
func (h copyHeap) Less(i, j int) bool { return h[i].vt < h[j].vt }
func (h copyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].hidx = i; h[j].hidx = j }
func (h *copyHeap) Push(x any)        { c := x.(*copyState); c.hidx = len(*h); *h = append(*h, c) }
func (h *copyHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

func (c *copyState) nextVT(l *LoadSim) int64 {
	return c.loop*l.loopNs + l.src[c.pos].recv - c.phase
}

func (l *LoadSim) publish() {
	defer l.wg.Done()
	h := make(copyHeap, 0, len(l.copies))
	l.mu.Lock()
	for _, c := range l.copies {
		c.vt = c.nextVT(l)
		heap.Push(&h, c)
	}
	l.mu.Unlock()
	// The virtual clock (ns of the recording) is base + (wall - baseWall) * speed.
	baseWall := time.Now()
	var base int64
	buf := make([]byte, 0, 4096)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-l.closed:
			return
		default:
		}
		l.mu.Lock()
		if l.newSpeed > 0 {
			// A new pace starts from the next message due: lateness accrued at the old
			// pace is forgiven, not published in a burst at the new one.
			base = min(base+int64(float64(time.Since(baseWall))*l.opt.Speed), h[0].vt)
			baseWall, l.opt.Speed, l.newSpeed = time.Now(), l.newSpeed, 0
		}
		now := base + int64(float64(time.Since(baseWall))*l.opt.Speed)
		wall := func(vt int64) time.Time { return baseWall.Add(time.Duration(float64(vt-base) / l.opt.Speed)) }
		for n := 0; h[0].vt <= now && n < 4096; n++ {
			c := h[0]
			buf = l.emitLocked(c, wall(c.vt), buf)
			c.vt = c.nextVT(l)
			heap.Fix(&h, 0)
		}
		next := h[0].vt
		l.behind.Store(max(int64(float64(now-next)/l.opt.Speed), 0))
		l.mu.Unlock()
		if d := time.Duration(float64(next-now) / l.opt.Speed); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-l.closed:
				return
			}
		}
	}
}

// emitLocked publishes copy c's next message (after the loop-closing update when a pass
// has just ended) and advances it.
func (l *LoadSim) emitLocked(c *copyState, due time.Time, buf []byte) []byte {
	m := &l.src[c.pos]
	// When this message is due on the wall clock, in ms: its times keep their offset
	// from it (the recorder's clock skew included).
	sched := due.UnixMilli()
	if c.bridge {
		c.bridge = false
		buf = l.bridgeLocked(c, sched, buf[:0])
		l.sendLocked(c.streams[m.stream], buf)
		l.stats.Bridges++
	}
	buf = l.render(c, m, sched, buf[:0])
	if m.diff != nil {
		c.lastU = m.diff.u + c.off
	}
	l.sendLocked(c.streams[m.stream], buf)
	c.pos++
	if c.pos == len(l.src) {
		c.pos, c.loop, c.bridge = 0, c.loop+1, true
		// The bridge takes the id after the last update; the next pass chains on to it.
		bridge := c.lastU + 1
		if l.spot {
			c.off = bridge + 1 - l.firstU
		} else {
			c.off = bridge - l.firstPu
		}
		if l.tradeLo >= 0 {
			c.toff += l.tradeHi - l.tradeLo + 1
		}
	}
	return buf
}

func (l *LoadSim) sendLocked(stream string, payload []byte) {
	l.stats.Published++
	l.stats.Bytes += int64(len(payload))
	conns := l.streams[stream]
	if len(conns) == 0 {
		return
	}
	f := frame(opText, payload)
	for _, cn := range conns {
		cn.enqueue(item{idx: 0, frame: f})
	}
}

// render writes copy c's version of message m.
func (l *LoadSim) render(c *copyState, m *srcMsg, sched int64, b []byte) []byte {
	for i := range m.parts {
		p := &m.parts[i]
		switch p.kind {
		case hLit:
			b = append(b, p.lit...)
		case hSymLower:
			b = append(b, c.lower...)
		case hSymUpper:
			b = append(b, c.sym...)
		case hID:
			b = strconv.AppendInt(b, p.n+c.off, 10)
		case hTime:
			b = strconv.AppendInt(b, sched+p.n, 10)
		case hTrade:
			b = strconv.AppendInt(b, p.n+c.toff, 10)
		case hPrice:
			b = strconv.AppendInt(b, p.n+c.shift, 10)
			b = append(b, p.frac...)
		}
	}
	return b
}

// shiftPrice is a source price string moved by shift whole units.
func shiftPrice(b []byte, p string, shift int64) []byte {
	ip, frac, _ := strings.Cut(p, ".")
	n, _ := strconv.ParseInt(ip, 10, 64)
	b = strconv.AppendInt(b, n+shift, 10)
	if frac != "" || strings.Contains(p, ".") {
		b = append(b, '.')
		b = append(b, frac...)
	}
	return b
}

// bridgeLocked renders the update that closes a pass: every level of the book that the
// recorded snapshot does not hold goes to zero, every level of the snapshot is restated;
// the copy's book becomes the snapshot's.
func (l *LoadSim) bridgeLocked(c *copyState, sched int64, b []byte) []byte {
	id := c.lastU + 1
	b = append(b, `{"stream":"`...)
	b = append(b, c.lower...)
	b = append(b, l.suffixes[l.depthSuffix()]...)
	b = append(b, `","data":{"e":"depthUpdate","E":`...)
	b = strconv.AppendInt(b, sched, 10)
	if !l.spot {
		b = append(b, `,"T":`...)
		b = strconv.AppendInt(b, sched, 10)
	}
	b = append(b, `,"s":"`...)
	b = append(b, c.sym...)
	b = append(b, `","U":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"u":`...)
	b = strconv.AppendInt(b, id, 10)
	if !l.spot {
		b = append(b, `,"pu":`...)
		b = strconv.AppendInt(b, c.lastU, 10)
	}
	b = append(b, `,"b":`...)
	b = appendLevels(b, l.bridgeBids, c.shift)
	b = append(b, `,"a":`...)
	b = appendLevels(b, l.bridgeAsks, c.shift)
	b = append(b, "}}"...)
	c.lastU = id
	return b
}

// appendLevels writes [["price","qty"],...] with prices moved by shift whole units.
func appendLevels(b []byte, ls []level, shift int64) []byte {
	b = append(b, '[')
	for i, x := range ls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `["`...)
		b = shiftPrice(b, x[0], shift)
		b = append(b, `","`...)
		b = append(b, x[1]...)
		b = append(b, `"]`...)
	}
	return append(b, ']')
}

func (l *LoadSim) depthSuffix() int {
	for i, s := range l.suffixes {
		if strings.HasPrefix(s, "@depth") {
			return i
		}
	}
	return 0
}

// --- REST ------------------------------------------------------------------------------

// serveDepth answers a depth snapshot within the weight budget: 429 with Retry-After
// (seconds to the window's end) once it is spent, 418 with the ban's length to a client
// that asks again before that window ends; each ban is twice the one before.
func (l *LoadSim) serveDepth(w http.ResponseWriter, r *http.Request) {
	sym := strings.ToUpper(r.URL.Query().Get("symbol"))
	limit := 500
	if s := r.URL.Query().Get("limit"); s != "" {
		limit, _ = strconv.Atoi(s)
	}
	weight := 0
	if req, err := l.v.SnapshotRequest("http://exsim", "BTCUSDT", limit); err == nil {
		weight = req.Weight
	}
	l.mu.Lock()
	now := time.Now()
	win := now.UnixNano() / int64(l.opt.WeightWindow)
	if win != l.weightW {
		l.weightW, l.weightU, l.warned = win, 0, false
	}
	left := time.Duration((win+1)*int64(l.opt.WeightWindow) - now.UnixNano())
	secs := func(d time.Duration) string { return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) }
	c := l.bySym[sym]
	var status int
	var body []byte
	switch {
	case now.Before(l.banUntil):
		status, body = http.StatusTeapot, []byte(`{"code":-1003,"msg":"Way too many requests; IP banned."}`)
		w.Header().Set("Retry-After", secs(l.banUntil.Sub(now)))
	case l.warned:
		// Asked again after a 429 in the same window: banned.
		l.banUntil = now.Add(l.banNext)
		w.Header().Set("Retry-After", secs(l.banNext))
		l.banNext *= 2
		status, body = http.StatusTeapot, []byte(`{"code":-1003,"msg":"Way too many requests; IP banned."}`)
		l.log.Warn("exsim banned the client", "until", l.banUntil)
	case l.weightU+max(weight, 1) > l.opt.WeightPerMinute:
		l.warned = true
		status, body = http.StatusTooManyRequests, []byte(`{"code":-1003,"msg":"Too many requests."}`)
		w.Header().Set("Retry-After", secs(left))
	case weight == 0:
		l.weightU++
		status, body = http.StatusBadRequest, []byte(`{"code":-1130,"msg":"Invalid limit."}`)
	case c == nil:
		l.weightU += weight
		status, body = http.StatusBadRequest, []byte(`{"code":-1121,"msg":"Invalid symbol."}`)
	default:
		l.weightU += weight
		status = http.StatusOK
		body = l.snapshotLocked(c, limit, now.UnixMilli())
		if !c.served {
			c.served = true
			l.stats.SymbolsSnapshot++
			if l.autoPlay && l.stats.SymbolsSnapshot == len(l.copies) {
				l.playLocked()
			}
		}
	}
	switch status {
	case http.StatusOK:
		l.stats.SnapshotOK++
	case http.StatusTooManyRequests:
		l.stats.TooMany++
	case http.StatusTeapot:
		l.stats.Banned++
	default:
		l.stats.BadRequest++
	}
	w.Header().Set(l.v.Limits().UsedWeightHeader, strconv.Itoa(l.weightU))
	l.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// snapshotLocked renders copy c's book. Its lastUpdateId is the last published update's
// u when the next update chains to it by the venue's rule, else the next update's U (a
// real snapshot's id falls inside an update in flight; quantities are absolute, so the
// book after that update is the same).
func (l *LoadSim) snapshotLocked(c *copyState, limit int, nowMs int64) []byte {
	id := c.lastU
	var next venue.Event
	var bk *book
	if c.bridge {
		next = venue.Event{Kind: venue.KindDepth, First: id + 1, ID: id + 1}
		bk = l.endBook
	} else {
		for i := c.pos; i < len(l.src); i++ {
			if d := l.src[i].diff; d != nil {
				next = venue.Event{Kind: venue.KindDepth, First: d.U + c.off, ID: d.u + c.off}
				break
			}
		}
		if next.ID == 0 { // the pass ends before the next update: the bridge is next
			next = venue.Event{Kind: venue.KindDepth, First: id + 1, ID: id + 1}
		}
		bk = l.bookAt(c.pos)
	}
	if l.v.SnapshotBridge(id, next) != venue.BridgeApplies {
		id = next.First
	}
	side := func(m map[string]string, desc bool) []level {
		type pq struct {
			f float64
			l level
		}
		ls := make([]pq, 0, len(m))
		for p, q := range m {
			f, _ := strconv.ParseFloat(p, 64)
			ls = append(ls, pq{f, level{p, q}})
		}
		sort.Slice(ls, func(i, j int) bool { return (ls[i].f < ls[j].f) != desc })
		out := make([]level, 0, min(limit, len(ls)))
		for _, x := range ls[:min(limit, len(ls))] {
			out = append(out, x.l)
		}
		return out
	}
	b := append([]byte(nil), `{"lastUpdateId":`...)
	b = strconv.AppendInt(b, id, 10)
	if !l.spot {
		b = append(b, `,"E":`...)
		b = strconv.AppendInt(b, nowMs, 10)
		b = append(b, `,"T":`...)
		b = strconv.AppendInt(b, nowMs, 10)
	}
	b = append(b, `,"bids":`...)
	b = appendLevels(b, side(bk.bids, true), c.shift)
	b = append(b, `,"asks":`...)
	b = appendLevels(b, side(bk.asks, false), c.shift)
	return append(b, '}')
}

// --- websocket -------------------------------------------------------------------------

func (l *LoadSim) serveWS(w http.ResponseWriter, r *http.Request) {
	streams := strings.Split(r.URL.Query().Get("streams"), "/")
	if len(streams) == 0 || streams[0] == "" {
		http.Error(w, `{"code":-1100,"msg":"no streams"}`, http.StatusBadRequest)
		return
	}
	if len(streams) > l.opt.MaxStreamsPerConn {
		l.mu.Lock()
		l.stats.Refused++
		l.mu.Unlock()
		http.Error(w, fmt.Sprintf(`{"code":-1100,"msg":"%d streams: at most %d per connection"}`, len(streams), l.opt.MaxStreamsPerConn), http.StatusBadRequest)
		return
	}
	nc, br, accept, err := hijack(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := newConn(nc, br, r.URL.Path, streams, l.log)
	c.bulk = true
	l.mu.Lock()
	select {
	case <-l.closed:
		l.mu.Unlock()
		nc.Close()
		return
	default:
	}
	c.id = len(l.conns)
	l.conns = append(l.conns, c)
	l.stats.Connections++
	for _, s := range streams {
		l.streams[s] = append(l.streams[s], c)
	}
	l.mu.Unlock()
	if _, err := nc.Write(accept); err != nil {
		nc.Close()
	}
	l.wg.Add(3)
	go func() { defer l.wg.Done(); c.writeLoop() }()
	go func() { defer l.wg.Done(); c.readLoop() }()
	go func() {
		defer l.wg.Done()
		select {
		case <-c.dead:
		case <-l.closed:
			return
		}
		l.mu.Lock()
		for _, s := range streams {
			cs := l.streams[s]
			for i, x := range cs {
				if x == c {
					l.streams[s] = append(cs[:i:i], cs[i+1:]...)
					break
				}
			}
			if len(l.streams[s]) == 0 {
				delete(l.streams, s)
			}
		}
		l.mu.Unlock()
	}()
}

// --- the source's templates ------------------------------------------------------------

// scan splits a compact Binance message into literal bytes and the fields a copy
// rewrites: its symbol (in the stream name and "s"), exchange times, update ids, trade
// ids and prices.
func (m *srcMsg) scan(b []byte, lower, upper string, recvMs int64) error {
	t := &tscan{b: b, lower: lower, upper: upper, recvMs: recvMs, m: m}
	if err := t.value(""); err != nil {
		return err
	}
	if t.i != len(b) {
		return fmt.Errorf("trailing bytes at offset %d", t.i)
	}
	t.flush(len(b))
	return nil
}

type tscan struct {
	b            []byte
	i            int
	lit          int
	lower, upper string
	recvMs       int64
	m            *srcMsg
	levels       bool // inside a "b" or "a" array of levels
}

func (t *tscan) flush(upto int) {
	if upto > t.lit {
		t.m.parts = append(t.m.parts, tpart{kind: hLit, lit: t.b[t.lit:upto]})
	}
	t.lit = upto
}

func (t *tscan) hole(start, end int, p tpart) {
	t.flush(start)
	t.m.parts = append(t.m.parts, p)
	t.lit = end
}

func (t *tscan) errf(f string, a ...any) error {
	return fmt.Errorf("offset %d: "+f, append([]any{t.i}, a...)...)
}

func (t *tscan) str() (int, int, error) {
	if t.i >= len(t.b) || t.b[t.i] != '"' {
		return 0, 0, t.errf("want a string")
	}
	start := t.i
	for j := t.i + 1; j < len(t.b); j++ {
		switch t.b[j] {
		case '\\':
			j++
		case '"':
			t.i = j + 1
			return start, t.i, nil
		}
	}
	return 0, 0, t.errf("unterminated string")
}

func (t *tscan) value(key string) error {
	if t.i >= len(t.b) {
		return t.errf("unexpected end")
	}
	switch c := t.b[t.i]; {
	case c == '{':
		t.i++
		for first := true; ; first = false {
			if t.i < len(t.b) && t.b[t.i] == '}' {
				t.i++
				return nil
			}
			if !first {
				if t.i >= len(t.b) || t.b[t.i] != ',' {
					return t.errf("want , or }")
				}
				t.i++
			}
			s, e, err := t.str()
			if err != nil {
				return err
			}
			k := string(t.b[s+1 : e-1])
			if t.i >= len(t.b) || t.b[t.i] != ':' {
				return t.errf("want :")
			}
			t.i++
			if err := t.value(k); err != nil {
				return err
			}
		}
	case c == '[':
		t.i++
		levels := t.levels
		inner := key == "b" || key == "a" || key == "bids" || key == "asks"
		for n := 0; ; n++ {
			if t.i < len(t.b) && t.b[t.i] == ']' {
				t.i++
				t.levels = levels
				return nil
			}
			if n > 0 {
				if t.i >= len(t.b) || t.b[t.i] != ',' {
					return t.errf("want , or ]")
				}
				t.i++
			}
			t.levels = inner
			ek := ""
			if levels && n == 0 {
				ek = "p" // a level's first element is its price
			}
			if err := t.value(ek); err != nil {
				return err
			}
		}
	case c == '"':
		s, e, err := t.str()
		if err != nil {
			return err
		}
		v := string(t.b[s+1 : e-1])
		switch {
		case key == "stream" && strings.HasPrefix(v, t.lower+"@"):
			t.hole(s+1, s+1+len(t.lower), tpart{kind: hSymLower})
		case key == "s" && v == t.upper:
			t.hole(s+1, e-1, tpart{kind: hSymUpper})
		case (key == "p" || (!t.levels && (key == "b" || key == "a"))) && isDecimal(v):
			ip, frac, _ := strings.Cut(v, ".")
			n, err := strconv.ParseInt(ip, 10, 64)
			if err != nil {
				return t.errf("price %q: %v", v, err)
			}
			if strings.Contains(v, ".") {
				frac = "." + frac
			}
			t.hole(s+1, e-1, tpart{kind: hPrice, n: n, frac: frac})
		}
		return nil
	default:
		s := t.i
		for t.i < len(t.b) && !strings.ContainsRune(",}] \n", rune(t.b[t.i])) {
			t.i++
		}
		n, err := strconv.ParseInt(string(t.b[s:t.i]), 10, 64)
		if err != nil {
			return nil // true, false, null or a non-integer: kept as it is
		}
		switch key {
		case "E", "T":
			t.hole(s, t.i, tpart{kind: hTime, n: n - t.recvMs})
		case "U", "u", "pu":
			t.hole(s, t.i, tpart{kind: hID, n: n})
			switch key {
			case "U":
				t.m.U = n
			case "u":
				t.m.u = n
			case "pu":
				t.m.pu = n
			}
		case "t", "a", "f", "l":
			t.hole(s, t.i, tpart{kind: hTrade, n: n})
			if key == "t" || key == "a" {
				t.m.trade = n
			}
		}
	}
	return nil
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return false
		}
	}
	return true
}

// DimSymbol is a dim_symbol table (docs/format/dim-symbol.md, CSV) of the derived
// symbols, for the refinery: symbol ids from 100000, codes like eth007-usdt, valid since
// always.
func (l *LoadSim) DimSymbol() []byte {
	var b strings.Builder
	b.WriteString("# dim_symbol of chronicle-exsim's load market: one row per derived symbol\n")
	b.WriteString("symbol_id,symbol_version_id,venue,raw_symbol,symbol_code,valid_from,valid_to\n")
	for _, c := range l.copies {
		code := strings.ToLower(l.base) + fmt.Sprintf("%03d", c.k)
		if l.quote != "" {
			code += "-" + strings.ToLower(l.quote)
		}
		fmt.Fprintf(&b, "%d,%d,%s,%s,%s,,\n", 100000+c.k, 100000+c.k, l.v.Name(), c.sym, code)
	}
	return []byte(b.String())
}
