package s3test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	c := s.Client()
	ctx := context.Background()
	body := []byte("hello chronicle")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("a/b"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put: %v", err)
	}
	s.Stop()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := c.HeadObject(short, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("a/b")})
	cancel()
	if err == nil {
		t.Fatalf("head on stopped server succeeded")
	}
	s.Restart()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("a/b")})
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get after restart = %q, %v; want %q", got, err, body)
	}
}

func TestBinaryHonoursEnv(t *testing.T) {
	t.Setenv("VERSITYGW", "/nonexistent/versitygw")
	if _, err := Binary(); !errors.Is(err, ErrNoBinary) {
		t.Fatalf("Binary with bogus $VERSITYGW: %v; want ErrNoBinary", err)
	}
}

// TestReadOnlyUser: the read-only user lists and gets, and cannot put or delete.
func TestReadOnlyUser(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	root := srv.Client()
	if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("p/a"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	ak, sk := srv.ReadOnlyUser("p")
	ro := s3.New(s3.Options{Region: srv.Region, BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
	if _, err := ro.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("p/a")}); err != nil {
		t.Fatalf("read-only get: %v", err)
	}
	if _, err := ro.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String("p/")}); err != nil {
		t.Fatalf("read-only list: %v", err)
	}
	if _, err := ro.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("p/b"), Body: strings.NewReader("x")}); err == nil {
		t.Fatal("read-only user could put")
	}
	if _, err := ro.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("p/a")}); err == nil {
		t.Fatal("read-only user could delete")
	}
	if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("p/a")}); err != nil {
		t.Fatalf("object gone after the read-only user's delete: %v", err)
	}
}

// TestProxyBreaksBodies: each fault hits the armed connection exactly After body bytes in,
// and the next connection is relayed whole.
func TestProxyBreaksBodies(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	body := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16)
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("obj"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	p := srv.NewProxy()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := s3.New(s3.Options{Region: srv.Region, BaseEndpoint: aws.String(p.Endpoint), UsePathStyle: true,
		HTTPClient:                 &http.Client{Transport: tr},
		Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	get := func(ctx context.Context) ([]byte, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("obj")})
		if err != nil {
			t.Fatalf("get through proxy: %v", err)
		}
		defer out.Body.Close()
		return io.ReadAll(out.Body)
	}
	const after = 70001
	for i, kind := range []FaultKind{Cut, Reset, Stall} {
		var called atomic.Int32   // set on the proxy's goroutine
		tr.CloseIdleConnections() // a fault arms new connections, not kept-alive ones
		p.Break(Fault{Kind: kind, After: after, Conns: 1, OnFault: func(n int) { called.Store(int32(n)) }})
		rctx, cancel := context.WithTimeout(ctx, time.Second) // ends the stall
		got, err := get(rctx)
		cancel()
		if err == nil || len(got) != after || !bytes.Equal(got, body[:after]) {
			t.Fatalf("%v: read %d bytes, err %v; want the first %d bytes and an error", kind, len(got), err, after)
		}
		if called.Load() != 1 || p.Faults() != i+1 {
			t.Fatalf("%v: OnFault saw connection %d, %d faults; want 1 and %d", kind, called.Load(), p.Faults(), i+1)
		}
		t.Logf("%v after %d bytes: %v", kind, after, err)
		got, err = get(ctx)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%v: next connection read %d bytes, err %v; want all %d", kind, len(got), err, len(body))
		}
	}
	if p.Accepted() < 6 {
		t.Fatalf("proxy accepted %d connections; want at least 6 (a new one after each fault)", p.Accepted())
	}
}
