package hardening

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/journal"
	chfs "github.com/chronicle/chronicle/fs"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/sandbox"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	_ "github.com/chronicle/chronicle/venue/all"
	"golang.org/x/sys/unix"
)

// The spot capture spans midnight of 2024-08-08: with a short grace the refinery seals
// that day while the feed still plays the next.
var day = layout.Key{Venue: "binance-spot", Symbol: "eth-usdt", Date: "2024-08-08"}

const capturedVenue = "binance-spot"

// TestDaemonsUnderTheirUnits: each daemon in turn, under its own unit's sandbox, on one
// capture host and one research host.
func TestDaemonsUnderTheirUnits(t *testing.T) {
	sandbox.Skip(t)
	deploy := filepath.Join(testenv.RepoRoot(t), "deploy")
	var bins []string
	for _, n := range []string{"chronicle-feed", "chronicle-etl", "chronicle-tier", "chronicle-fs"} {
		bins = append(bins, testenv.Bin(n))
	}
	capture := sandbox.NewHost(t, deploy, bins...)
	uid, _ := capture.IDs(t, "chronicle")
	s3 := s3test.Start(t)
	roots := layout.Roots{Hot: capture.Path("dev/shm/chronicle"), Warm: capture.Path("mnt/nvme-warm/chronicle"),
		Cold: capture.Path("mnt/hdd/chronicle"), Remote: s3.URI("archive")}
	writeConfig(t, capture, testkit.ConfigTOML(roots, testkit.S3Config(s3))+captureConfig)
	openFuse(t)

	var book []byte // the sealed day, as the refinery wrote it
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"feed", func(t *testing.T) { feedCaptures(t, capture, roots, uid) }},
		{"etl", func(t *testing.T) { book = refinerySeals(t, capture, roots, uid) }},
		{"fs", func(t *testing.T) { captureMountServes(t, capture, roots, book) }},
		{"tier", func(t *testing.T) { tierUploads(t, capture, roots, s3) }},
		{"research", func(t *testing.T) { researchMountServes(t, deploy, s3, roots.Remote, book) }},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.Fatalf("%s failed: the later steps need what it makes", s.name)
		}
	}
}

const captureConfig = `
[log]
level = "info"
format = "text"

[feed]
metrics_addr = "127.0.0.1:0"
reconnect_min = "20ms"
reconnect_max = "200ms"

[etl]
grace = "2m"
checkpoint_interval = "100ms"
meta_interval = "500ms"
metrics_addr = "127.0.0.1:0"

[tier]
hot_settle = "0s"
cold_after = "24h"
remote_after = "720h"
scan_interval = "300ms"
retry_min = "200ms"
retry_max = "1s"
metrics_addr = "127.0.0.1:0"

[fs]
cache_bytes = 67108864
allow_other = true
metrics_addr = "127.0.0.1:0"
`

