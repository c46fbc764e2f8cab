package feed

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// feedBinary builds cmd/chronicle-feed into the test's temporary directory.
func feedBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chronicle-feed")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/chronicle-feed")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startProcess(t *testing.T, bin, cfgPath string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-format", "text")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stderr
}

// journalConns reads the journal while the writer runs, split by connection.
func journalConns(t *testing.T, dir string) []*conn {
	t.Helper()
	recs, err := readJournalErr(dir)
	if err != nil {
		t.Fatalf("journal unreadable while running: %v", err)
	}
	conns, _, _ := byConnection(t, recs)
	return conns
}

// TestKill9Restart kills the feed process with SIGKILL mid-stream and starts it again:
// the journal stays readable, the first connection's messages are a prefix of what was
// sent to it (at most the messages in flight are lost), the restarted process continues
// after the last whole record and journals everything sent to it, with no duplicates.
func TestKill9Restart(t *testing.T) {
	bin := feedBinary(t)
	s := newSim(t, exsim.Options{Records: ethCapture(t, 24000), Interval: 150 * time.Microsecond})
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	cfgPath := filepath.Join(dir, "chronicle.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[log]
level = "info"

[feed]
journal_dir = %q
ws_url = %q
rest_url = %q
symbols = ["ETHUSDT"]
metrics_addr = ""
chunk_size = 1048576
max_segment_size = 1073741824
reconnect_min = "5ms"
reconnect_max = "50ms"
`, jdir, s.WSURL(), s.RESTURL())), 0o644)

	start := time.Now()
	p1, _ := startProcess(t, bin, cfgPath)
	if !s.WaitConns(1, 20*time.Second) {
		t.Fatal("first process did not connect")
	}
	s.Play()
	waitFor(t, "3000 messages journaled", 20*time.Second, func() bool {
		c := journalConns(t, jdir)
		return len(c) == 1 && len(c[0].messages) >= 3000
	})
	p1.Process.Signal(syscall.SIGKILL)
	p1.Wait()
	s.Conns()[0].Wait()

	p2, stderr2 := startProcess(t, bin, cfgPath)
	if !s.WaitConns(1, 20*time.Second) || len(s.Conns()) != 2 {
		t.Fatalf("second process did not connect (%d connections)", len(s.Conns()))
	}
	<-s.Done()
	s.Flush(10 * time.Second)
	second := s.Conns()[1]
	var want2 int
	for _, i := range second.Sent() {
		if i >= 0 {
			want2++
		}
	}
	waitFor(t, "second process journaled everything sent to it", 20*time.Second, func() bool {
		c := journalConns(t, jdir)
		return len(c) == 2 && len(c[1].messages) >= want2
	})
	p2.Process.Signal(syscall.SIGTERM)
	if err := p2.Wait(); err != nil {
		t.Fatalf("second process exit: %v\n%s", err, stderr2)
	}

	recs := readJournal(t, jdir)
	conns, _, _ := byConnection(t, recs)
	if len(conns) != 2 || conns[0].connect.Session == conns[1].connect.Session {
		t.Fatalf("%d connections in the journal", len(conns))
	}
	seen := map[string]bool{}
	for k, sc := range s.Conns() {
		var sent [][]byte
		for _, i := range sc.Sent() {
			if i >= 0 {
				sent = append(sent, s.Payload(i))
			}
		}
		got := conns[k].messages
		if len(got) > len(sent) || (k == 1 && len(got) != len(sent)) {
			t.Fatalf("connection %d: journaled %d, sent %d", k, len(got), len(sent))
		}
		for i := range got {
			if !bytes.Equal(got[i], sent[i]) {
				t.Fatalf("connection %d: message %d is not the %dth sent", k, i, i)
			}
			if seen[string(got[i])] {
				t.Fatalf("duplicate %.60s", got[i])
			}
			seen[string(got[i])] = true
		}
		t.Logf("connection %d: sent %d, journaled %d", k, len(sent), len(got))
	}
	if conns[0].disc != nil || conns[1].disc == nil || conns[1].disc.Kind != journal.DisconnectShutdown {
		t.Fatalf("disconnect records: killed %+v, stopped %+v", conns[0].disc, conns[1].disc)
	}
	segs, _ := journal.List(jdir)
	period := func(t time.Time) int64 { return t.Unix() / 3600 }
	if period(start) == period(time.Now()) && len(segs) != 1 {
		t.Fatalf("restart in the same hour made %d segments, want the first resumed", len(segs))
	}
	for _, sg := range segs {
		if !sealed(t, filepath.Join(jdir, sg.Name)) {
			t.Fatalf("segment %s not sealed after SIGTERM", sg.Name)
		}
	}
}
