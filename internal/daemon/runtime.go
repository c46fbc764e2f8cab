package daemon

import (
	"os"
	"runtime/debug"
	"runtime/pprof"
)

// CPUProfile writes a Go CPU profile of the run to path until the returned stop is called;
// an empty path profiles nothing.
func CPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// Memory sets the runtime's soft memory limit and, unless the environment's GOGC says
// otherwise, its GC percent: a daemon whose caches are live heap sets the limit a little
// above them, so the collector does not let the heap grow to twice the caches first.
func Memory(limit int64, gcPercent int) {
	debug.SetMemoryLimit(limit)
	if os.Getenv("GOGC") == "" && gcPercent > 0 {
		debug.SetGCPercent(gcPercent)
	}
}
