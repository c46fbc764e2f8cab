package feed

import (
	"strings"
	"testing"
)

func TestNormalizeAndJournalRoots(t *testing.T) {
	c := Defaults()
	c.Symbols = []string{" ethusdt", "", "xbt/usd "}
	c.Normalize()
	if strings.Join(c.Symbols, ",") != "ETHUSDT,XBT/USD" {
		t.Fatalf("symbols %q", c.Symbols)
	}
	c.HotRoot = "/dev/shm/x"
	if r := c.JournalRoots(); len(r) != 2 || r[0].Dir != "/dev/shm/x" || r[1].Dir != c.Dir() {
		t.Fatalf("roots %+v", r)
	}
	c.JournalDir = "/tmp/j"
	if r := c.JournalRoots(); len(r) != 1 || r[0].Dir != "/tmp/j" {
		t.Fatalf("roots with a journal dir %+v", r)
	}
}
