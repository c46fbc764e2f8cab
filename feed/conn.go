package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/venue"
)

// wsConn is one websocket connection of a slot.
type wsConn struct {
	slot     *slotState
	gen      uint64
	url      string
	connCh   uint16
	channels []uint16 // per stream of the slot
	replay   bool
	lastNs   int64        // replay: time of the last record
	key      []byte       // stream key buffer (venues that name channel and instrument apart)
	lastRecv atomic.Int64 // wall time of the last message read, ns (keep-alive)

	keepAlive *venue.KeepAlive // the venue's own keep-alive, instead of websocket pings

	subMu   sync.Mutex
	subHour int64 // the hour subReqs counts in
	subReqs int   // subscribe and unsubscribe requests sent in subHour
	ws      *websocket.Conn
	opened  time.Time
	msgs    atomic.Int64
	done    chan struct{} // closed when the reader stops
	err     error         // why the reader stopped; read after done

	closeOnce   sync.Once
	closeReason atomic.Pointer[string] // set when the feed closes the connection on purpose
}

func newWSConn(sl *slotState, gen uint64, url string) (*wsConn, error) {
	c := &wsConn{slot: sl, gen: gen, url: url, done: make(chan struct{}), opened: time.Now()}
	var err error
	if c.connCh, err = journal.Channel(sl.idx, gen, journal.ConnStream); err != nil {
		return nil, err
	}
	c.channels = make([]uint16, len(sl.streams))
	for i := range sl.streams {
		if c.channels[i], err = journal.Channel(sl.idx, gen, i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// dial opens the websocket. The read limit of the library is set far above ours: we
// read messages through a fixed buffer and drop (and count) those over our limit
// ourselves, without losing the connection.
func (f *Feed) dial(ctx context.Context, sl *slotState, gen uint64) (*wsConn, error) {
	c, err := newWSConn(sl, gen, sl.plan.URL)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{HTTPClient: &http.Client{Timeout: f.cfg.DialTimeout}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial slot %d: http %d: %w", sl.idx, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial slot %d: %w", sl.idx, err)
	}
	ws.SetReadLimit(libraryReadLimit)
	c.ws = ws
	c.opened = time.Now()
	return c, nil
}

const libraryReadLimit = 256 << 20

// run reads messages until the connection ends and pings it meanwhile.
func (c *wsConn) run(r *Recorder, maxBytes int, pingEvery, pongTimeout time.Duration) {
	stopPing := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if c.keepAlive != nil {
			c.keepAliveLoop(stopPing, *c.keepAlive, pingEvery, pongTimeout, r.clock.Now)
			return
		}
		c.pingLoop(stopPing, pingEvery, pongTimeout)
	}()
	c.err = c.readLoop(r, maxBytes)
	close(stopPing)
	wg.Wait()
	close(c.done)
}

func (c *wsConn) readLoop(r *Recorder, maxBytes int) error {
	buf := make([]byte, maxBytes+1)
	// Background context: a cancellable one would cost an allocation per read. The
	// connection is closed to stop the reader.
	ctx := context.Background()
	for {
		typ, rd, err := c.ws.Reader(ctx)
		if err != nil {
			return err
		}
		n := 0
		for n < len(buf) {
			k, err := rd.Read(buf[n:])
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		if n == len(buf) {
			// Over the limit: drain the rest, keep the connection, record the drop.
			rest, err := io.Copy(io.Discard, rd)
			recvNs := r.clock.Now()
			if err != nil {
				return err
			}
			r.onOversized(c, recvNs, buf[:min(n, 512)], int64(n)+rest)
			continue
		}
		recvNs := r.clock.Now()
		c.msgs.Add(1)
		c.lastRecv.Store(recvNs)
		r.onMessage(c, recvNs, buf[:n], typ == websocket.MessageBinary)
	}
}

func (c *wsConn) pingLoop(stop <-chan struct{}, every, timeout time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := c.ws.Ping(ctx)
		cancel()
		select {
		case <-stop:
			return
		default:
		}
		if err != nil {
			c.closeNow(fmt.Sprintf("no pong within %v", timeout))
			return
		}
	}
}

// close ends the connection with a close frame; closeNow drops it.
func (c *wsConn) close(reason string) {
	c.closeOnce.Do(func() {
		c.closeReason.Store(&reason)
		go func() {
			c.ws.Close(websocket.StatusNormalClosure, reason)
		}()
		// The close handshake waits for the server; do not let it hold a rollover up.
		go func() {
			select {
			case <-c.done:
			case <-time.After(3 * time.Second):
				c.ws.CloseNow()
			}
		}()
	})
}

func (c *wsConn) closeNow(reason string) {
	c.closeOnce.Do(func() {
		c.closeReason.Store(&reason)
		c.ws.CloseNow()
	})
}

// endReason describes why the connection ended.
func (c *wsConn) endReason() string {
	if p := c.closeReason.Load(); p != nil {
		return *p
	}
	if c.err == nil {
		return "closed"
	}
	var ce websocket.CloseError
	if errors.As(c.err, &ce) {
		return fmt.Sprintf("server closed: %d %s", ce.Code, ce.Reason)
	}
	return c.err.Error()
}
