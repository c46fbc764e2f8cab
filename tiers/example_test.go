package tiers_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
)

// A reader asks for a partition's book.q by its logical name; the resolver finds the tier
// that holds it (hot, warm, cold or the bucket) and hands back a ReaderAt over the plain
// bytes, whichever tier that is.
func ExampleResolver_Open() {
	base, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)
	roots := layout.Roots{Hot: filepath.Join(base, "hot"), Warm: filepath.Join(base, "warm"), Cold: filepath.Join(base, "cold")}

	// A sealed partition in the warm tier, as chronicle-tier leaves it after a day.
	k := layout.Key{Venue: "binance-spot", Symbol: "eth-usdt", Date: "2024-08-08"}
	book := filepath.Join(roots.Warm, filepath.FromSlash(k.Dir()), layout.BookName)
	recs := []format.BookRecord{{TypeID: format.TypeLevel, Flags: format.FlagBid, SymbolID: 1, Price: 2681_39_000000, Qty: 3_00000000}}
	// Sealed: the file never changes again.
	if err := format.WriteBookFile(book, format.NewBookHeader(k.Venue, "ETHUSDT", 1, 20240808), recs, format.Options{ChunkSize: 1 << 20}); err != nil {
		log.Fatal(err)
	}

	res, err := tiers.New(roots, tiers.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer res.Close()
	h, err := res.Open(context.Background(), k.Dir()+"/book.q")
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	br, err := format.OpenBook(h, h.Size(), h.Source())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Tier(), h.Sealed(), br.Len(), "record")
	// Output:
	// warm true 1 record
}
