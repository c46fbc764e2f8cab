// Package pipeline tests Chronicle as a whole, with the real binaries on the real captures:
// the exchange simulator serves every bundled capture over websocket and REST,
// chronicle-feed captures it live, chronicle-etl refines the journal live, chronicle-tier
// ages the partitions with a demo clock into every tier (the remote one a real S3 server),
// and chronicle-fs mounts the union, which numpy reads. It also runs scripts/demo.sh, to
// completion and interrupted.
package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	_ "github.com/chronicle/chronicle/venue/all"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.RunAsRoot(m, "pipeline: these tests mount FUSE file systems for real and must run as root",
		"chronicle-feed", "chronicle-etl", "chronicle-tier", "chronicle-fs", "chronicle-exsim", "chronicle-q"))
}

// The demo clock of chronicle-tier, and where it puts each partition of the captures:
// a day and a bit after 2024-08-08/09, cold after 24 h, remote after 30 days; the
// binance-perp days stay open (and so in hot) because that journal is never sealed.
const demoNow = "2024-08-10T06:00:00Z"

var wantTier = map[string]string{
	"binance-coinm/eth-usd-perp/2024-08-08": "cold",
	"binance-coinm/eth-usd-perp/2024-08-09": "warm",
	"binance-spot/eth-usdt/2024-08-08":      "cold",
	"binance-spot/eth-usdt/2024-08-09":      "warm",
	"binance-perp/eth-usdt/2024-08-08":      "hot",
	"binance-perp/eth-usdt/2024-08-09":      "hot",
	"binance-perp/sushi-usdt/2021-07-22":    "remote",
	"binance-perp/akro-usdt/2021-07-22":     "remote",
	"binance-perp/keep-usdt/2021-07-22":     "remote",
	"binance-perp/ctk-usdt/2021-07-22":      "remote",
}

// daemon is one daemon process of the pipeline.
type daemon struct {
	args  []string
	cmd   *exec.Cmd
	ready <-chan struct{} // READY=1 received: SIGTERM now means a clean shutdown
	done  chan struct{}
	err   error
}

// pipe is a running pipeline: tier folders, a versitygw remote, the simulator's markets
// and the daemons.
type pipe struct {
	t     testing.TB
	dir   string
	cfg   string
	roots layout.Roots
	mnt   string
	s3    *s3test.Server
	sims  map[string]*exsim.Sim // serveInProcess
	addr  string
	// exsimDir is chronicle-exsim's --state-dir (serveBinary).
	exsimDir string

	mu    sync.Mutex
	procs map[string]*daemon
	// env adds variables to a daemon's environment, by name (kept across kill9's restart).
	env map[string][]string
}

// newPipe sets up folders, the S3 remote and the config file. Nothing runs yet; the
// markets come from serveInProcess or serveBinary.
func newPipe(t testing.TB) *pipe {
	t.Helper()
	dir := t.TempDir()
	p := &pipe{t: t, dir: dir, mnt: filepath.Join(dir, "mnt"), procs: map[string]*daemon{}, sims: map[string]*exsim.Sim{}}
	p.roots = layout.Roots{Hot: filepath.Join(dir, "hot"), Warm: filepath.Join(dir, "warm"), Cold: filepath.Join(dir, "cold")}
	for _, d := range []string{p.roots.Hot, p.roots.Warm, p.roots.Cold, p.mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.s3 = s3test.Start(t)
	p.roots.Remote = p.s3.URI("archive")
	p.cfg = filepath.Join(dir, "chronicle.toml")
	cfg := testkit.ConfigTOML(p.roots, testkit.S3Config(p.s3)) + `
[log]
level = "info"
format = "text"

[feed]
metrics_addr = ""
reconnect_min = "20ms"
reconnect_max = "200ms"

[etl]
output = "hot"
grace = "2m"
checkpoint_interval = "100ms"
meta_interval = "500ms"
idle_spin = "0s"
metrics_addr = ""

[tier]
hot_to_warm = true
hot_settle = "0s"
cold_after = "24h"
remote_after = "720h"
scan_interval = "300ms"
retry_min = "200ms"
retry_max = "1s"
metrics_addr = ""

[fs]
cache_bytes = 67108864
metrics_addr = ""
`
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stopAll)
	return p
}

