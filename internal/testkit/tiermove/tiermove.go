// Package tiermove moves test partitions between tiers with the tier manager's own mover
// (tiers/lifecycle: Manager.Move), so a test that watches a move (a mount reading through
// it, a resolver following it) sees exactly what chronicle-tier does: the same staging,
// fsyncs, renames, verification and order of deletions. The tiers package's own tests
// cannot import it (the tier manager stands on tiers); they place partitions with
// testkit.PlaceCold and PlaceRemote instead.
package tiermove

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// Host is the host id the moves' claims and stubs name.
const Host = testkit.PlacedHost

// move runs one move of k from tier from to tier to.
func move(roots layout.Roots, store objstore.Store, k layout.Key, p lifecycle.Policy, from, to layout.Tier, blockSize int) error {
	cfg := lifecycle.DefaultConfig()
	if blockSize > 0 {
		cfg.BlockSize = blockSize
	}
	cfg.Threads = 1
	if store != nil && roots.Remote == "" {
		roots.Remote = store.URI("")
	}
	m, err := lifecycle.New(lifecycle.Options{Config: cfg, Roots: roots, Store: store, Host: Host})
	if err != nil {
		return err
	}
	var size int64
	if fi, err := os.Stat(filepath.Join(testkit.PartDir(roots.Local(from), k), layout.BookName)); err == nil {
		size = fi.Size()
	}
	mv := lifecycle.Move{Key: k, Policy: p, From: from, To: to, Bytes: size, Reason: "test"}
	if err := m.Move(context.Background(), mv, nil); err != nil {
		return fmt.Errorf("tiermove: %w", err)
	}
	return nil
}

// HotToWarm moves a sealed partition from the hot to the warm root.
func HotToWarm(hot, warm string, k layout.Key) error {
	return move(layout.Roots{Hot: hot, Warm: warm}, nil, k, lifecycle.HotToWarm, layout.Hot, layout.Warm, 0)
}

// WarmToCold compresses a sealed partition of the warm root into the cold root, in
// frames of blockSize bytes (0: the tier manager's default).
func WarmToCold(warm, cold string, k layout.Key, blockSize int) error {
	return move(layout.Roots{Warm: warm, Cold: cold}, nil, k, lifecycle.WarmToCold, layout.Warm, layout.Cold, blockSize)
}

// ColdToRemote uploads a cold partition to store, verifies it and leaves the stub in its
// place.
func ColdToRemote(cold string, store objstore.Store, k layout.Key) error {
	return move(layout.Roots{Cold: cold}, store, k, lifecycle.ColdToRemote, layout.Cold, layout.Remote, 0)
}
