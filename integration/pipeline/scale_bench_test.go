package pipeline

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	chdaemon "github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// BenchmarkScaleVenue is scale.venue (issue 27 A): for M symbols (CHRONICLE_SCALE_SYMBOLS,
// default 50,100,300) the highest message rate the capture host holds for
// CHRONICLE_SCALE_HOLD (default 20s here; make bench sets 10m) with the refinery's lag p99
// <= 1 s and no gap, and per 1,000 msgs/s the CPU of each daemon, their RSS, the journal's
// and the partitions' bytes. One run per M: chronicle-exsim --load M plays at the speed
// of the first step, the feed takes every snapshot (paced inside the venue's budget), then
// the speed climbs a ladder (x1.5 a step) until a step fails; the last step that held is
// the figure, the failing one names the bound. The baseline is the recording's own rate
// for M symbols (speed 1: every symbol as busy as ETHUSDT around midnight 2024-08-08, a
// busy hour of a busy symbol): the goal is M = 300 at that rate.
//
// CHRONICLE_SCALE_PROFILE_DIR: each daemon writes a CPU profile of its run there
// (profile-scale-mM-DAEMON.pprof, which make bench's report summarises for M = 300),
// dominated by the steps at and past the ceiling.
func BenchmarkScaleVenue(b *testing.B) {
	hold := 20 * time.Second
	if s := os.Getenv("CHRONICLE_SCALE_HOLD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("CHRONICLE_SCALE_HOLD=%q: %v", s, err)
		}
		hold = d
	}
	ms := []int{50, 100, 300}
	if s := os.Getenv("CHRONICLE_SCALE_SYMBOLS"); s != "" {
		ms = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("CHRONICLE_SCALE_SYMBOLS=%q", s)
			}
			ms = append(ms, n)
		}
	}
	start := 0.25
	if s := os.Getenv("CHRONICLE_SCALE_START"); s != "" {
		start, _ = strconv.ParseFloat(s, 64)
	}
	for _, m := range ms {
		b.Run(fmt.Sprintf("m%d", m), func(b *testing.B) {
			for range b.N {
				scaleLadder(b, m, start, hold)
			}
		})
	}
}

// step is what one rung of the ladder measured.
type step struct {
	speed, rate, lagP99 float64
	gaps, reconnects    float64
	behindMs, queued    float64
	cpu                 map[string]float64 // share of one core
	rss                 map[string]float64 // MiB
	journalB, partB     float64            // bytes per second
	load                string
	// memFull says the hot tier's filesystem passed hotFullLimit during the step, which
	// then ended early: a tmpfs hot tier holds the day's partitions and the journal in
	// memory, so memory, not CPU, bounds how long a pace can be held.
	memFull string
	ran     time.Duration // how long the step ran
}

// hotFullLimit is the share of the hot tier's filesystem past which a step stops, so the
// benchmark never takes the shared host's memory (it runs the hot tier in /dev/shm);
// CHRONICLE_SCALE_HOT_LIMIT overrides it.
var hotFullLimit = func() float64 {
	if x, err := strconv.ParseFloat(os.Getenv("CHRONICLE_SCALE_HOT_LIMIT"), 64); err == nil && x > 0 && x < 1 {
		return x
	}
	return 0.5
}()

// hotFull reports how full the hot tier's filesystem is, and its size.
func (v *venueRun) hotFull() (float64, uint64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(v.roots.Hot, &st); err != nil || st.Blocks == 0 {
		return 0, 0
	}
	return 1 - float64(st.Bavail)/float64(st.Blocks), st.Blocks * uint64(st.Bsize)
}

func (s step) held(m int) (bool, string) {
	switch {
	case s.memFull != "":
		return false, s.memFull
	case s.gaps > 0:
		return false, fmt.Sprintf("%v gaps", s.gaps)
	case s.lagP99 > 1:
		return false, fmt.Sprintf("refinery lag p99 %.2f s", s.lagP99)
	case s.behindMs > 1000:
		return false, fmt.Sprintf("exsim %d ms behind its schedule", int(s.behindMs))
	case s.queued > math.Max(s.rate, 1000):
		return false, fmt.Sprintf("%v frames queued for the feed (more than a second's)", s.queued)
	case s.reconnects > 0:
		return false, fmt.Sprintf("%v feed reconnects", s.reconnects)
	}
	return true, ""
}

