package etl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
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
	if _, ok := v.(venue.Subscriber); ok {
		return subscribedCaptureJournal(tb, v, 1, files...)
	}
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
	dir, a, conn := openCaptureJournal(tb, v, recs[0].RecvNs, "bench", infos)
	for _, r := range recs {
		var err error
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

// subscribedCaptureJournal writes the capture of a venue that subscribes on the websocket
// (OKX, Kraken) into a journal as chronicle-feed replay does: one connection carrying its
// streams, the files merged by receive time, the REST log beside them as reference
// records, control messages on the connection's channel. reps > 1 journals the capture
// that many times in a row, each copy received after the last (its books start again from
// their snapshots; the reference data is journaled once): a capture of half a minute
// becomes enough work to time. Like captureJournal's, the journal is a pure function of
// the files.
func subscribedCaptureJournal(tb testing.TB, v venue.Venue, reps int, files ...string) (string, [][]byte) {
	tb.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(testenv.CapturesDir(), f))
	}
	recs, err := capture.ReadMerged(paths)
	if err != nil {
		tb.Fatal(err)
	}
	streams := map[string]uint16{}
	var infos []journal.StreamInfo
	var msgs [][]byte
	var key []byte
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		msgs = append(msgs, r.Payload)
		ev, err := v.Parse(r.Payload)
		if err != nil || ev.Kind == venue.KindControl {
			continue
		}
		key = ev.Key(key[:0])
		if _, ok := streams[string(key)]; !ok {
			ch, _ := journal.Channel(0, 1, len(streams))
			streams[string(key)] = ch
			infos = append(infos, journal.StreamInfo{Channel: ch, Stream: string(key), Symbol: v.Symbol(string(key)), Kind: ev.Kind.String()})
		}
	}
	dir, a, conn := openCaptureJournal(tb, v, recs[0].RecvNs, "capture", infos)
	span := recs[len(recs)-1].RecvNs - recs[0].RecvNs + 1
	for rep := 0; rep < reps; rep++ {
		shift := int64(rep) * span
		for _, r := range recs {
			recv := r.RecvNs + shift
			var err error
			switch r.Kind {
			case capture.KindMessage:
				ch := conn
				if ev, err := v.Parse(r.Payload); err == nil && ev.Kind != venue.KindControl {
					ch = streams[string(ev.Key(key[:0]))]
				}
				err = a.AppendJournal(format.JournalMessage, ch, recv, r.Payload)
			case capture.KindSnapshot:
				if rep == 0 {
					err = a.AppendJournal(format.JournalReference, journal.ChannelFeed, recv, r.Payload)
				}
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := a.Seal(); err != nil {
		tb.Fatal(err)
	}
	all := make([][]byte, 0, len(msgs)*reps)
	for rep := 0; rep < reps; rep++ {
		all = append(all, msgs...)
	}
	return dir, all
}

// openCaptureJournal creates the journal directory and its first segment, dated firstNs,
// and writes the connection record that carries the streams.
func openCaptureJournal(tb testing.TB, v venue.Venue, firstNs int64, url string, infos []journal.StreamInfo) (string, *format.Appender, uint16) {
	tb.Helper()
	dir := filepath.Join(testenv.FastDir(tb), "journal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	h := format.NewJournalHeader(v.Name(), "feed")
	h.CreatedNs = firstNs
	a, err := format.Create(filepath.Join(dir, journal.SegmentName(1, time.Unix(0, firstNs))), h, format.Options{ChunkSize: 64 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	conn, _ := journal.Channel(0, 1, journal.ConnStream)
	cj, _ := json.Marshal(journal.Connect{Session: 1, Gen: 1, Channel: conn, URL: url, Streams: infos})
	if err := a.AppendJournal(format.JournalConnect, conn, firstNs, cj); err != nil {
		tb.Fatal(err)
	}
	return dir, a, conn
}

// captureScales returns the scales a capture's reference data gives its instruments (the
// venue's default for the rest): what the refinery decodes its messages at.
func captureScales(tb testing.TB, v venue.Venue, files ...string) *venue.Scales {
	scales := &venue.Scales{}
	scales.Default.Price, scales.Default.Qty = v.Decimals()
	rv, ok := v.(venue.Referencer)
	if !ok {
		return scales
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(testenv.CapturesDir(), f))
	}
	recs, err := capture.ReadMerged(paths)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if r.Kind != capture.KindSnapshot {
			continue
		}
		if specs, err := rv.DecodeReference(r.Payload, nil); err == nil {
			for _, sp := range specs {
				scales.Set(sp.Symbol, sp.Scale)
			}
		}
	}
	return scales
}
