package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/cli"
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
	parse := func(args ...string) (*settings, []string, error) {
		s := newSettings()
		if err := s.fl.Parse(args); err != nil {
			return nil, nil, err
		}
		err := s.load()
		return s, s.fl.Args(), err
	}
	s, rest, err := parse("--config", cfg, "--cold", "/from/flag/cold", "--cache-bytes", "64MiB", "--allow-other=false", "/mnt/x")
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
	if _, _, err := parse("--config", cfg, "--remote-timeout", "0s", "/mnt/x"); !cli.IsUsage(err) {
		t.Errorf("--remote-timeout 0: %v, want a usage error", err)
	}
	os.WriteFile(cfg, []byte("[fs]\nremote_timeout = \"0s\"\n"), 0o644)
	if _, _, err := parse("--config", cfg, "/mnt/x"); err == nil || cli.IsUsage(err) || !strings.Contains(err.Error(), cfg) {
		t.Errorf("remote_timeout 0 in the file: %v, want a runtime error naming the file", err)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"chronicle-fs mount --config", "numpy.load", "getfattr", "--cache-bytes", "--allow-other"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	out.Reset()
	if code := run([]string{"mount", "--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "Examples:") {
		t.Errorf("mount --help: exit %d\n%s", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code := run([]string{"mount"}, &out, &errOut); code != 2 {
		t.Errorf("mount without a mount point: exit %d", code)
	}
	errOut.Reset()
	missing := filepath.Join(t.TempDir(), "typo", "mnt")
	if code := run([]string{"mount", missing}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), missing) || !strings.Contains(errOut.String(), "--mkdir") {
		t.Errorf("mount on a missing directory: exit %d: %s", code, errOut.String())
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("the refused mount point's parent exists: %v", err)
	}
	errOut.Reset()
	if code := run([]string{"unmount", t.TempDir()}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "not a mount point") {
		t.Errorf("unmount of a plain directory: exit %d: %s", code, errOut.String())
	}
}
