package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// Report writes what the tiers hold (Status) or, with plan, what Apply would move
// (PlanOnly) to w: as text, or as indented JSON. It is what `chronicle-tier status` and
// `apply --dry-run` print.
func (m *Manager) Report(ctx context.Context, plan, asJSON bool, w io.Writer) error {
	name, v, err := "status", any(nil), error(nil)
	if plan {
		name = "plan"
		var p *Plan
		if p, err = m.PlanOnly(ctx); err == nil {
			v = p
			if !asJSON {
				p.WriteText(w)
			}
		}
	} else {
		var s *Status
		if s, err = m.Status(ctx); err == nil {
			v = s
			if !asJSON {
				err = s.WriteText(w)
			}
		}
	}
	if err == nil && asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(v)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ApplyOnce is `chronicle-tier apply`: it recovers and moves once, counting the bytes
// moved on the progress that bar starts with the plan's total (bar may be nil), and
// logs the outcome. An error says how many moves failed, or that ctx ended the run.
func (m *Manager) ApplyOnce(ctx context.Context, bar func(total int64) (add func(int64), done func())) error {
	var add func(int64)
	if p, err := m.PlanOnly(ctx); err == nil && p.Bytes > 0 && bar != nil {
		var done func()
		add, done = bar(p.Bytes)
		defer done()
	}
	res, err := m.Apply(ctx, add)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	m.log.Info("apply done", "moved", res.Moved, "failed", res.Failed, "bytes", res.Bytes, "interrupted", ctx.Err() != nil)
	switch {
	case res.Failed > 0:
		return fmt.Errorf("apply: %d of %d moves failed (the log says why)", res.Failed, res.Moved+res.Failed)
	case ctx.Err() != nil:
		return fmt.Errorf("apply: interrupted after %d moves", res.Moved)
	}
	return nil
}
