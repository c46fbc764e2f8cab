package etlcli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/synth"
	"github.com/chronicle/chronicle/layout"
)

var cmdSynth = &cli.Command{Program: "chronicle-etl", Name: "synth", Help: synthUsage, FlagsTitle: "-", Usage: "chronicle-etl synth [flags]"}

func runSynth(args []string, stdout, stderr io.Writer) int {
	fl := cmdSynth.FlagSet()
	cfgPath := fl.String("config", "", "shared config file (its [tiers] warm root is the default --root)")
	root := fl.String("root", "", "tier root to write v1/... partitions into (default: [tiers] warm)")
	venue := fl.String("venue", "binance-perp", "venue directory")
	symbols := fl.StringSlice("symbols", []string{"eth-usdt"}, "symbols, comma separated")
	days := fl.Int("days", 1, "number of consecutive UTC dates ending at --end")
	end := fl.String("end", "", "last date YYYY-MM-DD (default: yesterday UTC)")
	size := bytesize.Size(16 << 20)
	fl.Var(&size, "bytes", "approximate size of each partition, e.g. 16MiB or a byte count")
	seed := fl.Int64("seed", 1, "random seed (same seed, same bytes)")
	if code, done := cmdSynth.Parse(fl, args, stdout, stderr); done {
		return code
	}
	return cmdSynth.Exit(stderr, synth1(fl, stdout, *cfgPath, *root, *venue, *symbols, *days, *end, int64(size), *seed))
}

func synth1(fl *pflag.FlagSet, stdout io.Writer, cfgPath, root, venue string, symbols []string, days int, end string, n, seed int64) error {
	// The command line first, then the file: nothing is written before both are read.
	if err := cli.Args(fl, 0, 0, ""); err != nil {
		return err
	}
	var err error
	if days < 1 {
		return cli.Usagef("--days %d: want at least 1", days)
	}
	last := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	if end != "" {
		if last, err = time.Parse(layout.DateLayout, end); err != nil {
			return cli.Usagef("--end %q: want YYYY-MM-DD", end)
		}
	}
	for _, sym := range symbols {
		if _, err := layout.NewKey(venue, sym, last); err != nil {
			return cli.Usagef("--venue %s --symbols %s: %w", venue, sym, err)
		}
	}
	roots := layout.DefaultRoots()
	if err := config.Load(cfgPath, map[string]any{"tiers": &roots}); err != nil {
		return err
	}
	if root == "" {
		root = roots.Warm
	}
	return writeSynth(stdout, root, venue, symbols, days, last, n, seed)
}

func writeSynth(stdout io.Writer, root, venue string, symbols []string, days int, last time.Time, n, seed int64) error {
	for si, sym := range symbols {
		for d := days - 1; d >= 0; d-- {
			date := last.AddDate(0, 0, -d)
			k, err := layout.NewKey(venue, sym, date)
			if err != nil {
				return err
			}
			p := filepath.Join(root, filepath.FromSlash(k.Dir()), layout.BookName)
			if _, err := os.Stat(p); err == nil {
				fmt.Fprintf(stdout, "exists  %s\n", p)
				continue
			}
			spec := synth.Spec{Venue: venue, Symbol: sym, SymbolID: uint32(si + 1), Date: date, Bytes: n,
				Seed: seed + int64(si)*100000 + date.Unix()/86400, Price: 2500 + 1000*float64(si)}
			if err := synth.Write(p, spec); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			m, err := synth.Meta(p, spec, k.Symbol)
			if err != nil {
				return err
			}
			if err := meta.Write(filepath.Dir(p), m); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote   %s\n", p)
		}
	}
	return nil
}
