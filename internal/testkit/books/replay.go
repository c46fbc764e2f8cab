package books

import (
	"fmt"
	"sort"
	"strings"

	"github.com/chronicle/chronicle/format"
)

// ReadFile returns the header and every record of a book file.
func ReadFile(path string) (format.Header, []format.BookRecord, error) {
	br, f, err := format.OpenBookFile(path)
	if err != nil {
		return format.Header{}, nil, err
	}
	defer f.Close()
	var out []format.BookRecord
	it := br.Iter()
	for it.Next() {
		out = append(out, *it.Record())
	}
	return br.Header(), out, it.Err()
}

// State is a reader's view of a book: price -> quantity per side, and whether the
// records say it is valid.
type State struct {
	Bids, Asks map[int64]int64
	Valid      bool
}

// Replay applies canonical records the way a reader would: level updates change the book,
// a snapshot run replaces it, a book_invalid record invalidates it. Every snapshot run
// that follows a valid stretch must equal the book the records before it built; Replay
// returns the book after the last record, the number of runs so compared, and an error
// naming the first record that breaks the rule or the run structure.
func Replay(recs []format.BookRecord) (State, int, error) {
	var b State
	compared := 0
	for i := 0; i < len(recs); i++ {
		r := recs[i]
		switch {
		case r.TypeID == format.TypeSnapshotBegin:
			run := State{Bids: map[int64]int64{}, Asks: map[int64]int64{}, Valid: r.Flags&format.FlagBookInvalid == 0}
			n := int(r.Aux0)
			if i+n+1 >= len(recs) {
				return b, compared, fmt.Errorf("record %d: run of %d levels passes the end of the book", i, n)
			}
			for k := 1; k <= n; k++ {
				l := recs[i+k]
				if l.TypeID != format.TypeLevel || l.Flags&format.FlagSnapshot == 0 {
					return b, compared, fmt.Errorf("record %d: run of %d levels broken at %d: %+v", i, n, k, l)
				}
				set(run.side(l.Flags), l.Price, l.Qty)
			}
			if end := recs[i+n+1]; end.TypeID != format.TypeSnapshotEnd || end.Flags&format.FlagLast == 0 {
				return b, compared, fmt.Errorf("record %d: run does not end with snapshot_end: %+v", i+n+1, end)
			}
			if b.Valid && run.Valid {
				if Render(b.Bids) != Render(run.Bids) || Render(b.Asks) != Render(run.Asks) {
					return b, compared, fmt.Errorf("record %d: snapshot run differs from the replay of the records before it\nrun  bids %s\nrepl bids %s\nrun  asks %s\nrepl asks %s",
						i, Render(run.Bids), Render(b.Bids), Render(run.Asks), Render(b.Asks))
				}
				compared++
			}
			b = run
			i += n + 1
		case r.TypeID == format.TypeBookInvalid:
			b.Valid = false
		case r.TypeID == format.TypeLevel && r.Flags&format.FlagSnapshot == 0:
			set(b.side(r.Flags), r.Price, r.Qty)
		}
	}
	return b, compared, nil
}

// Best returns the best bid and ask prices, -1 for an empty side.
func (b *State) Best() (bid, ask int64) {
	bid, ask = -1, -1
	for p := range b.Bids {
		if p > bid {
			bid = p
		}
	}
	for p := range b.Asks {
		if ask < 0 || p < ask {
			ask = p
		}
	}
	return bid, ask
}

// side returns the map a level record with these flags belongs to (nil for neither).
func (b *State) side(flags uint16) map[int64]int64 {
	switch {
	case flags&format.FlagBid != 0:
		return b.Bids
	case flags&format.FlagAsk != 0:
		return b.Asks
	}
	return nil
}

func set(m map[int64]int64, p, q int64) {
	switch {
	case m == nil:
	case q == 0:
		delete(m, p)
	default:
		m[p] = q
	}
}

// Render prints one side of a book in price order, for comparisons and failure messages.
func Render(m map[int64]int64) string {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%d:%d ", k, m[k])
	}
	return sb.String()
}
