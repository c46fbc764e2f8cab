package binance

import (
	"bytes"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/venue"
)

var (
	keyStream = []byte("stream")
	keyData   = []byte("data")
)

// Parse reads a combined-stream message {"stream":...,"data":{...}}: the stream name, the
// event type and its ordering ids. It stops as soon as it has what the event type needs,
// so a 17 KB depth update costs a few dozen bytes of scanning. It never allocates.
func (v Venue) Parse(msg []byte) (venue.Event, error) {
	var ev venue.Event
	s := scanner{b: msg}
	var sawData bool
	p := dataParse{spot: v.m.spot}
	err := s.members(func(key []byte) (bool, error) {
		switch {
		case bytes.Equal(key, keyStream):
			raw, esc, ok := s.str()
			if !ok || esc || len(raw) == 0 {
				return false, s.fail("stream", venue.ErrBadField)
			}
			ev.Stream = raw
		case bytes.Equal(key, keyData):
			if s.peek() != '{' {
				return false, s.fail("data", venue.ErrBadField)
			}
			sawData = true
			// Stop inside data only if the stream name is known already; otherwise walk
			// the rest of data to reach the stream member.
			p.canStop = ev.Stream != nil
			if err := p.parse(&s, &ev); err != nil {
				return false, err
			}
		default:
			if !s.skip() {
				return false, s.fail(string(key), venue.ErrSyntax)
			}
		}
		// Both found: the rest of the envelope is the ETL's to validate.
		return ev.Stream != nil && sawData, nil
	})
	if err != nil {
		return venue.Event{}, err
	}
	if ev.Stream == nil || !sawData {
		return venue.Event{}, fault.Field(0, "", venue.ErrNotEnvelope)
	}
	if err := p.finish(&ev); err != nil {
		return venue.Event{}, err
	}
	return ev, nil
}

// dataParse collects the fields of the inner event.
type dataParse struct {
	have       uint8
	canStop    bool
	spot       bool // spot depth updates have no pu
	U, u, pu   int64
	t, a       int64
	missingOff int
}

const (
	hasE uint8 = 1 << iota
	hasU
	hasLowerU
	hasPU
	hasT
	hasA
)

func (p *dataParse) need(k venue.Kind) uint8 {
	switch k {
	case venue.KindDepth:
		if p.spot {
			return hasE | hasU | hasLowerU
		}
		return hasE | hasU | hasLowerU | hasPU
	case venue.KindTrade:
		return hasE | hasT
	case venue.KindAggTrade:
		return hasE | hasA
	case venue.KindBookTicker:
		return hasE | hasLowerU
	}
	return hasE
}

func (p *dataParse) parse(s *scanner, ev *venue.Event) error {
	p.missingOff = s.i
	return s.members(func(key []byte) (bool, error) {
		if len(key) > 2 {
			if !s.skip() {
				return false, s.fail(string(key), venue.ErrSyntax)
			}
			return false, nil
		}
		var bit uint8
		var dst *int64
		switch string(key) { // no allocation: the compiler compares in place
		case "e":
			raw, _, ok := s.str()
			if !ok {
				return false, s.fail("e", venue.ErrBadField)
			}
			ev.Kind = kindOf(raw)
			p.have |= hasE
			return p.canStop && p.have&p.need(ev.Kind) == p.need(ev.Kind), nil
		case "U":
			bit, dst = hasU, &p.U
		case "u":
			bit, dst = hasLowerU, &p.u
		case "pu":
			bit, dst = hasPU, &p.pu
		case "t":
			bit, dst = hasT, &p.t
		case "a":
			bit, dst = hasA, &p.a
		default:
			if !s.skip() {
				return false, s.fail(string(key), venue.ErrSyntax)
			}
			return false, nil
		}
		if s.peek() != '-' && (s.peek() < '0' || s.peek() > '9') {
			// Not a number: another event type may use the key for something else
			// (bookTicker "a" is the ask price string). Keep it only if it is numeric.
			if !s.skip() {
				return false, s.fail(string(key), venue.ErrSyntax)
			}
			return false, nil
		}
		v, ok := s.int()
		if !ok {
			return false, s.fail(string(key), venue.ErrBadField)
		}
		*dst = v
		p.have |= bit
		return p.canStop && p.have&hasE != 0 && p.have&p.need(ev.Kind) == p.need(ev.Kind), nil
	})
}

