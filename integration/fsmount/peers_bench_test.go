package fsmount

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/tiermove"
	"github.com/chronicle/chronicle/layout"
	"golang.org/x/sys/unix"
)

// The peers a researcher would otherwise mount, each on the same versitygw holding the same
// book uncompressed (bucket "peers"), with the options their documentation gives for large
// sequential files. chronicle-fs reads the remote tier (seekable zstd) from the same server.
var (
	rcloneArgs = []string{"--read-only", "--vfs-cache-mode", "off", "--buffer-size", "32M",
		"--vfs-read-chunk-size", "32M", "--vfs-read-chunk-size-limit", "off", "--max-read-ahead", "1M",
		"--dir-cache-time", "1h", "--no-modtime"}
	s3fsOpts = []string{"ro", "use_path_request_style", "endpoint=us-east-1", "parallel_count=8", "multipart_size=32"}
)

// The shaped link: a token bucket on the namespace's loopback (both directions pass it).
var shapedLink = []string{"tbf", "rate", "1gbit", "burst", "256kb", "latency", "50ms"}

const peerBucket = "peers"

// peerPreads is how many random 4 KiB preads each contender makes per round and link
// (CHRONICLE_BENCH_PEER_PREADS to change).
func peerPreads(b *testing.B) int {
	return testenv.BenchCount(b, "CHRONICLE_BENCH_PEER_PREADS", 500, 100)
}

// contender mounts one file system afresh and returns the book's path in it and a stop,
// which for chronicle-fs returns its "stopped" log record (what its reads did).
type contender struct {
	name  string
	mount func(b *testing.B) (file string, stop func() map[string]any)
}

// peerStop adapts a stop without a record.
func peerStop(file string, stop func()) (string, func() map[string]any) {
	return file, func() map[string]any { stop(); return nil }
}

