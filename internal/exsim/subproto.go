package exsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/kraken"
	"github.com/chronicle/chronicle/venue/okx"
)

// Venues whose clients subscribe by request (OKX, Kraken): a connection carries no
// streams until it asks; each request is answered as the venue answers it (an ack per
// stream, or an error); a book subscription gets its snapshot on the websocket: the
// recorded one, where the capture has it, when the replay reaches it (so a client that
// subscribed before the replay journals the capture in its own order), or, once that is
// past, a snapshot of the book the replay has built so far, rendered from the exchange's
// own strings with the checksum the venue would send (computed here from those strings,
// independently of the venue package). The venue's keep-alive is answered; Kraken's
// heartbeat goes out after a second without traffic. The capture's own control messages
// (the recorder's acks, heartbeats) are not replayed: the simulator sends its own. REST
// serves the recorded reference data (OKX instruments, Kraken AssetPairs).

// subMarket is the part of a simulator that speaks a request-subscribed protocol.
type subMarket struct {
	sub     venue.Subscriber
	name    string // venue id
	streams map[string]*subStream
	order   []string // stream keys in order of first appearance
	refs    []capture.Record
	wsPath  string // the websocket path suffix
	restFor func(u *url.URL) []byte
}

// subStream is one stream of the capture.
type subStream struct {
	key, channel, inst string
	kind               venue.Kind
	snapIdx            int  // message index of the recorded snapshot; -1: none
	snapDone           bool // the replay reached it
	book               *rawBook
	chanID             int64 // Kraken's channel id, as the capture's messages carry it
	lastTs             string
	lastSeq            int64
	hasSeq             bool
}

// rawBook is one book as the exchange's strings, ordered by a SortedBook of the venue's
// decoded levels.
type rawBook struct {
	depth      int
	sorted     venue.SortedBook
	bids, asks map[int64][]string
}

func newRawBook(depth int) *rawBook {
	return &rawBook{depth: depth, bids: map[int64][]string{}, asks: map[int64][]string{}}
}

// rawUpdate is a depth message's levels: decoded (for order) and as strings.
type rawUpdate struct {
	snapshot   bool
	bids, asks []venue.Level
	rb, ra     [][]string
	ts         string
	seq        int64
	hasSeq     bool
}

func (b *rawBook) apply(u *rawUpdate) {
	if u.snapshot {
		b.sorted.Reset(nil, nil)
		clear(b.bids)
		clear(b.asks)
	}
	for side, lv := range [2][]venue.Level{u.bids, u.asks} {
		raws, m := u.rb, b.bids
		if side == 1 {
			raws, m = u.ra, b.asks
		}
		for i, l := range lv {
			b.sorted.Set(side == 0, l)
			if l.Qty == 0 {
				delete(m, l.Price)
			} else {
				m[l.Price] = raws[i]
			}
		}
	}
	if b.depth > 0 {
		for _, bid := range []bool{true, false} {
			m := b.asks
			if bid {
				m = b.bids
			}
			if all := b.sorted.Top(bid, -1); len(all) > b.depth {
				for _, l := range all[b.depth:] {
					delete(m, l.Price)
				}
			}
		}
		b.sorted.Trim(b.depth)
	}
}

// top returns a side's best n levels as strings.
func (b *rawBook) top(bid bool, n int) [][]string {
	m := b.asks
	if bid {
		m = b.bids
	}
	var out [][]string
	for _, l := range b.sorted.Top(bid, n) {
		out = append(out, m[l.Price])
	}
	return out
}

