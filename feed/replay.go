package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/feed/journal"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
)

// ReplayOptions configure a replay.
type ReplayOptions struct {
	Files []string
	// Speed scales the capture's pacing: 1 = original pace, 10 = ten times faster,
	// 0 = as fast as possible.
	Speed float64
	// Clock "capture" (default) journals each record with its recorded receive time (a
	// backfill); "now" with the time it is journaled (a live demo).
	Clock string
	// Symbol names the symbol of REST snapshots whose capture does not say it (needed
	// only when a capture has depth streams of several symbols).
	Symbol string
}

// ReplayStats count what a replay journaled.
type ReplayStats struct {
	Files     int
	Messages  int64
	Snapshots int64
}

// ErrReplay: a capture could not be replayed.
var ErrReplay = errors.New("replay failed")

// CheckReplayOptions checks the pace and clock of a replay (not its files).
func CheckReplayOptions(opt ReplayOptions) error {
	switch opt.Clock {
	case "", "capture", "now":
	default:
		return fmt.Errorf("%w: clock %q (want capture or now)", ErrReplay, opt.Clock)
	}
	if opt.Speed < 0 {
		return fmt.Errorf("%w: negative speed", ErrReplay)
	}
	return nil
}

// Replay journals capture files through the same recorder as live capture: each file is
// one pseudo-connection (Connect and Disconnect records around it), each message keeps
// its stream channel, and the venue's sequence rule marks gaps. A cryptofeed websocket
// log is merged with the REST log beside it (X.ws.txt + X.http.txt).
func Replay(ctx context.Context, cfg Config, opt ReplayOptions, log *slog.Logger, reg prometheus.Registerer) (ReplayStats, error) {
	var stats ReplayStats
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(opt.Files) == 0 {
		return stats, fmt.Errorf("%w: no capture files", ErrReplay)
	}
	if err := CheckReplayOptions(opt); err != nil {
		return stats, err
	}
	v, err := LookupVenue(cfg.Venue)
	if err != nil {
		return stats, err
	}
	m := newMetrics(reg, v.Name())
	var j *Journal
	defer func() {
		if j != nil {
			j.Close()
		}
	}()
	// Every file given to one replay is one stream, in order: one pseudo-connection spans
	// them all (a capture split into files by the recorder continues its depth chain from
	// file to file without a new snapshot).
	srcs := make([]*replaySource, len(opt.Files))
	var streams []venue.Stream
	seen := map[string]bool{}
	var url string
	var first int64
	for i, path := range opt.Files {
		src, err := openReplaySource(path)
		if err != nil {
			return stats, err
		}
		srcs[i] = src
		st, u, f, err := scanStreams(v, src)
		if err != nil {
			return stats, err
		}
		for _, s := range st {
			if !seen[s.Name] {
				seen[s.Name] = true
				streams = append(streams, s)
			}
		}
		if url == "" {
			url = u
		}
		if first == 0 {
			first = f
		}
	}
	if len(streams) > journal.MaxStreamsPerSlot {
		return stats, fmt.Errorf("%w: %d streams in %v, at most %d per replay", ErrReplay, len(streams), opt.Files, journal.MaxStreamsPerSlot)
	}
	if url == "" {
		abs, _ := filepath.Abs(opt.Files[0])
		url = "replay:" + abs
	}
	now := time.Now().UnixNano()
	if opt.Clock != "now" && first > 0 {
		now = first
	}
	j, err = OpenJournal(JournalOptions{Dir: cfg.Dir(), Venue: v.Name(), Period: cfg.RollPeriod,
		ChunkSize: cfg.ChunkSize, MaxSize: cfg.MaxSegmentSize}, now, log, m)
	if err != nil {
		return stats, err
	}
	registerJournalGauges(reg, v.Name(), j)
	sl := newSlot(0, venue.Connection{URL: url, Streams: streams})
	rec := newRecorder(v, j, m, log, time.Now().UnixNano(), []*slotState{sl})
	rec.host = cfg.Host
	c, err := newWSConn(sl, 0, url)
	if err != nil {
		return stats, err
	}
	c.replay = true
	pace := newReplayPace(opt)
	for i, src := range srcs {
		n, s, err := replayFile(ctx, rec, c, src, opt, streams, pace)
		stats.Messages += n
		stats.Snapshots += s
		stats.Files++
		if err != nil || i == len(srcs)-1 {
			end := time.Now().UnixNano()
			if opt.Clock != "now" && c.lastNs > 0 {
				end = c.lastNs
			}
			reason := "end of capture"
			if err != nil {
				reason = err.Error()
			}
			if !pace.started {
				rec.attach(c, nil, end)
			}
			rec.detach(c, journal.DisconnectShutdown, reason, end)
		}
		if err != nil {
			return stats, err
		}
		log.Info("replayed", "file", src.path, "messages", n, "snapshots", s)
	}
	err = j.Close()
	j = nil
	return stats, err
}

