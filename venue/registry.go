package venue

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

var (
	regMu    sync.RWMutex
	registry = map[string]Venue{}
)

// ErrUnknownVenue: no venue is registered under the name.
var ErrUnknownVenue = errors.New("unknown venue")

// Register makes a venue known by its Name. Venue packages call it from init; binaries get
// every venue by importing venue/all.
func Register(v Venue) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[v.Name()]; dup {
		panic("venue: " + v.Name() + " registered twice")
	}
	registry[v.Name()] = v
}

// Lookup returns the registered venue with the given id.
func Lookup(name string) (Venue, error) {
	regMu.RLock()
	defer regMu.RUnlock()
	if v, ok := registry[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("%q (known: %v): %w", name, namesLocked(), ErrUnknownVenue)
}

// Names lists the registered venue ids, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	n := make([]string, 0, len(registry))
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
