package feed

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/venue"
)

// Config is the [feed] section of the shared config file.
type Config struct {
	Venue string `toml:"venue" flag:"venue" help:"venue id (binance-perp, binance-coinm, binance-spot, okx, kraken-spot)"` // venue id, "binance-perp"
	// HotRoot is the hot tier root ([tiers] hot: one setting for every daemon); the
	// journal goes to {hot}/feed/{venue} unless JournalDir says otherwise.
	HotRoot    string `toml:"-"`
	JournalDir string `toml:"journal_dir" flag:"journal-dir" help:"journal directory (instead of {hot}/feed/{venue})"`

	WSURL    string            `toml:"ws_url" flag:"ws-url" help:"websocket base URL (default: the venue's)"` // websocket base; "" = the venue's production endpoint
	RESTURL  string            `toml:"rest_url" flag:"rest-url" help:"REST base URL (default: the venue's)"`  // REST base; "" = the venue's production endpoint
	WSRoutes map[string]string `toml:"ws_routes"`                                                             // stream kind -> path prefix ("/public")

	Symbols           []string `toml:"symbols" flag:"symbols" help:"symbols to capture, as the venue names them (BTCUSDT; OKX BTC-USDT; Kraken XBT/USD)"`
	Streams           []string `toml:"streams" flag:"streams" help:"streams per symbol: depth, trade, aggTrade, bookTicker, or a venue's own stream or channel name"`                               // depth, trade, aggTrade, bookTicker, or raw suffixes
	DepthSpeed        string   `toml:"depth_speed" flag:"depth-speed" help:"depth stream speed: 0ms, 100ms, 250ms, 500ms (default: the venue's fastest)"`                                           // "0ms", "100ms", "250ms", "500ms"; "" = the venue's fastest
	BookDepth         int      `toml:"book_depth" flag:"book-depth" help:"levels a side of a book subscription, for venues that take one (Kraken: 10, 25, 100, 500, 1000; 0: the venue's default)"` // levels of a book subscription (Kraken: 10..1000); 0 = the venue's default
	MaxStreamsPerConn int      `toml:"max_streams_per_conn" flag:"max-streams-per-conn" help:"streams per websocket connection (0: the venue's limit)"`                                             // 0 = the venue's limit
	// ReferenceEvery is how often the feed fetches the venue's reference data (instrument
	// listings: tick and lot sizes, contract values) again, journaling it when it changed.
	ReferenceEvery time.Duration `toml:"reference_every"`

	SnapshotLimit    int `toml:"snapshot_limit" flag:"snapshot-limit" help:"REST depth snapshot levels (5, 10, 20, 50, 100, 500, 1000)"` // REST depth levels: 5..1000
	RESTWeightPerMin int `toml:"rest_weight_per_min"`                                                                                    // our share of the venue's IP budget; 0 = half of it
	// RESTWeightWindow is the window rest_weight_per_min counts in, aligned to the epoch as
	// the venue's (Binance: a minute).
	RESTWeightWindow time.Duration `toml:"rest_weight_window" flag:"rest-weight-window" help:"window the REST weight budget counts in, aligned to the epoch (Binance: 1m)"`
	RESTTimeout      time.Duration `toml:"rest_timeout"`
	SnapshotRetryMax time.Duration `toml:"snapshot_retry_max"` // longest pause between failed snapshot tries

	RollPeriod      time.Duration `toml:"roll_period" flag:"roll-period" help:"journal segment period"` // segment period, aligned to the epoch (hourly)
	PrecreateLead   time.Duration `toml:"precreate_lead"`                                               // open the next segment this long before the roll
	ChunkSize       int64         `toml:"chunk_size"`                                                   // segment growth step (pre-faulted)
	MaxSegmentSize  int64         `toml:"max_segment_size"`
	RetentionMinAge time.Duration `toml:"retention_min_age" flag:"retention-min-age" help:"keep segments the ETL has read at least this long"` // keep consumed segments at least this long
	RetentionEvery  time.Duration `toml:"retention_every"`

	MaxMessageBytes int           `toml:"max_message_bytes"` // larger messages are dropped and counted
	PingInterval    time.Duration `toml:"ping_interval"`
	PongTimeout     time.Duration `toml:"pong_timeout"`
	DialTimeout     time.Duration `toml:"dial_timeout"`
	ReconnectMin    time.Duration `toml:"reconnect_min"` // first backoff step
	ReconnectMax    time.Duration `toml:"reconnect_max"`
	// ConnMaxAge is when a connection is proactively replaced, before the venue's own
	// limit (24 h on Binance); up to RolloverJitter earlier so slots do not roll together.
	ConnMaxAge     time.Duration `toml:"conn_max_age"`
	RolloverJitter time.Duration `toml:"rollover_jitter"`
	OverlapTimeout time.Duration `toml:"overlap_timeout"` // longest the old and new connection overlap

	MetricsAddr string `toml:"metrics_addr" flag:"metrics-addr" help:"serve /metrics here (\"\": off)"`

	// Host is this capture host's id ([host] id), written into every connect record so
	// that a journal says which host captured it (chronicle-etl merge reads it).
	Host string `toml:"-"`
}

var (
	ErrConfig       = errors.New("invalid feed config")
	ErrUnknownVenue = venue.ErrUnknownVenue
)

// DefaultVenue is the venue a feed captures when none is configured: Binance's USD-M
// perpetuals (venue/binance's Name; the feed's tests check the two agree).
const DefaultVenue = "binance-perp"