// BenchmarkPeers: chronicle-fs reading its remote tier vs rclone mount and s3fs-fuse reading
// the same book uncompressed from the same versitygw, which runs in a network namespace: on
// its plain loopback, then with the loopback shaped to 1 Gbit/s. Each round and link, every
// contender reads the whole book with dd after the page cache is dropped and on a fresh
// mount, then makes random 4 KiB preads on another fresh mount; the bytes each moved are
// the namespace's loopback counters. Each iteration is one round (-benchtime Nx).
func BenchmarkPeers(b *testing.B) {
	if testenv.Probe(b) {
		return
	}
	rclone := testenv.Tool(b, "rclone", "rclone")
	s3fs := testenv.Tool(b, "s3fs", "s3fs")
	testenv.Tool(b, "tc", "iproute2")
	testenv.Tool(b, "nsenter", "util-linux")
	size := testenv.BenchBytes(b, 64<<20)
	records := (size - format.HeaderSize) / format.BookRecordSize
	size = format.HeaderSize + records*format.BookRecordSize
	e := newEnv(b, "s3")
	key := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: "2024-08-06"}
	began := time.Now()
	warm := filepath.Join(testkit.PartDir(e.roots.Warm, key), layout.BookName)
	// Generated market data (books.Gen: random-walk mid, depth updates, trades, snapshots),
	// which compresses like real books; testkit.WriteBook's records barely compress.
	os.MkdirAll(filepath.Dir(warm), 0o755)
	if err := lt.WriteBook(warm, key, records, 42); err != nil {
		b.Fatal(err)
	}
	e.srv.CreateBucket(peerBucket)
	putFile(b, e, warm, layout.BookName)
	if err := tiermove.WarmToCold(e.roots.Warm, e.roots.Cold, key, benchBlock(b)); err != nil {
		b.Fatal(err)
	}
	zst, _ := os.Stat(filepath.Join(testkit.PartDir(e.roots.Cold, key), layout.ZstName))
	if err := tiermove.ColdToRemote(e.roots.Cold, e.store, key); err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d MiB book, uncompressed in s3://%s and as remote tier (.zst %d MiB), in %v",
		size>>20, peerBucket, zst.Size()>>20, time.Since(began).Round(time.Millisecond))

	// The same server, now inside the namespace.
	ns := netns(b)
	e.srv.Stop()
	e.srv.NetNS = ns
	e.srv.Restart()
	counter := func() int64 { return loBytes(b, e.srv.Pid()) }

	// chronicle-fs with the production request timeout (the tests' 2 s is for fault tests).
	e.remote = strings.Replace(e.remote, `request_timeout = "2s"`, `request_timeout = "10s"`, 1)
	cache := max(16<<20, min(256<<20, size/8))
	env := peerEnv(e)
	dir := b.TempDir()
	passwd := filepath.Join(dir, "s3fs.passwd")
	if err := os.WriteFile(passwd, []byte(e.srv.AccessKey+":"+e.srv.SecretKey+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	contenders := []contender{
		{"chronicle-fs", func(b *testing.B) (string, func() map[string]any) {
			mp := mountpoint(b)
			// Its defaults, with the disk cache of remote frames cold: a new folder per mount.
			disk := b.TempDir()
			if err := os.Chmod(disk, 0o700); err != nil { // chronicle-fs wants it private
				b.Fatal(err)
			}
			cfg := e.config(b, fmt.Sprintf("cache_bytes = %d\ndisk_cache_dir = %q\n%s", cache, disk, os.Getenv("CHRONICLE_BENCH_FS_CONFIG")))
			d := startIn(b, ns, cfg, mp)
			return filepath.Join(mp, filepath.FromSlash(key.Dir()), layout.BookName), func() map[string]any {
				d.signal(syscall.SIGTERM)
				if _, ok := d.wait(20 * time.Second); !ok {
					b.Fatal("chronicle-fs did not stop 20 s after SIGTERM")
				}
				return d.waitLog("stopped", time.Second)
			}
		}},
		{"rclone", func(b *testing.B) (string, func() map[string]any) {
			mp := mountpoint(b)
			args := append([]string{"--net=" + ns, rclone, "mount", "vgw:" + peerBucket, mp}, rcloneArgs...)
			return peerStop(fuseMount(b, "rclone", mp, env, args...))
		}},
		{"s3fs", func(b *testing.B) (string, func() map[string]any) {
			mp := mountpoint(b)
			args := []string{"--net=" + ns, s3fs, peerBucket, mp, "-f", "-o", "url=" + e.srv.Endpoint, "-o", "passwd_file=" + passwd}
			for _, o := range s3fsOpts {
				args = append(args, "-o", o)
			}
			return peerStop(fuseMount(b, "s3fs", mp, env, args...))
		}},
	}
	testenv.Note(b, "peer.setup", fmt.Sprintf("%d MiB book; versitygw %s in a network namespace, reached through its loopback; "+
		"1gbit = `tc qdisc replace dev lo root %s` on that loopback; bytes = the namespace's lo rx counter per pass; "+
		"page cache dropped and every file system mounted afresh before each pass; %d random 4 KiB preads per pass",
		size>>20, e.srv.Endpoint, strings.Join(shapedLink, " "), peerPreads(b)))
	testenv.Note(b, "peer.options", fmt.Sprintf("chronicle-fs: remote tier, frame cache %d MiB, %d KiB frames, an empty disk cache per mount, defaults otherwise; "+
		"rclone %s: `rclone mount %s`; s3fs %s: `s3fs -o %s`", cache>>20, benchBlock(b)>>10,
		toolVersion(rclone, "version"), strings.Join(rcloneArgs, " "), toolVersion(s3fs, "--version"), strings.Join(s3fsOpts, ",")))

	links := []struct{ name, suffix string }{{"loopback", ""}, {"1gbit", ".1gbit"}}
	for i := range b.N {
		for _, link := range links {
			shape(b, ns, link.name == "1gbit")
			// Rotate the order each round: no contender always goes first after the shaping.
			order := append(append([]contender{}, contenders[i%3:]...), contenders[:i%3]...)
			seq, seqBytes := map[string]float64{}, map[string]float64{}
			p50, p99, prBytes, firstByte := map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
			var window, inflight float64 // chronicle-fs's whole-book read: MB
			for _, c := range order {
				if err := testenv.DropCaches(); err != nil {
					b.Fatalf("drop caches: %v", err)
				}
				file, stop := c.mount(b)
				n0 := counter()
				d := timeCmd(b, "dd", "if="+file, "of=/dev/null", "bs=1M", "status=none")
				seqBytes[c.name] = float64(counter()-n0) / 1e6
				seq[c.name] = float64(size) / d.Seconds() / 1e6
				if rec := stop(); rec != nil {
					// The daemon served this one read: its totals are the pass's.
					bs, _ := rec["inflight_byte_seconds"].(float64)
					wb, _ := rec["fetch_window_bytes"].(float64)
					wr, _ := rec["fetch_window_runs"].(float64)
					window, inflight = wb/1e6, bs/d.Seconds()/1e6
					b.Logf("round %d %s: chronicle-fs fetch window %.0f runs (%.1f MB), %.1f MB in flight on average, peak %.1f MB; %v waits for a run in flight (%.3f s)",
						i+1, link.name, wr, window, inflight, rec["inflight_peak_bytes"].(float64)/1e6, rec["fetch_stalls"], rec["fetch_stall_seconds"])
				}
			}
			for _, c := range order {
				if err := testenv.DropCaches(); err != nil {
					b.Fatalf("drop caches: %v", err)
				}
				file, stop := c.mount(b)
				n0 := counter()
				lat, first := preadRound(b, file, false, size, int64(100+i), peerPreads(b), nil)
				firstByte[c.name] = ms(first)
				prBytes[c.name] = float64(counter()-n0) / 1e6
				p50[c.name], p99[c.name] = ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100])
				stop()
			}
			b.Logf("round %d %s: seq MB/s %s; seq MB moved %s; pread4k p50 ms %s; p99 ms %s; MB moved %s; first byte ms %s",
				i+1, link.name, fmtMap(seq), fmtMap(seqBytes), fmtMap(p50), fmtMap(p99), fmtMap(prBytes), fmtMap(firstByte))
			lid := link.suffix
			if lid == "" {
				lid = ".loopback"
			}
			testenv.Emit(b, testenv.Figure{ID: "peer.fetch_window" + lid, Value: window, Unit: "MB"})
			testenv.Emit(b, testenv.Figure{ID: "peer.inflight" + lid, Value: inflight, Unit: "MB"})
			const us = "chronicle-fs"
			for _, p := range []string{"rclone", "s3fs"} {
				lid := link.suffix
				if lid == "" {
					lid = ".loopback"
				}
				testenv.Emit(b, testenv.Figure{ID: "peer." + p + ".seq" + lid, Value: seq[us], Baseline: seq[p], Unit: "MB/s"})
				testenv.Emit(b, testenv.Figure{ID: "peer." + p + ".seq_bytes" + lid, Value: seqBytes[us], Baseline: seqBytes[p], Unit: "MB"})
				testenv.Emit(b, testenv.Figure{ID: "peer." + p + ".pread4k_p50" + link.suffix, Value: p50[us], Baseline: p50[p], Unit: "ms"})
				testenv.Emit(b, testenv.Figure{ID: "peer." + p + ".pread4k_p99" + link.suffix, Value: p99[us], Baseline: p99[p], Unit: "ms"})
				testenv.Emit(b, testenv.Figure{ID: "peer." + p + ".pread4k_bytes" + link.suffix, Value: prBytes[us], Baseline: prBytes[p], Unit: "MB"})
				testenv.Emit(b, testenv.Figure{ID: "peer." + p + ".first_byte" + link.suffix, Value: firstByte[us], Baseline: firstByte[p], Unit: "ms"})
			}
		}
	}
	shape(b, ns, false)
}

