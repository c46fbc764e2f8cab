package refinery

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/feed"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
	_ "github.com/chronicle/chronicle/venue/all"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startETL starts `chronicle-etl run` on the configuration file cfg.
func startETL(t *testing.T, cfg string) *proc.Proc {
	t.Helper()
	return proc.Start(t, exec.Command(testenv.Bin("chronicle-etl"), "run", "--config", cfg))
}

func committed(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	st, _ := f.Stat()
	h, err := format.ReadHeader(f, st.Size(), path)
	if err != nil {
		return -1
	}
	return int64(h.Committed)
}

// TestRunDaemon: chronicle-etl run tails the journal chronicle-feed writes (a COIN-M
// capture replayed at 60x), shows growing partitions while it works, serves /metrics,
// stops cleanly on SIGTERM and resumes where it stopped, seals the previous day once the
// grace has passed in exchange time, and publishes etl.checkpoint for the feed's
// retention; its output equals a backfill of the same journal.
func TestRunDaemon(t *testing.T) {
	dir := t.TempDir()
	hot, warm := filepath.Join(dir, "hot"), filepath.Join(dir, "warm")
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "chronicle.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[tiers]
hot = %q
warm = %q
[etl]
grace = "1m"
checkpoint_interval = "20ms"
meta_interval = "100ms"
idle_spin = "0s"
metrics_addr = %q
[log]
level = "warn"
`, hot, warm, addr)), 0o644)
	d := startETL(t, cfg) // before the journal exists: it waits for it
	c := captures[1]
	replaying := proc.Start(t, exec.Command(testenv.Bin("chronicle-feed"), append([]string{"replay", "--speed", "60", "--clock", "capture", "--venue", c.venue, "--hot", hot, "--metrics-addr", "", "--log-level", "warn"}, c.paths()...)...))

	book := filepath.Join(warm, "v1", c.venue, "eth-usd-perp", "2024-08-08", "book.q")
	testenv.WaitFor(t, "a growing partition", 30*time.Second, func() bool { return committed(book) > format.HeaderSize })
	first := committed(book)
	testenv.WaitFor(t, "the partition to grow", 30*time.Second, func() bool { return committed(book) > first })
	if _, err := meta.Read(filepath.Join(filepath.Dir(book), meta.FileName)); err != nil {
		t.Fatalf("a growing partition has no readable meta.json: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `chronicle_etl_events_total{kind="depth",venue="binance-coinm"}`) {
		t.Fatalf("/metrics lacks the refinery's event counter:\n%.2000s", body)
	}
	d.Stop(t, 15*time.Second)
	d = startETL(t, cfg)
	if err := replaying.Wait(); err != nil {
		t.Fatalf("replay: %v\n%s", err, replaying.Output())
	}
	jdir := journal.Dir(hot, c.venue)
	segs, _ := journal.List(jdir)
	last := segs[len(segs)-1]
	end := committed(filepath.Join(jdir, last.Name))
	testenv.WaitFor(t, "the refinery to reach the journal's end", 60*time.Second, func() bool {
		cp, ok, _ := journal.ReadCheckpoint(jdir)
		return ok && cp.Segment == last.Name && cp.Offset == end
	})
	d.Stop(t, 15*time.Second)
	if h, _ := records(t, book); !h.Sealed {
		t.Fatal("2024-08-08 is not sealed although the exchange clock passed its grace")
	}
	if m, err := meta.Read(filepath.Join(warm, "v1", c.venue, "eth-usd-perp", "2024-08-09", meta.FileName)); err != nil || m.Sealed {
		t.Fatalf("2024-08-09 should still grow: %+v %v", m, err)
	}
	ref := filepath.Join(dir, "ref")
	proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--grace", "1m", "--root", ref, jdir)
	trees.Same(t, trees.Refined(t, ref), trees.Refined(t, warm), "run vs backfill")
}

// TestRetentionWaitsForRefinery: the feed's retention deletes a journal segment only
// once the refinery's published checkpoint has moved past it, and the refinery resumes
// from its own state after the segments before its checkpoint are gone.
func TestRetentionWaitsForRefinery(t *testing.T) {
	dir := t.TempDir()
	jdir, root := filepath.Join(dir, "journal"), filepath.Join(dir, "warm")
	t0 := time.Date(2024, 8, 8, 10, 0, 0, 0, time.UTC).UnixNano()
	j, err := feed.OpenJournal(feed.JournalOptions{Dir: jdir, Venue: "binance-perp", Period: time.Hour, ChunkSize: 1 << 20, MaxSize: 1 << 30}, t0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	conn, _ := journal.Channel(0, 1, journal.ConnStream)
	tr, _ := journal.Channel(0, 1, 0)
	j.Append(format.JournalConnect, conn, t0, []byte(fmt.Sprintf(`{"session":1,"slot":0,"gen":1,"ch":%d,"url":"x","streams":[{"ch":%d,"stream":"ethusdt@trade","symbol":"ETHUSDT","kind":"trade"}]}`, conn, tr)))
	id := int64(0)
	trades := func(hour int) {
		for i := 0; i < 50; i++ {
			id++
			ts := t0 + int64(hour)*int64(time.Hour) + int64(i)*int64(time.Second)
			j.Append(format.JournalMessage, tr, ts, []byte(fmt.Sprintf(`{"stream":"ethusdt@trade","data":{"e":"trade","E":%d,"T":%d,"s":"ETHUSDT","t":%d,"p":"2500.5","q":"0.1","m":false}}`, ts/1e6, ts/1e6, id)))
		}
	}
	refineOnce := func() {
		t.Helper()
		if _, err := etl.Refine(context.Background(), etl.Options{Config: etl.Defaults(), Root: root, JournalDir: jdir, PublishCheckpoint: true}); err != nil {
			t.Fatal(err)
		}
	}
	retain := func(want int) {
		t.Helper()
		del, err := j.Retain(time.Unix(0, t0).Add(24*time.Hour), 0)
		if err != nil || len(del) != want {
			t.Fatalf("retention deleted %v (%v), want %d segments", del, err, want)
		}
	}
	trades(0)
	j.RollIfDue(t0 + int64(time.Hour))
	trades(1)
	retain(0) // no checkpoint yet: nothing may go
	refineOnce()
	retain(1) // the refinery is in segment 2: segment 1 may go
	j.RollIfDue(t0 + 2*int64(time.Hour))
	trades(2)
	retain(0) // segment 2 is not passed yet
	refineOnce()
	retain(1)
	st, ok, err := etl.ReadState(etl.StatePath(root, "binance-perp"))
	cp, _, _ := journal.ReadCheckpoint(jdir)
	if err != nil || !ok || st.Segment != cp.Segment || st.Offset != cp.Offset {
		t.Fatalf("published checkpoint %+v does not match the refinery state %v %v", cp, st, err)
	}
	m, err := meta.Read(filepath.Join(root, "v1", "binance-perp", "eth-usdt", "2024-08-08", meta.FileName))
	if err != nil || m.Events.Trades != 150 || len(m.Completeness.Gaps) != 0 {
		t.Fatalf("partition holds %+v (%v), want all 150 trades, no gaps", m, err)
	}
}
