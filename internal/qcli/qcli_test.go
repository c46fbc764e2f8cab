package qcli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/layout"
)

// partition writes a realistic book into root's v1/binance-perp/eth-usdt/2024-08-09.
func partition(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "v1", "binance-perp", "eth-usdt", "2024-08-09")
	os.MkdirAll(dir, 0o755)
	day := time.Date(2024, 8, 9, 0, 0, 0, 0, time.UTC)
	a, err := format.Create(filepath.Join(dir, layout.BookName), format.NewBookHeader("binance-perp", "eth-usdt", 1001, format.DateOf(day)), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g := books.NewGen(3, 1001, day)
	var r format.BookRecord
	for range 30_000 {
		g.Next(&r)
		a.AppendBook(&r)
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runQ(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCLI(t *testing.T) {
	warm := t.TempDir()
	dir := partition(t, warm)
	l, err := bookview.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first, last, _ := l.Span()
	mid := first + (last-first)/2
	want, err := l.BookAt(mid, 3)
	if err != nil {
		t.Fatal(err)
	}

	// --help: stdout, exit 0.
	if code, out, errOut := runQ("--help"); code != 0 || !strings.Contains(out, "Examples:") || errOut != "" {
		t.Errorf("--help: %d %q %q", code, out, errOut)
	}
	// Usage errors (docs/cli.md): "chronicle-q: message", the command's usage line and a
	// pointer to --help on stderr, exit 2.
	for _, tc := range []struct {
		args       []string
		msg, usage string
	}{
		{nil, "missing command", "chronicle-q book"},
		{[]string{"frob"}, `unknown command "frob"`, "chronicle-q book"},
		{[]string{"--bogus"}, "unknown flag: --bogus", "chronicle-q book"},
		{[]string{"book", dir}, "missing TIME", "chronicle-q book [flags] PARTITION TIME"},
		{[]string{"book", "--depth", "x", dir, "1"}, "--depth", "chronicle-q book [flags] PARTITION TIME"},
		{[]string{"top", "--n", "0", dir}, "--n 0", "chronicle-q top [flags] PARTITION"},
		{[]string{"--n", "0", "top", dir}, "--n 0", "chronicle-q top [flags] PARTITION"},
		{[]string{"top", "--every", "-1s", dir}, "--every", "chronicle-q top [flags] PARTITION"},
		{[]string{"top", dir, "extra"}, `unexpected argument "extra"`, "chronicle-q top [flags] PARTITION"},
		{[]string{"book", dir, "yesterday"}, `time "yesterday"`, "chronicle-q book [flags] PARTITION TIME"},
	} {
		code, out, errOut := runQ(tc.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 2 || out != "" || len(lines) < 3 || !strings.HasPrefix(lines[0], "chronicle-q: ") || !strings.Contains(lines[0], tc.msg) ||
			!strings.HasPrefix(lines[1], "Usage: "+tc.usage) || !strings.Contains(lines[len(lines)-1], "--help") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2, %q and the usage line %q", tc.args, code, out, errOut, tc.msg, tc.usage)
		}
	}
	// Runtime errors: one line naming what failed, exit 1.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"book", dir, "2020-01-01T00:00:00Z"}, "2024-08-09"},
		{[]string{"--warm", warm, "book", "binance-perp/eth-usdt/2024-08-08", "00:00:00"}, "2024-08-08"},
		{[]string{"book", filepath.Join(warm, "no-such"), "1"}, "no-such"},
		{[]string{"top", "--config", filepath.Join(warm, "missing.toml"), dir}, "missing.toml"},
	} {
		code, out, errOut := runQ(tc.args...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "chronicle-q: ") || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want one line naming %q", tc.args, code, errOut, tc.want)
		}
	}

	// The book at an instant, through a directory and through the tiers, as JSON.
	at := bookview.FormatTime(mid)
	for _, args := range [][]string{{"book", "--json", "--depth", "3", dir, at}, {"--warm", warm, "book", "--json", "--depth", "3", "binance-perp/eth-usdt/2024-08-09", at}} {
		code, out, errOut := runQ(args...)
		if code != 0 {
			t.Fatalf("%q: %d %s", args, code, errOut)
		}
		var j jsonBook
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatal(err)
		}
		if !j.Valid || len(j.Bids) != 3 || j.Bids[0][0] != format.FormatDecimal(want.Bids[0].Price, 8) || j.Asks[2][1] != format.FormatDecimal(want.Asks[2].Qty, 8) || j.BidLevels != want.BidLevels {
			t.Errorf("%q: %+v, want %+v", args, j, want)
		}
	}
	if code, out, _ := runQ("book", "--depth", "2", dir, at); code != 0 || !strings.Contains(out, format.FormatDecimal(want.Bids[1].Price, 8)) {
		t.Errorf("book text: %d %q", code, out)
	}

	// Top-N rows as CSV: one per depth update, or one per grid point.
	code, out, errOut := runQ("top", "--n", "2", dir)
	if code != 0 {
		t.Fatalf("top: %s", errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(rows)-1) != l.Rows(bookview.View{Kind: bookview.KindTop, N: 2}) || len(rows[0]) != 4+8 {
		t.Errorf("top: %d rows of %d columns", len(rows)-1, len(rows[0]))
	}
	code, out, _ = runQ("top", "--n", "1", "--every", "1s", dir)
	grid, _ := csv.NewReader(strings.NewReader(out)).ReadAll()
	wantPoints := (last/1e9 - (first+1e9-1)/1e9) + 1
	if code != 0 || int64(len(grid)-1) != wantPoints {
		t.Errorf("grid: %d rows, want %d", len(grid)-1, wantPoints)
	}
}
