// Package proc runs the real binaries in integration tests: the output kept, the exit
// observable any number of times, readiness told the systemd way (testenv.NotifySocket),
// SIGTERM with a clean exit required, and no process left running after its test.
package proc

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"golang.org/x/sys/unix"
)

// Proc is a started process.
type Proc struct {
	Cmd *exec.Cmd
	// Ready is closed once the process has sent READY=1: a daemon is up, and SIGTERM
	// means a clean shutdown rather than the default death of a process still starting.
	Ready <-chan struct{}

	out  *buffer // nil when the caller set Stdout
	mp   string  // the mount point of a Mount daemon
	done chan struct{}
	err  error
}

// Start starts cmd with NOTIFY_SOCKET set and, unless the caller set cmd.Stdout, its
// output (stdout and stderr) kept for Output. It is killed at the end of the test if it
// still runs.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	return start(t, cmd, "")
}

// StartNotify is Start with the notify socket at path notify (testenv.NotifySocketAt).
func StartNotify(t testing.TB, cmd *exec.Cmd, notify string) *Proc {
	t.Helper()
	return start(t, cmd, notify)
}

func start(t testing.TB, cmd *exec.Cmd, notify string) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil {
		p.out = &buffer{}
		cmd.Stdout, cmd.Stderr = p.out, p.out
	}
	var env string
	if notify == "" {
		env, p.Ready = testenv.NotifySocket(t)
	} else {
		env, p.Ready = testenv.NotifySocketAt(t, notify)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, env)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

// Done is closed when the process has exited; Err is then its exit.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit (nil: status 0), once Done is closed.
func (p *Proc) Err() error { return p.err }

// Wait waits for the exit and returns it.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Output is what the process has written so far ("" when the caller took its output).
func (p *Proc) Output() string {
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// Name is the binary's base name, for messages.
func (p *Proc) Name() string { return filepath.Base(p.Cmd.Path) }

// Stop sends SIGTERM and fails the test unless the process exits 0 within timeout (it is
// then killed).
func (p *Proc) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.Name(), p.err, p.Output())
		}
	case <-time.After(timeout):
		p.Cmd.Process.Kill()
		t.Fatalf("%s did not stop within %v of SIGTERM:\n%s", p.Name(), timeout, p.Output())
	}
}

// Run runs a binary to completion and fails the test on a non-zero exit; it returns the
// output.
func Run(t testing.TB, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// Mount starts cmd, a `chronicle-fs mount` of mp, and waits up to timeout until mp
// serves (mp/v1 exists; polled every millisecond, as benchmarks time the mount), failing
// the test if the daemon exits first. At the end of the test it is unmounted (Unmount)
// and, if the test failed, its log is logged. log returns the daemon's log (nil: the
// output Start kept).
func Mount(t testing.TB, cmd *exec.Cmd, mp string, timeout time.Duration, log func() string) *Proc {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := Start(t, cmd)
	p.mp = mp
	if log == nil {
		log = p.Output
	}
	t.Cleanup(func() {
		p.Unmount()
		if t.Failed() {
			t.Logf("chronicle-fs log:\n%s", log())
		}
	})
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(filepath.Join(mp, "v1")); err == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("chronicle-fs exited: %v\n%s", p.err, log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount not ready after %v\n%s", timeout, log())
		}
		time.Sleep(time.Millisecond)
	}
}

// Unmount ends a Mount daemon: SIGTERM and, if it has not exited within 30 s, a kill and
// a lazy unmount.
func (p *Proc) Unmount() {
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.Cmd.Process.Kill()
		unix.Unmount(p.mp, unix.MNT_DETACH)
	}
}

// buffer is a bytes.Buffer that the process's writes and the test's reads may share.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
