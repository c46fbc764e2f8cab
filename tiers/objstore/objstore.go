// Package objstore is the remote tier's object store: one small interface with
// an S3 backend (aws-sdk-go-v2, tested against a real versitygw) and a file://
// backend (a local folder, the embedded default).
//
// Every Put is verified end to end with SHA-256: ObjectInfo.SHA256 is the hex
// digest of the full object as computed by us from the bytes we sent, and the
// backend has confirmed those bytes (see docs/objstore.md for exactly what each
// backend checks).
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/chronicle/chronicle/internal/bytesize"
)

// Every error a Store returns wraps at most a few of these (plus the cause) and names
// the key, URI or range involved; test with errors.Is.
var (
	// ErrNotFound: the object (or, for S3, the bucket) does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrChecksumMismatch: bytes read from the caller, sent to or acknowledged
	// by the backend do not hash to what was expected. Nothing was published.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrUnavailable: the backend could not be reached or answered too slowly
	// (connection refused/reset, timeout, stalled body, 5xx). Retrying later
	// may succeed.
	ErrUnavailable = errors.New("object store unavailable")
	// ErrChanged: the object was replaced or deleted while a ranged read was
	// resuming, so the bytes already returned and the rest would come from
	// different versions. Reading again from the start gives the new object.
	ErrChanged = errors.New("object changed during read")
	// ErrExists: a Put with PutOptions.IfAbsent found the key holding other bytes;
	// nothing was written and the object there is untouched.
	ErrExists = errors.New("object already exists")
	// ErrNoConditional: the store cannot create an object only if it is absent (an S3
	// server that ignores If-None-Match, or conditional_writes = "off"); callers use a
	// claim protocol instead (docs/format/remote-claim.md).
	ErrNoConditional = errors.New("store has no conditional writes")
)

