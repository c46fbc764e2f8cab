package s3test

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// FaultKind is how a Proxy breaks a response.
type FaultKind int

const (
	// Cut closes the connection (FIN): the client sees the body end early.
	Cut FaultKind = iota + 1
	// Reset aborts the connection (RST): the client sees "connection reset".
	Reset
	// Stall stops relaying and holds the connection open until the client
	// gives up on it (or the proxy closes).
	Stall
)

func (k FaultKind) String() string {
	switch k {
	case Cut:
		return "cut"
	case Reset:
		return "reset"
	case Stall:
		return "stall"
	}
	return "none"
}

// Fault says which connections a Proxy breaks and how.
type Fault struct {
	Kind FaultKind
	// After is the number of response body bytes relayed before the fault:
	// bytes after the end of the first response header on the connection.
	After int64
	// Conns is how many connections, counted from the next one accepted, are
	// broken; later ones are relayed untouched.
	Conns int
	// OnFault, when set, runs just before the fault hits the n-th broken
	// connection (1-based), on the proxy's goroutine: the client is waiting
	// for more bytes meanwhile (to replace the object, say).
	OnFault func(n int)
}

// Proxy is a TCP proxy on loopback in front of a server: a client pointed at
// Endpoint talks to the server unchanged (SigV4 signs the Host header the
// client sends, which the proxy passes through), except for the connections a
// Fault breaks mid-body, the way a flaky network or middlebox does.
type Proxy struct {
	// Endpoint is the proxy's base URL, Addr its host:port.
	Endpoint, Addr string

	target string
	l      net.Listener
	t      testing.TB
	wg     sync.WaitGroup
	done   chan struct{}

	mu       sync.Mutex
	fault    Fault
	broken   int // connections broken so far under the current fault
	accepted int
	faults   int
	conns    map[net.Conn]struct{}
}

// NewProxy starts a proxy to s on a free loopback port; it is closed when the
// test ends.
func (s *Server) NewProxy() *Proxy {
	s.t.Helper()
	return StartProxy(s.t, s.Addr)
}

// StartProxy starts a proxy to target (host:port) on a free loopback port; it
// is closed when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: proxy listen: %v", err)
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, l: l, t: t, done: make(chan struct{}),
		conns: map[net.Conn]struct{}{}}
	p.Endpoint = "http://" + p.Addr
	t.Cleanup(p.Close)
	p.wg.Go(p.accept)
	return p
}

// Break arms f for the connections accepted from now on, replacing any
// earlier fault. Connections already open, such as a client's kept-alive
// ones, are relayed untouched: close the client's idle connections first.
func (p *Proxy) Break(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.broken = f, 0
}

// Accepted is the number of connections the proxy accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Faults is the number of faults the proxy injected.
func (p *Proxy) Faults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Close stops accepting, drops every connection and waits for the relays.
func (p *Proxy) Close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c for Close; false when the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *Proxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.mu.Lock()
		p.accepted++
		f, n := p.fault, 0
		if f.Kind != 0 && p.broken < f.Conns {
			p.broken++
			n = p.broken
		}
		p.mu.Unlock()
		p.wg.Go(func() { p.relay(c, f, n) })
	}
}

// relay copies both ways; when n > 0 it breaks the server-to-client stream
// with f once f.After body bytes have passed.
func (p *Proxy) relay(client net.Conn, f Fault, n int) {
	server, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(server) {
		if server != nil {
			server.Close()
		}
		p.untrack(client)
		return
	}
	defer p.untrack(client, server)
	up := make(chan struct{})
	p.wg.Go(func() {
		defer close(up)
		io.Copy(server, client)
		// The client is gone (or gave up on a stall): end the other direction too.
		server.Close()
		client.Close()
	})
	if n == 0 {
		io.Copy(client, server)
	} else {
		p.relayBroken(client, server, f, n, up)
	}
	client.Close()
	server.Close()
	<-up
}

func (p *Proxy) relayBroken(client, server net.Conn, f Fault, n int, up <-chan struct{}) {
	buf := make([]byte, 32<<10)
	var head []byte // header bytes seen so far, until the blank line
	inBody := false
	var body int64
	for {
		k, err := server.Read(buf)
		chunk := buf[:k]
		if !inBody && k > 0 {
			head = append(head, chunk...)
			if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
				inBody = true
				hdrInChunk := len(chunk) - (len(head) - (i + 4))
				if _, werr := client.Write(chunk[:hdrInChunk]); werr != nil {
					return
				}
				chunk = chunk[hdrInChunk:]
				head = nil
			} else {
				if _, werr := client.Write(chunk); werr != nil {
					return
				}
				chunk = nil
			}
		}
		if inBody && len(chunk) > 0 {
			if left := f.After - body; int64(len(chunk)) >= left {
				if _, werr := client.Write(chunk[:left]); werr != nil {
					return
				}
				p.inject(client, f, n, up)
				return
			}
			if _, werr := client.Write(chunk); werr != nil {
				return
			}
			body += int64(len(chunk))
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) inject(client net.Conn, f Fault, n int, up <-chan struct{}) {
	if f.OnFault != nil {
		f.OnFault(n)
	}
	p.mu.Lock()
	p.faults++
	p.mu.Unlock()
	switch f.Kind {
	case Reset:
		if tc, ok := client.(*net.TCPConn); ok {
			tc.SetLinger(0) // close sends RST
		}
	case Stall:
		// Relay nothing more until the client hangs up (the upstream copy
		// then ends) or the proxy closes.
		select {
		case <-up:
		case <-p.done:
		}
	}
}
