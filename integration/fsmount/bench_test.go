package fsmount

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/tiermove"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
	"golang.org/x/sys/unix"
)

// CHRONICLE_BENCH_FS_ARGS adds flags to the BenchmarkFS daemon's command line (e.g.
// "--cpuprofile /tmp/fs.prof").
// CHRONICLE_BENCH_FS_CONFIG adds [fs] lines to the benchmark daemons' configuration, for
// experiments (e.g. read_ahead_kb = 4096).

// benchFixture is one book of the benchmark size in every tier (hot in /dev/shm, remote on
// a versitygw S3 server on loopback) behind one chronicle-fs mount.
type benchFixture struct {
	e        *env
	d        *daemon
	size     int64
	warm     string                 // the native warm file
	hot      string                 // the native hot file (tmpfs)
	zst      string                 // the cold .zst (for zstd -dc)
	path     map[layout.Tier]string // book.q through the mount
	mp       string
	keys     map[layout.Tier]layout.Key
	cacheCfg int64
}

func newBenchFixture(b *testing.B, name string) *benchFixture {
	b.Helper()
	size := testenv.BenchBytes(b, 64<<20)
	records := (size - format.HeaderSize) / format.BookRecordSize
	e := newEnv(b, "s3")
	hot, err := os.MkdirTemp("/dev/shm", "chronicle-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(hot) })
	e.roots.Hot = hot
	fx := &benchFixture{e: e, size: format.HeaderSize + records*format.BookRecordSize, path: map[layout.Tier]string{}, keys: map[layout.Tier]layout.Key{}}
	for i, t := range []layout.Tier{layout.Hot, layout.Warm, layout.Cold, layout.Remote} {
		fx.keys[t] = layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: fmt.Sprintf("2024-08-%02d", 10-i)}
	}
	began := time.Now()
	fx.warm = filepath.Join(testkit.PartDir(e.roots.Warm, fx.keys[layout.Warm]), layout.BookName)
	testkit.WriteBook(b, fx.warm, fx.keys[layout.Warm], records, 42)
	fx.hot = filepath.Join(testkit.PartDir(hot, fx.keys[layout.Hot]), layout.BookName)
	mustCopy(b, fx.warm, fx.hot)
	for _, t := range []layout.Tier{layout.Cold, layout.Remote} {
		os.MkdirAll(testkit.PartDir(e.roots.Warm, fx.keys[t]), 0o755)
		mustCopy(b, fx.warm, filepath.Join(testkit.PartDir(e.roots.Warm, fx.keys[t]), layout.BookName))
		if err := tiermove.WarmToCold(e.roots.Warm, e.roots.Cold, fx.keys[t], benchBlock(b)); err != nil {
			b.Fatal(err)
		}
	}
	fx.zst = filepath.Join(testkit.PartDir(e.roots.Cold, fx.keys[layout.Cold]), layout.ZstName)
	if err := tiermove.ColdToRemote(e.roots.Cold, e.store, fx.keys[layout.Remote]); err != nil {
		b.Fatal(err)
	}
	zfi, _ := os.Stat(fx.zst)
	b.Logf("%s fixture: %d MiB book in every tier (.zst %d MiB) built in %v", name, fx.size>>20, zfi.Size()>>20, time.Since(began).Round(time.Millisecond))
	// The frame cache is kept well below the file, so cold and remote reads really decode.
	fx.cacheCfg = max(16<<20, min(256<<20, fx.size/8))
	fx.mp = mountpoint(b)
	// No disk cache: the remote passes measure reads over S3, not of frames an earlier
	// pass left on local disk (BenchmarkPeers measures a cold one).
	fx.d = start(b, e.config(b, fmt.Sprintf("cache_bytes = %d\ndisk_cache_bytes = 0\n%s", fx.cacheCfg, os.Getenv("CHRONICLE_BENCH_FS_CONFIG"))), fx.mp, strings.Fields(os.Getenv("CHRONICLE_BENCH_FS_ARGS"))...)
	for t, k := range fx.keys {
		fx.path[t] = filepath.Join(fx.mp, filepath.FromSlash(k.Dir()), layout.BookName)
	}
	return fx
}

