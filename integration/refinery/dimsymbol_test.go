package refinery

import (
	"github.com/chronicle/chronicle/deploy"
	"github.com/chronicle/chronicle/etl/symbols"
)

// The default symbol table, handed in as the chronicle-etl main does.
func init() { symbols.SetDefault(deploy.DimSymbolCSV) }
