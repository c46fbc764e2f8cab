package pipeline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// demoCmd runs scripts/demo.sh in folder dir with the binaries this test built.
func demoCmd(t *testing.T, dir string, env ...string) *exec.Cmd {
	repo := testenv.RepoRoot(t)
	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "demo.sh"))
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), append([]string{"CHRONICLE_DEMO_DIR=" + dir, "BIN=" + testenv.BinDir()}, env...)...)
	return cmd
}

// leftovers lists what a demo left behind: its mount, and any process whose command
// line names its folder (every daemon it starts does: --config DIR/chronicle.toml...).
func leftovers(dir string) []string {
	var out []string
	if mounted(filepath.Join(dir, "mnt")) {
		out = append(out, "mount "+filepath.Join(dir, "mnt"))
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			out = append(out, fmt.Sprintf("process %d: %s", pid, bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// checkClean requires that nothing of the demo is left, allowing a moment for the kernel
// to reap.
func checkClean(t *testing.T, dir string) {
	t.Helper()
	var left []string
	for range 50 {
		if left = leftovers(dir); len(left) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("the demo left behind:\n%s", strings.Join(left, "\n"))
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestDemo runs `make demo`'s script to its end: at most about 60 lines on the terminal,
// the researcher's summary with every partition in the tier the demo clock puts it in, an
// HTML report whose path is the last line, two charts per partition, and nothing left
// behind (no daemon, no mount).
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out, err := demoCmd(t, dir).CombinedOutput()
	text := ansi.ReplaceAllString(string(out), "")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, text)
	}
	t.Logf("demo output:\n%s", text)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > 62 {
		t.Errorf("the demo printed %d lines; the narrative should fit in about 60", len(lines))
	}
	report := filepath.Join(dir, "report", "index.html")
	if last := lines[len(lines)-1]; last != "Report: file://"+report {
		t.Errorf("last line %q, want the report's path", last)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	imgs := regexp.MustCompile(`<img src="([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	// Per partition: mid-price and spread, top-of-book depth, and the book ladder read from
	// views/top25.npy.
	if len(imgs) != 3*len(wantTier) {
		t.Errorf("the report shows %d charts, want 3 per partition (%d)", len(imgs), 3*len(wantTier))
	}
	if n := strings.Count(string(page), "_ladder.png"); n != len(wantTier) {
		t.Errorf("the report shows %d book ladders, want one per partition (%d)", n, len(wantTier))
	}
	for _, m := range imgs {
		b, err := os.ReadFile(filepath.Join(dir, "report", m[1]))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("chart %s is not a PNG file (%v)", m[1], err)
		}
	}
	short := map[string]string{"binance-perp": "perp", "binance-coinm": "coinm", "binance-spot": "spot"}
	for part, tier := range wantTier {
		v, rest, _ := strings.Cut(part, "/")
		want := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(short[v]+"/"+rest) + `\s+` + tier + `\s+\d+`)
		if !want.MatchString(text) {
			t.Errorf("the summary has no line for %s in the %s tier", part, tier)
		}
	}
	checkClean(t, dir)
}

// TestDemoInterrupted interrupts the demo (S3=1: with a versitygw remote) with SIGINT at a
// random step (seed printed), sent to the script alone (not its process group, so the
// daemons hear nothing but what the script tells them): it exits, and no daemon and no
// mount is left.
func TestDemoInterrupted(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(testenv.Seed(t)), 15))
	step := 2 + rng.IntN(5) // the demo's steps 2..6
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := demoCmd(t, dir, "S3=1")
	var mu sync.Mutex
	var all bytes.Buffer
	output := func() string { mu.Lock(); defer mu.Unlock(); return all.String() }
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sent := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			line := ansi.ReplaceAllString(sc.Text(), "")
			mu.Lock()
			all.WriteString(line + "\n")
			mu.Unlock()
			if !signalled && strings.HasPrefix(line, fmt.Sprintf("== %d.", step)) {
				signalled = true
				time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond) // somewhere inside the step
				cmd.Process.Signal(syscall.SIGINT)
				close(sent)
			}
		}
	}()
	select {
	case <-sent:
	case err := <-done:
		t.Fatalf("the demo ended (%v) before step %d:\n%s", err, step, output())
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("step %d not reached in 3 minutes:\n%s", step, output())
	}
	t.Logf("SIGINT during step %d", step)
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the demo did not stop within 90 s of SIGINT:\n%s", output())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("the interrupted demo exited with %v, want a failure status", err)
	}
	checkClean(t, dir)
}
