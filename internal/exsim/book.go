package exsim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// book is the simulator's copy of one symbol's order book, so REST snapshots agree with
// the stream it replays. Levels are kept as the exchange's own strings.
type book struct {
	lastID int64
	bids   map[string]string
	asks   map[string]string
	// known is false until a snapshot seeds the book; diffs before it only move lastID.
	known bool
}

type level = [2]string

func newBook() *book { return &book{bids: map[string]string{}, asks: map[string]string{}} }

func (b *book) clone() *book {
	c := &book{lastID: b.lastID, known: b.known, bids: make(map[string]string, len(b.bids)), asks: make(map[string]string, len(b.asks))}
	for k, v := range b.bids {
		c.bids[k] = v
	}
	for k, v := range b.asks {
		c.asks[k] = v
	}
	return c
}

// seed replaces the book with a REST snapshot body.
func (b *book) seed(body []byte) error {
	var s struct {
		LastUpdateID int64   `json:"lastUpdateId"`
		Bids         []level `json:"bids"`
		Asks         []level `json:"asks"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("seed book: %w", err)
	}
	*b = *newBook()
	b.lastID, b.known = s.LastUpdateID, true
	for _, l := range s.Bids {
		b.bids[l[0]] = l[1]
	}
	for _, l := range s.Asks {
		b.asks[l[0]] = l[1]
	}
	return nil
}

// diff is one depth update's levels.
type diff struct {
	U, u   int64
	bids   []level
	asks   []level
	symbol string
}

// apply follows Binance's rule: drop diffs the book already covers; quantities are
// absolute and zero deletes.
func (b *book) apply(d *diff) {
	if d.u <= b.lastID {
		return
	}
	b.lastID = d.u
	set := func(m map[string]string, ls []level) {
		for _, l := range ls {
			if isZero(l[1]) {
				delete(m, l[0])
			} else {
				m[l[0]] = l[1]
			}
		}
	}
	set(b.bids, d.bids)
	set(b.asks, d.asks)
}

func isZero(q string) bool { return strings.Trim(q, "0.") == "" }

// body renders a REST depth response with the best limit levels a side.
func (b *book) body(limit int, E, T int64) []byte {
	side := func(m map[string]string, desc bool) []level {
		type pl struct {
			p float64
			l level
		}
		ls := make([]pl, 0, len(m))
		for p, q := range m {
			f, _ := strconv.ParseFloat(p, 64)
			ls = append(ls, pl{f, level{p, q}})
		}
		sort.Slice(ls, func(i, j int) bool {
			if desc {
				return ls[i].p > ls[j].p
			}
			return ls[i].p < ls[j].p
		})
		if len(ls) > limit {
			ls = ls[:limit]
		}
		out := make([]level, len(ls))
		for i, x := range ls {
			out[i] = x.l
		}
		return out
	}
	out, _ := json.Marshal(struct {
		LastUpdateID int64   `json:"lastUpdateId"`
		E            int64   `json:"E"`
		T            int64   `json:"T"`
		Bids         []level `json:"bids"`
		Asks         []level `json:"asks"`
	}{b.lastID, E, T, side(b.bids, true), side(b.asks, false)})
	return out
}
