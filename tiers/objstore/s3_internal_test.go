package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/s3test"
)

func openTestS3(t *testing.T, endpoint, ak, sk, uri string, mod func(*Config)) *s3Store {
	t.Helper()
	cfg := Config{
		Endpoint: endpoint, Region: "us-east-1", AccessKey: ak, SecretKey: sk, PathStyle: true,
		RequestTimeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	st, err := Open(context.Background(), uri, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*s3Store)
}

// Remote reads issue many small ranged GETs; they must ride on kept-alive
// connections rather than dial each time.
func TestS3RangedGetsReuseConnections(t *testing.T) {
	srv := s3test.Start(t)
	st := openTestS3(t, srv.Endpoint, srv.AccessKey, srv.SecretKey, srv.URI("reuse"), nil)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	if _, err := st.Put(ctx, "obj", bytes.NewReader(data), int64(len(data)), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	before := st.dials.Load()
	for i := range 200 {
		if err := ReadRange(ctx, st, "obj", int64(i*4096), p); err != nil {
			t.Fatal(err)
		}
	}
	if d := st.dials.Load() - before; d > 1 {
		t.Fatalf("200 sequential ranged GETs opened %d connections; want at most 1", d)
	}
	round := func() {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				q := make([]byte, 4096)
				for i := range 25 {
					if err := ReadRange(ctx, st, "obj", int64((w*25+i)*4096), q); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	round()
	warm := st.dials.Load()
	round()
	if d := st.dials.Load() - warm; d > 0 {
		t.Fatalf("second round of 8 concurrent readers opened %d new connections; want 0", d)
	}
}

// Fakes beside the real server, for failures versitygw cannot be made to
// produce on demand.

func TestS3ServerErrorsRetryBoundedThenUnavailable(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>busy</Message></Error>`)
	}))
	defer ts.Close()
	st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) {
		c.MaxRetries = 3
		c.MaxBackoff = 20 * time.Millisecond
	})
	_, err := st.Head(context.Background(), "k")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("head against 503s: %v; want ErrUnavailable", err)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("server saw %d attempts; want 1 + MaxRetries = 4", n)
	}
	calls.Store(0)
	st2 := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) { c.MaxRetries = -1 })
	if _, err := st2.Head(context.Background(), "k"); !errors.Is(err, ErrUnavailable) || calls.Load() != 1 {
		t.Fatalf("MaxRetries -1: %v after %d attempts; want ErrUnavailable after 1", err, calls.Load())
	}
}

// fakeRanges serves a 5000-byte object (byte i is i*7) at every key, honouring
// Range, but sends at most 300 body bytes per response before it cuts the
// body short ("stall" keys: holds it open instead). etag(n) is the ETag of the
// n-th response (1-based; "" sends none); every request is recorded.
type fakeRanges struct {
	etag    func(n int) string
	mu      sync.Mutex
	ranges  []string
	ifMatch []string
}

func (f *fakeRanges) start(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a, b int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b); err != nil {
			http.Error(w, "want a range", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.ranges = append(f.ranges, r.Header.Get("Range"))
		f.ifMatch = append(f.ifMatch, r.Header.Get("If-Match"))
		n := len(f.ranges)
		f.mu.Unlock()
		if et := f.etag(n); et != "" {
			w.Header().Set("ETag", et)
		}
		w.Header().Set("Content-Length", strconv.Itoa(b-a+1))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/5000", a, b))
		w.WriteHeader(http.StatusPartialContent)
		body := make([]byte, min(300, b-a+1))
		for i := range body {
			body[i] = byte((a + i) * 7)
		}
		w.Write(body)
		w.(http.Flusher).Flush()
		if strings.HasSuffix(r.URL.Path, "/stall") {
			select { // hold the body open without sending more
			case <-release:
			case <-r.Context().Done():
			}
		}
		// returning early cuts the body short of Content-Length
	}))
	t.Cleanup(func() { close(release); ts.Close() })
	return ts
}

func (f *fakeRanges) seen() (ranges, ifMatch []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ranges), slices.Clone(f.ifMatch)
}

// A body cut short or stalled is resumed with ranged GETs for the rest, pinned to the
// first ETag, until MaxResumes are spent: then ErrUnavailable naming the bytes got.
func TestS3ShortBodyAndStallResumeThenUnavailable(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, key := range []string{"short", "stall"} {
		f := &fakeRanges{etag: func(int) string { return `"v1"` }}
		ts := f.start(t)
		st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) {
			c.RequestTimeout, c.MaxResumes, c.MaxBackoff = timeout, 2, 10*time.Millisecond
		})
		rc, err := st.GetRange(context.Background(), key, 100, 1000)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		start := time.Now()
		got, err := io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "900 of 1000 bytes after 2 resumes") ||
			!strings.Contains(err.Error(), `"`+key+`" [100,+1000)`) {
			t.Fatalf("%s body: %v; want ErrUnavailable naming the key, range and 900 of 1000 bytes", key, err)
		}
		if len(got) != 900 || got[899] != byte(999*7%256) {
			t.Fatalf("%s: read %d bytes before the error; want 900 in order", key, len(got))
		}
		ranges, ifMatch := f.seen()
		if want := []string{"bytes=100-1099", "bytes=400-1099", "bytes=700-1099"}; !slices.Equal(ranges, want) {
			t.Fatalf("%s: ranges requested %q; want %q", key, ranges, want)
		}
		if want := []string{"", `"v1"`, `"v1"`}; !slices.Equal(ifMatch, want) {
			t.Fatalf("%s: If-Match sent %q; want %q", key, ifMatch, want)
		}
		if n := st.Stats().GetResumes; n != 2 {
			t.Fatalf("%s: %d resumes counted; want 2", key, n)
		}
		t.Logf("%s body failed after %v (request timeout %v): %v", key, time.Since(start), timeout, err)
	}
}

// With one resume more the same body arrives whole, in order.
func TestS3ShortBodyResumedWhole(t *testing.T) {
	f := &fakeRanges{etag: func(int) string { return `"v1"` }}
	ts := f.start(t)
	st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) { c.MaxResumes, c.MaxBackoff = 3, 10*time.Millisecond })
	p := make([]byte, 1000)
	if err := ReadRange(context.Background(), st, "short", 100, p); err != nil {
		t.Fatal(err)
	}
	for i, b := range p {
		if b != byte((100+i)*7) {
			t.Fatalf("byte %d is %d; want %d", i, b, byte((100+i)*7))
		}
	}
	if ranges, _ := f.seen(); len(ranges) != 4 || ranges[3] != "bytes=1000-1099" {
		t.Fatalf("ranges requested %q; want 4 ending with bytes=1000-1099", ranges)
	}
	if n := StatsOf(st).GetResumes; n != 3 {
		t.Fatalf("%d resumes counted; want 3", n)
	}
}

// Without an ETag to pin the object, and with resumes off, a cut body is not resumed;
// a server that ignores If-Match and answers another version fails with ErrChanged.
func TestS3ResumeNeedsTheSameObject(t *testing.T) {
	for _, tc := range []struct {
		name    string
		etag    func(int) string
		resumes int
		want    error
		reqs    int
	}{
		{"no etag", func(int) string { return "" }, 3, ErrUnavailable, 1},
		{"resumes off", func(int) string { return `"v1"` }, -1, ErrUnavailable, 1},
		{"etag changed", func(n int) string { return fmt.Sprintf(`"v%d"`, n) }, 3, ErrChanged, 2},
	} {
		f := &fakeRanges{etag: tc.etag}
		ts := f.start(t)
		st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) { c.MaxResumes, c.MaxBackoff = tc.resumes, 10*time.Millisecond })
		err := ReadRange(context.Background(), st, "short", 0, make([]byte, 1000))
		if !errors.Is(err, tc.want) || (tc.want == ErrUnavailable && errors.Is(err, ErrChanged)) {
			t.Fatalf("%s: %v; want %v", tc.name, err, tc.want)
		}
		if ranges, _ := f.seen(); len(ranges) != tc.reqs {
			t.Fatalf("%s: %d requests; want %d", tc.name, len(ranges), tc.reqs)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

func TestS3WrongLengthIsOutOfRange(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A server clipping the range at the object's end.
		w.Header().Set("Content-Length", "10")
		w.Header().Set("Content-Range", "bytes 90-99/100")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 10))
	}))
	defer ts.Close()
	st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", nil)
	if _, err := st.GetRange(context.Background(), "k", 90, 20); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("clipped range: %v; want ErrOutOfRange", err)
	}
}

func TestPartLayoutRespectsPartLimit(t *testing.T) {
	s := &s3Store{cfg: Config{PartSize: MinPartSize}}
	for _, size := range []int64{1, MinPartSize * MaxParts, MinPartSize*MaxParts + 1, 5 << 40} {
		ps := s.partLayout(size)
		if n := (size + ps - 1) / ps; n > MaxParts || ps < MinPartSize {
			t.Errorf("size %d: part size %d gives %d parts", size, ps, n)
		}
	}
}

func TestHashInputParts(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefg"), 3<<20/7+5)
	whole, parts, err := hashInput(context.Background(), "k", bytes.NewReader(data), int64(len(data)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256Of(data); whole != want {
		t.Fatalf("whole digest differs")
	}
	if len(parts) != 4 {
		t.Fatalf("%d parts, want 4", len(parts))
	}
	for i, p := range parts {
		end := min(len(data), (i+1)<<20)
		if p != sha256Of(data[i<<20:end]) {
			t.Fatalf("part %d digest differs", i)
		}
	}
}

func sha256Of(b []byte) digest { return sha256.Sum256(b) }

// A server that ignores If-None-Match (it accepts every PutObject): conditional_writes
// "auto" finds out with its probe and refuses create-only Puts with ErrNoConditional
// instead of letting one replace an object; "on" trusts the server.
func TestS3ConditionalProbeServerIgnoresHeader(t *testing.T) {
	var puts, deletes atomic.Int32
	var sawHeader atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			puts.Add(1)
			if r.Header.Get("If-None-Match") == "*" {
				sawHeader.Store(true)
			}
			io.Copy(io.Discard, r.Body)
			w.Header().Set("ETag", `"e"`)
			w.WriteHeader(http.StatusOK)
		case http.MethodDelete:
			deletes.Add(1)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ts.Close()
	st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) { c.MaxRetries = -1 })
	ok, err := st.Conditional(context.Background())
	if err != nil || ok {
		t.Fatalf("auto against a server that ignores If-None-Match: %v %v; want false", ok, err)
	}
	if puts.Load() != 2 || deletes.Load() != 1 || !sawHeader.Load() {
		t.Fatalf("probe: %d puts, %d deletes, header sent %v; want 2 conditional puts and the probe deleted", puts.Load(), deletes.Load(), sawHeader.Load())
	}
	if ok, _ := st.Conditional(context.Background()); ok || puts.Load() != 2 {
		t.Fatalf("the answer is not remembered: %d puts", puts.Load())
	}
	_, err = st.Put(context.Background(), "k", strings.NewReader("x"), 1, PutOptions{IfAbsent: true})
	if !errors.Is(err, ErrNoConditional) || puts.Load() != 2 {
		t.Fatalf("if-absent put: %v after %d puts; want ErrNoConditional and nothing sent", err, puts.Load())
	}
	on := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) { c.ConditionalWrites = ConditionalOn })
	if ok, err := on.Conditional(context.Background()); !ok || err != nil || puts.Load() != 2 {
		t.Fatalf("conditional_writes on: %v %v (%d puts); want true without a probe", ok, err, puts.Load())
	}
	if _, err := Open(context.Background(), "s3://bucket/p", Config{ConditionalWrites: "maybe"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("conditional_writes maybe: %v; want ErrInvalidConfig", err)
	}
}

// A POSIX-backed gateway answers a Put whose parent directory a concurrent delete just
// removed with 409 ExistingObjectIsDirectory (versitygw's posix backend, seen in
// TestTwoHostsOneKey): retried, it succeeds; a key that stays a directory is
// ErrKeyConflict once the retries are spent.
func TestS3PutRetriesExistingObjectIsDirectory(t *testing.T) {
	var calls, fail atomic.Int32
	var mu sync.Mutex
	var held http.Header // the stored object's headers, answered to HEAD
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			mu.Lock()
			defer mu.Unlock()
			for k, v := range held {
				w.Header()[k] = v
			}
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		if calls.Add(1) <= fail.Load() {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `<?xml version="1.0"?><Error><Code>ExistingObjectIsDirectory</Code><Message>Existing Object is a directory.</Message></Error>`)
			return
		}
		h := http.Header{}
		h.Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		h.Set("Content-Length", strconv.FormatInt(n, 10))
		h.Set("x-amz-checksum-sha256", r.Header.Get("x-amz-checksum-sha256"))
		h.Set("x-amz-checksum-type", "FULL_OBJECT")
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
				h[k] = v
			}
		}
		mu.Lock()
		held = h
		mu.Unlock()
		w.Header().Set("ETag", h.Get("ETag"))
		w.Header().Set("x-amz-checksum-sha256", h.Get("x-amz-checksum-sha256"))
	}))
	defer ts.Close()
	st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) {
		c.MaxRetries = 3
		c.MaxBackoff = 5 * time.Millisecond
	})
	body := []byte("claim entry")
	fail.Store(1)
	if _, err := st.Put(context.Background(), "a/claims/h-1", bytes.NewReader(body), int64(len(body)), PutOptions{}); err != nil || calls.Load() != 2 {
		t.Fatalf("put after one 409: %v after %d attempts; want success after 2", err, calls.Load())
	}
	calls.Store(0)
	fail.Store(100)
	if _, err := st.Put(context.Background(), "a/claims/h-1", bytes.NewReader(body), int64(len(body)), PutOptions{}); !errors.Is(err, ErrKeyConflict) || calls.Load() != 4 {
		t.Fatalf("put against a directory: %v after %d attempts; want ErrKeyConflict after 4", err, calls.Load())
	}
}
