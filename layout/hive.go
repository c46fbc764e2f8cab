package layout

import (
	"path"
	"strings"
)

// The Hive-style tree of derived parquet files (docs/format/hive.md): the same partitions
// as v1/, named the way DuckDB, Polars and Spark discover partition columns,
//
//	hive/book/venue={venue}/symbol={symbol}/date={date}/book.parquet
//
// in the mount (a view of each partition's derived/book.parquet) and in the bucket (keys
// the tier manager publishes beside v1/).
const (
	HiveDir     = "hive"
	HiveTable   = "book"
	HiveFile    = "book.parquet"
	DerivedBook = DerivedDir + "/" + HiveFile // the partition file the Hive tree shows
)

// Hive column names, in directory order.
var hiveColumns = [...]string{"venue", "symbol", "date"}

// HiveRel is partition k's file in the Hive tree, relative to the tree's root (the mount
// root, or the remote root).
func HiveRel(k Key) string {
	return path.Join(HiveDir, HiveTable, "venue="+k.Venue, "symbol="+k.Symbol, "date="+k.Date, HiveFile)
}

// HiveDirName is the directory name of value v of the column at depth i (0 venue, 1 symbol,
// 2 date).
func HiveDirName(i int, v string) string { return hiveColumns[i] + "=" + v }

// ParseHiveDir reads the directory name of the column at depth i: "venue=binance-perp" is
// binance-perp at depth 0. false when the name is not that column's, or its value is not
// a valid venue, symbol or date.
func ParseHiveDir(i int, name string) (string, bool) {
	if i < 0 || i >= len(hiveColumns) {
		return "", false
	}
	v, ok := strings.CutPrefix(name, hiveColumns[i]+"=")
	if !ok {
		return "", false
	}
	if i == 2 {
		return v, ValidDate(v)
	}
	return v, ValidName(v)
}
