package merge

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
)

// hostJournalOf writes a capture as one host's journal, as chronicle-feed replay does (one
// connection, each REST snapshot after a request on the depth channel), with the host's
// receive clock shifted by offset; when drop[1] > 0 the host loses messages
// [drop[0], drop[1]): a disconnect, then a new connection (no snapshot follows: its book
// stays invalid to the end). It returns the directory and the messages' bytes.
func hostJournalOf(b *testing.B, v venue.Venue, host string, offset int64, drop [2]int, files ...string) (string, int64) {
	b.Helper()
	var recs []capture.Record
	for _, f := range files {
		rs, err := capture.ReadAll(filepath.Join(testenv.CapturesDir(), f))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, rs...)
	}
	streams := map[string]uint16{}
	var infos []journal.StreamInfo
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		if ev, err := v.Parse(r.Payload); err == nil {
			if _, ok := streams[string(ev.Stream)]; !ok {
				ch, _ := journal.Channel(0, 1, len(streams))
				streams[string(ev.Stream)] = ch
				infos = append(infos, journal.StreamInfo{Channel: ch, Stream: string(ev.Stream), Symbol: v.Symbol(string(ev.Stream)), Kind: ev.Kind.String()})
			}
		}
	}
	dir := filepath.Join(testenv.FastDir(b), host)
	os.MkdirAll(dir, 0o755)
	a, err := format.Create(filepath.Join(dir, journal.SegmentName(1, time.Unix(0, recs[0].RecvNs+offset))), format.NewJournalHeader(v.Name(), "feed"), format.Options{ChunkSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	conn, _ := journal.Channel(0, 1, journal.ConnStream)
	connect := func(recv int64) {
		cj, _ := json.Marshal(journal.Connect{Session: 1, Gen: 1, Channel: conn, URL: "bench", Streams: infos, Host: host})
		a.AppendJournal(format.JournalConnect, conn, recv, cj)
	}
	connect(recs[0].RecvNs + offset)
	var depthCh uint16
	for _, in := range infos {
		if in.Kind == "depth" {
			depthCh = in.Channel
		}
	}
	var raw int64
	msg := 0
	for _, r := range recs {
		recv := r.RecvNs + offset
		switch r.Kind {
		case capture.KindMessage:
			if drop[1] > 0 && msg == drop[0] {
				d, _ := json.Marshal(journal.Disconnect{Session: 1, Gen: 1, Kind: journal.DisconnectError, Reason: "bench drop"})
				a.AppendJournal(format.JournalDisconnect, conn, recv, d)
			}
			if drop[1] > 0 && msg == drop[1] {
				connect(recv)
			}
			msg++
			if drop[1] > 0 && msg > drop[0] && msg <= drop[1] {
				continue
			}
			raw += int64(len(r.Payload))
			ch := conn
			if ev, err := v.Parse(r.Payload); err == nil {
				ch = streams[string(ev.Stream)]
			}
			err = a.AppendJournal(format.JournalMessage, ch, recv, r.Payload)
		case capture.KindSnapshot:
			q, _ := json.Marshal(journal.SnapshotRequest{Symbol: infos[0].Symbol, Reason: journal.SnapshotReplay})
			a.AppendJournal(format.JournalSnapshotRequest, depthCh, recv, q)
			err = a.AppendJournal(format.JournalRESTSnapshot, depthCh, recv, r.Payload)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		b.Fatal(err)
	}
	return dir, raw
}

// BenchmarkMerge: chronicle-etl merge of two hosts' journals of the USD-M capture (one
// whole, one that lost a tenth of the messages and its book to a drop, its clock 2 ms
// apart), beside the refinery's backfill of one of the journals, in interleaved rounds of
// one run. MB/s counts the raw websocket messages read: both journals' for the merge
// (merge_MB/s), one's for the backfill (backfill_MB/s); x_backfill is their ratio.
func BenchmarkMerge(b *testing.B) {
	v, err := venue.Lookup("binance-perp")
	if err != nil {
		b.Fatal(err)
	}
	files := []string{"binance-usdm_ethusdt_20240808.jsonl.gz"}
	ja, rawA := hostJournalOf(b, v, "capture-a", 0, [2]int{}, files...)
	jb, rawB := hostJournalOf(b, v, "capture-b", 2e6, [2]int{30000, 37500}, files...)
	cfg := etl.Defaults()
	cfg.CheckpointInterval = time.Hour
	var tMerge, tBackfill time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		root := filepath.Join(testenv.FastDir(b), fmt.Sprint("m", i))
		t0 := time.Now()
		res, err := Merge(context.Background(), Options{Inputs: [2]Input{{Dir: ja}, {Dir: jb}}, Root: root, Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		tMerge += time.Since(t0)
		if len(res.Published) != 2 || res.Stats.Only[0] == 0 {
			b.Fatalf("merge: %+v", res)
		}
		ref := filepath.Join(testenv.FastDir(b), fmt.Sprint("r", i))
		t0 = time.Now()
		if _, err := etl.Refine(context.Background(), etl.Options{Config: cfg, Root: ref, JournalDir: ja, SealAll: true}); err != nil {
			b.Fatal(err)
		}
		tBackfill += time.Since(t0)
		os.RemoveAll(root)
		os.RemoveAll(ref)
	}
	merge := float64(rawA+rawB) * float64(b.N) / tMerge.Seconds() / 1e6
	backfill := float64(rawA) * float64(b.N) / tBackfill.Seconds() / 1e6
	b.ReportMetric(merge, "merge_MB/s")
	b.ReportMetric(backfill, "backfill_MB/s")
	b.ReportMetric(merge/backfill, "x_backfill")
	b.Logf("merge of %.1f + %.1f MB of messages: %.0f MB/s; backfill of one journal (%.1f MB): %.0f MB/s; %.2fx",
		float64(rawA)/1e6, float64(rawB)/1e6, merge, float64(rawA)/1e6, backfill, merge/backfill)
}