// Store is a flat namespace of immutable-once-written objects addressed by
// '/'-separated keys relative to the store's root URI.
type Store interface {
	// Put uploads size bytes of r as key, replacing any previous object (unless
	// opts.IfAbsent), and returns what was stored. On success the object's SHA-256 equals
	// ObjectInfo.SHA256 (and opts.SHA256 when set). On error nothing was
	// published and a previous object is left as it was, except for an
	// ErrChecksumMismatch found only after S3 published the upload (a wrong
	// echoed composite checksum or a Head that disagrees): then the key's
	// content is unverified and the caller must not record it. r may be
	// read more than once (S3 hashes first, then sends).
	Put(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (ObjectInfo, error)
	// Head returns the object's size, ETag and recorded SHA-256.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// GetRange streams bytes [off, off+n). The reader yields exactly n bytes
	// and then io.EOF, or fails with an error wrapping ErrUnavailable (or
	// ErrChanged when the object was replaced while S3 resumed the read); a
	// range not inside the object fails up front with ErrOutOfRange. n == 0
	// is allowed for 0 <= off <= size. The caller must Close the reader.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix (plain string
	// prefix, not segment-bound), sorted by key. It is for maintenance: it
	// may be slow, and entries may leave SHA256 (and, for file://, ETag)
	// empty; Head fills them.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// ListDir lists one level below dir, a key prefix that is empty or ends in '/',
	// as S3's ListObjectsV2 with delimiter '/' does, every page: the names of the
	// "subdirectories" (common prefixes, without dir and the trailing '/') and the
	// objects directly in dir (Key is the full key), both sorted. Entries may leave
	// SHA256 and ETag empty. A dir that holds nothing lists empty, without error.
	ListDir(ctx context.Context, dir string) (subdirs []string, objects []ObjectInfo, err error)
	// URI returns the URI naming key, e.g. s3://bucket/prefix/key.
	URI(key string) string
	// KeyOf maps a URI back to a key, rejecting anything outside this
	// store's root with ErrOutsideRoot (see Location.KeyOf).
	KeyOf(uri string) (string, error)
	// Conditional reports whether the store can create objects only if absent
	// (PutOptions.IfAbsent). An S3 store with conditional_writes = "auto" asks its
	// server once (a probe object created twice: the second creation must be refused)
	// and remembers the answer; an error means it could not ask.
	Conditional(ctx context.Context) (bool, error)
	// Close releases idle connections and other resources.
	Close() error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ETag as the backend reports it, quotes stripped. file:// uses the hex
	// SHA-256; S3 uses its own (MD5-based, "-N" suffixed for multipart).
	ETag string
	// SHA256 is the lowercase hex SHA-256 of the whole object. Put sets it
	// from the bytes it sent; Head reads it from the object's metadata
	// (x-amz-meta-sha256 on S3). Empty when the object was not written
	// through this package.
	SHA256 string
	// ServerChecksum is the checksum the backend reported, verbatim: base64
	// SHA-256 for a single PUT and for file://, "base64(sha256(part
	// digests))-N" for an S3 multipart upload. ChecksumType says which.
	ServerChecksum string
	ChecksumType   string // "FULL_OBJECT", "COMPOSITE" or ""
	// Parts is the number of upload parts (1 for single PUTs); set by Put.
	Parts   int
	ModTime time.Time
	// Existed is set by a Put with IfAbsent that found the same bytes already
	// there and wrote nothing.
	Existed bool
}

// PutOptions tunes one Put.
type PutOptions struct {
	// SHA256, when set (lowercase hex), is the digest the caller expects
	// the bytes to have; Put fails with ErrChecksumMismatch before
	// publishing anything if they differ.
	SHA256 string
	// IfAbsent creates the object only if the key holds none, atomically (S3:
	// If-None-Match: * on PutObject and on CompleteMultipartUpload; file://: a hard
	// link, which fails when the name exists). A key that already holds the very
	// same bytes (same size and SHA-256: a retried request, or the caller's own
	// earlier upload) is success, with ObjectInfo.Existed set; one that holds other
	// bytes fails with ErrExists and is left as it was. A store that cannot do it
	// fails with ErrNoConditional before sending anything (Conditional says so up
	// front).
	IfAbsent bool
}

// Values of Config.ConditionalWrites.
const (
	ConditionalAuto = "auto"
	ConditionalOn   = "on"
	ConditionalOff  = "off"
)

// Defaults for Config fields left zero.
const (
	DefaultRequestTimeout      = 10 * time.Second
	DefaultMaxRetries          = 3
	DefaultMaxBackoff          = time.Second
	DefaultMaxResumes          = 3
	DefaultPartSize            = 16 << 20
	DefaultMultipartThreshold  = 128 << 20
	DefaultConcurrency         = 4
	DefaultMaxIdleConnsPerHost = 64
	// MinPartSize is S3's minimum for every part but the last.
	MinPartSize = 5 << 20
	// MaxParts is S3's limit on parts per upload; PartSize grows to fit.
	MaxParts = 10000
)

// More causes a Store reports.
var (
	// ErrOutOfRange: a requested byte range does not lie inside the object.
	ErrOutOfRange = errors.New("range outside object")
	// ErrAccessDenied: the backend refused the credentials or permissions.
	ErrAccessDenied = errors.New("access denied")
	// ErrShortInput: Put's reader ended before the declared size.
	ErrShortInput = errors.New("input shorter than declared size")
)

// ErrInvalidConfig: a Config value is out of its allowed range.
var ErrInvalidConfig = errors.New("invalid object store config")

// Config configures Open. Bucket and prefix come from the URI. The toml tags
// are the keys of the [remote] table in chronicle's configuration.
type Config struct {
	// Endpoint overrides the S3 endpoint, e.g. "http://127.0.0.1:7070".
	// Empty uses AWS's endpoint for Region (or $AWS_ENDPOINT_URL).
	Endpoint string `toml:"endpoint" flag:"remote-endpoint" help:"S3 endpoint URL"`
	// Region; empty uses the AWS chain ($AWS_REGION, shared config), then
	// "us-east-1".
	Region string `toml:"region" flag:"remote-region" help:"S3 region"`
	// AccessKey/SecretKey/SessionToken; empty uses the standard AWS
	// credential chain (AWS_ACCESS_KEY_ID..., shared files, IMDS...).
	AccessKey    string `toml:"access_key"`
	SecretKey    string `toml:"secret_key"`
	SessionToken string `toml:"session_token"`
	// PathStyle addresses buckets as endpoint/bucket/key; needed by most
	// non-AWS servers, versitygw included.
	PathStyle bool `toml:"path_style" flag:"remote-path-style" help:"address buckets as endpoint/bucket (most non-AWS servers)"`
	// RequestTimeout bounds each attempt's wait: connecting, each write,
	// the wait for response headers, and any stall while streaming a body.
	RequestTimeout time.Duration `toml:"request_timeout"`
	// MaxRetries is the number of retries after the first attempt
	// (exponential backoff with full jitter, capped at MaxBackoff).
	// 0 means DefaultMaxRetries; use -1 for no retries.
	MaxRetries int           `toml:"max_retries"`
	MaxBackoff time.Duration `toml:"max_backoff"`
	// MaxResumes bounds the ranged GETs one GetRange reader re-issues for
	// the bytes it still misses after its body fails mid-stream (early EOF,
	// reset, stall), each after a backoff capped at MaxBackoff and each with
	// its own MaxRetries. 0 means DefaultMaxResumes; use -1 for none.
	MaxResumes int `toml:"max_resumes"`
	// PartSize and MultipartThreshold: objects of at least
	// MultipartThreshold bytes are uploaded in parts of PartSize bytes.
	PartSize           bytesize.Size `toml:"part_size"`
	MultipartThreshold bytesize.Size `toml:"multipart_threshold"`
	// Concurrency bounds the parts uploaded at once.
	Concurrency int `toml:"concurrency"`
	// MaxIdleConnsPerHost keeps this many connections alive per endpoint
	// for reuse by ranged GETs.
	MaxIdleConnsPerHost int `toml:"max_idle_conns_per_host"`
	// ConditionalWrites says whether the S3 server honours If-None-Match: * on
	// PutObject and CompleteMultipartUpload: "auto" (the default: ask it once, with a
	// probe object), "on" (trust it) or "off" (never send it: PutOptions.IfAbsent fails
	// with ErrNoConditional, and the tier manager claims keys with its
	// create-then-verify protocol). file:// stores always can.
	ConditionalWrites string `toml:"conditional_writes"`
	// Logger receives warnings and debug events; nil discards.
	Logger *slog.Logger `toml:"-"`
}

// withDefaults fills zero fields and validates the rest.
func (c Config) withDefaults() (Config, error) {
	if c.MaxRetries < -1 {
		return c, fmt.Errorf("max_retries %d: want -1 (no retries), 0 (the default %d) or more: %w", c.MaxRetries, DefaultMaxRetries, ErrInvalidConfig)
	}
	if c.MaxResumes < -1 {
		return c, fmt.Errorf("max_resumes %d: want -1 (no resumes), 0 (the default %d) or more: %w", c.MaxResumes, DefaultMaxResumes, ErrInvalidConfig)
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("endpoint %q: want http://host:port or https://host: %w", c.Endpoint, ErrInvalidConfig)
		}
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	switch {
	case c.MaxResumes == 0:
		c.MaxResumes = DefaultMaxResumes
	case c.MaxResumes < 0:
		c.MaxResumes = 0
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = max(DefaultMultipartThreshold, c.PartSize)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = max(DefaultMaxIdleConnsPerHost, 2*c.Concurrency)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch c.ConditionalWrites {
	case "":
		c.ConditionalWrites = ConditionalAuto
	case ConditionalAuto, ConditionalOn, ConditionalOff:
	default:
		return c, fmt.Errorf("conditional_writes %q: want auto, on or off: %w", c.ConditionalWrites, ErrInvalidConfig)
	}
	switch {
	case c.RequestTimeout < 0:
		return c, fmt.Errorf("request_timeout %v must be positive: %w", c.RequestTimeout, ErrInvalidConfig)
	case c.MaxBackoff < 0:
		return c, fmt.Errorf("max_backoff %v must be positive: %w", c.MaxBackoff, ErrInvalidConfig)
	case c.PartSize < MinPartSize:
		return c, fmt.Errorf("part_size %d below S3's minimum %d: %w", c.PartSize, MinPartSize, ErrInvalidConfig)
	case c.MultipartThreshold < c.PartSize:
		return c, fmt.Errorf("multipart_threshold %d below part_size %d: %w", c.MultipartThreshold, c.PartSize, ErrInvalidConfig)
	case c.Concurrency < 1:
		return c, fmt.Errorf("concurrency %d must be at least 1: %w", c.Concurrency, ErrInvalidConfig)
	case c.MaxIdleConnsPerHost < 1:
		return c, fmt.Errorf("max_idle_conns_per_host %d must be at least 1: %w", c.MaxIdleConnsPerHost, ErrInvalidConfig)
	}
	return c, nil
}

// MaxWait is the longest an S3 call can wait on an unresponsive server before
// failing with ErrUnavailable: every attempt times out after RequestTimeout
// and each backoff is at most MaxBackoff. (A streaming body is bounded per
// stall, not in total; each of its MaxResumes resumes adds at most
// MaxBackoff + MaxWait.)
func (c Config) MaxWait() time.Duration {
	c, err := c.withDefaults()
	if err != nil {
		return 0
	}
	attempts := time.Duration(c.MaxRetries + 1)
	return attempts*c.RequestTimeout + (attempts-1)*c.MaxBackoff
}

// Stats are the counters a store keeps for /metrics.
type Stats struct {
	// GetResumes counts ranged GETs re-issued for the rest of a body that
	// failed mid-stream (S3 only).
	GetResumes int64
}

// StatsOf returns st's counters; zero for a store that keeps none (file://,
// nil).
func StatsOf(st Store) Stats {
	if s, ok := st.(interface{ Stats() Stats }); ok {
		return s.Stats()
	}
	return Stats{}
}

// Open returns the Store for a root URI: s3://bucket[/prefix] or
// file:///abs/dir (the directory is created if missing).
func Open(ctx context.Context, uri string, cfg Config) (Store, error) {
	loc, err := ParseURI(uri)
	if err != nil {
		return nil, fmt.Errorf("open object store: %w", err)
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open object store %s: %w", loc, err)
	}
	switch loc.Scheme {
	case SchemeFile:
		return newFileStore(loc, cfg.Logger)
	default:
		return newS3Store(ctx, loc, cfg)
	}
}

// ReadRange reads exactly len(p) bytes of key at off into p.
func ReadRange(ctx context.Context, s Store, key string, off int64, p []byte) error {
	rc, err := s.GetRange(ctx, key, off, int64(len(p)))
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, p); err != nil {
		return fmt.Errorf("read %q [%d,+%d): %w", key, off, len(p), err)
	}
	return nil
}

func checkRangeArgs(key string, off, n int64) error {
	if off < 0 || n < 0 || off > off+n {
		return fmt.Errorf("range %q [%d,+%d): %w", key, off, n, ErrOutOfRange)
	}
	return nil
}

func outOfRange(key string, off, n, size int64) error {
	return fmt.Errorf("range %q [%d,+%d) of %d-byte object: %w", key, off, n, size, ErrOutOfRange)
}
