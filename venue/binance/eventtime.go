package binance

import (
	"bytes"

	"github.com/chronicle/chronicle/venue"
)

var _ venue.EventTimer = Venue{}

// EventTime reads the event time (data's "E", ms, as ns) and stops there: Binance sends "e"
// and "E" before the ids and price levels, so this reads a few dozen bytes where Decode
// reads them all. With a key given twice it keeps the first where Decode keeps the last;
// Binance names every key once, and the merge uses the time only to place a message.
func (Venue) EventTime(msg []byte) (int64, bool) {
	s := scanner{b: msg}
	var ns int64
	found := false
	s.members(func(key []byte) (bool, error) {
		if !bytes.Equal(key, keyData) || s.peek() != '{' {
			return false, s.other(key)
		}
		err := s.members(func(key []byte) (bool, error) {
			if len(key) != 1 || key[0] != 'E' {
				return false, s.other(key)
			}
			v, ok := s.int()
			if ok && v > 0 && v <= maxMillis {
				ns, found = v*1e6, true
			}
			return true, nil
		})
		return true, err
	})
	return ns, found
}
