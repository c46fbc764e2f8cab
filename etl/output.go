package etl

// The partitions the refinery writes: found or created per record, sealed when their
// grace has passed, described by meta.json.

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
)

// part returns the partition for the symbol's record at ts, creating it (with its opening
// snapshot run unless a run follows anyway), or nil when the record is late and rejected.
func (r *Refinery) part(s *symState, ts int64, runFollows bool) (*partition, error) {
	day := dayOf(ts)
	late := r.clock >= (day+1)*dayNs+int64(r.cfg.Grace)
	key, row, mapped := r.keyFor(s, ts, day)
	if p := s.lastPart; !late && p != nil && p.key == key && !p.gone {
		return p, nil
	}
	if late {
		r.m.late.WithLabelValues(r.cfg.LatePolicy).Inc()
		if r.cfg.LatePolicy != meta.LateStream {
			return nil, nil
		}
		key.Kind = kindLate
		runFollows = true // a late stream is a log of stragglers, not a book
	}
	if p := r.parts[key]; p != nil {
		if key.Kind != kindLate {
			s.lastPart = p
		}
		return p, nil
	}
	p := &partition{key: key, venue: r.v.Name(), raw: s.Raw, dayStart: day * dayNs, dayEnd: (day + 1) * dayNs, created: r.recvNs}
	if s.ScaleSet {
		p.scaled, p.priceDec, p.qtyDec = true, s.Scale.Price, s.Scale.Qty
	}
	switch {
	case mapped:
		p.code, p.versionID = row.SymbolCode, row.VersionID
		if vs := r.table.Load().Versions(row.SymbolID, p.dayStart, p.dayEnd); len(vs) > 0 {
			p.code, p.versionID = vs[0].SymbolCode, vs[0].VersionID // in force at the start of the date, or the first within it
		}
	default:
		p.code = lowerName(s.Raw)
		r.m.unmapped.Inc()
	}
	top := layout.LayoutVersion
	switch key.Kind {
	case kindUnmapped:
		top = UnmappedDir
	case kindLate:
		top = LateDir
	}
	p.dir = filepath.Join(r.root, top, p.venue, p.code, dateString(day))
	w, err := openWriter(r.fs, p.path(), headerFor(p, r.priceDec, r.qtyDec), -1, r.fopt)
	if err != nil {
		return nil, err
	}
	p.setWriter(w)
	r.parts[key] = p
	if key.Kind != kindLate {
		s.lastPart = p
	}
	r.m.partitionsOpen.Inc()
	r.log.Info("partition opened", "path", p.path())
	if key.Kind != kindLate {
		r.nextSeal = min(r.nextSeal, p.dayEnd+int64(r.cfg.Grace))
		if _, verify := w.(*verifier); !verify {
			// A new partition has its meta.json from the start (sealed: false).
			if err := r.writeMeta(p, r.metaFor(p, false)); err != nil {
				return nil, err
			}
			p.hasMeta = true
		}
		if !s.live() {
			from := max(s.InvalidFrom, p.dayStart)
			if s.Fresh { // the capture starts here
				from = ts
				if s.FirstSeen != 0 {
					from = min(from, s.FirstSeen)
				}
				p.st.CaptureFrom = from
			}
			p.openInvalid(from, s.InvalidReason)
		}
		s.Fresh = false
		if !runFollows {
			if err := r.snapshotRun(s, p, ts, r.recvNs, uint64(s.LastU), r.segName); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// keyFor resolves the symbol at ts against dim_symbol.
func (r *Refinery) keyFor(s *symState, ts, day int64) (partKey, symbols.Row, bool) {
	t := r.table.Load()
	if s.resTable == t && s.resRow.Contains(ts) {
		return partKey{Kind: kindV1, SymbolID: s.resRow.SymbolID, Day: day}, s.resRow, true
	}
	row, ok := t.Resolve(r.v.Name(), s.Raw, ts)
	if ok {
		s.resTable, s.resRow = t, row
	}
	if !ok {
		return partKey{Kind: kindUnmapped, Raw: s.Raw, Day: day}, row, false
	}
	return partKey{Kind: kindV1, SymbolID: row.SymbolID, Day: day}, row, true
}

// openPart returns the symbol's open partition for ts without creating one.
func (r *Refinery) openPart(s *symState, ts int64) *partition {
	key, _, _ := r.keyFor(s, ts, dayOf(ts))
	return r.parts[key]
}

// sealDue seals every partition whose day ended more than the grace ago.
func (r *Refinery) sealDue() error {
	next := int64(1<<63 - 1)
	var due []*partition
	for _, p := range r.parts {
		if p.key.Kind == kindLate {
			continue
		}
		if at := p.dayEnd + int64(r.cfg.Grace); r.clock >= at {
			due = append(due, p)
		} else {
			next = min(next, at)
		}
	}
	r.nextSeal = next
	return r.seal(due...)
}

// seal finishes partitions. The sealed bit is the hand-off to the tier manager, which moves
// only sealed books: once it is set the refinery never touches the partition again, not
// even after a crash. So, for each partition: index/, then meta.json (sealed), both
// durable with the directory; then a checkpoint that records the partitions as sealing
// (a restart finishes their seal, or finds them moved away, and never reopens them);
// and only then the sealed bit (trim, fsync).
func (r *Refinery) seal(ps ...*partition) error {
	sort.Slice(ps, func(i, j int) bool { return ps[i].path() < ps[j].path() })
	if len(ps) > 0 && r.flushInput != nil {
		r.flushInput()
	}
	metas := map[*partition]*meta.Meta{}
	for _, p := range ps {
		if err := p.commit(); err != nil {
			return err
		}
		if n := len(p.st.Invalid); n > 0 && p.st.Invalid[n-1].Open {
			p.st.Invalid[n-1].To = meta.Time(p.dayEnd) // still invalid at midnight: Open stays set
		}
		p.gone, p.sealing = true, true
		if !p.w.Writes() {
			continue // an earlier run sealed it; what this run regenerated was only compared
		}
		if err := buildIndex(r.fs, p.dir); err != nil {
			return err
		}
		m := r.metaFor(p, true)
		if err := r.writeMeta(p, m); err != nil {
			return err
		}
		if err := r.fs.SyncDir(p.dir); err != nil {
			return err
		}
		metas[p] = m
	}
	if len(ps) > 0 && r.beforeSeal != nil {
		if err := r.beforeSeal(); err != nil {
			return err
		}
	}
	if len(ps) > 0 && r.sealHook != nil {
		if err := r.sealHook("checkpointed"); err != nil {
			return err
		}
	}
	for _, p := range ps {
		delete(r.parts, p.key)
		r.m.partitionsOpen.Dec()
		m := metas[p]
		if err := p.w.Seal(); err != nil {
			return fmt.Errorf("seal %s: %w", p.path(), err)
		}
		r.noteDiverged(p)
		if m == nil {
			continue
		}
		r.m.sealed.Inc()
		r.log.Info("partition sealed", "path", p.path(), "records", m.Records["total"], "depth_updates", m.Events.DepthUpdates,
			"trades", m.Events.Trades, "complete", m.Completeness.Complete)
	}
	if len(ps) > 0 {
		r.pruneSegs()
	}
	if len(ps) > 0 && r.sealHook != nil {
		return r.sealHook("sealed")
	}
	return nil
}

func (r *Refinery) noteDiverged(p *partition) {
	if d := p.w.Diverged(); d > 0 {
		r.diverged += d
		r.m.diverged.Add(float64(d))
		r.log.Error("rebuilt records differ from the file an earlier run left", "path", p.path(), "records", d)
	}
}

// writeMeta replaces the partition's meta.json atomically and durably (through r.fs).
func (r *Refinery) writeMeta(p *partition, m *meta.Meta) error {
	b, err := meta.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(p.dir, meta.FileName), err)
	}
	return vfs.WriteFile(r.fs, filepath.Join(p.dir, meta.FileName), b, 0o644)
}

// metaFor builds the partition's meta.json.
func (r *Refinery) metaFor(p *partition, sealed bool) *meta.Meta {
	st := &p.st
	m := &meta.Meta{
		Version: meta.Version, Venue: p.venue, Date: dateString(p.key.Day), SymbolID: p.key.SymbolID,
		SymbolCode: p.code, SymbolVersionID: p.versionID, Unmapped: p.key.Kind == kindUnmapped,
		PriceDecimals: r.priceDec, QtyDecimals: r.qtyDec, Sealed: sealed, IngestTime: meta.Time(time.Now().UnixNano()),
		Records: map[string]int64{}, LatePolicy: r.cfg.LatePolicy,
		Events: meta.Events{DepthUpdates: st.DepthUpdates, Trades: st.Trades, BBO: st.BBO, Snapshots: st.Snapshots, BookInvalid: st.BookInvalid},
		Checks: meta.Checks{CrossedEvents: st.Crossed, TickerChecks: st.Checks, TickerMismatches: st.Mismatches},
		Source: meta.Source{Pipeline: "chronicle-etl", Venue: r.v.Name(), Segments: r.segmentInfo(st.Segments), Host: r.host},
	}
	if p.scaled {
		m.PriceDecimals, m.QtyDecimals = p.priceDec, p.qtyDec
	}
	if r.cs != nil {
		checks, mismatches := st.ChecksumChecks, st.ChecksumMismatches
		m.Checks.ChecksumChecks, m.Checks.ChecksumMismatches = &checks, &mismatches
	}
	inst := r.v.Instrument(p.raw)
	m.Instrument = &meta.Instrument{QtyUnit: inst.QtyUnit, ContractSize: inst.ContractSize, ContractCurrency: inst.ContractCurrency}
	if sp, ok := r.specs[p.raw]; ok {
		mi := m.Instrument
		mi.QtyUnit, mi.ContractSize, mi.ContractCurrency = sp.QtyUnit, sp.ContractSize, sp.ContractCurrency
		mi.Type, mi.TickSize, mi.LotSize = sp.Type, sp.TickSize, sp.LotSize
		if sp.ExpiryNs != 0 {
			e := meta.Time(sp.ExpiryNs)
			mi.Expiry = &e
		}
	}
	var total int64
	for t, n := range st.Counts {
		if n > 0 {
			name := "unknown"
			if t > 0 {
				name = format.TypeName(uint16(t))
			}
			m.Records[name] = n
			total += n
		}
	}
	m.Records["total"] = total
	if st.HaveTs {
		m.EventTimeRange = &meta.Interval{From: meta.Time(st.FirstTs), To: meta.Time(st.LastTs)}
	}
	m.Completeness.Invalid = p.invalidForMeta()
	for i := range m.Completeness.Invalid {
		if iv := &m.Completeness.Invalid[i]; iv.Open && !sealed {
			iv.To = meta.Time(max(min(r.clock, p.dayEnd), int64(iv.From))) // so far
		}
	}
	m.Completeness.Gaps = append([]meta.Gap{}, st.Gaps...)
	m.Completeness.Complete = len(m.Completeness.Invalid) == 0 && len(st.Gaps) == 0
	if p.key.Kind == kindUnmapped {
		m.SymbolVersions = []meta.SymbolVersion{{SymbolCode: p.code, RawSymbol: p.raw, Interval: meta.Interval{From: meta.Time(p.dayStart), To: meta.Time(p.dayEnd)}}}
	} else {
		for _, v := range r.table.Load().Versions(p.key.SymbolID, p.dayStart, p.dayEnd) {
			m.SymbolVersions = append(m.SymbolVersions, meta.SymbolVersion{SymbolVersionID: v.VersionID, SymbolCode: v.SymbolCode,
				RawSymbol: v.RawSymbol, Interval: meta.Interval{From: meta.Time(max(v.From, p.dayStart)), To: meta.Time(min(v.To, p.dayEnd))}})
		}
	}
	return m
}
