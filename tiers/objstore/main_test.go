package objstore_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every store is closed by its test; a goroutine left behind (a part upload,
// a body watchdog, a hash worker, an unclosed connection) is a bug.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
