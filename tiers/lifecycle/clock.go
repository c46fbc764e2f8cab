package lifecycle

import (
	"fmt"
	"time"

	"github.com/chronicle/chronicle/layout"
)

// ClockAt is the manager's clock for `--now` (demos and tests): it reads at (RFC 3339 or
// YYYY-MM-DD) when made and advances in real time. An empty at is time.Now.
func ClockAt(at string) (func() time.Time, error) {
	if at == "" {
		return time.Now, nil
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		if t, err = time.Parse(layout.DateLayout, at); err != nil {
			return nil, fmt.Errorf("%q: want RFC 3339 (2026-01-01T00:00:00Z) or YYYY-MM-DD", at)
		}
	}
	start := time.Now()
	return func() time.Time { return t.Add(time.Since(start)) }, nil
}
