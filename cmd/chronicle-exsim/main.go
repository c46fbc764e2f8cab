// Command chronicle-exsim serves recorded exchange captures as a local exchange on
// loopback, for the demo and for tests that run the real binaries: each capture is one
// market with its venue's websocket and REST depth endpoint (package internal/exsim).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/venue"
	_ "github.com/chronicle/chronicle/venue/all"
)

const usage = `chronicle-exsim serves recorded exchange captures as a local exchange, for demos and
tests: each capture is one market speaking its venue's protocol, replayed to every
connection that subscribes: Binance (combined-stream websocket, REST depth snapshots), OKX
and Kraken (subscribe requests answered as the venue does, book snapshots on the websocket
with the venue's checksum, keep-alives, REST reference data). Loopback only.

Usage:
  chronicle-exsim [flags]                               every bundled capture in --captures
  chronicle-exsim [flags] NAME=VENUE:FILE[,FILE...]...  these captures (files are one stream)

Market NAME is served under /NAME:
  websocket  ws://ADDR/NAME/stream?streams=... (Binance), ws://ADDR/NAME/ws/v5/public (okx),
             ws://ADDR/NAME/ (kraken-spot)
  REST       http://ADDR/NAME/fapi/v1/depth (binance-perp), /dapi/v1/depth (binance-coinm),
             /api/v3/depth (binance-spot), /api/v5/public/instruments (okx),
             /0/public/AssetPairs (kraken-spot)
so chronicle-feed captures it with --ws-url ws://ADDR/NAME --rest-url http://ADDR/NAME.
With --play snapshots (the default) a market starts publishing once every symbol with a
depth stream has been served its REST snapshot (OKX, Kraken: once every stream of the
capture is subscribed): a feed that asks for snapshots when it connects receives the
capture from its first message, bridged as the capture was.

--state-dir DIR is how scripts follow it:
  DIR/addr        the address it serves on, once it does
  DIR/NAME.feed   the chronicle-feed flags that capture market NAME (venue, symbols,
                  streams, depth speed, URLs), one line
  DIR/NAME.done   once every message of NAME is published and written to every
                  connection: "messages N sent S"

Bundled markets (--captures, the README there describes them): usdm (binance-perp ETHUSDT),
coinm (binance-coinm ETHUSD_PERP, two files), spot (binance-spot ETHUSDT, two files),
cryptofeed (binance-perp, four symbols, ws log merged with its http log), okx (BTC-USDT,
UNI-USD-SWAP, BTC-USD-220527), kraken (ten pairs, three logs merged by receive time).

Examples:
  chronicle-exsim --captures ../shared/data/captures --state-dir /tmp/exsim
  chronicle-exsim --listen 127.0.0.1:8080 --speed 10 \
      spot=binance-spot:binance-spot_ethusdt_20240808.jsonl.gz,binance-spot_ethusdt_20240809.jsonl.gz
  chronicle-feed run --hot /tmp/hot $(cat /tmp/exsim/spot.feed)
  chronicle-exsim --load 300 --speed 1 --play now --state-dir /tmp/exsim   # a whole venue

Load mode (--load M): one market "load" of M USD-M symbols ETH000USDT..., each a copy of
--load-source renamed, its prices k units up, started 1/M of the recording after the one
before, looped (update ids chain across the loop) at --speed times real time, for as long
as it runs; at most 200 streams a connection, the REST weight budget per minute answered
429 with Retry-After when spent and 418 (a ban) to a client that asks again in that
minute. GET /load/exsim/stats: its counters as JSON. --state-dir gets load.feed (the
chronicle-feed flags) and load.dim_symbol.csv (the derived symbols for [etl] dim_symbol).

SIGINT or SIGTERM closes every connection and exits 0.

Flags:
`

var prog = &cli.Command{Program: "chronicle-exsim", Help: usage, FlagsTitle: "-", Usage: `chronicle-exsim [flags]
chronicle-exsim [flags] NAME=VENUE:FILE[,FILE...]...`}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type flags struct {
	listen, captures, play, stateDir string
	speed                            float64
	logLevel, logFormat              string
	// Load mode (exsim.LoadOptions).
	load       int
	loadSource string
	loadWeight int
}

