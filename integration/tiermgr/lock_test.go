package tiermgr

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
)

// logProc is a chronicle-tier process whose JSON log lines are collected.
type logProc struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	all   chan []map[string]any // every line, once the process has exited
	exit  chan int
}

func startProc(t *testing.T, args ...string) *logProc {
	t.Helper()
	p := &logProc{cmd: exec.Command(testenv.Bin("chronicle-tier"), args...), lines: make(chan map[string]any, 1000), all: make(chan []map[string]any, 1), exit: make(chan int, 1)}
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	go func() {
		var all []map[string]any
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"msg": "raw", "text": sc.Text()}
			}
			all = append(all, m)
			select {
			case p.lines <- m:
			default:
			}
		}
		close(p.lines)
		p.cmd.Wait()
		p.all <- all
		p.exit <- p.cmd.ProcessState.ExitCode()
	}()
	return p
}

// waitFor returns the first log line with message msg.
func (p *logProc) waitFor(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				t.Fatalf("pid %d exited before logging %q", p.cmd.Process.Pid, msg)
			}
			if m["msg"] == msg {
				return m
			}
		case <-deadline:
			t.Fatalf("pid %d: no %q log line within %v", p.cmd.Process.Pid, msg, timeout)
		}
	}
}

// TestOneOwnerPerTree starts two `chronicle-tier run` on one tree at the same moment: one
// runs, the other exits 3 naming the first's pid. A third process started while the
// winner is in the middle of an upload (its intent and objects exist) exits the same way
// and leaves them alone; a fourth with --wait queues behind the winner and takes over when
// it stops. The partition ends in the remote tier, identical, with no orphan object.
func TestOneOwnerPerTree(t *testing.T) {
	store := testkit.FileStore(t)
	e := lt.NewEnv(t, "", store)
	p := lt.NewPartition(t, key("2023-01-01"), 200000, 5)
	e.Place(t, p, layout.Cold)
	zst, err := os.Stat(filepath.Join(testkit.PartDir(e.Roots.Cold, p.Key), layout.ZstName))
	if err != nil {
		t.Fatal(err)
	}
	// The upload reads the .zst once, through the limiter's 1 MiB burst: about 5 s.
	if zst.Size() < 3<<19 {
		t.Fatalf("the .zst has %d bytes: too small to upload slowly", zst.Size())
	}
	bw := (zst.Size() - 1<<20) / 5
	args := append(config(t, e, nil, ""), "--now", "2026-01-01", "--metrics-addr", "", "--scan-interval", "1h", "--bandwidth", fmt.Sprint(bw))

	a, b := startProc(t, append(args, "run")...), startProc(t, append(args, "run")...)
	var winner, loser *logProc
	select {
	case code := <-a.exit:
		winner, loser = b, a
		a.exit <- code
	case code := <-b.exit:
		winner, loser = a, b
		b.exit <- code
	case <-time.After(20 * time.Second):
		t.Fatal("two chronicle-tier run on one tree both kept running")
	}
	checkLocked(t, loser, winner)
	winner.waitFor(t, "move start", 20*time.Second)
	dir := testkit.PartDir(e.Roots.Cold, p.Key)
	intent := filepath.Join(dir, ".book.q.zst.remote.json.tmp-tier-intent")
	deadline := time.Now().Add(10 * time.Second)
	for !fileExists(intent) {
		if time.Now().After(deadline) {
			t.Fatal("no upload intent while the upload runs")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A third process mid-upload: refused before it recovers anything.
	c := startProc(t, append(args, "apply")...)
	checkLocked(t, c, winner)
	if !fileExists(intent) || !fileExists(filepath.Join(dir, layout.ZstName)) {
		t.Fatal("the refused process touched the upload in progress")
	}

	// A fourth waits, and takes over once the winner is gone.
	d := startProc(t, append(args, "--wait", "apply")...)
	d.waitFor(t, "waiting for the tier tree", 10*time.Second)
	winner.waitFor(t, "move done", 60*time.Second)
	winner.cmd.Process.Signal(syscall.SIGTERM)
	if code := <-winner.exit; code != 0 {
		t.Fatalf("winner exited %d after SIGTERM", code)
	}
	select {
	case code := <-d.exit:
		if code != 0 {
			t.Fatalf("--wait apply exited %d: %v", code, <-d.all)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("--wait apply did not finish after the holder exited")
	}
	if tier := e.Check(t, []lt.Partition{p})[p.Key]; tier != layout.Remote {
		t.Fatalf("partition in %s, want remote", tier)
	}
}

// checkLocked: loser exited 3 and its log names the tier lock and the winner's pid.
func checkLocked(t *testing.T, loser, winner *logProc) {
	t.Helper()
	var code int
	select {
	case code = <-loser.exit:
	case <-time.After(20 * time.Second):
		t.Fatal("the second process did not exit")
	}
	all := <-loser.all
	var text []string
	for _, m := range all {
		b, _ := json.Marshal(m)
		text = append(text, string(b))
	}
	log := strings.Join(text, "\n")
	want := fmt.Sprintf("pid %d", winner.cmd.Process.Pid)
	if code != 3 || !strings.Contains(log, lifecycle.ErrLocked.Error()) || !strings.Contains(log, want) || !strings.Contains(log, lifecycle.LockName) {
		t.Fatalf("second process: exit %d, want 3 and a log naming the lock and %q:\n%s", code, want, log)
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
