package venuefuzz

import (
	"errors"
	"reflect"
	"testing"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
)

// A Capture is a venue's bundled capture and what its tests expect of it.
type Capture struct {
	Venue interface {
		venue.Venue
		venue.Referencer
	}
	Files   []string    // the capture's logs, under testenv.CapturesDir, merged by receive time
	Default venue.Scale // the scale of an instrument the reference bodies do not list
	Bodies  int         // how many reference bodies the logs hold
	Words   []string    // the venue's bare keep-alive words, the only input decoded that is not JSON
	Fast    FastPath
}

// Records reads the capture's logs, merged by receive time.
func (c Capture) Records(t testing.TB) []capture.Record {
	t.Helper()
	var paths []string
	for _, f := range c.Files {
		paths = append(paths, testenv.CapturesDir()+f)
	}
	recs, err := capture.ReadMerged(paths)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Scales decodes every reference body of recs (their snapshot records) and returns the
// instruments' scales (Default for the others) and their specs by symbol; it fails unless
// there are c.Bodies of them.
func (c Capture) Scales(t testing.TB, recs []capture.Record) (*venue.Scales, map[string]venue.Spec) {
	t.Helper()
	sc := &venue.Scales{Default: c.Default}
	specs := map[string]venue.Spec{}
	n := 0
	for _, rec := range recs {
		if rec.Kind != capture.KindSnapshot {
			continue
		}
		got, err := c.Venue.DecodeReference(rec.Payload, nil)
		if err != nil {
			t.Fatalf("%s line %d: %v", rec.File, rec.Line, err)
		}
		n++
		for _, s := range got {
			sc.Set(s.Symbol, s.Scale)
			specs[s.Symbol] = s
		}
	}
	if n != c.Bodies {
		t.Fatalf("%d reference bodies in %v, want %d", n, c.Files, c.Bodies)
	}
	return sc, specs
}

// TestFastPath: every book message of the capture (a depth event to Parse) decodes by the
// fast path, to what the general decoder gives, at the capture's scales and at none.
func (c Capture) TestFastPath(t *testing.T) {
	t.Helper()
	recs := c.Records(t)
	scales, _ := c.Scales(t, recs)
	books, fast := 0, 0
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		ev, err := c.Venue.Parse(r.Payload)
		if err == nil && ev.Kind == venue.KindDepth {
			books++
		}
		for _, sc := range []*venue.Scales{scales, nil} {
			if c.Fast.Check(t, r.Payload, sc) && sc != nil {
				fast++
			}
		}
	}
	if books == 0 || fast != books {
		t.Fatalf("%d book messages, %d decoded by the fast path", books, fast)
	}
	t.Logf("%d book messages, all by the fast path", books)
}

// FuzzFastPath: on anything, the fast path either declines or agrees with the general
// decoder (at the capture's scales and at none); seeded with the capture's messages (one
// in ten) and the edge forms given.
func (c Capture) FuzzFastPath(f *testing.F, edges ...string) {
	recs := c.Records(f)
	scales, _ := c.Scales(f, recs)
	n := 0
	for _, r := range recs {
		if r.Kind == capture.KindMessage && len(r.Payload) < 4096 {
			if n++; n%10 == 0 {
				f.Add(r.Payload)
			}
		}
	}
	for _, s := range edges {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c.Fast.Check(t, in, scales)
		c.Fast.Check(t, in, nil)
	})
}

// FuzzDecode: Parse and DecodeAt on anything (CheckDecode, at the capture's scales and at
// none), seeded with the capture's messages that seed keeps (all of them when nil: it is
// given each message's payload and its number, from 1) and the edge forms given.
func (c Capture) FuzzDecode(f *testing.F, seed func(n int, payload []byte) bool, edges ...string) {
	recs := c.Records(f)
	scales, _ := c.Scales(f, recs)
	n := 0
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		if n++; seed == nil || seed(n, r.Payload) {
			f.Add(r.Payload)
		}
	}
	for _, s := range edges {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		CheckDecode(t, c.Venue, in, scales, c.Words...)
		CheckDecode(t, c.Venue, in, nil, c.Words...)
	})
}

// FuzzReference: a damaged reference body is a *fault.Error wrapping sentinel and naming
// where, never a panic, and what decodes are specs that valid accepts; seeded with the
// capture's reference bodies (their first 4 KiB) and the bodies given.
func (c Capture) FuzzReference(f *testing.F, sentinel error, valid func(venue.Spec) bool, bodies ...string) {
	for _, r := range c.Records(f) {
		if r.Kind == capture.KindSnapshot {
			f.Add(r.Payload[:min(len(r.Payload), 4096)])
		}
	}
	for _, b := range bodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		specs, err := c.Venue.DecodeReference(in, nil)
		if err != nil {
			var fe *fault.Error
			if !errors.As(err, &fe) || !errors.Is(err, sentinel) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		for _, s := range specs {
			if !valid(s) {
				t.Fatalf("spec %+v", s)
			}
		}
	})
}

// A FastPath is a venue's fast book decoder beside its general decoder: the fast one may
// decline a message (false), and what it takes it must decode as the general one does.
type FastPath struct {
	Fast    func(msg []byte, m *venue.Message, scales *venue.Scales) bool
	General func(msg []byte, m *venue.Message, scales *venue.Scales) error
}

// Check: when the fast path takes in, the general decoder decodes it without error to the
// same Message. It reports whether the fast path took it.
func (p FastPath) Check(t *testing.T, in []byte, scales *venue.Scales) bool {
	t.Helper()
	var fast, general venue.Message
	if !p.Fast(in, &fast, scales) {
		return false
	}
	if err := p.General(in, &general, scales); err != nil {
		t.Fatalf("fast path took %q, the general decoder fails: %v", in, err)
	}
	if !reflect.DeepEqual(fast, general) {
		t.Fatalf("%q:\nfast    %+v\ngeneral %+v", in, fast, general)
	}
	return true
}
