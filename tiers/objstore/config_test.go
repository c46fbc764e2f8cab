package objstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/tiers/objstore"
)

// TestConfigValidated: each [remote] value out of range fails Open with an error naming it.
func TestConfigValidated(t *testing.T) {
	for _, tc := range []struct {
		key string
		cfg objstore.Config
	}{
		{"request_timeout", objstore.Config{RequestTimeout: -time.Second}},
		{"max_backoff", objstore.Config{MaxBackoff: -time.Second}},
		{"max_retries", objstore.Config{MaxRetries: -2}},
		{"max_resumes", objstore.Config{MaxResumes: -2}},
		{"part_size", objstore.Config{PartSize: 1 << 20}},
		{"multipart_threshold", objstore.Config{PartSize: 8 << 20, MultipartThreshold: 6 << 20}},
		{"concurrency", objstore.Config{Concurrency: -1}},
		{"max_idle_conns_per_host", objstore.Config{MaxIdleConnsPerHost: -1}},
		{"endpoint", objstore.Config{Endpoint: "10.0.0.5:7070"}},
		{"endpoint", objstore.Config{Endpoint: "ftp://10.0.0.5"}},
	} {
		_, err := objstore.Open(context.Background(), "s3://bucket/prefix", tc.cfg)
		if !errors.Is(err, objstore.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%+v: %v, want ErrInvalidConfig naming %s", tc.cfg, err, tc.key)
		}
	}
}
