package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestPythonReadsBook writes a book.q with the Go appender and has python/chronicle_q.py
// (numpy only, under Debian's interpreter) compare every field of every record, the
// per-type views and the pandas frame against what Go wrote.
func TestPythonReadsBook(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "book.q")
	h := format.NewBookHeader("binance-perp", "eth-usdt", 77, 20240808)
	h.SymbolVersionID = 5
	a, err := format.Create(path, h, format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	types := []uint16{format.TypeSnapshotBegin, format.TypeLevel, format.TypeLevel, format.TypeSnapshotEnd, format.TypeTrade, format.TypeBBO, format.TypeBookInvalid, format.TypeLevel}
	var want [][]int64
	for i := 0; i < 5000; i++ {
		r := format.BookRecord{
			TypeID: types[i%len(types)], Flags: uint16(i % 64), SymbolID: 77,
			ExchTs: 1723161256000000000 + int64(i)*1_000_003, RecvTs: 1723161254800000000 + int64(i)*999_999,
			Seq: uint64(4_000_000_000_000 + i), Price: 250012000000 - int64(i)*1000000, Qty: int64(i%17) * 100000,
			Aux0: int64(-i), Aux1: int64(i) * 3,
		}
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
		want = append(want, []int64{int64(r.TypeID), int64(r.Flags), int64(r.SymbolID), r.ExchTs, r.RecvTs, int64(r.Seq), r.Price, r.Qty, r.Aux0, r.Aux1})
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	exp, _ := json.Marshal(want)
	if err := os.WriteFile(filepath.Join(dir, "want.json"), exp, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, chronicle_q as q
path, want = sys.argv[2], json.load(open(sys.argv[3]))
h = q.read_header(path)
assert h["venue"] == "binance-perp" and h["symbol_code"] == "eth-usdt" and h["symbol_id"] == 77, h
assert h["date"] == 20240808 and h["symbol_version_id"] == 5 and h["sealed"] and h["price_decimals"] == 8, h
b = q.open_book(path)
assert len(b) == len(want), (len(b), len(want))
w = np.array(want, dtype=np.int64)
for i, name in enumerate(q.BOOK_DTYPE.names):
    col = b[name].astype(np.int64) if name != "seq" else b[name].astype(np.uint64).astype(np.int64)
    bad = np.nonzero(col != w[:, i])[0]
    assert len(bad) == 0, f"field {name}: first mismatch at record {bad[0]}: {col[bad[0]]} != {w[bad[0], i]}"
bbo = q.view(b, q.BBO)
assert (bbo["ask_price"] == w[w[:, 0] == q.BBO][:, 8]).all()
df = q.to_pandas(b, h)
assert len(df) == len(want) and str(df["ts_exchange"].dtype).startswith("datetime64[ns"), df.dtypes
assert (df["type"] == "trade").sum() == (w[:, 0] == q.TRADE).sum()
print("ok", len(b))
`
	out, err := exec.Command(py, "-c", script, filepath.Join(testenv.RepoRoot(t), "python"), path, filepath.Join(dir, "want.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("python reader: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
