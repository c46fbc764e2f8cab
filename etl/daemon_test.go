package etl

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
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

// TestDaemonReadyAfterResume: the daemon reports ready only once each venue has taken over
// its checkpoint, so a stop right after ready closes the partitions it reopened, trimming
// what a crash left past their committed length.
func TestDaemonReadyAfterResume(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := ethBusy(t, mid-60000, mid-45000, 200, 250, nil)
	j.close()
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	books, _ := filepath.Glob(filepath.Join(root, "v1", "*", "*", "*", "book.q"))
	grown := 0
	for _, p := range books {
		if h, err := format.ReadHeaderFile(p); err == nil && !h.Sealed {
			// What a killed live refinery leaves: room grown ahead of the committed records.
			if err := os.Truncate(p, int64(h.Committed)+1<<20); err != nil {
				t.Fatal(err)
			}
			grown++
		}
	}
	if grown == 0 {
		t.Fatalf("no open partition among %v", books)
	}
	hot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(hot, "feed"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(j.dir, filepath.Join(hot, "feed", "binance-perp")); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Venues = []string{"binance-perp"}
	log := slog.New(slog.DiscardHandler)
	m := NewMetrics(nil)
	tw, err := NewTableWatcher(cfg.DimSymbol, log, m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- RunDaemon(ctx, DaemonOptions{Config: cfg, HotRoot: hot, Root: root, Log: log, Metrics: m, Table: tw,
			Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon never ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range books {
		h, err := format.ReadHeaderFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() != int64(h.Committed) {
			t.Errorf("%s: %d bytes after a stop right after ready, committed %d (%v)", p, fi.Size(), h.Committed, err)
		}
	}
}
