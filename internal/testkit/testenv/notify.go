package testenv

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NotifySocket listens where a daemon started with env (NOTIFY_SOCKET=...) reports its
// state the systemd way; the channel is closed once it sent READY=1, after which SIGTERM
// means a clean shutdown rather than the default death of a process still starting.
func NotifySocket(t testing.TB) (env string, ready <-chan struct{}) {
	t.Helper()
	return NotifySocketAt(t, filepath.Join(t.TempDir(), "n"))
}

// NotifySocketAt is NotifySocket listening at path p, which every user may write to (a
// daemon that drops to a service user still reaches it).
func NotifySocketAt(t testing.TB, p string) (env string, ready <-chan struct{}) {
	t.Helper()
	// A short path: unix socket names are limited to 108 bytes.
	if len(p) > 100 {
		t.Fatalf("notify socket path too long: %s", p)
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
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
