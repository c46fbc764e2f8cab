package fs_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/fs"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
)

// The mount serves every partition of every tier as plain files under one tree: here a
// warm partition's book.q, read with read(2) like any file, and the tier that holds it in an
// extended attribute. (It mounts for real: root, /dev/fuse.)
func ExampleFS_Mount() {
	base, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)
	roots := layout.Roots{Hot: filepath.Join(base, "hot"), Warm: filepath.Join(base, "warm"), Cold: filepath.Join(base, "cold")}
	k := layout.Key{Venue: "binance-spot", Symbol: "eth-usdt", Date: "2024-08-08"}
	warm := filepath.Join(roots.Warm, filepath.FromSlash(k.Dir()), layout.BookName)
	recs := []format.BookRecord{{TypeID: format.TypeLevel, Flags: format.FlagBid, SymbolID: 1, Price: 2681_39_000000, Qty: 3_00000000}}
	if err := format.WriteBookFile(warm, format.NewBookHeader(k.Venue, "ETHUSDT", 1, 20240808), recs, format.Options{ChunkSize: 1 << 20}); err != nil {
		log.Fatal(err)
	}

	res, err := tiers.New(roots, tiers.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer res.Close()
	f, err := fs.New(res, fs.DefaultConfig(), nil)
	if err != nil {
		log.Fatal(err)
	}
	mnt := filepath.Join(base, "mnt")
	if err := fs.CleanStale(mnt, true, nil); err != nil { // makes the folder, clears a dead mount
		log.Fatal(err)
	}
	m, err := f.Mount(mnt)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Unmount(5 * time.Second)

	book := filepath.Join(mnt, "v1", "binance-spot", "eth-usdt", "2024-08-08", "book.q")
	b, err := os.ReadFile(book)
	if err != nil {
		log.Fatal(err)
	}
	tier := make([]byte, 16)
	n, err := unix.Getxattr(book, fs.XattrTier, tier)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(b), "bytes from", string(tier[:n]))
	// Output:
	// 4160 bytes from warm
}