// newSubMarket reads the capture for a request-subscribed venue: stream messages with
// their books' strings, and the REST reference bodies.
func (s *Sim) newSubMarket(sub venue.Subscriber, recs []capture.Record) error {
	mk := &subMarket{sub: sub, name: s.v.Name(), streams: map[string]*subStream{}}
	switch s.v.Name() {
	case okx.Name:
		mk.wsPath = okx.WSPath
		mk.restFor = mk.okxREST
	case kraken.Name:
		mk.wsPath = "/"
		mk.restFor = mk.krakenREST
	default:
		return fmt.Errorf("exsim: venue %s: no simulated protocol", s.v.Name())
	}
	s.sm = mk
	// The instruments' scales first: a book's far levels may not fit the default scale.
	scales := &venue.Scales{}
	scales.Default.Price, scales.Default.Qty = s.v.Decimals()
	for _, r := range recs {
		if r.Kind != capture.KindSnapshot {
			continue
		}
		mk.refs = append(mk.refs, r)
		if rv, ok := s.v.(venue.Referencer); ok {
			specs, err := rv.DecodeReference(r.Payload, nil)
			if err != nil {
				return fmt.Errorf("exsim: capture %s line %d: %w", r.File, r.Line, err)
			}
			for _, sp := range specs {
				scales.Set(sp.Symbol, sp.Scale)
			}
		}
	}
	sd, _ := s.v.(venue.ScaledDecoder)
	var recvNs []int64
	var key []byte
	var m venue.Message
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		ev, err := s.v.Parse(r.Payload)
		if err != nil {
			continue
		}
		msg := message{kind: ev.Kind, frame: frame(opText, r.Payload)}
		if ev.Kind == venue.KindControl {
			// The recorder's subscriptions: a stream that never carried a message (a
			// pair without trades) is still one the market serves.
			if ctl := sub.Control(r.Payload); ctl.Kind == venue.ControlSubscribed && ctl.Stream != "" {
				if ch, inst, ok := strings.Cut(ctl.Stream, ":"); ok {
					mk.stream(ctl.Stream, ch, inst, kindOf(s.v, ch), recordedChanID(r.Payload))
				}
			}
			msg.control = true
			s.msgs = append(s.msgs, msg)
			recvNs = append(recvNs, r.RecvNs)
			continue
		}
		key = ev.Key(key[:0])
		msg.stream = string(key)
		st := mk.stream(msg.stream, string(ev.Stream), string(ev.Inst), ev.Kind, krakenChanID(r.Payload))
		msg.symbol = st.inst
		if ev.Kind == venue.KindDepth {
			var err error
			if sd != nil {
				err = sd.DecodeAt(r.Payload, &m, scales)
			} else {
				err = s.v.Decode(r.Payload, &m)
			}
			if err != nil {
				return fmt.Errorf("exsim: capture %s line %d: %w", r.File, r.Line, err)
			}
			u, err := rawLevels(s.v.Name(), r.Payload, &m)
			if err != nil {
				return fmt.Errorf("exsim: capture %s line %d: %w", r.File, r.Line, err)
			}
			if st.book == nil {
				st.book = newRawBook(m.Depth)
			}
			msg.update = u
			if u.snapshot && st.snapIdx < 0 {
				st.snapIdx = len(s.msgs)
			}
		}
		s.msgs = append(s.msgs, msg)
		recvNs = append(recvNs, r.RecvNs)
	}
	s.recv = recvNs
	return nil
}

// stream returns the stream of a key, adding it in order of first appearance.
func (mk *subMarket) stream(key, channel, inst string, kind venue.Kind, chanID int64) *subStream {
	st := mk.streams[key]
	if st == nil {
		st = &subStream{key: key, channel: channel, inst: inst, kind: kind, snapIdx: -1, chanID: chanID}
		mk.streams[key] = st
		mk.order = append(mk.order, key)
	}
	if st.chanID == 0 {
		st.chanID = chanID
	}
	return st
}

// kindOf is the kind of a channel, as the venue parses a message of it.
func kindOf(v venue.Venue, channel string) venue.Kind {
	c, _ := venue.Lookup(v.Name())
	probe := map[string][]byte{
		okx.Name:    fmt.Appendf(nil, `{"arg":{"channel":%q,"instId":"X"},"data":[]}`, channel),
		kraken.Name: fmt.Appendf(nil, `[0,{},%q,"X/Y"]`, channel),
	}[v.Name()]
	ev, err := c.Parse(probe)
	if err != nil {
		return venue.KindOther
	}
	return ev.Kind
}

