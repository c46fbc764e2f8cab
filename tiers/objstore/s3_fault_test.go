package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// faultConfig fails fast: MaxWait is 3*400ms + 2*100ms = 1.4s.
func faultConfig(srv *s3test.Server) objstore.Config {
	cfg := s3Config(srv)
	cfg.RequestTimeout = 400 * time.Millisecond
	cfg.MaxRetries = 2
	cfg.MaxBackoff = 100 * time.Millisecond
	return cfg
}

// within runs fn and checks that it fails with ErrUnavailable: an error instead of a hang
// (which go test's timeout would catch). The time it took is logged, not judged: timing
// belongs in benchmarks.
func within(t *testing.T, what string, fn func() error) {
	t.Helper()
	start := time.Now()
	err := fn()
	if !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("%s: error %v; want ErrUnavailable", what, err)
	}
	t.Logf("%s: ErrUnavailable after %v: %v", what, time.Since(start).Round(time.Millisecond), err)
}

func putBytes(st objstore.Store, key string, b []byte) error {
	_, err := st.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{})
	return err
}

func readRange(st objstore.Store, key string, off, n int64) ([]byte, error) {
	p := make([]byte, n)
	err := objstore.ReadRange(context.Background(), st, key, off, p)
	return p, err
}

// startBigRead starts a server and a store on it, puts a 48 MiB object "big" of random
// data (larger than the loopback socket buffers, so a fault lands mid-body) and starts a
// streamed read of it, its first MiB read and checked.
func startBigRead(t *testing.T, seed uint64) (*s3test.Server, objstore.Store, []byte, io.ReadCloser) {
	t.Helper()
	srv := s3test.Start(t)
	st := openS3(t, srv, faultConfig(srv))
	data := randData(seed, 48<<20)
	if err := putBytes(st, "big", data); err != nil {
		t.Fatal(err)
	}
	rc, err := st.GetRange(context.Background(), "big", 0, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(rc, head); err != nil || !bytes.Equal(head, data[:1<<20]) {
		t.Fatalf("first MiB: %v", err)
	}
	return srv, st, data, rc
}

// The server dies in the middle of a streamed read: the read resumes into the dead
// server until its resumes are spent and fails, calls on
// the dead server fail with ErrUnavailable, and everything works again once it
// is back.
func TestS3ServerStoppedMidReadThenRestarted(t *testing.T) {
	srv, st, data, rc := startBigRead(t, 3)
	srv.Stop()
	within(t, "read of a body cut by server death", func() error {
		got, err := io.Copy(io.Discard, rc)
		if err == nil {
			t.Fatalf("read %d more bytes and no error after the server died", got)
		}
		return err
	})
	rc.Close()
	// The read resumed, MaxResumes times, into a server that stayed dead.
	if r := objstore.StatsOf(st).GetResumes; r != objstore.DefaultMaxResumes {
		t.Fatalf("%d resumes of the cut read; want %d", r, objstore.DefaultMaxResumes)
	}

	within(t, "get on a stopped server", func() error { _, err := readRange(st, "big", 10, 4096); return err })
	within(t, "head on a stopped server", func() error { _, err := st.Head(context.Background(), "big"); return err })
	within(t, "put on a stopped server", func() error { return putBytes(st, "small", data[:1000]) })
	within(t, "multipart put on a stopped server", func() error { return putBytes(st, "mp", data[:12<<20]) })
	within(t, "list on a stopped server", func() error { _, err := st.List(context.Background(), ""); return err })

	srv.Restart()
	got, err := readRange(st, "big", 30<<20, 1<<20)
	if err != nil || !bytes.Equal(got, data[30<<20:31<<20]) {
		t.Fatalf("get after restart: %v (or bytes differ)", err)
	}
	if err := putBytes(st, "small", data[:1000]); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
}

// A hung server (SIGSTOP: the kernel still accepts connections, nobody
// answers) must produce ErrUnavailable, never a hang, for calls and for a
// body that stalls mid-stream (once its resumes, each stalled too, are spent).
func TestS3ServerHungThenResumed(t *testing.T) {
	srv, st, data, rc := startBigRead(t, 4)
	srv.Pause()
	within(t, "read of a body that stalls", func() error {
		_, err := io.Copy(io.Discard, rc)
		return err
	})
	rc.Close()
	// Each resume met the same hung server, until MaxResumes were spent.
	if r := objstore.StatsOf(st).GetResumes; r != objstore.DefaultMaxResumes {
		t.Fatalf("%d resumes of the stalled read; want %d", r, objstore.DefaultMaxResumes)
	}
	within(t, "get on a hung server", func() error { _, err := readRange(st, "big", 0, 4096); return err })
	within(t, "head on a hung server", func() error { _, err := st.Head(context.Background(), "big"); return err })
	within(t, "put on a hung server", func() error { return putBytes(st, "small", data[:1000]) })

	srv.Resume()
	got, err := readRange(st, "big", 5<<20, 4096)
	if err != nil || !bytes.Equal(got, data[5<<20:5<<20+4096]) {
		t.Fatalf("get after resume: %v (or bytes differ)", err)
	}
}
