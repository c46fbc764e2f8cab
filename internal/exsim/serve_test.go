package exsim

import (
	"strings"
	"testing"

	_ "github.com/chronicle/chronicle/venue/all"
)

func TestParseSetsAndServeConfig(t *testing.T) {
	sets, err := ParseSets([]string{"spot=binance-spot:a.jsonl.gz,b.jsonl.gz", "k=kraken-spot:/abs/k.txt"})
	if err != nil || len(sets) != 2 || len(sets[0].Files) != 2 || sets[1].Files[0] != "/abs/k.txt" {
		t.Fatalf("%+v %v", sets, err)
	}
	if all, err := ParseSets(nil); err != nil || len(all) != len(Bundled()) {
		t.Fatalf("bundled: %v", err)
	}
	for _, bad := range [][]string{{"x"}, {"a=nope:f"}, {"a/b=binance-spot:f"}, {"a=binance-spot:f", "a=binance-spot:g"}} {
		if _, err := ParseSets(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c := DefaultServeConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Play = "later"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--play") {
		t.Fatalf("play: %v", err)
	}
}
