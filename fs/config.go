package fs

import (
	"fmt"
	"time"

	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/tiers"
)

// Config is the [fs] section of the shared configuration. DefaultConfig holds the defaults;
// flags of chronicle-fs override single fields.
type Config struct {
	// Config holds how the mount reads the cold and remote tiers (cache_bytes,
	// readahead_frames, direct_reads, remote_timeout, disk_cache_dir, disk_cache_bytes,
	// bucket_ttl): the Resolver's settings, kept in [fs] beside the mount's own.
	tiers.Config
	// MemoryLimit is the Go runtime's soft memory limit in bytes; 0 means CacheBytes + 64 MiB,
	// which keeps the garbage collector from letting the heap double past the cache.
	MemoryLimit bytesize.Size `toml:"memory_limit" flag:"memory-limit" help:"Go memory limit (0: the two caches + 64MiB)"`
	// GCPercent is the collector's GOGC (the environment's GOGC wins). 100 keeps the heap
	// near twice what is live: a research host walking 100,000 partitions stays under
	// 200 MiB. Larger values space collections out, which spares go-fuse's pool of 1 MiB
	// request buffers on hosts that mostly stream cold books, up to memory_limit.
	GCPercent int `toml:"gc_percent"`
	// AllowOther lets users other than the one who mounted read the mount (the kernel still
	// checks the 0444/0555 permission bits).
	AllowOther bool `toml:"allow_other" flag:"allow-other" help:"let other users read the mount"`
	// MetricsAddr serves /metrics; "" disables it.
	MetricsAddr string `toml:"metrics_addr" flag:"metrics-addr" help:"serve /metrics here (\"\" disables)"`
	// Passthrough lets the kernel read sealed local files directly (native read and mmap
	// speed). Turn it off only to debug.
	Passthrough bool `toml:"passthrough" flag:"passthrough" help:"kernel passthrough for sealed local files"`

	// SealedTimeout is the entry and attribute cache time of sealed books (immutable).
	SealedTimeout time.Duration `toml:"sealed_timeout" flag:"sealed-timeout" help:"attribute/entry cache time of sealed books"`
	// GrowingTimeout is the attribute cache time of a book still being written: how stale its
	// size may be. 0 (the default) asks the daemon on every stat and read of a growing file,
	// which costs one small round trip; the kernel counts timeouts in jiffies, so any value
	// above 0 means at least one tick (4 ms at HZ=250).
	GrowingTimeout time.Duration `toml:"growing_timeout" flag:"growing-timeout" help:"attribute cache time of growing books"`
	// DirTimeout is the entry and attribute cache time of directories and of small files
	// (meta.json, index/...).
	DirTimeout time.Duration `toml:"dir_timeout" flag:"dir-timeout" help:"cache time of directories and small files"`
	// NegativeTimeout caches "no such file" answers.
	NegativeTimeout time.Duration `toml:"negative_timeout" flag:"negative-timeout" help:"cache time of 'no such file'"`
	// WatchInterval is how often partitions known to the kernel are checked for a tier move
	// (to drop cached attributes and names of their small files).
	WatchInterval time.Duration `toml:"watch_interval" flag:"watch-interval" help:"how often known partitions are checked for tier moves"`
	// MaxKnownPartitions bounds the partition directories the kernel may keep looked up
	// (0: no bound). Each pins a handful of inodes in the daemon, so a `find` over a bucket
	// of 100,000 partitions would hold all of them; beyond the bound the least recently used
	// are forgotten (the kernel drops their names and looks them up again when asked).
	MaxKnownPartitions int `toml:"max_known_partitions"`

	// MaxWrite is the largest FUSE request (also the kernel's max_read).
	MaxWrite int `toml:"max_write"`
	// MaxBackground is how many asynchronous requests (readahead) the kernel keeps in flight.
	MaxBackground int `toml:"max_background" flag:"max-background" help:"asynchronous FUSE requests in flight"`
	// ReadAheadKB is written to /sys/class/bdi/<dev>/read_ahead_kb after mounting (the kernel
	// starts FUSE mounts at 128).
	ReadAheadKB int `toml:"read_ahead_kb" flag:"read-ahead-kb" help:"kernel readahead for the mount (bdi read_ahead_kb)"`

	// ShutdownGrace is how long a lazily detached mount may keep serving open files after
	// SIGTERM before the process exits anyway.
	ShutdownGrace time.Duration `toml:"shutdown_grace" flag:"shutdown-grace" help:"how long a busy, lazily detached mount keeps serving after SIGTERM"`
	// ReaddirPlus lets the kernel ask for the entries' attributes with a listing
	// (READDIRPLUS). The daemon answers them for sub-directories only (files are looked up
	// when the kernel needs them, as without it), so a find or a walk opens each listed
	// directory without a LOOKUP first; an `ls` of a symbol with years of dates costs one
	// resolver Stat per date once per listing the kernel caches. Off, every directory a walk
	// enters costs a LOOKUP round trip.
	ReaddirPlus bool `toml:"readdirplus"`
	// MountSocket, when set, is a unix socket where a privileged helper mounts the file
	// system for this process and passes back the /dev/fuse descriptor (fusermount3's
	// protocol, run by deploy/chronicle-fs-mount@.service): the daemon then needs no
	// capability and no view of the host's mount table. The helper chooses the mount point
	// and options; closing the connection asks it to detach the mount (lazily).
	MountSocket string `toml:"mount_socket" flag:"mount-socket" help:"let the helper listening here mount MOUNTPOINT and pass the FUSE descriptor back (no privilege needed; deploy/chronicle-fs-research.service)"`
	// Views are the N of the top-N views each partition shows under views/ (topN.npy);
	// other names are ENOENT.
	Views []int `toml:"views" flag:"views" help:"N of the top-N views under each partition's views/"`
	// ViewsCacheBytes bounds the rendered view rows kept in memory, shared by every view.
	ViewsCacheBytes bytesize.Size `toml:"views_cache_bytes" flag:"views-cache-bytes" help:"rendered view rows kept in memory, e.g. 64MiB"`
	// Debug logs every FUSE request (very verbose).
	Debug bool `toml:"debug" flag:"debug" help:"log every FUSE request"`
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		Config:             tiers.DefaultConfig(),
		MetricsAddr:        "127.0.0.1:9467",
		Passthrough:        true,
		SealedTimeout:      time.Hour,
		GrowingTimeout:     0,
		DirTimeout:         time.Second,
		NegativeTimeout:    time.Second,
		WatchInterval:      time.Second,
		MaxKnownPartitions: 10000,
		GCPercent:          100,
		MaxWrite:           1 << 20,
		MaxBackground:      64,
		ReadAheadKB:        16384,
		ReaddirPlus:        true,
		ShutdownGrace:      10 * time.Second,
		Views:              []int{1, 10, 25},
		ViewsCacheBytes:    64 << 20,
	}
}

