// Command chronicle-etl is the refinery: it turns the feed's raw journal into canonical
// partitions (run: a daemon tailing every venue journal; backfill: one pass over segment
// files), reports where it stands (status) and writes synthetic partitions for demos and
// benchmarks (synth). The work is done by package etl; this file parses flags, loads the
// shared configuration and wires signals, logs and metrics. docs/chronicle-etl.md is the manual.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/chronicle/chronicle/deploy"
	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
	_ "github.com/chronicle/chronicle/venue/all"
)

const usage = `chronicle-etl refines the feed's raw journal into canonical partitions:
order books rebuilt by the venue's rules, a snapshot run at every partition open, resync
and 60 s of exchange time, invalid-book intervals marked, symbols resolved against the
SCD2 dim_symbol table, one v1/{venue}/{symbol}/{date}/book.q per symbol and UTC exchange
date with meta.json and index/ beside it. A checkpoint in the output root makes every
restart resume exactly: output is byte-identical to an uninterrupted run.

Usage:
  chronicle-etl run      [flags]                    tail {hot}/feed/* and refine (daemon, /metrics)
  chronicle-etl backfill [flags] --root ROOT JOURNAL_DIR|SEGMENT...
                                                    refine journal segments once, then stop
  chronicle-etl status   [flags] [--json]           where each venue stands, open partitions
  chronicle-etl merge    [flags] --root ROOT JOURNAL_A JOURNAL_B
                                                    A/B merge of two hosts' journals (see merge --help)
  chronicle-etl synth    [flags]                    write synthetic partitions (demos, benchmarks)

Examples:
  chronicle-etl run --config /etc/chronicle/chronicle.toml
  chronicle-etl run --hot /dev/shm/chronicle --warm /mnt/nvme-warm/chronicle --metrics-addr 127.0.0.1:9465
  chronicle-etl backfill --root /tmp/books /dev/shm/chronicle/feed/binance-perp
  chronicle-etl backfill --root /tmp/books --seal-all /tmp/journal/00000001-20240808T230000Z.q
  chronicle-etl backfill --root /tmp/books --dim-symbol /etc/chronicle/dim_symbol.parquet /dev/shm/chronicle/feed
  chronicle-etl status --config /etc/chronicle/chronicle.toml --json
  chronicle-etl merge --root /data/merged /mnt/a/feed/binance-perp /mnt/b/feed/binance-perp
  chronicle-etl synth --root /tmp/warm --symbols eth-usdt,btc-usdt --days 30 --bytes 16MiB

Flags override the [etl], [tiers], [host] and [log] sections of --config:
`

var (
	prog = &cli.Command{Program: "chronicle-etl", Help: usage, FlagsTitle: "-", Usage: `chronicle-etl run      [flags]
chronicle-etl backfill [flags] --root ROOT JOURNAL_DIR|SEGMENT...
chronicle-etl status   [flags] [--json]
chronicle-etl merge    [flags] --root ROOT JOURNAL_A JOURNAL_B
chronicle-etl synth    [flags]`}
	cmdRun      = &cli.Command{Program: "chronicle-etl", Name: "run", Help: usage, FlagsTitle: "-", Usage: "chronicle-etl run [flags]"}
	cmdBackfill = &cli.Command{Program: "chronicle-etl", Name: "backfill", Help: usage, FlagsTitle: "-",
		Usage: "chronicle-etl backfill [flags] --root ROOT JOURNAL_DIR|SEGMENT..."}
	cmdStatus = &cli.Command{Program: "chronicle-etl", Name: "status", Help: usage, FlagsTitle: "-", Usage: "chronicle-etl status [flags] [--json]"}
	cmdMerge  = &cli.Command{Program: "chronicle-etl", Name: "merge", Help: mergeUsage, FlagsTitle: "-",
		Usage: "chronicle-etl merge [flags] --root ROOT JOURNAL_A JOURNAL_B"}
)

