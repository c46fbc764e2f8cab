package etl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/feed/journal"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
)

// captureJournal writes a capture into a journal as chronicle-feed replay does (one
// connection carrying its streams, each REST snapshot after a request on its symbol's depth
// channel) and returns the journal directory and the websocket messages. A cryptofeed
// websocket log is merged with the REST log beside it. The journal is a pure function of
// the files (its header is dated by the first record), so its partitions are too.
func captureJournal(tb testing.TB, v venue.Venue, files ...string) (string, [][]byte) {
	tb.Helper()
	var recs []capture.Record
	for _, f := range files {
		p := filepath.Join(testenv.CapturesDir(), f)
		rs, err := capture.ReadAll(p)
		if err != nil {
			tb.Fatal(err)
		}
		if h := capture.PairedHTTP(p); h != "" && h != p {
			rest, err := capture.ReadAll(h)
			if err != nil {
				tb.Fatal(err)
			}
			rs = capture.Merge(rs, rest)
		}
		recs = append(recs, rs...)
	}
	streams := map[string]uint16{}
	depthOf := map[string]uint16{} // symbol -> its depth channel
	var infos []journal.StreamInfo
	var msgs [][]byte
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		msgs = append(msgs, r.Payload)
		ev, err := v.Parse(r.Payload)
		if err != nil {
			continue
		}
		if _, ok := streams[string(ev.Stream)]; !ok {
			ch, _ := journal.Channel(0, 1, len(streams))
			streams[string(ev.Stream)] = ch
			sym := v.Symbol(string(ev.Stream))
			infos = append(infos, journal.StreamInfo{Channel: ch, Stream: string(ev.Stream), Symbol: sym, Kind: ev.Kind.String()})
			if ev.Kind == venue.KindDepth {
				depthOf[sym] = ch
			}
		}
	}
	dir := filepath.Join(testenv.FastDir(tb), "journal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	h := format.NewJournalHeader(v.Name(), "feed")
	h.CreatedNs = recs[0].RecvNs
	a, err := format.Create(filepath.Join(dir, journal.SegmentName(1, time.Unix(0, recs[0].RecvNs))), h, format.Options{ChunkSize: 64 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	conn, _ := journal.Channel(0, 1, journal.ConnStream)
	cj, _ := json.Marshal(journal.Connect{Session: 1, Gen: 1, Channel: conn, URL: "bench", Streams: infos})
	if err := a.AppendJournal(format.JournalConnect, conn, recs[0].RecvNs, cj); err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		switch r.Kind {
		case capture.KindMessage:
			ch := conn
			if ev, err := v.Parse(r.Payload); err == nil {
				ch = streams[string(ev.Stream)]
			}
			err = a.AppendJournal(format.JournalMessage, ch, r.RecvNs, r.Payload)
		case capture.KindSnapshot:
			sym := r.Symbol
			ch, ok := depthOf[sym]
			if !ok && len(depthOf) == 1 {
				for s, c := range depthOf { // a capture of one symbol does not name it
					sym, ch, ok = s, c, true
				}
			}
			if !ok {
				continue
			}
			q, _ := json.Marshal(journal.SnapshotRequest{Symbol: sym, Reason: journal.SnapshotReplay})
			if err = a.AppendJournal(format.JournalSnapshotRequest, ch, r.RecvNs, q); err == nil {
				err = a.AppendJournal(format.JournalRESTSnapshot, ch, r.RecvNs, r.Payload)
			}
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		tb.Fatal(err)
	}
	return dir, msgs
}
