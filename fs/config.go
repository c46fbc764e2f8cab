package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/format/qzst"
)

// Config is the [fs] section of the shared configuration. DefaultConfig holds the defaults;
// flags of chronicle-fs override single fields.
type Config struct {
	// CacheBytes bounds the decoded cold and remote frames kept in memory, shared by every
	// open file.
	CacheBytes int64 `toml:"cache_bytes"`
	// ReadaheadFrames is how many 1 MiB frames are decoded ahead of a sequential reader of a
	// cold or remote file (0: the qzst default; never more than a quarter of the cache).
	ReadaheadFrames int `toml:"readahead_frames"`
	// DirectReads decodes the kernel's whole-frame reads of cold and remote books straight
	// into the reply, bypassing the frame cache: the kernel's readahead (read_ahead_kb, up to
	// max_background requests in flight) supplies the parallelism and the page cache the
	// caching, while compressed bytes are fetched ahead in runs. Partial-frame reads (mmap
	// faults, small preads) still use the frame cache and its readahead.
	DirectReads bool `toml:"direct_reads"`
	// MemoryLimit is the Go runtime's soft memory limit in bytes; 0 means CacheBytes + 64 MiB,
	// which keeps the garbage collector from letting the heap double past the cache.
	MemoryLimit int64 `toml:"memory_limit"`
	// GCPercent is the collector's GOGC (the environment's GOGC wins). 100 keeps the heap
	// near twice what is live: a research host walking 100,000 partitions stays under
	// 200 MiB. Larger values space collections out, which spares go-fuse's pool of 1 MiB
	// request buffers on hosts that mostly stream cold books, up to memory_limit.
	GCPercent int `toml:"gc_percent"`
	// AllowOther lets users other than the one who mounted read the mount (the kernel still
	// checks the 0444/0555 permission bits).
	AllowOther bool `toml:"allow_other"`
	// MetricsAddr serves /metrics; "" disables it.
	MetricsAddr string `toml:"metrics_addr"`
	// Passthrough lets the kernel read sealed local files directly (native read and mmap
	// speed). Turn it off only to debug.
	Passthrough bool `toml:"passthrough"`

	// SealedTimeout is the entry and attribute cache time of sealed books (immutable).
	SealedTimeout time.Duration `toml:"sealed_timeout"`
	// GrowingTimeout is the attribute cache time of a book still being written: how stale its
	// size may be. 0 (the default) asks the daemon on every stat and read of a growing file,
	// which costs one small round trip; the kernel counts timeouts in jiffies, so any value
	// above 0 means at least one tick (4 ms at HZ=250).
	GrowingTimeout time.Duration `toml:"growing_timeout"`
	// DirTimeout is the entry and attribute cache time of directories and of small files
	// (meta.json, index/...).
	DirTimeout time.Duration `toml:"dir_timeout"`
	// NegativeTimeout caches "no such file" answers.
	NegativeTimeout time.Duration `toml:"negative_timeout"`
	// RemoteTimeout bounds one remote read, retries included: past it a read fails with EIO.
	RemoteTimeout time.Duration `toml:"remote_timeout"`
	// WatchInterval is how often partitions known to the kernel are checked for a tier move
	// (to drop cached attributes and names of their small files).
	WatchInterval time.Duration `toml:"watch_interval"`
	// MaxKnownPartitions bounds the partition directories the kernel may keep looked up
	// (0: no bound). Each pins a handful of inodes in the daemon, so a `find` over a bucket
	// of 100,000 partitions would hold all of them; beyond the bound the least recently used
	// are forgotten (the kernel drops their names and looks them up again when asked).
	MaxKnownPartitions int `toml:"max_known_partitions"`

	// MaxWrite is the largest FUSE request (also the kernel's max_read).
	MaxWrite int `toml:"max_write"`
	// MaxBackground is how many asynchronous requests (readahead) the kernel keeps in flight.
	MaxBackground int `toml:"max_background"`
	// ReadAheadKB is written to /sys/class/bdi/<dev>/read_ahead_kb after mounting (the kernel
	// starts FUSE mounts at 128).
	ReadAheadKB int `toml:"read_ahead_kb"`

	// DiskCacheDir keeps what remote reads fetched (compressed frames, indexes, small files)
	// on local disk across reads and restarts. "" means $CACHE_DIRECTORY (systemd's
	// CacheDirectory=) or the user's cache directory (~/.cache/chronicle-fs). Created 0700;
	// a directory other users can write is refused.
	DiskCacheDir string `toml:"disk_cache_dir"`
	// DiskCacheBytes bounds the disk cache (least recently used entries go first); 0 turns
	// it off.
	DiskCacheBytes int64 `toml:"disk_cache_bytes"`
	// BucketTTL is how long listings and partition stubs read from the bucket are trusted: a
	// partition uploaded later appears within it. Negative: remote partitions are found
	// only through the local cold tier's stubs (a capture host that wants no bucket listing).
	BucketTTL time.Duration `toml:"bucket_ttl"`
	// ShutdownGrace is how long a lazily detached mount may keep serving open files after
	// SIGTERM before the process exits anyway.
	ShutdownGrace time.Duration `toml:"shutdown_grace"`
	// ReaddirPlus lets the kernel ask for every entry's attributes with the listing
	// (READDIRPLUS). The daemon then looks up each entry, so a plain `ls` or os.ReadDir of a
	// symbol with years of dates costs thousands of lookups every time, and the kernel
	// always asks for it (go-fuse does not offer the kernel's adaptive mode). Off, `ls` is one
	// cheap request and `ls -l` looks entries up itself.
	ReaddirPlus bool `toml:"readdirplus"`
	// MountSocket, when set, is a unix socket where a privileged helper mounts the file
	// system for this process and passes back the /dev/fuse descriptor (fusermount3's
	// protocol, run by deploy/chronicle-fs-mount@.service): the daemon then needs no
	// capability and no view of the host's mount table. The helper chooses the mount point
	// and options; closing the connection asks it to detach the mount (lazily).
	MountSocket string `toml:"mount_socket"`
	// Views are the N of the top-N views each partition shows under views/ (topN.npy);
	// other names are ENOENT.
	Views []int `toml:"views"`
	// ViewsCacheBytes bounds the rendered view rows kept in memory, shared by every view.
	ViewsCacheBytes int64 `toml:"views_cache_bytes"`
	// Debug logs every FUSE request (very verbose).
	Debug bool `toml:"debug"`
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		CacheBytes:         qzst.DefaultCacheBytes,
		MetricsAddr:        "127.0.0.1:9467",
		Passthrough:        true,
		SealedTimeout:      time.Hour,
		GrowingTimeout:     0,
		DirTimeout:         time.Second,
		NegativeTimeout:    time.Second,
		RemoteTimeout:      30 * time.Second,
		WatchInterval:      time.Second,
		MaxKnownPartitions: 10000,
		GCPercent:          100,
		MaxWrite:           1 << 20,
		MaxBackground:      64,
		ReadAheadKB:        16384,
		DirectReads:        true,
		ShutdownGrace:      10 * time.Second,
		DiskCacheBytes:     8 << 30,
		BucketTTL:          time.Minute,
		Views:              []int{1, 10, 25},
		ViewsCacheBytes:    64 << 20,
	}
}

