package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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

func TestS3ShortBodyAndStallAreUnavailable(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Header().Set("Content-Range", "bytes 0-999/5000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 400))
		w.(http.Flusher).Flush()
		if r.URL.Path == "/bucket/p/stall" {
			select { // hold the body open without sending more
			case <-release:
			case <-r.Context().Done():
			}
		}
		// returning early cuts the body short of Content-Length
	}))
	defer ts.Close()
	const timeout = 300 * time.Millisecond
	st := openTestS3(t, ts.URL, "ak", "sk", "s3://bucket/p", func(c *Config) { c.RequestTimeout = timeout })
	for _, key := range []string{"short", "stall"} {
		rc, err := st.GetRange(context.Background(), key, 0, 1000)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		start := time.Now()
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s body: %v; want ErrUnavailable", key, err)
		}
		t.Logf("%s body failed after %v (request timeout %v)", key, time.Since(start), timeout)
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