// EffectiveMemoryLimit is MemoryLimit or its default: the two caches + 64 MiB.
func (c Config) EffectiveMemoryLimit() int64 {
	if c.MemoryLimit > 0 {
		return int64(c.MemoryLimit)
	}
	return int64(c.CacheBytes + c.ViewsCacheBytes + 64<<20)
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s = %v: %s", ErrBadConfig, field, v, why)
	}
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	switch {
	case c.MemoryLimit < 0:
		return bad("memory_limit", c.MemoryLimit, "negative")
	case c.SealedTimeout < 0:
		return bad("sealed_timeout", c.SealedTimeout, "negative")
	case c.GrowingTimeout < 0:
		return bad("growing_timeout", c.GrowingTimeout, "negative")
	case c.DirTimeout < 0:
		return bad("dir_timeout", c.DirTimeout, "negative")
	case c.NegativeTimeout < 0:
		return bad("negative_timeout", c.NegativeTimeout, "negative")
	case c.WatchInterval <= 0:
		return bad("watch_interval", c.WatchInterval, "must be positive")
	case c.GCPercent < 10:
		return bad("gc_percent", c.GCPercent, "must be at least 10")
	case c.MaxKnownPartitions < 0:
		return bad("max_known_partitions", c.MaxKnownPartitions, "must be 0 (no bound) or positive")
	case c.MaxWrite < 4096 || c.MaxWrite > 1<<20 || c.MaxWrite%4096 != 0:
		return bad("max_write", c.MaxWrite, "want a multiple of 4096 in [4096, 1 MiB]")
	case c.MaxBackground < 1 || c.MaxBackground > 65535:
		return bad("max_background", c.MaxBackground, "want 1..65535")
	case c.ReadAheadKB < 0:
		return bad("read_ahead_kb", c.ReadAheadKB, "negative")
	case c.ShutdownGrace < 0:
		return bad("shutdown_grace", c.ShutdownGrace, "negative")
	case c.ViewsCacheBytes < 16<<20:
		return bad("views_cache_bytes", c.ViewsCacheBytes, "need at least 16 MiB (a few segments of rows)")
	}
	seen := map[int]bool{}
	for _, n := range c.Views {
		if n < 1 || n > bookview.MaxDepth || seen[n] {
			return bad("views", c.Views, fmt.Sprintf("each N once, in 1..%d", bookview.MaxDepth))
		}
		seen[n] = true
	}
	return nil
}