func run(args []string, stdout, stderr io.Writer) int {
	var f flags
	fs := prog.FlagSet()
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "address to serve on (port 0: any free port; see --state-dir)")
	fs.StringVar(&f.captures, "captures", defaultCaptures(), "directory of the bundled captures (and of relative FILE arguments)")
	fs.Float64Var(&f.speed, "speed", 0, "pace as a multiple of the capture's own (0: as fast as the connections take it)")
	fs.StringVar(&f.play, "play", "snapshots", `start publishing: "snapshots" (once every depth symbol got its REST snapshot) or "now"`)
	fs.StringVar(&f.stateDir, "state-dir", "", "write addr, NAME.feed and NAME.done here")
	fs.IntVar(&f.load, "load", 0, "load mode: serve this many symbols derived from --load-source as market \"load\" (needs --speed > 0)")
	fs.StringVar(&f.loadSource, "load-source", "binance-usdm_ethusdt_20240808.jsonl.gz", "load mode: the capture (one depth symbol with its snapshot) every symbol is a copy of")
	fs.IntVar(&f.loadWeight, "load-weight", 0, "load mode: REST weight budget per minute (0: the venue's, 2400 on USD-M)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "json or text")
	if code, done := prog.Parse(fs, args, stdout, stderr); done {
		return code
	}
	return prog.Exit(stderr, start(f, fs.Args()))
}

// start checks the command line, then serves.
func start(f flags, args []string) error {
	if f.play != "snapshots" && f.play != "now" {
		return cli.Usagef("--play %q: want snapshots or now", f.play)
	}
	if f.speed < 0 {
		return cli.Usagef("--speed %v: want 0 or more", f.speed)
	}
	if f.load < 0 || (f.load > 0 && (f.speed <= 0 || len(args) > 0)) {
		return cli.Usagef("--load %d: want a positive count with --speed > 0 and no market arguments", f.load)
	}
	sets, err := parseSets(args)
	if err != nil {
		return cli.Usage(err)
	}
	lc := config.Log{Level: f.logLevel, Format: f.logFormat}
	if err := lc.Validate(); err != nil {
		return cli.Usage(err)
	}
	log, err := daemon.Logger(lc, "chronicle-exsim")
	if err != nil {
		return err
	}
	if f.load > 0 {
		return serveLoad(f, log)
	}
	return serve(f, sets, log)
}

// defaultCaptures is $CHRONICLE_SHARED/data/captures, else ../shared/data/captures.
func defaultCaptures() string {
	if s := os.Getenv("CHRONICLE_SHARED"); s != "" {
		return filepath.Join(s, "data", "captures")
	}
	return filepath.Join("..", "shared", "data", "captures")
}

