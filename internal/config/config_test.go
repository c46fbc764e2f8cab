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
