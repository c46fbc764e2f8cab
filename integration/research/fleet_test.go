package research

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// A research fleet on Dask (docs/research-fleet.md), on one machine: a "hub" network
// namespace holds the bucket (versitygw), the Dask scheduler and the client; each worker is
// a research host in a namespace of its own, joined to the hub by its own veth pair shaped
// to 1 Gbit/s each way (tc tbf), with its own chronicle-fs mount of the bucket (the remote
// tier alone, read-only keys) and a dask-worker whose tasks read that mount.

const (
	daskPort    = 8786
	fleetScript = "examples/fleet_book_stats.py"
)

type fleet struct {
	t       testing.TB
	id      int
	hub     string // /run/netns path
	srv     *s3test.Server
	ak, sk  string
	workers []*fleetWorker
	sched   *exec.Cmd
}

type fleetWorker struct {
	i         int
	ns        string // /run/netns path
	hubDev    string // the hub's end of the link
	hubIP, ip string
	mp        string
	fs        *proc.Proc
	dask      *exec.Cmd
	daskLog   *bytes.Buffer
	fsDir     string
}

// newFleet makes the hub namespace and moves srv's versitygw into it (listening on every
// address of the hub). Workers are added with addWorker.
func newFleet(t testing.TB, srv *s3test.Server) *fleet {
	testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "tc", "iproute2")
	testenv.Tool(t, "nsenter", "util-linux")
	if err := exec.Command("/usr/bin/python3", "-c", "import distributed").Run(); err != nil {
		t.Fatal("Dask is not installed for /usr/bin/python3; run scripts/deps.sh test (Debian python3-distributed)")
	}
	f := &fleet{t: t, id: rand.IntN(1 << 16), srv: srv}
	name := fmt.Sprintf("chr-hub-%x", f.id)
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	f.hub = "/run/netns/" + name
	srv.MoveTo(f.hub, "0.0.0.0")
	f.ak, f.sk = srv.ReadOnlyUser("chronicle")
	return f
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// addWorker makes worker i's namespace and its shaped link to the hub.
func (f *fleet) addWorker() *fleetWorker {
	t := f.t
	i := len(f.workers)
	name := fmt.Sprintf("chr-w%d-%x", i, f.id)
	hd, wd := fmt.Sprintf("fh%d%x", i, f.id), fmt.Sprintf("fw%d%x", i, f.id)
	base := fmt.Sprintf("10.%d.%d", 100+f.id%100, f.id%250)
	w := &fleetWorker{i: i, ns: "/run/netns/" + name, hubDev: hd,
		hubIP: fmt.Sprintf("%s.%d", base, 4*i+1), ip: fmt.Sprintf("%s.%d", base, 4*i+2)}
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "link", "add", hd, "type", "veth", "peer", "name", wd)
	ipCmd(t, "link", "set", hd, "netns", filepath.Base(f.hub))
	ipCmd(t, "link", "set", wd, "netns", name)
	for _, side := range []struct{ ns, dev, addr string }{{filepath.Base(f.hub), hd, w.hubIP + "/30"}, {name, wd, w.ip + "/30"}} {
		ipCmd(t, "-n", side.ns, "addr", "add", side.addr, "dev", side.dev)
		ipCmd(t, "-n", side.ns, "link", "set", side.dev, "up")
		ipCmd(t, "-n", side.ns, "link", "set", "lo", "up")
		if out, err := in("/run/netns/"+side.ns, "tc", "qdisc", "add", "dev", side.dev, "root",
			"tbf", "rate", "1gbit", "burst", "256kb", "latency", "50ms").CombinedOutput(); err != nil {
			t.Fatalf("tc: %v\n%s", err, out)
		}
	}
	f.workers = append(f.workers, w)
	return w
}

// mount starts a fresh chronicle-fs mount of the bucket in the worker's namespace (a new
// mount point and disk cache: nothing cached).
func (f *fleet) mount(w *fleetWorker) {
	remote := testkit.S3Config(f.srv)
	_, port, _ := net.SplitHostPort(f.srv.Addr)
	remote.Endpoint = "http://" + net.JoinHostPort(w.hubIP, port)
	remote.AccessKey, remote.SecretKey = f.ak, f.sk
	w.fsDir, w.mp, w.fs = mountRemote(f.t, w.ns, f.srv.URI("chronicle"), remote, "", "", "warn", 60*time.Second)
}

// startScheduler starts dask-scheduler in the hub.
func (f *fleet) startScheduler() {
	t := f.t
	var log bytes.Buffer
	f.sched = in(f.hub, "/usr/bin/python3", "-m", "distributed.cli.dask_scheduler", "--host", "0.0.0.0",
		"--port", strconv.Itoa(daskPort), "--no-dashboard")
	f.sched.Stdout, f.sched.Stderr = &log, &log
	f.sched.Dir = t.TempDir()
	f.sched.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := f.sched.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killWait(f.sched) })
	dial := s3test.NetNSDialer(f.hub)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := dial(t.Context(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(daskPort)))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dask-scheduler not listening after 60 s: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startWorker starts w's dask-worker, its tasks reading w's mount (CHRONICLE_ROOT).
func (f *fleet) startWorker(w *fleetWorker, threads int) {
	t := f.t
	w.daskLog = &bytes.Buffer{}
	w.dask = in(w.ns, "/usr/bin/python3", "-m", "distributed.cli.dask_worker",
		fmt.Sprintf("tcp://%s:%d", w.hubIP, daskPort), "--name", fmt.Sprintf("w%d", w.i),
		"--nthreads", strconv.Itoa(threads), "--no-nanny", "--no-dashboard", "--memory-limit", "0",
		"--local-directory", t.TempDir())
	w.dask.Env = append(os.Environ(), "CHRONICLE_ROOT="+w.mp)
	w.dask.Stdout, w.dask.Stderr = w.daskLog, w.daskLog
	w.dask.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := w.dask.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := w.dask
	t.Cleanup(func() { killWait(cmd) })
}

