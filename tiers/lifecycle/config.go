package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/internal/bytesize"
)

// ErrInvalidConfig: a [tier] value is out of range.
var ErrInvalidConfig = errors.New("invalid tier config")

// Config is the [tier] section of the shared configuration (docs/chronicle-tier.md).
type Config struct {
	// HotToWarm moves sealed hot partitions to warm (when the ETL writes to hot).
	HotToWarm bool `toml:"hot_to_warm" flag:"hot-to-warm" help:"move sealed hot partitions to warm"`
	// HotSettle: a sealed hot book whose meta.json has not appeared yet moves only after
	// its file has been unchanged this long (monotonic clock, from when the manager first
	// saw it so), so the ETL can finish the partition.
	HotSettle time.Duration `toml:"hot_settle" flag:"hot-settle" help:"wait this long for a sealed hot book's meta.json"`
	// ColdAfter: a warm partition is transcoded to cold once its UTC day ended this long ago.
	ColdAfter time.Duration `toml:"cold_after" flag:"cold-after" help:"move warm partitions whose day ended this long ago"`
	// RemoteAfter: a cold partition is uploaded once its UTC day ended this long ago.
	// 0 disables the remote policy (so does an empty [tiers] remote).
	RemoteAfter time.Duration `toml:"remote_after" flag:"remote-after" help:"upload cold partitions whose day ended this long ago; 0 disables"`

	// ZstdLevel is the zstd CLI-style level of the cold transcode (qzst.Options.Level).
	ZstdLevel int `toml:"zstd_level" flag:"zstd-level" help:"zstd level of the cold transcode"`
	// ZstdEncoder is "libzstd" (the C library, in builds with cgo: the default there) or
	// "go" (pure Go); "" takes the first of qzst.Encoders().
	ZstdEncoder string `toml:"zstd_encoder" flag:"zstd-encoder" help:"\"libzstd\" (cgo builds, their default) or \"go\""`
	// BlockSize is the uncompressed size of each seekable frame.
	BlockSize int `toml:"block_size"`
	// Threads compress one partition's frames in parallel (0 = all cores).
	Threads int `toml:"threads" flag:"threads" help:"compression threads per move, 0 = all cores"`
	// Derive is "" or "parquet": write derived/book.parquet during the cold move.
	Derive string `toml:"derive" flag:"derive" help:"\"parquet\": write derived/book.parquet during the cold move"`

	// ScanInterval is how often `run` scans the tiers.
	ScanInterval time.Duration `toml:"scan_interval" flag:"scan-interval" help:"how often run scans"`
	// Concurrency is how many partitions move at once.
	Concurrency int `toml:"concurrency" flag:"concurrency" help:"partitions moved at once"`
	// Bandwidth limits the bytes per second read from source files by all moves together
	// (0 = unlimited). Uploads count the hashing pass and the sending pass.
	Bandwidth bytesize.Size `toml:"bandwidth" flag:"bandwidth" help:"bytes per second read from sources, all moves together (e.g. 100MiB); 0 = unlimited"`
	// RetryMin and RetryMax bound the exponential backoff after a failed move.
	RetryMin time.Duration `toml:"retry_min"`
	RetryMax time.Duration `toml:"retry_max"`
	// RemoteVerify is "head" (size and SHA-256 from the store after the upload) or
	// "readback" (also download each object and hash it).
	RemoteVerify string `toml:"remote_verify" flag:"remote-verify" help:"\"head\" or \"readback\""`
	// StaleTemp: temporary files of other writers (the ETL) older than this are leftovers
	// of a crash and removed at the start of a scan. The manager's own are removed at once.
	StaleTemp time.Duration `toml:"stale_temp"`
	// MetricsAddr serves /metrics for `run` ("" disables).
	MetricsAddr string `toml:"metrics_addr" flag:"metrics-addr" help:"listen address for /metrics in run; \"\" disables"`
}

// Policy names.
const (
	DeriveParquet     = "parquet"
	RemoteVerifyHead  = "head"
	RemoteVerifyRead  = "readback"
	DefaultMetricAddr = "127.0.0.1:9466"
)

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		HotToWarm:    true,
		HotSettle:    time.Minute,
		ColdAfter:    24 * time.Hour,
		RemoteAfter:  365 * 24 * time.Hour,
		ZstdLevel:    qzst.DefaultLevel,
		BlockSize:    qzst.DefaultBlockSize,
		ScanInterval: 5 * time.Minute,
		Concurrency:  1,
		RetryMin:     time.Minute,
		RetryMax:     time.Hour,
		RemoteVerify: RemoteVerifyHead,
		StaleTemp:    time.Hour,
		MetricsAddr:  DefaultMetricAddr,
	}
}

// Validate checks every value.
func (c Config) Validate() error {
	bad := func(key string, format string, args ...any) error {
		return fmt.Errorf("[tier] %s: %s: %w", key, fmt.Sprintf(format, args...), ErrInvalidConfig)
	}
	switch {
	case c.HotSettle < 0:
		return bad("hot_settle", "%v is negative", c.HotSettle)
	case c.ColdAfter < 0:
		return bad("cold_after", "%v is negative", c.ColdAfter)
	case c.RemoteAfter < 0:
		return bad("remote_after", "%v is negative", c.RemoteAfter)
	case c.ZstdLevel < 1 || c.ZstdLevel > 22:
		return bad("zstd_level", "%d not in [1, 22]", c.ZstdLevel)
	case c.ZstdEncoder != "" && !slices.Contains(qzst.Encoders(), c.ZstdEncoder):
		return bad("zstd_encoder", "%q: this build has %q", c.ZstdEncoder, qzst.Encoders())
	case c.BlockSize < 4096 || c.BlockSize > qzst.MaxBlockSize:
		return bad("block_size", "%d not in [4096, %d]", c.BlockSize, qzst.MaxBlockSize)
	case c.Threads < 0:
		return bad("threads", "%d is negative", c.Threads)
	case c.Derive != "" && c.Derive != DeriveParquet:
		return bad("derive", "%q: want \"\" or %q", c.Derive, DeriveParquet)
	case c.ScanInterval <= 0:
		return bad("scan_interval", "%v must be positive", c.ScanInterval)
	case c.Concurrency < 1:
		return bad("concurrency", "%d must be at least 1", c.Concurrency)
	case c.Bandwidth < 0:
		return bad("bandwidth", "%d is negative", c.Bandwidth)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return bad("retry_min/retry_max", "%v/%v: want 0 < retry_min <= retry_max", c.RetryMin, c.RetryMax)
	case c.RemoteVerify != RemoteVerifyHead && c.RemoteVerify != RemoteVerifyRead:
		return bad("remote_verify", "%q: want %q or %q", c.RemoteVerify, RemoteVerifyHead, RemoteVerifyRead)
	case c.StaleTemp <= 0:
		return bad("stale_temp", "%v must be positive", c.StaleTemp)
	}
	return nil
}
