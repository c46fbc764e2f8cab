package stub

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validClaim() *Claim {
	return &Claim{Host: "capture-a", Nonce: strings.Repeat("0f", 16), Partition: "v1/binance-perp/eth-usdt/2024-08-08",
		Slot: "", ClaimedAt: time.Unix(1700000000, 0).UTC(), ZstSHA256: strings.Repeat("ab", 32)}
}

func TestClaimRoundTrip(t *testing.T) {
	c := validClaim()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseClaim(b, "claim")
	if err != nil || *got != *c || !got.Same(c) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for name, in := range map[string]string{
		"unknown field": strings.Replace(string(b), `"version": 1`, `"version": 1, "x": 1`, 1),
		"version":       strings.Replace(string(b), `"version": 1`, `"version": 2`, 1),
		"host":          strings.Replace(string(b), `"capture-a"`, `"../a"`, 1),
		"nonce":         strings.Replace(string(b), `"0f0f`, `"0F0F`, 1),
		"partition":     strings.Replace(string(b), `2024-08-08"`, `2024-08-08/book.q"`, 1),
		"slot":          strings.Replace(string(b), `"slot": ""`, `"slot": "hosts"`, 1),
		"trailing":      string(b) + "{}",
		"huge":          strings.Repeat(" ", maxClaimSize+1),
	} {
		if _, err := ParseClaim([]byte(in), "claim"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	other := *c
	other.Nonce = strings.Repeat("1e", 16)
	if c.Same(&other) {
		t.Fatal("claims of two uploads are the same")
	}
}

func TestCollisionRoundTrip(t *testing.T) {
	s := validStub()
	s.Slot = HostSlot("capture-b")
	c := &Collision{Partition: "v1/binance-perp/eth-usdt/2024-08-08", Host: "capture-b", Holder: validClaim(),
		DetectedAt: time.Unix(1700000001, 0).UTC(), Uploaded: s}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCollision(b, "col")
	if err != nil || got.Holder.Host != "capture-a" || got.Uploaded.Slot != "hosts/capture-b" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for name, in := range map[string]string{
		"no upload": strings.Replace(string(b), `"uploaded"`, `"uploaded_x"`, 1),
		"bad stub":  strings.Replace(string(b), `"format": "chronicle-remote-stub"`, `"format": "x"`, 1),
		"bad host": strings.Replace(string(b), `"host": "capture-b",
  "holder"`, `"host": "B",
  "holder"`, 1),
	} {
		if _, err := ParseCollision([]byte(in), "col"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseClaim(f *testing.F) {
	b, _ := validClaim().Marshal()
	fuzzDocument(f, ParseClaim, nil, b, []byte(`{"format":"chronicle-remote-claim","version":1}`))
}

func FuzzParseCollision(f *testing.F) {
	s := validStub()
	s.Slot = HostSlot("capture-b")
	b, _ := (&Collision{Partition: "v1/binance-perp/eth-usdt/2024-08-08", Host: "capture-b", Holder: validClaim(),
		DetectedAt: time.Unix(1700000001, 0).UTC(), Uploaded: s}).Marshal()
	fuzzDocument(f, ParseCollision, nil, b, []byte(`{"format":"chronicle-collision","version":1}`))
}
