package etl

import (
	"errors"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/config"
)

// TestConfigValidated: each [etl] value out of range is refused at start with an error
// naming it; the defaults pass.
func TestConfigValidated(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct{ toml, key string }{
		{`output = "cold"`, "output"},
		{`grace = "-1h"`, "grace"},
		{`snapshot_interval = "10ms"`, "snapshot_interval"},
		{`late_policy = "drop"`, "late_policy"},
		{`dim_reload = "-1s"`, "dim_reload"},
		{`checkpoint_interval = "0s"`, "checkpoint_interval"},
		{`meta_interval = "-1m"`, "meta_interval"},
		{`max_buffered = 0`, "max_buffered"},
		{`day_hold = "-1s"`, "day_hold"},
		{`idle_spin = "-1ms"`, "idle_spin"},
		{`idle_poll = "0s"`, "idle_poll"},
		{`chunk_size = 4096`, "chunk_size"},
		{`venues = ["binance-perp", ""]`, "venues"},
	} {
		c := Defaults()
		if err := config.Decode("[etl]\n"+tc.toml+"\n", "c.toml", map[string]any{"etl": &c}); err != nil {
			t.Fatalf("%s: %v", tc.toml, err)
		}
		if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v, want an error naming %s", tc.toml, err, tc.key)
		}
	}
}
