// Command chronicle-etl is the refinery: it turns the feed's raw journal into canonical
// partitions. This build carries the `synth` subcommand, which writes realistic synthetic
// partitions (demos, benchmarks, capacity tests); the journal-to-book pipeline lands with its
// own issue.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/synth"
	"github.com/chronicle/chronicle/tiers"
	"github.com/spf13/pflag"
)

const usage = `chronicle-etl: canonical partitions from the feed's journal.

Usage:
  chronicle-etl synth [flags]    write synthetic canonical partitions

Examples:
  # 30 days of two symbols, 16 MiB each, into the warm tier of the config file
  chronicle-etl synth --config /etc/chronicle/chronicle.toml --symbols eth-usdt,btc-usdt --days 30 --bytes 16MiB

  # one large partition for a benchmark, into a scratch root
  chronicle-etl synth --root /tmp/warm --symbols eth-usdt --days 1 --bytes 1GiB --end 2024-08-08
`

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Print(usage)
		return
	}
	var err error
	switch os.Args[1] {
	case "synth":
		err = runSynth(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (see --help)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chronicle-etl:", err)
		os.Exit(1)
	}
}

func runSynth(args []string) error {
	fl := pflag.NewFlagSet("synth", pflag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(os.Stderr, usage, "\nFlags:\n", fl.FlagUsages()) }
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
	roots := tiers.DefaultRoots()
	if err := config.Load(*cfgPath, map[string]any{"tiers": &roots}); err != nil {
		return err
	}
	if *root == "" {
		*root = roots.Warm
	}
	n, err := parseSize(*size)
	if err != nil {
		return err
	}
	last := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	if *end != "" {
		if last, err = time.Parse(tiers.DateLayout, *end); err != nil {
			return fmt.Errorf("--end: %w", err)
		}
	}
	for si, sym := range *symbols {
		for d := *days - 1; d >= 0; d-- {
			date := last.AddDate(0, 0, -d)
			k, err := tiers.NewKey(*venue, sym, date)
			if err != nil {
				return err
			}
			p := filepath.Join(*root, filepath.FromSlash(k.Dir()), tiers.BookName)
			if _, err := os.Stat(p); err == nil {
				fmt.Printf("exists  %s\n", p)
				continue
			}
			spec := synth.Spec{Venue: *venue, Symbol: sym, SymbolID: uint32(si + 1), Date: date, Bytes: n,
				Seed: *seed + int64(si)*100000 + date.Unix()/86400, Price: 2500 + 1000*float64(si)}
			if err := synth.Write(p, spec); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if err := writeMeta(filepath.Dir(p), k, spec); err != nil {
				return err
			}
			fmt.Printf("wrote   %s\n", p)
		}
	}
	return nil
}

func writeMeta(dir string, k tiers.Key, s synth.Spec) error {
	meta := fmt.Sprintf(`{
  "symbol_id": %d,
  "symbol_code": %q,
  "venue": %q,
  "date": %q,
  "source": "chronicle-etl synth (seed %d)",
  "ingest_time": %q,
  "completeness": {"synthetic": true},
  "late_policy": "reject"
}
`, s.SymbolID, k.Symbol, k.Venue, k.Date, s.Seed, time.Now().UTC().Format(time.RFC3339))
	tmp := filepath.Join(dir, ".meta.json.tmp")
	if err := os.WriteFile(tmp, []byte(meta), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, tiers.MetaName))
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	var v int64
	if _, err := fmt.Sscan(s, &v); err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional KiB/MiB/GiB suffix", s)
	}
	return v * mult, nil
}
