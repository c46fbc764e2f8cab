package research

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

// BenchmarkResearchFleet measures the research fleet (docs/research-fleet.md): the example
// script over every partition of a bucket (CHRONICLE_BENCH_FLEET_PARTITIONS generated
// partitions of CHRONICLE_BENCH_FLEET_RECORDS records each, default 16 of 500,000: 32 MB
// books of depth updates, trades and snapshot runs) on N = 1, 2 and 4 Dask workers, each a
// research host with a fresh mount (nothing cached) over its own 1 Gbit/s link. Figures:
// partitions per second and MB per second over the links (each task reads the partition's
// views/top10.npy, which its mount renders from the book it fetches), beside the same
// computation in one process without Dask on one such host, same round. Each figure's note
// names what bounds it: the busiest link against 1 Gbit/s, else the machine's cores when
// they are near full (with the shares of the decoders, chronicle-fs and the workers, and of
// the store, versitygw), else neither.
func BenchmarkResearchFleet(b *testing.B) {
	if testenv.Probe(b) {
		return
	}
	parts := testenv.BenchCount(b, "CHRONICLE_BENCH_FLEET_PARTITIONS", 16, 4)
	records := testenv.BenchCount(b, "CHRONICLE_BENCH_FLEET_RECORDS", 500000, 1000)
	srv := s3test.Start(b)
	f := newFleet(b, srv)
	host := newCaptureHost(b, srv)
	symbols := []string{"s00", "s01", "s02", "s03"}
	day0 := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	for i := range parts {
		k := layout.Key{Venue: "binance-perp", Symbol: symbols[i%len(symbols)], Date: day0.AddDate(0, 0, i/len(symbols)).Format(layout.DateLayout)}
		dir := filepath.Join(host.roots.Warm, filepath.FromSlash(k.Dir()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := lt.WriteBook(filepath.Join(dir, layout.BookName), k, int64(records), uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
	host.upload(b, f.hub)
	testenv.Note(b, "scale.research", fmt.Sprintf("%d generated partitions of %d records (books.Gen) in one versitygw bucket; "+
		"each worker: its own network namespace, chronicle-fs (remote tier only, read-only keys, fresh disk cache) and dask-worker --nthreads 2, "+
		"over its own veth link shaped to 1 Gbit/s (tc tbf); scheduler, client and versitygw in a hub namespace; %d cores",
		parts, records, runtime.NumCPU()))
	const maxN = 4
	for range maxN {
		f.addWorker()
	}
	f.startScheduler()

	for range b.N {
		// The baseline: one process, one research host, no Dask.
		testenv.DropCaches()
		w0 := f.workers[0]
		f.mount(w0)
		link0 := f.linkBytes(w0)
		_, base := runScript(b, w0.ns, nil, "--local", w0.mp)
		baseLink := f.linkBytes(w0) - link0
		f.stopWorker(w0)
		baseBytes := float64(baseLink) / base.Seconds / 1e6
		for _, n := range []int{1, 2, 4} {
			testenv.DropCaches()
			ws := f.workers[:n]
			for _, w := range ws {
				f.mount(w)
				f.startWorker(w, 2)
			}
			f.waitWorkers(n) // started and registered: their start-up is not measured
			links0 := make([]int64, n)
			for i, w := range ws {
				links0[i] = f.linkBytes(w)
			}
			cpu0, busy0, t0 := f.cpu(ws), machineBusy(), time.Now()
			_, got := runScript(b, f.hub, nil, "--scheduler", fmt.Sprintf("tcp://127.0.0.1:%d", daskPort), "--workers", strconv.Itoa(n))
			wall := time.Since(t0).Seconds()
			cpu1, busy1 := f.cpu(ws), machineBusy()
			var total, busiest int64
			for i, w := range ws {
				d := f.linkBytes(w) - links0[i]
				total += d
				busiest = max(busiest, d)
			}
			for _, w := range ws {
				f.stopWorker(w)
			}
			if got.Partitions != parts || base.Partitions != parts || got.Bytes != base.Bytes || got.Bytes < int64(parts)*1000 {
				b.Fatalf("N=%d: %d partitions, %d bytes of views; one process %d, %d bytes; want %d partitions", n, got.Partitions, got.Bytes, base.Partitions, base.Bytes, parts)
			}
			id := fmt.Sprintf("scale.research.n%d", n)
			note := boundNote(cpu1.sub(cpu0), wall, float64(busiest)/wall, busy1-busy0)
			testenv.Emit(b, testenv.Figure{ID: id, Value: float64(got.Partitions) / got.Seconds, Baseline: float64(base.Partitions) / base.Seconds,
				Unit: "partitions/s", Note: note})
			testenv.Emit(b, testenv.Figure{ID: id + ".bytes", Value: float64(total) / got.Seconds / 1e6, Baseline: baseBytes, Unit: "MB/s",
				Note: fmt.Sprintf("%.1f MB over the links; views read %.1f MB", float64(total)/1e6, float64(got.Bytes)/1e6)})
		}
	}
}

// linkBytes is what the hub has sent over w's link so far.
func (f *fleet) linkBytes(w *fleetWorker) int64 {
	out, err := exec.Command("ip", "-n", filepath.Base(f.hub), "-s", "-j", "link", "show", "dev", w.hubDev).Output()
	if err != nil {
		f.t.Fatalf("ip -s link show %s: %v", w.hubDev, err)
	}
	var links []struct {
		Stats struct {
			Tx struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		f.t.Fatalf("ip -s -j link show %s: %v: %s", w.hubDev, err, out)
	}
	return links[0].Stats.Tx.Bytes
}

// cpuUse is CPU seconds used so far, by role.
type cpuUse map[string]float64

func (a cpuUse) sub(b cpuUse) cpuUse {
	out := cpuUse{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// cpu reads the CPU time of the fleet's processes: the mounts (chronicle-fs), the Dask
// workers and scheduler, and the store (versitygw).
func (f *fleet) cpu(ws []*fleetWorker) cpuUse {
	u := cpuUse{"chronicle-fs": 0, "dask": 0, "versitygw": cpuSeconds(f.srv.Pid())}
	for _, w := range ws {
		u["chronicle-fs"] += cpuSeconds(w.fs.Cmd.Process.Pid)
		u["dask"] += cpuSeconds(w.dask.Process.Pid)
	}
	u["dask"] += cpuSeconds(f.sched.Process.Pid)
	return u
}

// cpuSeconds is a process's user + system time (its own threads), from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// machineBusy is the machine's busy CPU time so far (every process, every core), from
// /proc/stat, in seconds.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy / 100 // USER_HZ
}

// boundNote names what bounds a round: the busiest link when it runs near 1 Gbit/s, else
// the CPU when the machine's cores are near full (the decoders' and the store's shares of
// it say whose), else neither (waits: round trips, scheduling).
func boundNote(u cpuUse, wall, linkBps, busy float64) string {
	cores := float64(runtime.NumCPU())
	share := func(s float64) float64 { return s / wall / cores * 100 }
	link := linkBps / 125e6 * 100
	machine := busy / wall / cores * 100
	dec, store := share(u["chronicle-fs"]+u["dask"]), share(u["versitygw"])
	bound := "round trips (no resource saturated)"
	switch {
	case link >= 80:
		bound = "link"
	case machine >= 85 && dec+store < machine/2:
		bound = "CPU, mostly taken by other processes (the machine's load)"
	case machine >= 85 && store > dec:
		bound = "store (CPU)"
	case machine >= 85:
		bound = "decode CPU"
	}
	return fmt.Sprintf("bound: %s; busiest link %.0f%% of 1 Gbit/s; the machine's %d cores %.0f%% busy: decoders %.0f%% (chronicle-fs %.0f%%, dask workers %.0f%%), store (versitygw) %.0f%%, the rest other processes",
		bound, link, int(cores), machine, dec, share(u["chronicle-fs"]), share(u["dask"]), store)
}