func init() { prog.Flags = func() *pflag.FlagSet { return newFlags(cmdRun).set } }

// The refinery's default symbol table is the one this binary embeds (deploy/).
func init() { symbols.SetDefault(deploy.DimSymbolCSV) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	sub := func(c *cli.Command, do func(*flags) error) func([]string) int {
		return func(args []string) int {
			f := newFlags(c)
			if code, done := c.Parse(f.set, args, stdout, stderr); done {
				return code
			}
			return c.Exit(stderr, do(f))
		}
	}
	return cli.Dispatch(prog, map[string]func([]string) int{
		"run":      sub(cmdRun, runDaemon),
		"backfill": sub(cmdBackfill, func(f *flags) error { return runBackfill(f, stderr) }),
		"status":   sub(cmdStatus, func(f *flags) error { return runStatus(f, stdout) }),
		"merge":    func(args []string) int { return mergeCmd(args, stdout, stderr) },
		"synth":    func(args []string) int { return runSynth(args, stdout, stderr) },
	}, []string{"run", "backfill", "status", "merge", "synth"}, args, stdout, stderr)
}

type flags struct {
	set                              *pflag.FlagSet
	configPath, root, hot, warm      string
	output, latePolicy, dimSymbol    string
	metricsAddr, logLevel, logFormat string
	hostID                           string
	grace, snapshotInterval          time.Duration
	checkpointInterval, idleSpin     time.Duration
	venues                           []string
	sealAll, asJSON                  bool
}

func newFlags(c *cli.Command) *flags {
	d := etl.Defaults()
	f := &flags{set: c.FlagSet()}
	s := f.set
	s.StringVar(&f.configPath, "config", "", "shared TOML configuration file")
	s.StringVar(&f.root, "root", "", "backfill, status: output root (v1/... goes below it); default the [etl] output tier's root")
	s.StringVar(&f.hot, "hot", "", "hot tier root; journals are {hot}/feed/{venue} ([tiers] hot)")
	s.StringVar(&f.warm, "warm", "", "warm tier root ([tiers] warm)")
	s.StringVar(&f.output, "output", d.Output, `output tier: "warm" or "hot" ([etl] output)`)
	s.StringSliceVar(&f.venues, "venues", nil, "run: venues to refine; default every {hot}/feed/* ([etl] venues)")
	s.DurationVar(&f.grace, "grace", d.Grace, "keep the previous day open this long past midnight, exchange time ([etl] grace)")
	s.DurationVar(&f.snapshotInterval, "snapshot-interval", d.SnapshotInterval, "snapshot run every this much exchange time ([etl] snapshot_interval)")
	s.StringVar(&f.latePolicy, "late-policy", d.LatePolicy, `events of a sealed partition: "reject" or "late_stream" ([etl] late_policy)`)
	s.StringVar(&f.dimSymbol, "dim-symbol", "", "dim_symbol table, .csv or .parquet; default the embedded one ([etl] dim_symbol)")
	s.DurationVar(&f.checkpointInterval, "checkpoint-interval", d.CheckpointInterval, "make output and state durable this often ([etl] checkpoint_interval)")
	s.DurationVar(&f.idleSpin, "idle-spin", d.IdleSpin, "run: busy-poll the journal this long after the last record; 0 = never ([etl] idle_spin)")
	s.StringVar(&f.metricsAddr, "metrics-addr", d.MetricsAddr, "run: serve /metrics here; empty = off ([etl] metrics_addr)")
	s.StringVar(&f.hostID, "host-id", "", "this capture host's id, recorded in meta.json ([host] id; default the hostname)")
	s.StringVar(&f.logLevel, "log-level", "", "debug, info, warn, error ([log] level)")
	s.StringVar(&f.logFormat, "log-format", "", "json or text ([log] format)")
	s.BoolVar(&f.sealAll, "seal-all", false, "backfill: the journal is complete; seal every partition at the end")
	s.BoolVar(&f.asJSON, "json", false, "status: print JSON")
	return f
}

