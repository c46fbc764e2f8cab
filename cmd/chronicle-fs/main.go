// Command chronicle-fs mounts the union of Chronicle's storage tiers read-only, so every
// book.q reads as a plain file whatever tier holds it. See docs/chronicle-fs.md.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/chronicle/chronicle/format/qzst"
	chfs "github.com/chronicle/chronicle/fs"
	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/diskcache"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/spf13/pflag"
)

const usage = `chronicle-fs: mount every Chronicle tier as one read-only file tree.

Usage:
  chronicle-fs mount [flags] MOUNTPOINT     mount and serve until SIGTERM/SIGINT
  chronicle-fs unmount MOUNTPOINT           unmount (lazily when busy)

MOUNTPOINT must be an existing directory (--mkdir creates it and its parents).

Examples:
  chronicle-fs mount --config /etc/chronicle/chronicle.toml /chronicle
  chronicle-fs mount --config /etc/chronicle/chronicle.toml --mkdir /chronicle
  chronicle-fs mount --warm /mnt/nvme-warm/chronicle --cold /mnt/hdd/chronicle \
      --remote s3://md-archive/chronicle --remote-endpoint http://10.0.0.5:7070 /chronicle
  chronicle-fs mount --config chronicle.toml --cache-bytes 1GiB --allow-other /chronicle
  chronicle-fs mount --config chronicle.toml --mount-socket /run/chronicle-fs-mount.sock /chronicle
  dd if=/chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.q of=/dev/null bs=1M
  python3 -c 'import numpy; a = numpy.load("/chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.npy", mmap_mode="r"); print(a["price"][:5])'
  getfattr -d /chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.q
  python3 -c 'import numpy; t = numpy.load("/chronicle/v1/binance-perp/eth-usdt/2024-08-08/views/top10.npy", mmap_mode="r"); print(t["bid_price"][-1])'

The config file's [tiers], [remote], [log] and [fs] sections are read; flags override them.
A stale mount left by a crash is cleaned at start. SIGTERM or SIGINT unmounts (detaching
lazily while files are open) and exits 0.

Mount flags:
`

var (
	prog = &cli.Command{Program: "chronicle-fs", Help: usage, FlagsTitle: "-", Usage: `chronicle-fs mount [flags] MOUNTPOINT
chronicle-fs unmount MOUNTPOINT`}
	cmdMount   = &cli.Command{Program: "chronicle-fs", Name: "mount", Help: usage, FlagsTitle: "-", Usage: "chronicle-fs mount [flags] MOUNTPOINT"}
	cmdUnmount = &cli.Command{Program: "chronicle-fs", Name: "unmount", Help: unmountUsage, Usage: "chronicle-fs unmount MOUNTPOINT"}
)

const unmountUsage = `chronicle-fs unmount MOUNTPOINT unmounts a chronicle-fs mount, detaching it lazily while
files on it are open (the daemon then exits once the last one closes). A directory that is
not a mount point is refused.

Usage:
  chronicle-fs unmount MOUNTPOINT

Examples:
  chronicle-fs unmount /chronicle
  chronicle-fs unmount /tmp/chronicle-demo/mnt
`

func init() { prog.Flags = func() *pflag.FlagSet { return mountFlags(&settings{}) } }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	return cli.Dispatch(prog, map[string]func([]string) int{
		"mount":   func(args []string) int { return mountCmd(args, stdout, stderr) },
		"unmount": func(args []string) int { return unmountCmd(args, stdout, stderr) },
		"umount":  func(args []string) int { return unmountCmd(args, stdout, stderr) },
	}, []string{"mount", "unmount"}, args, stdout, stderr)
}

