package fault

import (
	"errors"
	"testing"
)

var errCause = errors.New("cause")

func TestError(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{At("a.q", 64, errCause, ""), "a.q: offset 64: cause"},
		{At("a.q", 0, errCause, "need %d bytes", 8), "a.q: offset 0: cause: need 8 bytes"},
		{InFrame("b.zst", 3, 100, "size", errCause, ""), `b.zst: offset 100: frame 3: field "size": cause`},
		{InFrame("b.zst", -1, 7, "", errCause, ""), "b.zst: offset 7: cause"},
		{Line("c.csv", 12, errCause), "c.csv:12: cause"},
		{Field(5, "u", errCause), `offset 5: field "u": cause`},
		{Field(0, "", errCause), "offset 0: cause"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
		if !errors.Is(c.err, errCause) {
			t.Errorf("%q does not wrap its cause", c.err)
		}
		var fe *Error
		if !errors.As(error(c.err), &fe) || fe != c.err {
			t.Errorf("%q: errors.As failed", c.err)
		}
	}
}
