package lifecycle

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/layout"
)

// TierStatus sums up the partitions one tier serves.
type TierStatus struct {
	Tier       string `json:"tier"`
	Partitions int    `json:"partitions"`
	// DiskBytes is what the partitions' local directories hold (for remote: the stubs and
	// the files kept beside them, meta.json, index/, derived/).
	DiskBytes int64 `json:"disk_bytes"`
	// BookBytes is the stored size of the books: book.q, book.q.zst, or the remote .zst
	// and .idx objects.
	BookBytes int64 `json:"book_bytes"`
	// LogicalBytes is the books' uncompressed size.
	LogicalBytes int64 `json:"logical_bytes"`
}

// Ratio is the compression ratio (logical / stored), 1 for plain tiers.
func (t TierStatus) Ratio() float64 {
	if t.BookBytes == 0 {
		return 0
	}
	return float64(t.LogicalBytes) / float64(t.BookBytes)
}

// Status is what `chronicle-tier status` prints.
type Status struct {
	Now   time.Time     `json:"now"`
	Tiers []TierStatus  `json:"tiers"`
	Plan  *Plan         `json:"plan"`
	Roots layout.Roots  `json:"roots"`
	Cfg   statusConfig  `json:"config"`
	Skips []statusError `json:"unreadable,omitempty"`
}

type statusConfig struct {
	ColdAfter   string `json:"cold_after"`
	RemoteAfter string `json:"remote_after"`
	HotToWarm   bool   `json:"hot_to_warm"`
	Derive      string `json:"derive"`
}

type statusError struct {
	Partition string `json:"partition"`
	Err       string `json:"error"`
}

// Status scans the tiers without changing anything.
func (m *Manager) Status(ctx context.Context) (*Status, error) {
	v, err := scan(m.fs, m.roots, true)
	if err != nil {
		return nil, err
	}
	now := m.now()
	st := &Status{Now: now, Roots: m.roots, Plan: m.plan(v, now),
		Cfg: statusConfig{ColdAfter: humanDuration(m.cfg.ColdAfter), RemoteAfter: humanDuration(m.cfg.RemoteAfter), HotToWarm: m.cfg.HotToWarm, Derive: m.cfg.Derive}}
	var ts [4]TierStatus
	for t := layout.Hot; t <= layout.Remote; t++ {
		ts[t].Tier = t.String()
	}
	for _, k := range v.keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := v.parts[k]
		cs := p.copies()
		if len(cs) == 0 {
			continue
		}
		c := cs[0]
		d := p.dirs[layout.Cold]
		if c.tier != layout.Remote {
			d = p.dirs[c.tier]
		}
		s := &ts[c.tier]
		s.Partitions++
		s.DiskBytes += d.bytes
		stored, logical, err := m.bookSizes(ctx, k, c)
		if err != nil {
			st.Skips = append(st.Skips, statusError{Partition: k.String(), Err: err.Error()})
			continue
		}
		s.BookBytes += stored
		s.LogicalBytes += logical
	}
	st.Tiers = ts[:]
	return st, nil
}

func (m *Manager) bookSizes(ctx context.Context, k layout.Key, c bookCopy) (stored, logical int64, err error) {
	switch c.kind {
	case kindPlain:
		h, size, err := m.readBookHeader(filepath.Join(c.dir, layout.BookName))
		if err != nil {
			return 0, 0, err
		}
		return size, int64(h.Committed), nil
	case kindZstd:
		_, idx, err := m.readIdx(filepath.Join(c.dir, layout.IdxName))
		if err != nil {
			return 0, 0, err
		}
		return idx.ZstSize, idx.Size, nil
	default:
		b, err := m.mv.readSmall(StubPath(c.dir), 1<<20)
		if err != nil {
			return 0, 0, err
		}
		s, err := stub.Parse(b, StubPath(c.dir))
		if err != nil {
			return 0, 0, err
		}
		return s.Zst.Size + s.Idx.Size, s.UncompressedSize, nil
	}
}

// WriteText prints the status as tables.
func (s *Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "now %s  (cold_after %s, remote_after %s, hot_to_warm %v, derive %q)\n\n",
		s.Now.UTC().Format(time.RFC3339), s.Cfg.ColdAfter, s.Cfg.RemoteAfter, s.Cfg.HotToWarm, s.Cfg.Derive)
	fmt.Fprintln(tw, "tier\tpartitions\tbook bytes\tlogical bytes\tratio\ton disk\t")
	for _, t := range s.Tiers {
		ratio := "-"
		if t.BookBytes > 0 {
			ratio = fmt.Sprintf("%.2fx", t.Ratio())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", t.Tier, t.Partitions, bytesize.Format(t.BookBytes), bytesize.Format(t.LogicalBytes), ratio, bytesize.Format(t.DiskBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	p := s.Plan
	fmt.Fprintf(w, "\npending moves: %d (%s)\n", len(p.Moves), bytesize.Format(p.Bytes))
	for _, mv := range p.Moves {
		fmt.Fprintf(w, "  %s\n", mv)
	}
	if len(p.Waiting) > 0 {
		fmt.Fprintf(w, "waiting: %d\n", len(p.Waiting))
		for _, wt := range p.Waiting {
			fmt.Fprintf(w, "  %-12s %s: %s\n", wt.Policy, wt.Key, wt.Why)
		}
	}
	if len(p.Kept) > 0 {
		fmt.Fprintf(w, "kept local, another host holds the key in the bucket: %d\n", len(p.Kept))
		for _, kp := range p.Kept {
			fmt.Fprintf(w, "  %s: held by %s; this host's version is under %s/ (since %s)\n", kp.Key, orUnknown(kp.Holder), kp.Slot, kp.Since.UTC().Format(time.RFC3339))
		}
	}
	if len(p.Problems) > 0 {
		fmt.Fprintf(w, "needing recovery (done at the start of the next apply or scan): %d\n", len(p.Problems))
		for _, pr := range p.Problems {
			fmt.Fprintf(w, "  %s: %s\n", pr.Key, pr.Why)
		}
	}
	for _, e := range s.Skips {
		fmt.Fprintf(w, "unreadable: %s: %s\n", e.Partition, e.Err)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unreadable claim"
	}
	return s
}

// WriteText prints a plan (apply --dry-run).
func (p *Plan) WriteText(w io.Writer) {
	fmt.Fprintf(w, "plan: %d moves, %s\n", len(p.Moves), bytesize.Format(p.Bytes))
	for _, mv := range p.Moves {
		fmt.Fprintf(w, "  %s\n", mv)
	}
	for _, wt := range p.Waiting {
		fmt.Fprintf(w, "  waiting %-12s %s: %s\n", wt.Policy, wt.Key, wt.Why)
	}
	for _, kp := range p.Kept {
		fmt.Fprintf(w, "  kept %s: held by %s, this host's version under %s/\n", kp.Key, orUnknown(kp.Holder), kp.Slot)
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(w, "  recovery %s: %s\n", pr.Key, pr.Why)
	}
}
