package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/chronicle/chronicle/internal/bytesize"
)

type bindCfg struct {
	Cache   bytesize.Size `toml:"cache_bytes" flag:"cache-bytes" help:"frame cache"`
	Disk    bytesize.Size `toml:"disk_bytes" flag:"disk-bytes" help:"disk cache"`
	Timeout time.Duration `toml:"timeout" flag:"timeout" help:"one request"`
	Venues  []string      `toml:"venues" flag:"venues" help:"venues"`
	Views   []int         `toml:"views" flag:"views" help:"top-N views"`
	Debug   bool          `toml:"debug" flag:"debug" help:"log everything"`
	Addr    string        `toml:"metrics_addr" flag:"metrics-addr" help:"serve /metrics here"`
	Level   int           `toml:"level" flag:"level" help:"zstd level"`
	Hidden  string        `toml:"hidden"` // no flag tag: the file only
	Nested  struct {
		Depth int `toml:"depth" flag:"depth" help:"depth"`
	} `toml:"nested"`
}

func bindFixture(t *testing.T, toml string, args ...string) (*bindCfg, *Binder, string) {
	t.Helper()
	c := &bindCfg{Cache: 256 << 20, Timeout: time.Second, Venues: []string{"a"}, Addr: ":9100", Level: 3}
	fl := pflag.NewFlagSet("x", pflag.ContinueOnError)
	b := NewBinder(fl).Section("s", c)
	if err := fl.Parse(args); err != nil {
		t.Fatal(err)
	}
	path := ""
	if toml != "" {
		path = filepath.Join(t.TempDir(), "c.toml")
		if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return c, b, path
}

// The order is defaults, then the file, then the flags given; a flag not given leaves the
// file's value.
func TestBindOrder(t *testing.T) {
	c, b, path := bindFixture(t, "[s]\ncache_bytes = \"1GiB\"\ndisk_bytes = 4096\ntimeout = \"5s\"\nvenues = [\"x\", \"y\"]\nlevel = 7\nhidden = \"h\"\nnested.depth = 2\n",
		"--timeout", "2s", "--venues", "p,q", "--venues", "r", "--debug", "--views", "1,10", "--depth", "9")
	if err := b.Load(path); err != nil {
		t.Fatal(err)
	}
	if c.Cache != 1<<30 || c.Disk != 4096 || c.Timeout != 5*time.Second || c.Debug || c.Level != 7 || c.Hidden != "h" || c.Nested.Depth != 2 {
		t.Fatalf("after the file: %+v", c)
	}
	b.Apply()
	if c.Cache != 1<<30 || c.Timeout != 2*time.Second || strings.Join(c.Venues, ",") != "p,q,r" || !c.Debug || len(c.Views) != 2 || c.Views[1] != 10 ||
		c.Level != 7 || c.Addr != ":9100" || c.Nested.Depth != 9 {
		t.Fatalf("after the flags: %+v", c)
	}
	// Apply twice gives the same (cli.Validate checks, applies, checks).
	b.Apply()
	if strings.Join(c.Venues, ",") != "p,q,r" {
		t.Fatalf("second apply: %v", c.Venues)
	}
}

func TestBindDefaultsAndHelp(t *testing.T) {
	c, b, _ := bindFixture(t, "", "--cache-bytes", "2GiB")
	if c.Cache != 2<<30 {
		t.Fatalf("parse: %v", c.Cache)
	}
	if err := b.Load(""); err != nil {
		t.Fatal(err)
	}
	if c.Cache != 256<<20 {
		t.Fatalf("Load must start from the defaults: %v", c.Cache)
	}
	b.Apply()
	if c.Cache != 2<<30 {
		t.Fatalf("apply: %v", c.Cache)
	}
	help := b.FlagSet().FlagUsages()
	for _, want := range []string{"--cache-bytes size", "(default 256MiB)", "([s] cache_bytes)", "--timeout duration", "(default 1s)",
		`(default ":9100")`, "([s] nested.depth)", "--views ints"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "hidden") {
		t.Errorf("a field without a flag tag got a flag:\n%s", help)
	}
}

func TestBindErrors(t *testing.T) {
	c := &bindCfg{}
	fl := pflag.NewFlagSet("x", pflag.ContinueOnError)
	NewBinder(fl).Section("s", c)
	for _, args := range [][]string{{"--cache-bytes", "lots"}, {"--timeout", "5"}, {"--level", "x"}, {"--views", "1,a"}} {
		if err := fl.Parse(args); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v", args, err)
		}
	}
	_, b, path := bindFixture(t, "[s]\ncache_bytez = 1\n")
	if err := b.Load(path); err == nil || !strings.Contains(err.Error(), "s.cache_bytez") {
		t.Fatalf("unknown key: %v", err)
	}
	_, b, path = bindFixture(t, "[s]\ncache_bytes = \"1.5GiB\"\n")
	if err := b.Load(path); err == nil || !strings.Contains(err.Error(), "cache_bytes") {
		t.Fatalf("bad size: %v", err)
	}
}

func TestBindOnly(t *testing.T) {
	fl := pflag.NewFlagSet("x", pflag.ContinueOnError)
	NewBinder(fl).Section("s", &bindCfg{}, "timeout", "debug")
	if fl.Lookup("timeout") == nil || fl.Lookup("debug") == nil || fl.Lookup("cache-bytes") != nil {
		t.Fatal(fl.FlagUsages())
	}
}

func TestBindFlagsOnly(t *testing.T) {
	c := &bindCfg{Level: 3}
	fl := pflag.NewFlagSet("x", pflag.ContinueOnError)
	b := NewBinder(fl).Section("", c)
	if err := fl.Parse([]string{"--level", "5"}); err != nil {
		t.Fatal(err)
	}
	b.Apply()
	if c.Level != 5 || strings.Contains(fl.FlagUsages(), "([") {
		t.Fatalf("%+v\n%s", c, fl.FlagUsages())
	}
}
