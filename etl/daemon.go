package etl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
)

// TableWatcher keeps the dim_symbol table current: it reloads the file when its size or
// modification time changes, and keeps the old table (with a log line and a metric) when
// the new one does not load.
type TableWatcher struct {
	path  string
	cur   atomic.Pointer[symbols.Table]
	stamp string
	log   *slog.Logger
	m     *Metrics
}

// NewTableWatcher loads the table (the embedded default when path is empty).
func NewTableWatcher(path string, log *slog.Logger, m *Metrics) (*TableWatcher, error) {
	t, err := symbols.Load(path)
	if err != nil {
		return nil, err
	}
	w := &TableWatcher{path: path, log: log, m: m, stamp: fileStamp(path)}
	w.cur.Store(t)
	return w, nil
}

func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
}

// Table returns the table in force.
func (w *TableWatcher) Table() *symbols.Table { return w.cur.Load() }

// Check reloads the table if its file changed; it reports whether a new table is in force.
func (w *TableWatcher) Check() bool {
	if w.path == "" {
		return false
	}
	s := fileStamp(w.path)
	if s == w.stamp {
		return false
	}
	w.stamp = s
	t, err := symbols.Load(w.path)
	if err != nil {
		w.log.Error("dim_symbol reload failed; keeping the table in force", "path", w.path, "err", err)
		if w.m != nil {
			w.m.tableReloads.WithLabelValues("", "error").Inc()
		}
		return false
	}
	w.cur.Store(t)
	w.log.Info("dim_symbol reloaded", "path", w.path, "rows", len(t.Rows()), "sha256", t.Hash())
	if w.m != nil {
		w.m.tableReloads.WithLabelValues("", "ok").Inc()
	}
	return true
}

// Watch checks the file every interval until ctx ends.
func (w *TableWatcher) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 || w.path == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Journals lists the venue journal directories below a feed directory ({hot}/feed): each
// subdirectory holding segments, or the directory itself if it holds segments.
func Journals(dir string) ([]string, error) {
	if segs, err := journal.List(dir); err == nil && len(segs) > 0 {
		return []string{dir}, nil
	} else if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		if segs, err := journal.List(sub); err == nil && len(segs) > 0 {
			out = append(out, sub)
		}
	}
	return out, nil
}

// DaemonOptions configure chronicle-etl run.
type DaemonOptions struct {
	Config  Config
	HotRoot string // journals are {HotRoot}/feed/{venue}
	Root    string // output tier root
	Log     *slog.Logger
	Metrics *Metrics
	Table   *TableWatcher
	// Ready, if set, is called once every venue journal found at start has taken over its
	// checkpoint: from then on a stop closes (trims) the partitions it reopened.
	Ready func()
	// Host is recorded in every meta.json (Options.Host).
	Host *meta.Host
}

