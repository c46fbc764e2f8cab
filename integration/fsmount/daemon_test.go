// Package fsmount tests chronicle-fs end to end: the real binary mounts real tier folders
// (and a real S3 server) in a temporary folder, and real tools read through the mount.
package fsmount

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
	"golang.org/x/sys/unix"
)

// binPath is the chronicle-fs binary TestMain builds (with -race when the tests run with it).
var binPath string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "fsmount: these tests mount FUSE file systems for real and must run as root")
			return 1
		}
		dir, err := os.MkdirTemp("", "chronicle-fs-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "chronicle-fs")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/chronicle-fs")...)
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build chronicle-fs: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

func repoRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("go.mod not found")
		}
		dir = parent
	}
}

// env is a set of tier folders and a remote store for one daemon.
type env struct {
	roots  layout.Roots
	store  objstore.Store
	remote string         // [remote] table, TOML
	srv    *s3test.Server // nil for file://
}

// newEnv makes tier folders and a remote: file:// or a versitygw S3 server.
func newEnv(t testing.TB, backend string) *env {
	t.Helper()
	e := &env{roots: testkit.Roots(t)}
	switch backend {
	case "file":
		e.store = testkit.FileStore(t)
	case "s3":
		e.srv = s3test.Start(t)
		e.store = testkit.S3Store(t, e.srv, e.srv.URI("chronicle"))
		c := testkit.S3Config(e.srv)
		e.remote = fmt.Sprintf("[remote]\nendpoint = %q\nregion = %q\naccess_key = %q\nsecret_key = %q\npath_style = true\nrequest_timeout = %q\nmax_retries = %d\nmax_backoff = %q\n",
			c.Endpoint, c.Region, c.AccessKey, c.SecretKey, c.RequestTimeout.String(), c.MaxRetries, c.MaxBackoff.String())
	default:
		t.Fatalf("backend %q", backend)
	}
	e.roots.Remote = e.store.URI("")
	return e
}

// daemon is one running chronicle-fs process.
type daemon struct {
	t       testing.TB
	cmd     *exec.Cmd
	mp      string
	metrics string // host:port of /metrics
	done    chan struct{}
	exitErr error

	mu    sync.Mutex
	lines []string // stderr (JSON log lines)
}

// config writes the TOML file for e with extra [fs] lines.
func (e *env) config(t testing.TB, fsExtra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chronicle.toml")
	if !strings.Contains(fsExtra, "cache_bytes") {
		fsExtra += fmt.Sprintf("cache_bytes = %d\n", 64<<20)
	}
	text := fmt.Sprintf("[tiers]\nhot = %q\nwarm = %q\ncold = %q\nremote = %q\n\n%s\n[log]\nlevel = \"debug\"\nformat = \"json\"\n\n[fs]\nmetrics_addr = \"127.0.0.1:0\"\nwatch_interval = \"50ms\"\n%s\n",
		e.roots.Hot, e.roots.Warm, e.roots.Cold, e.roots.Remote, e.remote, fsExtra)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs chronicle-fs mount on mp and waits until it serves. The process is stopped
// with SIGTERM at cleanup unless the test stopped it.
func start(t testing.TB, cfg, mp string, extraArgs ...string) *daemon {
	t.Helper()
	return startIn(t, "", cfg, mp, extraArgs...)
}

// startIn is start with the daemon in the network namespace at netns ("" for this one),
// entered with nsenter so that the mount is seen outside.
func startIn(t testing.TB, netns, cfg, mp string, extraArgs ...string) *daemon {
	t.Helper()
	return launch(t, netns, nil, cfg, mp, extraArgs...)
}

// launch starts chronicle-fs mount in netns ("" for this one) as cred (nil: as this
// process) and waits until it serves.
func launch(t testing.TB, netns string, cred *syscall.Credential, cfg, mp string, extraArgs ...string) *daemon {
	t.Helper()
	args := append(append([]string{"mount", "--config", cfg}, extraArgs...), mp)
	cmd := exec.Command(binPath, args...)
	if netns != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=" + netns, binPath}, args...)...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, mp: mp, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mu.Unlock()
		}
		d.exitErr = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
			return
		default:
		}
		d.signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-d.done
			unix.Unmount(mp, unix.MNT_DETACH)
			t.Errorf("chronicle-fs did not exit 20 s after SIGTERM")
		}
	})
	ln := d.waitLog("serving", 30*time.Second)
	if ln == nil {
		d.dumpLog()
		t.Fatal("chronicle-fs did not start serving")
	}
	if m := d.waitLog("metrics listening", time.Second); m != nil {
		d.metrics, _ = m["addr"].(string)
	}
	return d
}

func (d *daemon) signal(s syscall.Signal) {
	if err := d.cmd.Process.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
		d.t.Errorf("signal %v: %v", s, err)
	}
}

// waitLog waits for a log record whose msg is msg and returns it decoded.
func (d *daemon) waitLog(msg string, timeout time.Duration) map[string]any {
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		d.mu.Lock()
		lines := d.lines[seen:]
		d.mu.Unlock()
		for _, l := range lines {
			seen++
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == msg {
				return rec
			}
		}
		select {
		case <-d.done:
			return nil
		default:
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *daemon) dumpLog() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lines {
		d.t.Log(l)
	}
}

// logged reports whether any log line contains s.
func (d *daemon) logged(s string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// wait waits for the process to exit and returns its exit code.
func (d *daemon) wait(timeout time.Duration) (int, bool) {
	select {
	case <-d.done:
	case <-time.After(timeout):
		return 0, false
	}
	if d.exitErr == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if errors.As(d.exitErr, &ee) {
		return ee.ExitCode(), true
	}
	return -1, true
}

// metric returns the value of one sample of /metrics, e.g.
// `chronicle_fs_read_bytes_total{tier="cold"}`.
func (d *daemon) metric(t testing.TB, sample string) float64 {
	t.Helper()
	all := d.scrape(t)
	v, ok := all[sample]
	if !ok {
		t.Fatalf("metric %s not exported", sample)
	}
	return v
}

func (d *daemon) scrape(t testing.TB) map[string]float64 {
	t.Helper()
	if d.metrics == "" {
		t.Fatal("no metrics address logged")
	}
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

// mountpoint is a new empty directory to mount on (chronicle-fs refuses a missing one).
func mountpoint(t testing.TB) string {
	mp := filepath.Join(t.TempDir(), "chronicle")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	return mp
}

func isMounted(t testing.TB, mp string) bool {
	t.Helper()
	return mountOptions(t, mp) != ""
}

// mountOptions returns the options of the FUSE mount at mp in /proc/mounts, "" if none.
func mountOptions(t testing.TB, mp string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == mp {
			return f[3]
		}
	}
	return ""
}

// run runs a command and returns its stdout, failing the test with stderr on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}