// recordedChanID reads the channelID of a recorded Kraken subscriptionStatus.
func recordedChanID(msg []byte) int64 {
	var ack struct {
		ChannelID int64 `json:"channelID"`
	}
	json.Unmarshal(msg, &ack)
	return ack.ChannelID
}

func krakenChanID(msg []byte) int64 {
	if len(msg) == 0 || msg[0] != '[' {
		return 0
	}
	end := bytes.IndexByte(msg, ',')
	if end < 0 {
		return 0
	}
	id, _ := strconv.ParseInt(string(bytes.TrimSpace(msg[1:end])), 10, 64)
	return id
}

// rawLevels reads a depth message's level strings, in the order the decoder read them.
func rawLevels(venueName string, payload []byte, m *venue.Message) (*rawUpdate, error) {
	u := &rawUpdate{snapshot: m.Snapshot, bids: append([]venue.Level(nil), m.Bids...), asks: append([]venue.Level(nil), m.Asks...)}
	switch venueName {
	case okx.Name:
		var env struct {
			Data []struct {
				Asks, Bids [][]string
				Ts         string
				SeqID      *int64 `json:"seqId"`
			}
		}
		if err := json.Unmarshal(payload, &env); err != nil || len(env.Data) != 1 {
			return nil, fmt.Errorf("okx book message: %v", err)
		}
		d := env.Data[0]
		u.ra, u.rb, u.ts = d.Asks, d.Bids, d.Ts
		if d.SeqID != nil {
			u.seq, u.hasSeq = *d.SeqID, true
		}
	case kraken.Name:
		var arr []json.RawMessage
		if err := json.Unmarshal(payload, &arr); err != nil || len(arr) < 4 {
			return nil, fmt.Errorf("kraken book message: %v", err)
		}
		for _, p := range arr[1 : len(arr)-2] {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(p, &obj); err != nil {
				return nil, err
			}
			// Kraken sends asks before bids within a message; the decoder keeps each
			// side in message order.
			for _, k := range []string{"as", "a", "bs", "b"} {
				v, ok := obj[k]
				if !ok {
					continue
				}
				var ls [][]string
				if err := json.Unmarshal(v, &ls); err != nil {
					return nil, err
				}
				for i := range ls {
					ls[i] = ls[i][:3] // price, volume, time: a republish flag is not restated
				}
				if k[0] == 'a' {
					u.ra = append(u.ra, ls...)
				} else {
					u.rb = append(u.rb, ls...)
				}
			}
		}
	}
	if len(u.ra) != len(u.asks) || len(u.rb) != len(u.bids) {
		return nil, fmt.Errorf("level strings %d/%d, decoded %d/%d", len(u.rb), len(u.ra), len(u.bids), len(u.asks))
	}
	return u, nil
}

// onRequest answers one text message a client sent: a subscribe or unsubscribe request,
// or a keep-alive.
func (s *Sim) onRequest(c *Conn, payload []byte) {
	mk := s.sm
	if mk == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch mk.name {
	case okx.Name:
		s.okxRequest(c, payload)
	case kraken.Name:
		s.krakenRequest(c, payload)
	}
	if s.autoPlay && !s.started && s.allSubscribedLocked() {
		s.startLocked()
	}
}

