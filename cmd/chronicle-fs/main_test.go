package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlagsOverrideConfig: the file sets everything, flags win where given, defaults fill
// the rest.
func TestFlagsOverrideConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(cfg, []byte(`
[tiers]
warm = "/from/file/warm"
cold = "/from/file/cold"
[fs]
cache_bytes = 1048576000
sealed_timeout = "5m"
allow_other = true
`), 0o644)
	var stderr bytes.Buffer
	s, rest, err := load([]string{"--config", cfg, "--cold", "/from/flag/cold", "--cache-bytes", "64MiB", "--allow-other=false", "/mnt/x"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 1 || rest[0] != "/mnt/x" {
		t.Fatalf("args %q", rest)
	}
	if s.roots.Warm != "/from/file/warm" || s.roots.Cold != "/from/flag/cold" || s.roots.Hot != "/dev/shm/chronicle" {
		t.Errorf("roots %+v", s.roots)
	}
	if s.fs.CacheBytes != 64<<20 || s.fs.SealedTimeout != 5*time.Minute || s.fs.AllowOther || !s.fs.Passthrough || s.fs.ReadAheadKB != 16384 || !s.fs.DirectReads {
		t.Errorf("fs %+v", s.fs)
	}
	if _, _, err := load([]string{"--config", cfg, "--remote-timeout", "0s", "/mnt/x"}, &stderr); err == nil {
		t.Error("remote-timeout 0 accepted")
	}
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"chronicle-fs mount --config", "numpy.load", "getfattr", "--cache-bytes", "--allow-other"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	out.Reset()
	if code := run([]string{"mount", "--help"}, &out); code != 0 || !strings.Contains(out.String(), "Examples:") {
		t.Errorf("mount --help: exit %d\n%s", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code := run([]string{"mount"}, &out); code != 2 {
		t.Errorf("mount without a mount point: exit %d", code)
	}
}
