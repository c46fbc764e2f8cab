package symbols

import (
	"errors"
	"testing"
)

// With no table configured and none handed in, Load says what to set.
func TestLoadWithoutDefault(t *testing.T) {
	old := embedded.Swap(nil)
	defer embedded.Store(old)
	if _, err := Load(""); !errors.Is(err, ErrNoDefault) {
		t.Fatalf("Load(\"\") = %v, want ErrNoDefault", err)
	}
}
