package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfileEnv: with $CHRONICLE_CPUPROFILE set, SignalContext starts the CPU profile
// and its stop function writes it (a gzipped pprof protobuf).
func TestCPUProfileEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpu.pprof")
	t.Setenv(CPUProfileEnv, p)
	_, stop := SignalContext(slog.New(slog.DiscardHandler))
	x := 0
	for i := range 20_000_000 {
		x += i % 7
	}
	_ = x
	stop()
	stop() // twice is harmless
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile of %d bytes is not gzip", len(b))
	}
}
