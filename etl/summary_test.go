package etl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/layout"
)

// partitionSummary is what a reviewer reads of a partition in a golden diff, where the
// hashes only say that something changed: counts by record type, the first and last
// records, the final book's top levels and meta.json (without its ingest time).
type partitionSummary struct {
	Records   map[string]int64 `json:"records"`
	First     string           `json:"first"`
	Last      string           `json:"last"`
	FinalBook finalBook        `json:"final_book"`
	Meta      json.RawMessage  `json:"meta"`
}

type finalBook struct {
	Valid     bool     `json:"valid"`
	BidLevels int      `json:"bid_levels"`
	AskLevels int      `json:"ask_levels"`
	Bids      []string `json:"top_bids"` // "price x qty", best first
	Asks      []string `json:"top_asks"`
}

const summaryTop = 5

// treeSummaries summarises every partition below root, by its directory.
func treeSummaries(t *testing.T, root string) map[string]partitionSummary {
	t.Helper()
	out := map[string]partitionSummary{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() != layout.BookName {
			return err
		}
		dir := filepath.Dir(p)
		rel, _ := filepath.Rel(root, dir)
		h, recs, err := books.ReadFile(p)
		if err != nil {
			return err
		}
		s := partitionSummary{Records: map[string]int64{}}
		for i := range recs {
			s.Records[format.TypeName(recs[i].TypeID)]++
		}
		if len(recs) > 0 {
			s.First, s.Last = renderRecord(h, &recs[0]), renderRecord(h, &recs[len(recs)-1])
		}
		st, _, err := books.Replay(recs)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		s.FinalBook = finalBook{Valid: st.Valid, BidLevels: len(st.Bids), AskLevels: len(st.Asks),
			Bids: topLevels(h, st.Bids, true), Asks: topLevels(h, st.Asks, false)}
		b, err := os.ReadFile(filepath.Join(dir, meta.FileName))
		if err != nil {
			return err
		}
		m, err := meta.Parse(b, p)
		if err != nil {
			return err
		}
		m.IngestTime = 0
		if b, err = meta.Marshal(m); err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return err
		}
		s.Meta = buf.Bytes()
		out[filepath.ToSlash(rel)] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func renderRecord(h format.Header, r *format.BookRecord) string {
	side := map[uint16]string{format.FlagBid: "bid", format.FlagAsk: "ask"}[r.Side()]
	return fmt.Sprintf("%s %s %s %s x %s seq %d flags %#x", time.Unix(0, r.ExchTs).UTC().Format(time.RFC3339Nano),
		format.TypeName(r.TypeID), side, format.FormatDecimal(r.Price, h.PriceDecimals), format.FormatDecimal(r.Qty, h.QtyDecimals), r.Seq, r.Flags)
}

func topLevels(h format.Header, m map[int64]int64, bids bool) []string {
	ps := make([]int64, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return (ps[i] > ps[j]) == bids })
	out := []string{}
	for _, p := range ps[:min(summaryTop, len(ps))] {
		out = append(out, format.FormatDecimal(p, h.PriceDecimals)+" x "+format.FormatDecimal(m[p], h.QtyDecimals))
	}
	return out
}

// checkGoldenSummaries compares root's summaries with testdata/golden/NAME.summary.json
// (rewritten with -update), naming the partitions and fields that differ.
func checkGoldenSummaries(t *testing.T, name, root string) {
	t.Helper()
	got := treeSummaries(t, root)
	path := filepath.Join("testdata", "golden", name+".summary.json")
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want map[string]partitionSummary
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var diff []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			diff = append(diff, k+": not written")
			continue
		}
		for _, f := range []struct {
			name string
			w, g any
		}{{"records", w.Records, g.Records}, {"first", w.First, g.First}, {"last", w.Last, g.Last},
			{"final_book", w.FinalBook, g.FinalBook}, {"meta", w.Meta, g.Meta}} {
			wb, _ := json.Marshal(f.w)
			gb, _ := json.Marshal(f.g)
			if !bytes.Equal(wb, gb) {
				diff = append(diff, fmt.Sprintf("%s %s:\n  want %s\n  got  %s", k, f.name, wb, gb))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diff = append(diff, k+": new partition")
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Fatalf("%s: %d fields of partitions differ:\n%s", path, len(diff), strings.Join(diff, "\n"))
	}
}