func fmtMap(m map[string]float64) string {
	var parts []string
	for _, k := range []string{"chronicle-fs", "rclone", "s3fs"} {
		parts = append(parts, fmt.Sprintf("%s %.3g", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// putFile uploads path as key into the peers' bucket with one PutObject.
func putFile(b *testing.B, e *env, path, key string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	_, err = e.srv.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(peerBucket), Key: aws.String(key), Body: f, ContentLength: aws.Int64(st.Size())})
	if err != nil {
		b.Fatalf("upload %s: %v", path, err)
	}
}

// peerEnv is the environment of the peers' processes: ours without AWS_* and RCLONE_*
// settings (a CA bundle or profile of the host would change what they do), plus rclone's
// remote "vgw" for the server.
func peerEnv(e *env) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "RCLONE_") {
			env = append(env, kv)
		}
	}
	return append(env, "RCLONE_CONFIG_VGW_TYPE=s3", "RCLONE_CONFIG_VGW_PROVIDER=Other",
		"RCLONE_CONFIG_VGW_ACCESS_KEY_ID="+e.srv.AccessKey, "RCLONE_CONFIG_VGW_SECRET_ACCESS_KEY="+e.srv.SecretKey,
		"RCLONE_CONFIG_VGW_ENDPOINT="+e.srv.Endpoint, "RCLONE_CONFIG_VGW_REGION="+e.srv.Region,
		"RCLONE_CONFIG_VGW_FORCE_PATH_STYLE=true", "RCLONE_CONFIG=/dev/null")
}

// fuseMount runs a FUSE daemon in the foreground (nsenter args...), waits until its mount
// shows the book and returns the book's path and a stop that unmounts and waits for it.
func fuseMount(b *testing.B, name, mp string, env []string, args ...string) (string, func()) {
	b.Helper()
	if err := os.MkdirAll(mp, 0o755); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(filepath.Dir(mp), name+".log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("nsenter", args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	stop := func() {
		for range 50 {
			if unix.Unmount(mp, 0) == nil || !isMounted(b, mp) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	file := filepath.Join(mp, layout.BookName)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if isMounted(b, mp) {
			if _, err := os.Stat(file); err == nil {
				return file, stop
			}
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("%s exited before mounting: %s", name, log)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("%s: %s not mounted after 30 s: %s", name, file, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// netns makes a network namespace with its loopback up and returns its path; it is removed
// at cleanup.
func netns(b *testing.B) string {
	name := fmt.Sprintf("chronicle-bench-%d", os.Getpid())
	run(b, "ip", "netns", "add", name)
	b.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(b, "ip", "-n", name, "link", "set", "lo", "up")
	return "/run/netns/" + name
}

// shape puts the token bucket on the namespace's loopback, or takes it off.
func shape(b *testing.B, ns string, on bool) {
	name := filepath.Base(ns)
	if on {
		run(b, "tc", append([]string{"-n", name, "qdisc", "replace", "dev", "lo", "root"}, shapedLink...)...)
		return
	}
	exec.Command("tc", "-n", name, "qdisc", "del", "dev", "lo", "root").Run() // fails when none: fine
}

// loBytes is the bytes received on the loopback of pid's network namespace.
func loBytes(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "lo" {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n
		}
	}
	b.Fatalf("no lo in /proc/%d/net/dev", pid)
	return 0
}

func toolVersion(bin, flag string) string {
	out, _ := exec.Command(bin, flag).CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(line)
	for _, w := range f {
		if strings.ContainsAny(w, "0123456789") {
			return strings.TrimPrefix(w, "V")
		}
	}
	return strings.TrimSpace(line)
}
