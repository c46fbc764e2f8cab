package merge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

// The merge reads each host's journal twice. The first pass (the survey) learns the
// streams, and where each host holds each symbol's depth chain without a break (runs); the
// second interleaves the two journals into one. With the runs, a host's loss of a book
// (a disconnect, a gap) is passed on to the merged journal only when no host continues
// the chain past the last update merged: the merged book is invalid exactly where the
// union of the captures misses updates.

// run is a stretch of a symbol's depth chain a host holds without a break: every update
// from the one that follows prev up to last.
type run struct{ prev, last int64 }

// streamInfo is one stream of the merged journal.
type streamInfo struct {
	name   string
	symbol string
	kind   venue.Kind
}

// survey is what the first pass learned of both journals.
type survey struct {
	streams map[string]streamInfo
	runs    map[string][]run // symbol -> every host's runs
	maxRecv int64            // latest receive time of any frame (the merged partitions' ingest_time)
	minRecv int64            // earliest (the merged journal's stamp)
	frames  [2]int64
	bytes   [2]int64
}

// joinRule is the venue's rule for matching events across captures (venue.Joiner), or the
// default one.
type joinRule struct {
	v venue.Venue
	j venue.Joiner
}

func newJoinRule(v venue.Venue) joinRule {
	j, _ := v.(venue.Joiner)
	return joinRule{v: v, j: j}
}

// key identifies the event a message carries across connections.
func (r joinRule) key(msg []byte, ev venue.Event) uint64 {
	if r.j != nil {
		return r.j.JoinKey(msg, ev)
	}
	return xxhash.Sum64(msg)
}

// prev is the id of the depth update ev follows.
func (r joinRule) prev(ev venue.Event) int64 {
	if r.j != nil {
		return r.j.ChainPrev(ev)
	}
	if ev.Prev != 0 {
		return ev.Prev
	}
	return ev.First - 1
}

func kindOf(s string) venue.Kind {
	for _, k := range venue.Kinds {
		if k.String() == s {
			return k
		}
	}
	return venue.KindOther
}

// surveyHosts is the first pass over both journals, one goroutine each.
func surveyHosts(ctx context.Context, v venue.Venue, rule joinRule, hosts [2]*hostJournal, progress func(int64)) (*survey, error) {
	var part [2]*survey
	var errs [2]error
	var wg sync.WaitGroup
	var mu sync.Mutex
	prog := func(n int64) {
		if progress != nil {
			mu.Lock()
			progress(n)
			mu.Unlock()
		}
	}
	for h := range 2 {
		wg.Go(func() { part[h], errs[h] = surveyHost(ctx, v, rule, hosts[h], prog) })
	}
	wg.Wait()
	if err := errors.Join(errs[0], errs[1]); err != nil {
		return nil, err
	}
	sv := &survey{streams: map[string]streamInfo{}, runs: map[string][]run{}}
	for h, p := range part {
		for _, name := range sortedNames(p.streams) {
			st := p.streams[name]
			sv.addStream(st.name, st.symbol, st.kind)
		}
		for sym, rs := range p.runs {
			sv.runs[sym] = append(sv.runs[sym], rs...)
		}
		sv.maxRecv = max(sv.maxRecv, p.maxRecv)
		if p.minRecv != 0 && (sv.minRecv == 0 || p.minRecv < sv.minRecv) {
			sv.minRecv = p.minRecv
		}
		sv.frames[h], sv.bytes[h] = p.frames[0], p.bytes[0]
	}
	return sv, nil
}

