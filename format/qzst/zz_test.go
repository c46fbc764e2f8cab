package qzst

import (
	"os"
	"testing"
	"time"
)

func TestZZDec(t *testing.T) {
	z, _ := os.ReadFile("/tmp/gb/fs2.q.zst")
	xb, _ := os.ReadFile("/tmp/gb/fs2.q.zst.idx")
	x, err := ParseIndex(xb, "x")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := newFrameDecoder(1)
	for _, nb := range []int{1, 4, 32, 1, 32} {
		bufs := make([][]byte, nb)
		for i := range bufs {
			bufs[i] = make([]byte, 0, 1<<20)
		}
		t0 := time.Now()
		for i, fr := range x.Frames {
			b := bufs[i%nb]
			b, _ = d.DecodeAll(z[fr.CompressedOffset:fr.CompressedOffset+uint64(fr.CompressedSize)], b[:0])
		}
		t.Logf("%d rotating buffers: %.0f MB/s", nb, float64(x.Size)/time.Since(t0).Seconds()/1e6)
	}
}
