package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// resumeSetup puts a 1 MiB object on a real versitygw through a direct store and opens a
// second store on the same root whose connections go through a breaking proxy.
func resumeSetup(t *testing.T, mod func(*objstore.Config)) (direct, proxied objstore.Store, p *s3test.Proxy, data []byte) {
	t.Helper()
	srv := s3test.Start(t)
	uri := srv.URI(fmt.Sprintf("t%d/p", prefixSeq.Add(1)))
	cfg := s3Config(srv)
	cfg.RequestTimeout = 400 * time.Millisecond
	cfg.MaxBackoff = 50 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	open := func(cfg objstore.Config) objstore.Store {
		st, err := objstore.Open(context.Background(), uri, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	direct = open(cfg)
	data = randData(11, 1<<20)
	if err := putBytes(direct, "obj", data); err != nil {
		t.Fatal(err)
	}
	p = srv.NewProxy()
	cfg.Endpoint = p.Endpoint
	proxied = open(cfg)
	return direct, proxied, p, data
}

// A body cut (FIN), reset (RST) or stalled mid-stream is resumed with ranged GETs for the
// rest: the read returns exactly the object's bytes and the resumes are counted.
func TestS3ReadResumesAfterBrokenBody(t *testing.T) {
	for _, kind := range []s3test.FaultKind{s3test.Cut, s3test.Reset, s3test.Stall} {
		t.Run(kind.String(), func(t *testing.T) {
			_, st, p, data := resumeSetup(t, nil)
			const off, after, cuts = 12345, 100_000, 2
			p.Break(s3test.Fault{Kind: kind, After: after, Conns: cuts})
			n := int64(len(data)) - off - 7
			got, err := readRange(st, "obj", off, n)
			if err != nil {
				t.Fatalf("read through %d %v faults: %v", cuts, kind, err)
			}
			if !bytes.Equal(got, data[off:off+n]) {
				t.Fatalf("read through %d %v faults: bytes differ from the object", cuts, kind)
			}
			if f := p.Faults(); f != cuts {
				t.Fatalf("proxy injected %d faults; want %d", f, cuts)
			}
			if r := objstore.StatsOf(st).GetResumes; r != cuts {
				t.Fatalf("%d resumes counted; want %d", r, cuts)
			}
		})
	}
}

// More breaks than MaxResumes allows: ErrUnavailable naming the key, the range and the
// bytes got, after exactly MaxResumes resumes; with resumes off, after none.
func TestS3ReadResumesExhausted(t *testing.T) {
	for _, tc := range []struct {
		resumes, want int
	}{{2, 2}, {-1, 0}} {
		t.Run(fmt.Sprintf("max_resumes=%d", tc.resumes), func(t *testing.T) {
			_, st, p, data := resumeSetup(t, func(c *objstore.Config) { c.MaxResumes = tc.resumes })
			const after = 50_000
			p.Break(s3test.Fault{Kind: s3test.Cut, After: after, Conns: 100})
			rc, err := st.GetRange(context.Background(), "obj", 0, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			gotN := (tc.want + 1) * after
			want := fmt.Sprintf(`"obj" [0,+%d): %d of %d bytes after %d resumes`, len(data), gotN, len(data), tc.want)
			if !errors.Is(err, objstore.ErrUnavailable) || !strings.Contains(err.Error(), want) {
				t.Fatalf("read: %v; want ErrUnavailable naming %s", err, want)
			}
			if !bytes.Equal(got, data[:gotN]) {
				t.Fatalf("read %d bytes before the error; want the object's first %d", len(got), gotN)
			}
			if r := objstore.StatsOf(st).GetResumes; r != int64(tc.want) {
				t.Fatalf("%d resumes counted; want %d", r, tc.want)
			}
			if f := p.Faults(); f != tc.want+1 {
				t.Fatalf("proxy injected %d faults; want %d", f, tc.want+1)
			}
			t.Log(err)
		})
	}
}

// The object is replaced while the read is cut: the resumed GET carries If-Match with the
// first ETag, so the read fails with ErrChanged having returned only the old version's
// bytes, and a new read gets the new object whole.
func TestS3ReadResumeRefusesReplacedObject(t *testing.T) {
	direct, st, p, data := resumeSetup(t, nil)
	next := randData(12, len(data)) // same size: only the ETag tells them apart
	const after = 100_000
	putErr := make(chan error, 1) // OnFault runs on the proxy's goroutine
	p.Break(s3test.Fault{Kind: s3test.Cut, After: after, Conns: 1, OnFault: func(int) { putErr <- putBytes(direct, "obj", next) }})
	rc, err := st.GetRange(context.Background(), "obj", 0, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err := <-putErr; err != nil {
		t.Fatalf("replace: %v", err)
	}
	if !errors.Is(err, objstore.ErrChanged) || errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("read across a replacement: %v; want ErrChanged", err)
	}
	if !bytes.Equal(got, data[:after]) {
		t.Fatalf("read %d bytes before the error; want only the old object's first %d", len(got), after)
	}
	t.Log(err)
	again, err := readRange(st, "obj", 0, int64(len(next)))
	if err != nil || !bytes.Equal(again, next) {
		t.Fatalf("new read after the replacement: %v (or bytes differ from the new object)", err)
	}
}

// The caller's cancellation during a stall is the caller's: reported as such, not resumed.
func TestS3ReadCancelledIsNotResumed(t *testing.T) {
	_, st, p, data := resumeSetup(t, func(c *objstore.Config) { c.RequestTimeout = 5 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Break(s3test.Fault{Kind: s3test.Stall, After: 1000, Conns: 1, OnFault: func(int) {
		time.AfterFunc(50*time.Millisecond, cancel)
	}})
	err := objstore.ReadRange(ctx, st, "obj", 0, make([]byte, len(data)))
	if !errors.Is(err, context.Canceled) || errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("cancelled read: %v; want context.Canceled", err)
	}
	if r := objstore.StatsOf(st).GetResumes; r != 0 {
		t.Fatalf("%d resumes after the caller cancelled; want 0", r)
	}
}