// serveInProcess runs the simulator in the test process, serving every bundled capture
// under /NAME as chronicle-exsim does, paced at speed times the capture's own pace (0: as
// fast as the connections take it): the test can inject faults and see what was sent.
func (p *pipe) serveInProcess(speed float64) {
	t := p.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, set := range exsim.Bundled() {
		recs, err := exsim.Load(set.Paths(testenv.CapturesDir())...)
		if err != nil {
			t.Fatal(err)
		}
		s, err := exsim.New(exsim.Options{Venue: set.Venue, Records: recs, Speed: speed})
		if err != nil {
			t.Fatal(err)
		}
		p.sims[set.Name] = s
		mux.Handle("/"+set.Name+"/", s.Handler())
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	p.addr = ln.Addr().String()
	t.Cleanup(func() {
		p.stopAll()
		for _, s := range p.sims {
			s.Close()
		}
		srv.Close()
	})
}

// serveBinary runs chronicle-exsim (every bundled capture, paced at speed), as the demo
// does; markets start once their feed has its snapshots.
func (p *pipe) serveBinary(speed float64) {
	p.t.Helper()
	p.exsimDir = filepath.Join(p.dir, "exsim")
	p.start("exsim", testenv.Bin("chronicle-exsim"), "--captures", testenv.CapturesDir(), "--state-dir", p.exsimDir,
		"--speed", fmt.Sprint(speed), "--log-level", "warn")
	testenv.WaitFor(p.t, "chronicle-exsim", time.Minute, func() bool {
		b, err := os.ReadFile(filepath.Join(p.exsimDir, "addr"))
		p.addr = strings.TrimSpace(string(b))
		return err == nil && p.addr != ""
	})
}

// playing reports whether market name is still publishing.
func (p *pipe) playing(name string) bool {
	if s := p.sims[name]; s != nil {
		return s.Published() < s.Len()
	}
	_, err := os.Stat(filepath.Join(p.exsimDir, name+".done"))
	return err != nil
}

func (p *pipe) journalDir(venue string) string { return journal.Dir(p.roots.Hot, venue) }

// feedArgs are the chronicle-feed flags that capture market name (as chronicle-exsim
// writes them to NAME.feed).
func (p *pipe) feedArgs(name string) []string {
	args := []string{"run", "--config", p.cfg}
	s := p.sims[name]
	if s == nil {
		b, err := os.ReadFile(filepath.Join(p.exsimDir, name+".feed"))
		if err != nil {
			p.t.Fatal(err)
		}
		return append(args, strings.Fields(string(b))...)
	}
	sub, err := s.Subscription()
	if err != nil {
		p.t.Fatal(err)
	}
	return append(args, "--venue", s.Venue().Name(), "--symbols", strings.Join(sub.Symbols, ","),
		"--streams", strings.Join(sub.Streams, ","), "--depth-speed", sub.DepthSpeed,
		"--ws-url", "ws://"+p.addr+"/"+name, "--rest-url", "http://"+p.addr+"/"+name)
}

// start runs a daemon; its output goes to DIR/NAME.log.
func (p *pipe) start(name string, args ...string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked(name, args)
}

func (p *pipe) startLocked(name string, args []string) {
	log, err := os.OpenFile(filepath.Join(p.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	env, ready := testenv.NotifySocket(p.t)
	cmd.Env = append(append(os.Environ(), env), p.env[name]...)
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	pr := &daemon{args: args, cmd: cmd, ready: ready, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		log.Close()
		close(pr.done)
	}()
	p.procs[name] = pr
}

// stop ends a daemon with SIGTERM and requires a clean exit.
func (p *pipe) stop(name string) {
	p.t.Helper()
	p.mu.Lock()
	pr := p.procs[name]
	delete(p.procs, name)
	p.mu.Unlock()
	if pr == nil {
		return
	}
	// A daemon the killer has just restarted may not handle signals yet, and SIGTERM
	// would kill it the default way: wait until it says it is up, as systemd does.
	select {
	case <-pr.ready:
	case <-pr.done:
	case <-time.After(time.Minute):
		p.t.Errorf("%s not ready a minute after its start; log %s", name, p.logTail(name))
	}
	pr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pr.done:
	case <-time.After(30 * time.Second):
		pr.cmd.Process.Kill()
		<-pr.done
		p.t.Fatalf("%s did not stop within 30 s of SIGTERM; log %s", name, p.logTail(name))
	}
	if pr.err != nil {
		p.t.Fatalf("%s exited with %v after SIGTERM; log:\n%s", name, pr.err, p.logTail(name))
	}
}

// kill9 kills a daemon with SIGKILL and starts it again with the same arguments.
func (p *pipe) kill9(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.procs[name]
	if pr == nil {
		return false
	}
	pr.cmd.Process.Signal(syscall.SIGKILL)
	<-pr.done
	// A killed chronicle-fs leaves its mount behind ("transport endpoint is not
	// connected"), as after a real crash: the next one cleans it at start.
	p.startLocked(name, pr.args)
	return true
}

func (p *pipe) running(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.procs[name]
	if pr == nil {
		return false
	}
	select {
	case <-pr.done:
		return false
	default:
		return true
	}
}

// stopAll kills whatever still runs and unmounts.
func (p *pipe) stopAll() {
	p.mu.Lock()
	procs := p.procs
	p.procs = map[string]*daemon{}
	p.mu.Unlock()
	for _, pr := range procs {
		pr.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, pr := range procs {
		select {
		case <-pr.done:
		case <-time.After(20 * time.Second):
			pr.cmd.Process.Kill()
			<-pr.done
		}
	}
	if mounted(p.mnt) {
		exec.Command(testenv.Bin("chronicle-fs"), "unmount", p.mnt).Run()
		if mounted(p.mnt) {
			unix.Unmount(p.mnt, unix.MNT_DETACH)
		}
	}
}

func (p *pipe) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// mounted reports whether dir is a mount point in /proc/mounts.
func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	return bytes.Contains(b, []byte(" "+dir+" "))
}

// marketDone waits until market name has published everything and written it to every
// connection.
func (p *pipe) marketDone(name string) {
	p.t.Helper()
	s := p.sims[name]
	if s == nil {
		testenv.WaitFor(p.t, "market "+name, 3*time.Minute, func() bool { return !p.playing(name) })
		return
	}
	select {
	case <-s.Done():
	case <-time.After(3 * time.Minute):
		p.t.Fatalf("market %s: published %d of %d messages in 3 minutes", name, s.Published(), s.Len())
	}
	if !s.Flush(time.Minute) {
		p.t.Fatalf("market %s: connections did not drain", name)
	}
}

// drained waits until the feed has journaled as many of market name's messages as the
// simulator sent (a feed stopped earlier would lose what its socket still holds).
func (p *pipe) drained(name string) {
	p.t.Helper()
	s := p.sims[name]
	sub, _ := s.Subscription()
	want := len(sent(s))
	testenv.WaitFor(p.t, "the feed to journal what market "+name+" sent", time.Minute, func() bool {
		return len(journaled(p.t, p.journalDir(s.Venue().Name()), sub.Symbols)) >= want
	})
}

// caughtUp reports whether the refinery's published checkpoint of a venue journal is at
// the end of its last segment.
func (p *pipe) caughtUp(venue string) bool {
	dir := p.journalDir(venue)
	segs, err := journal.List(dir)
	if err != nil || len(segs) == 0 {
		return false
	}
	last := segs[len(segs)-1]
	h, err := format.ReadHeaderFile(filepath.Join(dir, last.Name))
	if err != nil {
		return false
	}
	cp, ok, _ := journal.ReadCheckpoint(dir)
	return ok && cp.Segment == last.Name && cp.Offset == int64(h.Committed)
}

var venues = []string{"binance-perp", "binance-coinm", "binance-spot"}

// sealEnded is the step the demo takes when the COIN-M and spot captures are over: the
// refinery daemon stops, a --seal-all backfill continues from its checkpoint and seals
// their days, the daemon starts again (binance-perp stays open).
func (p *pipe) sealEnded() {
	p.t.Helper()
	p.stop("etl")
	proc.Run(p.t, testenv.Bin("chronicle-etl"), "backfill", "--config", p.cfg, "--log-level", "warn", "--seal-all", "--root", p.roots.Hot,
		p.journalDir("binance-coinm"), p.journalDir("binance-spot"))
	p.start("etl", testenv.Bin("chronicle-etl"), "run", "--config", p.cfg)
}

// tierOf reads the mount's tier attribute of a partition's book.q.
func (p *pipe) tierOf(part string) string {
	tier, _ := testkit.ServedTier(filepath.Join(p.mnt, "v1", part, "book.q"))
	return tier
}

// placed reports whether every partition is in its tier and the tier manager has nothing
// left to do.
func (p *pipe) placed() bool {
	for part, tier := range wantTier {
		if p.tierOf(part) != tier {
			return false
		}
	}
	out, err := exec.Command(testenv.Bin("chronicle-tier"), "--config", p.cfg, "--now", demoNow, "--log-level", "error", "status", "--json").Output()
	if err != nil {
		return false
	}
	var st struct {
		Plan struct {
			Moves    []json.RawMessage
			Problems []json.RawMessage
		} `json:"plan"`
	}
	return json.Unmarshal(out, &st) == nil && len(st.Plan.Moves) == 0 && len(st.Plan.Problems) == 0
}

// journaled returns the websocket messages a venue journal holds for the given symbols,
// in journal order (streams are mapped to symbols by the journal's connect records).
func journaled(t testing.TB, dir string, symbols []string) [][]byte {
	t.Helper()
	want := map[string]bool{}
	for _, s := range symbols {
		want[s] = true
	}
	chanSym := map[uint16]string{}
	var out [][]byte
	eachRecord(t, dir, func(rec format.JournalRecord) {
		switch rec.TypeID {
		case format.JournalConnect:
			var c journal.Connect
			if err := journal.Decode(rec.Payload, &c); err != nil {
				t.Fatal(err)
			}
			for _, st := range c.Streams {
				chanSym[st.Channel] = st.Symbol
			}
		case format.JournalMessage:
			if want[chanSym[rec.Channel]] {
				out = append(out, bytes.Clone(rec.Payload))
			}
		}
	})
	return out
}

// eachRecord calls fn with every record of the journal in dir, in order.
func eachRecord(t testing.TB, dir string, fn func(format.JournalRecord)) {
	t.Helper()
	segs, err := journal.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, sg := range segs {
		tl, err := format.OpenTailer(filepath.Join(dir, sg.Name))
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, ok, err := tl.NextJournal()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			fn(rec)
		}
		tl.Close()
	}
}

// sent returns the capture messages the simulator wrote to its connections, in order.
func sent(s *exsim.Sim) [][]byte {
	var out [][]byte
	for _, c := range s.Conns() {
		for _, i := range c.Sent() {
			if i >= 0 {
				out = append(out, s.Payload(i))
			}
		}
	}
	return out
}

// reference refines the final journals again with chronicle-etl backfill, uninterrupted,
// the way the pipeline did (binance-perp left open; COIN-M and spot sealed at the end),
// into a fresh root.
func (p *pipe) reference() string {
	p.t.Helper()
	ref := filepath.Join(p.dir, "ref")
	proc.Run(p.t, testenv.Bin("chronicle-etl"), "backfill", "--config", p.cfg, "--log-level", "warn", "--root", ref, p.journalDir("binance-perp"))
	proc.Run(p.t, testenv.Bin("chronicle-etl"), "backfill", "--config", p.cfg, "--log-level", "warn", "--seal-all", "--root", ref,
		p.journalDir("binance-coinm"), p.journalDir("binance-spot"))
	return ref
}

// numpyCounts reads every book.q below dir/v1 with numpy through python/chronicle_q.py:
// records, depth updates (non-snapshot level records flagged last-of-event), trades.
func numpyCounts(t *testing.T, dir string) map[string][3]int64 {
	t.Helper()
	books, _ := filepath.Glob(filepath.Join(dir, "v1", "*", "*", "*", "book.q"))
	got := testenv.BookCounts(t, books...)
	res := map[string][3]int64{}
	for path, c := range got {
		rel, _ := filepath.Rel(filepath.Join(dir, "v1"), filepath.Dir(path))
		res[rel] = c
	}
	return res
}

// checkFigures compares numpy's counts through the mount with the refinery issue's
// figures, and every partition's record count with its meta.json.
func checkFigures(t *testing.T, mnt string, counts map[string][3]int64) {
	t.Helper()
	for _, c := range kit.All {
		for sym, days := range c.Symbols {
			for date, w := range days {
				part := filepath.Join(c.Venue, sym, date)
				got, ok := counts[part]
				if !ok {
					t.Errorf("%s: no partition %s", c.Name, part)
					continue
				}
				if (w.Depth >= 0 && got[1] != w.Depth) || (w.Trades >= 0 && got[2] != w.Trades) {
					t.Errorf("%s %s: numpy through the mount counts %d depth updates and %d trades, want %d and %d",
						c.Name, part, got[1], got[2], w.Depth, w.Trades)
				}
				m, err := meta.Read(filepath.Join(mnt, "v1", part, meta.FileName))
				if err != nil {
					t.Fatal(err)
				}
				if m.Records["total"] != got[0] || m.Events.DepthUpdates != got[1] || m.Events.Trades != got[2] {
					t.Errorf("%s: meta.json says %d records, %d depth updates, %d trades; numpy read %v", part,
						m.Records["total"], m.Events.DepthUpdates, m.Events.Trades, got)
				}
			}
		}
	}
	if len(counts) != len(wantTier) {
		t.Errorf("%d partitions through the mount, want %d: %v", len(counts), len(wantTier), counts)
	}
}
