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

// TestDemo runs `make demo KEEP=1`'s script to its end: at most about 60 lines on the
// terminal, the researcher's summary with every partition in the tier the demo clock puts
// it in, an HTML report whose path is the last line (a summary table first, then charts),
// and the tree left mounted. Every block of the README's "Reading data" section then runs
// as printed against that tree (at /tmp/chronicle-demo/mnt, in a mount namespace of its
// own); `scripts/demo.sh stop` (make demo-stop) unmounts it, and nothing is left behind.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	stop := func() ([]byte, error) {
		cmd := demoCmd(t, dir)
		cmd.Args = append(cmd.Args, "stop")
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() { stop() })
	out, err := demoCmd(t, dir, "KEEP=1").CombinedOutput()
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
	checkReport(t, report)
	short := map[string]string{"binance-perp": "perp", "binance-coinm": "coinm", "binance-spot": "spot"}
	// OKX's three partitions have a line each, Kraken's ten one line together; the 2021
	// and 2022 days are sealed and older than 30 days on the demo clock: remote.
	for _, want := range []string{`okx/btc-usdt/2022-05-13`, `okx/uni-usd-swap/2022-05-13`, `okx/btc-usd-2022-05-27/2022-05-13`, `kraken/{10 symbols}/2021-04-17`} {
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(want) + `\s+remote\s+\d+`).MatchString(text) {
			t.Errorf("the summary has no line for %s in the remote tier", want)
		}
	}
	for part, tier := range wantTier {
		v, rest, _ := strings.Cut(part, "/")
		want := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(short[v]+"/"+rest) + `\s+` + tier + `\s+\d+`)
		if !want.MatchString(text) {
			t.Errorf("the summary has no line for %s in the %s tier", part, tier)
		}
	}

	// KEEP=1: the mount stays, the producers are gone.
	mnt := filepath.Join(dir, "mnt")
	if !mounted(mnt) || !strings.Contains(text, "make demo-stop") {
		t.Fatalf("KEEP=1: %s is not left mounted, or the demo does not say how to end it", mnt)
	}
	runReadme(t, mnt)
	if out, err := stop(); err != nil {
		t.Fatalf("demo.sh stop: %v\n%s", err, out)
	}
	checkClean(t, dir)
}

// checkReport reads the demo's report: one HTML file whose first section is the summary
// table (a row per partition), then the venues' ETH chart, then a section per partition;
// every image a PNG file beside it; a partition too short to chart gets a sentence, not
// charts.
func checkReport(t *testing.T, report string) {
	t.Helper()
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	if strings.Contains(html, "http://") || strings.Contains(html, "https://") || strings.Contains(html, "<script") {
		t.Errorf("the report loads something from elsewhere; it must read offline")
	}
	secs := regexp.MustCompile(`(?s)<section[^>]*>(.*?)</section>`).FindAllStringSubmatch(html, -1)
	parts := len(wantTier) + len(subscribedParts)
	if len(secs) < 2+parts {
		t.Fatalf("the report has %d sections, want the summary, the venues and one per partition (%d)", len(secs), parts)
	}
	first := secs[0][1]
	rows := regexp.MustCompile(`(?s)<tr[^>]*>\s*<td`).FindAllStringIndex(first, -1)
	if !strings.Contains(first, "<h2>Summary") || !strings.Contains(first, "<table") || len(rows) != parts {
		t.Errorf("the report's first section is not the summary table with a row per partition (%d rows):\n%.2000s", len(rows), first)
	}
	for _, col := range []string{"tier", "records", "exchange time", "invalid", "ticker checks"} {
		if !strings.Contains(strings.ToLower(first), col) {
			t.Errorf("the summary table has no %q column", col)
		}
	}
	if !strings.Contains(secs[1][1], "ETH") || !strings.Contains(secs[1][1], "<img") {
		t.Errorf("the report's second section is not the venues' ETH chart:\n%.1000s", secs[1][1])
	}
	imgs := regexp.MustCompile(`<img src="([^"]+)"`).FindAllStringSubmatch(html, -1)
	for _, m := range imgs {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(report), m[1]))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("chart %s is not a PNG file (%v)", m[1], err)
		}
	}
	if n := strings.Count(html, "own checksum of its book"); n != len(subscribedParts) {
		t.Errorf("the report states the exchange checksum checks of %d partitions, want %d (OKX's and Kraken's)", n, len(subscribedParts))
	}
	for _, s := range secs[2:] {
		body := s[1]
		n := strings.Count(body, "<img")
		subscribed := strings.Contains(body, "<h2>okx/") || strings.Contains(body, "<h2>kraken/")
		switch {
		case strings.Contains(body, "perp/eth-usdt/2024-08-09"):
			if n != 0 || !strings.Contains(body, "too short") {
				t.Errorf("the one-second partition perp/eth-usdt/2024-08-09 shows %d charts, want none and a sentence saying why", n)
			}
		case subscribed && n == 0:
			// Half a minute of a few tickers: a sentence says why there is no chart.
			if !strings.Contains(body, "No charts:") {
				t.Errorf("an OKX or Kraken partition without charts does not say why:\n%.500s", body)
			}
		case n != 3 || strings.Count(body, "_ladder.png") != 1:
			t.Errorf("a partition's section has %d charts, want mid-price/spread, depth and the book ladder read from views/top25.npy:\n%.500s", n, body)
		}
		if regexp.MustCompile(`\b(True|False|None)\b|\d{18,}`).MatchString(body) {
			t.Errorf("a partition's section shows Python reprs or raw nanoseconds:\n%.800s", body)
		}
	}
}

