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

// chronicle-etl merge follows the binaries' convention (docs/cli.md): --help on stdout,
// exit 0; a usage error "chronicle-etl: ..." and the usage line on stderr, exit 2; a
// runtime error one line "chronicle-etl: merge A and B: why", exit 1.
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
	if code != 0 || !strings.Contains(out, "chronicle-etl merge [flags] --root ROOT") || !strings.Contains(out, "Examples:") ||
		!strings.Contains(out, "--root") || strings.Contains(out, "--metrics-addr") || errs != "" {
		t.Fatalf("--help: exit %d, stdout %q, stderr %q; want merge's flags only", code, out, errs)
	}
	dir := t.TempDir()
	for name, c := range map[string]struct {
		args []string
		code int
	}{
		"no root":       {[]string{dir, dir}, 2},
		"one journal":   {[]string{"--root", dir, dir}, 2},
		"unknown flag":  {[]string{"--bogus", "--root", dir, dir, dir}, 2},
		"bad host id":   {[]string{"--root", dir, "Capture A=" + dir, dir}, 2},
		"no journal":    {[]string{"--root", dir, filepath.Join(dir, "nope"), dir}, 1},
		"empty journal": {[]string{"--root", dir, dir, dir}, 1},
	} {
		out, errs, code := run(c.args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		ok := code == c.code && out == "" && strings.HasPrefix(lines[0], "chronicle-etl: ")
		if c.code == 2 {
			ok = ok && len(lines) == 3 && strings.HasPrefix(lines[1], "Usage: chronicle-etl merge")
		} else {
			ok = ok && len(lines) == 1
		}
		if !ok {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d by the convention", name, code, out, errs, c.code)
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
	if code != 1 || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "chronicle-etl: merge ") || !strings.Contains(errs, "other content") {
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
