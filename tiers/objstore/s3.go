package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// metaSHA256 is the user-metadata key (header x-amz-meta-sha256) holding the
// hex SHA-256 of the whole object, which S3 itself cannot report for
// multipart uploads.
const metaSHA256 = "sha256"

type s3Store struct {
	loc    Location
	cfg    Config
	client *s3.Client
	tr     *http.Transport
	log    *slog.Logger
	dials  atomic.Int64 // TCP connections opened; tests check reuse
	// resumes counts ranged GETs re-issued after a body failed mid-stream.
	resumes atomic.Int64

	condMu    sync.Mutex // Conditional's probe, once
	cond      bool
	condKnown bool
}

func newS3Store(ctx context.Context, loc Location, cfg Config) (*s3Store, error) {
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, fmt.Errorf("open %s: access_key and secret_key must be set together: %w", loc, ErrInvalidConfig)
	}
	s := &s3Store{loc: loc, cfg: cfg, log: cfg.Logger}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return newRetryer(cfg.MaxRetries, cfg.MaxBackoff) }),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("open %s: load aws config: %w", loc, err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	var base *http.Transport
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		base = bc.GetTransport() // a copy, with the CA bundle applied
	}
	hc, tr := newHTTPClient(base, cfg.RequestTimeout, cfg.MaxIdleConnsPerHost, &s.dials)
	awsCfg.HTTPClient, s.tr = hc, tr
	s.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// We send SHA-256 checksums explicitly and verify them ourselves;
		// response validation would misfire on ranged GETs.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return s, nil
}

func (s *s3Store) URI(key string) string            { return s.loc.URI(key) }
func (s *s3Store) KeyOf(uri string) (string, error) { return s.loc.KeyOf(uri) }

func (s *s3Store) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

// Put uploads with a single PutObject below MultipartThreshold and a
// multipart upload otherwise. Either way it first reads the input once to
// hash it (the whole object, and each part), then sends every request with
// that SHA-256 as both x-amz-checksum-sha256 and the signed payload hash, so
// the server rejects any byte that differs from what we hashed (BadDigest /
// XAmzContentSHA256Mismatch -> ErrChecksumMismatch). Afterwards it checks the
// checksums the server echoes (per part and the composite) and Heads the
// object to confirm its size and recorded SHA-256.
func (s *s3Store) Put(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("put: %w", err)
	}
	if size < 0 {
		return ObjectInfo{}, fmt.Errorf("put %q: negative size %d: %w", key, size, ErrShortInput)
	}
	if opts.IfAbsent {
		ok, err := s.Conditional(ctx)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
		}
		if !ok {
			return ObjectInfo{}, fmt.Errorf("put %q: if absent: %w (conditional_writes %s)", key, ErrNoConditional, s.cfg.ConditionalWrites)
		}
	}
	var info ObjectInfo
	var err error
	if size < int64(s.cfg.MultipartThreshold) {
		info, err = s.putSingle(ctx, key, r, size, opts)
	} else {
		info, err = s.putMultipart(ctx, key, r, size, opts)
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	if info.Existed {
		return info, nil // existing() has checked it
	}
	head, err := s.Head(ctx, key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: verify: %w", key, err)
	}
	if head.Size != size || head.SHA256 != info.SHA256 {
		return ObjectInfo{}, fmt.Errorf("put %q: server holds %d bytes sha256 %q, uploaded %d bytes sha256 %s: %w",
			key, head.Size, head.SHA256, size, info.SHA256, ErrChecksumMismatch)
	}
	info.ModTime = head.ModTime
	if info.ETag == "" {
		info.ETag = head.ETag
	}
	s.log.Debug("objstore: put", "uri", s.URI(key), "size", size, "parts", info.Parts, "sha256", info.SHA256)
	return info, nil
}