func scaleLadder(b *testing.B, m int, speed float64, hold time.Duration) {
	profDir := os.Getenv("CHRONICLE_SCALE_PROFILE_DIR")
	etlAddr := freeAddr(b)
	v := startVenueWith(b, m, speed, true, func(cfg string) string {
		// Production pacing of the refinery's checkpoints and meta, and its /metrics.
		cfg = strings.Replace(cfg, `checkpoint_interval = "100ms"`, `checkpoint_interval = "1s"`, 1)
		cfg = strings.Replace(cfg, `meta_interval = "500ms"`, `meta_interval = "10s"`, 1)
		cfg = strings.Replace(cfg, "idle_spin = \"0s\"\nmetrics_addr = \"\"", fmt.Sprintf("idle_spin = \"0s\"\nmetrics_addr = %q", etlAddr), 1)
		if lim := os.Getenv("CHRONICLE_SCALE_SNAPSHOT_LIMIT"); lim != "" {
			cfg = strings.Replace(cfg, "[feed]\n", "[feed]\nsnapshot_limit = "+lim+"\n", 1)
		}
		return cfg
	}, func(name string) []string {
		if profDir == "" {
			return nil
		}
		return []string{chdaemon.CPUProfileEnv + "=" + filepath.Join(profDir, fmt.Sprintf("profile-scale-m%d-%s.pprof", m, name))}
	})
	testenv.WaitFor(b, "a snapshot of every symbol", 15*time.Minute, func() bool { return v.stats().SymbolsSnapshot == m })
	perSym := v.recordedRate() // msgs/s of one symbol at speed 1
	target := perSym * float64(m)
	// Probe: short holds up a x1.5 ladder until one fails. Then hold the last good pace
	// for the full hold, stepping down until one holds.
	probe := min(hold, 15*time.Second)
	try := func(speed float64, d time.Duration) (step, bool, string) {
		v.setSpeed(speed)
		time.Sleep(min(d/4, 5*time.Second)) // the new pace settles
		// After a pace that failed, the refinery works off its backlog first; the hot
		// tier keeps filling meanwhile, so the memory limit is watched here too.
		settle := time.Now()
		for time.Since(settle) < 2*time.Minute && scrape(v.t, etlAddr)[`chronicle_etl_lag_seconds{venue="binance-perp"}`] > 0.5 {
			if used, _ := v.hotFull(); used > hotFullLimit {
				v.setSpeed(0.25)
				s := step{speed: speed, memFull: fmt.Sprintf("memory: the hot tier's tmpfs passed %.0f%% full while the refinery worked off the last pace's backlog", 100*used)}
				b.Logf("M=%d speed %.3g: %s", m, speed, s.memFull)
				return s, false, fmt.Sprintf("at speed %.3g (%.0f msgs/s offered): %s", speed, perSym*float64(m)*speed, s.memFull)
			}
			time.Sleep(250 * time.Millisecond)
		}
		s := v.measure(speed, d, etlAddr)
		if s.memFull != "" {
			v.setSpeed(0.25) // stop filling memory while the ladder ends
		}
		ok, why := s.held(m)
		b.Logf("M=%d speed %.3g for %v: %.0f msgs/s, lag p99 %.3f s, gaps %v, exsim behind %v ms, queued %v, cpu %v, load %s: held %v %s",
			m, speed, d, s.rate, s.lagP99, s.gaps, s.behindMs, s.queued, fmtMap(s.cpu), s.load, ok, why)
		return s, ok, fmt.Sprintf("at speed %.3g (%.0f msgs/s offered): %s; CPU (share of a core) %s; load %s", speed, perSym*float64(m)*speed, why, fmtMap(s.cpu), s.load)
	}
	good := 0.0
	var bound string
	var lastGood *step // the last probe that held
	memFull := false
	for retried := false; speed <= 64; speed *= 1.5 {
		if lastGood != nil && lastGood.rate > 0 {
			// The next probe at 1.5x the pace, with its settling, must fit below the limit.
			used, size := v.hotFull()
			next := 1.5 * (lastGood.journalB + lastGood.partB) * (probe + 10*time.Second).Seconds()
			if used*float64(size)+next > hotFullLimit*float64(size) {
				bound, memFull = fmt.Sprintf("at speed %.3g: memory: the hot tier's tmpfs is %.0f%% full and the probe would write %.1f GiB more, past %.0f%%",
					speed, 100*used, next/(1<<30), 100*hotFullLimit), true
				break
			}
		}
		s, ok, why := try(speed, probe)
		if s.memFull != "" {
			bound, memFull = why, true
			break
		}
		if !ok && !retried {
			// Once more at the same pace: a stall of the shared host, or the refinery's
			// first pass over every new partition, is not a ceiling.
			retried = true
			if s, ok, why = try(speed, probe); s.memFull != "" {
				bound, memFull = why, true
				break
			}
		}
		if !ok {
			bound = why
			break
		}
		good, lastGood = speed, &s
	}
	var best *step
	cut := ""
	if good > 0 && !memFull && lastGood.rate > 0 {
		// The hot tier keeps every byte of the hold in memory: hold no faster than what
		// the tmpfs left below its limit takes for the whole hold.
		perMsg := (lastGood.journalB + lastGood.partB) / lastGood.rate
		used, size := v.hotFull()
		left := (hotFullLimit - used) * float64(size)
		switch memRate := left / hold.Seconds() / perMsg; {
		case left <= 0:
			memFull = true
			bound = fmt.Sprintf("memory: the probes left the hot tier's tmpfs %.0f%% full", 100*used)
		case memRate < lastGood.rate:
			good *= memRate / lastGood.rate
			cut = fmt.Sprintf("; memory capped the hold's pace: %.1f GiB of the hot tier's tmpfs left below %.0f%%, %.0f B a message (journal and partitions), %v at most %.0f msgs/s (the probes held %.0f)",
				left/(1<<30), 100*hotFullLimit, perMsg, hold, memRate, lastGood.rate)
		}
	}
	for i := 0; good > 0 && i < 4 && !memFull; i, good = i+1, good/1.5 {
		s, ok, why := try(good, hold)
		if ok {
			best = &s
			break
		}
		if s.memFull != "" {
			// Memory ends the hold, not the pace: report what held until then.
			s.memFull, memFull = "", true
			if ok, _ := s.held(m); ok && s.ran >= probe {
				best = &s
				cut += fmt.Sprintf("; the hold was cut at %v of %v: %s", s.ran.Round(time.Second), hold, why)
				break
			}
			bound = why
			break
		}
		bound = why
	}
	probeOnly := false
	if best == nil && memFull && lastGood != nil {
		best, probeOnly = lastGood, true
		cut += fmt.Sprintf("; a probe's figure (%v): memory ended the ladder before a hold: %s", lastGood.ran.Round(time.Second), bound)
	}
	v.stop("feed")
	v.stop("etl")
	v.stop("tier")
	id := fmt.Sprintf("scale.venue.m%d", m)
	if bound == "" {
		bound = "nowhere: the ladder stopped at speed 64"
	}
	note := fmt.Sprintf("hold asked %v (probes %v); the next pace failed %s", hold, probe, bound)
	if best == nil {
		testenv.Emit(b, testenv.Figure{ID: id, Value: 0, Baseline: target, Unit: "msgs/s", Note: "no step held: " + note})
		return
	}
	detail := fmt.Sprintf("speed %.3g x the recording, lag p99 %.3f s, load %s; %s%s", best.speed, best.lagP99, best.load, note, cut)
	if probeOnly {
		// A probe is not a hold: the goal's figure stays 0 and the probe has its own id.
		testenv.Emit(b, testenv.Figure{ID: id, Value: 0, Baseline: target, Unit: "msgs/s", Note: "no hold ran: " + detail})
		testenv.Emit(b, testenv.Figure{ID: id + ".probe", Value: best.rate, Baseline: target, Unit: "msgs/s"})
	} else {
		testenv.Emit(b, testenv.Figure{ID: id, Value: best.rate, Baseline: target, Unit: "msgs/s", Note: detail})
	}
	testenv.Emit(b, testenv.Figure{ID: id + ".lag_p99", Value: best.lagP99, Unit: "s"})
	per := best.rate / 1000
	for _, d := range []string{"feed", "etl", "tier", "exsim"} {
		testenv.Emit(b, testenv.Figure{ID: id + ".cpu." + d, Value: 100 * best.cpu[d] / per, Unit: "%core"})
	}
	for _, d := range []string{"feed", "etl", "tier"} {
		testenv.Emit(b, testenv.Figure{ID: id + ".rss." + d, Value: best.rss[d], Unit: "MiB"})
	}
	testenv.Emit(b, testenv.Figure{ID: id + ".journal", Value: best.journalB / per / 1e3, Unit: "KB"})
	testenv.Emit(b, testenv.Figure{ID: id + ".partition", Value: best.partB / per / 1e3, Unit: "KB"})
}

