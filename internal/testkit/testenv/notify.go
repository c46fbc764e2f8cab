package testenv

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// NotifySocket listens where a daemon started with env (NOTIFY_SOCKET=...) reports its
// state the systemd way; the channel is closed once it sent READY=1, after which SIGTERM
// means a clean shutdown rather than the default death of a process still starting.
func NotifySocket(t testing.TB) (env string, ready <-chan struct{}) {
	t.Helper()
	// A short path: unix socket names are limited to 108 bytes.
	p := filepath.Join(t.TempDir(), "n")
	if len(p) > 100 {
		t.Fatalf("notify socket path too long: %s", p)
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				if l == "READY=1" {
					close(ch)
					return
				}
			}
		}
	}()
	return "NOTIFY_SOCKET=" + p, ch
}
