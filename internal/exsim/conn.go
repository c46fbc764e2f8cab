package exsim

import (
	"bufio"
	"encoding/binary"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

func newConn(nc net.Conn, br *bufio.Reader, path string, streams []string, log *slog.Logger) *Conn {
	c := &Conn{nc: nc, br: br, path: path, streams: map[string]bool{}, names: streams, log: log,
		opened: time.Now(), dead: make(chan struct{}), readDone: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	for _, s := range streams {
		c.streams[s] = true
	}
	return c
}

// ID is the connection's accept order (0-based).
func (c *Conn) ID() int { return c.id }

// Streams are the streams the client subscribed to in its URL (or by request).
func (c *Conn) Streams() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// Path is the URL path the client connected to.
func (c *Conn) Path() string { return c.path }

// Opened is when the connection was accepted.
func (c *Conn) Opened() time.Time { return c.opened }

// Sent returns the indices of messages fully written to this connection, in order
// (-1 for injected frames, -3 for book snapshots the simulator rendered).
func (c *Conn) Sent() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sent...)
}

// SentAt returns when each entry of Sent finished writing (ns, wall clock).
func (c *Conn) SentAt() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.sentAt...)
}

// Pongs is the number of pong frames received (answers to the server's pings).
func (c *Conn) Pongs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pongs
}

// Pings is the number of ping frames the client sent.
func (c *Conn) Pings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

// Closed reports whether the connection has ended.
func (c *Conn) Closed() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// Wait blocks until the connection has ended.
func (c *Conn) Wait() { <-c.dead }

// pending counts frames queued or being written.
func (c *Conn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	return len(c.q) + c.writing
}

func (c *Conn) subscribed(stream string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[stream]
}

// idleFor is how long since the connection last wrote (or was accepted).
func (c *Conn) idleFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.lastWrite
	if last == 0 {
		last = c.opened.UnixNano()
	}
	if len(c.q) > 0 || c.writing > 0 {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - last)
}

func (c *Conn) setTrickle(chunk int, d time.Duration) {
	c.mu.Lock()
	c.trickle, c.trickleD = chunk, d
	c.mu.Unlock()
}

func (c *Conn) enqueue(it item) {
	c.mu.Lock()
	if !c.dropping && !c.closed {
		c.q = append(c.q, it)
		c.cond.Signal()
	}
	c.mu.Unlock()
}

// enqueueFront puts a control frame ahead of queued data (pongs must not wait).
func (c *Conn) enqueueFront(it item) {
	c.mu.Lock()
	if !c.closed {
		c.q = append([]item{it}, c.q...)
		c.cond.Signal()
	}
	c.mu.Unlock()
}

// drop ends the connection after the frame being written: queued messages are never
// sent; everything written is delivered before the stream ends.
func (c *Conn) drop(closeFrame bool, code uint16) {
	c.mu.Lock()
	if c.dropping || c.closed {
		c.mu.Unlock()
		return
	}
	c.dropping, c.closeFr, c.closeCd = true, closeFrame, code
	c.q = nil
	c.cond.Signal()
	c.mu.Unlock()
}

// Drop ends this connection the way DropConnections ends every one: messages already
// written are delivered, then the TCP stream ends (after a close frame, code 1001, with
// closeFrame).
func (c *Conn) Drop(closeFrame bool) { c.drop(closeFrame, 1001) }

// kill closes the socket at once.
func (c *Conn) kill() {
	c.mu.Lock()
	c.closed = true
	c.cond.Signal()
	c.mu.Unlock()
	c.nc.Close()
}

func (c *Conn) writeLoop() {
	defer c.finish()
	for {
		c.mu.Lock()
		for len(c.q) == 0 && !c.dropping && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		if c.dropping {
			closeFr, code := c.closeFr, c.closeCd
			c.mu.Unlock()
			if closeFr {
				p := make([]byte, 2)
				binary.BigEndian.PutUint16(p, code)
				c.nc.Write(frame(opClose, append(p, "going away"...)))
			}
			// FIN after everything written, so nothing already sent is lost; then give
			// the client a moment to read before the socket goes.
			if tc, ok := c.nc.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			select {
			case <-c.readDone:
			case <-time.After(2 * time.Second):
			}
			return
		}
		if c.bulk && c.trickle == 0 {
			// Load mode: everything queued in one writev, nothing logged.
			batch := c.q
			c.q = nil
			c.writing = len(batch)
			c.mu.Unlock()
			bufs := make(net.Buffers, len(batch))
			for i, it := range batch {
				bufs[i] = it.frame
			}
			_, err := bufs.WriteTo(c.nc)
			now := time.Now().UnixNano()
			c.mu.Lock()
			c.writing = 0
			c.lastWrite = now
			c.mu.Unlock()
			if err != nil {
				c.log.Debug("exsim write", "conn", c.id, "err", err)
				return
			}
			continue
		}
		it := c.q[0]
		c.q = c.q[1:]
		chunk, pause := c.trickle, c.trickleD
		c.writing = 1
		c.mu.Unlock()
		err := c.write(it.frame, chunk, pause)
		now := time.Now().UnixNano()
		c.mu.Lock()
		c.writing = 0
		c.lastWrite = now
		if err == nil && (it.idx >= -1 || it.idx == -3) {
			c.sent = append(c.sent, it.idx)
			c.sentAt = append(c.sentAt, now)
		}
		c.mu.Unlock()
		if err != nil {
			c.log.Debug("exsim write", "conn", c.id, "err", err)
			return
		}
	}
}

func (c *Conn) write(b []byte, chunk int, pause time.Duration) error {
	if chunk <= 0 {
		_, err := c.nc.Write(b)
		return err
	}
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := c.nc.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if len(b) > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

func (c *Conn) finish() {
	c.mu.Lock()
	c.closed = true
	c.closedAt = time.Now()
	c.mu.Unlock()
	c.nc.Close()
	close(c.dead)
}

// readLoop answers the client's control frames; data frames (subscription requests) are
// ignored because streams come from the URL.
func (c *Conn) readLoop() {
	defer close(c.readDone)
	for {
		f, err := readClientFrame(c.br)
		if err != nil {
			if !strings.Contains(err.Error(), "use of closed") {
				c.log.Debug("exsim read", "conn", c.id, "err", err)
			}
			// A client that went away: stop writing too.
			c.mu.Lock()
			if !c.dropping {
				c.dropping = true
				c.q = nil
				c.cond.Signal()
			}
			c.mu.Unlock()
			return
		}
		switch f.op {
		case opPing:
			c.mu.Lock()
			c.pings++
			c.mu.Unlock()
			c.enqueueFront(item{idx: -2, frame: frame(opPong, f.payload)})
		case opPong:
			c.mu.Lock()
			c.pongs++
			c.mu.Unlock()
		case opText:
			if c.onText != nil {
				c.onText(f.payload)
			}
		case opClose:
			code := uint16(1000)
			if len(f.payload) >= 2 {
				code = binary.BigEndian.Uint16(f.payload)
			}
			c.drop(true, code)
		}
	}
}