func fmtMap(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func freeAddr(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// recordedRate is one derived symbol's messages per second at speed 1.
func (v *venueRun) recordedRate() float64 {
	st := v.stats()
	return st.RatePerSymbol
}

func (v *venueRun) setSpeed(x float64) {
	v.t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/load/exsim/speed?x=%g", v.addr, x), "", nil)
	if err != nil {
		v.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		v.t.Fatalf("set speed %g: %s", x, resp.Status)
	}
}

// measure holds the current pace for d and reads what it cost.
func (v *venueRun) measure(speed float64, d time.Duration, etlAddr string) step {
	s := step{speed: speed, cpu: map[string]float64{}, rss: map[string]float64{}}
	names := []string{"feed", "etl", "tier", "exsim"}
	cpu0 := map[string]float64{}
	for _, n := range names {
		cpu0[n] = v.cpuSeconds(n)
	}
	st0 := v.stats()
	m0 := scrape(v.t, etlAddr)
	j0, p0 := v.journalBytes(), v.partitionBytes()
	t0 := time.Now()
	var lags []float64
	var behind, queued []float64
	for time.Since(t0) < d {
		time.Sleep(250 * time.Millisecond)
		if used, size := v.hotFull(); used > hotFullLimit {
			el := time.Since(t0).Seconds()
			s.memFull = fmt.Sprintf("memory: the hot tier's tmpfs (%.1f GiB) passed %.0f%% full after %.0f s at this pace (journal %.1f MB/s, partitions %.1f MB/s, both kept in memory)",
				float64(size)/(1<<30), 100*used, el, float64(v.journalBytes()-j0)/el/1e6, float64(v.partitionBytes()-p0)/el/1e6)
			break
		}
		mm := scrape(v.t, etlAddr)
		lags = append(lags, mm[`chronicle_etl_lag_seconds{venue="binance-perp"}`])
		st := v.stats()
		behind = append(behind, float64(st.BehindMs))
		queued = append(queued, float64(st.Queued))
	}
	s.ran = time.Since(t0)
	el := s.ran.Seconds()
	st1 := v.stats()
	m1 := scrape(v.t, etlAddr)
	for _, n := range names {
		s.cpu[n] = (v.cpuSeconds(n) - cpu0[n]) / el
		s.rss[n] = v.rssMiB(n)
	}
	s.rate = float64(st1.Published-st0.Published) / el
	s.lagP99 = p99(lags)
	s.behindMs, s.queued = p99(behind), p99(queued)
	for k, x := range m1 {
		if strings.HasPrefix(k, "chronicle_etl_gaps_total{") && !strings.Contains(k, "no_snapshot") && !strings.Contains(k, "not_captured") {
			s.gaps += x - m0[k]
		}
	}
	s.reconnects = float64(st1.Connections - st0.Connections)
	s.journalB = float64(v.journalBytes()-j0) / el
	s.partB = float64(v.partitionBytes()-p0) / el
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		s.load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return s
}

func p99(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[min(len(xs)-1, int(math.Ceil(0.99*float64(len(xs))))-1)]
}

// scrape reads a /metrics page into name{labels} -> value.
func scrape(t testing.TB, addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if x, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = x
		}
	}
	return out
}