// allSubscribedLocked: every stream of the capture has a subscriber.
func (s *Sim) allSubscribedLocked() bool {
	for _, k := range s.sm.order {
		found := false
		for _, c := range s.conns {
			if !c.Closed() && c.subscribed(k) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// subscribeLocked adds a stream to c and sends its snapshot when the replay is past the
// recorded one.
func (s *Sim) subscribeLocked(c *Conn, st *subStream) {
	c.mu.Lock()
	c.streams[st.key] = true
	c.names = append(c.names, st.key)
	c.mu.Unlock()
	if st.book != nil && (st.snapDone || st.snapIdx < 0) {
		c.enqueue(item{idx: -3, frame: frame(opText, s.renderSnapshot(st))})
	}
}

func (s *Sim) unsubscribeLocked(c *Conn, st *subStream) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.streams[st.key] {
		return false
	}
	delete(c.streams, st.key)
	c.names = slicesDelete(c.names, st.key)
	return true
}

func slicesDelete(ss []string, v string) []string {
	out := ss[:0]
	for _, x := range ss {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func (s *Sim) control(c *Conn, body []byte) { c.enqueue(item{idx: -2, frame: frame(opText, body)}) }

// --- OKX --------------------------------------------------------------------------------

func (s *Sim) okxRequest(c *Conn, payload []byte) {
	if string(payload) == "ping" {
		c.enqueueFront(item{idx: -2, frame: frame(opText, []byte("pong"))})
		return
	}
	var req struct {
		Op   string `json:"op"`
		Args []struct {
			Channel string `json:"channel"`
			InstID  string `json:"instId"`
		} `json:"args"`
	}
	conn := fmt.Sprintf("%08x", c.id+1)
	if err := json.Unmarshal(payload, &req); err != nil || (req.Op != "subscribe" && req.Op != "unsubscribe") {
		s.control(c, fmt.Appendf(nil, `{"event":"error","code":"60012","msg":"Invalid request: %s","connId":"%s"}`, jsonEscape(truncate(string(payload))), conn))
		return
	}
	for _, a := range req.Args {
		arg := fmt.Sprintf(`{"channel":%q,"instId":%q}`, a.Channel, a.InstID)
		st := s.sm.streams[venue.StreamName(a.Channel, a.InstID)]
		if st == nil {
			s.control(c, fmt.Appendf(nil, `{"event":"error","code":"60018","msg":"Wrong URL or channel:%s,instId:%s doesn't exist","connId":"%s"}`,
				jsonEscape(a.Channel), jsonEscape(a.InstID), conn))
			continue
		}
		if req.Op == "subscribe" {
			s.control(c, fmt.Appendf(nil, `{"event":"subscribe","arg":%s,"connId":"%s"}`, arg, conn))
			s.subscribeLocked(c, st)
		} else {
			s.unsubscribeLocked(c, st)
			s.control(c, fmt.Appendf(nil, `{"event":"unsubscribe","arg":%s,"connId":"%s"}`, arg, conn))
		}
	}
}

// okxChecksum is OKX's rule on the exchange's strings: the best 25 bids and asks
// interleaved, price:size each, joined by colons; CRC32 as a signed integer.
func okxChecksum(bids, asks [][]string) int32 {
	var parts []string
	for i := 0; i < 25; i++ {
		if i < len(bids) {
			parts = append(parts, bids[i][0], bids[i][1])
		}
		if i < len(asks) {
			parts = append(parts, asks[i][0], asks[i][1])
		}
	}
	return int32(crc32.ChecksumIEEE([]byte(strings.Join(parts, ":"))))
}

func (mk *subMarket) okxREST(u *url.URL) []byte {
	if !strings.HasSuffix(u.Path, okx.InstrumentsPath) {
		return nil
	}
	want := u.Query().Get("instType")
	for _, r := range mk.refs {
		if ru, err := url.Parse(r.URL); err == nil && strings.HasSuffix(ru.Path, okx.InstrumentsPath) && ru.Query().Get("instType") == want {
			return r.Payload
		}
	}
	return []byte(`{"code":"51000","msg":"Parameter instType error","data":[]}`)
}

// --- Kraken -----------------------------------------------------------------------------

func (s *Sim) krakenRequest(c *Conn, payload []byte) {
	var req struct {
		Event        string          `json:"event"`
		ReqID        *int64          `json:"reqid"`
		Pair         []string        `json:"pair"`
		Subscription json.RawMessage `json:"subscription"`
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		s.control(c, []byte(`{"errorMessage":"Malformed request","event":"error"}`))
		return
	}
	reqid := ""
	if req.ReqID != nil {
		reqid = fmt.Sprintf(`,"reqid":%d`, *req.ReqID)
	}
	switch req.Event {
	case "ping":
		c.enqueueFront(item{idx: -2, frame: frame(opText, []byte(`{"event":"pong"`+reqid+`}`))})
		return
	case "subscribe", "unsubscribe":
	default:
		s.control(c, []byte(`{"errorMessage":"Unsupported event","event":"error"`+reqid+`}`))
		return
	}
	var sub struct {
		Name  string `json:"name"`
		Depth int    `json:"depth"`
	}
	json.Unmarshal(req.Subscription, &sub)
	channel := sub.Name
	if sub.Name == "book" {
		channel = "book-" + strconv.Itoa(max(sub.Depth, 10))
	}
	for _, pair := range req.Pair {
		st := s.sm.streams[venue.StreamName(channel, pair)]
		if st == nil {
			s.control(c, fmt.Appendf(nil, `{"errorMessage":"Subscription not supported","event":"subscriptionStatus","pair":%q,"status":"error"%s,"subscription":%s}`,
				pair, reqid, req.Subscription))
			continue
		}
		status := "subscribed"
		if req.Event == "unsubscribe" {
			status = "unsubscribed"
			s.unsubscribeLocked(c, st)
		}
		s.control(c, fmt.Appendf(nil, `{"channelID":%d,"channelName":%q,"event":"subscriptionStatus","pair":%q%s,"status":%q,"subscription":%s}`,
			st.chanID, st.channel, pair, reqid, status, req.Subscription))
		if req.Event == "subscribe" {
			s.subscribeLocked(c, st)
		}
	}
}

func (mk *subMarket) krakenREST(u *url.URL) []byte {
	if !strings.HasSuffix(u.Path, kraken.AssetPairsPath) {
		return nil
	}
	for _, r := range mk.refs {
		if strings.Contains(r.URL, kraken.AssetPairsPath) {
			return r.Payload
		}
	}
	return []byte(`{"error":["EGeneral:Unknown method"]}`)
}

// krakenHello is what Kraken sends a new connection.
func (s *Sim) krakenHello(c *Conn) {
	c.enqueue(item{idx: -2, frame: frame(opText, fmt.Appendf(nil,
		`{"connectionID":%d,"event":"systemStatus","status":"online","version":"1.9.0"}`, 17843232920108168701-uint64(c.id)))})
}

// heartbeats sends Kraken's heartbeat to c after every second without traffic.
func (s *Sim) heartbeats(c *Conn) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-s.closed:
			return
		case <-t.C:
		}
		if c.idleFor() >= time.Second {
			c.enqueue(item{idx: -2, frame: frame(opText, []byte(`{"event":"heartbeat"}`))})
		}
	}
}

// --- snapshots --------------------------------------------------------------------------

// renderSnapshot is a book snapshot message as the venue sends it, from the book the
// replay has built.
func (s *Sim) renderSnapshot(st *subStream) []byte {
	b := st.book
	n := b.depth
	if n <= 0 {
		n = 400
	}
	bids, asks := b.top(true, n), b.top(false, n)
	enc := func(ls [][]string) string {
		if len(ls) == 0 {
			return "[]"
		}
		j, _ := json.Marshal(ls)
		return string(j)
	}
	switch s.sm.name {
	case okx.Name:
		seq := ""
		if st.hasSeq {
			seq = fmt.Sprintf(`,"prevSeqId":-1,"seqId":%d`, st.lastSeq)
		}
		return fmt.Appendf(nil, `{"arg":{"channel":%q,"instId":%q},"action":"snapshot","data":[{"asks":%s,"bids":%s,"ts":%q,"checksum":%d%s}]}`,
			st.channel, st.inst, enc(asks), enc(bids), st.lastTs, okxChecksum(bids, asks), seq)
	}
	return fmt.Appendf(nil, `[%d,{"as":%s,"bs":%s},%q,%q]`, st.chanID, enc(asks), enc(bids), st.channel, st.inst)
}

// publishSubLocked runs for each capture message of a request-subscribed market before it
// is sent: it keeps the stream's book, and says whether the message goes out at all
// (the capture's control messages do not).
func (s *Sim) publishSubLocked(m *message, i int) (send bool) {
	if m.control {
		return false
	}
	st := s.sm.streams[m.stream]
	if st == nil || m.update == nil {
		return true
	}
	st.book.apply(m.update)
	st.lastTs = m.update.ts
	if m.update.hasSeq {
		st.lastSeq, st.hasSeq = m.update.seq, true
	}
	if i == st.snapIdx {
		st.snapDone = true
	}
	return true
}

// corrupt changes the size of the first level of a depth message (its last digit), so
// the client's book no longer has the checksum the message carries.
func corrupt(payload []byte) ([]byte, bool) {
	i := bytes.Index(payload, []byte(`[["`))
	if i < 0 {
		return nil, false
	}
	j := i + 2
	end := bytes.IndexByte(payload[j+1:], '"') // end of the price
	if end < 0 {
		return nil, false
	}
	k := j + 1 + end + 1 // after the price's closing quote
	if k+2 > len(payload) || payload[k] != ',' || payload[k+1] != '"' {
		return nil, false
	}
	q := bytes.IndexByte(payload[k+2:], '"')
	if q <= 0 {
		return nil, false
	}
	last := k + 2 + q - 1
	out := bytes.Clone(payload)
	switch c := out[last]; {
	case c >= '0' && c < '9':
		out[last] = c + 1
	case c == '9':
		out[last] = '8'
	default:
		return nil, false
	}
	return out, true
}

// CorruptNext makes the next n depth updates of a stream (its key, "books:BTC-USDT")
// reach every client with one size changed, as a damaged or misapplied update would: the
// simulator's own book applies the true update, so a client that resubscribes gets a
// correct snapshot.
func (s *Sim) CorruptNext(stream string, n int) {
	s.mu.Lock()
	s.corruptN[stream] += n
	s.mu.Unlock()
}

// Streams lists the capture's stream keys in order of first appearance (request-subscribed
// venues) or names.
func (s *Sim) Streams() []string {
	if s.sm != nil {
		return append([]string(nil), s.sm.order...)
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range s.msgs {
		if !seen[m.stream] {
			seen[m.stream] = true
			out = append(out, m.stream)
		}
	}
	return out
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100]
	}
	return s
}

