package exsim

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/venue"
)

// ServeConfig is how chronicle-exsim serves its markets; its fields carry the flags the
// command binds (internal/config), so an error names the flag.
type ServeConfig struct {
	Listen   string  `toml:"listen" flag:"listen" help:"address to serve on (port 0: any free port; see --state-dir)"`
	Captures string  `toml:"captures" flag:"captures" help:"directory of the bundled captures (and of relative FILE arguments)"`
	Speed    float64 `toml:"speed" flag:"speed" help:"pace as a multiple of the capture's own (0: as fast as the connections take it)"`
	Play     string  `toml:"play" flag:"play" help:"start publishing: \"snapshots\" (once every depth symbol got its REST snapshot) or \"now\""`
	StateDir string  `toml:"state_dir" flag:"state-dir" help:"write addr, NAME.feed and NAME.done here"`

	// Load mode (LoadOptions): one market "load" of Load symbols derived from LoadSource.
	Load       int    `toml:"load" flag:"load" help:"load mode: serve this many symbols derived from --load-source as market \"load\" (needs --speed > 0)"`
	LoadSource string `toml:"load_source" flag:"load-source" help:"load mode: the capture (one depth symbol with its snapshot) every symbol is a copy of"`
	LoadWeight int    `toml:"load_weight" flag:"load-weight" help:"load mode: REST weight budget per minute (0: the venue's, 2400 on USD-M)"`
}

// DefaultServeConfig serves the bundled captures on any free loopback port.
func DefaultServeConfig() ServeConfig {
	return ServeConfig{Listen: "127.0.0.1:0", Captures: DefaultCaptures(), Play: "snapshots",
		LoadSource: "binance-usdm_ethusdt_20240808.jsonl.gz"}
}

// Validate names the first bad setting.
func (c ServeConfig) Validate() error {
	switch {
	case c.Play != "snapshots" && c.Play != "now":
		return fmt.Errorf("--play %q: want snapshots or now", c.Play)
	case c.Speed < 0:
		return fmt.Errorf("--speed %v: want 0 or more", c.Speed)
	case c.Load < 0 || (c.Load > 0 && c.Speed <= 0):
		return fmt.Errorf("--load %d: want a positive count with --speed > 0", c.Load)
	}
	return nil
}

// DefaultCaptures is $CHRONICLE_SHARED/data/captures, else ../shared/data/captures.
func DefaultCaptures() string {
	if s := os.Getenv("CHRONICLE_SHARED"); s != "" {
		return filepath.Join(s, "data", "captures")
	}
	return filepath.Join("..", "shared", "data", "captures")
}

// ParseSets reads NAME=VENUE:FILE[,FILE...] arguments; none means the bundled captures.
func ParseSets(args []string) ([]Set, error) {
	if len(args) == 0 {
		return Bundled(), nil
	}
	var sets []Set
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
		sets = append(sets, Set{Name: name, Venue: v, Files: strings.Split(files, ",")})
	}
	return sets, nil
}

type market struct {
	set Set
	sim *Sim
	sub venue.Subscription
}

// Serve loads every set's capture (side by side), serves each as market /NAME on
// c.Listen, writes the state files scripts follow (DIR/addr, NAME.feed, NAME.done) and
// publishes until ctx ends.
func Serve(ctx context.Context, c ServeConfig, sets []Set, log *slog.Logger) error {
	markets := make([]*market, len(sets))
	defer func() {
		for _, m := range markets {
			if m != nil {
				m.sim.Close()
			}
		}
	}()
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	for i, set := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			markets[i], errs[i] = loadMarket(c, set, log)
		}()
	}
	wg.Wait()
	mux := http.NewServeMux()
	for i, m := range markets {
		if errs[i] != nil {
			return fmt.Errorf("market %s: %w", sets[i].Name, errs[i])
		}
		mux.Handle("/"+m.set.Name+"/", m.sim.Handler())
	}
	addr, shutdown, err := listenHTTP(c.Listen, mux)
	if err != nil {
		return err
	}
	defer shutdown()
	for _, m := range markets {
		log.Info("market", "name", m.set.Name, "venue", m.set.Venue, "messages", m.sim.Len(), "symbols", strings.Join(m.sub.Symbols, ","),
			"ws", "ws://"+addr+"/"+m.set.Name, "rest", "http://"+addr+"/"+m.set.Name)
		if err := writeState(c.StateDir, m.set.Name+".feed", m.feedFlags(addr)); err != nil {
			return err
		}
	}
	if err := writeState(c.StateDir, "addr", addr); err != nil {
		return err
	}
	for _, m := range markets {
		if c.Play == "now" {
			m.sim.Play()
		} else {
			m.sim.PlayAfterSnapshots()
		}
		go m.announceDone(ctx, c.StateDir, log)
	}
	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// announceDone writes NAME.done once every message is published and written to every