func mustCopy(b *testing.B, from, to string) {
	b.Helper()
	os.MkdirAll(filepath.Dir(to), 0o755)
	if out, err := exec.Command("cp", from, to).CombinedOutput(); err != nil {
		b.Fatalf("cp: %v %s", err, out)
	}
}

// dropMountCache evicts a file's pages from the mount's page cache (not the backing file's),
// so the next read reaches the daemon or the passthrough backing file.
func dropMountCache(b *testing.B, p string) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	f.Close()
}

func timeCmd(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	start := time.Now()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return time.Since(start)
}

type summary struct {
	mu   sync.Mutex
	vals map[string]float64
}

func (s *summary) set(k string, v float64) {
	s.mu.Lock()
	s.vals[k] = v
	s.mu.Unlock()
}

// BenchmarkFS measures, through one mount and in the same run as its baselines:
// sequential dd bs=1M per tier vs dd of the native warm file and zstd -dc of the .zst;
// random 4 KiB pread p50/p99 per tier vs the native file; a numpy column reduction through
// the mount vs on the native file.
func BenchmarkFS(b *testing.B) {
	fx := newBenchFixture(b, "BenchmarkFS")
	sum := &summary{vals: map[string]float64{}}
	dd := func(p string) func() time.Duration {
		return func() time.Duration { return timeCmd(b, "dd", "if="+p, "of=/dev/null", "bs=1M", "status=none") }
	}
	nop := func() {}
	mount := func(t layout.Tier) seqPass {
		p := fx.path[t]
		procs := map[string]int{"chronicle-fs": fx.d.cmd.Process.Pid}
		if t == layout.Remote {
			procs["versitygw"] = fx.e.srv.Pid()
		}
		return seqPass{name: t.String(), pre: func() { dropMountCache(b, p) }, cmd: dd(p), procs: procs}
	}
	// A round runs these in order, each ratio's two passes back to back. Baselines read
	// files that are in the page cache (as the tier files behind the mount are: just
	// written); the mount's own page cache is dropped before every pass.
	// The remote pass also measures the fetch window: the mean compressed bytes in flight
	// (the daemon's integral of them over the pass's time) and its largest window, against
	// the bandwidth-delay product of the pass: its compressed MB/s times the round trip of a
	// 4 KiB ranged GET to the same server, measured just before.
	remote := mount(layout.Remote)
	var flights []remoteFlight
	zk, _ := stub.Keys(fx.keys[layout.Remote])
	remoteDD := remote.cmd
	remote.cmd = func() time.Duration {
		var rtts []time.Duration
		for range 5 {
			rtts = append(rtts, timeGet(b, fx.e.store, zk, 0, 4096))
		}
		m0 := fx.d.scrape(b)
		d := remoteDD()
		m1 := fx.d.scrape(b)
		delta := func(k string) float64 { return m1[k] - m0[k] }
		mbps := delta("chronicle_fs_remote_bytes_total") / d.Seconds() / 1e6
		flights = append(flights, remoteFlight{
			inflight: delta("chronicle_fs_source_inflight_byte_seconds_total") / d.Seconds() / 1e6,
			window:   m1["chronicle_fs_fetch_window_bytes"] / 1e6,
			bdp:      mbps * sortedDurations(rtts)[len(rtts)/2].Seconds(),
			stalls:   delta("chronicle_fs_fetch_stalls_total"),
		})
		return d
	}
	passes := []seqPass{
		{name: "zstd-dc-cold", pre: nop, cmd: func() time.Duration {
			return timeCmd(b, "sh", "-c", `zstd -dc "$1" > /dev/null`, "sh", fx.zst)
		}},
		mount(layout.Cold),
		remote,
		{name: "native-warm", pre: nop, cmd: dd(fx.warm)},
		mount(layout.Warm),
		{name: "native-hot", pre: nop, cmd: dd(fx.hot)},
		mount(layout.Hot),
	}
	ratios := [][2]string{{"cold", "zstd-dc-cold"}, {"remote", "cold"}, {"warm", "native-warm"}, {"hot", "native-hot"}}
	b.Run("seq", func(b *testing.B) {
		if testenv.Probe(b) {
			return
		}
		rounds := runSeqRounds(b, fx.size, passes, ratios, sum)
		gib := float64(fx.size) / (1 << 30)
		flights = flights[len(flights)-len(rounds):] // the warm-up pass comes first
		for i, r := range rounds {
			fl := flights[i]
			b.Logf("round %d remote pass: %.2f MB in flight on average, window %.1f MB, bandwidth-delay product %.3f MB, %.0f waits for a run in flight",
				i+1, fl.inflight, fl.window, fl.bdp, fl.stalls)
			testenv.Emit(b, testenv.Figure{ID: "fs.remote_inflight", Value: fl.inflight, Baseline: fl.bdp, Unit: "MB"})
			testenv.Emit(b, testenv.Figure{ID: "fs.remote_window", Value: fl.window, Baseline: fl.bdp, Unit: "MB"})
			for id, pair := range map[string][2]string{"fs.hot_seq": {"hot", "native-hot"}, "fs.warm_seq": {"warm", "native-warm"},
				"fs.cold_seq": {"cold", "zstd-dc-cold"}, "fs.remote_seq": {"remote", "cold"}} {
				testenv.Emit(b, testenv.Figure{ID: id, Value: r.speed[pair[0]], Baseline: r.speed[pair[1]], Unit: "MB/s"})
			}
			remote, cold := r.cpu["remote/chronicle-fs"].Seconds()/gib, r.cpu["cold/chronicle-fs"].Seconds()/gib
			testenv.Emit(b, testenv.Figure{ID: "fs.remote_cpu", Value: remote, Baseline: cold, Unit: "cpu_s/GiB"})
			server := r.cpu["remote/versitygw"].Seconds() / gib
			testenv.Emit(b, testenv.Figure{ID: "fs.remote_cpu.server", Value: server, Baseline: remote, Unit: "cpu_s/GiB"})
			// What a remote GiB costs the machine against a cold one: with both cores busy,
			// the remote pass cannot run faster than cold / this ratio.
			testenv.Emit(b, testenv.Figure{ID: "fs.remote_cpu.total", Value: remote + server, Baseline: cold, Unit: "cpu_s/GiB"})
		}
	})

	// Random 4 KiB preads, every file once per round, each round 2000 reads per file from
	// the same offsets; the mount's page cache is dropped before each file's turn.
	preads := []struct{ name, path string }{{"native-warm", fx.warm}, {"native-hot", fx.hot}}
	for _, t := range []layout.Tier{layout.Hot, layout.Warm, layout.Cold, layout.Remote} {
		preads = append(preads, struct{ name, path string }{t.String(), fx.path[t]})
	}
	b.Run("pread4k", func(b *testing.B) {
		if testenv.Probe(b) {
			return
		}
		all := map[string][]time.Duration{}
		fb := newFrameBaselines(b, fx)
		var decodes, gets []time.Duration
		for i := range b.N {
			round := map[string][2]float64{} // p50, p99 in ms
			fb.decode, fb.get = nil, nil
			for _, pr := range preads {
				var after func(int64)
				switch pr.path {
				case fx.path[layout.Cold]:
					after = fb.timeDecode
				case fx.path[layout.Remote]:
					after = fb.timeGet
				}
				lat, _ := preadRound(b, pr.path, pr.path != fx.warm && pr.path != fx.hot, fx.size, int64(7+i), 2000, after)
				all[pr.name] = append(all[pr.name], lat...)
				round[pr.name] = [2]float64{ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100])}
			}
			decodes, gets = append(decodes, fb.decode...), append(gets, fb.get...)
			dec, get := quantiles(fb.decode), quantiles(fb.get)
			b.Logf("round %d: whole-frame decode p50/p99 %.3f/%.3f ms, ranged GET of a frame p50/p99 %.3f/%.3f ms", i+1, dec[0], dec[1], get[0], get[1])
			for q, id := range []string{"p50", "p99"} {
				testenv.Emit(b, testenv.Figure{ID: "fs.cold_pread4k_" + id, Value: round["cold"][q], Baseline: dec[q], Unit: "ms"})
				testenv.Emit(b, testenv.Figure{ID: "fs.remote_pread4k_" + id, Value: round["remote"][q], Baseline: round["cold"][q] + get[q], Unit: "ms"})
			}
		}
		dec, get := quantiles(decodes), quantiles(gets)
		sum.set("p50/decode", dec[0]*1e3)
		sum.set("p50/get", get[0]*1e3)
		for _, pr := range preads {
			lat := all[pr.name]
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
			b.ReportMetric(float64(p50.Nanoseconds())/1e3, pr.name+"-p50-us")
			b.ReportMetric(float64(p99.Nanoseconds())/1e3, pr.name+"-p99-us")
			sum.set("p50/"+pr.name, float64(p50.Nanoseconds())/1e3)
			sum.set("p99/"+pr.name, float64(p99.Nanoseconds())/1e3)
		}
	})

	py := testenv.Python(b)
	npy := func(t layout.Tier) string { return filepath.Join(filepath.Dir(fx.path[t]), "book.npy") }
	numpys := []struct{ name, path, mode string }{
		{"native-warm", fx.warm, "memmap"}, {"warm-book.q", fx.path[layout.Warm], "memmap"},
		{"warm-book.npy", npy(layout.Warm), "npy"}, {"cold-book.npy", npy(layout.Cold), "npy"},
	}
	b.Run("numpy", func(b *testing.B) {
		if testenv.Probe(b) {
			return
		}
		// A second mount of the same tiers whose requests (254 pages) fit go-fuse's pipes
		// at the default pipe-max-size: every book.npy reply is spliced there, where the
		// main mount's 1 MiB replies are written from a mapping of the tier file.
		spliceMP := mountpoint(b)
		start(b, fx.e.config(b, fmt.Sprintf("cache_bytes = %d\ndisk_cache_bytes = 0\nmax_write = 1040384\n", fx.cacheCfg)), spliceMP)
		numpys := append(numpys, struct{ name, path, mode string }{"warm-book.npy-splice",
			filepath.Join(spliceMP, filepath.FromSlash(fx.keys[layout.Warm].Dir()), "book.npy"), "npy"})
		first, second := map[string][]float64{}, map[string][]float64{}
		for _, n := range numpys {
			run(b, py, "-c", reducePy, n.path, n.mode) // warm-up: interpreter, numpy import, page cache of the tier files
		}
		for range b.N {
			round := map[string]float64{}
			for _, n := range numpys {
				if n.path != fx.warm {
					dropMountCache(b, n.path)
				}
				out := strings.Fields(strings.TrimSpace(run(b, py, "-c", reducePy, n.path, n.mode)))
				if len(out) != 3 {
					b.Fatalf("numpy: %q", out)
				}
				f1, _ := strconv.ParseFloat(out[0], 64)
				f2, _ := strconv.ParseFloat(out[1], 64)
				first[n.name], second[n.name] = append(first[n.name], f1), append(second[n.name], f2)
				round[n.name] = f1
			}
			testenv.Emit(b, testenv.Figure{ID: "numpy.warm_memmap", Value: round["warm-book.q"], Baseline: round["native-warm"], Unit: "s"})
			testenv.Emit(b, testenv.Figure{ID: "numpy.book_npy_warm", Value: round["warm-book.npy"], Baseline: round["warm-book.q"], Unit: "s"})
			testenv.Emit(b, testenv.Figure{ID: "numpy.book_npy_cold", Value: round["cold-book.npy"], Baseline: round["warm-book.q"], Unit: "s"})
			testenv.Emit(b, testenv.Figure{ID: "numpy.book_npy_warm.splice", Value: round["warm-book.npy-splice"], Baseline: round["warm-book.q"], Unit: "s"})
		}
		for _, n := range numpys {
			sort.Float64s(first[n.name])
			sort.Float64s(second[n.name])
			b.ReportMetric(median(first[n.name])*1e3, n.name+"-first-ms")
			b.ReportMetric(median(second[n.name])*1e3, n.name+"-again-ms")
			sum.set("numpy/"+n.name, median(first[n.name]))
			sum.set("numpy-again/"+n.name, median(second[n.name]))
		}
	})

	s := sum.vals
	s["p50/cold+get"] = s["p50/cold"] + s["p50/get"]
	ratio := func(a, b string) string {
		if s[b] == 0 || s[a] == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", s[a]/s[b])
	}
	b.Logf("chronicle-fs summary (%d MiB book, frame cache %d MiB, passthrough offered %v):", fx.size>>20, fx.cacheCfg>>20, fx.passthrough())
	seqRatio := func(a, base string) string {
		k := "ratio/" + a + "/" + base
		if s[k] == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx (rounds %.2f-%.2f)", s[k], s[k+"/min"], s[k+"/max"])
	}
	b.Logf("  seq dd bs=1M MB/s, mean of rounds; ratio = median of per-round ratios: native-warm %.0f, native-hot %.0f | hot %.0f (%s native-hot, goal >= 0.9x) | warm %.0f (%s native-warm, goal >= 0.9x) | cold %.0f (%s zstd -dc %.0f, goal >= 1.5x) | remote %.0f (%s cold, goal >= 0.9x)",
		s["seq/native-warm"], s["seq/native-hot"], s["seq/hot"], seqRatio("hot", "native-hot"), s["seq/warm"], seqRatio("warm", "native-warm"),
		s["seq/cold"], seqRatio("cold", "zstd-dc-cold"), s["seq/zstd-dc-cold"], s["seq/remote"], seqRatio("remote", "cold"))
	b.Logf("  pread 4 KiB p50/p99 us: native-warm %.1f/%.1f | native-hot %.1f/%.1f | hot %.1f/%.1f | warm %.1f/%.1f | cold %.1f/%.1f | remote %.1f/%.1f",
		s["p50/native-warm"], s["p99/native-warm"], s["p50/native-hot"], s["p99/native-hot"], s["p50/hot"], s["p99/hot"], s["p50/warm"], s["p99/warm"],
		s["p50/cold"], s["p99/cold"], s["p50/remote"], s["p99/remote"])
	b.Logf("  cold p50 %s one whole-frame decode (%.1f us, goal <= 0.6x); remote p50 %s cold p50 + one ranged GET of a frame (%.1f us)",
		ratio("p50/cold", "p50/decode"), s["p50/decode"], ratio("p50/remote", "p50/cold+get"), s["p50/get"])
	b.Logf("  numpy price.sum() first pass s, median of rounds: native-warm %.3f | warm book.q memmap %.3f (%s native, goal <= 1.1x) | warm book.npy %.3f (%s book.q, goal <= 1.5x; every reply spliced: %.3f, %s) | cold book.npy %.3f (%s book.q)",
		s["numpy/native-warm"], s["numpy/warm-book.q"], ratio("numpy/warm-book.q", "numpy/native-warm"),
		s["numpy/warm-book.npy"], ratio("numpy/warm-book.npy", "numpy/warm-book.q"),
		s["numpy/warm-book.npy-splice"], ratio("numpy/warm-book.npy-splice", "numpy/warm-book.q"),
		s["numpy/cold-book.npy"], ratio("numpy/cold-book.npy", "numpy/warm-book.q"))
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// preadRound times n random 4 KiB preads of p (offsets from seed) and returns the
// latencies sorted, and the time from the open to the first read's bytes. drop evicts the
// file's pages first (the mount's, not the backing file's). after, when set, runs after
// each timed read with its offset (the same run's baselines).
func preadRound(b *testing.B, p string, drop bool, size, seed int64, n int, after func(off int64)) (lat []time.Duration, firstByte time.Duration) {
	t0 := time.Now()
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if drop {
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		t0 = time.Now()
	}
	rng := rand.New(rand.NewSource(seed))
	buf := make([]byte, 4096)
	lat = make([]time.Duration, 0, n)
	pages := size / 4096
	for i := range n {
		off := rng.Int63n(pages) * 4096
		t1 := time.Now()
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t1))
		if i == 0 {
			firstByte = time.Since(t0)
		}
		if after != nil {
			after(off)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, firstByte
}

