package exsim

import (
	"bytes"
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
	// shape is the REST body's top-level keys in the venue's order (USD-M: lastUpdateId,
	// E, T, bids, asks; COIN-M adds symbol and pair; spot has neither times nor symbol);
	// extra holds the values of keys the book does not compute (symbol, pair).
	shape []string
	extra map[string]json.RawMessage
	// raw is the recorded snapshot body while the book is still exactly that snapshot: it
	// is served verbatim, as the exchange sent it.
	raw []byte
}

type level = [2]string

func newBook() *book { return &book{bids: map[string]string{}, asks: map[string]string{}} }

func (b *book) clone() *book {
	c := &book{lastID: b.lastID, known: b.known, bids: make(map[string]string, len(b.bids)), asks: make(map[string]string, len(b.asks)),
		shape: b.shape, extra: b.extra, raw: b.raw}
	for k, v := range b.bids {
		c.bids[k] = v
	}
	for k, v := range b.asks {
		c.asks[k] = v
	}
	return c
}

// seed replaces the book with a REST snapshot body and takes the body's shape.
func (b *book) seed(body []byte) error {
	var s struct {
		LastUpdateID int64   `json:"lastUpdateId"`
		Bids         []level `json:"bids"`
		Asks         []level `json:"asks"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("seed book: %w", err)
	}
	shape, extra, err := bodyShape(body)
	if err != nil {
		return fmt.Errorf("seed book: %w", err)
	}
	*b = *newBook()
	b.lastID, b.known = s.LastUpdateID, true
	b.shape, b.extra, b.raw = shape, extra, body
	for _, l := range s.Bids {
		b.bids[l[0]] = l[1]
	}
	for _, l := range s.Asks {
		b.asks[l[0]] = l[1]
	}
	return nil
}

// computed are the snapshot keys the book renders itself.
var computed = map[string]bool{"lastUpdateId": true, "E": true, "T": true, "bids": true, "asks": true}

// bodyShape lists a JSON object's keys in order and keeps the values of those the book
// does not compute.
func bodyShape(body []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("snapshot body is not a json object")
	}
	var shape []string
	extra := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		shape = append(shape, key)
		if !computed[key] {
			extra[key] = v
		}
	}
	return shape, extra, nil
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
	b.lastID, b.raw = d.u, nil
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

// body renders a REST depth response with the best limit levels a side, in the book's
// shape; the recorded body itself while the book is still that snapshot and the limit
// covers it.
func (b *book) body(limit int, E, T int64) []byte {
	if b.raw != nil && len(b.bids) <= limit && len(b.asks) <= limit {
		return b.raw
	}
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
	shape := b.shape
	if shape == nil {
		shape = futuresShape
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for i, k := range shape {
		if i > 0 {
			out.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		out.Write(kb)
		out.WriteByte(':')
		var v []byte
		switch k {
		case "lastUpdateId":
			v = strconv.AppendInt(nil, b.lastID, 10)
		case "E":
			v = strconv.AppendInt(nil, E, 10)
		case "T":
			v = strconv.AppendInt(nil, T, 10)
		case "bids":
			v, _ = json.Marshal(side(b.bids, true))
		case "asks":
			v, _ = json.Marshal(side(b.asks, false))
		default:
			v = b.extra[k]
		}
		if v == nil {
			v = []byte("null")
		}
		out.Write(v)
	}
	out.WriteByte('}')
	return out.Bytes()
}

// The venues' snapshot shapes, for books no recorded snapshot seeded.
var (
	futuresShape = []string{"lastUpdateId", "E", "T", "bids", "asks"}
	coinmShape   = []string{"lastUpdateId", "E", "T", "symbol", "pair", "bids", "asks"}
	spotShape    = []string{"lastUpdateId", "bids", "asks"}
)

// depthLevels reads the bid and ask levels of a depth update message as the exchange's
// strings. Binance writes them without whitespace or escapes, which a direct scan reads;
// anything else goes through encoding/json.
func depthLevels(msg []byte) (bids, asks []level, err error) {
	d := bytes.Index(msg, []byte(`"data":`))
	if d >= 0 {
		data := msg[d:]
		var okB, okA bool
		bids, okB = scanLevels(data, `"b":[`)
		asks, okA = scanLevels(data, `"a":[`)
		if okB && okA {
			return bids, asks, nil
		}
	}
	var env struct {
		Data struct {
			B []level `json:"b"`
			A []level `json:"a"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msg, &env); err != nil {
		return nil, nil, fmt.Errorf("depth update levels: %w", err)
	}
	return env.Data.B, env.Data.A, nil
}

// scanLevels reads [["p","q"],...] after key (which includes the opening bracket).
func scanLevels(b []byte, key string) ([]level, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, false
	}
	b = b[i+len(key):]
	out := []level{}
	str := func() (string, bool) {
		if len(b) == 0 || b[0] != '"' {
			return "", false
		}
		j := bytes.IndexByte(b[1:], '"')
		if j < 0 || bytes.IndexByte(b[1:1+j], '\\') >= 0 {
			return "", false
		}
		s := string(b[1 : 1+j])
		b = b[2+j:]
		return s, true
	}
	for {
		if len(b) == 0 {
			return nil, false
		}
		if b[0] == ']' {
			return out, true
		}
		if len(out) > 0 {
			if b[0] != ',' {
				return nil, false
			}
			b = b[1:]
		}
		if len(b) == 0 || b[0] != '[' {
			return nil, false
		}
		b = b[1:]
		p, ok := str()
		if !ok || len(b) == 0 || b[0] != ',' {
			return nil, false
		}
		b = b[1:]
		q, ok := str()
		if !ok || len(b) == 0 || b[0] != ']' {
			return nil, false
		}
		b = b[1:]
		out = append(out, level{p, q})
	}
}
