package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
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

// Replay journals capture files through the same recorder as live capture: the files of
// one replay are one capture, read as one stream merged by receive time (a capture split
// at the recorder's midnight follows on; connections recorded side by side, as Kraken's
// book, trade and ticker logs, interleave), journaled as one pseudo-connection (Connect
// and Disconnect records around it); each message keeps its stream channel, and the
// venue's sequence rule marks gaps. A cryptofeed websocket log brings the REST log beside
// it (X.ws.txt + X.http.txt): depth snapshots, or the venue's reference data.
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
	if err := checkReplayFiles(opt.Files); err != nil {
		return stats, err
	}
	m := newMetrics(reg, v.Name())
	var j *Journal
	defer func() {
		if j != nil {
			j.Close()
		}
	}()
	streams, url, first, err := scanStreams(v, opt.Files)
	if err != nil {
		return stats, err
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
	src, err := capture.OpenMerged(opt.Files)
	if err != nil {
		return stats, fmt.Errorf("%w: %v", ErrReplay, err)
	}
	defer src.Close()
	stats.Files = len(opt.Files)
	pace := &replayPace{}
	n, snaps, err := replayRecords(ctx, rec, c, src, opt, streams, pace)
	stats.Messages, stats.Snapshots = n, snaps
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
	if err != nil {
		return stats, err
	}
	log.Info("replayed", "files", src.Files(), "messages", n, "snapshots", snaps)
	err = j.Close()
	j = nil
	return stats, err
}

// checkReplayFiles refuses a replay of REST logs alone: their websocket log pulls them in.
func checkReplayFiles(files []string) error {
	for _, path := range files {
		r, err := capture.Open(path)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrReplay, err)
		}
		f := r.Format()
		r.Close()
		if f != capture.FormatCryptofeedHTTP {
			return nil
		}
	}
	return fmt.Errorf("%w: %v are cryptofeed REST logs: replay their websocket logs (X.ws.*), which pull them in", ErrReplay, files)
}

// scanStreams lists the capture's streams in order of appearance, its websocket URL if
// it has one, and its first receive time.
func scanStreams(v venue.Venue, files []string) ([]venue.Stream, string, int64, error) {
	src, err := capture.OpenMerged(files)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%w: %v", ErrReplay, err)
	}
	defer src.Close()
	var streams []venue.Stream
	seen := map[string]bool{}
	var url string
	var first int64
	var key []byte
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			return streams, url, first, nil
		}
		if err != nil {
			return nil, "", 0, fmt.Errorf("%w: %v", ErrReplay, err)
		}
		if first == 0 {
			first = r.RecvNs
		}
		switch r.Kind {
		case capture.KindConnect:
			if url == "" {
				url = r.URL
			}
		case capture.KindMessage:
			ev, err := v.Parse(r.Payload)
			if err != nil || ev.Kind == venue.KindControl {
				continue
			}
			key = ev.Key(key[:0])
			if seen[string(key)] {
				continue
			}
			name := string(key)
			seen[name] = true
			streams = append(streams, venue.Stream{Name: name, Symbol: v.Symbol(name), Kind: ev.Kind,
				NoID: ev.Kind != venue.KindDepth && ev.ID == 0})
		}
	}
}

// replayPace keeps one clock across the files of a replay.
type replayPace struct {
	started bool
	t0      int64
	w0      time.Time
}

func replayRecords(ctx context.Context, rec *Recorder, c *wsConn, src *capture.Merged, opt ReplayOptions, streams []venue.Stream, pace *replayPace) (msgs, snaps int64, err error) {
	var depthSyms []string
	for _, s := range streams {
		if s.Kind == venue.KindDepth {
			depthSyms = append(depthSyms, s.Symbol)
		}
	}
	_, referenced := rec.v.(venue.Referencer)
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			return msgs, snaps, nil
		}
		if err != nil {
			return msgs, snaps, fmt.Errorf("%w: %v", ErrReplay, err)
		}
		if r.Kind == capture.KindConnect || r.Kind == capture.KindSent {
			continue // the journal keeps what was received
		}
		if ctx.Err() != nil {
			return msgs, snaps, ctx.Err()
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
				return msgs, snaps, ctx.Err()
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
			if referenced {
				// The venue's REST log is its reference data (instruments, asset pairs).
				if _, err := rec.reference(ts, r.Payload); err != nil {
					rec.log.Warn("reference data in the capture is unreadable", "file", r.File, "line", r.Line, "err", err)
				}
				snaps++
				continue
			}
			sym := r.Symbol
			if sym == "" {
				sym = opt.Symbol
			}
			if sym == "" && len(depthSyms) == 1 {
				sym = depthSyms[0]
			}
			if sym == "" {
				return msgs, snaps, fmt.Errorf("%w: %s line %d: snapshot of an unknown symbol (use --symbol)", ErrReplay, r.File, r.Line)
			}
			rec.replaySnapshot(sym, r.URL, ts, r.Payload)
			snaps++
		}
	}
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
