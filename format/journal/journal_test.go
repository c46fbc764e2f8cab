package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSegmentNames(t *testing.T) {
	start := time.Date(2024, 8, 8, 23, 0, 0, 0, time.UTC)
	n := SegmentName(42, start)
	if n != "00000042-20240808T230000Z.q" {
		t.Fatalf("name %s", n)
	}
	s, err := ParseSegmentName(n)
	if err != nil || s.Seq != 42 || !s.Start.Equal(start) {
		t.Fatalf("%+v %v", s, err)
	}
	if big := SegmentName(123456789, start); big != "123456789-20240808T230000Z.q" {
		t.Fatalf("long seq %s", big)
	} else if s, err := ParseSegmentName(big); err != nil || s.Seq != 123456789 {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"", "x.q", "00000042-20240808T230000Z.qz", "0000042-20240808T230000Z.q", "00000042-20240808T236000Z.q",
		"00000042_20240808T230000Z.q", ".00000042-20240808T230000Z.q", "0000004a-20240808T230000Z.q", "000000042-20240808T230000Z.q"} {
		if _, err := ParseSegmentName(bad); !errors.Is(err, ErrBadSegmentName) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestListOrdersBySeq(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{SegmentName(10, time.Unix(0, 0)), SegmentName(9, time.Unix(7200, 0)), ".lock", CheckpointFile, ".next-123.q", "junk"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	segs, err := List(dir)
	if err != nil || len(segs) != 2 || segs[0].Seq != 9 || segs[1].Seq != 10 {
		t.Fatalf("%+v %v", segs, err)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadCheckpoint(dir); ok || err != nil {
		t.Fatalf("empty dir: %v %v", ok, err)
	}
	cp := Checkpoint{Segment: SegmentName(3, time.Unix(3600, 0)), Offset: 8192, UpdatedNs: 5}
	if err := WriteCheckpoint(dir, cp); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadCheckpoint(dir)
	cp.Version = CheckpointVersion
	if !ok || err != nil || got != cp {
		t.Fatalf("%+v %v %v", got, ok, err)
	}
	// One line, as docs/format/journal.md shows it (scripts/demo.sh greps it).
	if b, _ := os.ReadFile(filepath.Join(dir, CheckpointFile)); bytes.Count(b, []byte("\n")) != 1 ||
		!bytes.Contains(b, []byte(`"segment":"`+cp.Segment+`","offset":8192,`)) {
		t.Fatalf("checkpoint file: %q", b)
	}
	if err := WriteCheckpoint(dir, Checkpoint{Segment: "nope"}); err == nil {
		t.Fatal("bad segment name written")
	}
	os.WriteFile(filepath.Join(dir, CheckpointFile), []byte(`{"version":2,"segment":"x"}`), 0o644)
	if _, _, err := ReadCheckpoint(dir); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("bad checkpoint: %v", err)
	}
}

func TestChannels(t *testing.T) {
	for _, c := range []struct{ slot, stream int }{{0, 0}, {3, 7}, {126, 254}, {126, ConnStream}} {
		for gen := uint64(0); gen < 3; gen++ {
			ch, err := Channel(c.slot, gen, c.stream)
			if err != nil {
				t.Fatal(err)
			}
			s, p, st := SplitChannel(ch)
			if s != c.slot || p != int(gen&1) || st != c.stream || ch >= 0xFE00 {
				t.Fatalf("%+v gen %d -> %#x -> %d %d %d", c, gen, ch, s, p, st)
			}
		}
	}
	a, _ := Channel(1, 0, 2)
	b, _ := Channel(1, 1, 2)
	if a == b {
		t.Fatal("consecutive generations share a channel")
	}
	if _, err := Channel(127, 0, 0); !errors.Is(err, ErrBadChannel) {
		t.Fatal("slot 127 accepted")
	}
}

func FuzzParseSegmentName(f *testing.F) {
	f.Add("00000042-20240808T230000Z.q")
	f.Add("99999999-99991231T235959Z.q")
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseSegmentName(name)
		if err != nil {
			return
		}
		if SegmentName(s.Seq, s.Start) != name {
			t.Fatalf("%q parsed to %+v, which formats differently", name, s)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(`{"version":1,"segment":"00000042-20240808T230000Z.q","offset":4096,"updated_ns":1}`))
	f.Add([]byte(`{"version":1,"segment":"00000042-20240808T230000Z.q","offset":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := ParseCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if cp.Offset < 0 || cp.Version != CheckpointVersion {
			t.Fatalf("accepted %+v", cp)
		}
		if _, err := ParseSegmentName(cp.Segment); err != nil {
			t.Fatalf("accepted segment %q", cp.Segment)
		}
	})
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"session":1,"slot":0,"gen":2,"ch":767,"url":"wss://x","streams":[{"ch":512,"stream":"ethusdt@trade","symbol":"ETHUSDT","kind":"trade"}]}`))
	f.Add([]byte(`{"reason":"sequence","stream":"ethusdt@depth@0ms","last_id":5,"prev":7,"id":9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&Connect{}, &Disconnect{}, &SnapshotRequest{}, &Gap{}} {
			if err := Decode(b, v); err != nil && !errors.Is(err, ErrBadEvent) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}
