// Package research checks the research host of docs/research-hosts.md for real: two
// network namespaces on this machine, "capture" (chronicle-feed -> chronicle-etl ->
// chronicle-tier, and versitygw) and "research" (chronicle-fs with only the remote, its
// read-only credentials, reaching versitygw over a veth link shaped to 1 Gbit/s). The
// research mount must serve every partition the capture host uploaded, byte for byte.
package research

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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

func TestMain(m *testing.M) {
	os.Exit(testenv.RunAsRoot(m, "research: these tests make network namespaces and FUSE mounts and must run as root",
		"chronicle-feed", "chronicle-etl", "chronicle-tier", "chronicle-fs"))
}

// link is two network namespaces joined by a veth pair shaped to 1 Gbit/s each way.
type link struct {
	capture, research string // /run/netns paths
	captureIP         string
}

func newLink(t *testing.T) link {
	testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "tc", "iproute2")
	testenv.Tool(t, "nsenter", "util-linux")
	id := rand.IntN(1 << 16)
	cap, res := fmt.Sprintf("chr-cap-%x", id), fmt.Sprintf("chr-res-%x", id)
	vc, vr := fmt.Sprintf("vc%x", id), fmt.Sprintf("vr%x", id)
	net := fmt.Sprintf("10.%d.%d", 100+id%100, id%250)
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	sh("netns", "add", cap)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", cap).Run() })
	sh("netns", "add", res)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", res).Run() })
	sh("link", "add", vc, "type", "veth", "peer", "name", vr)
	sh("link", "set", vc, "netns", cap)
	sh("link", "set", vr, "netns", res)
	for _, side := range []struct{ ns, dev, addr string }{{cap, vc, net + ".1/30"}, {res, vr, net + ".2/30"}} {
		sh("-n", side.ns, "addr", "add", side.addr, "dev", side.dev)
		sh("-n", side.ns, "link", "set", side.dev, "up")
		sh("-n", side.ns, "link", "set", "lo", "up")
		if out, err := exec.Command("ip", "netns", "exec", side.ns, "tc", "qdisc", "add", "dev", side.dev, "root",
			"tbf", "rate", "1gbit", "burst", "256kb", "latency", "50ms").CombinedOutput(); err != nil {
			t.Fatalf("tc: %v\n%s", err, out)
		}
	}
	return link{capture: "/run/netns/" + cap, research: "/run/netns/" + res, captureIP: net + ".1"}
}

// in returns a command that runs inside network namespace ns (nsenter --net: the mount
// namespace stays shared, so a FUSE mount made inside is visible here); "" is this one.
func in(ns, name string, args ...string) *exec.Cmd {
	if ns == "" { // this namespace
		return exec.Command(name, args...)
	}
	return exec.Command("nsenter", append([]string{"--net=" + ns, name}, args...)...)
}