// sortedDurations sorts d and returns it.
func sortedDurations(d []time.Duration) []time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}

// frameBaselines times, for an offset of the book, what a random read of it costs at
// least without the mount: decoding its frame whole in this process with the daemon's
// decoder (the cold read's baseline), and one ranged GET of that frame's compressed bytes
// from the remote tier's server (added to the cold read's for the remote baseline).
type frameBaselines struct {
	b      *testing.B
	idx    *qzst.Index
	zst    []byte
	dst    []byte
	store  objstore.Store
	key    string
	decode []time.Duration
	get    []time.Duration
}

func newFrameBaselines(b *testing.B, fx *benchFixture) *frameBaselines {
	dir := filepath.Dir(fx.zst)
	idx, err := qzst.ReadIndexFile(filepath.Join(dir, layout.IdxName))
	if err != nil {
		b.Fatal(err)
	}
	zst, err := os.ReadFile(fx.zst)
	if err != nil {
		b.Fatal(err)
	}
	zk, _ := stub.Keys(fx.keys[layout.Remote])
	return &frameBaselines{b: b, idx: idx, zst: zst, dst: make([]byte, idx.BlockSize), store: fx.e.store, key: zk}
}

func (f *frameBaselines) timeDecode(off int64) {
	fi := f.idx.FrameOf(off)
	fr := f.idx.Frames[fi]
	t0 := time.Now()
	if _, err := qzst.DecodeFrame(f.idx, fi, f.zst[fr.CompressedOffset:][:fr.CompressedSize], f.dst[:0]); err != nil {
		f.b.Fatal(err)
	}
	f.decode = append(f.decode, time.Since(t0))
}

