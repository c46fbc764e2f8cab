package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/synth"
	"github.com/chronicle/chronicle/layout"
)

const synthUsage = `chronicle-etl synth writes synthetic canonical partitions (sealed, with meta.json
marked synthetic) for demos, benchmarks and capacity tests. Real data comes from run and
backfill; synthetic partitions carry "synthetic": true in their meta.json.

Examples:
  # 30 days of two symbols, 16 MiB each, into the warm tier of the config file
  chronicle-etl synth --config /etc/chronicle/chronicle.toml --symbols eth-usdt,btc-usdt --days 30 --bytes 16MiB

  # one large partition for a benchmark, into a scratch root
  chronicle-etl synth --root /tmp/warm --symbols eth-usdt --days 1 --bytes 1GiB --end 2024-08-08

Flags:
`

func runSynth(args []string) error {
	fl := pflag.NewFlagSet("synth", pflag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(os.Stderr, synthUsage, fl.FlagUsages()) }
	cfgPath := fl.String("config", "", "shared config file (its [tiers] warm root is the default --root)")
	root := fl.String("root", "", "tier root to write v1/... partitions into (default: [tiers] warm)")
	venue := fl.String("venue", "binance-perp", "venue directory")
	symbols := fl.StringSlice("symbols", []string{"eth-usdt"}, "symbols, comma separated")
	days := fl.Int("days", 1, "number of consecutive UTC dates ending at --end")
	end := fl.String("end", "", "last date YYYY-MM-DD (default: yesterday UTC)")
	size := fl.String("bytes", "16MiB", "approximate size of each partition (KiB, MiB, GiB suffixes)")
	seed := fl.Int64("seed", 1, "random seed (same seed, same bytes)")
	if err := fl.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return err
	}
	roots := layout.DefaultRoots()
	if err := config.Load(*cfgPath, map[string]any{"tiers": &roots}); err != nil {
		return err
	}
	if *root == "" {
		*root = roots.Warm
	}
	n, err := config.ParseSize(*size)
	if err != nil {
		return err
	}
	last := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	if *end != "" {
		if last, err = time.Parse(layout.DateLayout, *end); err != nil {
			return fmt.Errorf("--end: %w", err)
		}
	}
	for si, sym := range *symbols {
		for d := *days - 1; d >= 0; d-- {
			date := last.AddDate(0, 0, -d)
			k, err := layout.NewKey(*venue, sym, date)
			if err != nil {
				return err
			}
			p := filepath.Join(*root, filepath.FromSlash(k.Dir()), layout.BookName)
			if _, err := os.Stat(p); err == nil {
				fmt.Printf("exists  %s\n", p)
				continue
			}
			spec := synth.Spec{Venue: *venue, Symbol: sym, SymbolID: uint32(si + 1), Date: date, Bytes: n,
				Seed: *seed + int64(si)*100000 + date.Unix()/86400, Price: 2500 + 1000*float64(si)}
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
			fmt.Printf("wrote   %s\n", p)
		}
	}
	return nil
}
