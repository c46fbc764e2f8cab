// Package objstoretest is the conformance suite every objstore backend must
// pass. Backends run it from their own tests:
//
//	objstoretest.Run(t, func(t *testing.T) objstore.Store { ... })
//
// newStore must return an empty store (a fresh directory or prefix) each
// call. To exercise multipart uploads, give backends that have them a
// multipart threshold below LargeSize.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// LargeSize is the size of the objects used for multipart-sized uploads.
const LargeSize = 11<<20 + 12345

// Run runs the conformance suite. The random seed is logged (testenv.Seed: set
// CHRONICLE_SEED to replay a failure).
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	seed := uint64(testenv.Seed(t))
	var sub atomic.Uint64
	open := func(t *testing.T) (objstore.Store, *rand.Rand) {
		st := newStore(t)
		t.Cleanup(func() { st.Close() })
		return st, rand.New(rand.NewPCG(seed, sub.Add(1)))
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, st objstore.Store, rng *rand.Rand)
	}{
		{"PutHeadGet", testPutHeadGet},
		{"Ranges", testRanges},
		{"Empty", testEmpty},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"List", testList},
		{"ListDir", testListDir},
		{"ExpectedChecksum", testExpectedChecksum},
		{"ShortInput", testShortInput},
		{"InputChangesDuringPut", testInputChanges},
		{"Large", testLarge},
		{"ConcurrentRanges", testConcurrentRanges},
		{"Cancelled", testCancelled},
		{"InvalidKeys", testInvalidKeys},
		{"URIContainment", testURIContainment},
		{"IfAbsent", testIfAbsent},
		{"IfAbsentRace", testIfAbsentRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, rng := open(t)
			tc.fn(t, st, rng)
		})
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func put(t *testing.T, st objstore.Store, key string, data []byte) objstore.ObjectInfo {
	t.Helper()
	info, err := st.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	if err != nil {
		t.Fatalf("put %q (%d bytes): %v", key, len(data), err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.SHA256 != objstore.SHA256Hex(data) {
		t.Fatalf("put %q: info %+v; want size %d sha256 %s", key, info, len(data), objstore.SHA256Hex(data))
	}
	if info.ETag == "" || info.ServerChecksum == "" || info.Parts < 1 {
		t.Fatalf("put %q: info %+v lacks etag, server checksum or parts", key, info)
	}
	return info
}

func get(t *testing.T, st objstore.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, err := st.GetRange(context.Background(), key, off, n)
	if err != nil {
		t.Fatalf("get %q [%d,+%d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("get %q [%d,+%d): read: %v", key, off, n, err)
	}
	if int64(len(b)) != n {
		t.Fatalf("get %q [%d,+%d): got %d bytes", key, off, n, len(b))
	}
	return b
}

func checkRange(t *testing.T, st objstore.Store, key string, data []byte, off, n int64) {
	t.Helper()
	if got := get(t, st, key, off, n); !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("get %q [%d,+%d): bytes differ from what was put", key, off, n)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v; want one wrapping %v", what, err, target)
	}
}

func testPutHeadGet(t *testing.T, st objstore.Store, rng *rand.Rand) {
	data := randBytes(rng, 1<<20+123)
	info := put(t, st, "v1/venue/sym/2024-01-24/book.q.zst", data)
	head, err := st.Head(context.Background(), "v1/venue/sym/2024-01-24/book.q.zst")
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if head.Size != info.Size || head.SHA256 != info.SHA256 || head.ETag != info.ETag {
		t.Fatalf("head %+v disagrees with put %+v", head, info)
	}
	if head.ModTime.IsZero() {
		t.Fatalf("head %+v has no modification time", head)
	}
	full := get(t, st, info.Key, 0, info.Size)
	if objstore.SHA256Hex(full) != info.SHA256 {
		t.Fatalf("full read hashes to %s, put reported %s", objstore.SHA256Hex(full), info.SHA256)
	}
	if objstore.ReadRange(context.Background(), st, info.Key, 7, full[:0]) != nil {
		t.Fatalf("zero-length ReadRange failed")
	}
	p := make([]byte, 4096)
	if err := objstore.ReadRange(context.Background(), st, info.Key, 1000, p); err != nil || !bytes.Equal(p, data[1000:5096]) {
		t.Fatalf("ReadRange [1000,+4096): err %v or bytes differ", err)
	}
}

func testRanges(t *testing.T, st objstore.Store, rng *rand.Rand) {
	data := randBytes(rng, 100_000)
	const key = "r/obj"
	put(t, st, key, data)
	size := int64(len(data))
	for _, r := range [][2]int64{
		{0, 1}, {0, 4096}, {50_000, 4096}, {size - 4096, 4096}, {size - 1, 1}, {0, size},
		{size / 3, size / 3}, {12345, 0}, {size, 0}, {0, 0},
	} {
		checkRange(t, st, key, data, r[0], r[1])
	}
	for range 20 {
		off := rng.Int64N(size)
		checkRange(t, st, key, data, off, rng.Int64N(size-off)+1)
	}
	ctx := context.Background()
	for _, r := range [][2]int64{
		{size - 10, 11}, {size, 1}, {size + 1, 1}, {size + 1, 0}, {size * 2, 4096},
		{-1, 10}, {0, -1}, {0, size + 1}, {1, 1<<63 - 1},
	} {
		rc, err := st.GetRange(ctx, key, r[0], r[1])
		if err == nil {
			rc.Close()
		}
		wantErr(t, fmt.Sprintf("get [%d,+%d) of %d-byte object", r[0], r[1], size), err, objstore.ErrOutOfRange)
	}
	// A reader delivers exactly n bytes even to a large buffer.
	rc, err := st.GetRange(ctx, key, 10, 100)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer rc.Close()
	buf := make([]byte, 1000)
	var n int
	for {
		k, err := rc.Read(buf[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if n != 100 || !bytes.Equal(buf[:n], data[10:110]) {
		t.Fatalf("read %d bytes into a large buffer; want exactly the 100 requested", n)
	}
}

func testEmpty(t *testing.T, st objstore.Store, _ *rand.Rand) {
	info := put(t, st, "empty", nil)
	if info.SHA256 != objstore.SHA256Hex(nil) {
		t.Fatalf("empty object sha256 %s", info.SHA256)
	}
	head, err := st.Head(context.Background(), "empty")
	if err != nil || head.Size != 0 || head.SHA256 != objstore.SHA256Hex(nil) {
		t.Fatalf("head empty: %+v, %v", head, err)
	}
	get(t, st, "empty", 0, 0)
	_, err = st.GetRange(context.Background(), "empty", 0, 1)
	wantErr(t, "get [0,+1) of empty object", err, objstore.ErrOutOfRange)
}

func testNotFound(t *testing.T, st objstore.Store, _ *rand.Rand) {
	ctx := context.Background()
	_, err := st.Head(ctx, "missing/key")
	wantErr(t, "head missing", err, objstore.ErrNotFound)
	_, err = st.GetRange(ctx, "missing/key", 0, 10)
	wantErr(t, "get missing", err, objstore.ErrNotFound)
	_, err = st.GetRange(ctx, "missing/key", 0, 0)
	wantErr(t, "zero-length get missing", err, objstore.ErrNotFound)
	if err := st.Delete(ctx, "missing/key"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	if err == nil || errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("not-found error %v must not claim the store is unavailable", err)
	}
}

func testOverwrite(t *testing.T, st objstore.Store, rng *rand.Rand) {
	a, b := randBytes(rng, 70_000), randBytes(rng, 30_000)
	put(t, st, "o/k", a)
	info := put(t, st, "o/k", b)
	head, err := st.Head(context.Background(), "o/k")
	if err != nil || head.Size != int64(len(b)) || head.SHA256 != info.SHA256 {
		t.Fatalf("head after overwrite: %+v, %v; want %d bytes sha256 %s", head, err, len(b), info.SHA256)
	}
	checkRange(t, st, "o/k", b, 0, int64(len(b)))
	_, err = st.GetRange(context.Background(), "o/k", 40_000, 10)
	wantErr(t, "get beyond the new, shorter object", err, objstore.ErrOutOfRange)
}

func testDelete(t *testing.T, st objstore.Store, rng *rand.Rand) {
	ctx := context.Background()
	put(t, st, "d/a", randBytes(rng, 10))
	put(t, st, "d/b", randBytes(rng, 10))
	if err := st.Delete(ctx, "d/a"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := st.Head(ctx, "d/a")
	wantErr(t, "head deleted", err, objstore.ErrNotFound)
	if _, err := st.Head(ctx, "d/b"); err != nil {
		t.Fatalf("sibling of deleted key: %v", err)
	}
	if err := st.Delete(ctx, "d/a"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	list, err := st.List(ctx, "d/")
	if err != nil || len(list) != 1 || list[0].Key != "d/b" {
		t.Fatalf("list after delete: %+v, %v", list, err)
	}
}

func testList(t *testing.T, st objstore.Store, rng *rand.Rand) {
	ctx := context.Background()
	sizes := map[string]int{"a/1": 1, "a/2/x": 22, "ab/3": 333, "b/4": 4444, "top": 5}
	for k, n := range sizes {
		put(t, st, k, randBytes(rng, n))
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/1", "a/2/x", "ab/3", "b/4", "top"}},
		{"a", []string{"a/1", "a/2/x", "ab/3"}},
		{"a/", []string{"a/1", "a/2/x"}},
		{"a/2", []string{"a/2/x"}},
		{"a/2/", []string{"a/2/x"}},
		{"b/4", []string{"b/4"}},
		{"c", nil},
		{"zz/yy/", nil},
		{"../", nil},
	} {
		got, err := st.List(ctx, c.prefix)
		if err != nil {
			t.Fatalf("list %q: %v", c.prefix, err)
		}
		keys := listedKeys(t, fmt.Sprintf("list %q", c.prefix), got, sizes)
		if !slices.Equal(keys, c.want) {
			t.Fatalf("list %q = %q, want %q", c.prefix, keys, c.want)
		}
	}
}

// listedKeys returns the keys of a listing, checking each object's size against sizes.
func listedKeys(t *testing.T, what string, objs []objstore.ObjectInfo, sizes map[string]int) []string {
	t.Helper()
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
		if o.Size != int64(sizes[o.Key]) {
			t.Fatalf("%s: %s size %d, want %d", what, o.Key, o.Size, sizes[o.Key])
		}
	}
	return keys
}

func testListDir(t *testing.T, st objstore.Store, rng *rand.Rand) {
	ctx := context.Background()
	sizes := map[string]int{"a/1": 1, "a/2/x": 22, "a/2/y/z": 7, "ab/3": 333, "b/4": 4444, "top": 5}
	for k, n := range sizes {
		put(t, st, k, randBytes(rng, n))
	}
	for _, c := range []struct {
		dir        string
		dirs, objs []string
	}{
		{"", []string{"a", "ab", "b"}, []string{"top"}},
		{"a/", []string{"2"}, []string{"a/1"}},
		{"a/2/", []string{"y"}, []string{"a/2/x"}},
		{"a/2/y/", nil, []string{"a/2/y/z"}},
		{"zz/", nil, nil},
	} {
		dirs, objs, err := st.ListDir(ctx, c.dir)
		if err != nil {
			t.Fatalf("listdir %q: %v", c.dir, err)
		}
		keys := listedKeys(t, fmt.Sprintf("listdir %q", c.dir), objs, sizes)
		if !slices.Equal(dirs, c.dirs) || !slices.Equal(keys, c.objs) {
			t.Fatalf("listdir %q = %q %q, want %q %q", c.dir, dirs, keys, c.dirs, c.objs)
		}
	}
	for _, bad := range []string{"a", "../", "a//"} {
		if _, _, err := st.ListDir(ctx, bad); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Fatalf("listdir %q: %v, want ErrInvalidKey", bad, err)
		}
	}
}

func testExpectedChecksum(t *testing.T, st objstore.Store, rng *rand.Rand) {
	ctx := context.Background()
	for _, size := range []int{50_000, LargeSize} {
		key := fmt.Sprintf("sum/%d", size)
		old := randBytes(rng, 100)
		put(t, st, key, old)
		data := randBytes(rng, size)
		wrong := objstore.SHA256Hex(append([]byte("x"), data...))
		_, err := st.Put(ctx, key, bytes.NewReader(data), int64(size), objstore.PutOptions{SHA256: wrong})
		wantErr(t, fmt.Sprintf("put %d bytes with wrong expected sha256", size), err, objstore.ErrChecksumMismatch)
		head, err := st.Head(ctx, key)
		if err != nil || head.SHA256 != objstore.SHA256Hex(old) {
			t.Fatalf("after a rejected put the old object must stay: %+v, %v", head, err)
		}
		_, err = st.Put(ctx, key, bytes.NewReader(data), int64(size), objstore.PutOptions{SHA256: "not-hex"})
		wantErr(t, "put with malformed expected sha256", err, objstore.ErrChecksumMismatch)
		info, err := st.Put(ctx, key, bytes.NewReader(data), int64(size), objstore.PutOptions{SHA256: objstore.SHA256Hex(data)})
		if err != nil || info.SHA256 != objstore.SHA256Hex(data) {
			t.Fatalf("put with right expected sha256: %+v, %v", info, err)
		}
	}
}

// shortReader ends after limit bytes.
type shortReader struct {
	data  []byte
	limit int64
}

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.limit {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:min(r.limit, int64(len(r.data)))])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func testShortInput(t *testing.T, st objstore.Store, rng *rand.Rand) {
	for _, size := range []int{1000, LargeSize} {
		data := randBytes(rng, size)
		key := fmt.Sprintf("short/%d", size)
		_, err := st.Put(context.Background(), key, shortReader{data, int64(size) - 7}, int64(size), objstore.PutOptions{})
		wantErr(t, fmt.Sprintf("put of %d declared bytes from a shorter reader", size), err, objstore.ErrShortInput)
		_, err = st.Head(context.Background(), key)
		wantErr(t, "head after short put", err, objstore.ErrNotFound)
	}
}

// flakyReader serves data, but after the first pass over offset 0 it
// flips byte 1: a file rewritten while being uploaded.
type flakyReader struct {
	data   []byte
	mu     sync.Mutex
	passes int
}

func (r *flakyReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	if off == 0 {
		r.passes++
	}
	changed := r.passes > 1
	r.mu.Unlock()
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if changed && off <= 1 && off+int64(n) > 1 {
		p[1-off] ^= 0xff
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// testInputChanges: whatever a backend does with input that changes under
// it, a successful Put must describe the stored bytes exactly.
func testInputChanges(t *testing.T, st objstore.Store, rng *rand.Rand) {
	ctx := context.Background()
	for _, size := range []int{10_000, LargeSize} {
		data := randBytes(rng, size)
		key := fmt.Sprintf("flaky/%d", size)
		info, err := st.Put(ctx, key, &flakyReader{data: data}, int64(size), objstore.PutOptions{})
		if err != nil {
			wantErr(t, "put of changing input", err, objstore.ErrChecksumMismatch)
			if _, herr := st.Head(ctx, key); !errors.Is(herr, objstore.ErrNotFound) {
				t.Fatalf("rejected put left an object behind: %v", herr)
			}
			t.Logf("size %d: put rejected changing input: %v", size, err)
			continue
		}
		stored := get(t, st, key, 0, int64(size))
		head, err := st.Head(ctx, key)
		if err != nil {
			t.Fatalf("head: %v", err)
		}
		if objstore.SHA256Hex(stored) != info.SHA256 || head.SHA256 != info.SHA256 {
			t.Fatalf("size %d: stored bytes hash to %s, put said %s, head says %s",
				size, objstore.SHA256Hex(stored), info.SHA256, head.SHA256)
		}
	}
}

func testLarge(t *testing.T, st objstore.Store, rng *rand.Rand) {
	data := randBytes(rng, LargeSize)
	info := put(t, st, "big/obj", data)
	t.Logf("large put: %d bytes in %d parts, etag %s, server checksum %s (%s)",
		info.Size, info.Parts, info.ETag, info.ServerChecksum, info.ChecksumType)
	head, err := st.Head(context.Background(), "big/obj")
	if err != nil || head.SHA256 != objstore.SHA256Hex(data) || head.Size != LargeSize {
		t.Fatalf("head large: %+v, %v", head, err)
	}
	full := get(t, st, "big/obj", 0, LargeSize)
	if !bytes.Equal(full, data) {
		t.Fatalf("large object read back differs")
	}
	// Ranges straddling every MiB boundary (part boundaries are multiples).
	for b := int64(1 << 20); b < LargeSize; b += 1 << 20 {
		checkRange(t, st, "big/obj", data, b-3000, min(6000, LargeSize-(b-3000)))
	}
}

func testConcurrentRanges(t *testing.T, st objstore.Store, rng *rand.Rand) {
	data := randBytes(rng, 4<<20+999)
	put(t, st, "conc/obj", data)
	size := int64(len(data))
	const workers, reads = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
		wg.Go(func() {
			for range reads {
				n := 4096 + wrng.Int64N(64<<10)
				off := wrng.Int64N(size - n)
				p := make([]byte, n)
				if err := objstore.ReadRange(context.Background(), st, "conc/obj", off, p); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(p, data[off:off+n]) {
					errs <- fmt.Errorf("range [%d,+%d) bytes differ", off, n)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testCancelled(t *testing.T, st objstore.Store, rng *rand.Rand) {
	data := randBytes(rng, 1000)
	put(t, st, "c/obj", data)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := st.Put(ctx, "c/new", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	wantErr(t, "put with cancelled context", err, context.Canceled)
	_, err = st.GetRange(ctx, "c/obj", 0, 10)
	wantErr(t, "get with cancelled context", err, context.Canceled)
	_, err = st.Head(ctx, "c/obj")
	wantErr(t, "head with cancelled context", err, context.Canceled)
	if _, err := st.Head(context.Background(), "c/new"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("cancelled put created an object: %v", err)
	}
}

func testInvalidKeys(t *testing.T, st objstore.Store, _ *rand.Rand) {
	ctx := context.Background()
	for _, k := range []string{
		"", "/abs", "trail/", "a//b", "..", "../x", "a/../b", "a/./b", ".", "a\\b", "a%2e", "k?x", "k#f",
		"a\x00b", "bad\xffutf8", ".objstore-tmp-123", "a/.objstore-tmp-x/b", strings.Repeat("k", objstore.MaxKeyLen+1),
	} {
		_, err := st.Put(ctx, k, bytes.NewReader([]byte("x")), 1, objstore.PutOptions{})
		wantErr(t, fmt.Sprintf("put key %q", k), err, objstore.ErrInvalidKey)
		_, err = st.Head(ctx, k)
		wantErr(t, fmt.Sprintf("head key %q", k), err, objstore.ErrInvalidKey)
		_, err = st.GetRange(ctx, k, 0, 1)
		wantErr(t, fmt.Sprintf("get key %q", k), err, objstore.ErrInvalidKey)
		wantErr(t, fmt.Sprintf("delete key %q", k), st.Delete(ctx, k), objstore.ErrInvalidKey)
	}
	// Unusual but valid keys work.
	for _, k := range []string{"a b/c=d+e,f@g:h~i", "ünïcödé/ключ", "x..y/...z", strings.Repeat("k", 200)} {
		checkPutGet(t, st, k, []byte("payload "+k))
	}
}

func checkPutGet(t *testing.T, st objstore.Store, key string, data []byte) {
	t.Helper()
	put(t, st, key, data)
	checkRange(t, st, key, data, 0, int64(len(data)))
	list, err := st.List(context.Background(), key)
	if err != nil || len(list) == 0 || list[0].Key != key {
		t.Fatalf("list %q: %+v, %v", key, list, err)
	}
}

func testURIContainment(t *testing.T, st objstore.Store, _ *rand.Rand) {
	u := st.URI("v1/venue/day/book.q.zst")
	k, err := st.KeyOf(u)
	if err != nil || k != "v1/venue/day/book.q.zst" {
		t.Fatalf("KeyOf(URI(k)) = %q, %v", k, err)
	}
	base := strings.TrimSuffix(u, "v1/venue/day/book.q.zst")
	root := strings.TrimSuffix(base, "/")
	loc, err := objstore.ParseURI(root)
	if base == "file:///" {
		loc, err = objstore.ParseURI(base)
	}
	if err != nil {
		t.Fatalf("store URI %q has an unparsable root: %v", u, err)
	}
	if k, err := loc.KeyOf(u); err != nil || k != "v1/venue/day/book.q.zst" {
		t.Fatalf("root %s: KeyOf(%q) = %q, %v", loc, u, k, err)
	}
	other := "file:///tmp/x/obj"
	if loc.Scheme == objstore.SchemeFile {
		other = "s3://some-bucket/x/obj"
	}
	for _, bad := range []string{
		"", base, root, base + "../escape", base + "a/../../escape", base + "a/../b", base + "./a",
		base + "a//b", base + "a/", base + "a%2F..%2Fb", base + "%2e%2e/x", base + "k?versionId=1",
		base + "k#frag", base + "a\\..\\b", base + "a\x00b", root + "sibling/obj", root + "-other/obj",
		other, strings.ToUpper(base[:2]) + base[2:] + "obj", "http://127.0.0.1/x", "s3://other-bucket/obj",
		"s3://" + base + "obj", " " + base + "obj", base + ".objstore-tmp-1",
	} {
		if k, err := st.KeyOf(bad); err == nil {
			t.Errorf("KeyOf(%q) = %q; want rejection", bad, k)
		} else if !errors.Is(err, objstore.ErrOutsideRoot) && !errors.Is(err, objstore.ErrInvalidURI) {
			t.Errorf("KeyOf(%q): %v; want ErrOutsideRoot", bad, err)
		}
	}
}

// testIfAbsent: a create-only Put creates a missing key, succeeds without writing when the
// key holds the same bytes (Existed), and fails with ErrExists, changing nothing, when it
// holds other bytes, for single and multipart-sized objects alike. A store without
// conditional writes refuses up front with ErrNoConditional.
func testIfAbsent(t *testing.T, st objstore.Store, rng *rand.Rand) {
	ctx := context.Background()
	ok, err := st.Conditional(ctx)
	if err != nil {
		t.Fatalf("conditional: %v", err)
	}
	if !ok {
		_, err := st.Put(ctx, "c/none", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{IfAbsent: true})
		wantErr(t, "if-absent put on a store without conditional writes", err, objstore.ErrNoConditional)
		if _, err := st.Head(ctx, "c/none"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("a refused if-absent put wrote something: %v", err)
		}
		return
	}
	for _, size := range []int{0, 1000, LargeSize} {
		key := fmt.Sprintf("c/obj-%d", size)
		first, other := randBytes(rng, size), randBytes(rng, size+1)
		info, err := st.Put(ctx, key, bytes.NewReader(first), int64(size), objstore.PutOptions{IfAbsent: true})
		if err != nil || info.Existed || info.SHA256 != objstore.SHA256Hex(first) {
			t.Fatalf("size %d: if-absent put of a new key: %+v %v", size, info, err)
		}
		again, err := st.Put(ctx, key, bytes.NewReader(first), int64(size), objstore.PutOptions{IfAbsent: true, SHA256: info.SHA256})
		if err != nil || !again.Existed || again.SHA256 != info.SHA256 || again.Size != int64(size) {
			t.Fatalf("size %d: if-absent put of the same bytes: %+v %v", size, again, err)
		}
		_, err = st.Put(ctx, key, bytes.NewReader(other), int64(len(other)), objstore.PutOptions{IfAbsent: true})
		wantErr(t, fmt.Sprintf("size %d: if-absent put over other bytes", size), err, objstore.ErrExists)
		if got := get(t, st, key, 0, int64(size)); !bytes.Equal(got, first) {
			t.Fatalf("size %d: a refused if-absent put changed the object", size)
		}
		if head, err := st.Head(ctx, key); err != nil || head.Size != int64(size) || head.SHA256 != info.SHA256 {
			t.Fatalf("size %d: head after a refused put: %+v %v", size, head, err)
		}
	}
	// A plain Put still replaces, whatever created the object.
	put(t, st, "c/obj-1000", []byte("replaced"))
}

// testIfAbsentRace: of several create-only Puts racing for one key exactly one creates it;
// the others fail with ErrExists and the object holds the winner's bytes.
func testIfAbsentRace(t *testing.T, st objstore.Store, rng *rand.Rand) {
	ctx := context.Background()
	if ok, err := st.Conditional(ctx); err != nil || !ok {
		t.Skipf("no conditional writes (%v)", err)
	}
	const racers = 6
	datas := make([][]byte, racers)
	for i := range datas {
		datas[i] = randBytes(rng, 4096+i)
	}
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			_, errs[i] = st.Put(ctx, "race/obj", bytes.NewReader(datas[i]), int64(len(datas[i])), objstore.PutOptions{IfAbsent: true})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("racers %d and %d both created the key", winner, i)
		case err == nil:
			winner = i
		default:
			wantErr(t, fmt.Sprintf("racer %d", i), err, objstore.ErrExists)
		}
	}
	if winner < 0 {
		t.Fatal("no racer created the key")
	}
	if got := get(t, st, "race/obj", 0, int64(len(datas[winner]))); !bytes.Equal(got, datas[winner]) {
		t.Fatalf("the key holds other bytes than the winner's (racer %d)", winner)
	}
}

// Object reads the whole object at key, failing t when it cannot.
func Object(t testing.TB, st objstore.Store, key string) []byte {
	t.Helper()
	info, err := st.Head(context.Background(), key)
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	b := make([]byte, info.Size)
	if err := objstore.ReadRange(context.Background(), st, key, 0, b); err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}