// timeGet times a ranged GET of the compressed frame holding off (the remote object is the
// cold one's bytes: the same book, transcoded the same way).
func (f *frameBaselines) timeGet(off int64) {
	fr := f.idx.Frames[f.idx.FrameOf(off)]
	f.get = append(f.get, timeGet(f.b, f.store, f.key, int64(fr.CompressedOffset), int64(fr.CompressedSize)))
}

// timeGet times one ranged GET of n bytes at off, from the request to the last byte.
func timeGet(b *testing.B, store objstore.Store, key string, off, n int64) time.Duration {
	t0 := time.Now()
	rc, err := store.GetRange(context.Background(), key, off, n)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		b.Fatal(err)
	}
	rc.Close()
	return time.Since(t0)
}

func quantiles(d []time.Duration) [2]float64 {
	d = sortedDurations(d)
	return [2]float64{ms(d[len(d)/2]), ms(d[len(d)*99/100])}
}

// seqPass is one sequential read of a whole file: pre readies it (drops the mount's page
// cache), cmd reads it and returns the time taken.
type seqPass struct {
	name  string
	pre   func()
	cmd   func() time.Duration
	procs map[string]int // processes whose CPU time and page faults each pass reports
}

// cpuIdle is the machine's idle + iowait time and its total time so far, in clock ticks
// (the first line of /proc/stat).
func cpuIdle() (idle, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal; guest time is in user
			total += v
		}
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return idle, total
}

