package okx

import (
	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/venue"
)

// Parse reads what the feed needs from one message: the channel and instrument (from
// "arg"), whether a book message is a snapshot, and the ordering ids (a book's seqId and
// prevSeqId, the last trade id). Event messages ({"event":...}) and "pong" are control
// messages. It never allocates.
func (Venue) Parse(msg []byte) (venue.Event, error) {
	var ev venue.Event
	if string(msg) == "pong" {
		ev.Kind = venue.KindControl
		return ev, nil
	}
	s := venue.Scanner{B: msg}
	if !s.Expect('{') {
		return ev, s.Fail("", venue.ErrSyntax)
	}
	var channel, inst []byte
	var seq, prev, trade int64
	var haveSeq, haveData bool
	var idErr error // a malformed id: an error only on a channel that has ids
	if !s.Close('}') {
		for {
			key, ok := s.Key()
			if !ok {
				return venue.Event{}, s.Fail("", venue.ErrSyntax)
			}
			switch string(key) {
			case "event":
				ev.Kind = venue.KindControl
				return ev, nil
			case "arg":
				var err error
				if channel, inst, err = parseArg(&s); err != nil {
					return venue.Event{}, err
				}
			case "action":
				raw, _, ok := s.Str()
				if !ok {
					return venue.Event{}, s.Fail("action", venue.ErrBadField)
				}
				ev.Snapshot = string(raw) == "snapshot"
			case "data":
				haveData = true
				if err := parseData(&s, &seq, &prev, &trade, &haveSeq, &idErr); err != nil {
					return venue.Event{}, err
				}
			default:
				if !s.Skip() {
					return venue.Event{}, s.Fail(string(key), venue.ErrSyntax)
				}
			}
			more, ok := s.More('}')
			if !ok {
				return venue.Event{}, s.Fail("", venue.ErrSyntax)
			}
			if !more {
				break
			}
		}
	}
	if channel == nil || inst == nil || !haveData {
		return venue.Event{}, fault.Field(0, "", venue.ErrNotEnvelope)
	}
	ev.Stream, ev.Inst = channel, inst
	c, known := channelNamed(channel)
	if !known {
		ev.Kind, ev.Snapshot = venue.KindOther, false
		return ev, nil
	}
	ev.Kind = c.kind
	if idErr != nil && (c.kind == venue.KindDepth || c.kind == venue.KindTrade) {
		return venue.Event{}, idErr
	}
	switch c.kind {
	case venue.KindDepth:
		if haveSeq {
			ev.ID, ev.Prev = seq, prev
		}
	case venue.KindTrade:
		ev.ID = trade
		ev.Snapshot = false
	default:
		ev.Snapshot = false
	}
	return ev, nil
}

// parseArg reads {"channel":...,"instId":...} (other members are skipped).
func parseArg(s *venue.Scanner) (channel, inst []byte, err error) {
	if !s.Expect('{') {
		return nil, nil, s.Fail("arg", venue.ErrBadField)
	}
	if s.Close('}') {
		return nil, nil, s.Fail("arg", venue.ErrMissingField)
	}
	for {
		key, ok := s.Key()
		if !ok {
			return nil, nil, s.Fail("arg", venue.ErrSyntax)
		}
		switch string(key) {
		case "channel", "instId":
			raw, esc, ok := s.Str()
			if !ok || esc || len(raw) == 0 {
				return nil, nil, s.Fail(string(key), venue.ErrBadField)
			}
			if key[0] == 'c' {
				channel = raw
			} else {
				inst = raw
			}
		default:
			if !s.Skip() {
				return nil, nil, s.Fail(string(key), venue.ErrSyntax)
			}
		}
		more, ok := s.More('}')
		if !ok {
			return nil, nil, s.Fail("arg", venue.ErrSyntax)
		}
		if !more {
			return channel, inst, nil
		}
	}
}

// parseData reads the ids of a data array's objects: seqId and prevSeqId (books), and the
// largest tradeId (trades); everything else is passed over.
func parseData(s *venue.Scanner, seq, prev, trade *int64, haveSeq *bool, idErr *error) error {
	if !s.Expect('[') {
		return s.Fail("data", venue.ErrBadField)
	}
	if s.Close(']') {
		return nil
	}
	for {
		if !s.Expect('{') {
			return s.Fail("data", venue.ErrBadField)
		}
		if !s.Close('}') {
			for {
				key, ok := s.Key()
				if !ok {
					return s.Fail("data", venue.ErrSyntax)
				}
				switch string(key) {
				case "seqId", "prevSeqId":
					at := s.I
					v, ok := s.Int()
					if !ok {
						s.I = at
						if *idErr == nil {
							*idErr = s.Fail(string(key), venue.ErrBadField)
						}
						if !s.Skip() {
							return s.Fail(string(key), venue.ErrSyntax)
						}
						break
					}
					if key[0] == 's' {
						*seq, *haveSeq = v, true
					} else {
						*prev = v
					}
				case "tradeId":
					at := s.I
					v, ok := s.QuotedInt()
					if !ok {
						s.I = at
						if *idErr == nil {
							*idErr = s.Fail("tradeId", venue.ErrBadField)
						}
						if !s.Skip() {
							return s.Fail("tradeId", venue.ErrSyntax)
						}
						break
					}
					*trade = max(*trade, v)
				default:
					if !s.Skip() {
						return s.Fail(string(key), venue.ErrSyntax)
					}
				}
				more, ok := s.More('}')
				if !ok {
					return s.Fail("data", venue.ErrSyntax)
				}
				if !more {
					break
				}
			}
		}
		more, ok := s.More(']')
		if !ok {
			return s.Fail("data", venue.ErrSyntax)
		}
		if !more {
			return nil
		}
	}
}
