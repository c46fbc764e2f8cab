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
	"time"

	"github.com/chronicle/chronicle/internal/cli"
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
  chronicle-tier run    [flags]              scan every --scan-interval and move (daemon, /metrics)
  chronicle-tier apply  [flags] [--dry-run]  recover and move once (progress bar on a terminal);
                                             --dry-run prints the plan and changes nothing
  chronicle-tier status [flags] [--json]     partitions per tier, sizes, ratios, pending moves
(flags may also come before the command: chronicle-tier --config FILE run)

Examples:
  chronicle-tier run --config /etc/chronicle/chronicle.toml
  chronicle-tier apply --config chronicle.toml --dry-run
  chronicle-tier apply --hot /tmp/demo/hot --warm /tmp/demo/warm --cold /tmp/demo/cold \
      --remote file:///tmp/demo/remote --now 2026-01-01 --derive parquet
  chronicle-tier status --config chronicle.toml --json
  chronicle-tier apply --config chronicle.toml --wait   (queue behind a running daemon)

One process owns a tier tree: run and apply lock .chronicle-tier.lock in every local root
and exit 3 naming the holder's pid if another chronicle-tier has it (--wait waits instead).
status and apply --dry-run read without the lock.

Many hosts may upload to one bucket: the first to claim a partition's key is its only
writer; another host that finds the key held keeps its partition local (listed by status
under "kept local") and uploads it under hosts/{its id}/ beside it, where research hosts
read it. Give every host its own [host] id.

Flags override the [tier], [tiers], [remote], [host] and [log] sections of --config:
`

var (
	prog = &cli.Command{Program: "chronicle-tier", Help: usage, FlagsTitle: "-", Usage: `chronicle-tier run    [flags]