func (v *venueRun) pid(name string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if pr := v.procs[name]; pr != nil {
		return pr.cmd.Process.Pid
	}
	return 0
}

// cpuSeconds is a daemon's user+system CPU time so far.
func (v *venueRun) cpuSeconds(name string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", v.pid(name)))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// rssMiB is a daemon's anonymous resident memory (heap, stacks): the pages of the mapped
// journal and partitions it touched are the page cache's, not the process's.
func (v *venueRun) rssMiB(name string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", v.pid(name)))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "RssAnon:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// journalBytes is the committed bytes of the venue's journal segments.
func (v *venueRun) journalBytes() int64 {
	var n int64
	segs, _ := filepath.Glob(filepath.Join(v.journalDir("binance-perp"), "*.q"))
	for _, s := range segs {
		if h, err := format.ReadHeaderFile(s); err == nil {
			n += int64(h.Committed)
		}
	}
	return n
}

// partitionBytes is the committed bytes of every partition's book.q and the size of the
// files beside it (meta.json, index/).
func (v *venueRun) partitionBytes() int64 {
	var n int64
	filepath.Walk(filepath.Join(v.roots.Hot, "v1"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		if fi.Name() == "book.q" {
			if h, err := format.ReadHeaderFile(p); err == nil {
				n += int64(h.Committed)
			}
			return nil
		}
		n += fi.Size()
		return nil
	})
	return n
}
