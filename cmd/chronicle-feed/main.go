// Command chronicle-feed captures exchange market data into the Zone 1 raw journal
// (`run`) and journals recorded captures through the same path (`replay`).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/chronicle/chronicle/feed"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/venue"
	_ "github.com/chronicle/chronicle/venue/all"
)

const usage = `chronicle-feed captures exchange market data into the raw journal
(venues: binance-perp = Binance USD-M futures, binance-coinm = COIN-M futures, binance-spot).

Usage:
  chronicle-feed run    [flags]           capture live websockets and REST snapshots
  chronicle-feed replay [flags] FILE...   journal capture files (jsonl[.gz], cryptofeed ws+http)

The journal goes to {hot}/feed/{venue}/ (outside v1/), one segment per roll period.
Several files given to one replay are one stream, in order (one capture split in files).
Settings come from the [feed], [host] and [log] sections of --config; flags override the file.
SIGINT or SIGTERM closes the connections, journals the disconnects and seals the journal.

Examples:
  chronicle-feed run --config /etc/chronicle/chronicle.toml
  chronicle-feed run --symbols BTCUSDT,ETHUSDT --streams depth,aggTrade,bookTicker --depth-speed 100ms
  chronicle-feed run --hot /dev/shm/chronicle --metrics-addr 127.0.0.1:9464
  chronicle-feed run --ws-url ws://127.0.0.1:8080 --rest-url http://127.0.0.1:8080 --symbols ETHUSDT
  chronicle-feed run --venue binance-spot --symbols ETHUSDT,BTCUSDT
  chronicle-feed replay --speed 0 binance-usdm_ethusdt_20240808.jsonl.gz
  chronicle-feed replay --speed 0 --venue binance-coinm --journal-dir /tmp/j coinm_0808.jsonl.gz coinm_0809.jsonl.gz
  chronicle-feed replay --speed 10 --clock now cryptofeed_binance-futures.ws.txt
  chronicle-feed replay --journal-dir /tmp/journal --symbol ETHUSDT capture.jsonl

Flags:
`

var (
	prog = &cli.Command{Program: "chronicle-feed", Help: usage, FlagsTitle: "-", Usage: `chronicle-feed run    [flags]
chronicle-feed replay [flags] FILE...`}
	cmdRun    = &cli.Command{Program: "chronicle-feed", Name: "run", Help: usage, FlagsTitle: "-", Usage: "chronicle-feed run [flags]"}
	cmdReplay = &cli.Command{Program: "chronicle-feed", Name: "replay", Help: usage, FlagsTitle: "-", Usage: "chronicle-feed replay [flags] FILE..."}
)

func init() {
	prog.Flags = func() *pflag.FlagSet { fs, _ := newFlags(cmdRun); return fs }
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	sub := func(c *cli.Command) func([]string) int {
		return func(args []string) int {
			fs, fl := newFlags(c)
			if code, done := c.Parse(fs, args, stdout, stderr); done {
				return code
			}
			return c.Exit(stderr, runCmd(c.Name, fs, fl))
		}
	}
	return cli.Dispatch(prog, map[string]func([]string) int{"run": sub(cmdRun), "replay": sub(cmdReplay)},
		[]string{"run", "replay"}, args, stdout, stderr)
}

// runCmd checks the command line and the configuration, then starts the command: nothing
// (journal, log, metrics port) is opened before every setting is known good.
func runCmd(cmd string, fs *pflag.FlagSet, fl *cmdFlags) error {
	if cmd == "run" {
		if err := cli.Args(fs, 0, 0, ""); err != nil {
			return err
		}
	} else {
		if err := cli.Args(fs, 1, -1, "a capture FILE"); err != nil {
			return err
		}
		if err := feed.CheckReplayOptions(fl.replay); err != nil {
			return cli.Usage(err)
		}
	}
	cfg := feed.Defaults()
	logCfg := config.DefaultLog()
	// The journal lives under the hot tier, [tiers] hot.
	roots := layout.DefaultRoots()
	var host config.Host
	if err := config.Load(fl.config, map[string]any{"feed": &cfg, "log": &logCfg, "tiers": &roots, "host": &host}); err != nil {
		return err
	}
	cfg.HotRoot = roots.Hot
	check := func() error {
		var err error
		if cmd == "run" {
			_, err = feed.New(cfg, nil, nil) // validates the venue's subscription too
		} else if err = cfg.Validate(); err == nil {
			_, err = feed.LookupVenue(cfg.Venue)
		}
		_, _, herr := config.ResolveHost(host.ID)
		return errors.Join(err, logCfg.Validate(), herr)
	}
	apply := func() {
		fl.apply(fs, &cfg, &logCfg)
		if fs.Changed("host-id") {
			host.ID = fl.hostID
		}
	}
	if err := cli.Validate(fl.config, check, apply); err != nil {
		return err
	}
	cfg.Host, _, _ = config.ResolveHost(host.ID)
	if cmd == "replay" {
		fl.replay.Files = fs.Args()
		for _, f := range fl.replay.Files {
			if _, err := os.Stat(f); err != nil {
				return err
			}
		}
	}
	log, err := daemon.Logger(logCfg, "chronicle-feed")
	if err != nil {
		return err
	}
	// The refinery trusts what is in the journal: refuse directories other users could fill.
	journalRoots := []layout.LocalRoot{{Name: "journal", Dir: cfg.Dir()}}
	if cfg.JournalDir == "" {
		journalRoots = append([]layout.LocalRoot{{Name: "hot", Dir: cfg.HotRoot}}, journalRoots...)
	}
	if err := layout.CheckRoots(roots.AllowSharedRoots, log, journalRoots...); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	reg := daemon.Registry()
	var f *feed.Feed
	if cmd == "run" {
		if f, err = feed.New(cfg, log, reg); err != nil {
			return err
		}
	}
	if _, err := daemon.ServeMetrics(ctx, cfg.MetricsAddr, reg, log); err != nil {
		return err
	}
	switch cmd {
	case "run":
		daemon.Ready(log)
		if err := f.Run(ctx); err != nil {
			return fmt.Errorf("feed stopped: %w", err)
		}
	case "replay":
		stats, err := feed.Replay(ctx, cfg, fl.replay, log, reg)
		if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
			return fmt.Errorf("replay failed after %d messages: %w", stats.Messages, err)
		}
		log.Info("replay done", "files", stats.Files, "messages", stats.Messages, "snapshots", stats.Snapshots, "journal", cfg.Dir())
	}
	return nil
}

