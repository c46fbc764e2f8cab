package etl

import (
	"sync/atomic"
	"unsafe"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

// Decoding ahead: on a machine with a second core, a goroutine reads the journal with its
// own source, from where the refinery stands to the end of what is committed, and decodes
// every message into batches that the refinery takes in journal order. Decoding is a pure
// function of a message's bytes, so the refinery's output and state do not depend on it:
// the refinery still reads every frame itself (its position, segment hashes and checkpoints
// are its own), and takes a message's decoding from the batches when the frame there is the
// one it read, or decodes it itself (when the goroutine has stopped, or was never started).
// A live refinery starts one on a backlog, which runs to the end of what was committed.

const (
	aheadBatch   = 128 // messages per batch
	aheadBatches = 8   // batches in flight: the goroutine runs at most this far ahead
	// aheadBacklog is the backlog (committed journal bytes not yet refined) at which a
	// live refinery starts decoding ahead.
	aheadBacklog = 4 << 20
)

// aheadTaken counts the messages the refinery took decoded ahead (tests).
var aheadTaken atomic.Int64

// decoded is one message decoded ahead: where it is in the journal, its decoding (Bids and
// Asks owned by the entry; Stream and Symbol as offsets into the payload) and error.
type decoded struct {
	seg            uint64
	off            int64
	msg            venue.Message
	err            error
	stream, symbol [2]int32 // offset in the payload and length; -1 when nil
}

type decodedBatch struct {
	n     int
	items [aheadBatch]decoded
}

// ahead is one run of the decoding goroutine.
type ahead struct {
	full    chan *decodedBatch // in journal order; closed when the goroutine stops
	free    chan *decodedBatch
	stop    chan struct{}
	cur     *decodedBatch // the batch being taken from
	next    int           // its next entry
	stopped bool          // full is closed and drained
}

// startAhead starts decoding the journal from segment seg (its header's created_ns, for
// identity) at offset off.
func startAhead(v venue.Venue, dir string, files []string, seg string, created, off int64) *ahead {
	a := &ahead{full: make(chan *decodedBatch, aheadBatches), free: make(chan *decodedBatch, aheadBatches), stop: make(chan struct{})}
	for range aheadBatches {
		a.free <- &decodedBatch{}
	}
	go a.run(v, &source{dir: dir, files: files}, seg, created, off)
	return a
}

func (a *ahead) run(v venue.Venue, src *source, seg string, created, off int64) {
	defer close(a.full)
	defer src.close()
	if err := src.resume(seg, created, off); err != nil {
		return // the refinery finds the same fault itself
	}
	var b *decodedBatch
	send := func() bool {
		if b == nil || b.n == 0 {
			return true
		}
		select {
		case a.full <- b:
			b = nil
			return true
		case <-a.stop:
			return false
		}
	}
	for {
		rec, status, err := src.next()
		if err != nil || status == statusEnd || status == statusIdle {
			send()
			return
		}
		if status != statusFrame || rec.TypeID != format.JournalMessage {
			continue
		}
		if b == nil {
			select {
			case b = <-a.free:
				b.n = 0
			case <-a.stop:
				return
			}
		}
		d := &b.items[b.n]
		b.n++
		d.seg, d.off = src.seg.Seq, rec.Offset
		d.err = v.Decode(rec.Payload, &d.msg)
		d.stream, d.symbol = span(rec.Payload, d.msg.Stream), span(rec.Payload, d.msg.Symbol)
		d.msg.Stream, d.msg.Symbol = nil, nil // the payload is this source's: offsets only
		if b.n == aheadBatch && !send() {
			return
		}
	}
}

// span locates sub, which Decode made alias payload, in payload: offset and length, or -1
// when sub is nil or not inside payload.
func span(payload, sub []byte) [2]int32 {
	if sub == nil || len(payload) == 0 {
		return [2]int32{-1, 0}
	}
	off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(sub))) - uintptr(unsafe.Pointer(unsafe.SliceData(payload))))
	if off < 0 || off+int64(len(sub)) > int64(len(payload)) {
		return [2]int32{-1, 0}
	}
	return [2]int32{int32(off), int32(len(sub))}
}

// take returns the decoding of the message at (seg, off) whose payload is payload, into
// m, when the goroutine has it; ok is false when the refinery must decode it itself.
// m's Bids and Asks then belong to the entry until the next take.
func (a *ahead) take(seg uint64, off int64, payload []byte, m *venue.Message) (ok bool, err error) {
	for {
		if a.cur == nil || a.next == a.cur.n {
			if a.stopped {
				return false, nil
			}
			if a.cur != nil {
				a.free <- a.cur
				a.cur = nil
			}
			b, open := <-a.full
			if !open {
				a.stopped = true
				return false, nil
			}
			a.cur, a.next = b, 0
		}
		d := &a.cur.items[a.next]
		switch {
		case d.seg < seg || d.seg == seg && d.off < off:
			a.next++ // a message the refinery passed (it cannot: every one is taken in order)
			continue
		case d.seg != seg || d.off != off:
			return false, nil // the goroutine is past this frame: not a message it read
		}
		a.next++
		*m = d.msg
		m.Stream, m.Symbol = slice(payload, d.stream), slice(payload, d.symbol)
		return true, d.err
	}
}

func slice(payload []byte, s [2]int32) []byte {
	if s[0] < 0 || int(s[0]+s[1]) > len(payload) {
		return nil
	}
	return payload[s[0] : s[0]+s[1] : s[0]+s[1]]
}

// close stops the goroutine and waits for it (it closes full when it returns).
func (a *ahead) close() {
	if a == nil {
		return
	}
	close(a.stop)
	for range a.full {
	}
	a.stopped = true
}

// done reports whether the goroutine has stopped and every batch was taken.
func (a *ahead) done() bool { return a == nil || a.stopped }
