package etl

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/capture"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/kraken"
	"github.com/chronicle/chronicle/venue/okx"
)

// The OKX and Kraken captures, journaled as chronicle-feed's replay journals them: the
// REST log as reference records, control messages on the connection's channel, data
// messages on their stream's channel, one connection, merged by receive time.
var subscribedCaptures = []struct {
	name, venue string
	files       []string
}{
	{"okx", okx.Name, []string{"cryptofeed_okx.ws.txt"}},
	{"kraken", kraken.Name, []string{"cryptofeed_kraken-book.ws.txt", "cryptofeed_kraken-trade.ws.txt", "cryptofeed_kraken-ticker.ws.txt"}},
}

// subscribedJournal writes a capture's journal; edit, when set, may change the payload of
// data message i (counted from 0 in merged order) before it is journaled.
func subscribedJournal(t *testing.T, venueName string, files []string, edit func(i int, payload []byte) []byte) (*jb, []capture.Record) {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(testenv.CapturesDir(), f))
	}
	recs, err := capture.ReadMerged(paths)
	if err != nil {
		t.Fatal(err)
	}
	v, err := venue.Lookup(venueName)
	if err != nil {
		t.Fatal(err)
	}
	j := newJournal(t, venueName, time.Unix(0, recs[0].RecvNs))
	// The streams in order of appearance, on one connection.
	var streams []string
	seen := map[string]bool{}
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		if ev, err := v.Parse(r.Payload); err == nil && ev.Kind != venue.KindControl && !seen[string(ev.Key(nil))] {
			seen[string(ev.Key(nil))] = true
			streams = append(streams, string(ev.Key(nil)))
		}
	}
	j.gen++
	conn, _ := journal.Channel(0, j.gen, journal.ConnStream)
	j.conn = conn
	c := journal.Connect{Session: 1, Gen: j.gen, Channel: conn, URL: "replay:"}
	for i, s := range streams {
		ch, _ := journal.Channel(0, j.gen, i)
		j.chans[s] = ch
		ev, _ := v.Parse(recsPayload(recs, v, s))
		c.Streams = append(c.Streams, journal.StreamInfo{Channel: ch, Stream: s, Symbol: v.Symbol(s), Kind: ev.Kind.String()})
	}
	b, _ := json.Marshal(c)
	j.appendAt(recs[0].RecvNs, format.JournalConnect, conn, b)
	n := 0
	for _, r := range recs {
		switch r.Kind {
		case capture.KindSnapshot:
			j.appendAt(r.RecvNs, format.JournalReference, journal.ChannelFeed, r.Payload)
		case capture.KindMessage:
			ev, err := v.Parse(r.Payload)
			if err != nil || ev.Kind == venue.KindControl {
				j.appendAt(r.RecvNs, format.JournalMessage, conn, r.Payload)
				continue
			}
			p := r.Payload
			if edit != nil {
				p = edit(n, p)
			}
			n++
			j.appendAt(r.RecvNs, format.JournalMessage, j.chans[string(ev.Key(nil))], p)
		}
	}
	b, _ = json.Marshal(journal.Disconnect{Gen: j.gen, Kind: journal.DisconnectShutdown, Reason: "end of capture"})
	j.appendAt(recs[len(recs)-1].RecvNs, format.JournalDisconnect, conn, b)
	j.close()
	return j, recs
}

func recsPayload(recs []capture.Record, v venue.Venue, key string) []byte {
	for _, r := range recs {
		if ev, err := v.Parse(r.Payload); err == nil && string(ev.Key(nil)) == key {
			return r.Payload
		}
	}
	return nil
}

// appendAt journals a record at a given receive time.
func (j *jb) appendAt(recv int64, typ, ch uint16, payload []byte) {
	j.t.Helper()
	j.recv = recv
	if err := j.a.AppendJournal(typ, ch, recv, payload); err != nil {
		j.t.Fatal(err)
	}
}

