package etl

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

// Decoding ahead: on a machine with a second core, a goroutine reads the journal with its
// own source, from where the refinery stands to the end of what is committed, and decodes
// every message into a ring that the refinery takes from in journal order. Decoding is a
// pure function of a message's bytes, so the refinery's output and state do not depend on
// it: the refinery still reads every frame itself (its position, segment hashes and
// checkpoints are its own), and takes a message's decoding from the ring when the entry
// there is the frame it read, or decodes it itself (when the goroutine has stopped, or was
// never started). A live refinery starts one on a backlog, which runs to the end of what
// was committed.
//
// The ring is one producer, one consumer, the producer's index published at each entry and
// the consumer's every aheadPublish:
// handing batches over channels made the two goroutines take turns on one core (the
// scheduler runs a goroutine a channel wakes on the waker's core), where they must run side
// by side. The producer, when the ring is full, spins briefly, then yields, then sleeps.
// The refinery never waits for it: when the entry it needs is not there yet (the goroutine
// fell behind, or the machine's other work took its core), it decodes the message itself
// and says how far it got, and the goroutine skips up to there. When, over a few thousand
// messages, the refinery decoded three in four itself, the goroutine has no core of its own
// (the machine's other work takes it) and stops: its reading and decoding would only take
// time from the refinery's.

const (
	aheadRing    = 1024 // entries: the goroutine runs at most this far ahead
	aheadPublish = 32   // entries the consumer takes between publications of its index
	aheadLead    = 64   // messages the goroutine skips, once the consumer caught it, to lead again
	aheadWindow  = 4096 // messages over which the goroutine judges whether it helps
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

// ahead is one run of the decoding goroutine.
type ahead struct {
	ring   [aheadRing]decoded
	_      [64]byte
	head   atomic.Uint64 // entries written (producer)
	_      [56]byte
	tail   atomic.Uint64 // entries taken (consumer)
	_      [56]byte
	quit   atomic.Bool   // the producer has stopped: head is final
	stop   atomic.Bool   // the consumer asks the producer to stop
	behind atomic.Uint64 // frameKey of the last message the consumer decoded itself
	exited chan struct{}

	// Consumer side.
	taken   uint64 // entries taken, published to tail every aheadPublish
	avail   uint64 // head as last loaded
	stopped bool   // the producer stopped and every entry was taken
}

// startAhead starts decoding the journal from segment seg (its header's created_ns, for
// identity) at offset off.
func startAhead(v venue.Venue, dir string, files []string, seg string, created, off int64) *ahead {
	a, _ := aheadPool.Get().(*ahead)
	if a == nil {
		a = new(ahead)
	}
	a.head.Store(0)
	a.tail.Store(0)
	a.quit.Store(false)
	a.stop.Store(false)
	a.behind.Store(0)
	a.exited = make(chan struct{})
	a.taken, a.avail, a.stopped = 0, 0, false
	go a.run(v, &source{dir: dir, files: files}, seg, created, off)
	return a
}

// aheadPool keeps rings between runs: each entry's level lists have grown to the largest
// message it held, and a new ring would grow them again (and give the collector work).
var aheadPool sync.Pool

// wait spins, then yields, then sleeps, until cond holds or the other side is gone.
func wait(cond func() bool, gone *atomic.Bool) bool {
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		if gone.Load() {
			return cond()
		}
		switch {
		case i < 100:
		case i < 2000:
			runtime.Gosched()
		default:
			time.Sleep(50 * time.Microsecond)
		}
	}
}

func (a *ahead) run(v venue.Venue, src *source, seg string, created, off int64) {
	defer close(a.exited)
	defer a.quit.Store(true)
	defer src.close()
	if err := src.resume(seg, created, off); err != nil {
		return // the refinery finds the same fault itself
	}
	var head, room uint64 // entries written; the first entry that is not free
	var lastBehind uint64 // the consumer's last behind mark seen
	lead := 0             // messages still to skip to be ahead of the consumer again
	var seen, lost int    // messages in this window, and those the consumer decoded itself
	windows := 0
	for !a.stop.Load() {
		rec, status, err := src.next()
		if err != nil || status == statusEnd || status == statusIdle {
			break
		}
		if status != statusFrame || rec.TypeID != format.JournalMessage {
			continue
		}
		if seen++; seen == aheadWindow {
			// (The first window is the start, where the consumer is ahead while this
			// goroutine opens the journal.)
			if windows++; windows > 1 && 4*lost > 3*seen {
				// The consumer decoded most of them itself: this goroutine does not get a
				// core of its own (the machine's other work has it), and its reading and
				// decoding only take time from the refinery's. Stop.
				break
			}
			seen, lost = 0, 0
		}
		if b := a.behind.Load(); b != lastBehind || lead > 0 {
			if b != lastBehind {
				// The consumer got ahead and decodes what it reaches itself: skip past
				// it, and a stretch beyond, to be ahead of it again.
				lastBehind, lead = b, aheadLead
			}
			if frameKey(src.seg.Seq, rec.Offset) <= b {
				lost++
				continue
			}
			if lead > 0 {
				lead--
				lost++
				continue
			}
		}
		if head == room {
			a.head.Store(head)
			if !wait(func() bool { room = a.tail.Load() + aheadRing; return head < room }, &a.stop) {
				break
			}
		}
		d := &a.ring[head%aheadRing]
		d.seg, d.off = src.seg.Seq, rec.Offset
		d.err = v.Decode(rec.Payload, &d.msg)
		d.stream, d.symbol = span(rec.Payload, d.msg.Stream), span(rec.Payload, d.msg.Symbol)
		d.msg.Stream, d.msg.Symbol = nil, nil // the payload is this source's: offsets only
		head++
		a.head.Store(head) // each entry at once: the consumer may be close behind
	}
	a.head.Store(head)
}

// frameKey orders frames across segments: the segment's sequence number above its offset
// (segments are at most format.DefaultMaxSize, far below 2^40 bytes).
func frameKey(seg uint64, off int64) uint64 { return seg<<40 | uint64(off) }

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
		if a.taken == a.avail {
			if a.stopped {
				return false, nil
			}
			a.tail.Store(a.taken) // every entry before is free again
			for i := 0; i < 64 && a.taken == a.avail; i++ {
				a.avail = a.head.Load()
			}
			if a.taken == a.avail {
				if a.quit.Load() {
					if a.avail = a.head.Load(); a.taken == a.avail {
						a.stopped = true
						return false, nil
					}
				} else {
					// The goroutine is behind (or off its core): do not wait for it; it
					// skips what the refinery decoded itself.
					a.behind.Store(frameKey(seg, off))
					return false, nil
				}
			}
		}
		d := &a.ring[a.taken%aheadRing]
		switch {
		case d.seg < seg || d.seg == seg && d.off < off:
			a.taken++ // a message the refinery passed (it cannot: every one is taken in order)
			continue
		case d.seg != seg || d.off != off:
			return false, nil // the goroutine is past this frame: not a message it read
		}
		if a.taken++; a.taken%aheadPublish == 0 {
			// The entry just taken stays in use until the next take: publish up to the
			// one before it.
			a.tail.Store(a.taken - 1)
		}
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

// close stops the goroutine, waits for it and gives the ring back to the pool: the caller
// drops its pointer.
func (a *ahead) close() {
	if a == nil {
		return
	}
	a.stop.Store(true)
	<-a.exited
	a.stopped = true
	aheadPool.Put(a)
}

// done reports whether the goroutine has stopped and every entry was taken.
func (a *ahead) done() bool { return a == nil || a.stopped }
