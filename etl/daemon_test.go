package etl

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTableReload: a changed dim_symbol file is loaded without a restart; a broken one
// leaves the table in force.
func TestTableReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dim_symbol.csv")
	write := func(s string, mtime time.Time) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mtime, mtime)
	}
	head := "symbol_id,symbol_version_id,venue,raw_symbol,symbol_code,valid_from,valid_to\n"
	write(head+"1,1,binance-perp,ETHUSDT,eth-usdt,,\n", time.Unix(1000, 0))
	w, err := NewTableWatcher(p, slog.New(slog.DiscardHandler), NewMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Table().Resolve("binance-perp", "BTCUSDT", 0); ok || w.Check() {
		t.Fatal("BTCUSDT resolved before it was added, or an unchanged file reloaded")
	}
	write(head+"1,1,binance-perp,ETHUSDT,eth-usdt,,\n9,9,binance-perp,BTCUSDT,btc-usdt,,\n", time.Unix(2000, 0))
	if !w.Check() {
		t.Fatal("a changed file was not reloaded")
	}
	if r, ok := w.Table().Resolve("binance-perp", "BTCUSDT", 0); !ok || r.SymbolID != 9 {
		t.Fatalf("after reload: %+v %v", r, ok)
	}
	old := w.Table()
	write(head+"1,1,binance-perp,ETHUSDT,ETH/USDT,,\n", time.Unix(3000, 0))
	if w.Check() || w.Table() != old {
		t.Fatal("a broken table replaced the one in force")
	}
}