// TestSubscribedCaptures refines the OKX and Kraken captures: in every partition the
// checksums checked are the book messages that carried one (290 OKX, 4,269 Kraken in
// all) with no mismatch, the depth updates, trades and tickers are those encoding/json
// counts in the capture, every snapshot run restates the book the records before it
// built (Kraken's depth kept with deletes), and the records are at the instrument's scale.
func TestSubscribedCaptures(t *testing.T) {
	for _, c := range subscribedCaptures {
		t.Run(c.name, func(t *testing.T) {
			j, recs := subscribedJournal(t, c.venue, c.files, nil)
			want := kit.Count(c.venue, recs)
			root := t.TempDir()
			// A short snapshot interval: runs inside the capture's half minute to check.
			refine(t, j, root, func(cfg *Config) { cfg.SnapshotInterval = 5 * time.Second }, nil)
			dirs, _ := filepath.Glob(filepath.Join(root, "v1", c.venue, "*", "*"))
			if len(dirs) != len(want) {
				t.Fatalf("%d partitions, %d instruments in the capture", len(dirs), len(want))
			}
			var checks int64
			for _, dir := range dirs {
				m := readMeta(t, dir)
				raw := m.SymbolVersions[0].RawSymbol
				w := want[raw]
				if m.Checks.ChecksumChecks == nil || *m.Checks.ChecksumChecks != w.Checks || *m.Checks.ChecksumMismatches != 0 {
					t.Errorf("%s: checksum checks %v mismatches %v, want %d and 0", raw, m.Checks.ChecksumChecks, m.Checks.ChecksumMismatches, w.Checks)
				}
				if m.Events.DepthUpdates != w.Updates || m.Events.Trades != w.Trades || m.Events.BBO != w.Tickers {
					t.Errorf("%s: events %+v, want %d updates, %d trades, %d tickers", raw, m.Events, w.Updates, w.Trades, w.Tickers)
				}
				h, recs := readBook(t, filepath.Join(dir, "book.q"))
				if h.PriceDecimals != m.PriceDecimals || h.QtyDecimals != m.QtyDecimals || m.Instrument.TickSize == "" {
					t.Errorf("%s: header scales %d/%d, meta %d/%d, instrument %+v", raw, h.PriceDecimals, h.QtyDecimals, m.PriceDecimals, m.QtyDecimals, m.Instrument)
				}
				if n := checkRuns(t, recs); n == 0 {
					t.Errorf("%s: no snapshot run compared with the replay of its records", raw)
				}
				checks += *m.Checks.ChecksumChecks
			}
			if total := map[string]int64{"okx": 290, "kraken": 4269}[c.name]; checks != total {
				t.Fatalf("%d checksums checked, want %d", checks, total)
			}
		})
	}
}

