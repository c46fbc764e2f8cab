package feed

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/capture"
)

func TestReplayRealCaptureJournalsEveryLine(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.RollPeriod = time.Minute // the capture spans ~6 minutes: several rolls
	path := captures + "binance-usdm_ethusdt_20240808.jsonl.gz"
	stats, err := Replay(context.Background(), cfg, ReplayOptions{Files: []string{path}}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	lines, err := capture.ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Messages+stats.Snapshots != 74655 || len(lines) != 74655 {
		t.Fatalf("stats %+v, lines %d", stats, len(lines))
	}
	recs := readJournal(t, dir)
	segs, _ := journal.List(dir)
	if len(segs) < 6 {
		t.Fatalf("%d segments, want a roll per minute", len(segs))
	}
	channels := map[uint16]string{}
	i := 0
	var connects, carried, reqs int
	for _, r := range recs {
		switch r.TypeID {
		case format.JournalConnect:
			var c journal.Connect
			if err := journal.Decode(r.Payload, &c); err != nil {
				t.Fatal(err)
			}
			if c.Carried {
				carried++
			} else {
				connects++
			}
			if !c.Replay || len(c.Streams) != 3 {
				t.Fatalf("connect %+v", c)
			}
			for _, s := range c.Streams {
				channels[s.Channel] = s.Stream
			}
		case format.JournalSnapshotRequest:
			reqs++
		case format.JournalMessage, format.JournalRESTSnapshot:
			l := lines[i]
			i++
			if !bytes.Equal(r.Payload, l.Payload) || r.RecvTs != l.RecvNs {
				t.Fatalf("record %d differs from line %d", i, l.Line)
			}
			want := format.JournalMessage
			if l.Kind == capture.KindSnapshot {
				want = format.JournalRESTSnapshot
			}
			if r.TypeID != want {
				t.Fatalf("line %d journaled as type %d", l.Line, r.TypeID)
			}
			if r.TypeID == format.JournalMessage && !bytes.Contains(r.Payload, []byte(`"stream":"`+channels[r.Channel]+`"`)) {
				t.Fatalf("line %d on channel %#x (%s)", l.Line, r.Channel, channels[r.Channel])
			}
			if r.TypeID == format.JournalRESTSnapshot && channels[r.Channel] != "ethusdt@depth@0ms" {
				t.Fatalf("snapshot on channel %#x", r.Channel)
			}
		case format.JournalGap:
			t.Fatalf("gap in a gapless capture: %s", r.Payload)
		}
	}
	if i != len(lines) || connects != 1 || carried != len(segs)-1 || reqs != 1 {
		t.Fatalf("records %d of %d, connects %d, carried %d (segments %d), requests %d", i, len(lines), connects, carried, len(segs), reqs)
	}
	if last := recs[len(recs)-1]; last.TypeID != format.JournalDisconnect {
		t.Fatalf("last record type %d", last.TypeID)
	}
	for _, s := range segs {
		if !sealed(t, dir+"/"+s.Name) {
			t.Fatalf("segment %s not sealed", s.Name)
		}
	}
}

func TestReplayCryptofeedPair(t *testing.T) {
	dir := t.TempDir()
	stats, err := Replay(context.Background(), testConfig(dir), ReplayOptions{Files: []string{captures + "cryptofeed_binance-futures.ws.txt"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Messages != 1535 || stats.Snapshots != 4 {
		t.Fatalf("stats %+v", stats)
	}
	recs := readJournal(t, dir)
	var c journal.Connect
	if err := journal.Decode(recs[0].Payload, &c); err != nil || len(c.Streams) != 16 || c.URL[:6] != "wss://" {
		t.Fatalf("connect %+v %v", c, err)
	}
	byCh := map[uint16]journal.StreamInfo{}
	for _, s := range c.Streams {
		byCh[s.Channel] = s
	}
	snaps := map[string]bool{}
	var last int64
	for _, r := range recs {
		if r.RecvTs < last && r.TypeID != format.JournalDisconnect {
			t.Fatalf("receive time went back at offset %d", r.Offset)
		}
		last = r.RecvTs
		if r.TypeID == format.JournalRESTSnapshot {
			s := byCh[r.Channel]
			if s.Kind != "depth" {
				t.Fatalf("snapshot on %+v", s)
			}
			snaps[s.Symbol] = true
		}
		if r.TypeID == format.JournalGap {
			t.Fatalf("gap: %s", r.Payload)
		}
	}
	if len(snaps) != 4 {
		t.Fatalf("snapshots for %v", snaps)
	}
}

func TestReplayPace(t *testing.T) {
	recs, err := capture.ReadAll(captures + "cryptofeed_binance-futures.ws.txt")
	if err != nil {
		t.Fatal(err)
	}
	span := time.Duration(recs[len(recs)-1].RecvNs - recs[1].RecvNs)
	start := time.Now()
	_, err = Replay(context.Background(), testConfig(t.TempDir()), ReplayOptions{Files: []string{captures + "cryptofeed_binance-futures.ws.txt"}, Speed: 100, Clock: "now"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// At 100x the ~30 s capture takes ~0.3 s: it must not run as fast as possible.
	if took := time.Since(start); took < span/100 {
		t.Fatalf("replay at 100x took %v, capture spans %v", took, span)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Replay(ctx, testConfig(t.TempDir()), ReplayOptions{Files: []string{captures + "cryptofeed_binance-futures.ws.txt"}, Speed: 1}, nil, nil); err == nil {
		t.Fatal("cancelled replay returned no error")
	}
}