// connection.
func (m *market) announceDone(ctx context.Context, stateDir string, log *slog.Logger) {
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
	if err := writeState(stateDir, m.set.Name+".done", line); err != nil {
		log.Error("state", "err", err)
	}
}

// loadMarket reads one market's capture.
func loadMarket(c ServeConfig, set Set, log *slog.Logger) (*market, error) {
	paths := make([]string, len(set.Files))
	for i, p := range set.Files {
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.Captures, p)
		}
		paths[i] = p
	}
	recs, err := Load(paths...)
	if err != nil {
		return nil, err
	}
	sim, err := New(Options{Venue: set.Venue, Records: recs, Speed: c.Speed, Logger: log.With("market", set.Name)})
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

// feedFlags are the chronicle-feed flags that capture the market.
func (m *market) feedFlags(addr string) string {
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

// ServeLoad serves load mode's market "load" (c.Load symbols, see NewLoad) on c.Listen,
// writes DIR/load.feed (the chronicle-feed flags), DIR/load.dim_symbol.csv (the derived
// symbols) and DIR/addr, and publishes until ctx ends.
func ServeLoad(ctx context.Context, c ServeConfig, log *slog.Logger) error {
	p := c.LoadSource
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.Captures, p)
	}
	recs, err := Load(p)
	if err != nil {
		return err
	}
	l, err := NewLoad(LoadOptions{Records: recs, Symbols: c.Load, Speed: c.Speed, WeightPerMinute: c.LoadWeight, Logger: log.With("market", "load")})
	if err != nil {
		return err
	}
	defer l.Close()
	mux := http.NewServeMux()
	mux.Handle("/load/", l.Handler())
	addr, shutdown, err := listenHTTP(c.Listen, mux)
	if err != nil {
		return err
	}
	defer shutdown()
	sub := l.Subscription()
	log.Info("load market", "symbols", c.Load, "speed", c.Speed, "rate_msgs_per_s", int(l.Rate()), "ws", "ws://"+addr+"/load")
	line := fmt.Sprintf("--venue %s --symbols %s --streams %s --depth-speed %s --ws-url ws://%s/load --rest-url http://%s/load",
		l.Venue().Name(), strings.Join(sub.Symbols, ","), strings.Join(sub.Streams, ","), sub.DepthSpeed, addr, addr)
	if err := writeState(c.StateDir, "load.feed", line); err != nil {
		return err
	}
	if err := writeState(c.StateDir, "load.dim_symbol.csv", strings.TrimSuffix(string(l.DimSymbol()), "\n")); err != nil {
		return err
	}
	if err := writeState(c.StateDir, "addr", addr); err != nil {
		return err
	}
	if c.Play == "now" {
		l.Play()
	} else {
		l.PlayAfterSnapshots()
	}
	<-ctx.Done()
	log.Info("stopping", "stats", fmt.Sprintf("%+v", l.Stats()))
	return nil
}

// listenHTTP serves h on addr (port 0: any free one) and returns the address it took and
// the graceful shutdown to defer.
func listenHTTP(addr string, h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
