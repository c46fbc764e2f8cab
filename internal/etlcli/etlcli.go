// Package etlcli is the chronicle-etl command line: run, backfill, status, merge and
// synth, their flags bound onto the [etl], [tiers], [host] and [log] sections
// (internal/config), each handing its work to etl, etl/merge or internal/synth. The main
// links the venues and hands the refinery its embedded symbol table; docs/chronicle-etl.md
// is the manual.
package etlcli

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
)

var (
	//go:embed usage.txt
	usage string
	//go:embed merge.txt
	mergeUsage string
	//go:embed synth.txt
	synthUsage string
)

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

// Main runs the command line args (without the program name) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
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

// flags are a command's flags: the sections' own bound onto their fields, and the
// command's.
type flags struct {
	set        *pflag.FlagSet
	bind       *config.Binder
	st         settings
	configPath string
	root       string
	sealAll    bool
	asJSON     bool
}

// settings are the sections chronicle-etl reads.
type settings struct {
	cfg   etl.Config
	roots layout.Roots
	log   config.Log
	host  config.Host
}

func newFlags(c *cli.Command) *flags {
	f := &flags{set: c.FlagSet(), st: settings{cfg: etl.Defaults(), roots: layout.DefaultRoots(), log: config.DefaultLog()}}
	s := f.set
	s.StringVar(&f.configPath, "config", "", "shared TOML configuration file")
	s.StringVar(&f.root, "root", "", "backfill, status: output root (v1/... goes below it); default the [etl] output tier's root")
	f.bind = config.NewBinder(s)
	if c == cmdMerge { // merge reads journals named on the command line and writes --root
		f.bind.Section("etl", &f.st.cfg, "grace", "snapshot-interval", "late-policy", "dim-symbol", "checkpoint-interval").
			FileOnly("tiers", &f.st.roots).FileOnly("host", &f.st.host)
	} else {
		f.bind.Section("etl", &f.st.cfg).Section("tiers", &f.st.roots, "hot", "warm").Section("host", &f.st.host)
		s.BoolVar(&f.sealAll, "seal-all", false, "backfill: the journal is complete; seal every partition at the end")
		s.BoolVar(&f.asJSON, "json", false, "status: print JSON")
	}
	f.bind.Section("log", &f.st.log)
	return f
}

// settings reads the config file under the flags given.
func (f *flags) settings() (*settings, error) {
	st := &f.st
	if err := f.bind.Load(f.configPath); err != nil {
		return nil, err
	}
	check := func() error {
		_, _, herr := config.ResolveHost(st.host.ID)
		return errors.Join(st.cfg.Validate(), st.log.Validate(), herr)
	}
	return st, cli.Validate(f.configPath, check, f.bind.Apply)
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

// oneShot starts a one-shot command (backfill, merge) that writes under root: its logger,
// the check that root is no other tier's, a context cancelled by SIGINT or SIGTERM (stop
// releases it) and the symbol table.
func (st settings) oneShot(root string) (*slog.Logger, context.Context, func(), *etl.TableWatcher, error) {
	log, err := daemon.Logger(st.log, "chronicle-etl")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := layout.CheckRoots(st.roots.AllowSharedRoots, log, layout.LocalRoot{Name: "output", Dir: root}); err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, stop := daemon.SignalContext(log)
	tw, err := etl.NewTableWatcher(st.cfg.DimSymbol, log, nil)
	if err != nil {
		stop()
		return nil, nil, nil, nil, err
	}
	return log, ctx, stop, tw, nil
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
	log, ctx, stop, tw, err := st.oneShot(f.root)
	if err != nil {
		return err
	}
	defer stop()
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
