package merge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
)

// t0 is 2024-08-08T10:00:00Z in ms.
const t0 = 1723111200000

func invalids(m *meta.Meta) []meta.Invalid { return m.Completeness.Invalid }

// sinceStart is m's invalid intervals from the capture's start on: without not_captured,
// the day before the first message (docs/format/meta.md), which no host can cover.
func sinceStart(m *meta.Meta) []meta.Invalid {
	var out []meta.Invalid
	for _, iv := range m.Completeness.Invalid {
		if iv.Reason != "not_captured" {
			out = append(out, iv)
		}
	}
	return out
}

// Non-overlapping drops: host a misses a stretch, host b another; the merge is invalid
// only before its first snapshot (as an uninterrupted capture), its records are an
// uninterrupted capture's but for receive times, and it is the same whichever host is
// named first.
func TestNonOverlappingDrops(t *testing.T) {
	evs := exchange(1, t0, 600)
	dir := t.TempDir()
	full := journalOf(t, evs, capturePlan{host: "c-full"}, filepath.Join(dir, "c"))
	ja := journalOf(t, evs, capturePlan{host: "a", drops: [][2]int{{300, 420}}}, filepath.Join(dir, "a"))
	jb := journalOf(t, evs, capturePlan{host: "b", offset: 3000, drops: [][2]int{{800, 950}}}, filepath.Join(dir, "b"))
	ref := refineOne(t, full)
	ra, rb := refineOne(t, ja), refineOne(t, jb)
	for _, r := range []string{ra, rb} {
		if n := len(sinceStart(readMeta(t, r))); n != 2 {
			t.Fatalf("a host alone: %d invalid intervals, want 2 (no snapshot yet, drop): %+v", n, invalids(readMeta(t, r)))
		}
	}
	out := t.TempDir()
	res := mergeInto(t, out, Input{Dir: ja}, Input{Dir: jb})
	if res.Hosts != [2]string{"a", "b"} || len(res.Published) != 1 {
		t.Fatalf("result %+v", res)
	}
	got, want := records(t, out), records(t, ref)
	if !reflect.DeepEqual(withoutRecv(got), withoutRecv(want)) {
		t.Fatalf("merged book (%d records) differs from an uninterrupted capture's (%d)", len(got), len(want))
	}
	m, mref := readMeta(t, out), readMeta(t, ref)
	if !reflect.DeepEqual(invalids(m), invalids(mref)) || len(sinceStart(m)) != 1 || sinceStart(m)[0].Reason != "no_snapshot" {
		t.Fatalf("merged invalid intervals %+v, want the uninterrupted capture's %+v", invalids(m), invalids(mref))
	}
	if m.Events != mref.Events || m.Merge == nil || m.Merge.Base != "a" || len(m.Merge.Supplied) < 3 {
		t.Fatalf("merged meta: events %+v (want %+v), merge %+v", m.Events, mref.Events, m.Merge)
	}
	if m.Source.Pipeline != "chronicle-etl merge" || m.Merge.Hosts[1].DepthUpdates == 0 || m.Merge.Hosts[0].DepthUpdates+m.Merge.Hosts[1].DepthUpdates != m.Events.DepthUpdates {
		t.Fatalf("merged meta: source %+v hosts %+v", m.Source, m.Merge.Hosts)
	}
	// Named the other way round: the same bytes.
	out2 := t.TempDir()
	mergeInto(t, out2, Input{Dir: jb}, Input{Dir: ja})
	sameFiles(t, out, out2)
	// Running it again on the same root publishes nothing and changes nothing.
	res = mergeInto(t, out, Input{Dir: ja}, Input{Dir: jb})
	if len(res.Published) != 0 || len(res.Existing) != 1 {
		t.Fatalf("second merge: %+v", res)
	}
	sameFiles(t, out, out2)
	if _, err := os.Stat(filepath.Join(out, WorkDir)); !os.IsNotExist(err) {
		t.Fatalf("work directory left behind: %v", err)
	}
}

// sameFiles: two roots hold the same partitions, byte for byte.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	same, err := sameTree(filepath.Join(a, "v1"), filepath.Join(b, "v1"))
	if err != nil || !same {
		t.Fatalf("%s and %s differ (%v)", a, b, err)
	}
}