// TestCorruptedUpdate changes one size in one book update of each capture: the checksum
// catches it at that very update (a book_invalid record, reason checksum, right after the
// update's level records, carrying the exchange's checksum and the book's), the book is
// invalid from then on (the capture sends no new snapshot), and no later update of that
// book is checked.
func TestCorruptedUpdate(t *testing.T) {
	for _, c := range subscribedCaptures {
		t.Run(c.name, func(t *testing.T) {
			v, _ := venue.Lookup(c.venue)
			const nth = 40 // from the 40th book update of the first book on, the first that is not a delete
			target, count, edited := "", 0, -1
			var key string
			j, _ := subscribedJournal(t, c.venue, c.files, func(i int, p []byte) []byte {
				ev, err := v.Parse(p)
				if err != nil || ev.Kind != venue.KindDepth || ev.Snapshot {
					return p
				}
				if target == "" {
					target = string(ev.Inst)
				}
				if string(ev.Inst) != target || edited >= 0 {
					return p
				}
				if count++; count < nth {
					return p
				}
				q, ok := corruptSize(p)
				if !ok {
					return p
				}
				edited, key = i, string(ev.Key(nil))
				return q
			})
			if edited < 0 {
				t.Fatal("no update edited")
			}
			root := t.TempDir()
			refine(t, j, root, nil, nil)
			var dir string
			dirs, _ := filepath.Glob(filepath.Join(root, "v1", c.venue, "*", "*"))
			for _, d := range dirs {
				if readMeta(t, d).SymbolVersions[0].RawSymbol == target {
					dir = d
				}
			}
			m := readMeta(t, dir)
			wantChecks := int64(count) // the updates up to the edited one...
			if c.venue == okx.Name {
				wantChecks++ // ...and OKX's snapshot, which carries a checksum too
			}
			if *m.Checks.ChecksumMismatches != 1 || *m.Checks.ChecksumChecks != wantChecks {
				t.Fatalf("%s: %d checks, %d mismatches; want %d checks and 1 mismatch",
					key, *m.Checks.ChecksumChecks, *m.Checks.ChecksumMismatches, wantChecks)
			}
			last := m.Completeness.Invalid[len(m.Completeness.Invalid)-1]
			if last.Reason != "checksum" || m.Completeness.Complete {
				t.Fatalf("%s: invalid intervals %+v", key, m.Completeness.Invalid)
			}
			_, recs := readBook(t, filepath.Join(dir, "book.q"))
			updates := 0
			for i, r := range recs {
				if r.TypeID == format.TypeLevel && r.Flags&(format.FlagSnapshot|format.FlagLast) == format.FlagLast {
					updates++
					if updates == count {
						bi := recs[i+1]
						if bi.TypeID != format.TypeBookInvalid || bi.Qty != format.InvalidChecksum || bi.ExchTs != r.ExchTs ||
							bi.Aux0 != r.Aux0 || r.Flags&format.FlagChecksum == 0 || bi.Aux1 == bi.Aux0 || last.From.Ns() != r.ExchTs {
							t.Fatalf("%s: update %d %+v is followed by %+v; interval %+v", key, nth, r, bi, last)
						}
						return
					}
				}
			}
			t.Fatalf("%s: only %d updates", key, updates)
		})
	}
}

// corruptSize changes the last digit of the first level's size in a book message.
func corruptSize(p []byte) ([]byte, bool) {
	i := bytes.Index(p, []byte(`[["`))
	if i < 0 {
		return nil, false
	}
	j := bytes.IndexByte(p[i+3:], '"') + i + 3 // the price's closing quote
	if j+2 >= len(p) || p[j+1] != ',' || p[j+2] != '"' {
		return nil, false
	}
	k := bytes.IndexByte(p[j+3:], '"') + j + 3 // the size's closing quote
	q := bytes.Clone(p)
	d := q[k-1]
	switch {
	case d >= '1' && d < '9':
		q[k-1] = d + 1
	case d == '9':
		q[k-1] = '8'
	default:
		return nil, false // keep deletes deletes
	}
	return q, true
}

// TestBadBookMessage: a book update that cannot be decoded makes the book invalid with
// reason bad_message, never a panic; the rest of the capture refines.
func TestBadBookMessage(t *testing.T) {
	c := subscribedCaptures[0]
	v, _ := venue.Lookup(c.venue)
	done := false
	j, _ := subscribedJournal(t, c.venue, c.files, func(i int, p []byte) []byte {
		if ev, err := v.Parse(p); done || err != nil || ev.Kind != venue.KindDepth || ev.Snapshot || string(ev.Inst) != "BTC-USDT" {
			return p
		}
		done = true
		return bytes.Replace(p, []byte(`"asks":[[`), []byte(`"asks":[[1,`), 1)
	})
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	m := readMeta(t, filepath.Join(root, "v1", c.venue, "btc-usdt", "2022-05-13"))
	found := false
	for _, iv := range m.Completeness.Invalid {
		found = found || iv.Reason == "bad_message"
	}
	if !found || *m.Checks.ChecksumMismatches != 0 {
		t.Fatalf("invalid %+v, mismatches %d", m.Completeness.Invalid, *m.Checks.ChecksumMismatches)
	}
	if _, err := os.Stat(filepath.Join(root, "v1", c.venue, "uni-usd-swap", "2022-05-13", "book.q")); err != nil {
		t.Fatal(err)
	}
}
