package etl

import (
	"errors"
	"fmt"
	"time"

	"github.com/chronicle/chronicle/format/meta"
)

// Config is the [etl] section of the shared config file (docs/chronicle-etl.md).
type Config struct {
	// Venues lists the venue journals to refine ({hot}/feed/{venue}); empty = every venue
	// directory found there.
	Venues []string `toml:"venues" flag:"venues" help:"run: venues to refine; default every {hot}/feed/*"`
	// Output is the tier the partitions are written to: "warm" (durable, the default) or
	// "hot" (lowest latency; the tier manager then copies sealed partitions to warm).
	Output string `toml:"output" flag:"output" help:"output tier: \"warm\" or \"hot\""`
	// Grace keeps the previous day's partition open this long past midnight, in exchange
	// time, for stragglers; then it is sealed.
	Grace time.Duration `toml:"grace" flag:"grace" help:"keep the previous day open this long past midnight, exchange time"`
	// SnapshotInterval is how often, in exchange time, a snapshot run restates the book.
	SnapshotInterval time.Duration `toml:"snapshot_interval" flag:"snapshot-interval" help:"snapshot run every this much exchange time"`
	// LatePolicy for events of a sealed partition: "reject" or "late_stream".
	LatePolicy string `toml:"late_policy" flag:"late-policy" help:"events of a sealed partition: \"reject\" or \"late_stream\""`
	// DimSymbol is the dim_symbol table (.csv or .parquet); "" = the embedded default.
	DimSymbol string `toml:"dim_symbol" flag:"dim-symbol" help:"dim_symbol table, .csv or .parquet; default the embedded one"`
	// DimReload is how often the table file is checked for changes (0 = never).
	DimReload time.Duration `toml:"dim_reload"`
	// CheckpointInterval is how often (wall time) output and state are made durable.
	CheckpointInterval time.Duration `toml:"checkpoint_interval" flag:"checkpoint-interval" help:"make output and state durable this often"`
	// MetaInterval is how often the meta.json of growing partitions is refreshed.
	MetaInterval time.Duration `toml:"meta_interval"`
	// MaxBuffered bounds the depth updates kept per symbol while waiting for a snapshot.
	MaxBuffered int `toml:"max_buffered"`
	// DayHold is how long (exchange time) trades and tickers of a new day wait for the
	// depth stream to cross midnight, so the new day's partition opens with the book as
	// the old day left it.
	DayHold time.Duration `toml:"day_hold"`
	// IdleSpin is how long the live tailer busy-polls the journal after the last record
	// before it sleeps IdlePoll between looks (0 = never spin): the live latency.
	IdleSpin time.Duration `toml:"idle_spin" flag:"idle-spin" help:"run: busy-poll the journal this long after the last record; 0 = never"`
	IdlePoll time.Duration `toml:"idle_poll"`
	// ChunkSize is the growth step of partition files.
	ChunkSize   int64  `toml:"chunk_size"`
	MetricsAddr string `toml:"metrics_addr" flag:"metrics-addr" help:"run: serve /metrics here; \"\" = off"`
}

// ErrConfig: an [etl] setting out of its range.
var ErrConfig = errors.New("etl config")

// Defaults are the production defaults.
func Defaults() Config {
	return Config{
		Output:             "warm",
		Grace:              time.Hour,
		SnapshotInterval:   time.Minute,
		LatePolicy:         meta.LateReject,
		DimReload:          10 * time.Second,
		CheckpointInterval: time.Second,
		MetaInterval:       time.Minute,
		MaxBuffered:        100_000,
		DayHold:            10 * time.Second,
		IdleSpin:           100 * time.Millisecond,
		IdlePoll:           time.Millisecond,
		ChunkSize:          16 << 20,
		MetricsAddr:        "127.0.0.1:9465",
	}
}

// Validate checks every option, naming the one that is wrong.
func (c *Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...) }
	switch {
	case c.Output != "warm" && c.Output != "hot":
		return bad("output %q: want warm or hot", c.Output)
	case c.Grace < 0:
		return bad("grace %v is negative", c.Grace)
	case c.SnapshotInterval < time.Second:
		return bad("snapshot_interval %v below 1s", c.SnapshotInterval)
	case c.LatePolicy != meta.LateReject && c.LatePolicy != meta.LateStream:
		return bad("late_policy %q: want reject or late_stream", c.LatePolicy)
	case c.DimReload < 0:
		return bad("dim_reload %v is negative", c.DimReload)
	case c.CheckpointInterval <= 0:
		return bad("checkpoint_interval must be positive")
	case c.MetaInterval <= 0:
		return bad("meta_interval must be positive")
	case c.MaxBuffered < 1:
		return bad("max_buffered %d below 1", c.MaxBuffered)
	case c.DayHold < 0:
		return bad("day_hold %v is negative", c.DayHold)
	case c.IdleSpin < 0:
		return bad("idle_spin %v is negative", c.IdleSpin)
	case c.IdlePoll <= 0:
		return bad("idle_poll must be positive")
	case c.ChunkSize < 1<<16:
		return bad("chunk_size %d below 64 KiB", c.ChunkSize)
	}
	for _, v := range c.Venues {
		if v == "" {
			return bad("venues has an empty entry")
		}
	}
	return nil
}