type settings struct {
	cfg   etl.Config
	roots layout.Roots
	log   config.Log
	host  config.Host
}

func (f *flags) settings() (*settings, error) {
	st := &settings{cfg: etl.Defaults(), roots: layout.DefaultRoots(), log: config.DefaultLog()}
	if err := config.Load(f.configPath, map[string]any{"etl": &st.cfg, "tiers": &st.roots, "log": &st.log, "host": &st.host}); err != nil {
		return nil, err
	}
	check := func() error {
		_, _, herr := config.ResolveHost(st.host.ID)
		return errors.Join(st.cfg.Validate(), st.log.Validate(), herr)
	}
	return st, cli.Validate(f.configPath, check, func() { f.apply(st) })
}

// apply sets what the flags given on the command line say over the file.
func (f *flags) apply(st *settings) {
	set := func(name string, apply func()) {
		if f.set.Changed(name) {
			apply()
		}
	}
	set("hot", func() { st.roots.Hot = f.hot })
	set("warm", func() { st.roots.Warm = f.warm })
	set("output", func() { st.cfg.Output = f.output })
	set("venues", func() { st.cfg.Venues = f.venues })
	set("grace", func() { st.cfg.Grace = f.grace })
	set("snapshot-interval", func() { st.cfg.SnapshotInterval = f.snapshotInterval })
	set("late-policy", func() { st.cfg.LatePolicy = f.latePolicy })
	set("dim-symbol", func() { st.cfg.DimSymbol = f.dimSymbol })
	set("checkpoint-interval", func() { st.cfg.CheckpointInterval = f.checkpointInterval })
	set("idle-spin", func() { st.cfg.IdleSpin = f.idleSpin })
	set("metrics-addr", func() { st.cfg.MetricsAddr = f.metricsAddr })
	set("log-level", func() { st.log.Level = f.logLevel })
	set("log-format", func() { st.log.Format = f.logFormat })
	set("host-id", func() { st.host.ID = f.hostID })
}

// metaHost is the host id meta.json records: [host] id (or --host-id), else the hostname.
func (st *settings) metaHost() (*meta.Host, error) {
	id, from, err := config.ResolveHost(st.host.ID)
	if err != nil {
		return nil, err
	}
	return &meta.Host{ID: id, From: from}, nil
}

// outputRoot is --root, else the configured output tier's root.
func (f *flags) outputRoot(st *settings) string {
	if f.root != "" {
		return f.root
	}
	if st.cfg.Output == "hot" {
		return st.roots.Hot
	}
	return st.roots.Warm
}

func runDaemon(f *flags) error {
	if err := cli.Args(f.set, 0, 0, ""); err != nil {
		return err
	}
	st, err := f.settings()
	if err != nil {
		return err
	}
	log, err := daemon.Logger(st.log, "chronicle-etl")
	if err != nil {
		return err
	}
	root := f.outputRoot(st)
	// The journals are read and the partitions written as trusted: refuse roots other
	// users could fill.
	if err := layout.CheckRoots(st.roots.AllowSharedRoots, log, layout.LocalRoot{Name: "hot", Dir: st.roots.Hot},
		layout.LocalRoot{Name: "output", Dir: root}); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	reg := daemon.Registry()
	if _, err := daemon.ServeMetrics(ctx, st.cfg.MetricsAddr, reg, log); err != nil {
		return err
	}
	m := etl.NewMetrics(reg)
	tw, err := etl.NewTableWatcher(st.cfg.DimSymbol, log, m)
	if err != nil {
		return err
	}
	log.Info("refinery starting", "journals", filepath.Join(st.roots.Hot, "feed"), "output", root, "dim_symbol", tw.Table().Source())
	host, err := st.metaHost()
	if err != nil {
		return err
	}
	return etl.RunDaemon(ctx, etl.DaemonOptions{Config: st.cfg, HotRoot: st.roots.Hot, Root: root, Log: log, Metrics: m, Table: tw,
		Ready: func() { daemon.Ready(log) }, Host: host})
}

