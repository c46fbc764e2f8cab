package config

import (
	"strings"
	"testing"
	"time"
)

type feedCfg struct {
	Symbols []string      `toml:"symbols"`
	Roll    time.Duration `toml:"roll"`
	Addr    string        `toml:"metrics_addr"`
}

func TestDecodeSectionsAndTypos(t *testing.T) {
	text := `
[log]
level = "debug"
[feed]
symbols = ["ethusdt", "btcusdt"]
roll = "30m"
[etl]
whatever = 1
`
	lg := DefaultLog()
	f := feedCfg{Addr: ":9101"}
	if err := Decode(text, "c.toml", map[string]any{"log": &lg, "feed": &f}); err != nil {
		t.Fatal(err)
	}
	if lg.Level != "debug" || lg.Format != "json" || len(f.Symbols) != 2 || f.Roll != 30*time.Minute || f.Addr != ":9101" {
		t.Fatalf("decoded %+v %+v", lg, f)
	}
	err := Decode("[feed]\nsymbolz = [\"x\"]\n", "c.toml", map[string]any{"feed": &f})
	if err == nil || !strings.Contains(err.Error(), "feed.symbolz") {
		t.Fatalf("typo not reported: %v", err)
	}
	if err := Decode("[feed\n", "c.toml", map[string]any{"feed": &f}); err == nil || !strings.Contains(err.Error(), "c.toml") {
		t.Fatalf("syntax error not reported with file name: %v", err)
	}
}

func TestResolveHost(t *testing.T) {
	if id, from, err := ResolveHost("capture-a"); err != nil || id != "capture-a" || from != HostFromConfig {
		t.Fatalf("configured: %q %q %v", id, from, err)
	}
	for _, bad := range []string{"Capture-A", ".a", "a/b", strings.Repeat("x", 65), "a b"} {
		if _, _, err := ResolveHost(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	id, from, err := ResolveHost("")
	if err != nil || from != HostFromHostname || !ValidHostID(id) {
		t.Fatalf("from the hostname: %q %q %v", id, from, err)
	}
	var h Host
	if err := Decode("[host]\nid = \"capture-b\"\n", "c.toml", map[string]any{"host": &h}); err != nil || h.ID != "capture-b" {
		t.Fatalf("[host]: %+v %v", h, err)
	}
}
