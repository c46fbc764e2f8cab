// Command chronicle-fs mounts the union of Chronicle's storage tiers read-only, so every
// book.q reads as a plain file whatever tier holds it. See docs/chronicle-fs.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/chronicle/chronicle/format/qzst"
	chfs "github.com/chronicle/chronicle/fs"
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

Examples:
  chronicle-fs mount --config /etc/chronicle/chronicle.toml /chronicle
  chronicle-fs mount --warm /mnt/nvme-warm/chronicle --cold /mnt/hdd/chronicle \
      --remote s3://md-archive/chronicle --remote-endpoint http://10.0.0.5:7070 /chronicle
  chronicle-fs mount --config chronicle.toml --cache-bytes 1GiB --allow-other /chronicle
  dd if=/chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.q of=/dev/null bs=1M
  python3 -c 'import numpy; a = numpy.load("/chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.npy", mmap_mode="r"); print(a["price"][:5])'
  getfattr -d /chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.q
  python3 -c 'import numpy; t = numpy.load("/chronicle/v1/binance-perp/eth-usdt/2024-08-08/views/top10.npy", mmap_mode="r"); print(t["bid_price"][-1])'

The config file's [tiers], [remote], [log] and [fs] sections are read; flags override them.
A stale mount left by a crash is cleaned at start. SIGTERM or SIGINT unmounts (detaching
lazily while files are open) and exits 0.

Mount flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "mount":
		return mountCmd(args[1:], stderr)
	case "unmount", "umount":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: chronicle-fs unmount MOUNTPOINT")
			return 2
		}
		if err := chfs.LazyUnmount(args[1]); err != nil {
			fmt.Fprintln(stderr, "chronicle-fs:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "chronicle-fs: unknown command %q (want mount or unmount; --help for usage)\n", args[0])
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	fl := mountFlags(&settings{})
	fl.SetOutput(w)
	fl.PrintDefaults()
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
}

func mountFlags(s *settings) *pflag.FlagSet {
	fl := pflag.NewFlagSet("mount", pflag.ContinueOnError)
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

// load reads the config file, then applies the flags that were set.
func load(args []string, stderr io.Writer) (*settings, []string, error) {
	var fromFlags settings
	fl := mountFlags(&fromFlags)
	fl.SetOutput(stderr)
	fl.Usage = func() { printUsage(stderr) }
	if err := fl.Parse(args); err != nil {
		return nil, nil, err
	}
	s := &settings{roots: layout.DefaultRoots(), log: config.DefaultLog(), fs: chfs.DefaultConfig()}
	if err := config.Load(fromFlags.configPath, map[string]any{"tiers": &s.roots, "remote": &s.remote, "log": &s.log, "fs": &s.fs}); err != nil {
		return nil, nil, err
	}
	set := func(name string, apply func()) {
		if fl.Changed(name) {
			apply()
		}
	}
	f := &fromFlags
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
	set("shutdown-grace", func() { s.fs.ShutdownGrace = f.fs.ShutdownGrace })
	set("debug", func() { s.fs.Debug = f.fs.Debug })
	set("views", func() { s.fs.Views = f.fs.Views })
	set("log-level", func() { s.log.Level = f.log.Level })
	set("cpuprofile", func() { s.cpuProfile = f.cpuProfile })
	set("log-format", func() { s.log.Format = f.log.Format })
	for name, size := range map[string]struct {
		dst *int64
		src string
	}{"cache-bytes": {&s.fs.CacheBytes, f.cacheBytes}, "memory-limit": {&s.fs.MemoryLimit, f.memLimit}, "disk-cache-bytes": {&s.fs.DiskCacheBytes, f.diskCache},
		"views-cache-bytes": {&s.fs.ViewsCacheBytes, f.viewsCache}} {
		if !fl.Changed(name) {
			continue
		}
		v, err := config.ParseSize(size.src)
		if err != nil {
			return nil, nil, fmt.Errorf("--%s: %w", name, err)
		}
		*size.dst = v
	}
	return s, fl.Args(), s.fs.Validate()
}

func mountCmd(args []string, stderr io.Writer) int {
	s, rest, err := load(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chronicle-fs:", err)
		return 2
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "chronicle-fs: mount needs exactly one MOUNTPOINT (--help for usage)")
		return 2
	}
	log, err := daemon.Logger(s.log, "chronicle-fs")
	if err != nil {
		fmt.Fprintln(stderr, "chronicle-fs:", err)
		return 2
	}
	if err := serve(s, rest[0], log); err != nil {
		log.Error("chronicle-fs failed", "err", err)
		return 1
	}
	return 0
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
	if err := chfs.CleanStale(dir, log); err != nil {
		return err
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
	if err := m.Unmount(s.fs.ShutdownGrace); err != nil {
		if errors.Is(err, chfs.ErrUnmountTimeout) {
			log.Warn("exiting with files still open on the detached mount; they will see ENOTCONN", "err", err)
			return nil
		}
		return err
	}
	return nil
}
