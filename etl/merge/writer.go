package merge

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/venue"
)

// maxSymbols: every symbol of the merged journal has a connection of its own (a slot and
// a generation parity), so that the loss of one symbol's book can be passed on without
// touching the others'. Channel ids give 127 slots of 2 parities.
const maxSymbols = 2 * journal.MaxSlots

// mergeSession is the merged journal's one feed session.
const mergeSession = 1

// journalWriter writes the merged journal: one segment, every symbol on a connection of
// its own, declared before the first frame.
type journalWriter struct {
	venue  string
	path   string
	a      *format.Appender
	syms   []string
	slots  map[string]*slot
	frames int64
	pos    atomic.Int64 // bytes of frames written
}

type slot struct {
	idx     int
	conn    uint16
	depth   uint16 // channel of the depth stream (0xFFFF: none)
	streams map[string]uint16
	info    []streamInfo
}

func newJournalWriter(dir, venueName string, syms []string, bySym map[string][]streamInfo) (*journalWriter, error) {
	w := &journalWriter{venue: venueName, syms: syms, slots: map[string]*slot{}}
	for i, sym := range syms {
		conn, err := journal.Channel(i%journal.MaxSlots, uint64(i/journal.MaxSlots), journal.ConnStream)
		if err != nil {
			return nil, err
		}
		sl := &slot{idx: i, conn: conn, depth: journal.ChannelFeed, streams: map[string]uint16{}, info: bySym[sym]}
		for k, st := range bySym[sym] {
			ch, err := journal.Channel(i%journal.MaxSlots, uint64(i/journal.MaxSlots), k)
			if err != nil {
				return nil, err
			}
			sl.streams[st.name] = ch
			if st.kind == venue.KindDepth {
				sl.depth = ch
			}
		}
		w.slots[sym] = sl
	}
	w.path = filepath.Join(dir, "segment.q") // named by begin
	return w, nil
}

// begin creates the segment, named and stamped by the inputs' earliest receive time (so
// the same inputs make the same file), and declares every symbol's connection.
func (w *journalWriter) begin(recv int64) error {
	start := time.Unix(0, recv).UTC().Truncate(time.Hour)
	w.path = filepath.Join(filepath.Dir(w.path), journal.SegmentName(1, start))
	h := format.NewJournalHeader(w.venue, "merge")
	h.CreatedNs = recv
	a, err := format.Create(w.path, h, format.Options{ChunkSize: 16 << 20, NoPrefault: true})
	if err != nil {
		return fmt.Errorf("merged journal: %w", err)
	}
	w.a = a
	for _, sym := range w.syms {
		sl := w.slots[sym]
		c := journal.Connect{Session: mergeSession, Slot: sl.idx % journal.MaxSlots, Gen: uint64(sl.idx / journal.MaxSlots),
			Channel: sl.conn, URL: "chronicle-etl merge"}
		for _, st := range sl.info {
			c.Streams = append(c.Streams, journal.StreamInfo{Channel: sl.streams[st.name], Stream: st.name, Symbol: sym, Kind: st.kind.String()})
		}
		if err := w.append(format.JournalConnect, sl.conn, recv, mustJSON(c)); err != nil {
			return err
		}
	}
	return nil
}

// committed is how much of the segment is written (safe from any goroutine, also once the
// segment is sealed and its mapping gone).
func (w *journalWriter) committed() int64 { return w.pos.Load() }

func (w *journalWriter) append(typ, ch uint16, recv int64, pl []byte) error {
	w.frames++
	if err := w.a.AppendJournal(typ, ch, recv, pl); err != nil {
		return fmt.Errorf("merged journal: %w", err)
	}
	w.pos.Add(format.JournalFrameLen(len(pl)))
	return nil
}

func (w *journalWriter) message(st *streamInfo, recv int64, pl []byte) error {
	return w.append(format.JournalMessage, w.slots[st.symbol].streams[st.name], recv, pl)
}

func (w *journalWriter) snapshot(sym string, recv int64, pl []byte) error {
	sl := w.slots[sym]
	if sl == nil || sl.depth == journal.ChannelFeed {
		return nil
	}
	return w.append(format.JournalRESTSnapshot, sl.depth, recv, pl)
}

func (w *journalWriter) badMessage(sym string, recv int64, pl []byte) error {
	sl := w.slots[sym]
	if sl == nil || sl.depth == journal.ChannelFeed {
		return nil
	}
	return w.append(format.JournalMessage, sl.depth, recv, pl)
}

func (w *journalWriter) gap(sym string, recv int64, pl []byte) error {
	sl := w.slots[sym]
	if sl == nil || sl.depth == journal.ChannelFeed {
		return nil
	}
	return w.append(format.JournalGap, sl.depth, recv, pl)
}

// disconnect ends the symbol's connection: the refinery drops its book until a snapshot.
func (w *journalWriter) disconnect(sym string, recv int64, reason string) error {
	sl := w.slots[sym]
	if sl == nil {
		return nil
	}
	d := journal.Disconnect{Session: mergeSession, Slot: sl.idx % journal.MaxSlots, Gen: uint64(sl.idx / journal.MaxSlots),
		Kind: journal.DisconnectError, Reason: reason}
	return w.append(format.JournalDisconnect, sl.conn, recv, mustJSON(d))
}

// finish seals the segment and returns its path.
func (w *journalWriter) finish() (string, error) {
	if err := w.a.Seal(); err != nil {
		return "", fmt.Errorf("merged journal: %w", err)
	}
	return w.path, nil
}

func (w *journalWriter) abort() {
	if w.a != nil {
		w.a.Close()
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
