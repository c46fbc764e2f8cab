// Command chronicle-feed captures exchange market data into the Zone 1 raw journal
// (`run`) and journals recorded captures through the same path (`replay`). The work is
// feed's; this file binds the flags onto [feed], [tiers], [host] and [log] and wires
// signals, logs and metrics. docs/chronicle-feed.md is the manual.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/chronicle/chronicle/feed"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
	_ "github.com/chronicle/chronicle/venue/all"
)

var (
	//go:embed usage.txt
	usage string
	prog  = &cli.Command{Program: "chronicle-feed", Help: usage, FlagsTitle: "-", Usage: "chronicle-feed run    [flags]\nchronicle-feed replay [flags] FILE...",
		Flags: func() *pflag.FlagSet { return newSettings(cmdRun).fl }}
	cmdRun    = &cli.Command{Program: "chronicle-feed", Name: "run", Help: usage, FlagsTitle: "-", Usage: "chronicle-feed run [flags]"}
	cmdReplay = &cli.Command{Program: "chronicle-feed", Name: "replay", Help: usage, FlagsTitle: "-", Usage: "chronicle-feed replay [flags] FILE..."}
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	sub := func(c *cli.Command) func([]string) int {
		return func(args []string) int {
			s := newSettings(c)
			if code, done := c.Parse(s.fl, args, stdout, stderr); done {
				return code
			}
			return c.Exit(stderr, runCmd(c.Name, s))
		}
	}
	return cli.Dispatch(prog, map[string]func([]string) int{"run": sub(cmdRun), "replay": sub(cmdReplay)},
		[]string{"run", "replay"}, args, stdout, stderr)
}

// settings are the sections the feed reads, their flags bound onto their fields.
type settings struct {
	cfg        feed.Config
	roots      layout.Roots
	log        config.Log
	host       config.Host
	replay     feed.ReplayOptions
	configPath string
	fl         *pflag.FlagSet
	bind       *config.Binder
}

func newSettings(c *cli.Command) *settings {
	s := &settings{cfg: feed.Defaults(), roots: layout.DefaultRoots(), log: config.DefaultLog(), fl: c.FlagSet()}
	s.fl.StringVar(&s.configPath, "config", "", "shared TOML config file ([feed], [tiers], [host] and [log] sections)")
	s.fl.Float64Var(&s.replay.Speed, "speed", 1, "replay: pace as a multiple of the capture's (0 = as fast as possible)")
	s.fl.StringVar(&s.replay.Clock, "clock", "capture", "replay: receive times from the capture, or \"now\"")
	s.fl.StringVar(&s.replay.Symbol, "symbol", "", "replay: symbol of REST snapshots whose capture does not name it")
	s.bind = config.NewBinder(s.fl).Section("feed", &s.cfg).Section("tiers", &s.roots, "hot").Section("host", &s.host).Section("log", &s.log)
	return s
}

// load reads the config file under the flags given; symbols are upper-cased, as venues list them.
func (s *settings) load(cmd string) error {
	if err := s.bind.Load(s.configPath); err != nil {
		return err
	}
	check := func() error {
		s.cfg.HotRoot = s.roots.Hot
		s.cfg.Normalize()
		var err error
		if cmd == "run" {
			_, err = feed.New(s.cfg, nil, nil) // validates the venue's subscription too
		} else if err = s.cfg.Validate(); err == nil {
			_, err = feed.LookupVenue(s.cfg.Venue)
		}
		_, _, herr := config.ResolveHost(s.host.ID)
		return errors.Join(err, s.log.Validate(), herr)
	}
	if err := cli.Validate(s.configPath, check, s.bind.Apply); err != nil {
		return err
	}
	s.cfg.Host, _, _ = config.ResolveHost(s.host.ID)
	return nil
}

// runCmd checks the command line and the configuration, then starts the command: nothing
// (journal, log, metrics port) is opened before every setting is known good.
func runCmd(cmd string, s *settings) error {
	if cmd == "run" {
		if err := cli.Args(s.fl, 0, 0, ""); err != nil {
			return err
		}
	} else if err := errors.Join(cli.Args(s.fl, 1, -1, "a capture FILE"), cli.Usage(feed.CheckReplayOptions(s.replay))); err != nil {
		return err
	}
	if err := s.load(cmd); err != nil {
		return err
	}
	s.replay.Files = s.fl.Args()
	for _, f := range s.replay.Files {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	log, err := daemon.Logger(s.log, "chronicle-feed")
	if err != nil {
		return err
	}
	// The refinery trusts what is in the journal: refuse directories other users could fill.
	if err := layout.CheckRoots(s.roots.AllowSharedRoots, log, s.cfg.JournalRoots()...); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	reg := daemon.Registry()
	var f *feed.Feed
	if cmd == "run" {
		f, err = feed.New(s.cfg, log, reg)
	}
	if err != nil {
		return err
	} else if _, err := daemon.ServeMetrics(ctx, s.cfg.MetricsAddr, reg, log); err != nil {
		return err
	}
	if cmd == "run" {
		daemon.Ready(log)
		if err := f.Run(ctx); err != nil {
			return fmt.Errorf("feed stopped: %w", err)
		}
		return nil
	}
	stats, err := feed.Replay(ctx, s.cfg, s.replay, log, reg)
	if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		return fmt.Errorf("replay failed after %d messages: %w", stats.Messages, err)
	}
	log.Info("replay done", "files", stats.Files, "messages", stats.Messages, "snapshots", stats.Snapshots, "journal", s.cfg.Dir())
	return nil
}
