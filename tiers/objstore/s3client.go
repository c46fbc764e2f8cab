package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// newHTTPClient builds the transport behind every S3 call, starting from base
// (the SDK's transport, which carries $AWS_CA_BUNDLE, proxy and TLS settings).
// Timeouts are per attempt so a dead or hung server fails fast: dial, each
// socket write, and the wait for response headers are each bounded by
// timeout (body stalls on reads are bounded by the GetRange watchdog). Idle
// connections are kept per host so ranged GETs reuse them.
func newHTTPClient(base *http.Transport, timeout time.Duration, idlePerHost int, dials *atomic.Int64) (*http.Client, *http.Transport) {
	tr := base
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		dials.Add(1)
		return &writeDeadlineConn{Conn: c, timeout: timeout}, nil
	}
	tr.DialTLSContext = nil
	tr.ForceAttemptHTTP2 = false // S3 speaks HTTP/1.1; h2 would multiplex ranged GETs onto one stream window
	tr.MaxIdleConns = 4 * idlePerHost
	tr.MaxIdleConnsPerHost = idlePerHost
	tr.MaxConnsPerHost = 0
	tr.IdleConnTimeout = 90 * time.Second
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = timeout
	tr.ExpectContinueTimeout = time.Second
	tr.DisableCompression = true // ranges must be the stored bytes
	tr.DisableKeepAlives = false
	tr.WriteBufferSize = 256 << 10
	tr.ReadBufferSize = 256 << 10
	return &http.Client{
		Transport: tr,
		// S3 redirects (wrong region) are errors to report, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, tr
}

// writeDeadlineConn bounds every write: a server that stops reading (full
// socket buffers) makes the upload fail after timeout instead of hanging.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// newRetryer retries transient failures a bounded number of times with
// exponential backoff and full jitter. No retry token bucket: attempts are
// already bounded and a shared bucket would make behaviour after an outage
// depend on history.
func newRetryer(maxRetries int, maxBackoff time.Duration) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxRetries + 1
		o.MaxBackoff = maxBackoff
		o.Backoff = jitterBackoff{base: 50 * time.Millisecond, max: maxBackoff}
		o.RateLimiter = ratelimit.None
		// A gateway over a POSIX filesystem (versitygw's posix backend) removes a key's
		// emptied parent directories on delete; a Put whose parents it had just made then
		// fails with 409 ExistingObjectIsDirectory although no such object exists. Retried,
		// the Put makes them again; a real directory under the key fails every attempt.
		o.Retryables = append(o.Retryables, retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "ExistingObjectIsDirectory" {
				return aws.TrueTernary
			}
			return aws.UnknownTernary
		}))
	})
}

type jitterBackoff struct{ base, max time.Duration }

func (b jitterBackoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	d := b.max
	if attempt < 30 {
		d = min(b.base<<attempt, b.max)
	}
	if d <= 0 {
		return 0, nil
	}
	return rand.N(d + 1), nil
}

// withPayloadSHA256 hands the SigV4 signer a payload hash we already computed,
// so the SDK does not hash the body a second time over plain HTTP. Since the
// hash is signed, the server also rejects a body that does not match it.
func withPayloadSHA256(hexDigest string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("chroniclePayloadSHA256",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
					middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, hexDigest), in)
				}), middleware.Before)
		})
	}
}

// classify wraps an SDK error with the sentinel that describes it, naming the
// operation and key. A cancelled or expired caller context wins: that is the
// caller's decision, not an outage.
func classify(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s %q: %w (%v)", op, key, cerr, err)
	}
	status := 0
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var sentinel error
	switch {
	case code == "NoSuchKey" || code == "NotFound" || code == "NoSuchBucket" || status == http.StatusNotFound:
		sentinel = ErrNotFound
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		sentinel = ErrChanged // a resumed read's If-Match; Put maps it to ErrExists for If-None-Match
	case code == "ExistingObjectIsDirectory": // still, after the retries: keys below this one exist
		sentinel = ErrKeyConflict
	case code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable:
		sentinel = ErrOutOfRange
	case code == "BadDigest" || code == "InvalidDigest" || code == "XAmzContentSHA256Mismatch" ||
		strings.Contains(code, "Checksum"):
		sentinel = ErrChecksumMismatch
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
		status == http.StatusForbidden:
		sentinel = ErrAccessDenied
	case status >= 500 || status == http.StatusTooManyRequests || code == "SlowDown" || code == "RequestTimeout" ||
		code == "ConditionalRequestConflict": // 409: a concurrent conditional write; try again
		sentinel = ErrUnavailable
	case status == 0 && isTransportErr(err):
		sentinel = ErrUnavailable
	}
	if sentinel == nil {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	return fmt.Errorf("%s %q: %w: %w", op, key, sentinel, err)
}

// isTransportErr recognises failures to reach the server or to get a whole
// response from it.
func isTransportErr(err error) bool {
	var se *smithyhttp.RequestSendError
	var ne net.Error
	return errors.As(err, &se) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
