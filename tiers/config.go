package tiers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/internal/bytesize"
)

// Config is how a reader of every tier (chronicle-fs, chronicle-q) reads the cold and
// remote ones: its frame cache, its disk cache of remote reads, and how far it trusts and
// waits for the bucket. Its keys sit in the reader's own section ([fs]: fs.Config embeds
// it); Open builds the caches and the Resolver from it.
type Config struct {
	// CacheBytes bounds the decoded cold and remote frames kept in memory, shared by every
	// open file.
	CacheBytes bytesize.Size `toml:"cache_bytes" flag:"cache-bytes" help:"frame cache for cold and remote reads, e.g. 256MiB"`
	// ReadaheadFrames is how many 1 MiB frames are decoded ahead of a sequential reader of a
	// cold or remote file (0: the qzst default; never more than a quarter of the cache).
	ReadaheadFrames int `toml:"readahead_frames" flag:"readahead-frames" help:"frames decoded ahead of sequential cold/remote readers (0: the default)"`
	// DirectReads decodes whole-frame reads of cold and remote books straight into the
	// caller's buffer, bypassing the frame cache (qzst's Direct reads): for callers that read
	// ahead and cache themselves, like the kernel behind chronicle-fs. Partial-frame reads
	// still use the frame cache and its readahead.
	DirectReads bool `toml:"direct_reads" flag:"direct-reads" help:"decode whole-frame reads of cold/remote books straight into the reply, uncached"`
	// RemoteTimeout bounds one remote read, retries included: past it a read fails.
	RemoteTimeout time.Duration `toml:"remote_timeout" flag:"remote-timeout" help:"bound on one remote read; past it reads fail (EIO on the mount)"`
	// DiskCacheDir keeps what remote reads fetched (compressed frames, indexes, small files)
	// on local disk across reads and restarts. "" means $CACHE_DIRECTORY (systemd's
	// CacheDirectory=) or the user's cache directory (~/.cache/chronicle-fs). Created 0700;
	// a directory other users can write is refused.
	DiskCacheDir string `toml:"disk_cache_dir" flag:"disk-cache-dir" help:"keep fetched remote frames and files here (default ~/.cache/chronicle-fs)"`
	// DiskCacheBytes bounds the disk cache (least recently used entries go first); 0 turns
	// it off.
	DiskCacheBytes bytesize.Size `toml:"disk_cache_bytes" flag:"disk-cache-bytes" help:"bound of the disk cache, e.g. 20GiB; 0 turns it off"`
	// BucketTTL is how long listings and partition stubs read from the bucket are trusted: a
	// partition uploaded later appears within it. Negative: remote partitions are found
	// only through the local cold tier's stubs (a capture host that wants no bucket listing).
	BucketTTL time.Duration `toml:"bucket_ttl" flag:"bucket-ttl" help:"trust bucket listings this long; a later upload appears within it (negative: no listing)"`
}

// DefaultConfig holds the production defaults.
func DefaultConfig() Config {
	return Config{
		CacheBytes:     qzst.DefaultCacheBytes,
		DirectReads:    true,
		RemoteTimeout:  30 * time.Second,
		DiskCacheBytes: 8 << 30,
		BucketTTL:      time.Minute,
	}
}

// Validate reports the first invalid field, naming its key.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%s = %v: %s", field, v, why)
	}
	switch {
	case c.CacheBytes < 4<<20:
		return bad("cache_bytes", c.CacheBytes, "need at least 4 MiB (a few 1 MiB frames)")
	case c.ReadaheadFrames < 0:
		return bad("readahead_frames", c.ReadaheadFrames, "negative")
	case c.RemoteTimeout <= 0:
		return bad("remote_timeout", c.RemoteTimeout, "must be positive: remote reads must fail, never hang")
	case c.DiskCacheBytes < 0:
		return bad("disk_cache_bytes", c.DiskCacheBytes, "negative (0 turns the disk cache off)")
	case c.BucketTTL == 0:
		return bad("bucket_ttl", c.BucketTTL, "zero would list the bucket on every lookup; negative turns bucket listing off")
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