chronicle-tier apply  [flags] [--dry-run]
chronicle-tier status [flags] [--json]`}
	cmds = map[string]*cli.Command{
		"run":    {Program: "chronicle-tier", Name: "run", Help: usage, FlagsTitle: "-", Usage: "chronicle-tier run [flags]"},
		"apply":  {Program: "chronicle-tier", Name: "apply", Help: usage, FlagsTitle: "-", Usage: "chronicle-tier apply [flags] [--dry-run]"},
		"status": {Program: "chronicle-tier", Name: "status", Help: usage, FlagsTitle: "-", Usage: "chronicle-tier status [flags] [--json]"},
	}
)

// exitLocked is the documented exit code for a tier tree another chronicle-tier holds.
const exitLocked = 3

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

func newFlags(c *cli.Command) *flags {
	f := &flags{set: c.FlagSet()}
	s := f.set
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
	return f
}

// command finds the command among args: flags may come before it (chronicle-tier
// --config FILE run), so it is the first argument that names one; nil if none does.
func command(args []string) *cli.Command {
	for _, a := range args {
		if a == "--" {
			break
		}
		if c, ok := cmds[a]; ok {
			return c
		}
	}
	return nil
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
	if f.now != "" {
		t, err := time.Parse(time.RFC3339, f.now)
		if err != nil {
			if t, err = time.Parse(layout.DateLayout, f.now); err != nil {
				return nil, cli.Usagef("--now %q: want RFC 3339 (2026-01-01T00:00:00Z) or YYYY-MM-DD", f.now)
			}
		}
		start := time.Now()
		st.now = func() time.Time { return t.Add(time.Since(start)) }
	}
	check := func() error {
		_, _, herr := config.ResolveHost(st.host.ID)
		return errors.Join(st.cfg.Validate(), st.log.Validate(), herr)
	}
	return st, cli.Validate(f.configPath, check, func() { f.apply(st) })
}

// apply sets what the flags given on the command line say over the file.
func (f *flags) apply(st *settings) {
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
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "help" && cmds[args[1]] != nil {
		args = []string{args[1], "--help"}
	}
	c := command(args)
	if c == nil {
		// No command: the program's help, or a usage error.
		c = prog
		f := newFlags(c)
		if code, done := c.Parse(f.set, args, stdout, stderr); done {
			return code
		}
		if f.set.NArg() == 0 {
			return c.Exit(stderr, cli.Usagef("missing command (run, apply or status)"))
		}
		if f.set.Arg(0) == "help" {
			c.PrintHelp(stdout, f.set)
			return 0
		}
		return c.Exit(stderr, cli.Usagef("unknown command %q (want run, apply or status)", f.set.Arg(0)))
	}
	f := newFlags(c)
	if code, done := c.Parse(f.set, args, stdout, stderr); done {
		return code
	}
	return c.Exit(stderr, start(c.Name, f, stdout, stderr))
}

// start checks the command line and the configuration, then runs the command: nothing
// (log, lock, object store, metrics port) is opened before every setting is known good.
func start(cmd string, f *flags, stdout, stderr io.Writer) error {
	if err := cli.Args(f.set, 1, 1, "a command"); err != nil {
		return err
	}
	if f.dryRun && cmd != "apply" {
		return cli.Usagef("--dry-run goes with apply")
	}
	st, err := f.settings()
	if err != nil {
		return err
	}
	log, err := daemon.Logger(st.log, "chronicle-tier")
	if err != nil {
		return err
	}
	// Partitions found in the roots are moved and uploaded as ours: refuse roots other users
	// could fill.
	if err := layout.CheckRoots(st.roots.AllowSharedRoots, log, st.roots.LocalRoots()...); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()

	var store objstore.Store
	if st.roots.Remote != "" {
		st.remote.Logger = log
		if store, err = objstore.Open(ctx, st.roots.Remote, st.remote); err != nil {
			return fmt.Errorf("open remote tier: %w", err)
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
		return err
	}
	m, err := lifecycle.New(lifecycle.Options{Config: st.cfg, Roots: st.roots, Store: store, Now: st.now, Registerer: reg, Logger: log, Host: host})
	if err != nil {
		return err
	}
	if cmd == "run" || (cmd == "apply" && !f.dryRun) {
		lock, err := lifecycle.LockTree(ctx, st.roots, lifecycle.LockOptions{Wait: f.wait, OnWait: func(err error) {
			log.Info("waiting for the tier tree", "err", err)
		}})
		if err != nil {
			if ctx.Err() != nil {
				log.Info("stopped while waiting for the tier tree")
				return nil
			}
			if errors.Is(err, lifecycle.ErrLocked) {
				return cli.WithCode(exitLocked, err)
			}
			return err
		}
		defer lock.Unlock()
	}
	switch cmd {
	case "status":
		return status(ctx, m, f.asJSON, stdout)
	case "apply":
		if f.dryRun {
			return dryRun(ctx, m, f.asJSON, stdout)
		}
		return apply(ctx, m, stderr, log)
	default:
		if _, err := daemon.ServeMetrics(ctx, st.cfg.MetricsAddr, reg, log); err != nil {
			return err
		}
		log.Info("running", "host", host, "host_from", from, "hot", st.roots.Hot, "warm", st.roots.Warm, "cold", st.roots.Cold, "remote", st.roots.Remote,
			"scan_interval", st.cfg.ScanInterval.String(), "now", st.now().UTC().Format(time.RFC3339))
		daemon.Ready(log)
		if err := m.Run(ctx); err != nil {
			return err
		}
		log.Info("stopped")
		return nil
	}
}

func status(ctx context.Context, m *lifecycle.Manager, asJSON bool, w io.Writer) error {
	return report("status", func() (*lifecycle.Status, error) { return m.Status(ctx) }, (*lifecycle.Status).WriteText, asJSON, w)
}

func dryRun(ctx context.Context, m *lifecycle.Manager, asJSON bool, w io.Writer) error {
	text := func(p *lifecycle.Plan, w io.Writer) error { p.WriteText(w); return nil }
	return report("plan", func() (*lifecycle.Plan, error) { return m.PlanOnly(ctx) }, text, asJSON, w)
}

// report writes what get returns to w as indented JSON, or as text; an error names what
// failed (name).
func report[T any](name string, get func() (T, error), text func(T, io.Writer) error, asJSON bool, w io.Writer) error {
	v, err := get()
	if err == nil && asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(v)
	} else if err == nil {
		err = text(v, w)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func apply(ctx context.Context, m *lifecycle.Manager, stderr io.Writer, log *slog.Logger) error {
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
		return fmt.Errorf("apply: %w", err)
	}
	log.Info("apply done", "moved", res.Moved, "failed", res.Failed, "bytes", res.Bytes, "interrupted", ctx.Err() != nil)
	switch {
	case res.Failed > 0:
		return fmt.Errorf("apply: %d of %d moves failed (the log says why)", res.Failed, res.Moved+res.Failed)
	case ctx.Err() != nil:
		return fmt.Errorf("apply: interrupted after %d moves", res.Moved)
	}
	return nil
}
