package etl

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/meta"
)

// The capture host's id goes into every meta.json with where it came from; a refinery
// given none records none.
func TestHostInMeta(t *testing.T) {
	j := ethBusy(t, 1723161255000, 1723161256000, 20, 100, nil)
	j.close()
	for _, host := range []*meta.Host{{ID: "capture-a", From: meta.HostFromConfig}, nil} {
		root := t.TempDir()
		cfg := Defaults()
		cfg.CheckpointInterval = time.Hour
		if _, err := Refine(context.Background(), Options{Config: cfg, Root: root, JournalDir: j.dir, SealAll: true, Host: host}); err != nil {
			t.Fatal(err)
		}
		m := readMeta(t, ethDir(root, "2024-08-08"))
		switch {
		case host == nil && m.Source.Host != nil:
			t.Fatalf("no host given, meta.json says %+v", m.Source.Host)
		case host != nil && (m.Source.Host == nil || *m.Source.Host != *host):
			t.Fatalf("meta.json source.host %+v, want %+v", m.Source.Host, host)
		}
	}
}
