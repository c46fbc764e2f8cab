// Package all links every venue into a binary: import it for its side effect. A new venue
// package adds its import line here.
package all

import (
	_ "github.com/chronicle/chronicle/venue/binance" // binance-perp, binance-coinm, binance-spot
	_ "github.com/chronicle/chronicle/venue/kraken"  // kraken-spot
	_ "github.com/chronicle/chronicle/venue/okx"     // okx (spot, swaps, futures)
)
