package kraken

import "testing"

// TestFastPathCapture: every book message of the capture decodes by the fast path, to
// what the general decoder gives.
func TestFastPathCapture(t *testing.T) {
	kit.TestFastPath(t)
}

// FuzzFastPath: on anything, the fast path either declines or agrees with the general
// decoder; seeded with the capture's book messages (one in ten updates) and edge forms.
func FuzzFastPath(f *testing.F) {
	kit.FuzzFastPath(f,
		`[1,{"a":[["5.0","0.00000000","1.000001","r"]]},{"b":[["4.0","1.5","2.5"]],"c":"0"},"book-10","XBT/USD"]`,
		`[0,{"as":[["5.0","1","1.5"]],"bs":[]},"book-10","XBT/USD"]`,
		`[0,{"as":[["5.0","1","1.5"]]},{"bs":[["4.0","1","1.5"]]},"book-10","XBT/USD"]`,
		`[01,{"a":[["5.0","1","1.5"]],"c":"7"},"book-10","XBT/USD"]`,
		`[1,{"a":[["5.0","1","1.5"]],"c":"7"},{"b":[["4.0","1","1.5"]],"c":"7"},"book-10","XBT/USD"]`,
		`[1,{"a":[["5.0","1","1.5"]],"c":"4294967296"},"book-10","XBT/USD"]`,
		`[1,{"a":[["0","1","1.5"]],"c":"7"},"book-0","XBT/USD"]`,
	)
}
