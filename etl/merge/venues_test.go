package merge

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/venue/kraken"
	"github.com/chronicle/chronicle/venue/okx"
)

// The merge refuses the venues it does not join yet (those whose snapshots come on the
// websocket) instead of writing partitions without their scales, trades and tickers.
func TestMergeRefusesWebsocketSnapshotVenues(t *testing.T) {
	for _, name := range []string{okx.Name, kraken.Name} {
		dir := t.TempDir()
		var in [2]Input
		for i, host := range []string{"a", "b"} {
			d := filepath.Join(dir, host)
			fileutil.MkdirAll(d, 0o755)
			t0 := time.Date(2022, 5, 13, 16, 0, 0, 0, time.UTC)
			a, err := format.Create(filepath.Join(d, journal.SegmentName(1, t0)), format.NewJournalHeader(name, "feed"), format.Options{ChunkSize: 1 << 16})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := journal.Channel(0, 0, journal.ConnStream)
			conn := journal.Connect{Session: 1, Channel: c, URL: "ws://x", Host: host}
			if err := a.AppendJournal(format.JournalConnect, c, t0.UnixNano(), mustJSON(conn)); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			in[i] = Input{Dir: d}
		}
		_, err := Merge(t.Context(), Options{Inputs: in, Root: t.TempDir()})
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "websocket") {
			t.Errorf("%s: %v, want ErrInput naming the websocket snapshots", name, err)
		}
	}
}
