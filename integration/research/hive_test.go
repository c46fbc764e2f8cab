package research

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/catalog"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
)

// TestHiveWithDuckDB: the capture host's tier manager derives each partition's parquet and
// publishes it under the Hive-style tree in the bucket; a research host (the bucket alone,
// read-only keys) shows the same tree in its mount. DuckDB reads both with
// hive_partitioning, filtered on venue and date, and counts each record type: the counts
// equal the partitions' meta.json. The files are cut into row groups for parallel scans,
// with statistics; each symbol has its capture host's catalog.
func TestHiveWithDuckDB(t *testing.T) {
	srv := s3test.Start(t)
	ak, sk := srv.ReadOnlyUser("chronicle")
	host := newCaptureHost(t, srv)
	cfg, _ := os.ReadFile(host.config)
	os.WriteFile(host.config, bytes.Replace(cfg, []byte("[tier]\n"), []byte("[tier]\nderive = \"parquet\"\n"), 1), 0o600)
	host.refine(t, "binance-perp", "binance-usdm_ethusdt_20240808.jsonl.gz")
	host.refine(t, "binance-spot", "binance-spot_ethusdt_20240808.jsonl.gz", "binance-spot_ethusdt_20240809.jsonl.gz")
	metas := map[layout.Key]map[string]int64{}
	for rel, b := range files(t, host.roots.Warm) {
		if filepath.Base(rel) != layout.MetaName {
			continue
		}
		var m struct {
			Records map[string]int64 `json:"records"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		p := strings.Split(rel, "/")
		metas[layout.Key{Venue: p[1], Symbol: p[2], Date: p[3]}] = m.Records
	}
	if len(metas) < 3 {
		t.Fatalf("refined %d partitions, want 3", len(metas))
	}
	host.upload(t, "")

	mp := mount(t, link{}, srv, ak, sk)
	bucketRoot := filepath.Join(srv.Dir, srv.Bucket, "chronicle") // versitygw's posix backend: one file per key
	for _, root := range []struct{ name, dir string }{{"the research mount", mp}, {"the bucket's keys", bucketRoot}} {
		glob := filepath.Join(root.dir, layout.HiveDir, layout.HiveTable, "*", "*", "*", layout.HiveFile)
		// Every partition, counted by type through the Hive columns.
		all := countsByType(t, fmt.Sprintf(`SELECT venue, symbol, CAST(date AS VARCHAR) AS date, type, count(*) AS n
			FROM read_parquet('%s', hive_partitioning = true) GROUP BY ALL`, glob))
		for k, want := range metas {
			if got := all[k]; !sameCounts(got, want) {
				t.Fatalf("%s, %s: DuckDB counts %v, meta.json says %v", root.name, k, got, want)
			}
		}
		if len(all) != len(metas) {
			t.Fatalf("%s: DuckDB found %d partitions, want %d", root.name, len(all), len(metas))
		}
		// Filters on the partition columns: one venue and one date.
		k := layout.Key{Venue: "binance-spot", Symbol: "eth-usdt", Date: "2024-08-09"}
		one := countsByType(t, fmt.Sprintf(`SELECT venue, symbol, CAST(date AS VARCHAR) AS date, type, count(*) AS n
			FROM read_parquet('%s', hive_partitioning = true)
			WHERE venue = '%s' AND date = DATE '%s' GROUP BY ALL`, glob, k.Venue, k.Date))
		if len(one) != 1 || !sameCounts(one[k], metas[k]) {
			t.Fatalf("%s: filtered on venue and date: %v, want %s's %v", root.name, one, k, metas[k])
		}
		// Row groups sized for parallel scans, with the time column's statistics.
		rows := metas[k]["total"]
		md := testenv.DuckDB(t, fmt.Sprintf(`SELECT count(DISTINCT row_group_id) AS groups, max(row_group_num_rows) AS max_rows,
			count(*) FILTER (WHERE path_in_schema = 'ts_exchange' AND stats_min_value IS NOT NULL AND stats_max_value IS NOT NULL) AS ts_stats
			FROM parquet_metadata('%s')`, filepath.Join(root.dir, filepath.FromSlash(layout.HiveRel(k)))))
		per := lifecycle.RowGroupRows(rows)
		groups := (rows + per - 1) / per
		if num(t, md[0]["groups"]) != groups || num(t, md[0]["max_rows"]) > per || num(t, md[0]["ts_stats"]) != groups {
			t.Fatalf("%s: %s row groups %v, want %d of at most %d rows, each with ts_exchange statistics", root.name, k, md, groups, per)
		}
	}
	// The bucket's Hive objects are the partitions' parquet files; each symbol has a catalog.
	store := testkit.S3Store(t, srv, srv.URI("chronicle"))
	for k := range metas {
		local, err := os.ReadFile(filepath.Join(host.roots.Cold, filepath.FromSlash(k.Dir()), filepath.FromSlash(layout.DerivedBook)))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(bucketRoot, filepath.FromSlash(layout.HiveRel(k)))); err != nil || !bytes.Equal(got, local) {
			t.Fatalf("%s: the bucket's Hive object differs from derived/book.parquet (%v)", k, err)
		}
		objs, err := store.List(context.Background(), catalog.Dir(k.Venue, k.Symbol))
		if err != nil || len(objs) != 1 || !strings.HasSuffix(objs[0].Key, ".json.zst") {
			t.Fatalf("%s: catalog objects %v %v, want the capture host's catalog alone (no pending marker)", k, objs, err)
		}
	}
}

func num(t *testing.T, v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case string:
		var n int64
		fmt.Sscan(x, &n)
		return n
	}
	t.Fatalf("not a number: %v", v)
	return 0
}

// countsByType runs a query returning venue, symbol, date, type, n and returns the counts
// by partition and type name, with their total, as meta.json's records has them.
func countsByType(t *testing.T, sql string) map[layout.Key]map[string]int64 {
	out := map[layout.Key]map[string]int64{}
	for _, r := range testenv.DuckDB(t, sql) {
		k := layout.Key{Venue: r["venue"].(string), Symbol: r["symbol"].(string), Date: r["date"].(string)}
		if out[k] == nil {
			out[k] = map[string]int64{}
		}
		n := num(t, r["n"])
		out[k][format.TypeName(uint16(num(t, r["type"])))] += n
		out[k]["total"] += n
	}
	return out
}

// sameCounts compares counts by type, ignoring types meta.json lists with 0.
func sameCounts(got, want map[string]int64) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if want[k] != v {
			return false
		}
	}
	return true
}