// procStat is a process's CPU time and minor page faults so far (/proc/<pid>/stat).
func procStat(pid int) (cpu time.Duration, minflt int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	flt, _ := strconv.ParseInt(f[7], 10, 64)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, flt // USER_HZ is 100 on Linux
}

// runSeqRounds runs b.N rounds, each round every pass once in order, after one warm-up pass
// each (page cache of the physical files, process start). It records each pass's mean MB/s
// and, for every {a, base} in ratios, the median, min and max over rounds of a's speed
// over base's in the same round. On a shared machine the host's load drifts by tens of
// percent within a minute: passes seconds apart see the same machine, blocks of passes
// of one kind do not.
func runSeqRounds(b *testing.B, size int64, passes []seqPass, ratios [][2]string, sum *summary) []seqRound {
	for _, p := range passes {
		p.pre()
		p.cmd()
	}
	speed := map[string][]float64{} // MB/s per round
	cpu := map[string]time.Duration{}
	faults := map[string]int64{}
	idle, all := map[string]int64{}, map[string]int64{}
	var rounds []seqRound
	for range b.N {
		r := seqRound{speed: map[string]float64{}, cpu: map[string]time.Duration{}}
		for _, p := range passes {
			n := p.name
			p.pre()
			i0, a0 := cpuIdle()
			for name, pid := range p.procs {
				c, f := procStat(pid)
				r.cpu[n+"/"+name] = -c
				faults[n+"/"+name] -= f
			}
			d := p.cmd()
			settle(p.procs)
			for name, pid := range p.procs {
				c, f := procStat(pid)
				r.cpu[n+"/"+name] += c
				cpu[n+"/"+name] += r.cpu[n+"/"+name]
				faults[n+"/"+name] += f
			}
			i1, a1 := cpuIdle()
			idle[n] += i1 - i0
			all[n] += a1 - a0
			speed[n] = append(speed[n], float64(size)/d.Seconds()/1e6)
			r.speed[n] = speed[n][len(speed[n])-1]
		}
		rounds = append(rounds, r)
	}
	// CPU time per GiB read and page faults per pass of the processes serving a tier: what
	// the speed costs, and whether buffers are being faulted in anew. Idle is the machine's
	// idle and iowait share during the passes: CPU a CPU-bound pass left unused.
	for _, p := range passes {
		n := p.name
		if all[n] > 0 {
			b.Logf("%s pass: CPUs idle %.1f %% of the time", n, 100*float64(idle[n])/float64(all[n]))
		}
		for name := range p.procs {
			k := n + "/" + name
			b.Logf("%s pass: %s CPU %.2f s per GiB, %d minor page faults per pass", n, name,
				cpu[k].Seconds()/float64(b.N)/(float64(size)/(1<<30)), faults[k]/int64(b.N))
		}
	}
	b.SetBytes(size * int64(len(passes)))
	for _, p := range passes {
		n := p.name
		var total float64
		for _, v := range speed[n] {
			total += v
		}
		v := total / float64(len(speed[n]))
		b.ReportMetric(v, n+"-MB/s")
		sum.set("seq/"+n, v)
	}
	for _, r := range ratios {
		var rs []float64
		for i := range speed[r[0]] {
			rs = append(rs, speed[r[0]][i]/speed[r[1]][i])
		}
		sort.Float64s(rs)
		k := "ratio/" + r[0] + "/" + r[1]
		sum.set(k, median(rs))
		sum.set(k+"/min", rs[0])
		sum.set(k+"/max", rs[len(rs)-1])
		b.Logf("%s / %s per round: %s", r[0], r[1], fmtRatios(speed[r[0]], speed[r[1]]))
	}
	return rounds
}

