package multihost

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// chronicle-etl merge follows the binaries' convention: --help on stdout, exit 0; a usage
// error "chronicle-etl: ..." and the usage line on stderr, exit 2; a runtime error one
// line "chronicle-etl: merge: what: why", exit 1.
func TestMergeCommandLine(t *testing.T) {
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(testenv.Bin("chronicle-etl"), append([]string{"merge"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	out, errs, code := run("--help")
	if code != 0 || !strings.Contains(out, "chronicle-etl merge [flags] --root ROOT") || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--root") || errs != "" {
		t.Fatalf("--help: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"no root":       {dir, dir},
		"one journal":   {"--root", dir, dir},
		"unknown flag":  {"--bogus", "--root", dir, dir, dir},
		"no journal":    {"--root", dir, filepath.Join(dir, "nope"), dir},
		"bad host id":   {"--root", dir, "Capture A=" + dir, dir},
		"empty journal": {"--root", dir, dir, dir},
	} {
		out, errs, code := run(args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code != 2 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "chronicle-etl: ") || !strings.HasPrefix(lines[1], "usage: chronicle-etl merge") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2, the message and the usage line", name, code, out, errs)
		}
	}
	// A runtime error: the output holds a partition with other bytes.
	evsA, evsB := journalPair(t)
	root := filepath.Join(t.TempDir(), "out")
	if _, errs, code := run("--log-level", "warn", "--root", root, evsA, evsB); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, errs)
	}
	metas, _ := filepath.Glob(filepath.Join(root, "v1", "*", "*", "*", "meta.json"))
	if len(metas) == 0 {
		t.Fatal("the merge wrote nothing")
	}
	b, _ := os.ReadFile(metas[0])
	os.WriteFile(metas[0], append(b, ' '), 0o644)
	out, errs, code = run("--log-level", "error", "--root", root, evsA, evsB)
	if code != 1 || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "chronicle-etl: merge: ") || !strings.Contains(errs, "other content") {
		t.Fatalf("merge over a partition with other bytes: exit %d, stdout %q, stderr %q; want exit 1 and one line", code, out, errs)
	}
}

// journalPair replays the USD-M capture twice as two hosts' journals (chronicle-feed
// replay: the same messages, two host ids).
func journalPair(t *testing.T) (string, string) {
	t.Helper()
	capture := filepath.Join(testenv.CapturesDir(), "binance-usdm_ethusdt_20240808.jsonl.gz")
	var dirs []string
	for _, h := range []string{"replay-a", "replay-b"} {
		d := filepath.Join(t.TempDir(), h)
		runBin(t, "chronicle-feed", "replay", "--speed", "0", "--host-id", h, "--journal-dir", d, "--metrics-addr", "", "--log-level", "warn", capture)
		dirs = append(dirs, d)
	}
	return dirs[0], dirs[1]
}