func (s *s3Store) putSingle(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (ObjectInfo, error) {
	// With the caller's digest there is no need to read the input twice: the server checks
	// the body against x-amz-checksum-sha256 (and the signed payload hash) and refuses a
	// mismatch before publishing anything.
	d, ok := digestOf(opts.SHA256)
	if !ok {
		var err error
		if d, _, err = hashInput(ctx, key, r, size, 0); err != nil {
			return ObjectInfo{}, fmt.Errorf("put: %w", err)
		}
		if err := checkExpected(key, d, opts.SHA256); err != nil {
			return ObjectInfo{}, err
		}
	}
	in := &s3.PutObjectInput{
		Bucket:         aws.String(s.loc.Bucket),
		Key:            aws.String(s.loc.ObjectKey(key)),
		Body:           io.NewSectionReader(r, 0, size),
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(b64Of(d)),
		Metadata:       map[string]string{metaSHA256: hexOf(d)},
	}
	if opts.IfAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.PutObject(ctx, in, withPayloadSHA256(hexOf(d)))
	if err != nil {
		err = classify(ctx, "put", key, err)
		if opts.IfAbsent && errors.Is(err, ErrChanged) { // 412: the key holds an object
			return s.existing(ctx, key, size, d, err)
		}
		return ObjectInfo{}, err
	}
	got := aws.ToString(out.ChecksumSHA256)
	if got != b64Of(d) {
		return ObjectInfo{}, fmt.Errorf("put %q: server checksum %q, sent %q: %w", key, got, b64Of(d), ErrChecksumMismatch)
	}
	return ObjectInfo{
		Key: key, Size: size, ETag: unquote(aws.ToString(out.ETag)), SHA256: hexOf(d),
		ServerChecksum: got, ChecksumType: string(out.ChecksumType), Parts: 1,
	}, nil
}

// partLayout returns the part size for an object of size bytes, growing the
// configured size (in MiB steps) when S3's part-count limit requires it.
func (s *s3Store) partLayout(size int64) int64 {
	ps := int64(s.cfg.PartSize)
	if (size+ps-1)/ps > MaxParts {
		ps = (size + MaxParts - 1) / MaxParts
		ps = (ps + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

func (s *s3Store) putMultipart(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (ObjectInfo, error) {
	partSize := s.partLayout(size)
	start := time.Now()
	whole, parts, err := hashInput(ctx, key, r, size, partSize)
	hashed := time.Now()
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put: %w", err)
	}
	if err := checkExpected(key, whole, opts.SHA256); err != nil {
		return ObjectInfo{}, err
	}
	if opts.IfAbsent {
		// Not worth sending the parts of an object the completion will refuse; the
		// completion's If-None-Match is what decides, this only saves the upload.
		if _, err := s.Head(ctx, key); err == nil {
			return s.existing(ctx, key, size, whole, nil)
		} else if !errors.Is(err, ErrNotFound) {
			return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
		}
	}
	bucket, okey := aws.String(s.loc.Bucket), aws.String(s.loc.ObjectKey(key))
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            bucket,
		Key:               okey,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		Metadata:          map[string]string{metaSHA256: hexOf(whole)},
	})
	if err != nil {
		return ObjectInfo{}, classify(ctx, "put", key, err)
	}
	uploadID := created.UploadId
	completed := false
	defer func() {
		if completed {
			return
		}
		// Abort even when ctx is done, or the parts linger on the server.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
		defer cancel()
		if _, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: bucket, Key: okey, UploadId: uploadID,
		}); err != nil {
			s.log.Warn("objstore: abort multipart upload", "uri", s.URI(key), "err", err)
		}
	}()

	done := make([]types.CompletedPart, len(parts))
	g := newLimitGroup(ctx, s.cfg.Concurrency)
	gctx := g.ctx
	for i := range parts {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			off := int64(i) * partSize
			n := min(partSize, size-off)
			num := aws.Int32(int32(i + 1))
			want := b64Of(parts[i])
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:         bucket,
				Key:            okey,
				UploadId:       uploadID,
				PartNumber:     num,
				Body:           io.NewSectionReader(r, off, n),
				ContentLength:  aws.Int64(n),
				ChecksumSHA256: aws.String(want),
			}, withPayloadSHA256(hexOf(parts[i])))
			if err != nil {
				return classify(gctx, fmt.Sprintf("put part %d at offset %d of", i+1, off), key, err)
			}
			if got := aws.ToString(out.ChecksumSHA256); got != want {
				return fmt.Errorf("put %q: part %d server checksum %q, sent %q: %w", key, i+1, got, want, ErrChecksumMismatch)
			}
			done[i] = types.CompletedPart{PartNumber: num, ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ObjectInfo{}, fmt.Errorf("put %q: %w (%v)", key, ctx.Err(), err)
		}
		return ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	uploaded := time.Now()
	cin := &s3.CompleteMultipartUploadInput{
		Bucket:          bucket,
		Key:             okey,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	}
	if opts.IfAbsent {
		cin.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.CompleteMultipartUpload(ctx, cin)
	if err != nil {
		err = classify(ctx, "put complete", key, err)
		if opts.IfAbsent && errors.Is(err, ErrChanged) { // 412: another upload completed first
			return s.existing(ctx, key, size, whole, err)
		}
		return ObjectInfo{}, err
	}
	completed = true
	s.log.Debug("objstore: multipart timing", "uri", s.URI(key), "parts", len(parts),
		"hash", hashed.Sub(start), "upload", uploaded.Sub(hashed), "complete", time.Since(uploaded))
	// The object is published now; a mismatch below is reported, and the
	// caller must not record it as good.
	want := compositeChecksum(parts)
	if got := aws.ToString(out.ChecksumSHA256); got != want {
		return ObjectInfo{}, fmt.Errorf("put %q: server composite checksum %q, expected %q: %w", key, got, want, ErrChecksumMismatch)
	}
	return ObjectInfo{
		Key: key, Size: size, ETag: unquote(aws.ToString(out.ETag)), SHA256: hexOf(whole),
		ServerChecksum: want, ChecksumType: string(out.ChecksumType), Parts: len(parts),
	}, nil
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// existing settles a create-only Put refused because the key holds an object: the same
// bytes (size and recorded SHA-256: our own request retried after a lost response, or the
// caller's earlier upload) are success with Existed set; anything else is ErrExists.
func (s *s3Store) existing(ctx context.Context, key string, size int64, d digest, cause error) (ObjectInfo, error) {
	head, err := s.Head(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) && cause != nil {
			// Deleted since the refusal: report the refusal; the caller may try again.
			return ObjectInfo{}, fmt.Errorf("put %q: %w: %w", key, ErrExists, cause)
		}
		return ObjectInfo{}, fmt.Errorf("put %q: if absent: %w", key, err)
	}
	if head.Size != size || head.SHA256 != hexOf(d) {
		return ObjectInfo{}, fmt.Errorf("put %q: holds %d bytes sha256 %q, not the %d bytes sha256 %s sent: %w",
			key, head.Size, head.SHA256, size, hexOf(d), ErrExists)
	}
	head.Existed = true
	return head, nil
}

