package binance_test

import (
	"bytes"
	"testing"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/binance"
)

// EventTime gives Decode's ExchNs on every message of the real captures that Decode dates,
// and nothing on those of a known kind that carry no time (spot bookTicker).
func TestEventTimeCaptures(t *testing.T) {
	for _, cs := range captureSets() {
		n := 0
		for _, r := range readCapture(t, cs.files...) {
			if r.Kind != capture.KindMessage {
				continue
			}
			var m venue.Message
			if cs.v.Decode(r.Payload, &m) != nil || (m.ExchNs == 0 && m.Kind == venue.KindOther) {
				continue // kline and the like: Decode reads no time from them
			}
			got, ok := cs.v.EventTime(r.Payload)
			if ok != (m.ExchNs != 0) || got != m.ExchNs {
				t.Fatalf("%s: EventTime %d %v, Decode's ExchNs %d: %.200s", cs.name, got, ok, m.ExchNs, r.Payload)
			}
			n++
		}
		if n == 0 {
			t.Fatalf("%s: no message decoded", cs.name)
		}
	}
}

func TestEventTimeEdges(t *testing.T) {
	v := binance.New()
	for _, c := range []struct {
		msg string
		ns  int64
		ok  bool
	}{
		{`{"stream":"ethusdt@depth","data":{"e":"depthUpdate","E":1723075200123,"b":[]}}`, 1723075200123e6, true},
		{`{"data":{"E":5,"e":"x"},"stream":"s"}`, 5e6, true},
		{`{"stream":"s","other":{"E":7},"data":{"e":"x","E":9}}`, 9e6, true}, // only data's E
		{`{"stream":"s","data":{"e":"x","k":{"E":7}}}`, 0, false},            // not a nested one
		{`{"stream":"s","data":{"e":"x","E":-1}}`, 0, false},
		{`{"stream":"s","data":{"e":"x","E":0}}`, 0, false},
		{`{"stream":"s","data":{"e":"x","E":1.5}}`, 0, false},
		{`{"stream":"s","data":{"e":"x","E":"1"}}`, 0, false},
		{`{"stream":"s","data":{"e":"x","E":99999999999999999999}}`, 0, false},
		{`{"stream":"s","data":{"e":"x","E":9223372036854}}`, 9223372036854e6, true}, // maxMillis
		{`{"stream":"s","data":{"e":"x","E":9223372036855}}`, 0, false},
		{`{"stream":"s","data":{"e":"x"}}`, 0, false},
		{`{"stream":"s","data":[]}`, 0, false},
		{`{"stream":"s","data":{"e":"x","E":`, 0, false},
		{``, 0, false},
	} {
		ns, ok := v.EventTime([]byte(c.msg))
		if ns != c.ns || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.msg, ns, ok, c.ns, c.ok)
		}
	}
}

// Wherever Decode reads an event time from a message naming each key once, EventTime reads
// the same.
func FuzzEventTime(f *testing.F) {
	msgs, _ := fuzzSeeds(f)
	for _, m := range msgs {
		f.Add(m)
	}
	f.Add([]byte(`{"stream":"s","data":{"e":"x","E":9,"E":10}}`))
	venues := []binance.Venue{binance.New(), binance.NewCoinM(), binance.NewSpot()}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, v := range venues {
			msg := bytes.Clone(in)
			ns, ok := v.EventTime(msg)
			if !bytes.Equal(msg, in) {
				t.Fatalf("%s: EventTime modified its input", v.Name())
			}
			if ok && ns <= 0 {
				t.Fatalf("%s: EventTime %d", v.Name(), ns)
			}
			var m venue.Message
			if v.Decode(in, &m) != nil || m.ExchNs == 0 || hasDupKeys(in) {
				continue
			}
			if !ok || ns != m.ExchNs {
				t.Fatalf("%s: EventTime %d %v, Decode's ExchNs %d", v.Name(), ns, ok, m.ExchNs)
			}
		}
	})
}