// Defaults returns the production defaults.
func Defaults() Config {
	return Config{
		Venue:            DefaultVenue,
		HotRoot:          "/dev/shm/chronicle",
		Streams:          []string{"depth", "trade", "bookTicker"},
		SnapshotLimit:    1000,
		RESTTimeout:      10 * time.Second,
		RESTWeightWindow: time.Minute,
		SnapshotRetryMax: time.Minute,
		ReferenceEvery:   time.Hour,
		RollPeriod:       time.Hour,
		PrecreateLead:    30 * time.Second,
		ChunkSize:        64 << 20,
		MaxSegmentSize:   16 << 30,
		RetentionMinAge:  time.Hour,
		RetentionEvery:   time.Minute,
		MaxMessageBytes:  1 << 20,
		PingInterval:     30 * time.Second,
		PongTimeout:      10 * time.Second,
		DialTimeout:      10 * time.Second,
		ReconnectMin:     250 * time.Millisecond,
		ReconnectMax:     30 * time.Second,
		ConnMaxAge:       23 * time.Hour,
		RolloverJitter:   15 * time.Minute,
		OverlapTimeout:   time.Minute,
		MetricsAddr:      "127.0.0.1:9464",
	}
}

// Dir is the journal directory.
func (c *Config) Dir() string {
	if c.JournalDir != "" {
		return c.JournalDir
	}
	return journal.Dir(c.HotRoot, c.Venue)
}

// Normalize writes the symbols as venues list them: upper case, trimmed, none empty.
func (c *Config) Normalize() {
	for i, sym := range c.Symbols {
		c.Symbols[i] = strings.ToUpper(strings.TrimSpace(sym))
	}
	c.Symbols = slices.DeleteFunc(c.Symbols, func(sym string) bool { return sym == "" })
}

// JournalRoots are the directories the journal is written in, which the refinery trusts:
// the journal's, and the hot root above it unless the journal has a directory of its own.
func (c *Config) JournalRoots() []layout.LocalRoot {
	if c.JournalDir != "" {
		return []layout.LocalRoot{{Name: "journal", Dir: c.JournalDir}}
	}
	return []layout.LocalRoot{{Name: "hot", Dir: c.HotRoot}, {Name: "journal", Dir: c.Dir()}}
}

// Validate checks values that would otherwise fail late or silently misbehave.
func (c *Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...) }
	switch {
	case c.Venue == "":
		return bad("venue is empty")
	case c.JournalDir == "" && c.HotRoot == "":
		return bad("[tiers] hot and journal_dir are both empty")
	case c.RollPeriod < time.Second:
		return bad("roll_period %v below 1s", c.RollPeriod)
	case c.PrecreateLead < 0 || c.PrecreateLead >= c.RollPeriod:
		return bad("precreate_lead %v: want 0 <= precreate_lead < roll_period %v", c.PrecreateLead, c.RollPeriod)
	case c.ChunkSize < 1<<16:
		return bad("chunk_size %d below 64 KiB", c.ChunkSize)
	case c.MaxSegmentSize < c.ChunkSize:
		return bad("max_segment_size %d below chunk_size %d", c.MaxSegmentSize, c.ChunkSize)
	case c.MaxMessageBytes < 1024:
		return bad("max_message_bytes %d below 1 KiB", c.MaxMessageBytes)
	case c.RESTWeightPerMin < 0:
		return bad("rest_weight_per_min is negative")
	case c.RESTWeightWindow < 0:
		return bad("rest_weight_window is negative")
	case c.SnapshotLimit < 1:
		return bad("snapshot_limit %d below 1", c.SnapshotLimit)
	case c.RESTTimeout <= 0:
		return bad("rest_timeout %v must be positive", c.RESTTimeout)
	case c.SnapshotRetryMax <= 0:
		return bad("snapshot_retry_max %v must be positive", c.SnapshotRetryMax)
	case c.DialTimeout <= 0:
		return bad("dial_timeout %v must be positive", c.DialTimeout)
	case c.MaxStreamsPerConn < 0:
		return bad("max_streams_per_conn is negative")
	case c.BookDepth < 0:
		return bad("book_depth is negative")
	case c.ReferenceEvery < time.Minute:
		return bad("reference_every %v below 1m", c.ReferenceEvery)
	case c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin:
		return bad("reconnect_min %v / reconnect_max %v", c.ReconnectMin, c.ReconnectMax)
	case c.PingInterval <= 0 || c.PongTimeout <= 0:
		return bad("ping_interval and pong_timeout must be positive")
	case c.ConnMaxAge < 100*time.Millisecond:
		return bad("conn_max_age %v below 100ms", c.ConnMaxAge)
	case c.RolloverJitter < 0 || c.RolloverJitter >= c.ConnMaxAge:
		return bad("rollover_jitter %v must be below conn_max_age %v", c.RolloverJitter, c.ConnMaxAge)
	case c.OverlapTimeout <= 0:
		return bad("overlap_timeout must be positive")
	case c.RetentionMinAge < 0:
		return bad("retention_min_age is negative")
	case c.RetentionEvery <= 0:
		return bad("retention_every %v must be positive", c.RetentionEvery)
	}
	for _, s := range c.Symbols {
		if s == "" {
			return bad("symbols has an empty entry")
		}
	}
	for _, s := range c.Streams {
		if s == "" {
			return bad("streams has an empty entry")
		}
	}
	return nil
}

// withVenue fills the settings whose defaults are the venue's own.
func (c Config) withVenue(v venue.Venue) Config {
	lim := v.Limits()
	if c.DepthSpeed == "" {
		c.DepthSpeed = lim.DefaultDepthSpeed
	}
	if c.RESTWeightPerMin == 0 {
		c.RESTWeightPerMin = lim.RESTWeightPerMin / 2
	}
	if c.MaxStreamsPerConn == 0 {
		c.MaxStreamsPerConn = lim.MaxStreamsPerConn
	}
	return c
}
