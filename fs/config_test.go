package fs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/config"
)

func TestConfigDecode(t *testing.T) {
	c := DefaultConfig()
	text := `
[fs]
cache_bytes = 1073741824
views_cache_bytes = "32MiB"
allow_other = true
metrics_addr = ""
passthrough = false
sealed_timeout = "10m"
growing_timeout = "2ms"
remote_timeout = "5s"
read_ahead_kb = 4096

[feed]
whatever = 1
`
	if err := config.Decode(text, "test.toml", map[string]any{"fs": &c}); err != nil {
		t.Fatal(err)
	}
	if c.CacheBytes != 1<<30 || !c.AllowOther || c.MetricsAddr != "" || c.Passthrough || c.SealedTimeout != 10*time.Minute ||
		c.GrowingTimeout != 2*time.Millisecond || c.RemoteTimeout != 5*time.Second || c.ReadAheadKB != 4096 {
		t.Fatalf("decoded %+v", c)
	}
	if c.ViewsCacheBytes != 32<<20 {
		t.Fatalf("a size as text: %v", c.ViewsCacheBytes)
	}
	if c.DirTimeout != time.Second || c.MaxWrite != 1<<20 || c.MaxBackground != 64 {
		t.Fatalf("defaults lost: %+v", c)
	}
	if c.EffectiveMemoryLimit() != 1<<30+int64(c.ViewsCacheBytes)+64<<20 { // both caches + 64 MiB
		t.Fatalf("memory limit %d", c.EffectiveMemoryLimit())
	}
	err := config.Decode("[fs]\ncache_byte = 5\n", "typo.toml", map[string]any{"fs": &c})
	if err == nil || !strings.Contains(err.Error(), "fs.cache_byte") {
		t.Fatalf("typo: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"cache_bytes":       func(c *Config) { c.CacheBytes = 1 },
		"remote_timeout":    func(c *Config) { c.RemoteTimeout = 0 },
		"max_write":         func(c *Config) { c.MaxWrite = 3 << 20 },
		"max_background":    func(c *Config) { c.MaxBackground = 0 },
		"watch_interval":    func(c *Config) { c.WatchInterval = -1 },
		"sealed_timeout":    func(c *Config) { c.SealedTimeout = -time.Second },
		"views_cache_bytes": func(c *Config) { c.ViewsCacheBytes = 1 << 20 },
		"views":             func(c *Config) { c.Views = []int{10, 0} },
		"views ":            func(c *Config) { c.Views = []int{10, 10} },
	} {
		c := DefaultConfig()
		mod(&c)
		err := c.Validate()
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
