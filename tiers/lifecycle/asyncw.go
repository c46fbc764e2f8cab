package lifecycle

import (
	"errors"
	"io"
	"sync/atomic"
)

// asyncWriter moves file writes off the transcoder's ordered output loop: while the
// kernel is busy with one 1 MiB write (dirty-page throttling, journal commits), the
// encoders keep going. Up to queue buffers wait; Close flushes and returns the first
// write error.
type asyncWriter struct {
	w    io.Writer
	buf  []byte
	full chan []byte
	free chan []byte
	done chan struct{}
	err  error       // owned by the writer goroutine until done is closed
	bad  atomic.Bool // set once err is; lets Write stop the transcoder early
}

const (
	asyncBufSize = 1 << 20
	asyncQueue   = 16
)

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{w: w, full: make(chan []byte, asyncQueue), free: make(chan []byte, asyncQueue+1), done: make(chan struct{})}
	for range asyncQueue + 1 {
		a.free <- make([]byte, 0, asyncBufSize)
	}
	a.buf = <-a.free
	go func() {
		defer close(a.done)
		for b := range a.full {
			if a.err == nil {
				if _, a.err = a.w.Write(b); a.err != nil {
					a.bad.Store(true)
				}
			}
			a.free <- b[:0]
		}
	}()
	return a
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if a.bad.Load() {
		return 0, errWriteFailed
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(a.buf[len(a.buf):cap(a.buf)], p)
		a.buf = a.buf[:len(a.buf)+k]
		p = p[k:]
		if len(a.buf) == cap(a.buf) {
			a.full <- a.buf
			a.buf = <-a.free
		}
	}
	return n, nil
}

var (
	errClosed      = errors.New("async writer closed")
	errWriteFailed = errors.New("an earlier write failed")
)

// Close writes what is buffered, waits for the writer goroutine and reports its error.
func (a *asyncWriter) Close() error {
	if a.buf == nil {
		return errClosed
	}
	if len(a.buf) > 0 && !a.bad.Load() {
		a.full <- a.buf
	}
	a.buf = nil
	close(a.full)
	<-a.done
	return a.err
}