// subscribedParts are the report's sections of the OKX and Kraken partitions.
var subscribedParts = []string{"okx/btc-usd-2022-05-27/2022-05-13", "okx/btc-usdt/2022-05-13", "okx/uni-usd-swap/2022-05-13",
	"kraken/ada-btc/2021-04-17", "kraken/btc-chf/2021-04-17", "kraken/eth-chf/2021-04-17", "kraken/grt-eth/2021-04-17",
	"kraken/ksm-btc/2021-04-17", "kraken/ocean-btc/2021-04-17", "kraken/omg-usd/2021-04-17", "kraken/sc-eur/2021-04-17",
	"kraken/waves-eur/2021-04-17", "kraken/xmr-usd/2021-04-17"}

// The README's examples read the demo's tree where `make demo` leaves it.
const readmeMount = "/tmp/chronicle-demo/mnt"

// runReadme runs every shell and Python block of the README's "Reading data" section, as
// printed, from a folder of their own: the shell ones with bash -e, the Python ones with
// /usr/bin/python3, the interpreter the README names. They run in a mount namespace of
// their own where a fresh /tmp holds the demo's tree at /tmp/chronicle-demo/mnt (the test's
// demo runs elsewhere; nothing outside sees it) and chronicle_q is on PYTHONPATH, standing
// for the chronicle_q.pth `make demo` installs (TestDepsPythonLink checks that file).
func runReadme(t *testing.T, mnt string) {
	t.Helper()
	repo := testenv.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, string(readme), "Reading data")
	langs := map[string]int{}
	for _, b := range blocks {
		langs[b.lang]++
		if !strings.Contains(b.body, readmeMount) && b.lang == "python" {
			t.Errorf("a Python block of \"Reading data\" does not read the demo's tree (%s):\n%s", readmeMount, b.body)
		}
	}
	if langs["sh"] == 0 || langs["python"] == 0 {
		t.Fatalf("\"Reading data\" has %d shell and %d Python blocks; want both", langs["sh"], langs["python"])
	}
	// The three folders are held open (fds 3-5, opened in the new namespace: a bind mount's
	// source must be in it) across the /tmp that covers them, then bound. The binaries this
	// test built (under /tmp too) are on PATH, as bin/ is after `make build` (chronicle-q).
	setup := `set -eu
exec 3<"$DEMO_MNT" 4<"$PYDIR" 5<"$BINDIR"
mount -t tmpfs -o mode=1777 chronicle-readme /tmp
mkdir -p ` + readmeMount + ` /tmp/.chronicle-python /tmp/.chronicle-bin /tmp/reader
mount -c --bind /proc/self/fd/3 ` + readmeMount + `
mount -c --bind /proc/self/fd/4 /tmp/.chronicle-python
mount -c --bind /proc/self/fd/5 /tmp/.chronicle-bin
exec 3<&- 4<&- 5<&-
cd /tmp/reader
export PYTHONPATH=/tmp/.chronicle-python PATH=/tmp/.chronicle-bin:$PATH
exec "$@"`
	for i, b := range blocks {
		argv := []string{"bash", "-e", "-o", "pipefail", "-s"}
		if b.lang == "python" {
			argv = []string{"/usr/bin/python3", "-"}
		}
		cmd := exec.Command("bash", append([]string{"-c", setup, "readme"}, argv...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		cmd.Env = append(os.Environ(), "DEMO_MNT="+mnt, "PYDIR="+filepath.Join(repo, "python"), "BINDIR="+testenv.BinDir())
		cmd.Stdin = strings.NewReader(b.body)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("README \"Reading data\" block %d (%s) failed: %v\n%s\noutput:\n%s", i+1, b.lang, err, b.body, out.String())
			continue
		}
		t.Logf("README block %d (%s) output:\n%.1500s", i+1, b.lang, out.String())
	}
}

type block struct{ lang, body string }

// readmeBlocks returns the fenced code blocks of a README section, in order.
func readmeBlocks(t *testing.T, readme, section string) []block {
	t.Helper()
	start := strings.Index(readme, "\n## "+section+"\n")
	if start < 0 {
		t.Fatalf("README has no section %q", section)
	}
	rest := readme[start+len(section)+5:]
	if end := strings.Index(rest, "\n## "); end >= 0 {
		rest = rest[:end]
	}
	var out []block
	for _, m := range regexp.MustCompile("(?ms)^```([a-z0-9]*)\n(.*?)^```").FindAllStringSubmatch(rest, -1) {
		switch m[1] {
		case "sh", "bash", "shell":
			out = append(out, block{"sh", m[2]})
		case "python", "py":
			out = append(out, block{"python", m[2]})
		default:
			t.Fatalf("README %q: a block of language %q that the test cannot run:\n%s", section, m[1], m[2])
		}
	}
	return out
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
