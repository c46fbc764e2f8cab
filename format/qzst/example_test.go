package qzst_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/format/qzst"
)

// A file turned into seekable zstd (.zst + .idx), as the tier manager makes the cold tier,
// then read at any offset: only the frame holding it is fetched and decoded, and only up to
// the bytes asked for.
func ExampleOpenFile() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// 3 MiB of stand-in for a book.q, cut into 1 MiB frames.
	data := bytes.Repeat([]byte("chronicle records "), 3<<20/18+1)[:3<<20]
	zst, idx := filepath.Join(dir, "book.q.zst"), filepath.Join(dir, "book.q.zst.idx")
	res, err := qzst.Transcode(context.Background(), bytes.NewReader(data), int64(len(data)), zst, idx,
		qzst.Options{BlockSize: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(res.Index.Frames), "frames,", res.Size, "bytes in")

	// One cache of decoded frames serves every reader of the process.
	cache, err := qzst.NewCache(qzst.CacheOptions{MaxBytes: 8 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	r, err := qzst.OpenFile(zst, idx, cache, qzst.ReaderOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 18)
	off := int64(2<<20 + 18*1000) // inside the third frame
	off -= off % 18
	if _, err := r.ReadAt(buf, off); err != nil { // damage is a *qzst.CorruptError here
		log.Fatal(err)
	}
	fmt.Printf("%d bytes; at %d: %q\n", r.Size(), off, buf)
	// Output:
	// 3 frames, 3145728 bytes in
	// 3145728 bytes; at 2115144: "chronicle records "
}