// subSubscription is Subscription for a request-subscribed market: the capture's
// instruments and channels in order of first appearance (OKX channel names; Kraken
// channel kinds, the book at its depth).
func (s *Sim) subSubscription() (venue.Subscription, error) {
	var sub venue.Subscription
	seenSym, seenStream := map[string]bool{}, map[string]bool{}
	for _, k := range s.sm.order {
		st := s.sm.streams[k]
		if !seenSym[st.inst] {
			seenSym[st.inst] = true
			sub.Symbols = append(sub.Symbols, st.inst)
		}
		spec := st.channel
		if strings.HasPrefix(spec, "book-") {
			d, _ := strconv.Atoi(spec[5:])
			spec, sub.BookDepth = "book", d
		}
		if !seenStream[spec] {
			seenStream[spec] = true
			sub.Streams = append(sub.Streams, spec)
		}
	}
	plan, err := s.v.Plan("ws://exsim", sub)
	if err != nil {
		return sub, fmt.Errorf("exsim: %w", err)
	}
	planned := map[string]bool{}
	for _, c := range plan {
		for _, st := range c.Streams {
			planned[st.Name] = true
		}
	}
	var missing []string
	for _, k := range s.sm.order {
		if !planned[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return sub, fmt.Errorf("exsim: the %s plan for %v does not name the capture's streams %v", s.v.Name(), sub, missing)
	}
	return sub, nil
}