// cmdFlags holds parsed flags; config values are replaced only by flags given.
type cmdFlags struct {
	config                                 string
	replay                                 feed.ReplayOptions
	symbols, streams                       []string
	venue, depthSpeed, hotRoot, journalDir string
	wsURL, restURL                         string
	metricsAddr, logLevel, logFormat       string
	hostID                                 string
	snapshotLimit, maxStreams              int
	rollPeriod, retentionMinAge            time.Duration
}

func newFlags(c *cli.Command) (*pflag.FlagSet, *cmdFlags) {
	d := feed.Defaults()
	f := &cmdFlags{}
	fs := c.FlagSet()
	fs.StringVar(&f.config, "config", "", "shared TOML config file ([feed] and [log] sections)")
	fs.StringVar(&f.venue, "venue", d.Venue, "venue id: "+strings.Join(venue.Names(), ", "))
	fs.StringSliceVar(&f.symbols, "symbols", nil, "symbols to capture (BTCUSDT,ETHUSDT)")
	fs.StringSliceVar(&f.streams, "streams", d.Streams, "streams per symbol: depth, trade, aggTrade, bookTicker, or a raw suffix")
	fs.StringVar(&f.depthSpeed, "depth-speed", d.DepthSpeed, "depth stream speed: 0ms, 100ms, 250ms, 500ms (default: the venue's fastest)")
	fs.StringVar(&f.hotRoot, "hot", layout.DefaultRoots().Hot, "hot tier root; the journal is {hot}/feed/{venue} ([tiers] hot)")
	fs.StringVar(&f.journalDir, "journal-dir", "", "journal directory (instead of {hot}/feed/{venue})")
	fs.StringVar(&f.wsURL, "ws-url", d.WSURL, "websocket base URL (default: the venue's)")
	fs.StringVar(&f.restURL, "rest-url", d.RESTURL, "REST base URL (default: the venue's)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", d.MetricsAddr, "serve /metrics here (empty: off)")
	fs.StringVar(&f.hostID, "host-id", "", "this capture host's id, recorded in the journal ([host] id; default the hostname)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "json", "json or text")
	fs.IntVar(&f.snapshotLimit, "snapshot-limit", d.SnapshotLimit, "REST depth snapshot levels (5, 10, 20, 50, 100, 500, 1000)")
	fs.IntVar(&f.maxStreams, "max-streams-per-conn", d.MaxStreamsPerConn, "streams per websocket connection (0: the venue's limit)")
	fs.DurationVar(&f.rollPeriod, "roll-period", d.RollPeriod, "journal segment period")
	fs.DurationVar(&f.retentionMinAge, "retention-min-age", d.RetentionMinAge, "keep segments the ETL has read at least this long")
	fs.Float64Var(&f.replay.Speed, "speed", 1, "replay: pace as a multiple of the capture's (0 = as fast as possible)")
	fs.StringVar(&f.replay.Clock, "clock", "capture", "replay: receive times from the capture, or \"now\"")
	fs.StringVar(&f.replay.Symbol, "symbol", "", "replay: symbol of REST snapshots whose capture does not name it")
	return fs, f
}

func (f *cmdFlags) apply(fs *pflag.FlagSet, c *feed.Config, l *config.Log) {
	set := func(name string, fn func()) {
		if fs.Changed(name) {
			fn()
		}
	}
	set("venue", func() { c.Venue = f.venue })
	set("symbols", func() { c.Symbols = upper(f.symbols) })
	set("streams", func() { c.Streams = f.streams })
	set("depth-speed", func() { c.DepthSpeed = f.depthSpeed })
	set("hot", func() { c.HotRoot = f.hotRoot })
	set("journal-dir", func() { c.JournalDir = f.journalDir })
	set("ws-url", func() { c.WSURL = f.wsURL })
	set("rest-url", func() { c.RESTURL = f.restURL })
	set("metrics-addr", func() { c.MetricsAddr = f.metricsAddr })
	set("log-level", func() { l.Level = f.logLevel })
	set("log-format", func() { l.Format = f.logFormat })
	set("snapshot-limit", func() { c.SnapshotLimit = f.snapshotLimit })
	set("max-streams-per-conn", func() { c.MaxStreamsPerConn = f.maxStreams })
	set("roll-period", func() { c.RollPeriod = f.rollPeriod })
	set("retention-min-age", func() { c.RetentionMinAge = f.retentionMinAge })
}

func upper(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, strings.ToUpper(s))
		}
	}
	return out
}
