// Package faults injects failures into the filesystem of Chronicle's writers (vfs.FS: the
// tier manager, the refinery, the feed) and the object store (objstore.Store), one numbered operation at a time, in the spirit of pebble's
// errorfs. A test first runs a scenario with a recording Injector to learn its sequence of
// operations, then replays it failing, corrupting or "crashing" at each index in turn.
package faults

import (
	"errors"
	"fmt"
	"sync"
)

// ErrInjected is returned by every operation the Injector fails.
var ErrInjected = errors.New("injected fault")

// Op names one kind of operation.
type Op uint8

const (
	OpCreate Op = iota
	OpOpen
	OpRead
	OpWrite
	OpSync
	OpClose
	OpMkdir
	OpRename
	OpRemove
	OpSyncDir
	OpReadDir
	OpStat
	OpPut
	OpHead
	OpGet
	OpDelete
	OpList
	OpChmod
	numOps
)

var opNames = [...]string{"create", "open", "read", "write", "fsync", "close", "mkdir", "rename",
	"remove", "fsync-dir", "readdir", "stat", "put", "head", "get", "delete", "list", "chmod"}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Mode is what happens at the target operation.
type Mode uint8

const (
	// Error fails the target operation with ErrInjected, without effect; later ones run.
	Error Mode = iota
	// Crash fails the target operation and every later one, as if the process had died
	// there: nothing after it reaches the disk or the server.
	Crash
	// Corrupt lets the target operation run but alters its data: a write or upload stores
	// one flipped bit, a read returns one, a Head reports a wrong size. Operations without
	// data fail as with Error.
	Corrupt
)

func (m Mode) String() string {
	switch m {
	case Error:
		return "error"
	case Crash:
		return "crash"
	case Corrupt:
		return "corrupt"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Event is one operation seen by the Injector.
type Event struct {
	Seq  int
	Op   Op
	Path string // file path, or "store:<key>" for object store operations
}

func (e Event) String() string { return fmt.Sprintf("#%d %s %s", e.Seq, e.Op, e.Path) }

// Injector numbers the operations that pass its filter and fails the Target-th one.
// The zero value (with Target -1 set by New) only records.
type Injector struct {
	// Filter selects the operations that count; nil counts every one.
	Filter func(Op, string) bool

	mu      sync.Mutex
	target  int
	mode    Mode
	seq     int
	events  []Event
	fired   *Event
	crashed bool
}

// New returns an Injector that fails operation number target (counting from 0) in mode;
// target < 0 never fails and only records.
func New(target int, mode Mode) *Injector { return &Injector{target: target, mode: mode} }

// Recorder returns an Injector that never fails.
func Recorder() *Injector { return New(-1, Error) }

// verdict is the fate of one operation.
type verdict uint8

const (
	pass verdict = iota
	fail
	corrupt
)

func (in *Injector) decide(op Op, path string) verdict {
	if in == nil {
		return pass
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.crashed {
		return fail
	}
	if in.Filter != nil && !in.Filter(op, path) {
		return pass
	}
	ev := Event{Seq: in.seq, Op: op, Path: path}
	in.seq++
	in.events = append(in.events, ev)
	if ev.Seq != in.target {
		return pass
	}
	in.fired = &ev
	switch in.mode {
	case Crash:
		in.crashed = true
		return fail
	case Corrupt:
		switch op {
		case OpWrite, OpRead, OpPut, OpHead, OpGet:
			return corrupt
		}
	}
	return fail
}

// Events returns the operations counted so far.
func (in *Injector) Events() []Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Event(nil), in.events...)
}

// Fired returns the operation that was failed or corrupted, if any.
func (in *Injector) Fired() (Event, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.fired == nil {
		return Event{}, false
	}
	return *in.fired, true
}

// Crashed reports whether a Crash fault fired.
func (in *Injector) Crashed() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.crashed
}

func injected(op Op, path string) error {
	return fmt.Errorf("%s %s: %w", op, path, ErrInjected)
}

// flip returns a copy of b with one bit changed (b itself is left alone: it may be the
// caller's source buffer).
func flip(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	c := append([]byte(nil), b...)
	c[len(c)/2] ^= 0x10
	return c
}
