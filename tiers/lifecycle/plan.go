package lifecycle

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/bytesize"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
)

// Policy is one step of a partition's life.
type Policy uint8

const (
	// HotToWarm copies a sealed hot book.q (and its files) to warm, then removes it from hot.
	HotToWarm Policy = iota
	// WarmToCold transcodes an aged warm book.q to book.q.zst + .idx in cold, verifies the
	// decoded bytes against the source, then removes the warm copy. A plain book.q found in
	// the cold root is compressed in place the same way.
	WarmToCold
	// ColdToRemote uploads an aged cold .zst and .idx, verifies them, writes the stub, then
	// removes the local .zst and .idx.
	ColdToRemote
	// Publish uploads the files that travel with a remote partition's book and the stub's
	// copy to the bucket, for partitions uploaded before the bucket held them (stub version 1).
	Publish
	numPolicies
)

var policyNames = [...]string{"hot->warm", "warm->cold", "cold->remote", "publish"}

func (p Policy) String() string {
	if p < numPolicies {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// label is the policy's metric label (no '>').
func (p Policy) label() string {
	switch p {
	case HotToWarm:
		return "hot_to_warm"
	case WarmToCold:
		return "warm_to_cold"
	case ColdToRemote:
		return "cold_to_remote"
	case Publish:
		return "publish"
	}
	return "unknown"
}

// Move is one planned step.
type Move struct {
	Key    layout.Key
	Policy Policy
	From   layout.Tier
	To     layout.Tier
	Bytes  int64 // source book size
	Reason string
}

func (m Move) String() string {
	s := fmt.Sprintf("%-12s %s (%s", m.Policy, m.Key, bytesize.Format(m.Bytes))
	if m.From == m.To {
		s += ", in place"
	}
	return s + ", " + m.Reason + ")"
}

// Wait is a partition a policy applies to that cannot move yet.
type Wait struct {
	Key    layout.Key
	Policy Policy
	Why    string
}

// Problem is a partition state that recovery handles (or an operator must).
type Problem struct {
	Key layout.Key
	Why string
}

// Kept is a cold partition kept local because another host holds its key in the bucket
// (its book.q.zst.collision.json): this host's version is in the bucket under Slot.
type Kept struct {
	Key    layout.Key
	Holder string // the host holding the key ("" when unreadable)
	Slot   string // where this host's version went: hosts/{id}
	Since  time.Time
}

// Plan is what one scan found to do.
type Plan struct {
	Moves    []Move
	Waiting  []Wait
	Problems []Problem
	Kept     []Kept
	Bytes    int64 // sum of Moves' Bytes
}

// endOfDay is when partition k can hold no newer data: the end of its UTC day.
func endOfDay(k layout.Key) time.Time {
	t, _ := k.Time()
	return t.Add(24 * time.Hour)
}

// plan decides the moves for one scan.
func (m *Manager) plan(v *view, now time.Time) *Plan {
	p := &Plan{}
	seen := map[layout.Key]settling{}
	defer func() {
		m.mu.Lock()
		m.settling = seen // books no longer waiting are forgotten
		m.mu.Unlock()
	}()
	for _, k := range v.keys {
		part := v.parts[k]
		cs := part.copies()
		switch {
		case len(cs) == 0:
			p.Problems = append(p.Problems, Problem{Key: k, Why: "partition files without a book (leftover)"})
			continue
		case len(cs) > 1:
			p.Problems = append(p.Problems, Problem{Key: k, Why: fmt.Sprintf("in %d tiers: %s and %s", len(cs), cs[0], cs[1])})
			continue
		}
		c := cs[0]
		var mv *Move
		var why string
		switch {
		case c.tier == layout.Hot && c.kind == kindPlain:
			if !m.cfg.HotToWarm || m.roots.Warm == "" {
				continue
			}
			mv, why = m.planHot(k, part.dirs[layout.Hot], seen)
		case c.tier == layout.Warm:
			if m.roots.Cold == "" {
				continue
			}
			if age := now.Sub(endOfDay(k)); age < m.cfg.ColdAfter {
				continue
			}
			mv, why = m.planPlain(part.dirs[layout.Warm], WarmToCold, layout.Warm, layout.Cold)
			if mv != nil {
				mv.Reason = fmt.Sprintf("day ended %s ago > cold_after %s", roundAge(now.Sub(endOfDay(k))), humanDuration(m.cfg.ColdAfter))
			}
		case c.tier == layout.Cold && c.kind == kindPlain:
			mv, why = m.planPlain(part.dirs[layout.Cold], WarmToCold, layout.Cold, layout.Cold)
			if mv != nil {
				mv.Reason = "plain book.q in the cold tier"
			}
		case c.kind == kindZstd && part.dirs[layout.Cold].collision:
			p.Kept = append(p.Kept, m.kept(k, part.dirs[layout.Cold].dir))
			continue
		case c.kind == kindZstd:
			if m.store == nil || m.cfg.RemoteAfter <= 0 {
				continue
			}
			if age := now.Sub(endOfDay(k)); age < m.cfg.RemoteAfter {
				continue
			}
			d := part.dirs[layout.Cold]
			mv = &Move{Key: k, Policy: ColdToRemote, From: layout.Cold, To: layout.Remote,
				Reason: fmt.Sprintf("day ended %s ago > remote_after %s", roundAge(now.Sub(endOfDay(k))), humanDuration(m.cfg.RemoteAfter))}
			if fi, err := m.fs.Lstat(filepath.Join(d.dir, layout.ZstName)); err == nil {
				mv.Bytes = fi.Size()
			}
		case c.kind == kindStub:
			if m.store == nil || !m.needsPublish(part.dirs[layout.Cold].dir) {
				continue
			}
			mv = &Move{Key: k, Policy: Publish, From: layout.Remote, To: layout.Remote, Reason: "stub version 1: the bucket lacks the partition's files"}
		default:
			continue
		}
		if mv == nil {
			if why != "" {
				p.Waiting = append(p.Waiting, Wait{Key: k, Policy: policyFor(c), Why: why})
			}
			continue
		}
		mv.Key = k
		if until, err := m.backoffUntil(k, mv.Policy); !until.IsZero() {
			p.Waiting = append(p.Waiting, Wait{Key: k, Policy: mv.Policy,
				Why: fmt.Sprintf("retry after %s (last error: %v)", until.Format(time.RFC3339), err)})
			continue
		}
		p.Moves = append(p.Moves, *mv)
		p.Bytes += mv.Bytes
	}
	return p
}

func policyFor(c bookCopy) Policy {
	switch c.tier {
	case layout.Hot:
		return HotToWarm
	case layout.Warm:
		return WarmToCold
	}
	if c.kind == kindPlain {
		return WarmToCold
	}
	return ColdToRemote
}

// settling is a sealed hot book without a sealed meta.json, as last seen: its size and
// modification time, and when (Go's monotonic clock) they were first seen so.
type settling struct {
	size  int64
	mtime time.Time
	since time.Time
}

// planHot checks that a hot book is sealed and settled. Settling is timed on the monotonic
// clock from when this process first saw the book unchanged, not from its modification
// time: a wall clock stepped forward (or a file restored with an old mtime) never makes a
// book that its writer may still be finishing look settled.
func (m *Manager) planHot(k layout.Key, d *dirState, seen map[layout.Key]settling) (*Move, string) {
	mv, why := m.planPlain(d, HotToWarm, layout.Hot, layout.Warm)
	if mv == nil {
		return nil, why
	}
	mp := filepath.Join(d.dir, layout.MetaName)
	if vfs.Exists(m.fs, mp) {
		md, err := m.readMeta(mp)
		switch {
		case err != nil:
			return nil, fmt.Sprintf("sealed, but %v", err)
		case md.Sealed:
			mv.Reason = "sealed, meta.json says sealed"
			return mv, ""
		}
		// A meta.json of the growing partition: the writer has not finished it yet.
	}
	fi, err := m.fs.Lstat(filepath.Join(d.dir, layout.BookName))
	if err != nil {
		return nil, err.Error()
	}
	m.mu.Lock()
	s, ok := m.settling[k]
	m.mu.Unlock()
	if !ok || s.size != fi.Size() || !s.mtime.Equal(fi.ModTime()) {
		s = settling{size: fi.Size(), mtime: fi.ModTime(), since: time.Now()}
	}
	seen[k] = s
	if idle := time.Since(s.since); idle < m.cfg.HotSettle {
		return nil, fmt.Sprintf("sealed but no meta.json yet; waiting %s for the writer to settle", (m.cfg.HotSettle - idle).Round(time.Second))
	}
	mv.Reason = fmt.Sprintf("sealed, unchanged for %s", m.cfg.HotSettle)
	return mv, ""
}

// planPlain checks a plain book's header: a book moves only once sealed and trimmed to
// its committed length.
func (m *Manager) planPlain(d *dirState, pol Policy, from, to layout.Tier) (*Move, string) {
	h, size, err := m.readBookHeader(filepath.Join(d.dir, layout.BookName))
	if err != nil {
		return nil, err.Error()
	}
	if !h.Sealed || size != int64(h.Committed) {
		return nil, "book still being written (not sealed)"
	}
	return &Move{Policy: pol, From: from, To: to, Bytes: size, Reason: "sealed"}, ""
}

// readMeta reads and validates a partition's meta.json.
func (m *Manager) readMeta(p string) (*meta.Meta, error) {
	f, err := m.fs.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, meta.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return meta.Parse(b, p)
}

// readBookHeader reads a plain book's header and its file size.
func (m *Manager) readBookHeader(p string) (format.Header, int64, error) {
	f, size, err := m.openSized(p)
	if err != nil {
		return format.Header{}, 0, err
	}
	defer f.Close()
	h, err := format.ReadHeader(f, size, p)
	if err != nil {
		return h, 0, err
	}
	if h.Layout != format.LayoutBook {
		return h, 0, fmt.Errorf("%s: %w", p, format.ErrWrongLayout)
	}
	return h, size, nil
}

// openSized opens p and returns it with its size; on an error nothing stays open.
func (m *Manager) openSized(p string) (vfs.File, int64, error) {
	f, err := m.fs.Open(p)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// humanDuration prints whole days as "365d", anything else as Go does ("36h0m0s").
func humanDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func roundAge(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

// MarshalText spells the policy out in JSON.
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// MarshalJSON writes tiers by name.
func (m Move) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Partition string `json:"partition"`
		Policy    Policy `json:"policy"`
		From      string `json:"from"`
		To        string `json:"to"`
		Bytes     int64  `json:"bytes"`
		Reason    string `json:"reason"`
	}{m.Key.String(), m.Policy, m.From.String(), m.To.String(), m.Bytes, m.Reason})
}

// MarshalJSON writes the partition as its path.
func (w Wait) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Partition string `json:"partition"`
		Policy    Policy `json:"policy"`
		Why       string `json:"why"`
	}{w.Key.String(), w.Policy, w.Why})
}

// kept reads a collision record for the plan.
func (m *Manager) kept(k layout.Key, dir string) Kept {
	kp := Kept{Key: k}
	p := filepath.Join(dir, layout.CollisionName)
	b, err := m.mv.readSmall(p, 1<<20)
	if err != nil {
		return kp
	}
	c, err := stub.ParseCollision(b, p)
	if err != nil {
		return kp
	}
	kp.Since, kp.Slot = c.DetectedAt, c.Uploaded.Slot
	switch {
	case c.Holder != nil:
		kp.Holder = c.Holder.Host
	default:
		kp.Holder = c.HolderStub
	}
	return kp
}

// MarshalJSON writes the partition as its path.
func (k Kept) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Partition string    `json:"partition"`
		Holder    string    `json:"holder"`
		Slot      string    `json:"slot"`
		Since     time.Time `json:"since"`
	}{k.Key.String(), k.Holder, k.Slot, k.Since})
}

// MarshalJSON writes the partition as its path.
func (p Problem) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Partition string `json:"partition"`
		Why       string `json:"why"`
	}{p.Key.String(), p.Why})
}
