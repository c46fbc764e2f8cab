// Package multihost tests many capture hosts sharing one bucket, with the real binaries:
// two chronicle-feed processes (two host ids) capture one exchange simulator serving the
// bundled USD-M capture, each with its connection dropped at its own moment (or at
// overlapping ones); chronicle-etl refines each host's journal and merges the two
// (chronicle-etl merge); two chronicle-tier processes upload the same partitions to one
// versitygw bucket at once, a third the merged ones; chronicle-fs on a research host
// serves the merge and, below hosts/, each host's own.
package multihost

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	_ "github.com/chronicle/chronicle/venue/all"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.RunAsRoot(m, "multihost: these tests mount FUSE file systems for real and must run as root",
		"chronicle-feed", "chronicle-etl", "chronicle-tier", "chronicle-fs"))
}

// market serves the USD-M capture from an in-process simulator, which the test drives.
type market struct {
	t    *testing.T
	sim  *exsim.Sim
	addr string
	dir  string
	cfg  string
}

func newMarket(t *testing.T) *market {
	t.Helper()
	var set exsim.Set
	for _, s := range exsim.Bundled() {
		if s.Name == "usdm" {
			set = s
		}
	}
	recs, err := exsim.Load(set.Paths(testenv.CapturesDir())...)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := exsim.New(exsim.Options{Venue: set.Venue, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sim.Handler()}
	go srv.Serve(ln)
	m := &market{t: t, sim: sim, addr: ln.Addr().String(), dir: t.TempDir()}
	m.cfg = filepath.Join(m.dir, "feed.toml")
	os.WriteFile(m.cfg, []byte("[feed]\nmetrics_addr = \"\"\nreconnect_min = \"20ms\"\nreconnect_max = \"200ms\"\n[log]\nlevel = \"info\"\nformat = \"text\"\n"), 0o644)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	return m
}

// feed is one capture host's chronicle-feed. Each host subscribes to the streams in its
// own order, which tells its connections apart at the simulator.
type feed struct {
	host    string
	journal string
	sig     string // the connection's streams as the simulator saw them
	cmd     *exec.Cmd
	done    chan struct{}
}

// startFeed starts a host's feed subscribing to streams (in that order) and waits until
// it has connected and been served its snapshot.
func (m *market) startFeed(host string, streams ...string) *feed {
	m.t.Helper()
	sub, err := m.sim.Subscription()
	if err != nil {
		m.t.Fatal(err)
	}
	f := &feed{host: host, journal: filepath.Join(m.dir, "journal-"+host), done: make(chan struct{})}
	log, _ := os.Create(filepath.Join(m.dir, "feed-"+host+".log"))
	f.cmd = exec.Command(testenv.Bin("chronicle-feed"), "run", "--config", m.cfg, "--host-id", host, "--journal-dir", f.journal,
		"--venue", m.sim.Venue().Name(), "--symbols", strings.Join(sub.Symbols, ","), "--streams", strings.Join(streams, ","),
		"--depth-speed", sub.DepthSpeed, "--ws-url", "ws://"+m.addr, "--rest-url", "http://"+m.addr)
	f.cmd.Stdout, f.cmd.Stderr = log, log
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	n, snaps := len(m.sim.Conns()), m.okSnapshots()
	if err := f.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	go func() { f.cmd.Wait(); log.Close(); close(f.done) }()
	m.t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.done
		if m.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(m.dir, "feed-"+host+".log"))
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			m.t.Logf("feed %s log:\n%s", host, b)
		}
	})
	if !m.sim.WaitConns(n+1, 30*time.Second) {
		m.t.Fatalf("feed %s did not connect", host)
	}
	f.sig = strings.Join(m.sim.Conns()[n].Streams(), "/")
	for _, c := range m.sim.Conns()[:n] {
		if strings.Join(c.Streams(), "/") == f.sig {
			m.t.Fatalf("feed %s subscribes like another feed: the test cannot tell their connections apart", host)
		}
	}
	m.waitSnapshots(snaps + 1)
	return f
}

