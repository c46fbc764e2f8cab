package tiermgr

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
	"github.com/parquet-go/parquet-go"
)

// TestDeriveParquet: `apply --derive parquet` writes derived/book.parquet during the cold
// move: one row per record, named columns in record order, nanosecond UTC timestamps,
// exact DECIMAL(18, 8) prices and quantities. Every value is compared with the original
// records by parquet-go's reader; pandas reads the parquet when pyarrow or fastparquet is
// installed, and otherwise reads the original book.q with numpy (python/chronicle_q.py)
// so that an independent reader still vouches for the numbers the parquet holds.
func TestDeriveParquet(t *testing.T) {
	py := testenv.Python(t)
	e := lt.NewEnv(t, "", nil)
	p := lt.NewPartition(t, key("2024-08-08"), 30000, 5)
	e.Place(t, p, layout.Warm)
	orig := filepath.Join(e.Dir, "original-book.q")
	if err := os.WriteFile(orig, p.Book, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := tier(t, append(config(t, e, nil, ""), "--now", "2024-09-01", "--derive", "parquet", "apply")...); code != 0 {
		t.Fatalf("apply exited %d:\n%s", code, stderr)
	}
	if e.Check(t, []lt.Partition{p})[p.Key] != layout.Cold {
		t.Fatal("not moved to cold")
	}
	path := filepath.Join(testkit.PartDir(e.Roots.Cold, p.Key), layout.DerivedDir, "book.parquet")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}

	// Schema: names, order, logical types.
	wantCols := []string{"type", "flags", "symbol_id", "ts_exchange", "ts_recv", "seq", "price", "qty", "aux0", "aux1"}
	fields := pf.Schema().Fields()
	if len(fields) != len(wantCols) {
		t.Fatalf("%d columns, want %d", len(fields), len(wantCols))
	}
	for i, fl := range fields {
		if fl.Name() != wantCols[i] {
			t.Fatalf("column %d is %q, want %q", i, fl.Name(), wantCols[i])
		}
		want := map[string]string{
			"ts_exchange": "TIMESTAMP(isAdjustedToUTC=true,unit=NANOS)", "ts_recv": "TIMESTAMP(isAdjustedToUTC=true,unit=NANOS)",
			"price": "DECIMAL(18,8)", "qty": "DECIMAL(18,8)", "seq": "INT(64,false)", "type": "INT(16,false)",
		}[fl.Name()]
		if got := fl.Type().LogicalType().String(); want != "" && got != want {
			t.Fatalf("%s: logical type %s, want %s", fl.Name(), got, want)
		}
	}

	// Every value of every row equals the original record.
	h, err := format.ParseHeader(p.Book, "original")
	if err != nil {
		t.Fatal(err)
	}
	n := int(h.Records())
	if pf.NumRows() != int64(n) {
		t.Fatalf("%d rows, book has %d records", pf.NumRows(), n)
	}
	r := parquet.NewReader(pf)
	defer r.Close()
	rows := make([]parquet.Row, 1000)
	var sums colSums
	for i := 0; i < n; {
		k, err := r.ReadRows(rows)
		for _, row := range rows[:k] {
			rec := format.DecodeBook(p.Book[int(h.HeaderSize)+i*64:])
			want := []int64{int64(rec.TypeID), int64(rec.Flags), int64(rec.SymbolID), rec.ExchTs, rec.RecvTs, int64(rec.Seq), rec.Price, rec.Qty, rec.Aux0, rec.Aux1}
			for c, v := range row {
				var got int64
				if c <= 2 {
					got = int64(uint32(v.Int32()))
				} else {
					got = v.Int64()
				}
				if got != want[c] {
					t.Fatalf("row %d column %s: %d, record has %d", i, wantCols[c], got, want[c])
				}
			}
			sums.add(row)
			i++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if sums.Rows != int64(n) {
		t.Fatalf("read %d rows, want %d", sums.Rows, n)
	}

	// An independent reader.
	if exec.Command(py, "-c", "import pyarrow").Run() == nil || exec.Command(py, "-c", "import fastparquet").Run() == nil {
		out, err := exec.Command(py, "-c", pandasParquet, path).CombinedOutput()
		if err != nil {
			t.Fatalf("pandas.read_parquet: %v\n%s", err, out)
		}
		compareSums(t, "pandas.read_parquet", out, sums)
		return
	}
	t.Log("pandas cannot read parquet here (neither pyarrow nor fastparquet is installed; Debian 12 packages " +
		"neither): the parquet was checked with parquet-go's reader above, and numpy reads the original book.q " +
		"to confirm the row count and column sums")
	out, err := exec.Command(py, "-c", numpyBook, filepath.Join(testenv.RepoRoot(t), "python"), orig).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	compareSums(t, "numpy on book.q", out, sums)
}

type colSums struct {
	Rows                        int64
	Price, Qty, TsExchange, Seq int64
}

func (s *colSums) add(row parquet.Row) {
	s.Rows++
	s.TsExchange += row[3].Int64()
	s.Seq += row[5].Int64()
	s.Price += row[6].Int64()
	s.Qty += row[7].Int64()
}

func compareSums(t *testing.T, who string, out []byte, want colSums) {
	t.Helper()
	var got colSums
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &got); err != nil {
		t.Fatalf("%s output %q: %v", who, out, err)
	}
	if got != want {
		t.Fatalf("%s: %+v, parquet holds %+v", who, got, want)
	}
}

// pandasParquet prints the row count and exact column sums (prices back to raw integers).
const pandasParquet = `
import json, sys, decimal
import pandas as pd
df = pd.read_parquet(sys.argv[1])
assert list(df.columns) == ["type","flags","symbol_id","ts_exchange","ts_recv","seq","price","qty","aux0","aux1"], list(df.columns)
assert str(df["ts_exchange"].dtype).startswith("datetime64[ns"), df["ts_exchange"].dtype
raw = lambda col: sum(int(decimal.Decimal(v).scaleb(8)) for v in df[col])
wrap = lambda v: (v + 2**63) % 2**64 - 2**63
print(json.dumps({"Rows": len(df), "Price": wrap(raw("price")), "Qty": wrap(raw("qty")),
  "TsExchange": wrap(int(df["ts_exchange"].astype("int64").sum())), "Seq": wrap(int(df["seq"].astype("uint64").astype(object).sum()))}))
`

// numpyBook prints the same sums from the original book.q through numpy.memmap.
const numpyBook = `
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, pandas as pd, chronicle_q as q
b = q.open_book(sys.argv[2])
df = pd.DataFrame({"price": b["price"], "qty": b["qty"], "ts": b["ts_exchange"], "seq": b["seq"]})
wrap = lambda v: (int(v) + 2**63) % 2**64 - 2**63
print(json.dumps({"Rows": len(df), "Price": wrap(sum(int(x) for x in df["price"])), "Qty": wrap(sum(int(x) for x in df["qty"])),
  "TsExchange": wrap(sum(int(x) for x in df["ts"])), "Seq": wrap(sum(int(x) for x in df["seq"]))}))
`
