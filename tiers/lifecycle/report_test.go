package lifecycle

import (
	"testing"
	"time"
)

func TestClockAt(t *testing.T) {
	for _, at := range []string{"2026-01-01", "2026-01-01T00:00:00Z"} {
		now, err := ClockAt(at)
		if err != nil {
			t.Fatal(err)
		}
		if got := now(); got.Before(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || got.After(time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)) {
			t.Errorf("%s: %v", at, got)
		}
	}
	if _, err := ClockAt("yesterday"); err == nil {
		t.Error("yesterday accepted")
	}
	if now, err := ClockAt(""); err != nil || time.Since(now()) > time.Minute {
		t.Errorf("empty: %v", err)
	}
}