// settle waits (at most 2 s) until the processes stop using CPU, so that work a pass left
// running when its reader finished (readahead, fetches in flight) is counted to that pass,
// not the next one's.
func settle(procs map[string]int) {
	cpuOf := func() (t time.Duration) {
		for _, pid := range procs {
			c, _ := procStat(pid)
			t += c
		}
		return t
	}
	last := cpuOf()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		c := cpuOf()
		if c == last {
			return
		}
		last = c
	}
}

// remoteFlight is what one remote pass kept in flight (MB) against its bandwidth-delay
// product (MB), and how often a read waited for a fetch.
type remoteFlight struct{ inflight, window, bdp, stalls float64 }

// seqRound is one round of runSeqRounds: MB/s per pass, and CPU time per pass and process
// ("remote/chronicle-fs").
type seqRound struct {
	speed map[string]float64
	cpu   map[string]time.Duration
}

// median of sorted values.
func median(v []float64) float64 {
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func fmtRatios(a, base []float64) string {
	var parts []string
	for i := range a {
		parts = append(parts, fmt.Sprintf("%.0f/%.0f=%.2f", a[i], base[i], a[i]/base[i]))
	}
	return strings.Join(parts, " ")
}

func (fx *benchFixture) passthrough() bool {
	m := fx.d.waitLog("mounted", time.Second)
	v, _ := m["passthrough_offered"].(bool)
	return v
}

// reducePy maps a book (numpy.memmap of book.q, or numpy.load of book.npy) and times a
// reduction over one column twice: the first pass faults every page in, the second runs
// on mapped pages. It prints both times and the sum.
const reducePy = `
import sys, time
import numpy as np
path, mode = sys.argv[1], sys.argv[2]
dt = np.dtype([("type_id", "<u2"), ("flags", "<u2"), ("symbol_id", "<u4"), ("ts_exchange", "<i8"), ("ts_recv", "<i8"),
               ("seq", "<u8"), ("price", "<i8"), ("qty", "<i8"), ("aux0", "<i8"), ("aux1", "<i8")])
if mode == "npy":
    a = np.load(path, mmap_mode="r")
else:
    a = np.memmap(path, dtype=dt, mode="r", offset=4096)
t0 = time.perf_counter(); s1 = int(a["price"].sum()); t1 = time.perf_counter()
s2 = int(a["price"].sum()); t2 = time.perf_counter()
assert s1 == s2
print(t1 - t0, t2 - t1, s1)
`

// BenchmarkPeakRSS reads a large cold book through a fresh daemon sequentially (dd) and
// randomly (4 KiB and 1 MiB preads from 4 readers), then reports the daemon's peak resident
// memory (VmHWM) against the configured frame cache + 100 MiB.
func BenchmarkPeakRSS(b *testing.B) {
	size := testenv.BenchBytes(b, 64<<20)
	records := (size - format.HeaderSize) / format.BookRecordSize
	e := newEnv(b, "file")
	k := testkit.Key
	os.MkdirAll(testkit.PartDir(e.roots.Warm, k), 0o755)
	testkit.WriteBook(b, filepath.Join(testkit.PartDir(e.roots.Warm, k), layout.BookName), k, records, 9)
	if err := tiermove.WarmToCold(e.roots.Warm, e.roots.Cold, k, 1<<20); err != nil {
		b.Fatal(err)
	}
	cache := int64(128 << 20)
	mp := mountpoint(b)
	d := start(b, e.config(b, fmt.Sprintf("cache_bytes = %d\ndisk_cache_bytes = 0\n%s", cache, os.Getenv("CHRONICLE_BENCH_FS_CONFIG"))), mp)
	p := filepath.Join(mp, filepath.FromSlash(k.Dir()), layout.BookName)
	b.ResetTimer()
	for range b.N {
		dropMountCache(b, p)
		timeCmd(b, "dd", "if="+p, "of=/dev/null", "bs=1M", "status=none")
		var wg sync.WaitGroup
		for r := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := os.Open(p)
				if err != nil {
					b.Error(err)
					return
				}
				defer f.Close()
				rng := rand.New(rand.NewSource(int64(r)))
				buf := make([]byte, 1<<20)
				for i := range 500 {
					n := 4096
					if i%4 == 0 {
						n = 1 << 20
					}
					if _, err := f.ReadAt(buf[:n], rng.Int63n(size-int64(n))); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	hwm := testenv.PeakRSS(b, d.cmd.Process.Pid)
	bound := cache + 100<<20
	b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(bound)/(1<<20), "bound-MiB")
	b.Logf("peak RSS of chronicle-fs %d MiB reading a %d MiB cold book sequentially and randomly; configured cache %d MiB + 100 MiB = %d MiB",
		hwm>>20, size>>20, cache>>20, bound>>20)
}

// benchBlock is the cold frame size of the benchmark books: $CHRONICLE_BENCH_BLOCK or 1 MiB
// (the default of [tier] block_size).
func benchBlock(b *testing.B) int { return testenv.BenchCount(b, "CHRONICLE_BENCH_BLOCK", 1<<20, 4096) }
