package testkit

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Loops runs functions over and over, each in its own goroutine, until Stop: readers that
// hammer files while something else moves or changes them. A function's first error ends
// its loop and fails the test (Errorf, so the other loops go on).
type Loops struct {
	t      testing.TB
	stop   chan struct{}
	wg     sync.WaitGroup
	Passes atomic.Int64 // calls that returned nil
	Errs   atomic.Int64 // loops ended by an error
}

// NewLoops returns a set of loops that fail t.
func NewLoops(t testing.TB) *Loops { return &Loops{t: t, stop: make(chan struct{})} }

// Go starts calling fn in a loop.
func (l *Loops) Go(fn func() error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			if err := fn(); err != nil {
				l.Errs.Add(1)
				l.t.Errorf("%v", err)
				return
			}
			l.Passes.Add(1)
		}
	}()
}

// Stop ends every loop after its current call and waits for them.
func (l *Loops) Stop() {
	close(l.stop)
	l.wg.Wait()
}
