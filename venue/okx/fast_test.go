package okx

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
		`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","checksum":0,"seqId":5,"prevSeqId":5}]}`,
		`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["1","2","0","1"]],"bids":[["0.5","1"]],"ts":"1","checksum":7,"prevSeqId":-1,"seqId":3}]}`,
		`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["1","2","0","1"]],"bids":[],"ts":"1","checksum":7,"checksum":8}]}`,
		`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["1","2","0","1"]],"bids":[],"ts":"1","checksum":7,"seqId":3}]}`,
		`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["1","2","01"]],"bids":[],"ts":"1","checksum":-2147483649}]}`,
		`{"arg":{"channel":"books50-l2-tbt","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["0","2"]],"bids":[],"ts":"1","checksum":1}]}`,
	)
}