func (p *dataParse) finish(ev *venue.Event) error {
	if p.have&hasE == 0 {
		// Spot bookTicker messages carry no event type: the stream name says it.
		if ev.Kind = kindOfStream(ev.Stream); ev.Kind != venue.KindBookTicker {
			return fault.Field(p.missingOff, "e", venue.ErrMissingField)
		}
		p.have |= hasE
	}
	need := p.need(ev.Kind)
	if missing := need &^ p.have; missing != 0 {
		return fault.Field(p.missingOff, fieldName(missing), venue.ErrMissingField)
	}
	switch ev.Kind {
	case venue.KindDepth:
		if p.U > p.u || p.pu > p.u || p.U < 0 || p.pu < 0 {
			return fault.Field(p.missingOff, "U", venue.ErrBadField)
		}
		ev.ID, ev.First, ev.Prev = p.u, p.U, p.pu
	case venue.KindBookTicker:
		ev.ID = p.u
	case venue.KindTrade:
		ev.ID = p.t
	case venue.KindAggTrade:
		ev.ID = p.a
	}
	return nil
}

func fieldName(missing uint8) string {
	switch {
	case missing&hasU != 0:
		return "U"
	case missing&hasLowerU != 0:
		return "u"
	case missing&hasPU != 0:
		return "pu"
	case missing&hasT != 0:
		return "t"
	case missing&hasA != 0:
		return "a"
	}
	return "e"
}

// kindOfStream reads the kind from a stream name's suffix ("ethusdt@bookTicker").
func kindOfStream(stream []byte) venue.Kind {
	i := bytes.IndexByte(stream, '@')
	if i < 0 {
		return venue.KindOther
	}
	rest := stream[i+1:]
	if j := bytes.IndexByte(rest, '@'); j >= 0 {
		rest = rest[:j]
	}
	return kindNamed(rest)
}

// kindOf maps an event type ("e") to its kind.
func kindOf(e []byte) venue.Kind {
	if string(e) == "depthUpdate" {
		return venue.KindDepth
	}
	return kindNamed(e)
}

// kindNamed maps a stream name (or an event type, which is the same but for depth) to its kind.
func kindNamed(name []byte) venue.Kind {
	switch string(name) {
	case "depth":
		return venue.KindDepth
	case "trade":
		return venue.KindTrade
	case "aggTrade":
		return venue.KindAggTrade
	case "bookTicker":
		return venue.KindBookTicker
	}
	return venue.KindOther
}

// ParseSnapshot reads lastUpdateId from a /fapi/v1/depth body. An error body
// ({"code":-1121,"msg":...}) is reported as venue.ErrSnapshotError.
func (Venue) ParseSnapshot(body []byte) (venue.Snapshot, error) {
	s := scanner{b: body}
	var snap venue.Snapshot
	found, isErr := false, false
	err := s.members(func(key []byte) (bool, error) {
		switch string(key) {
		case "lastUpdateId":
			var err error
			snap.LastUpdateID, err = lastUpdateID(&s)
			found = true
			return err == nil, err
		case "code":
			isErr = true
		}
		if !s.skip() {
			return false, s.fail(string(key), venue.ErrSyntax)
		}
		return false, nil
	})
	if err != nil {
		return venue.Snapshot{}, err
	}
	if !found {
		return venue.Snapshot{}, noUpdateID(isErr)
	}
	return snap, nil
}

// lastUpdateID reads a depth snapshot's lastUpdateId.
func lastUpdateID(s *scanner) (int64, error) {
	v, ok := s.int()
	if !ok || v < 0 {
		return 0, s.fail("lastUpdateId", venue.ErrBadField)
	}
	return v, nil
}

// noUpdateID is the error of a snapshot body without lastUpdateId: an error body
// ({"code":...}) or a missing field.
func noUpdateID(isErr bool) error {
	if isErr {
		return fault.Field(0, "", venue.ErrSnapshotError)
	}
	return fault.Field(0, "lastUpdateId", venue.ErrMissingField)
}