func run(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// captureHost is the capture side's tiers and its configuration file.
type captureHost struct {
	dir, config string
	roots       layout.Roots
}

func newCaptureHost(t testing.TB, srv *s3test.Server) *captureHost {
	dir := t.TempDir()
	h := &captureHost{dir: dir, config: filepath.Join(dir, "chronicle.toml"), roots: layout.Roots{
		Hot: filepath.Join(dir, "hot"), Warm: filepath.Join(dir, "warm"), Cold: filepath.Join(dir, "cold"), Remote: srv.URI("chronicle")}}
	for _, r := range []string{h.roots.Hot, h.roots.Warm, h.roots.Cold} {
		os.MkdirAll(r, 0o755)
	}
	cfg := testkit.ConfigTOML(h.roots, testkit.S3Config(srv)) + `
[tier]
cold_after = "24h"
remote_after = "48h"
metrics_addr = ""

[log]
level = "warn"
`
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// refine replays a capture into a journal and refines it into the warm tier, sealed.
func (h *captureHost) refine(t testing.TB, venue string, files ...string) {
	journal := filepath.Join(h.dir, "journal-"+venue)
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(testenv.CapturesDir(), f))
	}
	run(t, exec.Command(testenv.Bin("chronicle-feed"), append([]string{"replay", "--speed", "0", "--venue", venue,
		"--journal-dir", journal, "--metrics-addr", "", "--log-level", "warn"}, paths...)...))
	run(t, exec.Command(testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--seal-all", "--root", h.roots.Warm, journal))
}

// upload ages everything in the warm tier to remote (the tier manager's clock years ahead),
// from inside the capture namespace.
func (h *captureHost) upload(t testing.TB, ns string) {
	run(t, in(ns, testenv.Bin("chronicle-tier"), "--config", h.config, "--now", "2030-01-01", "apply"))
}

// files maps every partition file below root to its bytes (logical paths, as the mount
// shows them): the capture host's copy of what it refined, taken before the upload.
func files(t testing.TB, root string) map[string][]byte {
	out := map[string][]byte{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || layout.IsTemp(d.Name()) || strings.Contains(p, "/.") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if !strings.HasPrefix(rel, "v1/") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = b
		return nil
	})
	return out
}

// mount runs chronicle-fs inside the research namespace with only the remote tier and the
// read-only user's keys; it returns the mount point.
func mount(t *testing.T, l link, srv *s3test.Server, ak, sk string) string {
	remote := testkit.S3Config(srv)
	remote.AccessKey, remote.SecretKey = ak, sk
	_, mp, _ := mountRemote(t, l.research, srv.URI("chronicle"), remote, `request_timeout = "2s"
max_retries = 1
`, `bucket_ttl = "2s"
remote_timeout = "5s"
dir_timeout = "0s"
negative_timeout = "0s"
`, "info", 30*time.Second)
	return mp
}

// mountRemote runs `chronicle-fs mount` in namespace ns ("" for this one) with the bucket
// at uri as its only tier, reached through remote; remoteExtra and fsExtra are lines added
// to the [remote] and [fs] sections, level the log level. It waits up to wait for the
// mount, and returns the folder of its config, disk cache and log, the mount point
// (dir/mnt) and the process.
func mountRemote(t testing.TB, ns, uri string, remote objstore.Config, remoteExtra, fsExtra, level string, wait time.Duration) (string, string, *proc.Proc) {
	dir := t.TempDir()
	mp := filepath.Join(dir, "mnt")
	os.Mkdir(mp, 0o755)
	cfg := filepath.Join(dir, "research.toml")
	os.WriteFile(cfg, []byte(testkit.ConfigTOML(layout.Roots{Remote: uri}, remote)+remoteExtra+`
[fs]
metrics_addr = ""
`+fsExtra+fmt.Sprintf(`disk_cache_dir = %q

[log]
level = %q
format = "text"
`, filepath.Join(dir, "cache"), level)), 0o600)
	logf, err := os.Create(filepath.Join(dir, "chronicle-fs.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := in(ns, testenv.Bin("chronicle-fs"), "mount", "--config", cfg, mp)
	cmd.Stdout, cmd.Stderr = logf, logf
	p := proc.Mount(t, cmd, mp, wait, func() string {
		b, _ := os.ReadFile(logf.Name())
		return string(b)
	})
	return dir, mp, p
}

func checkServed(t *testing.T, mp string, want map[string][]byte) {
	t.Helper()
	books := 0
	for rel, b := range want {
		p := filepath.Join(mp, rel)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s through the research mount: %v", rel, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%s: %d bytes through the research mount, %d on the capture host, differ", rel, len(got), len(b))
		}
		if filepath.Base(rel) != layout.BookName {
			continue
		}
		books++
		if tier, err := testkit.ServedTier(p); err != nil || tier != "remote" {
			t.Fatalf("%s: tier xattr %q %v, want remote", rel, tier, err)
		}
		py := exec.Command(testenv.Python(t), "-c", `import hashlib, sys, numpy as np
m = np.memmap(sys.argv[1], dtype=np.uint8, mode="r")
print(hashlib.sha256(m.tobytes()).hexdigest())`, p)
		out, err := py.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != testkit.SHA256(b) {
			t.Fatalf("%s: numpy memmap through the mount: %v\n%s", rel, err, out)
		}
	}
	if books == 0 {
		t.Fatal("no book to check")
	}
}

// TestResearchHost is the research host of issue 18: it sees and reads, byte for byte,
// every partition the capture host uploaded (book.q, meta.json, index/, derived/) with only
// the bucket and read-only keys; a partition uploaded while it is mounted appears within
// the TTL; a store outage fails what was not cached with EIO and the mount recovers.
func TestResearchHost(t *testing.T) {
	l := newLink(t)
	srv := s3test.Start(t)
	srv.MoveTo(l.capture, l.captureIP)
	ak, sk := srv.ReadOnlyUser("chronicle")
	host := newCaptureHost(t, srv)

	host.refine(t, "binance-perp", "binance-usdm_ethusdt_20240808.jsonl.gz")
	want := files(t, host.roots.Warm)
	host.upload(t, l.capture)
	if cold := files(t, host.roots.Cold); len(cold) == 0 {
		t.Fatal("nothing reached the capture host's cold tier")
	} else {
		// What the tier manager derived (parquet) travels too.
		for rel, b := range cold {
			if !strings.HasSuffix(rel, layout.StubName) {
				want[rel] = b
			}
		}
	}
	mp := mount(t, l, srv, ak, sk)
	checkServed(t, mp, want)
	if _, err := os.Stat(filepath.Join(mp, "v1", "binance-spot")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("spot before its upload: %v", err)
	}

	// Uploaded while mounted: appears within the TTL (2 s; the test allows 30).
	host.refine(t, "binance-spot", "binance-spot_ethusdt_20240808.jsonl.gz", "binance-spot_ethusdt_20240809.jsonl.gz")
	spot := map[string][]byte{}
	for rel, b := range files(t, host.roots.Warm) {
		if strings.HasPrefix(rel, "v1/binance-spot/") {
			spot[rel] = b
		}
	}
	host.upload(t, l.capture)
	start := time.Now()
	for {
		if _, err := os.Stat(filepath.Join(mp, "v1", "binance-spot", "eth-usdt")); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("a partition uploaded while mounted did not appear within 30 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("uploaded partition visible %v after the upload finished (bucket_ttl 2s)", time.Since(start).Round(10*time.Millisecond))

	// The store goes away: a spot partition never read fails with EIO, a directory never
	// listed too; what was read before still serves from the caches.
	var spotDate string
	for rel := range spot {
		spotDate = strings.Split(rel, "/")[3]
		break
	}
	perpBook := ""
	for rel := range want {
		if strings.HasSuffix(rel, "/"+layout.BookName) {
			perpBook = rel
			break
		}
	}
	srv.Stop()
	_, err := os.ReadFile(filepath.Join(mp, "v1", "binance-spot", "eth-usdt", spotDate, layout.BookName))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading an uncached partition during the outage: %v, want EIO", err)
	}
	if got, err := os.ReadFile(filepath.Join(mp, perpBook)); err != nil || !bytes.Equal(got, want[perpBook]) {
		t.Fatalf("a book read before the outage (disk cache): %v", err)
	}
	srv.Restart()
	checkServed(t, mp, spot)
}