func sortedNames(m map[string]streamInfo) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// surveyHost surveys one host's journal.
func surveyHost(ctx context.Context, v venue.Venue, rule joinRule, j *hostJournal, progress func(int64)) (*survey, error) {
	sv := &survey{streams: map[string]streamInfo{}, runs: map[string][]run{}}
	cur := map[string]*run{}
	chans := newChannels() // messages on channels the connect records say are not depth need no parse
	src := newFrameSource(j)
	defer src.close()
	var pending int64
	for {
		f, err := src.next()
		if err != nil {
			return nil, err
		}
		if f == nil {
			break
		}
		sv.frames[0]++
		if sv.frames[0]%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		n := format.JournalFrameLen(len(f.Payload))
		sv.bytes[0] += n
		if pending += n; pending > 1<<20 {
			progress(pending)
			pending = 0
		}
		sv.maxRecv = max(sv.maxRecv, f.RecvTs)
		if sv.minRecv == 0 || f.RecvTs < sv.minRecv {
			sv.minRecv = f.RecvTs
		}
		switch f.TypeID {
		case format.JournalConnect:
			if ev, _, _, ok := chans.connect(v, f.Payload); ok {
				for _, st := range ev.Streams {
					sym := st.Symbol
					if sym == "" {
						sym = v.Symbol(st.Stream)
					}
					sv.addStream(st.Stream, sym, kindOf(st.Kind))
				}
			}
		case format.JournalMessage:
			if ci, ok := chans.byCh[f.Channel]; ok && ci.kind != "depth" && ci.kind != "" {
				if _, known := sv.streams[ci.stream]; known {
					continue
				}
			}
			ev, err := v.Parse(f.Payload)
			if err != nil || ev.Kind == venue.KindOther {
				continue
			}
			name := string(ev.Stream)
			if _, ok := sv.streams[name]; !ok {
				sv.addStream(name, v.Symbol(name), ev.Kind)
			}
			if ev.Kind != venue.KindDepth {
				continue
			}
			sym := sv.streams[name].symbol
			r := cur[sym]
			switch {
			case r == nil:
				cur[sym] = &run{prev: rule.prev(ev), last: ev.ID}
			case v.Check(r.last, ev) == venue.SeqNext:
				r.last = ev.ID
			case v.Check(r.last, ev) == venue.SeqStale:
			default:
				sv.runs[sym] = append(sv.runs[sym], *r)
				cur[sym] = &run{prev: rule.prev(ev), last: ev.ID}
			}
		}
	}
	progress(pending)
	for sym, r := range cur {
		sv.runs[sym] = append(sv.runs[sym], *r)
	}
	return sv, nil
}

func (sv *survey) addStream(name, sym string, k venue.Kind) {
	if st, ok := sv.streams[name]; ok && (st.kind != venue.KindOther || k == venue.KindOther) {
		return
	}
	sv.streams[name] = streamInfo{name: name, symbol: sym, kind: k}
}

// continues reports whether some host holds the update that follows last in symbol's
// chain: then a host's loss of the book there loses nothing of the merge.
func (sv *survey) continues(sym string, last int64) bool {
	for _, r := range sv.runs[sym] {
		if r.prev <= last && last < r.last {
			return true
		}
	}
	return false
}

// symbols lists the symbols with their streams, sorted (the merged journal's slots).
func (sv *survey) symbols() ([]string, map[string][]streamInfo, error) {
	by := map[string][]streamInfo{}
	for _, st := range sv.streams {
		by[st.symbol] = append(by[st.symbol], st)
	}
	syms := make([]string, 0, len(by))
	for s, sts := range by {
		syms = append(syms, s)
		sort.Slice(sts, func(i, j int) bool { return sts[i].name < sts[j].name })
		if len(sts) > 254 {
			return nil, nil, fmt.Errorf("%w: symbol %s has %d streams, a connection of the merged journal carries at most 254", ErrInput, s, len(sts))
		}
	}
	sort.Strings(syms)
	if len(syms) > maxSymbols {
		return nil, nil, fmt.Errorf("%w: %d symbols (%s...): one merge takes at most %d symbols per venue journal", ErrInput, len(syms), strings.Join(syms[:3], ", "), maxSymbols)
	}
	return syms, by, nil
}