// writeConfig writes the host's /etc/chronicle/chronicle.toml.
func writeConfig(t *testing.T, h *sandbox.Host, cfg string) {
	t.Helper()
	if err := os.WriteFile(h.Path("etc/chronicle/chronicle.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// openFuse makes /dev/fuse 0666 for the test, as Debian ships it (some containers make it
// 0600): the capture host's chronicle-fs runs as the chronicle user.
func openFuse(t *testing.T) {
	t.Helper()
	fi, err := os.Stat("/dev/fuse")
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode&0o006 != 0o006 {
		if err := os.Chmod("/dev/fuse", mode|0o666); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod("/dev/fuse", mode) })
	}
}

// ready waits for READY=1 and fails if the daemon exits first.
func ready(t *testing.T, p *proc.Proc) {
	t.Helper()
	select {
	case <-p.Ready:
	case <-p.Done():
		t.Fatalf("%s exited before it was ready: %v\n%s", p.Name(), p.Err(), p.Output())
	case <-time.After(time.Minute):
		t.Fatalf("%s not ready after a minute:\n%s", p.Name(), p.Output())
	}
}

// waitFor polls ok while the daemon runs.
func waitFor(t *testing.T, p *proc.Proc, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		select {
		case <-p.Done():
			t.Fatalf("%s exited while waiting for %s: %v\n%s", p.Name(), what, p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v:\n%s", what, d, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownedBy fails unless every file below dir belongs to uid and none is world-readable
// (UMask=0027 in the units), except books the writers chmod 0644 on purpose.
func ownedBy(t *testing.T, dir string, uid int) {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Errorf("%s: owned by uid %d, want the unit's user (%d)", p, st.Uid, uid)
		}
		if fi.IsDir() && fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s: mode %v, want nothing for others (UMask=0027)", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("%s: nothing written", dir)
	}
}

// feedCaptures: chronicle-feed, under chronicle-feed.service, captures the simulator's spot
// market into the journal.
func feedCaptures(t *testing.T, h *sandbox.Host, roots layout.Roots, uid int) {
	var set exsim.Set
	for _, s := range exsim.Bundled() {
		if s.Venue == capturedVenue {
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
	t.Cleanup(func() { sim.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/"+set.Name+"/", sim.Handler())
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	sub, err := sim.Subscription()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	u := h.Unit(t, "chronicle-feed.service")
	p := h.Start(t, u, sandbox.Options{Args: []string{"--venue", sim.Venue().Name(), "--symbols", strings.Join(sub.Symbols, ","),
		"--streams", strings.Join(sub.Streams, ","), "--depth-speed", sub.DepthSpeed,
		"--ws-url", "ws://" + addr + "/" + set.Name, "--rest-url", "http://" + addr + "/" + set.Name}})
	ready(t, p)
	sim.PlayAfterSnapshots()
	select {
	case <-sim.Done():
	case <-p.Done():
		t.Fatalf("chronicle-feed exited: %v\n%s", p.Err(), p.Output())
	case <-time.After(3 * time.Minute):
		t.Fatalf("market: published %d of %d messages in 3 minutes\n%s", sim.Published(), sim.Len(), p.Output())
	}
	if !sim.Flush(time.Minute) {
		t.Fatal("the market's connections did not drain")
	}
	dir := journal.Dir(roots.Hot, capturedVenue)
	var last int64
	waitFor(t, p, "a journal that stopped growing", time.Minute, func() bool {
		n := dirBytes(dir)
		done := n > 0 && n == last
		last = n
		time.Sleep(200 * time.Millisecond)
		return done
	})
	p.Stop(t, 30*time.Second)
	ownedBy(t, dir, uid)
	t.Logf("journal %s: %d bytes, every file the chronicle user's", dir, dirBytes(dir))
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// refinerySeals: chronicle-etl, under chronicle-etl.service (no network: /metrics on the
// socket chronicle-etl.socket would pass), refines the journal and seals the day.
func refinerySeals(t *testing.T, h *sandbox.Host, roots layout.Roots, uid int) []byte {
	u := h.Unit(t, "chronicle-etl.service")
	su := h.Unit(t, "chronicle-etl.socket")
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the socket unit's ListenStream=, on a free port
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	p := h.Start(t, u, sandbox.Options{Files: []*os.File{lf}, Names: []string{su.Last("Socket", "FileDescriptorName")}})
	lf.Close()
	ready(t, p)
	metaPath := filepath.Join(testkit.PartDir(roots.Warm, day), layout.MetaName)
	waitFor(t, p, "the sealed day "+day.Dir(), 3*time.Minute, func() bool {
		var m struct{ Sealed bool }
		b, err := os.ReadFile(metaPath)
		return err == nil && json.Unmarshal(b, &m) == nil && m.Sealed
	})
	// Scraped through the passed socket: the service itself has no network to listen on.
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("/metrics through the passed socket: %v\n%s", err, p.Output())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("chronicle_etl_")) {
		t.Fatalf("/metrics through the passed socket has no chronicle_etl_ series:\n%.2000s", body)
	}
	p.Stop(t, time.Minute)
	ownedBy(t, testkit.PartDir(roots.Warm, day), uid)
	return testkit.ReadFile(t, filepath.Join(testkit.PartDir(roots.Warm, day), layout.BookName))
}

// mountedLine waits for the daemon's "mounted" log line (its output is copied
// asynchronously) and returns it.
func mountedLine(t *testing.T, p *proc.Proc) string {
	t.Helper()
	var line string
	waitFor(t, p, "the mounted log line", 10*time.Second, func() bool {
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, "msg=mounted") {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

// captureMountServes: chronicle-fs, under chronicle-fs.service (the chronicle user with
// CAP_SYS_ADMIN alone), mounts the tiers, serves the sealed day with passthrough, and its
// ExecStartPost raises the mount's readahead.
func captureMountServes(t *testing.T, h *sandbox.Host, roots layout.Roots, book []byte) {
	u := h.Unit(t, "chronicle-fs.service")
	mp := h.Path("chronicle")
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	p := h.Start(t, u, sandbox.Options{})
	ready(t, p)
	if l := mountedLine(t, p); !strings.Contains(l, "passthrough_enabled=true") {
		t.Errorf("passthrough is off under the unit (CAP_SYS_ADMIN not effective?): %s", l)
	}
	h.Post(t, u)
	if kb, err := chfs.ReadAheadKB(mp); err != nil || kb != 16384 {
		t.Errorf("readahead after ExecStartPost: %d KiB (%v), want 16384", kb, err)
	}
	got, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(day.Dir()), layout.BookName))
	if err != nil || !bytes.Equal(got, book) {
		t.Fatalf("read %d bytes through the mount (%v), want the %d-byte book\n%s", len(got), err, len(book), p.Output())
	}
	p.Stop(t, time.Minute)
	if mounted(t, mp) {
		t.Fatal("still mounted after SIGTERM")
	}
}

// tierUploads: chronicle-tier, under chronicle-tier.service, moves the sealed day warm ->
// cold -> the versitygw bucket (the clock set months ahead).
func tierUploads(t *testing.T, h *sandbox.Host, roots layout.Roots, s3 *s3test.Server) {
	u := h.Unit(t, "chronicle-tier.service")
	p := h.Start(t, u, sandbox.Options{Args: []string{"--now", "2024-12-01T00:00:00Z"}})
	ready(t, p)
	stub := filepath.Join(testkit.PartDir(roots.Cold, day), layout.BookName+".zst.remote.json")
	waitFor(t, p, "the day's remote stub "+stub, 3*time.Minute, func() bool {
		_, err := os.Stat(stub)
		return err == nil
	})
	p.Stop(t, time.Minute)
	if _, err := os.Stat(filepath.Join(testkit.PartDir(roots.Warm, day), layout.BookName)); err == nil {
		t.Fatal("the day is still in warm after its move")
	}
}

func mounted(t *testing.T, mp string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(" "+mp+" "))
}

// researchMountServes: on a research host, chronicle-fs under chronicle-fs-research.service
// (no capability, its own mount namespace) asks chronicle-fs-mount.socket for the mount;
// the helper unit's fusermount3 mounts /chronicle and passes the descriptor back; the day
// reads from the bucket, byte for byte; on SIGTERM the daemon closes the connection, the
// helper ends and its ExecStopPost detaches the mount.
func researchMountServes(t *testing.T, deploy string, s3 *s3test.Server, remote string, book []byte) {
	h := sandbox.NewHost(t, deploy, testenv.Bin("chronicle-fs"))
	writeConfig(t, h, testkit.ConfigTOML(layout.Roots{Remote: remote}, testkit.S3Config(s3))+"\n[fs]\ncache_bytes = 67108864\nmetrics_addr = \"127.0.0.1:0\"\n")
	mp := h.Path("chronicle")
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })

	// systemd's part: the socket unit's listener, owned and moded as it says.
	su := h.Unit(t, "chronicle-fs-mount.socket")
	sock := h.Path(su.Last("Socket", "ListenStream"))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	suid, sgid := h.IDs(t, su.Last("Socket", "SocketUser"))
	if err := os.Chown(sock, suid, sgid); err != nil {
		t.Fatal(err)
	}
	var mode uint32
	fmt.Sscanf(su.Last("Socket", "SocketMode"), "%o", &mode)
	if err := os.Chmod(sock, os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
	if su.Last("Socket", "Accept") != "yes" {
		t.Fatal("chronicle-fs-mount.socket: want Accept=yes (one helper per connection)")
	}
	// Each connection starts an instance of the helper unit with the connection as fd 3.
	mu := h.Unit(t, "chronicle-fs-mount@.service")
	acceptOne := func() <-chan *proc.Proc {
		helper := make(chan *proc.Proc, 1)
		go func() {
			defer close(helper)
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			cf, err := c.File()
			c.Close()
			if err != nil {
				return
			}
			defer cf.Close()
			if out, err := h.Command(t, mu, "ExecStartPre", sandbox.Options{}).CombinedOutput(); err != nil {
				t.Errorf("helper ExecStartPre: %v\n%s", err, out)
			}
			helper <- proc.Start(t, h.Command(t, mu, "ExecStart", sandbox.Options{Files: []*os.File{cf}, Names: []string{"connection"}}))
		}()
		return helper
	}
	// helperEnds waits for the helper's instance to end and runs its ExecStopPost, as
	// systemd would.
	helperEnds := func(hp *proc.Proc, after string) {
		t.Helper()
		select {
		case <-hp.Done():
			if hp.Err() != nil {
				t.Fatalf("the helper exited with %v:\n%s", hp.Err(), hp.Output())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the helper still runs 30 s after %s:\n%s", after, hp.Output())
		}
		if out, err := h.Command(t, mu, "ExecStopPost", sandbox.Options{}).CombinedOutput(); err != nil {
			t.Fatalf("helper ExecStopPost: %v\n%s", err, out)
		}
	}
	helper := acceptOne()

	u := h.Unit(t, "chronicle-fs-research.service")
	p := h.Start(t, u, sandbox.Options{})
	ready(t, p)
	hp := <-helper
	if hp == nil {
		t.Fatal("no connection from the research daemon")
	}
	h.Post(t, u)
	if kb, err := chfs.ReadAheadKB(mp); err != nil || kb != 16384 {
		t.Errorf("readahead after ExecStartPost: %d KiB (%v), want 16384", kb, err)
	}
	got, err := os.ReadFile(filepath.Join(mp, filepath.FromSlash(day.Dir()), layout.BookName))
	if err != nil || !bytes.Equal(got, book) {
		t.Fatalf("read %d bytes through the research mount (%v), want the %d-byte book\ndaemon:\n%s\nhelper:\n%s",
			len(got), err, len(book), p.Output(), hp.Output())
	}
	// systemd's part again: SIGTERM; the helper's instance ends when the daemon closes the
	// connection, and its ExecStopPost runs while the daemon waits for the session to end.
	p.Cmd.Process.Signal(syscall.SIGTERM)
	helperEnds(hp, "SIGTERM to the daemon")
	select {
	case <-p.Done():
		if p.Err() != nil {
			t.Fatalf("chronicle-fs exited with %v after SIGTERM:\n%s", p.Err(), p.Output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("chronicle-fs did not exit after SIGTERM:\n%s", p.Output())
	}
	if !strings.Contains(p.Output(), `"msg":"unmounted"`) {
		t.Errorf("the session did not end with the unmount (the daemon waited out its grace?):\n%s", p.Output())
	}
	if mounted(t, mp) {
		t.Fatal("still mounted after the daemon stopped")
	}

	// A daemon killed outright: the helper sees its connection close and no mount is left
	// behind ("transport endpoint is not connected" for every reader).
	helper = acceptOne()
	p = h.Start(t, u, sandbox.Options{})
	ready(t, p)
	if hp = <-helper; hp == nil {
		t.Fatal("no connection from the restarted research daemon")
	}
	if _, err := os.Stat(filepath.Join(mp, "v1")); err != nil {
		t.Fatalf("the restarted mount does not serve: %v\n%s", err, p.Output())
	}
	p.Cmd.Process.Kill()
	helperEnds(hp, "the daemon was killed")
	if mounted(t, mp) {
		t.Fatal("a dead mount is left after the daemon was killed")
	}
}
