// Command chronicle-fs mounts the union of Chronicle's storage tiers read-only, so every
// book.q reads as a plain file whatever tier holds it. See docs/chronicle-fs.md.
package main

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"os"

	"github.com/spf13/pflag"

	chfs "github.com/chronicle/chronicle/fs"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
)

var (
	//go:embed usage.txt
	usage string
	//go:embed unmount.txt
	unmountUsage string
	prog         = &cli.Command{Program: "chronicle-fs", Help: usage, FlagsTitle: "-", Usage: "chronicle-fs mount [flags] MOUNTPOINT\nchronicle-fs unmount MOUNTPOINT",
		Flags: func() *pflag.FlagSet { return newSettings().fl }}
	cmdMount   = &cli.Command{Program: "chronicle-fs", Name: "mount", Help: usage, FlagsTitle: "-", Usage: "chronicle-fs mount [flags] MOUNTPOINT"}
	cmdUnmount = &cli.Command{Program: "chronicle-fs", Name: "unmount", Help: unmountUsage, Usage: "chronicle-fs unmount MOUNTPOINT"}
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

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
	err := cli.Args(fl, 1, 1, "the MOUNTPOINT")
	if err == nil {
		err = chfs.LazyUnmount(fl.Arg(0))
	}
	return cmdUnmount.Exit(stderr, err)
}

// settings are the sections a mount reads, their flags bound onto their fields.
type settings struct {
	roots                  layout.Roots
	remote                 objstore.Config
	log                    config.Log
	fs                     chfs.Config
	fl                     *pflag.FlagSet
	bind                   *config.Binder
	configPath, cpuProfile string
	mkdir                  bool
}

func newSettings() *settings {
	s := &settings{roots: layout.DefaultRoots(), log: config.DefaultLog(), fs: chfs.DefaultConfig(), fl: cmdMount.FlagSet()}
	s.fl.StringVar(&s.configPath, "config", "", "TOML configuration file ([tiers], [remote], [log], [fs])")
	s.fl.BoolVar(&s.mkdir, "mkdir", false, "create MOUNTPOINT (and its parents) if it does not exist")
	s.fl.StringVar(&s.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run to this file")
	s.bind = config.NewBinder(s.fl).Section("tiers", &s.roots).Section("remote", &s.remote).Section("fs", &s.fs).Section("log", &s.log)
	return s
}

// load reads the config file under the flags given.
func (s *settings) load() error {
	if err := s.bind.Load(s.configPath); err != nil {
		return err
	}
	return cli.Validate(s.configPath, func() error { return errors.Join(s.fs.Validate(), s.log.Validate()) }, s.bind.Apply)
}

func mountCmd(args []string, stdout, stderr io.Writer) int {
	s := newSettings()
	if code, done := cmdMount.Parse(s.fl, args, stdout, stderr); done {
		return code
	}
	return cmdMount.Exit(stderr, mount(s))
}

// mount checks the command line, the configuration and the mount point, then serves:
// nothing (log, cache, metrics port, mount) is opened before they are known good.
func mount(s *settings) error {
	dir := s.fl.Arg(0)
	if err := cli.Args(s.fl, 1, 1, "the MOUNTPOINT"); err != nil {
		return err
	} else if err := s.load(); err != nil {
		return err
	} else if err := chfs.CheckMountPoint(dir, s.mkdir); err != nil {
		return err
	}
	log, err := daemon.Logger(s.log, "chronicle-fs")
	if err != nil {
		return err
	}
	stopProfile, err := daemon.CPUProfile(s.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	// Decoded frames are live heap (see fs.Config.GCPercent).
	daemon.Memory(s.fs.EffectiveMemoryLimit(), s.fs.GCPercent)
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	reg := daemon.Registry()
	t, err := tiers.Open(ctx, tiers.OpenOptions{Roots: s.roots, Remote: s.remote, Config: s.fs.Config, Logger: log}) // the store's metrics: fsys.Collector
	if err != nil {
		return err
	}
	defer t.Close()
	fsys, err := chfs.New(t.Resolver, s.fs, log)
	if err != nil {
		return err
	}
	// A helper mounts (and cleans a stale mount) outside our view of the mount table.
	if s.fs.MountSocket == "" {
		err = chfs.CleanStale(dir, s.mkdir, log)
	}
	var m *chfs.Mount
	if err == nil {
		m, err = fsys.Mount(dir)
	}
	if err != nil {
		return err
	}
	reg.MustRegister(fsys.Collector())
	mctx, mcancel := context.WithCancel(context.Background())
	defer mcancel()
	if _, err := daemon.ServeMetrics(mctx, s.fs.MetricsAddr, reg, log); err != nil {
		m.Unmount(s.fs.ShutdownGrace)
		return err
	}
	daemon.Ready(log)
	log.Info("serving", "mountpoint", m.Dir(), "roots", s.roots, "cache_bytes", int64(s.fs.CacheBytes), "memory_limit", s.fs.EffectiveMemoryLimit())
	err = m.Wait(ctx, s.fs.ShutdownGrace, log)
	t.LogStats(log)
	return err
}
