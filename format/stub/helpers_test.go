package stub

import (
	"errors"
	"testing"
)

// fuzzDocument fuzzes a document's parser from the seeds: a refusal wraps ErrInvalid, and
// what it accepts passes check (when given), encodes, and parses again.
func fuzzDocument[T interface{ Marshal() ([]byte, error) }](f *testing.F, parse func(b []byte, name string) (T, error), check func(t *testing.T, doc T), seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := parse(b, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if check != nil {
			check(t, doc)
		}
		out, err := doc.Marshal()
		if err != nil {
			t.Fatalf("accepted document does not encode: %v", err)
		}
		if _, err := parse(out, "re"); err != nil {
			t.Fatalf("re-encoded document rejected: %v", err)
		}
	})
}
