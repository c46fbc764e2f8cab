package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/objstoretest"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// s3Config is the test configuration: small parts so multipart stays fast.
func s3Config(srv *s3test.Server) objstore.Config {
	return objstore.Config{
		Endpoint:           srv.Endpoint,
		Region:             srv.Region,
		AccessKey:          srv.AccessKey,
		SecretKey:          srv.SecretKey,
		PathStyle:          true,
		RequestTimeout:     5 * time.Second,
		PartSize:           objstore.MinPartSize,
		MultipartThreshold: objstore.MinPartSize,
		Concurrency:        2,
	}
}

var prefixSeq atomic.Int64

func openS3(t testing.TB, srv *s3test.Server, cfg objstore.Config) objstore.Store {
	t.Helper()
	uri := srv.URI(fmt.Sprintf("t%d/p", prefixSeq.Add(1)))
	st, err := objstore.Open(context.Background(), uri, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", uri, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestS3Conformance(t *testing.T) {
	srv := s3test.Start(t)
	cfg := s3Config(srv)
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return openS3(t, srv, cfg) })
}

// A store rooted at the bucket itself (no prefix) behaves the same.
func TestS3BucketRootConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("second S3 conformance run skipped in -short mode")
	}
	srv := s3test.Start(t)
	cfg := s3Config(srv)
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		name := fmt.Sprintf("root-%d", prefixSeq.Add(1))
		srv.CreateBucket(name)
		st, err := objstore.Open(context.Background(), "s3://"+name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

func randData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// Multipart uploads: parts as configured, a composite server checksum that
// we recomputed, and the full-object SHA-256 in metadata.
func TestS3MultipartVerification(t *testing.T) {
	srv := s3test.Start(t)
	st := openS3(t, srv, s3Config(srv))
	data := randData(1, 3*objstore.MinPartSize+777)
	info, err := st.Put(context.Background(), "mp/obj", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Parts != 4 || info.ChecksumType != "COMPOSITE" || info.SHA256 != objstore.SHA256Hex(data) {
		t.Fatalf("multipart info %+v: want 4 parts, COMPOSITE, sha256 %s", info, objstore.SHA256Hex(data))
	}
	if n := len(info.ServerChecksum); n < 3 || info.ServerChecksum[n-2:] != "-4" {
		t.Fatalf("server checksum %q is not a 4-part composite", info.ServerChecksum)
	}
	head, err := st.Head(context.Background(), "mp/obj")
	if err != nil || head.SHA256 != objstore.SHA256Hex(data) || head.ServerChecksum != info.ServerChecksum {
		t.Fatalf("head %+v, %v", head, err)
	}
	small, err := st.Put(context.Background(), "mp/small", bytes.NewReader(data[:1000]), 1000, objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if small.Parts != 1 || small.ChecksumType != "FULL_OBJECT" {
		t.Fatalf("single put info %+v: want 1 part, FULL_OBJECT", small)
	}
}

// The S3 backend reads its input twice (hash, then send); if the bytes change
// in between, the server must reject them, for single and multipart puts.
func TestS3RejectsInputChangedDuringUpload(t *testing.T) {
	srv := s3test.Start(t)
	st := openS3(t, srv, s3Config(srv))
	for _, size := range []int{1000, 2*objstore.MinPartSize + 5} {
		data := randData(2, size)
		key := fmt.Sprintf("flaky/%d", size)
		_, err := st.Put(context.Background(), key, &changingReader{data: data}, int64(size), objstore.PutOptions{})
		if !errors.Is(err, objstore.ErrChecksumMismatch) {
			t.Fatalf("size %d: put of changing input: %v; want ErrChecksumMismatch", size, err)
		}
		if _, err := st.Head(context.Background(), key); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("size %d: rejected upload left an object: %v", size, err)
		}
	}
}

// changingReader flips byte 1 on every pass after the first.
type changingReader struct {
	data   []byte
	passes atomic.Int32
}

func (r *changingReader) ReadAt(p []byte, off int64) (int, error) {
	if off == 0 {
		r.passes.Add(1)
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if r.passes.Load() > 1 && off <= 1 && off+int64(n) > 1 {
		p[1-off] ^= 0x55
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestS3CredentialsFromEnvironment(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	cfg := s3Config(srv)
	cfg.AccessKey, cfg.SecretKey, cfg.Region = "", "", ""
	st := openS3(t, srv, cfg)
	if _, err := st.Put(context.Background(), "env", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{}); err != nil {
		t.Fatalf("put with env credentials: %v", err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	bad := openS3(t, srv, cfg)
	_, err := bad.Head(context.Background(), "env")
	if !errors.Is(err, objstore.ErrAccessDenied) {
		t.Fatalf("head with wrong secret: %v; want ErrAccessDenied", err)
	}
}

func TestS3ConfigValidation(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []objstore.Config{
		{PartSize: 1 << 20},
		{PartSize: 8 << 20, MultipartThreshold: 6 << 20},
		{Concurrency: -1},
		{RequestTimeout: -time.Second},
		{AccessKey: "only-access"},
	} {
		if _, err := objstore.Open(ctx, "s3://bucket/p", cfg); !errors.Is(err, objstore.ErrInvalidConfig) {
			t.Errorf("open with %+v: %v; want ErrInvalidConfig", cfg, err)
		}
	}
	if _, err := objstore.Open(ctx, "ftp://x/y", objstore.Config{}); !errors.Is(err, objstore.ErrInvalidURI) {
		t.Errorf("open ftp://: %v; want ErrInvalidURI", err)
	}
}
