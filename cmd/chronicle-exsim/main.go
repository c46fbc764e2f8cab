// Command chronicle-exsim serves recorded exchange captures as a local exchange on
// loopback, for the demo and for tests that run the real binaries: each capture is one
// market with its venue's websocket and REST depth endpoint (package internal/exsim, which
// does the work; this file binds the flags and wires signals and logs).
package main

import (
	_ "embed"
	"errors"
	"io"
	"os"

	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
	"github.com/chronicle/chronicle/internal/exsim"
	_ "github.com/chronicle/chronicle/venue/all"
)

var (
	//go:embed usage.txt
	usage string
	prog  = &cli.Command{Program: "chronicle-exsim", Help: usage, FlagsTitle: "-", Usage: "chronicle-exsim [flags]\nchronicle-exsim [flags] NAME=VENUE:FILE[,FILE...]..."}
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cfg, lc := exsim.DefaultServeConfig(), config.Log{Level: "info", Format: "text"}
	fs := prog.FlagSet()
	b := config.NewBinder(fs).Section("", &cfg).Section("", &lc) // no config file: flags only
	if code, done := prog.Parse(fs, args, stdout, stderr); done {
		return code
	}
	b.Apply()
	return prog.Exit(stderr, start(cfg, lc, fs.Args()))
}

// start checks the command line, then serves until SIGINT or SIGTERM.
func start(cfg exsim.ServeConfig, lc config.Log, args []string) error {
	sets, err := exsim.ParseSets(args)
	if cfg.Load > 0 && len(args) > 0 {
		err = errors.Join(err, errors.New("--load serves market \"load\" alone: give no market arguments"))
	}
	if err = errors.Join(cfg.Validate(), err, lc.Validate()); err != nil {
		return cli.Usage(err)
	}
	log, err := daemon.Logger(lc, "chronicle-exsim")
	if err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext(log)
	defer stop()
	if cfg.Load > 0 {
		return exsim.ServeLoad(ctx, cfg, log)
	}
	return exsim.Serve(ctx, cfg, sets, log)
}