// waitWorkers waits until the scheduler has n workers.
func (f *fleet) waitWorkers(n int) {
	cmd := in(f.hub, "/usr/bin/python3", "-c", fmt.Sprintf(`from distributed import Client
with Client("tcp://127.0.0.1:%d", timeout=120) as c:
    c.wait_for_workers(%d, timeout=120)`, daskPort, n))
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("waiting for %d Dask workers: %v\n%s", n, err, out)
	}
}

// stopWorker ends w's dask-worker and unmounts its mount.
func (f *fleet) stopWorker(w *fleetWorker) {
	if w.dask != nil {
		killWait(w.dask)
		w.dask = nil
	}
	if w.fs != nil {
		w.fs.Unmount()
		w.fs = nil
	}
}

func killWait(c *exec.Cmd) {
	if c == nil || c.Process == nil || c.ProcessState != nil {
		return
	}
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.Process.Kill()
		<-done
	}
}

// fleetSummary is what the example script reports (--summary).
type fleetSummary struct {
	Partitions int            `json:"partitions"`
	Bytes      int64          `json:"bytes"`
	Seconds    float64        `json:"seconds"`
	PerWorker  map[string]int `json:"per_worker"`
}

// runScript runs the example script inside ns with args; it returns the table (CSV) and
// the summary.
func runScript(t testing.TB, ns string, env []string, args ...string) ([]byte, fleetSummary) {
	t.Helper()
	dir := t.TempDir()
	out, sum := filepath.Join(dir, "table.csv"), filepath.Join(dir, "summary.json")
	cmd := in(ns, "/usr/bin/python3", append([]string{filepath.Join(testenv.RepoRoot(t), fleetScript), "--out", out, "--summary", sum}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	tb, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var s fleetSummary
	b, err := os.ReadFile(sum)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tb, s
}

// onFleet runs the example on the fleet through the hub's scheduler.
func (f *fleet) run() ([]byte, fleetSummary) {
	return runScript(f.t, f.hub, nil, "--scheduler", fmt.Sprintf("tcp://127.0.0.1:%d", daskPort), "--workers", strconv.Itoa(len(f.workers)))
}

// TestFleet is the research fleet of issue 27: the capture host refines the bundled
// captures and uploads them; a single process computes the example's table from a mount of
// the capture host's own tiers (before the upload, the warm tier: local); then two Dask
// workers, each a research host with its own mount of the bucket over its own shaped link,
// compute it over every partition in the bucket. The two tables are equal, byte for byte,
// and both workers did part of the work.
func TestFleet(t *testing.T) {
	srv := s3test.Start(t)
	f := newFleet(t, srv)
	host := newCaptureHost(t, srv)
	host.refine(t, "binance-perp", "binance-usdm_ethusdt_20240808.jsonl.gz")
	host.refine(t, "binance-spot", "binance-spot_ethusdt_20240808.jsonl.gz", "binance-spot_ethusdt_20240809.jsonl.gz")
	host.refine(t, "binance-coinm", "binance-coinm_ethusd_perp_20240808.jsonl.gz", "binance-coinm_ethusd_perp_20240809.jsonl.gz")

	// One process, the capture host's local tiers.
	local := localMount(t, host)
	want, ws := runScript(t, "", nil, "--local", local)
	if ws.Partitions < 5 {
		t.Fatalf("the local table has %d partitions, want at least 5:\n%s", ws.Partitions, want)
	}
	host.upload(t, f.hub)

	for range 2 {
		w := f.addWorker()
		f.mount(w)
	}
	f.startScheduler()
	for _, w := range f.workers {
		f.startWorker(w, 2)
	}
	got, gs := f.run()
	if !bytes.Equal(got, want) {
		t.Fatalf("the fleet's table differs from one process's:\nfleet:\n%s\none process:\n%s", got, want)
	}
	if len(gs.PerWorker) != 2 {
		t.Fatalf("partitions per worker %v: want both workers used", gs.PerWorker)
	}
	for _, w := range f.workers {
		if tier, err := testkit.ServedTier(filepath.Join(w.mp, "v1", "binance-spot", "eth-usdt", "2024-08-09", layout.BookName)); err != nil || tier != "remote" {
			t.Fatalf("worker %d's mount serves tier %q (%v), want remote", w.i, tier, err)
		}
	}
	t.Logf("%d partitions, one process %.2f s; fleet of 2 %.2f s, per worker %v\n%s", gs.Partitions, ws.Seconds, gs.Seconds, gs.PerWorker, got)
}

// localMount mounts the capture host's own tiers (no bucket) and returns the mount point.
func localMount(t testing.TB, h *captureHost) string {
	dir := t.TempDir()
	mp := filepath.Join(dir, "mnt")
	os.Mkdir(mp, 0o755)
	cfg := filepath.Join(dir, "local.toml")
	roots := h.roots
	roots.Remote = ""
	os.WriteFile(cfg, []byte(testkit.ConfigTOML(roots, objstore.Config{})+`
[fs]
metrics_addr = ""

[log]
level = "warn"
`), 0o600)
	cmd := exec.Command(testenv.Bin("chronicle-fs"), "mount", "--config", cfg, mp)
	proc.Mount(t, cmd, mp, 30*time.Second, nil)
	return mp
}
