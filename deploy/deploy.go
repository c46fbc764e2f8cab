// Package deploy holds what operators install (systemd units, the shared config, the
// dim_symbol table) and embeds the defaults the binaries fall back on, so the files in
// this directory are the single source of both.
package deploy

import _ "embed"

// DimSymbolCSV is dim_symbol.csv: the refinery's symbol table when none is configured.
//
//go:embed dim_symbol.csv
var DimSymbolCSV []byte
