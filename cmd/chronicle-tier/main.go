// Command chronicle-tier is the lifecycle manager: it moves partitions hot -> warm ->
// cold -> remote by age, crash-safely, and reports what each tier holds. The work is done
// by package tiers/lifecycle; this file parses flags, loads the shared configuration and
// wires signals, logs and metrics. docs/chronicle-tier.md is the manual.
package main

import (
	_ "embed"
	"errors"
	"io"
	"os"
	"slices"
	"time"

	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/spf13/pflag"
)

//go:embed usage.txt
var usage string

const (
	synopsis   = "chronicle-tier run    [flags]\nchronicle-tier apply  [flags] [--dry-run]\nchronicle-tier status [flags] [--json]"
	exitLocked = 3 // the documented exit code for a tier tree another chronicle-tier holds
)

var names = []string{"run", "apply", "status"}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// settings are the sections chronicle-tier reads, their flags bound onto their fields.
type settings struct {
	cfg                  lifecycle.Config
	roots                layout.Roots
	remote               objstore.Config
	log                  config.Log
	host                 config.Host
	fl                   *pflag.FlagSet
	bind                 *config.Binder
	configPath, now      string
	dryRun, asJSON, wait bool
}

func newSettings(c *cli.Command) *settings {
	s := &settings{cfg: lifecycle.DefaultConfig(), roots: layout.DefaultRoots(), log: config.DefaultLog(), fl: c.FlagSet()}
	s.fl.StringVar(&s.configPath, "config", "", "shared TOML configuration file")
	s.fl.StringVar(&s.now, "now", "", "pretend the clock reads this at start (RFC 3339 or YYYY-MM-DD); for demos and tests")
	s.fl.BoolVar(&s.dryRun, "dry-run", false, "apply: print the plan and change nothing")
	s.fl.BoolVar(&s.asJSON, "json", false, "status and apply --dry-run: print JSON")
	s.fl.BoolVar(&s.wait, "wait", false, "run and apply: wait for another chronicle-tier holding the tier tree to exit, instead of failing")
	s.bind = config.NewBinder(s.fl).Section("tier", &s.cfg).Section("tiers", &s.roots).Section("remote", &s.remote).
		Section("log", &s.log).Section("host", &s.host)
	return s
}

// run finds the command: flags may come before it (chronicle-tier --config FILE run).
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "help" && slices.Contains(names, args[1]) {
		args = []string{args[1], "--help"}
	}
	c := &cli.Command{Program: "chronicle-tier", Help: usage, FlagsTitle: "-", Usage: synopsis}
	s := newSettings(c)
	if c.Name = cli.FindCommand(args, names); c.Name != "" {
		c.Usage = cli.SynopsisOf(synopsis, c.Name)
	}
	if code, done := c.Parse(s.fl, args, stdout, stderr); done {
		return code
	} else if c.Name == "" {
		return c.NoCommand(s.fl, names, stdout, stderr)
	}
	return c.Exit(stderr, start(c.Name, s, stdout))
}

// load reads the config file under the flags given; now is the manager's clock.
func (s *settings) load() (now func() time.Time, err error) {
	if now, err = lifecycle.ClockAt(s.now); err != nil {
		return nil, cli.Usagef("--now %w", err)
	}
	if err := s.bind.Load(s.configPath); err != nil {
		return nil, err
	}
	check := func() error {
		_, _, herr := config.ResolveHost(s.host.ID)
		return errors.Join(s.cfg.Validate(), s.log.Validate(), herr)
	}
	return now, cli.Validate(s.configPath, check, s.bind.Apply)
}

// start checks the command line and the configuration, then runs the command: nothing
// (log, lock, object store, metrics port) is opened before every setting is known good.
func start(cmd string, s *settings, stdout io.Writer) error {
	if err := cli.Args(s.fl, 1, 1, "a command"); err != nil {
		return err
	} else if s.dryRun && cmd != "apply" {
		return cli.Usagef("--dry-run goes with apply")
	}
	now, err := s.load()
	if err != nil {
		return err
	}
	log, err := daemon.Logger(s.log, "chronicle-tier")
	if err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	reg := daemon.Registry()
	t, err := tiers.Open(ctx, tiers.OpenOptions{Roots: s.roots, Remote: s.remote, StoreOnly: true, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	defer t.Close()
	host, from, _ := config.ResolveHost(s.host.ID) // checked by load
	m, err := lifecycle.New(lifecycle.Options{Config: s.cfg, Roots: s.roots, Store: t.Store, Now: now, Registerer: reg, Logger: log, Host: host})
	if err != nil {
		return err
	}
	if cmd == "status" || s.dryRun {
		return m.Report(ctx, s.dryRun, s.asJSON, stdout)
	}
	lock, err := lifecycle.LockTree(ctx, s.roots, lifecycle.LockOptions{Wait: s.wait, OnWait: func(err error) { log.Info("waiting for the tier tree", "err", err) }})
	switch {
	case err != nil && ctx.Err() != nil:
		log.Info("stopped while waiting for the tier tree")
		return nil
	case errors.Is(err, lifecycle.ErrLocked):
		return cli.WithCode(exitLocked, err)
	case err != nil:
		return err
	}
	defer lock.Unlock()
	if cmd == "apply" {
		return m.ApplyOnce(ctx, func(total int64) (func(int64), func()) { b := daemon.NewBar(total, "moving"); return b.Add, b.Done })
	}
	if _, err := daemon.ServeMetrics(ctx, s.cfg.MetricsAddr, reg, log); err != nil {
		return err
	}
	log.Info("running", "host", host, "host_from", from, "roots", s.roots, "scan_interval", s.cfg.ScanInterval.String(), "now", now().UTC().Format(time.RFC3339))
	daemon.Ready(log)
	if err = m.Run(ctx); err == nil {
		log.Info("stopped")
	}
	return err
}
