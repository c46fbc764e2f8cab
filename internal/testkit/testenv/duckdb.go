package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// NodeModules is the folder scripts/deps.sh installs the tests' npm packages into
// (@duckdb/node-api); CHRONICLE_NODE_DIR names another.
func NodeModules() string {
	dir := os.Getenv("CHRONICLE_NODE_DIR")
	if dir == "" {
		dir = "/usr/local/lib/chronicle-node"
	}
	return filepath.Join(dir, "node_modules")
}

// duckdbScript runs the SQL in argv[2] with DuckDB (the @duckdb/node-api package at argv[1])
// and prints its rows as one JSON array (big integers as numbers).
const duckdbScript = `
const { DuckDBInstance } = require(process.argv[1] + '/@duckdb/node-api');
(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const r = await c.runAndReadAll(process.argv[2]);
  const rows = r.getRowObjectsJson();
  process.stdout.write(JSON.stringify(rows));
})().catch(e => { console.error(String(e && e.message || e)); process.exit(1); });
`

// DuckDB runs one SQL query with DuckDB and returns its rows (column name -> value, as
// DuckDB's JSON conversion gives them: numbers, strings; big integers as strings).
func DuckDB(t testing.TB, sql string) []map[string]any {
	t.Helper()
	node := Tool(t, "node", "nodejs")
	mods := NodeModules()
	if _, err := os.Stat(filepath.Join(mods, "@duckdb", "node-api")); err != nil {
		t.Fatalf("DuckDB for node is not installed in %s; run scripts/deps.sh test", mods)
	}
	out, err := exec.Command(node, "-e", duckdbScript, mods, sql).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("duckdb: %v: %s\nquery: %s", err, msg, sql)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output: %v: %s", err, out)
	}
	return rows
}