// A host compared with itself under another id: the merge is that host's own partition.
func TestMergeWithItself(t *testing.T) {
	evs := exchange(2, t0, 300)
	dir := t.TempDir()
	ja := journalOf(t, evs, capturePlan{host: "a", drops: [][2]int{{200, 260}}}, filepath.Join(dir, "a"))
	jb := journalOf(t, evs, capturePlan{host: "b", drops: [][2]int{{200, 260}}}, filepath.Join(dir, "b"))
	ra := refineOne(t, ja)
	out := t.TempDir()
	mergeInto(t, out, Input{Dir: ja}, Input{Dir: jb})
	a, err := os.ReadFile(filepath.Join(ra, part, "book.q"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(out, part, "book.q"))
	if err != nil || !bytes.Equal(a, m) {
		t.Fatalf("merge of a capture with an identical one differs from it (%v)", err)
	}
	if !reflect.DeepEqual(invalids(readMeta(t, out)), invalids(readMeta(t, ra))) {
		t.Fatalf("invalid intervals %+v, want %+v", invalids(readMeta(t, out)), invalids(readMeta(t, ra)))
	}
}

// Overlapping drops: the merge is invalid exactly over the overlap (the intersection of
// the two hosts' invalid intervals), with the reason of the host that lost it last; also
// when both come back at once and receive the same snapshot, one host's reconnection
// arriving after the other's snapshot.
func TestOverlappingDrops(t *testing.T) {
	evs := exchange(3, t0, 500)
	for _, c := range []struct {
		name string
		a, b capturePlan
	}{
		{"a back first", capturePlan{host: "a", drops: [][2]int{{300, 600}}}, capturePlan{host: "b", offset: -1500, drops: [][2]int{{450, 800}}}},
		{"back together", capturePlan{host: "a", drops: [][2]int{{300, 600}}}, capturePlan{host: "b", drops: [][2]int{{450, 600}}, lead: 5e6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ja, jb := journalOf(t, evs, c.a, filepath.Join(dir, "a")), journalOf(t, evs, c.b, filepath.Join(dir, "b"))
			ma, mb := readMeta(t, refineOne(t, ja)), readMeta(t, refineOne(t, jb))
			out := t.TempDir()
			mergeInto(t, out, Input{Dir: ja}, Input{Dir: jb})
			m := readMeta(t, out)
			want := intersect(sinceStart(ma), sinceStart(mb))
			if len(want) != 2 || !sameIntervals(sinceStart(m), want) {
				t.Fatalf("merged invalid %+v\nwant the intersection %+v\nof a %+v\nand b %+v", invalids(m), want, invalids(ma), invalids(mb))
			}
			if sinceStart(m)[1].Reason != "disconnect" {
				t.Fatalf("reason %q, want disconnect", sinceStart(m)[1].Reason)
			}
			checkRunsMatchReplay(t, records(t, out))
		})
	}
}

// intersect is the intersection of two sets of intervals.
func intersect(a, b []meta.Invalid) []meta.Invalid {
	var out []meta.Invalid
	for _, x := range a {
		for _, y := range b {
			from, to := max(x.From, y.From), min(x.To, y.To)
			if from < to || (from == to && x.From == y.From) {
				out = append(out, meta.Invalid{Interval: meta.Interval{From: from, To: to}, Reason: y.Reason})
			}
		}
	}
	return out
}

func sameIntervals(a, b []meta.Invalid) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].From != b[i].From || a[i].To != b[i].To {
			return false
		}
	}
	return true
}

// checkRunsMatchReplay: every snapshot run restates the book the records before it build.
func checkRunsMatchReplay(t *testing.T, recs []format.BookRecord) {
	t.Helper()
	bids, asks := map[int64]int64{}, map[int64]int64{}
	for i := 0; i < len(recs); i++ {
		r := recs[i]
		switch {
		case r.TypeID == format.TypeSnapshotBegin && r.Flags&format.FlagBookInvalid == 0:
			n := int(r.Aux0)
			sb, sa := map[int64]int64{}, map[int64]int64{}
			for k := 1; k <= n; k++ {
				l := recs[i+k]
				if l.Flags&format.FlagBid != 0 {
					sb[l.Price] = l.Qty
				} else {
					sa[l.Price] = l.Qty
				}
			}
			if len(bids)+len(asks) > 0 && (!reflect.DeepEqual(sb, bids) || !reflect.DeepEqual(sa, asks)) {
				t.Fatalf("record %d: snapshot run differs from the replayed book", i)
			}
			bids, asks = sb, sa
			i += n + 1
		case r.TypeID == format.TypeLevel && r.Flags&format.FlagSnapshot == 0:
			side := asks
			if r.Flags&format.FlagBid != 0 {
				side = bids
			} else if r.Flags&format.FlagAsk == 0 {
				continue
			}
			if r.Qty == 0 {
				delete(side, r.Price)
			} else {
				side[r.Price] = r.Qty
			}
		case r.TypeID == format.TypeBookInvalid:
			bids, asks = map[int64]int64{}, map[int64]int64{}
		}
	}
}