// probeKey names the objects Conditional creates to learn what the server does; outside
// v1/, so no reader ever lists them.
const probeKey = "_chronicle/probe/"

// Conditional reports whether PutOptions.IfAbsent can be honoured: conditional_writes
// "on" or "off" says so; "auto" asks the server once by creating a probe object twice with
// If-None-Match: *. A server that refuses the second creation (412) supports it; one that
// accepts it (ignoring the header) or answers 501 does not. The answer is kept for the
// store's life; a failure to ask is returned and asked again next time.
func (s *s3Store) Conditional(ctx context.Context) (bool, error) {
	switch s.cfg.ConditionalWrites {
	case ConditionalOn:
		return true, nil
	case ConditionalOff:
		return false, nil
	}
	s.condMu.Lock()
	defer s.condMu.Unlock()
	if s.condKnown {
		return s.cond, nil
	}
	ok, err := s.probeConditional(ctx)
	if err != nil {
		return false, fmt.Errorf("probe conditional writes at %s: %w", s.URI(probeKey), err)
	}
	s.cond, s.condKnown = ok, true
	s.log.Info("objstore: conditional writes", "uri", s.URI(""), "if_none_match", ok)
	return ok, nil
}

func (s *s3Store) probeConditional(ctx context.Context) (bool, error) {
	key := probeKey + randomHex(8)
	put := func() error {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.loc.ObjectKey(key)),
			Body: strings.NewReader("probe"), ContentLength: aws.Int64(5), IfNoneMatch: aws.String("*"),
		})
		return classify(ctx, "probe put", key, err)
	}
	notImplemented := func(err error) bool {
		var ae smithy.APIError
		return errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented"
	}
	if err := put(); err != nil {
		if notImplemented(err) {
			return false, nil
		}
		return false, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
		defer cancel()
		if err := s.Delete(dctx, key); err != nil {
			s.log.Warn("objstore: probe object left behind", "uri", s.URI(key), "err", err)
		}
	}()
	err := put()
	switch {
	case err == nil:
		return false, nil // the header was ignored: the probe was overwritten
	case errors.Is(err, ErrChanged):
		return true, nil
	case notImplemented(err):
		return false, nil
	}
	return false, err
}