// RunDaemon refines every configured venue journal (or every one that appears under
// {hot}/feed) until ctx ends, one goroutine each; a venue whose refinery fails is logged
// and retried after a pause, so one bad journal does not stop the others.
func RunDaemon(ctx context.Context, o DaemonOptions) error {
	if err := o.Config.Validate(); err != nil {
		return err
	}
	feedDir := filepath.Join(o.HotRoot, "feed")
	go o.Table.Watch(ctx, o.Config.DimReload)
	var wg, first sync.WaitGroup // first: the venues found at start, until they resumed
	started := map[string]bool{}
	start := func(dir string, resumed func()) {
		if started[dir] {
			return
		}
		started[dir] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resumed() // also when ctx ended before a run began
			var lastLog time.Time
			lastReason := ""
			for ctx.Err() == nil {
				st, err := Refine(ctx, Options{Config: o.Config, Root: o.Root, JournalDir: dir, Follow: true, Host: o.Host,
					PublishCheckpoint: true, Table: o.Table.Table, Log: o.Log, Metrics: o.Metrics, Listener: onResumed{f: resumed}})
				if err == nil {
					o.Log.Info("refinery stopped", "journal", dir, "frames", st.Frames)
					return
				}
				// A full output device: the run stopped before anything half-written became
				// visible (committed lengths, temporary files); start again from the
				// checkpoint as soon as there may be room, so output resumes within a
				// fraction of a second of space returning.
				pause, reason := 5*time.Second, "other"
				if errors.Is(err, syscall.ENOSPC) {
					pause, reason = 250*time.Millisecond, "device_full"
				}
				if o.Metrics != nil {
					o.Metrics.failures.WithLabelValues(filepath.Base(dir), reason).Inc()
				}
				if reason != lastReason || time.Since(lastLog) >= 10*time.Second {
					o.Log.Error("refinery failed; starting again from the checkpoint", "journal", dir, "reason", reason, "retry_in", pause.String(), "err", err)
					lastLog, lastReason = time.Now(), reason
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	readied := false
	for {
		var dirs []string
		if len(o.Config.Venues) > 0 {
			for _, v := range o.Config.Venues {
				dirs = append(dirs, journal.Dir(o.HotRoot, v))
			}
		} else if ents, err := os.ReadDir(feedDir); err == nil {
			for _, e := range ents {
				if e.IsDir() && e.Name()[0] != '.' {
					dirs = append(dirs, filepath.Join(feedDir, e.Name()))
				}
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		sort.Strings(dirs)
		for _, d := range dirs {
			resumed := func() {}
			if !readied {
				first.Add(1)
				resumed = sync.OnceFunc(first.Done)
			}
			start(d, resumed)
		}
		if !readied {
			readied = true
			go func() {
				first.Wait()
				if o.Ready != nil && ctx.Err() == nil {
					o.Ready()
				}
			}()
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// VenueStatus is what chronicle-etl status reports of one venue.
type VenueStatus struct {
	Venue      string          `json:"venue"`
	State      string          `json:"state"`
	Segment    string          `json:"segment"`
	Offset     int64           `json:"offset"`
	Updated    time.Time       `json:"updated"`
	LagBytes   int64           `json:"lag_bytes"` // journal bytes committed past the checkpoint
	Clock      time.Time       `json:"exchange_clock"`
	Partitions []PartitionInfo `json:"open_partitions"`
}

// PartitionInfo is one open partition.
type PartitionInfo struct {
	Path         string `json:"path"`
	Records      int64  `json:"records"`
	DepthUpdates int64  `json:"depth_updates"`
	Trades       int64  `json:"trades"`
	Invalid      int    `json:"invalid_intervals"`
}

// Status reads the checkpoints in an output root; with the hot root (where the journals
// are) it also measures how far each venue lags.
func Status(root, hotRoot string) ([]VenueStatus, error) {
	ents, err := os.ReadDir(filepath.Join(root, StateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []VenueStatus
	for _, e := range ents {
		name := e.Name()
		if filepath.Ext(name) != ".state" || name[0] == '.' {
			continue
		}
		p := filepath.Join(root, StateDir, name)
		st, ok, err := ReadState(p)
		if err != nil || !ok {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		vs := VenueStatus{Venue: st.Venue, State: p, Segment: st.Segment, Offset: st.Offset,
			Updated: time.Unix(0, st.UpdatedNs).UTC(), Clock: time.Unix(0, st.Clock).UTC()}
		if hotRoot != "" {
			vs.LagBytes = lag(journal.Dir(hotRoot, st.Venue), st)
		}
		for _, sp := range st.Parts {
			vs.Partitions = append(vs.Partitions, PartitionInfo{Path: filepath.Join(root, sp.Dir),
				Records: (sp.Pos - format.HeaderSize) / format.BookRecordSize, DepthUpdates: sp.Stats.DepthUpdates,
				Trades: sp.Stats.Trades, Invalid: len(sp.Stats.Invalid)})
		}
		out = append(out, vs)
	}
	return out, nil
}

// lag is how many committed journal bytes lie past the checkpoint.
func lag(dir string, st *State) int64 {
	segs, err := journal.List(dir)
	if err != nil {
		return -1
	}
	cur, err := journal.ParseSegmentName(st.Segment)
	if err != nil {
		return -1
	}
	var n int64
	for _, sg := range segs {
		if sg.Seq < cur.Seq {
			continue
		}
		h, err := format.ReadHeaderFile(filepath.Join(dir, sg.Name))
		if err != nil {
			continue
		}
		n += int64(h.Committed) - int64(h.HeaderSize)
		if sg.Seq == cur.Seq {
			n -= st.Offset - int64(h.HeaderSize)
		}
	}
	return n
}

// onResumed is a Listener that hears only Resumed.
type onResumed struct {
	NopListener
	f func()
}

func (l onResumed) Resumed() { l.f() }