// current is a feed's newest connection at the simulator.
func (m *market) current(f *feed) *exsim.Conn {
	var last *exsim.Conn
	for _, c := range m.sim.Conns() {
		if strings.Join(c.Streams(), "/") == f.sig {
			last = c
		}
	}
	return last
}

func (m *market) okSnapshots() int {
	n := 0
	for _, l := range m.sim.Snapshots() {
		if l.Status == 200 {
			n++
		}
	}
	return n
}

func (m *market) waitSnapshots(n int) {
	m.t.Helper()
	testenv.WaitFor(m.t, fmt.Sprintf("%d snapshots served", n), 30*time.Second, func() bool { return m.okSnapshots() >= n })
}

// drop ends a feed's connection; it returns the connection and how many snapshots the
// simulator had served then.
func (m *market) drop(f *feed) (*exsim.Conn, int) {
	m.t.Helper()
	c, snaps := m.current(f), m.okSnapshots()
	c.Drop(false)
	return c, snaps
}

// reconnected waits until the feed has a connection newer than old and the simulator has
// served snaps snapshots.
func (m *market) reconnected(f *feed, old *exsim.Conn, snaps int) {
	m.t.Helper()
	testenv.WaitFor(m.t, "feed "+f.host+" to reconnect and resync", 30*time.Second, func() bool {
		c := m.current(f)
		return c != nil && c.ID() > old.ID() && m.okSnapshots() >= snaps
	})
}

// finish publishes the rest, waits until every connection drained and every feed's
// journal stopped growing, then stops the feeds (SIGTERM: each journals its shutdown).
func (m *market) finish(feeds ...*feed) {
	m.t.Helper()
	m.sim.Play()
	select {
	case <-m.sim.Done():
	case <-time.After(3 * time.Minute):
		m.t.Fatalf("published %d of %d messages in 3 minutes", m.sim.Published(), m.sim.Len())
	}
	if !m.sim.Flush(time.Minute) {
		m.t.Fatal("connections did not drain")
	}
	for _, f := range feeds {
		last, since := -1, time.Now()
		testenv.WaitFor(m.t, "feed "+f.host+" to journal what it was sent", time.Minute, func() bool {
			n := journaledMessages(m.t, f.journal)
			if n != last {
				last, since = n, time.Now()
			}
			return time.Since(since) > time.Second
		})
		f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done:
		case <-time.After(30 * time.Second):
			m.t.Fatalf("feed %s did not stop", f.host)
		}
	}
}

// journaledMessages counts the message frames of a journal.
func journaledMessages(t *testing.T, dir string) int {
	segs, err := journal.List(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, sg := range segs {
		f, err := os.Open(filepath.Join(dir, sg.Name))
		if err != nil {
			return 0
		}
		st, _ := f.Stat()
		it, err := format.NewJournalIter(f, st.Size(), sg.Name)
		if err != nil {
			f.Close()
			return 0
		}
		for it.Next() {
			if it.Record().TypeID == format.JournalMessage {
				n++
			}
		}
		f.Close()
	}
	return n
}

// runBin runs a binary to completion and fails the test on an error.
func runBin(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(testenv.Bin(name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readMeta(t *testing.T, dir string) *meta.Meta {
	t.Helper()
	m, err := meta.Read(filepath.Join(dir, meta.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// intersect is the intersection of two hosts' invalid intervals.
func intersect(a, b []meta.Invalid) []meta.Interval {
	var out []meta.Interval
	for _, x := range a {
		for _, y := range b {
			from, to := max(x.From, y.From), min(x.To, y.To)
			if from < to || (from == to && x.From == y.From) {
				out = append(out, meta.Interval{From: from, To: to})
			}
		}
	}
	return out
}

func intervals(iv []meta.Invalid) []meta.Interval {
	out := make([]meta.Interval, len(iv))
	for i, v := range iv {
		out[i] = v.Interval
	}
	return out
}

// rawTree maps every file below root/v1 to its bytes, exactly (meta.json's ingest_time
// included: a merge's is a function of its inputs).
func rawTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(root, "v1"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[rel] = b
		return err
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("read %s: %d files, %v", root, len(out), err)
	}
	return out
}
