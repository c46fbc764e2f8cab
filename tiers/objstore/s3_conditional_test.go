package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// TestVersitygwIfNoneMatch records what the S3 server of the tests (versitygw v1.8.0, posix
// backend) does with `If-None-Match: *`, with the plain SDK: PutObject and
// CompleteMultipartUpload both refuse to replace an existing key with 412
// PreconditionFailed and leave the object as it was; a key that does not exist is created;
// of many creators racing for one key exactly one wins. docs/objstore.md relies on it.
func TestVersitygwIfNoneMatch(t *testing.T) {
	srv := s3test.Start(t)
	c := srv.Client()
	ctx := context.Background()
	b := aws.String(srv.Bucket)
	star := aws.String("*")
	get := func(key string) []byte {
		t.Helper()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer out.Body.Close()
		data, _ := io.ReadAll(out.Body)
		return data
	}
	precondition := func(what string, err error) {
		t.Helper()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
			t.Fatalf("%s: want 412 PreconditionFailed, got %v", what, err)
		}
	}

	// PutObject: created once, refused after.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k/put"), Body: strings.NewReader("first"), IfNoneMatch: star}); err != nil {
		t.Fatalf("conditional put of a new key: %v", err)
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k/put"), Body: strings.NewReader("second"), IfNoneMatch: star})
	precondition("conditional put over an existing key", err)
	if got := get("k/put"); string(got) != "first" {
		t.Fatalf("object after a refused put: %q", got)
	}

	// CompleteMultipartUpload: the parts are accepted, the completion is refused.
	part := bytes.Repeat([]byte("p"), 5<<20)
	mp := func(key string) error {
		cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			return err
		}
		up, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String(key), UploadId: cr.UploadId,
			PartNumber: aws.Int32(1), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part)))})
		if err != nil {
			return err
		}
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String(key), UploadId: cr.UploadId,
			IfNoneMatch:     star,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: up.ETag}}}})
		if err != nil {
			c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String(key), UploadId: cr.UploadId})
		}
		return err
	}
	if err := mp("k/mp"); err != nil {
		t.Fatalf("conditional multipart upload of a new key: %v", err)
	}
	precondition("conditional multipart completion over an existing key", mp("k/mp"))
	precondition("conditional multipart completion over a single-put object", mp("k/put"))
	if got := get("k/put"); string(got) != "first" {
		t.Fatalf("object after a refused completion: %q", got)
	}

	// Racing creators: one wins, every other gets 412, the object is the winner's.
	const racers = 8
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			_, errs[i] = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k/race"),
				Body: strings.NewReader(strings.Repeat(string(rune('a'+i)), 1000)), IfNoneMatch: star})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("racers %d and %d both created k/race", winner, i)
			}
			winner = i
			continue
		}
		precondition("racing conditional put", err)
	}
	if winner < 0 {
		t.Fatal("no racer created k/race")
	}
	if got := get("k/race"); got[0] != byte('a'+winner) {
		t.Fatalf("k/race holds %q..., the winner was %d", got[:1], winner)
	}
}

// On versitygw conditional_writes "auto" finds If-None-Match honoured and leaves no probe
// object behind; "off" refuses create-only Puts with ErrNoConditional, sending nothing.
func TestS3ConditionalModes(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st := openS3(t, srv, s3Config(srv))
	if ok, err := st.Conditional(ctx); !ok || err != nil {
		t.Fatalf("auto on versitygw: %v %v; want true", ok, err)
	}
	if objs, err := st.List(ctx, ""); err != nil || len(objs) != 0 {
		t.Fatalf("after the probe the store holds %v (%v); want nothing", objs, err)
	}
	cfg := s3Config(srv)
	cfg.ConditionalWrites = objstore.ConditionalOff
	off := openS3(t, srv, cfg)
	if ok, err := off.Conditional(ctx); ok || err != nil {
		t.Fatalf("off: %v %v; want false", ok, err)
	}
	_, err := off.Put(ctx, "k", strings.NewReader("x"), 1, objstore.PutOptions{IfAbsent: true})
	if !errors.Is(err, objstore.ErrNoConditional) {
		t.Fatalf("if-absent put with conditional writes off: %v; want ErrNoConditional", err)
	}
	if _, err := off.Head(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a refused if-absent put wrote something: %v", err)
	}
}
