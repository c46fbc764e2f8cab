// Package venuefuzz holds the properties every venue decoder is fuzzed for, so each venue
// package's fuzz targets state them once: Parse and Decode never panic, never modify their
// input, fail only with a positioned *fault.Error wrapping a decode sentinel, accept only
// valid JSON (or the venue's bare keep-alive words), agree with each other on what a message
// is, and return numbers in range.
package venuefuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/chronicle/chronicle/venue"
)

// CheckParse runs v.Parse on in and checks its contract.
func CheckParse(t *testing.T, v venue.Venue, in []byte) (venue.Event, bool) {
	t.Helper()
	msg := bytes.Clone(in)
	ev, err := v.Parse(msg)
	if !bytes.Equal(msg, in) {
		t.Fatalf("%s: Parse modified its input", v.Name())
	}
	if err != nil {
		checkErr(t, v, err, len(msg))
		return ev, false
	}
	return ev, true
}

// CheckDecode runs the venue's decoder on in (at scales when it takes them) and checks its
// contract; with the parse result of the same input, it checks they agree.
func CheckDecode(t *testing.T, v venue.Venue, in []byte, scales *venue.Scales, words ...string) {
	t.Helper()
	ev, parsed := CheckParse(t, v, in)
	msg := bytes.Clone(in)
	var m venue.Message
	var err error
	if sd, ok := v.(venue.ScaledDecoder); ok && scales != nil {
		err = sd.DecodeAt(msg, &m, scales)
	} else {
		err = v.Decode(msg, &m)
	}
	if !bytes.Equal(msg, in) {
		t.Fatalf("%s: Decode modified its input", v.Name())
	}
	if err != nil {
		checkErr(t, v, err, len(msg))
		return
	}
	bare := false
	for _, w := range words {
		bare = bare || string(in) == w
	}
	if !bare && !json.Valid(in) {
		t.Fatalf("%s: decoded a message that is not valid JSON: %q", v.Name(), in)
	}
	if !parsed {
		t.Fatalf("%s: Decode accepts what Parse refuses: %q", v.Name(), in)
	}
	if ev.Kind != m.Kind || !bytes.Equal(ev.Stream, m.Stream) || !bytes.Equal(ev.Inst, m.Inst) || ev.Snapshot != m.Snapshot {
		t.Fatalf("%s: Parse says %v %q %q snapshot=%v, Decode %v %q %q snapshot=%v", v.Name(),
			ev.Kind, ev.Stream, ev.Inst, ev.Snapshot, m.Kind, m.Stream, m.Inst, m.Snapshot)
	}
	if m.Kind == venue.KindDepth && !m.Snapshot && ev.ID != m.ID {
		t.Fatalf("%s: Parse id %d, Decode id %d", v.Name(), ev.ID, m.ID)
	}
	for _, l := range append(append([]venue.Level{}, m.Bids...), m.Asks...) {
		if l.Price <= 0 || l.Qty < 0 {
			t.Fatalf("%s: level %+v out of range", v.Name(), l)
		}
	}
	for _, tr := range m.Trades {
		if tr.Price <= 0 || tr.Qty <= 0 || tr.TxNs <= 0 || tr.ID < 0 {
			t.Fatalf("%s: trade %+v out of range", v.Name(), tr)
		}
	}
	if m.BidPrice < 0 || m.BidQty < 0 || m.AskPrice < 0 || m.AskQty < 0 || m.ExchNs < 0 {
		t.Fatalf("%s: ticker or time out of range: %+v", v.Name(), m)
	}
}

func checkErr(t *testing.T, v venue.Venue, err error, n int) {
	t.Helper()
	var pe *venue.ParseError
	if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > int64(n) {
		t.Fatalf("%s: untyped error or bad offset: %v", v.Name(), err)
	}
	if !errors.Is(err, venue.ErrSyntax) && !errors.Is(err, venue.ErrBadField) &&
		!errors.Is(err, venue.ErrMissingField) && !errors.Is(err, venue.ErrNotEnvelope) {
		t.Fatalf("%s: error wraps no decode sentinel: %v", v.Name(), err)
	}
}