// parseSets reads NAME=VENUE:FILE[,FILE...] arguments; none means the bundled captures.
func parseSets(args []string) ([]exsim.Set, error) {
	if len(args) == 0 {
		return exsim.Bundled(), nil
	}
	var sets []exsim.Set
	seen := map[string]bool{}
	for _, a := range args {
		name, rest, ok1 := strings.Cut(a, "=")
		v, files, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || name == "" || files == "" || strings.ContainsAny(name, "/ ") {
			return nil, fmt.Errorf("market %q: want NAME=VENUE:FILE[,FILE...]", a)
		}
		if _, err := venue.Lookup(v); err != nil {
			return nil, fmt.Errorf("market %q: %w", a, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("market %q: name %s given twice", a, name)
		}
		seen[name] = true
		sets = append(sets, exsim.Set{Name: name, Venue: v, Files: strings.Split(files, ",")})
	}
	return sets, nil
}

type market struct {
	set exsim.Set
	sim *exsim.Sim
	sub venue.Subscription
}

func serve(f flags, sets []exsim.Set, log *slog.Logger) error {
	var markets []*market
	defer func() {
		for _, m := range markets {
			m.sim.Close()
		}
	}()
	// Load the captures side by side (gunzip and a pass over every message each).
	markets = make([]*market, len(sets))
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	for i, set := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			markets[i], errs[i] = load(f, set, log)
		}()
	}
	wg.Wait()
	mux := http.NewServeMux()
	for i, m := range markets {
		if errs[i] != nil {
			markets = slices.DeleteFunc(markets, func(m *market) bool { return m == nil })
			return fmt.Errorf("market %s: %w", sets[i].Name, errs[i])
		}
		mux.Handle("/"+m.set.Name+"/", m.sim.Handler())
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	addr := ln.Addr().String()
	for _, m := range markets {
		log.Info("market", "name", m.set.Name, "venue", m.set.Venue, "messages", m.sim.Len(), "symbols", strings.Join(m.sub.Symbols, ","),
			"ws", "ws://"+addr+"/"+m.set.Name, "rest", "http://"+addr+"/"+m.set.Name)
		if err := writeState(f.stateDir, m.set.Name+".feed", feedFlags(m, addr)); err != nil {
			return err
		}
	}
	if err := writeState(f.stateDir, "addr", addr); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	for _, m := range markets {
		if f.play == "now" {
			m.sim.Play()
		} else {
			m.sim.PlayAfterSnapshots()
		}
		go func() {
			select {
			case <-m.sim.Done():
			case <-ctx.Done():
				return
			}
			for !m.sim.Flush(time.Second) {
				if ctx.Err() != nil {
					return
				}
			}
			line := fmt.Sprintf("messages %d sent %d", m.sim.Len(), m.sim.SentCount())
			log.Info("market done", "name", m.set.Name, "messages", m.sim.Len(), "sent", m.sim.SentCount())
			if err := writeState(f.stateDir, m.set.Name+".done", line); err != nil {
				log.Error("state", "err", err)
			}
		}()
	}
	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// serveLoad serves load mode's market "load".
func serveLoad(f flags, log *slog.Logger) error {
	p := f.loadSource
	if !filepath.IsAbs(p) {
		p = filepath.Join(f.captures, p)
	}
	recs, err := exsim.Load(p)
	if err != nil {
		return err
	}
	l, err := exsim.NewLoad(exsim.LoadOptions{Records: recs, Symbols: f.load, Speed: f.speed, WeightPerMinute: f.loadWeight, Logger: log.With("market", "load")})
	if err != nil {
		return err
	}
	defer l.Close()
	mux := http.NewServeMux()
	mux.Handle("/load/", l.Handler())
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	addr := ln.Addr().String()
	sub := l.Subscription()
	log.Info("load market", "symbols", f.load, "speed", f.speed, "rate_msgs_per_s", int(l.Rate()), "ws", "ws://"+addr+"/load")
	line := fmt.Sprintf("--venue %s --symbols %s --streams %s --depth-speed %s --ws-url ws://%s/load --rest-url http://%s/load",
		l.Venue().Name(), strings.Join(sub.Symbols, ","), strings.Join(sub.Streams, ","), sub.DepthSpeed, addr, addr)
	if err := writeState(f.stateDir, "load.feed", line); err != nil {
		return err
	}
	if err := writeState(f.stateDir, "load.dim_symbol.csv", strings.TrimSuffix(string(l.DimSymbol()), "\n")); err != nil {
		return err
	}
	if err := writeState(f.stateDir, "addr", addr); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	if f.play == "now" {
		l.Play()
	} else {
		l.PlayAfterSnapshots()
	}
	<-ctx.Done()
	log.Info("stopping", "stats", fmt.Sprintf("%+v", l.Stats()))
	return nil
}

// load reads one market's capture.
func load(f flags, set exsim.Set, log *slog.Logger) (*market, error) {
	paths := make([]string, len(set.Files))
	for i, p := range set.Files {
		if !filepath.IsAbs(p) {
			p = filepath.Join(f.captures, p)
		}
		paths[i] = p
	}
	recs, err := exsim.Load(paths...)
	if err != nil {
		return nil, err
	}
	sim, err := exsim.New(exsim.Options{Venue: set.Venue, Records: recs, Speed: f.speed, Logger: log.With("market", set.Name)})
	if err != nil {
		return nil, err
	}
	m := &market{set: set, sim: sim}
	if m.sub, err = sim.Subscription(); err != nil {
		sim.Close()
		return nil, err
	}
	return m, nil
}

// feedFlags are the chronicle-feed flags that capture a market.
func feedFlags(m *market, addr string) string {
	s := fmt.Sprintf("--venue %s --symbols %s --streams %s", m.set.Venue, strings.Join(m.sub.Symbols, ","), strings.Join(m.sub.Streams, ","))
	if m.sub.DepthSpeed != "" {
		s += " --depth-speed " + m.sub.DepthSpeed
	}
	if m.sub.BookDepth != 0 {
		s += fmt.Sprintf(" --book-depth %d", m.sub.BookDepth)
	}
	return s + fmt.Sprintf(" --ws-url ws://%s/%s --rest-url http://%s/%s", addr, m.set.Name, addr, m.set.Name)
}

// writeState replaces DIR/name atomically (readers poll for it).
func writeState(dir, name, line string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fileutil.WriteFile(filepath.Join(dir, name), []byte(line+"\n"), 0o644)
}
