// Command chronicle-etl is the refinery: it turns the feed's raw journal into canonical
// partitions (run: a daemon tailing every venue journal; backfill: one pass over segment
// files), reports where it stands (status), merges two capture hosts' journals (merge) and
// writes synthetic partitions for demos and benchmarks (synth). The work is done by
// package etl; the command line is internal/etlcli. docs/chronicle-etl.md is the manual.
package main

import (
	"os"

	"github.com/chronicle/chronicle/deploy"
	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/internal/etlcli"
	_ "github.com/chronicle/chronicle/venue/all" // the venues the refinery reads
)

func main() {
	// The refinery's default symbol table is the one this binary embeds (deploy/).
	symbols.SetDefault(deploy.DimSymbolCSV)
	os.Exit(etlcli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
