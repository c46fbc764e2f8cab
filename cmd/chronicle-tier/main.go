// Command chronicle-tier is the lifecycle manager: it moves partitions hot -> warm ->
// cold -> remote by age, crash-safely, and reports what each tier holds. The work is done
// by package tiers/lifecycle; this file parses flags, loads the shared configuration and
// wires signals, logs and metrics. docs/chronicle-tier.md is the manual.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

const usage = `chronicle-tier moves Chronicle partitions through the storage tiers by age:
sealed hot partitions to warm, warm partitions older than cold_after to cold (seekable
zstd, verified byte for byte), cold partitions older than remote_after to the object
store (uploaded, verified, then replaced by a local stub). Every move is crash-safe; each
run first finishes or rolls back whatever a crash interrupted.

Usage:
  chronicle-tier [flags] run       scan every --scan-interval and move (daemon, /metrics)
  chronicle-tier [flags] apply     recover and move once (progress bar on a terminal)
  chronicle-tier [flags] apply --dry-run
                                   print the plan, change nothing
  chronicle-tier [flags] status    partitions per tier, sizes, ratios, pending moves

Examples:
  chronicle-tier --config /etc/chronicle/chronicle.toml run
  chronicle-tier --config chronicle.toml apply --dry-run
  chronicle-tier --hot /tmp/demo/hot --warm /tmp/demo/warm --cold /tmp/demo/cold \
      --remote file:///tmp/demo/remote --now 2026-01-01 --derive parquet apply
  chronicle-tier --config chronicle.toml status --json
  chronicle-tier --config chronicle.toml --wait apply   (queue behind a running daemon)

One process owns a tier tree: run and apply lock .chronicle-tier.lock in every local root
and exit 3 naming the holder's pid if another chronicle-tier has it (--wait waits instead).
status and apply --dry-run read without the lock.

Many hosts may upload to one bucket: the first to claim a partition's key is its only
writer; another host that finds the key held keeps its partition local (listed by status
under "kept local") and uploads it under hosts/{its id}/ beside it, where research hosts
read it. Give every host its own [host] id.

Flags override the [tier], [tiers], [remote], [host] and [log] sections of --config:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	set                         *pflag.FlagSet
	configPath, now             string
	hot, warm, cold, remote     string
	coldAfter, remoteAfter      time.Duration
	scanInterval, hotSettle     time.Duration
	hotToWarm                   bool
	derive, metrics, verify     string
	encoder                     string
	concurrency, level, threads int
	bandwidth                   int64
	logLevel, logFormat         string
	hostID                      string
	dryRun, asJSON, wait        bool
}

func parseFlags(args []string, stderr io.Writer) (*flags, []string, error) {
	f := &flags{set: pflag.NewFlagSet("chronicle-tier", pflag.ContinueOnError)}
	s := f.set
	s.SetOutput(stderr)
	s.StringVar(&f.configPath, "config", "", "shared TOML configuration file")
	s.StringVar(&f.now, "now", "", "pretend the clock reads this at start (RFC 3339 or YYYY-MM-DD); for demos and tests")
	s.StringVar(&f.hot, "hot", "", "hot tier root ([tiers] hot)")
	s.StringVar(&f.warm, "warm", "", "warm tier root ([tiers] warm)")
	s.StringVar(&f.cold, "cold", "", "cold tier root ([tiers] cold)")
	s.StringVar(&f.remote, "remote", "", "remote tier URI, s3://bucket/prefix or file:///dir ([tiers] remote)")
	s.DurationVar(&f.coldAfter, "cold-after", 0, "move warm partitions whose day ended this long ago ([tier] cold_after)")
	s.DurationVar(&f.remoteAfter, "remote-after", 0, "upload cold partitions whose day ended this long ago; 0 disables ([tier] remote_after)")
	s.BoolVar(&f.hotToWarm, "hot-to-warm", true, "move sealed hot partitions to warm ([tier] hot_to_warm)")
	s.DurationVar(&f.hotSettle, "hot-settle", 0, "wait this long for a sealed hot book's meta.json ([tier] hot_settle)")
	s.StringVar(&f.derive, "derive", "", `"parquet": write derived/book.parquet during the cold move ([tier] derive)`)
	s.IntVar(&f.concurrency, "concurrency", 0, "partitions moved at once ([tier] concurrency)")
	s.Int64Var(&f.bandwidth, "bandwidth", 0, "bytes per second read from sources, all moves together; 0 = unlimited ([tier] bandwidth)")
	s.DurationVar(&f.scanInterval, "scan-interval", 0, "how often run scans ([tier] scan_interval)")
	s.IntVar(&f.level, "zstd-level", 0, "zstd level of the cold transcode ([tier] zstd_level)")
	s.StringVar(&f.encoder, "zstd-encoder", "", `"libzstd" (cgo builds, their default) or "go" ([tier] zstd_encoder)`)
	s.IntVar(&f.threads, "threads", 0, "compression threads per move, 0 = all cores ([tier] threads)")
	s.StringVar(&f.verify, "remote-verify", "", `"head" or "readback" ([tier] remote_verify)`)
	s.StringVar(&f.metrics, "metrics-addr", "", "listen address for /metrics in run; empty string in the file disables ([tier] metrics_addr)")
	s.StringVar(&f.hostID, "host-id", "", "this host's id: signs uploads, names its own slot when another host holds a key ([host] id; default the hostname)")
	s.StringVar(&f.logLevel, "log-level", "", "debug, info, warn, error ([log] level)")
	s.StringVar(&f.logFormat, "log-format", "", "json or text ([log] format)")
	s.BoolVar(&f.dryRun, "dry-run", false, "apply: print the plan and change nothing")
	s.BoolVar(&f.asJSON, "json", false, "status and apply --dry-run: print JSON")
	s.BoolVar(&f.wait, "wait", false, "run and apply: wait for another chronicle-tier holding the tier tree to exit, instead of failing")
	s.Usage = func() {
		fmt.Fprint(stderr, usage)
		s.PrintDefaults()
	}
	if err := s.Parse(args); err != nil {
		return nil, nil, err
	}
	return f, s.Args(), nil
}

// settings are the configuration sections after flags were applied.
type settings struct {
	cfg    lifecycle.Config
	roots  layout.Roots
	remote objstore.Config
	log    config.Log
	host   config.Host
	now    func() time.Time
}

func (f *flags) settings() (*settings, error) {
	st := &settings{cfg: lifecycle.DefaultConfig(), roots: layout.DefaultRoots(), log: config.DefaultLog(), now: time.Now}
	if err := config.Load(f.configPath, map[string]any{"tier": &st.cfg, "tiers": &st.roots, "remote": &st.remote, "log": &st.log, "host": &st.host}); err != nil {
		return nil, err
	}
	ch := f.set.Changed
	set := func(name string, apply func()) {
		if ch(name) {
			apply()
		}
	}
	set("hot", func() { st.roots.Hot = f.hot })
	set("warm", func() { st.roots.Warm = f.warm })
	set("cold", func() { st.roots.Cold = f.cold })
	set("remote", func() { st.roots.Remote = f.remote })
	set("cold-after", func() { st.cfg.ColdAfter = f.coldAfter })
	set("remote-after", func() { st.cfg.RemoteAfter = f.remoteAfter })
	set("hot-to-warm", func() { st.cfg.HotToWarm = f.hotToWarm })
	set("hot-settle", func() { st.cfg.HotSettle = f.hotSettle })
	set("derive", func() { st.cfg.Derive = f.derive })
	set("concurrency", func() { st.cfg.Concurrency = f.concurrency })
	set("bandwidth", func() { st.cfg.Bandwidth = f.bandwidth })
	set("scan-interval", func() { st.cfg.ScanInterval = f.scanInterval })
	set("zstd-level", func() { st.cfg.ZstdLevel = f.level })
	set("zstd-encoder", func() { st.cfg.ZstdEncoder = f.encoder })
	set("threads", func() { st.cfg.Threads = f.threads })
	set("remote-verify", func() { st.cfg.RemoteVerify = f.verify })
	set("metrics-addr", func() { st.cfg.MetricsAddr = f.metrics })
	set("host-id", func() { st.host.ID = f.hostID })
	set("log-level", func() { st.log.Level = f.logLevel })
	set("log-format", func() { st.log.Format = f.logFormat })
	if f.now != "" {
		t, err := time.Parse(time.RFC3339, f.now)
		if err != nil {
			if t, err = time.Parse(layout.DateLayout, f.now); err != nil {
				return nil, fmt.Errorf("--now %q: want RFC 3339 (2026-01-01T00:00:00Z) or YYYY-MM-DD", f.now)
			}
		}
		start := time.Now()
		st.now = func() time.Time { return t.Add(time.Since(start)) }
	}
	return st, st.cfg.Validate()
}

func run(args []string, stdout, stderr io.Writer) int {
	f, rest, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(rest) != 1 || (rest[0] != "run" && rest[0] != "apply" && rest[0] != "status") {
		fmt.Fprintf(stderr, "chronicle-tier: want one command, run, apply or status (got %q); see --help\n", strings.Join(rest, " "))
		return 2
	}
	cmd := rest[0]
	st, err := f.settings()
	if err != nil {
		fmt.Fprintf(stderr, "chronicle-tier: %v\n", err)
		return 2
	}
	log, err := daemon.Logger(st.log, "chronicle-tier")
	if err != nil {
		fmt.Fprintf(stderr, "chronicle-tier: %v\n", err)
		return 2
	}
	// Partitions found in the roots are moved and uploaded as ours: refuse roots other users
	// could fill.
	if err := layout.CheckRoots(st.roots.AllowSharedRoots, log, st.roots.LocalRoots()...); err != nil {
		log.Error("start", "err", err)
		return 2
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()

	var store objstore.Store
	if st.roots.Remote != "" {
		st.remote.Logger = log
		if store, err = objstore.Open(ctx, st.roots.Remote, st.remote); err != nil {
			log.Error("open remote tier", "err", err)
			return 1
		}
		defer store.Close()
	}
	reg := daemon.Registry()
	if store != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chronicle_objstore_get_resumes_total",
			Help: "Ranged GETs re-issued for the rest of a body that failed mid-stream (early EOF, reset, stall).",
		}, func() float64 { return float64(objstore.StatsOf(store).GetResumes) }))
	}
	host, from, err := config.ResolveHost(st.host.ID)
	if err != nil {
		log.Error("start", "err", err)
		return 2
	}
	m, err := lifecycle.New(lifecycle.Options{Config: st.cfg, Roots: st.roots, Store: store, Now: st.now, Registerer: reg, Logger: log, Host: host})
	if err != nil {
		log.Error("start", "err", err)
		return 2
	}
	if cmd == "run" || (cmd == "apply" && !f.dryRun) {
		lock, err := lifecycle.LockTree(ctx, st.roots, lifecycle.LockOptions{Wait: f.wait, OnWait: func(err error) {
			log.Info("waiting for the tier tree", "err", err)
		}})
		if err != nil {
			if ctx.Err() != nil {
				log.Info("stopped while waiting for the tier tree")
				return 0
			}
			log.Error("start", "err", err)
			if errors.Is(err, lifecycle.ErrLocked) {
				return 3
			}
			return 1
		}
		defer lock.Unlock()
	}
	switch cmd {
	case "status":
		return status(ctx, m, f.asJSON, stdout, log)
	case "apply":
		if f.dryRun {
			return dryRun(ctx, m, f.asJSON, stdout, log)
		}
		return apply(ctx, m, stderr, log)
	default:
		if _, err := daemon.ServeMetrics(ctx, st.cfg.MetricsAddr, reg, log); err != nil {
			log.Error("metrics", "err", err)
			return 1
		}
		log.Info("running", "host", host, "host_from", from, "hot", st.roots.Hot, "warm", st.roots.Warm, "cold", st.roots.Cold, "remote", st.roots.Remote,
			"scan_interval", st.cfg.ScanInterval.String(), "now", st.now().UTC().Format(time.RFC3339))
		daemon.Ready(log)
		if err := m.Run(ctx); err != nil {
			log.Error("run", "err", err)
			return 1
		}
		log.Info("stopped")
		return 0
	}
}

func status(ctx context.Context, m *lifecycle.Manager, asJSON bool, w io.Writer, log *slog.Logger) int {
	return report(log, "status", func() (*lifecycle.Status, error) { return m.Status(ctx) }, (*lifecycle.Status).WriteText, asJSON, w)
}

func dryRun(ctx context.Context, m *lifecycle.Manager, asJSON bool, w io.Writer, log *slog.Logger) int {
	text := func(p *lifecycle.Plan, w io.Writer) error { p.WriteText(w); return nil }
	return report(log, "plan", func() (*lifecycle.Plan, error) { return m.PlanOnly(ctx) }, text, asJSON, w)
}

// report writes what get returns to w as indented JSON, or as text; an error is logged
// under name and exits 1.
func report[T any](log *slog.Logger, name string, get func() (T, error), text func(T, io.Writer) error, asJSON bool, w io.Writer) int {
	v, err := get()
	if err == nil && asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(v)
	} else if err == nil {
		err = text(v, w)
	}
	if err != nil {
		log.Error(name, "err", err)
		return 1
	}
	return 0
}

func apply(ctx context.Context, m *lifecycle.Manager, stderr io.Writer, log *slog.Logger) int {
	var progress func(int64)
	if p, err := m.PlanOnly(ctx); err == nil && p.Bytes > 0 {
		if bar := daemon.Progress(p.Bytes, "moving"); bar != nil {
			var done int64
			progress = func(n int64) {
				done += n
				if done > bar.GetMax64() {
					bar.ChangeMax64(done)
				}
				bar.Add64(n)
			}
			defer func() { bar.Finish(); fmt.Fprintln(stderr) }()
		}
	}
	res, err := m.Apply(ctx, progress)
	if err != nil {
		log.Error("apply", "err", err)
		return 1
	}
	log.Info("apply done", "moved", res.Moved, "failed", res.Failed, "bytes", res.Bytes, "interrupted", ctx.Err() != nil)
	if res.Failed > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}