// EffectiveMemoryLimit is MemoryLimit or its default: the two caches + 64 MiB.
func (c Config) EffectiveMemoryLimit() int64 {
	if c.MemoryLimit > 0 {
		return c.MemoryLimit
	}
	return c.CacheBytes + c.ViewsCacheBytes + 64<<20
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s = %v: %s", ErrBadConfig, field, v, why)
	}
	switch {
	case c.CacheBytes < 4<<20:
		return bad("cache_bytes", c.CacheBytes, "need at least 4 MiB (a few 1 MiB frames)")
	case c.ReadaheadFrames < 0:
		return bad("readahead_frames", c.ReadaheadFrames, "negative")
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
	case c.RemoteTimeout <= 0:
		return bad("remote_timeout", c.RemoteTimeout, "must be positive: remote reads must fail with EIO, never hang")
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
	case c.DiskCacheBytes < 0:
		return bad("disk_cache_bytes", c.DiskCacheBytes, "negative (0 turns the disk cache off)")
	case c.BucketTTL == 0:
		return bad("bucket_ttl", c.BucketTTL, "zero would list the bucket on every lookup; negative turns bucket listing off")
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

// DiskCachePath is where the disk cache lives: DiskCacheDir, else $CACHE_DIRECTORY, else
// the user's cache directory.
func (c Config) DiskCachePath() (string, error) {
	if c.DiskCacheDir != "" {
		return c.DiskCacheDir, nil
	}
	if d := os.Getenv("CACHE_DIRECTORY"); d != "" {
		return filepath.Join(strings.Split(d, ":")[0], "frames"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("disk_cache_dir: none set and no user cache directory: %w", err)
	}
	return filepath.Join(d, "chronicle-fs"), nil
}
