package feed

import (
	"sync/atomic"
	"time"
)

// wallClock is the feed's receive-time clock: the wall clock (records are stamped with
// real time, and segments are named and rolled by it), made monotonic. A step backwards
// (NTP correcting a fast clock) holds the clock at its last reading until the wall clock
// catches up, so record times never decrease within the journal and segments never
// overlap; a step forwards is taken as it comes (the clock was slow). Timers, backoffs and
// connection ages use Go's monotonic clock and are not affected either way.
type wallClock struct {
	last atomic.Int64
	wall func() int64 // nil: time.Now
}

// Now returns the current time in ns since the epoch, never below an earlier reading.
func (c *wallClock) Now() int64 {
	for {
		l := c.last.Load()
		n := time.Now().UnixNano()
		if c.wall != nil {
			n = c.wall()
		}
		if n <= l {
			return l
		}
		if c.last.CompareAndSwap(l, n) {
			return n
		}
	}
}

// Floor makes every later reading at least t (the newest segment's start on restart).
func (c *wallClock) Floor(t int64) {
	for {
		l := c.last.Load()
		if t <= l || c.last.CompareAndSwap(l, t) {
			return
		}
	}
}
