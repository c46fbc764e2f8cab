package tiermgr

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

func TestHelpAndUsageErrors(t *testing.T) {
	stdout, _, code := tier(t, "--help")
	if code != 0 || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "--cold-after") {
		t.Fatalf("--help exited %d:\n%s", code, stdout)
	}
	if _, stderr, code := tier(t, "frobnicate"); code != 2 || !strings.Contains(stderr, "run, apply or status") {
		t.Fatalf("unknown command exited %d: %s", code, stderr)
	}
	e := lt.NewEnv(t, "", nil)
	args := config(t, e, nil, "concurrency = 0")
	// The config file's errors are runtime errors (1), the command line's usage errors (2).
	if _, stderr, code := tier(t, append(args, "status")...); code != 1 || !strings.Contains(stderr, "concurrency") {
		t.Fatalf("bad config value exited %d: %s", code, stderr)
	}
	if _, stderr, code := tier(t, append(args, "status", "--concurrency", "2")...); code != 0 {
		t.Fatalf("a flag that corrects the file's value: exited %d: %s", code, stderr)
	}
	args = config(t, e, nil, "cold_afterr = \"1h\"")
	if _, stderr, code := tier(t, append(args, "status")...); code != 1 || !strings.Contains(stderr, "tier.cold_afterr") {
		t.Fatalf("typo in config exited %d: %s", code, stderr)
	}
	args = config(t, e, nil, "")
	if _, stderr, code := tier(t, append(args, "status", "--concurrency", "0")...); code != 2 || !strings.Contains(stderr, "concurrency") {
		t.Fatalf("bad flag value exited %d: %s", code, stderr)
	}
}

// TestStatusAndDryRun: status and apply --dry-run report, and change nothing; flags
// override the config file.
func TestStatusAndDryRun(t *testing.T) {
	e := lt.NewEnv(t, "", testkit.FileStore(t))
	a := lt.NewPartition(t, key("2024-08-08"), 3000, 1)
	b := lt.NewPartition(t, key("2024-08-09"), 3000, 2)
	c := lt.NewPartition(t, key("2023-08-10"), 3000, 3)
	e.Place(t, a, layout.Hot)
	e.Place(t, b, layout.Warm)
	e.Place(t, c, layout.Remote)
	args := config(t, e, nil, `cold_after = "2400h"`)
	args = append(args, "--now", "2024-09-01")

	out, stderr, code := tier(t, append(args, "status")...)
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, stderr)
	}
	for _, want := range []string{"pending moves: 1", "hot->warm", a.Key.String(), "remote", "cold_after 100d"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	// --cold-after overrides the file: now b is due for cold too.
	out, stderr, code = tier(t, append(args, "--cold-after", "24h", "apply", "--dry-run", "--json")...)
	if code != 0 {
		t.Fatalf("dry run exited %d: %s", code, stderr)
	}
	var plan struct {
		Moves []struct{ Partition, Policy, From, To string }
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("dry run JSON: %v\n%s", err, out)
	}
	if len(plan.Moves) != 2 || plan.Moves[0].Policy != "hot->warm" || plan.Moves[1].Policy != "warm->cold" || plan.Moves[1].Partition != b.Key.String() {
		t.Fatalf("dry run plan: %+v", plan.Moves)
	}
	// Nothing moved.
	for _, p := range []struct {
		lt.Partition
		want string
	}{{a, "hot"}, {b, "warm"}, {c, "remote"}} {
		if cs := e.Copies(p.Key); len(cs) != 1 || cs[0] != p.want {
			t.Fatalf("%s moved by a dry run: %v", p.Key, cs)
		}
	}
	var st struct {
		Tiers []struct {
			Tier         string
			Partitions   int
			LogicalBytes int64 `json:"logical_bytes"`
		}
	}
	out, _, _ = tier(t, append(args, "status", "--json")...)
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Tiers) != 4 || st.Tiers[3].Partitions != 1 || st.Tiers[3].LogicalBytes != int64(len(c.Book)) {
		t.Fatalf("status --json: %+v %v\n%s", st, err, out)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon starts `chronicle-tier ... run` and returns its log lines as they come.
func daemon(t *testing.T, args ...string) (*exec.Cmd, <-chan map[string]any) {
	cmd := exec.Command(testenv.Bin("chronicle-tier"), args...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan map[string]any, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			} else {
				lines <- map[string]any{"msg": "raw", "text": sc.Text()}
			}
		}
	}()
	return cmd, lines
}

func waitLog(t *testing.T, lines <-chan map[string]any, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("process exited before logging %q", msg)
			}
			if m["msg"] == msg {
				return m
			}
		case <-deadline:
			t.Fatalf("no %q log line within %v", msg, timeout)
		}
	}
}

// TestRunServesMetricsAndStops: the daemon moves a due partition, reports it on /metrics,
// and exits cleanly on SIGTERM.
func TestRunServesMetricsAndStops(t *testing.T) {
	e := lt.NewEnv(t, "", nil)
	p := lt.NewPartition(t, key("2024-08-08"), 2000, 1)
	e.Place(t, p, layout.Hot)
	addr := freeAddr(t)
	cmd, lines := daemon(t, append(config(t, e, nil, ""), "--now", "2024-08-09T06:00:00Z", "--metrics-addr", addr, "--scan-interval", "200ms", "run")...)
	waitLog(t, lines, "move done", 20*time.Second)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`chronicle_tier_moves_total{policy="hot_to_warm",result="ok"} 1`,
		`chronicle_tier_move_bytes_total{policy="hot_to_warm"} ` + fmt.Sprint(len(p.Book)),
		"chronicle_tier_last_scan_timestamp_seconds",
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, lines, "stopped", 10*time.Second)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if e.Check(t, []lt.Partition{p})[p.Key] != layout.Warm {
		t.Fatal("not moved to warm")
	}
}

// TestSigtermRollsBackMoveInFlight: SIGTERM in the middle of a slow (bandwidth-limited)
// warm -> cold transcode rolls it back and exits 0; the next run moves it.
func TestSigtermRollsBackMoveInFlight(t *testing.T) {
	e := lt.NewEnv(t, "", nil)
	p := lt.NewPartition(t, key("2024-08-08"), 40000, 1) // 2.5 MB
	e.Place(t, p, layout.Warm)
	args := append(config(t, e, nil, ""), "--now", "2024-09-01")
	cmd, lines := daemon(t, append(args, "--metrics-addr", "", "--bandwidth", "1000000", "run")...)
	waitLog(t, lines, "move start", 20*time.Second)
	time.Sleep(700 * time.Millisecond) // well inside the transcode (> 2.5 s at 1 MB/s)
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	m := waitLog(t, lines, "move interrupted", 10*time.Second)
	waitLog(t, lines, "stopped", 10*time.Second)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	t.Logf("stopped %v after SIGTERM: %v", time.Since(t0), m["err"])
	if e.Check(t, []lt.Partition{p})[p.Key] != layout.Warm {
		t.Fatal("the interrupted move was not rolled back to warm")
	}
	if _, stderr, code := tier(t, append(args, "apply")...); code != 0 {
		t.Fatalf("apply after the interrupted run: %d\n%s", code, stderr)
	}
	if e.Check(t, []lt.Partition{p})[p.Key] != layout.Cold {
		t.Fatal("not moved to cold by the next run")
	}
	_ = os.Getpid
}
