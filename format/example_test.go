package format_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/format"
)

// A book file written with a BookWriter and read back through a read-only mapping, as a
// researcher's program reads book.q from any tier of the mount.
func ExampleOpenBook() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "book.q")

	h := format.NewBookHeader("binance-spot", "ETHUSDT", 1, 20240808)
	w, err := format.CreateBook(path, h, format.Options{ChunkSize: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	const t0 = 1723161600_000_000_000 // 2024-08-09T00:00:00Z in ns
	scale := int64(100_000_000)       // 10^DefaultDecimals
	for i, r := range []format.BookRecord{
		{TypeID: format.TypeLevel, Flags: format.FlagBid, Price: 2681_39 * scale / 100, Qty: 3 * scale},
		{TypeID: format.TypeLevel, Flags: format.FlagAsk, Price: 2681_40 * scale / 100, Qty: 2 * scale},
		{TypeID: format.TypeTrade, Flags: format.FlagAsk, Price: 2681_40 * scale / 100, Qty: scale / 2},
	} {
		r.SymbolID, r.ExchTs, r.RecvTs, r.Seq = 1, t0+int64(i)*1000, t0+int64(i)*1000+250_000, uint64(i+1)
		if err := w.WriteBook(&r); err != nil {
			log.Fatal(err)
		}
	}
	// Readers see records only once they are committed.
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	m, err := format.MapFile(path)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	br, err := format.OpenBook(m, m.Size(), path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(br.Header().Venue, br.Len(), "records")
	it := br.Iter()
	for it.Next() {
		r := it.Record()
		side := "bid"
		if r.Side() == format.FlagAsk {
			side = "ask"
		}
		fmt.Printf("%d %s %.2f x %.1f\n", r.TypeID, side, float64(r.Price)/float64(scale), float64(r.Qty)/float64(scale))
	}
	if err := it.Err(); err != nil { // a damaged file names its offset here
		log.Fatal(err)
	}
	// Output:
	// binance-spot 3 records
	// 1 bid 2681.39 x 3.0
	// 1 ask 2681.40 x 2.0
	// 2 ask 2681.40 x 0.5
}