func runBackfill(f *flags, stderr io.Writer) error {
	if f.root == "" {
		return cli.Usagef("backfill needs --root (where v1/... is written)")
	}
	if err := cli.Args(f.set, 1, -1, "a journal directory or segment files"); err != nil {
		return err
	}
	st, err := f.settings()
	if err != nil {
		return err
	}
	// Every argument must exist before anything starts.
	for _, a := range f.set.Args() {
		if _, err := os.Stat(a); err != nil {
			return err
		}
	}
	log, err := daemon.Logger(st.log, "chronicle-etl")
	if err != nil {
		return err
	}
	if err := layout.CheckRoots(st.roots.AllowSharedRoots, log, layout.LocalRoot{Name: "output", Dir: f.root}); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	tw, err := etl.NewTableWatcher(st.cfg.DimSymbol, log, nil)
	if err != nil {
		return err
	}
	// Arguments: journal directories (or a feed directory of venue journals), or segment
	// files (one journal per parent directory).
	type job struct {
		dir  string
		segs []string
	}
	var jobs []job
	files := map[string][]string{}
	var fileDirs []string
	for _, a := range f.set.Args() {
		fi, err := os.Stat(a)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			dirs, err := etl.Journals(a)
			if err != nil {
				return err
			}
			if len(dirs) == 0 {
				return fmt.Errorf("%s holds no journal segments", a)
			}
			for _, d := range dirs {
				jobs = append(jobs, job{dir: d})
			}
			continue
		}
		d := filepath.Dir(a)
		if files[d] == nil {
			fileDirs = append(fileDirs, d)
		}
		files[d] = append(files[d], a)
	}
	for _, d := range fileDirs {
		jobs = append(jobs, job{dir: d, segs: files[d]})
	}
	cfg := st.cfg
	cfg.DimReload = 0
	host, err := st.metaHost()
	if err != nil {
		return err
	}
	for _, j := range jobs {
		bar := &progress{desc: "refining " + filepath.Base(j.dir)}
		opt := etl.Options{Config: cfg, Root: f.root, JournalDir: j.dir, Segments: j.segs, SealAll: f.sealAll,
			Table: tw.Table, Log: log, Host: host, Listener: bar}
		stats, err := etl.Refine(ctx, opt)
		if bar.finish() {
			fmt.Fprintln(stderr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", j.dir, err)
		}
		log.Info("backfill done", "journal", j.dir, "venue", stats.Venue, "frames", stats.Frames, "bytes", stats.Bytes,
			"sealed", stats.Sealed, "open", stats.Open, "diverged", stats.Diverged)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func runStatus(f *flags, stdout io.Writer) error {
	if err := cli.Args(f.set, 0, 0, ""); err != nil {
		return err
	}
	st, err := f.settings()
	if err != nil {
		return err
	}
	root := f.outputRoot(st)
	vs, err := etl.Status(root, st.roots.Hot)
	if err != nil {
		return err
	}
	if f.asJSON {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		return e.Encode(vs)
	}
	if len(vs) == 0 {
		fmt.Fprintf(stdout, "no refinery checkpoints in %s\n", root)
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, v := range vs {
		fmt.Fprintf(w, "venue %s\tsegment %s offset %d\tcheckpoint %s\texchange clock %s\tlag %s\n", v.Venue, v.Segment, v.Offset,
			v.Updated.Format(time.RFC3339), v.Clock.Format(time.RFC3339), bytesize.Format(v.LagBytes))
		for _, p := range v.Partitions {
			rel, _ := filepath.Rel(root, p.Path)
			fmt.Fprintf(w, "  %s\t%d records\t%d depth updates, %d trades\t%d invalid intervals\n", rel, p.Records, p.DepthUpdates, p.Trades, p.Invalid)
		}
	}
	return w.Flush()
}