func unmountCmd(args []string, stdout, stderr io.Writer) int {
	fl := cmdUnmount.FlagSet()
	if code, done := cmdUnmount.Parse(fl, args, stdout, stderr); done {
		return code
	}
	if err := cli.Args(fl, 1, 1, "the MOUNTPOINT"); err != nil {
		return cmdUnmount.Exit(stderr, err)
	}
	return cmdUnmount.Exit(stderr, chfs.LazyUnmount(fl.Arg(0)))
}

// settings are everything a mount reads from the config file.
type settings struct {
	configPath string
	roots      layout.Roots
	remote     objstore.Config
	log        config.Log
	fs         chfs.Config
	fl         *pflag.FlagSet
	cacheBytes string
	memLimit   string
	diskCache  string
	viewsCache string
	cpuProfile string
	mkdir      bool
}

func mountFlags(s *settings) *pflag.FlagSet {
	fl := cmdMount.FlagSet()
	fl.BoolVar(&s.mkdir, "mkdir", false, "create MOUNTPOINT (and its parents) if it does not exist")
	fl.StringVar(&s.configPath, "config", "", "TOML configuration file ([tiers], [remote], [log], [fs])")
	fl.StringVar(&s.roots.Hot, "hot", "", "hot tier root (overrides [tiers] hot)")
	fl.StringVar(&s.roots.Warm, "warm", "", "warm tier root")
	fl.StringVar(&s.roots.Cold, "cold", "", "cold tier root")
	fl.StringVar(&s.roots.Remote, "remote", "", "remote tier URI: s3://bucket/prefix or file:///dir")
	fl.StringVar(&s.remote.Endpoint, "remote-endpoint", "", "S3 endpoint URL ([remote] endpoint)")
	fl.StringVar(&s.remote.Region, "remote-region", "", "S3 region")
	fl.BoolVar(&s.remote.PathStyle, "remote-path-style", false, "address buckets as endpoint/bucket (most non-AWS servers)")
	fl.StringVar(&s.cacheBytes, "cache-bytes", "", "frame cache for cold and remote reads, e.g. 256MiB ([fs] cache_bytes)")
	fl.StringVar(&s.memLimit, "memory-limit", "", "Go memory limit (default cache + 64MiB)")
	fl.IntVar(&s.fs.ReadaheadFrames, "readahead-frames", 0, "frames decoded ahead of sequential cold/remote readers")
	fl.BoolVar(&s.fs.AllowOther, "allow-other", false, "let other users read the mount")
	fl.StringVar(&s.fs.MetricsAddr, "metrics-addr", "", `serve /metrics here ("" in the file disables)`)
	fl.BoolVar(&s.fs.Passthrough, "passthrough", true, "kernel passthrough for sealed local files")
	fl.BoolVar(&s.fs.DirectReads, "direct-reads", true, "decode whole-frame reads of cold/remote books straight into the reply, uncached")
	fl.DurationVar(&s.fs.SealedTimeout, "sealed-timeout", 0, "attribute/entry cache time of sealed books")
	fl.DurationVar(&s.fs.GrowingTimeout, "growing-timeout", 0, "attribute cache time of growing books")
	fl.DurationVar(&s.fs.DirTimeout, "dir-timeout", 0, "cache time of directories and small files")
	fl.DurationVar(&s.fs.NegativeTimeout, "negative-timeout", 0, "cache time of 'no such file'")
	fl.DurationVar(&s.fs.RemoteTimeout, "remote-timeout", 0, "bound on one remote read; past it reads fail with EIO")
	fl.DurationVar(&s.fs.WatchInterval, "watch-interval", 0, "how often known partitions are checked for tier moves")
	fl.IntVar(&s.fs.ReadAheadKB, "read-ahead-kb", 0, "kernel readahead for the mount (bdi read_ahead_kb)")
	fl.IntVar(&s.fs.MaxBackground, "max-background", 0, "asynchronous FUSE requests in flight")
	fl.StringVar(&s.fs.DiskCacheDir, "disk-cache-dir", "", "keep fetched remote frames and files here (default ~/.cache/chronicle-fs)")
	fl.StringVar(&s.diskCache, "disk-cache-bytes", "", "bound of the disk cache, e.g. 20GiB; 0 turns it off (default 8GiB)")
	fl.DurationVar(&s.fs.BucketTTL, "bucket-ttl", 0, "trust bucket listings this long; a later upload appears within it (negative: no listing)")
	fl.StringVar(&s.fs.MountSocket, "mount-socket", "", "let the helper listening here mount MOUNTPOINT and pass the FUSE descriptor back (no privilege needed; deploy/chronicle-fs-research.service)")
	fl.DurationVar(&s.fs.ShutdownGrace, "shutdown-grace", 0, "how long a busy, lazily detached mount keeps serving after SIGTERM")
	fl.IntSliceVar(&s.fs.Views, "views", nil, "N of the top-N views under each partition's views/ (default 1,10,25)")
	fl.StringVar(&s.viewsCache, "views-cache-bytes", "", "rendered view rows kept in memory, e.g. 64MiB ([fs] views_cache_bytes)")
	fl.BoolVar(&s.fs.Debug, "debug", false, "log every FUSE request")
	fl.StringVar(&s.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run to this file")
	fl.StringVar(&s.log.Level, "log-level", "", "debug, info, warn, error")
	fl.StringVar(&s.log.Format, "log-format", "", "json or text")
	s.fl = fl
	return fl
}

// load reads the config file, then applies the flags that were set (parsed into
// fromFlags by fl).
func load(fl *pflag.FlagSet, fromFlags *settings) (*settings, error) {
	f := fromFlags
	// Sizes are text to parse, checked before the file is read.
	for _, size := range []struct {
		name, src string
		dst       *int64
	}{{"cache-bytes", f.cacheBytes, &f.fs.CacheBytes}, {"memory-limit", f.memLimit, &f.fs.MemoryLimit}, {"disk-cache-bytes", f.diskCache, &f.fs.DiskCacheBytes},
		{"views-cache-bytes", f.viewsCache, &f.fs.ViewsCacheBytes}} {
		if !fl.Changed(size.name) {
			continue
		}
		v, err := bytesize.Parse(size.src)
		if err != nil {
			return nil, cli.Usagef("--%s: %w", size.name, err)
		}
		*size.dst = v
	}
	s := &settings{roots: layout.DefaultRoots(), log: config.DefaultLog(), fs: chfs.DefaultConfig(), mkdir: f.mkdir}
	if err := config.Load(f.configPath, map[string]any{"tiers": &s.roots, "remote": &s.remote, "log": &s.log, "fs": &s.fs}); err != nil {
		return nil, err
	}
	check := func() error { return errors.Join(s.fs.Validate(), s.log.Validate()) }
	return s, cli.Validate(f.configPath, check, func() { f.apply(fl, s) })
}

// apply sets the values the command line gave (f) over s.
func (f *settings) apply(fl *pflag.FlagSet, s *settings) {
	set := func(name string, apply func()) {
		if fl.Changed(name) {
			apply()
		}
	}
	set("hot", func() { s.roots.Hot = f.roots.Hot })
	set("warm", func() { s.roots.Warm = f.roots.Warm })
	set("cold", func() { s.roots.Cold = f.roots.Cold })
	set("remote", func() { s.roots.Remote = f.roots.Remote })
	set("remote-endpoint", func() { s.remote.Endpoint = f.remote.Endpoint })
	set("remote-region", func() { s.remote.Region = f.remote.Region })
	set("remote-path-style", func() { s.remote.PathStyle = f.remote.PathStyle })
	set("readahead-frames", func() { s.fs.ReadaheadFrames = f.fs.ReadaheadFrames })
	set("allow-other", func() { s.fs.AllowOther = f.fs.AllowOther })
	set("metrics-addr", func() { s.fs.MetricsAddr = f.fs.MetricsAddr })
	set("passthrough", func() { s.fs.Passthrough = f.fs.Passthrough })
	set("direct-reads", func() { s.fs.DirectReads = f.fs.DirectReads })
	set("sealed-timeout", func() { s.fs.SealedTimeout = f.fs.SealedTimeout })
	set("growing-timeout", func() { s.fs.GrowingTimeout = f.fs.GrowingTimeout })
	set("dir-timeout", func() { s.fs.DirTimeout = f.fs.DirTimeout })
	set("negative-timeout", func() { s.fs.NegativeTimeout = f.fs.NegativeTimeout })
	set("remote-timeout", func() { s.fs.RemoteTimeout = f.fs.RemoteTimeout })
	set("watch-interval", func() { s.fs.WatchInterval = f.fs.WatchInterval })
	set("read-ahead-kb", func() { s.fs.ReadAheadKB = f.fs.ReadAheadKB })
	set("max-background", func() { s.fs.MaxBackground = f.fs.MaxBackground })
	set("disk-cache-dir", func() { s.fs.DiskCacheDir = f.fs.DiskCacheDir })
	set("bucket-ttl", func() { s.fs.BucketTTL = f.fs.BucketTTL })
	set("mount-socket", func() { s.fs.MountSocket = f.fs.MountSocket })
	set("shutdown-grace", func() { s.fs.ShutdownGrace = f.fs.ShutdownGrace })
	set("debug", func() { s.fs.Debug = f.fs.Debug })
	set("views", func() { s.fs.Views = f.fs.Views })
	set("log-level", func() { s.log.Level = f.log.Level })
	set("cpuprofile", func() { s.cpuProfile = f.cpuProfile })
	set("log-format", func() { s.log.Format = f.log.Format })
	set("cache-bytes", func() { s.fs.CacheBytes = f.fs.CacheBytes })
	set("memory-limit", func() { s.fs.MemoryLimit = f.fs.MemoryLimit })
	set("disk-cache-bytes", func() { s.fs.DiskCacheBytes = f.fs.DiskCacheBytes })
	set("views-cache-bytes", func() { s.fs.ViewsCacheBytes = f.fs.ViewsCacheBytes })
}

func mountCmd(args []string, stdout, stderr io.Writer) int {
	var fromFlags settings
	fl := mountFlags(&fromFlags)
	if code, done := cmdMount.Parse(fl, args, stdout, stderr); done {
		return code
	}
	return cmdMount.Exit(stderr, mount(fl, &fromFlags))
}

// mount checks the command line, the configuration and the mount point, then serves:
// nothing (log, cache, metrics port, mount) is opened before they are known good.
func mount(fl *pflag.FlagSet, fromFlags *settings) error {
	if err := cli.Args(fl, 1, 1, "the MOUNTPOINT"); err != nil {
		return err
	}
	s, err := load(fl, fromFlags)
	if err != nil {
		return err
	}
	dir := fl.Arg(0)
	if err := chfs.CheckMountPoint(dir, s.mkdir); err != nil {
		return err
	}
	log, err := daemon.Logger(s.log, "chronicle-fs")
	if err != nil {
		return err
	}
	return serve(s, dir, log)
}

func serve(s *settings, dir string, log *slog.Logger) error {
	if s.cpuProfile != "" {
		pf, err := os.Create(s.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Decoded frames are live heap: without a limit the collector lets the heap grow to
	// twice the cache before it runs. gc_percent trades memory for fewer collections (each
	// empties go-fuse's sync.Pool of 1 MiB request buffers); see fs.Config.GCPercent.
	debug.SetMemoryLimit(s.fs.EffectiveMemoryLimit())
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(s.fs.GCPercent)
	}

	// Files in the roots are served as ours: refuse roots other users could fill.
	if err := layout.CheckRoots(s.roots.AllowSharedRoots, log, s.roots.LocalRoots()...); err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()

	var store objstore.Store
	if s.roots.Remote != "" {
		s.remote.Logger = log
		st, err := objstore.Open(ctx, s.roots.Remote, s.remote)
		if err != nil {
			return err
		}
		defer st.Close()
		store = st
	}
	cache, err := qzst.NewCache(qzst.CacheOptions{MaxBytes: s.fs.CacheBytes})
	if err != nil {
		return err
	}
	defer cache.Close()
	var disk *diskcache.Cache
	if store != nil && s.fs.DiskCacheBytes > 0 {
		dir, err := s.fs.DiskCachePath()
		if err != nil {
			return err
		}
		if disk, err = diskcache.Open(dir, s.fs.DiskCacheBytes); err != nil {
			return err
		}
		log.Info("disk cache", "dir", dir, "bytes", disk.Size(), "limit", s.fs.DiskCacheBytes)
	}
	res, err := tiers.New(s.roots, tiers.Options{Store: store, Cache: cache, Readahead: s.fs.ReadaheadFrames, Direct: s.fs.DirectReads,
		RemoteTimeout: s.fs.RemoteTimeout, DiskCache: disk, BucketTTL: s.fs.BucketTTL, Logger: log})
	if err != nil {
		return err
	}
	defer res.Close()
	fsys, err := chfs.New(res, s.fs, log)
	if err != nil {
		return err
	}
	// Through a helper the mount is made (and a stale one cleaned) outside this process's
	// view of the mount table.
	if s.fs.MountSocket == "" {
		if err := chfs.CleanStale(dir, s.mkdir, log); err != nil {
			return err
		}
	}
	m, err := fsys.Mount(dir)
	if err != nil {
		return err
	}
	reg := daemon.Registry()
	reg.MustRegister(fsys.Collector())
	mctx, mcancel := context.WithCancel(context.Background())
	defer mcancel()
	if _, err := daemon.ServeMetrics(mctx, s.fs.MetricsAddr, reg, log); err != nil {
		m.Unmount(s.fs.ShutdownGrace)
		return err
	}
	daemon.Ready(log)
	log.Info("serving", "mountpoint", m.Dir(), "hot", s.roots.Hot, "warm", s.roots.Warm, "cold", s.roots.Cold,
		"remote", s.roots.Remote, "cache_bytes", s.fs.CacheBytes, "memory_limit", s.fs.EffectiveMemoryLimit())
	select {
	case <-ctx.Done():
	case <-m.Done():
		log.Warn("mount ended from outside (unmounted or aborted)", "mountpoint", m.Dir())
		return nil
	}
	err = m.Unmount(s.fs.ShutdownGrace)
	logStopped(log, cache, res)
	if err != nil {
		if errors.Is(err, chfs.ErrUnmountTimeout) {
			log.Warn("exiting with files still open on the detached mount; they will see ENOTCONN", "err", err)
			return nil
		}
		return err
	}
	return nil
}

// logStopped sums up what the daemon's cold and remote reads did, at exit.
func logStopped(log *slog.Logger, cache *qzst.Cache, res *tiers.Resolver) {
	cs, rs := cache.Stats(), res.Stats()
	log.Info("stopped", "frames_decoded", cs.FramesDecoded, "frames_direct", cs.DirectFrames,
		"frames_partial", cs.PartialFrames, "frames_resumed", cs.PartialResumes,
		"source_reads", cs.SourceReads, "bytes_fetched", cs.BytesFetched,
		"remote_requests", rs.RemoteRequests.Load(), "remote_bytes", rs.RemoteBytes.Load(),
		"fetch_window_runs", cs.WindowRuns, "fetch_window_bytes", cs.WindowBytes,
		"inflight_peak_bytes", cs.InflightPeak, "inflight_byte_seconds", cs.InflightByteSeconds,
		"fetch_stalls", cs.FetchStalls, "fetch_stall_seconds", cs.FetchStallTime.Seconds())
}
