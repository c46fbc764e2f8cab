package kraken

import (
	"reflect"
	"testing"

	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/venue"
)

// checkFast: when the fast path takes a message, the general decoder decodes it without
// error to the same Message.
func checkFast(t *testing.T, in []byte, scales *venue.Scales) bool {
	t.Helper()
	var fast, general venue.Message
	if !fastBook(in, &fast, scales) {
		return false
	}
	if err := decodeGeneral(in, &general, scales); err != nil {
		t.Fatalf("fast path took %q, the general decoder fails: %v", in, err)
	}
	if !reflect.DeepEqual(fast, general) {
		t.Fatalf("%q:\nfast    %+v\ngeneral %+v", in, fast, general)
	}
	return true
}

// TestFastPathCapture: every book message of the capture decodes by the fast path, to
// what the general decoder gives.
func TestFastPathCapture(t *testing.T) {
	recs := readCapture(t)
	scales, _ := scalesOf(t, recs)
	books, fast := 0, 0
	for _, r := range recs {
		if r.Kind != capture.KindMessage {
			continue
		}
		ev, err := Venue{}.Parse(r.Payload)
		if err == nil && ev.Kind == venue.KindDepth {
			books++
		}
		for _, sc := range []*venue.Scales{scales, nil} {
			if checkFast(t, r.Payload, sc) && sc != nil {
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
// decoder; seeded with the capture's book messages (one in ten updates) and edge forms.
func FuzzFastPath(f *testing.F) {
	recs := readCapture(f)
	scales, _ := scalesOf(f, recs)
	n := 0
	for _, r := range recs {
		if r.Kind == capture.KindMessage && len(r.Payload) < 4096 {
			if n++; n%10 == 0 {
				f.Add(r.Payload)
			}
		}
	}
	for _, s := range []string{
		`[1,{"a":[["5.0","0.00000000","1.000001","r"]]},{"b":[["4.0","1.5","2.5"]],"c":"0"},"book-10","XBT/USD"]`,
		`[0,{"as":[["5.0","1","1.5"]],"bs":[]},"book-10","XBT/USD"]`,
		`[0,{"as":[["5.0","1","1.5"]]},{"bs":[["4.0","1","1.5"]]},"book-10","XBT/USD"]`,
		`[01,{"a":[["5.0","1","1.5"]],"c":"7"},"book-10","XBT/USD"]`,
		`[1,{"a":[["5.0","1","1.5"]],"c":"7"},{"b":[["4.0","1","1.5"]],"c":"7"},"book-10","XBT/USD"]`,
		`[1,{"a":[["5.0","1","1.5"]],"c":"4294967296"},"book-10","XBT/USD"]`,
		`[1,{"a":[["0","1","1.5"]],"c":"7"},"book-0","XBT/USD"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFast(t, in, scales)
		checkFast(t, in, nil)
	})
}