func (s *s3Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("head: %w", err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.loc.Bucket),
		Key:          aws.String(s.loc.ObjectKey(key)),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return ObjectInfo{}, classify(ctx, "head", key, err)
	}
	info := ObjectInfo{
		Key:            key,
		Size:           aws.ToInt64(out.ContentLength),
		ETag:           unquote(aws.ToString(out.ETag)),
		ServerChecksum: aws.ToString(out.ChecksumSHA256),
		ChecksumType:   string(out.ChecksumType),
		ModTime:        aws.ToTime(out.LastModified),
	}
	for k, v := range out.Metadata { // servers differ in header-name case
		if strings.EqualFold(k, metaSHA256) && validHexSHA256(strings.ToLower(v)) {
			info.SHA256 = strings.ToLower(v)
		}
	}
	return info, nil
}

func (s *s3Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := checkRangeArgs(key, off, n); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if n == 0 {
		// S3 cannot express an empty range; check existence and bounds.
		info, err := s.Head(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		if off > info.Size {
			return nil, fmt.Errorf("get: %w", outOfRange(key, off, n, info.Size))
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	r := &s3Range{s: s, parent: ctx, key: key, off: off, n: n, closing: make(chan struct{})}
	out, body, err := r.open(off)
	if err != nil {
		err = classify(ctx, "get", key, err)
		if errors.Is(err, ErrOutOfRange) {
			return nil, fmt.Errorf("get %q [%d,+%d): starts at or past the end: %w", key, off, n, err)
		}
		return nil, err
	}
	if got := aws.ToInt64(out.ContentLength); got != n {
		body.close()
		total := totalFromContentRange(aws.ToString(out.ContentRange))
		if got < n && total >= 0 && off+n > total {
			return nil, fmt.Errorf("get: %w", outOfRange(key, off, n, total))
		}
		return nil, fmt.Errorf("get %q [%d,+%d): server sent %d bytes (Content-Range %q): %w",
			key, off, n, got, aws.ToString(out.ContentRange), ErrUnavailable)
	}
	r.etag = aws.ToString(out.ETag)
	r.cur = body
	return r, nil
}

// totalFromContentRange parses "bytes a-b/total"; -1 when absent or "*".
func totalFromContentRange(cr string) int64 {
	_, t, ok := strings.Cut(cr, "/")
	if !ok {
		return -1
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// Stats returns the store's counters.
func (s *s3Store) Stats() Stats { return Stats{GetResumes: s.resumes.Load()} }

// s3Range streams one ranged GET. When the body fails mid-stream (it ends
// early, the connection resets, or the watchdog finds it stalled) and the
// caller's context is still live, it re-issues a GET for the bytes it still
// misses, up to MaxResumes times per reader, with backoff. Every resumed GET
// carries If-Match with the first response's ETag, so a replaced object
// fails with ErrChanged instead of splicing two versions; once the resumes
// are spent the read fails with ErrUnavailable.
type s3Range struct {
	s       *s3Store
	parent  context.Context
	key     string
	off, n  int64
	got     int64
	etag    string // of the first response, quoted as sent
	resumes int
	err     error // sticky once a read failed for good

	mu      sync.Mutex
	cur     *rangeBody // replaced only by Read's goroutine, under mu
	closed  bool
	closing chan struct{} // closed by Close: wakes a resume backoff
}

// rangeBody is one GET attempt's body with its own context and stall
// watchdog: the watchdog cancels the request when no byte arrives for
// RequestTimeout, so a stalled server becomes an error instead of a hang.
type rangeBody struct {
	body    io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer
	stalled atomic.Bool
	once    sync.Once
}

func (b *rangeBody) close() {
	b.once.Do(func() {
		b.timer.Stop()
		b.body.Close()
		b.cancel()
	})
}

// open sends the GET for [from, off+n) on a fresh context derived from the
// caller's, pinned to the first response's ETag once there is one.
func (r *s3Range) open(from int64) (*s3.GetObjectOutput, *rangeBody, error) {
	actx, cancel := context.WithCancel(r.parent)
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.s.loc.Bucket),
		Key:    aws.String(r.s.loc.ObjectKey(r.key)),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", from, r.off+r.n-1)),
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	out, err := r.s.client.GetObject(actx, in)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	b := &rangeBody{body: out.Body, cancel: cancel}
	b.timer = time.AfterFunc(r.s.cfg.RequestTimeout, func() {
		b.stalled.Store(true)
		cancel()
	})
	return out, b, nil
}

func (r *s3Range) Read(p []byte) (int, error) {
	if r.got == r.n {
		return 0, io.EOF
	}
	if r.err != nil {
		return 0, r.err
	}
	if rem := r.n - r.got; int64(len(p)) > rem {
		p = p[:rem]
	}
	for {
		b := r.cur
		k, err := b.body.Read(p)
		r.got += int64(k)
		if k > 0 {
			b.timer.Reset(r.s.cfg.RequestTimeout)
		}
		if r.got == r.n {
			return k, nil // the next call reports io.EOF
		}
		if err == nil {
			return k, nil
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err = r.recover(b, err); err != nil {
			r.err = err
			return k, err
		}
		if k > 0 {
			return k, nil
		}
	}
}

// recover handles a failed body: the caller's cancellation and Close end
// the read; anything else is resumed.
func (r *s3Range) recover(b *rangeBody, cause error) error {
	stalled := b.stalled.Load()
	b.close()
	if err := r.parent.Err(); err != nil {
		return fmt.Errorf("get %q [%d,+%d): %w", r.key, r.off, r.n, err)
	}
	if r.isClosed() {
		return fmt.Errorf("get %q [%d,+%d): read after Close: %w", r.key, r.off, r.n, os.ErrClosed)
	}
	if stalled {
		cause = fmt.Errorf("no data for %v after %d bytes: %w", r.s.cfg.RequestTimeout, r.got, cause)
	} else {
		cause = fmt.Errorf("body failed after %d bytes: %w", r.got, cause)
	}
	return r.resume(cause)
}

func (r *s3Range) resume(cause error) error {
	if r.etag == "" {
		return fmt.Errorf("get %q [%d,+%d): %w: %w (not resumed: no ETag to pin the object to)",
			r.key, r.off, r.n, ErrUnavailable, cause)
	}
	backoff := jitterBackoff{base: 50 * time.Millisecond, max: r.s.cfg.MaxBackoff}
	for r.resumes < r.s.cfg.MaxResumes {
		d, _ := backoff.BackoffDelay(r.resumes, nil)
		r.resumes++
		r.s.resumes.Add(1)
		from := r.off + r.got
		r.s.log.Info("objstore: resuming ranged get", "uri", r.s.URI(r.key), "off", r.off, "n", r.n,
			"got", r.got, "resume", r.resumes, "backoff", d, "cause", cause)
		if err := r.sleep(d); err != nil {
			return err
		}
		out, b, err := r.open(from)
		if err != nil {
			err = classify(r.parent, "get", r.key, err)
			switch {
			case r.parent.Err() != nil:
				return fmt.Errorf("get %q [%d,+%d): resume at byte %d: %w", r.key, r.off, r.n, r.got, err)
			case errors.Is(err, ErrChanged): // 412: If-Match failed
				return fmt.Errorf("get %q [%d,+%d): resume at byte %d: replaced since the first response (ETag %s): %w",
					r.key, r.off, r.n, r.got, r.etag, err)
			case errors.Is(err, ErrNotFound):
				return fmt.Errorf("get %q [%d,+%d): resume at byte %d: deleted since the first response: %w: %w",
					r.key, r.off, r.n, r.got, ErrChanged, err)
			case !errors.Is(err, ErrUnavailable):
				return fmt.Errorf("get %q [%d,+%d): resume at byte %d: %w", r.key, r.off, r.n, r.got, err)
			}
			cause = err
			continue
		}
		// If-Match makes the server refuse another version; check anyway, as a
		// server that ignores the header must not splice two objects either.
		if et := aws.ToString(out.ETag); et != "" && unquote(et) != unquote(r.etag) {
			b.close()
			return fmt.Errorf("get %q [%d,+%d): resume at byte %d: ETag %s, first response %s: %w",
				r.key, r.off, r.n, r.got, et, r.etag, ErrChanged)
		}
		if got, want := aws.ToInt64(out.ContentLength), r.off+r.n-from; got != want {
			b.close()
			return fmt.Errorf("get %q [%d,+%d): resume at byte %d: server sent %d bytes (Content-Range %q), want %d: %w",
				r.key, r.off, r.n, r.got, got, aws.ToString(out.ContentRange), want, ErrUnavailable)
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			b.close()
			return fmt.Errorf("get %q [%d,+%d): read after Close: %w", r.key, r.off, r.n, os.ErrClosed)
		}
		r.cur = b
		r.mu.Unlock()
		return nil
	}
	return fmt.Errorf("get %q [%d,+%d): %d of %d bytes after %d resumes: %w: %w",
		r.key, r.off, r.n, r.got, r.n, r.resumes, ErrUnavailable, cause)
}

// sleep waits d unless the caller's context ends or the reader is closed.
func (r *s3Range) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.parent.Done():
		return fmt.Errorf("get %q [%d,+%d): %w", r.key, r.off, r.n, r.parent.Err())
	case <-r.closing:
		return fmt.Errorf("get %q [%d,+%d): read after Close: %w", r.key, r.off, r.n, os.ErrClosed)
	}
}

func (r *s3Range) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *s3Range) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.closing)
		r.cur.close()
	}
	return nil
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.loc.Bucket),
		Key:    aws.String(s.loc.ObjectKey(key)),
	})
	// S3 answers 204 for a missing key; an error here is about the bucket,
	// the credentials or the connection.
	return classify(ctx, "delete", key, err)
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	full, strip := s.loc.ObjectKey(prefix), s.loc.ObjectKey("")
	var out []ObjectInfo
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.loc.Bucket),
		Prefix: aws.String(full),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, classify(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), strip)
			if !ok || ValidateKey(key) != nil {
				s.log.Warn("objstore: list skips key that is not a valid object key", "key", aws.ToString(o.Key))
				continue
			}
			out = append(out, ObjectInfo{
				Key: key, Size: aws.ToInt64(o.Size), ETag: unquote(aws.ToString(o.ETag)),
				ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (s *s3Store) ListDir(ctx context.Context, dir string) ([]string, []ObjectInfo, error) {
	if err := checkDir(dir); err != nil {
		return nil, nil, err
	}
	full := s.loc.ObjectKey(dir)
	var dirs []string
	var objs []ObjectInfo
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.loc.Bucket), Prefix: aws.String(full), Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, nil, classify(ctx, "list", dir, err)
		}
		for _, p := range page.CommonPrefixes {
			name, ok := strings.CutPrefix(aws.ToString(p.Prefix), full)
			name, _ = strings.CutSuffix(name, "/")
			if !ok || name == "" || strings.Contains(name, "/") {
				continue
			}
			dirs = append(dirs, name)
		}
		for _, o := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(o.Key), full)
			if !ok || name == "" || ValidateKey(dir+name) != nil {
				continue
			}
			objs = append(objs, ObjectInfo{Key: dir + name, Size: aws.ToInt64(o.Size), ETag: unquote(aws.ToString(o.ETag)), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	slices.Sort(dirs)
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return dirs, objs, nil
}

var _ Store = (*s3Store)(nil)

// limitGroup runs at most limit functions at once; the first error cancels
// the group's context and is what Wait returns.
type limitGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newLimitGroup(ctx context.Context, limit int) *limitGroup {
	ctx, cancel := context.WithCancel(ctx)
	return &limitGroup{ctx: ctx, cancel: cancel, sem: make(chan struct{}, limit)}
}

// Go blocks until a slot is free (or the group is cancelled), then runs fn.
func (g *limitGroup) Go(fn func() error) {
	select {
	case g.sem <- struct{}{}:
	case <-g.ctx.Done():
		return
	}
	g.wg.Go(func() {
		defer func() { <-g.sem }()
		if err := fn(); err != nil {
			g.once.Do(func() {
				g.err = err
				g.cancel()
			})
		}
	})
}

func (g *limitGroup) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