// replaySource yields a capture's records in receive order.
type replaySource struct {
	path    string
	records []capture.Record // in memory (cryptofeed pairs), or nil to stream the file
}

func openReplaySource(path string) (*replaySource, error) {
	r, err := capture.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReplay, err)
	}
	f := r.Format()
	r.Close()
	src := &replaySource{path: path}
	switch f {
	case capture.FormatCryptofeedWS:
		ws, err := capture.ReadAll(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrReplay, err)
		}
		var http []capture.Record
		if hp := capture.PairedHTTP(path); hp != "" {
			if http, err = capture.ReadAll(hp); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrReplay, err)
			}
		}
		src.records = capture.Merge(ws, http)
	case capture.FormatCryptofeedHTTP:
		return nil, fmt.Errorf("%w: %s is a cryptofeed REST log: replay its websocket log (X.ws.*), which pulls it in", ErrReplay, path)
	}
	return src, nil
}

// each calls fn for every record; payloads are valid during the call only.
func (s *replaySource) each(fn func(capture.Record) error) error {
	if s.records != nil {
		for _, r := range s.records {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	r, err := capture.Open(s.path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrReplay, err)
	}
	defer r.Close()
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrReplay, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// scanStreams lists the capture's streams in order of appearance, its websocket URL if
// it has one, and its first receive time.
func scanStreams(v venue.Venue, src *replaySource) ([]venue.Stream, string, int64, error) {
	var streams []venue.Stream
	seen := map[string]bool{}
	var url string
	var first int64
	err := src.each(func(r capture.Record) error {
		if first == 0 {
			first = r.RecvNs
		}
		switch r.Kind {
		case capture.KindConnect:
			url = r.URL
		case capture.KindMessage:
			ev, err := v.Parse(r.Payload)
			if err != nil || seen[string(ev.Stream)] {
				return nil
			}
			name := string(ev.Stream)
			seen[name] = true
			sym, _, _ := strings.Cut(name, "@")
			streams = append(streams, venue.Stream{Name: name, Symbol: strings.ToUpper(sym), Kind: ev.Kind})
		}
		return nil
	})
	return streams, url, first, err
}

// replayPace keeps one clock across the files of a replay.
type replayPace struct {
	started bool
	t0      int64
	w0      time.Time
}

func newReplayPace(ReplayOptions) *replayPace { return &replayPace{} }

func replayFile(ctx context.Context, rec *Recorder, c *wsConn, src *replaySource, opt ReplayOptions, streams []venue.Stream, pace *replayPace) (msgs, snaps int64, err error) {
	var depthSyms []string
	for _, s := range streams {
		if s.Kind == venue.KindDepth {
			depthSyms = append(depthSyms, s.Symbol)
		}
	}
	err = src.each(func(r capture.Record) error {
		if r.Kind == capture.KindConnect {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !pace.started {
			pace.started, pace.t0, pace.w0 = true, r.RecvNs, time.Now()
			ts := r.RecvNs
			if opt.Clock == "now" {
				ts = pace.w0.UnixNano()
			}
			rec.attach(c, nil, ts)
		}
		if opt.Speed > 0 {
			due := pace.w0.Add(time.Duration(float64(r.RecvNs-pace.t0) / opt.Speed))
			if d := time.Until(due); d > 0 && !sleepCtx(ctx, d) {
				return ctx.Err()
			}
		}
		ts := r.RecvNs
		if opt.Clock == "now" {
			ts = time.Now().UnixNano()
		}
		c.lastNs = ts
		switch r.Kind {
		case capture.KindMessage:
			c.msgs.Add(1)
			rec.onMessage(c, ts, r.Payload, false)
			msgs++
		case capture.KindSnapshot:
			sym := r.Symbol
			if sym == "" {
				sym = opt.Symbol
			}
			if sym == "" && len(depthSyms) == 1 {
				sym = depthSyms[0]
			}
			if sym == "" {
				return fmt.Errorf("%w: %s line %d: snapshot of an unknown symbol (use --symbol)", ErrReplay, src.path, r.Line)
			}
			rec.replaySnapshot(sym, r.URL, ts, r.Payload)
			snaps++
		}
		return nil
	})
	return msgs, snaps, err
}

// replaySnapshot journals a recorded REST snapshot as its request and response.
func (r *Recorder) replaySnapshot(symbol, url string, recvNs int64, body []byte) {
	req := journal.SnapshotRequest{Symbol: symbol, URL: url, Reason: journal.SnapshotReplay}
	ch, ok := r.snapshotRequest(req, recvNs)
	if !ok {
		// No depth stream for the symbol in this capture: keep the body on the
		// connection channel so nothing recorded is lost.
		c := r.slots[0].active
		r.j.Append(format.JournalSnapshotRequest, c.connCh, recvNs, mustJSON(req))
		r.j.Append(format.JournalRESTSnapshot, c.connCh, recvNs, body)
		return
	}
	snap, err := r.v.ParseSnapshot(body)
	r.snapshotResponse(symbol, ch, recvNs, body, snap, err == nil)
}