// Every way a host loses its book that the other host covers leaves the merge valid: a
// feed restart, a missed message (sequence gap), a damaged depth message, a missing
// journal segment; and hosts whose clocks are 20 s apart.
func TestCoveredLosses(t *testing.T) {
	evs := exchange(4, t0, 600)
	full := journalOf(t, evs, capturePlan{host: "ref"}, filepath.Join(t.TempDir(), "ref"))
	ref := records(t, refineOne(t, full))
	for _, c := range []struct {
		name string
		a, b capturePlan
	}{
		{"restart", capturePlan{host: "a", restart: 500}, capturePlan{host: "b", offset: 700}},
		{"sequence gap", capturePlan{host: "a", offset: 20, skip: 401}, capturePlan{host: "b", offset: -300}},
		{"damaged message", capturePlan{host: "a", corrupt: 600}, capturePlan{host: "b", offset: 40}},
		{"lost segment", capturePlan{host: "a", lost: [2]int{700, 900}}, capturePlan{host: "b", offset: 10}},
		{"clocks 20 s apart", capturePlan{host: "a", drops: [][2]int{{100, 200}}}, capturePlan{host: "b", offset: 20000, drops: [][2]int{{900, 1100}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ja, jb := journalOf(t, evs, c.a, filepath.Join(dir, "a")), journalOf(t, evs, c.b, filepath.Join(dir, "b"))
			if alone := sinceStart(readMeta(t, refineOne(t, ja))); len(alone) < 2 {
				t.Fatalf("host a alone is invalid only %+v: the case does not lose its book", alone)
			}
			out := t.TempDir()
			res := mergeInto(t, out, Input{Dir: ja}, Input{Dir: jb})
			if got := sinceStart(readMeta(t, out)); len(got) != 1 {
				t.Fatalf("merged invalid %+v (stats %+v), want only the one before the first snapshot", got, res.Stats)
			}
			if got := records(t, out); !reflect.DeepEqual(withoutRecv(got), withoutRecv(ref)) {
				t.Fatalf("merged book (%d records) differs from an uninterrupted capture's (%d); stats %+v", len(got), len(ref), res.Stats)
			}
		})
	}
}

// Inputs the merge refuses, by name.
func TestMergeRefuses(t *testing.T) {
	evs := exchange(5, t0, 50)
	dir := t.TempDir()
	ja := journalOf(t, evs, capturePlan{host: "a"}, filepath.Join(dir, "a"))
	ja2 := journalOf(t, evs, capturePlan{host: "a"}, filepath.Join(dir, "a2"))
	noHost := journalOf(t, evs, capturePlan{}, filepath.Join(dir, "x"))
	for name, in := range map[string][2]Input{
		"same host":    {{Dir: ja}, {Dir: ja2}},
		"no host id":   {{Dir: ja}, {Dir: noHost}},
		"bad host id":  {{Dir: ja}, {Host: "B B", Dir: ja2}},
		"no journal":   {{Dir: ja}, {Dir: t.TempDir()}},
		"missing path": {{Dir: ja}, {Dir: filepath.Join(dir, "nope")}},
	} {
		_, err := Merge(t.Context(), Options{Inputs: in, Root: t.TempDir()})
		if !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v, want ErrInput", name, err)
		}
	}
	// A partition already in the root with other bytes is never replaced.
	out := t.TempDir()
	mergeInto(t, out, Input{Dir: ja}, Input{Host: "b", Dir: noHost})
	p := filepath.Join(out, part, "meta.json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(b, ' '), 0o644)
	_, err := Merge(t.Context(), Options{Inputs: [2]Input{{Dir: ja}, {Host: "b", Dir: noHost}}, Root: out})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("merge over a partition with other bytes: %v, want ErrExists", err)
	}
}
