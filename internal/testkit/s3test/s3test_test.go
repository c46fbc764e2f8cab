package s3test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
