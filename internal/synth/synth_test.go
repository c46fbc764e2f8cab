package synth

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
)

func TestWriteIsValidAndDeterministic(t *testing.T) {
	dir := t.TempDir()
	spec := Spec{Venue: "binance-perp", Symbol: "eth-usdt", SymbolID: 3, Date: time.Date(2024, 8, 8, 0, 0, 0, 0, time.UTC), Bytes: 2 << 20, Seed: 7}
	var sums [2]int64
	for i := range sums {
		p := filepath.Join(dir, string(rune('a'+i)), "book.q")
		if err := Write(p, spec); err != nil {
			t.Fatal(err)
		}
		m, err := format.MapFile(p)
		if err != nil {
			t.Fatal(err)
		}
		br, err := format.OpenBook(m, m.Size(), p)
		if err != nil {
			t.Fatal(err)
		}
		h := br.Header()
		if !h.Sealed || h.Records() < 20000 || h.Date != 20240808 {
			t.Fatalf("header %+v", h)
		}
		it := br.Iter()
		first := true
		var lastTs int64
		snaps := 0
		for it.Next() {
			r := it.Record()
			if first && r.TypeID != format.TypeSnapshotBegin {
				t.Fatal("partition does not open with a snapshot")
			}
			first = false
			if r.ExchTs < lastTs {
				t.Fatal("exchange time goes backwards")
			}
			lastTs = r.ExchTs
			if r.TypeID == format.TypeBBO && r.Price >= r.Aux0 {
				t.Fatalf("crossed book: bid %d ask %d", r.Price, r.Aux0)
			}
			if r.TypeID == format.TypeSnapshotBegin {
				snaps++
			}
			sums[i] += r.Price ^ r.Qty ^ r.ExchTs
		}
		if it.Err() != nil || snaps < 1 {
			t.Fatalf("err %v snapshots %d", it.Err(), snaps)
		}
		m.Close()
	}
	if sums[0] != sums[1] {
		t.Fatal("same seed gave different partitions")
	}
}
