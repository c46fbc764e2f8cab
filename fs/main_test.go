package fs

import (
	"testing"

	"go.uber.org/goleak"
)

// Every mount a test makes is unmounted and every goroutine it started is gone.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
