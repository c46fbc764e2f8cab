package feed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
)

var t0 = time.Date(2024, 8, 8, 23, 0, 0, 0, time.UTC).UnixNano()

func jopt(dir string) JournalOptions {
	return JournalOptions{Dir: dir, Venue: "binance-perp", Period: time.Hour, ChunkSize: 1 << 16, MaxSize: 1 << 24}
}

func TestJournalRollsByRecordTime(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(jopt(dir), t0+5*int64(time.Minute), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rolls []int64
	j.onRoll = func(now int64) {
		rolls = append(rolls, now)
		j.AppendLocked(format.JournalConnect, 7, now, []byte(`{"carried":true}`))
	}
	for i := 0; i < 3*60; i++ { // one record a minute for three hours
		ts := t0 + int64(i)*int64(time.Minute)
		if err := j.Append(format.JournalMessage, 1, ts, []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := journal.List(dir)
	want := []string{"00000001-20240808T230000Z.q", "00000002-20240809T000000Z.q", "00000003-20240809T010000Z.q"}
	if len(segs) != 3 || len(rolls) != 2 {
		t.Fatalf("segments %v rolls %d", segs, len(rolls))
	}
	for i, s := range segs {
		if s.Name != want[i] || !sealed(t, filepath.Join(dir, s.Name)) {
			t.Fatalf("segment %d: %s sealed=%v", i, s.Name, sealed(t, filepath.Join(dir, s.Name)))
		}
	}
	recs := readJournal(t, dir)
	n := 0
	for _, r := range recs {
		if r.TypeID == format.JournalMessage {
			if string(r.Payload) != fmt.Sprintf(`{"i":%d}`, n) {
				t.Fatalf("record %d: %s", n, r.Payload)
			}
			hour := (r.RecvTs - t0) / int64(time.Hour)
			if r.seg != want[hour] {
				t.Fatalf("record at +%dh in %s", hour, r.seg)
			}
			n++
		}
	}
	// each new segment starts with the restated connection
	if n != 180 || recs[60].TypeID != format.JournalConnect || recs[60].seg != want[1] {
		t.Fatalf("n=%d record 60: type %d in %s", n, recs[60].TypeID, recs[60].seg)
	}
}

func TestJournalPrecreateAndEarlyRoll(t *testing.T) {
	dir := t.TempDir()
	o := jopt(dir)
	o.MaxSize = 1 << 16 // 64 KiB segments fill quickly
	j, err := OpenJournal(o, t0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Precreate(t0+int64(59*time.Minute+45*time.Second), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if j.next == nil {
		t.Fatal("nothing pre-created 15 s before the roll")
	}
	if segs, _ := journal.List(dir); len(segs) != 1 {
		t.Fatalf("pre-created segment visible to readers: %v", segs)
	}
	payload := make([]byte, 1000)
	for i := 0; i < 200; i++ {
		if err := j.Append(format.JournalMessage, 1, t0+int64(i), payload); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	segs, _ := journal.List(dir)
	if len(segs) < 3 {
		t.Fatalf("200 KB into 64 KiB segments gave %d segments", len(segs))
	}
	if n := len(readJournal(t, dir)); n != 200 {
		t.Fatalf("%d records", n)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), nextPrefix) {
			t.Fatalf("temporary %s left behind", e.Name())
		}
	}
}

func TestJournalCrashResumeAndRecovery(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(jopt(dir), t0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(jopt(dir), t0, nil, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v", err)
	}
	for i := 0; i < 10; i++ {
		j.Append(format.JournalMessage, 1, t0+int64(i), []byte("before"))
	}
	seg := j.Segment().Name
	j.abandon() // a crash: unsealed, lock released
	// Damage past the committed length, as a record being written when the process died.
	f, _ := os.OpenFile(filepath.Join(dir, seg), os.O_RDWR, 0)
	st, _ := f.Stat()
	f.WriteAt([]byte("torn record garbage"), st.Size())
	f.Close()

	// Same period: resume the segment after its last whole record.
	j, err = OpenJournal(jopt(dir), t0+int64(time.Minute), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.Segment().Name != seg {
		t.Fatalf("resumed %s, want %s", j.Segment().Name, seg)
	}
	j.Append(format.JournalMessage, 1, t0+int64(time.Minute), []byte("after"))
	j.abandon()
	recs := readJournal(t, dir)
	if len(recs) != 11 || string(recs[10].Payload) != "after" {
		t.Fatalf("%d records, last %q", len(recs), recs[len(recs)-1].Payload)
	}
	// Next period: the old segment is sealed and a new one started.
	j, err = OpenJournal(jopt(dir), t0+int64(time.Hour), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if !sealed(t, filepath.Join(dir, seg)) || j.Segment().Seq != 2 {
		t.Fatalf("old sealed=%v, current %s", sealed(t, filepath.Join(dir, seg)), j.Segment().Name)
	}
}

func TestRetentionFollowsCheckpoint(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(jopt(dir), t0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for h := 0; h < 4; h++ {
		j.Append(format.JournalMessage, 1, t0+int64(h)*int64(time.Hour), []byte("x"))
	}
	j.sealWG.Wait()
	segs, _ := journal.List(dir)
	if len(segs) != 4 {
		t.Fatalf("%d segments", len(segs))
	}
	now := time.Unix(0, t0).Add(10 * time.Hour)
	if del, err := j.Retain(now, time.Hour); err != nil || len(del) != 0 {
		t.Fatalf("no checkpoint: deleted %v %v", del, err)
	}
	if err := journal.WriteCheckpoint(dir, journal.Checkpoint{Segment: segs[2].Name, Offset: 4096}); err != nil {
		t.Fatal(err)
	}
	// At 09:00 with an 8.5 h minimum age only segment 1 (ended 00:00) is old enough;
	// segment 2 ended at 01:00.
	del, err := j.Retain(now, 8*time.Hour+30*time.Minute)
	if err != nil || len(del) != 1 || del[0] != segs[0].Name {
		t.Fatalf("deleted %v %v", del, err)
	}
	del, err = j.Retain(now, time.Hour)
	if err != nil || len(del) != 1 || del[0] != segs[1].Name {
		t.Fatalf("deleted %v %v", del, err)
	}
	// The checkpoint's own segment and later ones stay.
	if left, _ := journal.List(dir); len(left) != 2 {
		t.Fatalf("left %v", left)
	}
	// A checkpoint from the future (another incarnation of the directory) is refused.
	journal.WriteCheckpoint(dir, journal.Checkpoint{Segment: journal.SegmentName(99, time.Unix(0, t0)), Offset: 1})
	if _, err := j.Retain(now, 0); err == nil {
		t.Fatal("checkpoint ahead of the journal accepted")
	}
}
