package refinery

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/layout"
)

// copyTree copies every file below src into dst, keeping relative paths.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			if fi.Name() == ".chronicle-etl" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sum is the SHA-256 of a file, read whole.
func sum(t *testing.T, p string) string {
	t.Helper()
	h, _, err := testkit.HashFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return h
}

// mountAll mounts chronicle-fs over the roots and returns the mount point.
func mountAll(t *testing.T, roots layout.Roots) string {
	t.Helper()
	mp := filepath.Join(t.TempDir(), "chronicle")
	os.MkdirAll(mp, 0o755)
	proc.Mount(t, exec.Command(testenv.Bin("chronicle-fs"), "mount", "--hot", roots.Hot, "--warm", roots.Warm, "--cold", roots.Cold, "--remote", roots.Remote,
		"--metrics-addr", "", "--log-level", "warn", mp), mp, 20*time.Second, nil)
	return mp
}

// TestThroughMountEveryTier refines every capture, places the partitions in every tier
// (USD-M hot, COIN-M warm, spot cold, cryptofeed remote, the last two moved there by the
// real chronicle-tier), mounts chronicle-fs over them, and reads through the mount: the
// books are byte-identical to what the refinery wrote, the independent Python rebuild
// (python/check_capture.py, Binance's rules, numpy) agrees with every partition, and reads
// by exchange time (Go's bookindex.ReadRange and chronicle_q.read) equal filtering the
// whole file, from every tier.
func TestThroughMountEveryTier(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts FUSE for real and must run as root")
	}
	py := testenv.Python(t)
	repo := testenv.RepoRoot(t)
	dir := t.TempDir()
	roots := layout.Roots{Hot: filepath.Join(dir, "hot"), Warm: filepath.Join(dir, "warm"), Cold: filepath.Join(dir, "cold")}
	roots.Remote = "file://" + filepath.Join(dir, "remote")
	for _, r := range []string{roots.Hot, roots.Warm, roots.Cold, filepath.Join(dir, "remote")} {
		os.MkdirAll(r, 0o755)
	}
	staged := map[string]string{}
	for _, c := range captures {
		j, r := filepath.Join(dir, "J-"+c.name), filepath.Join(dir, "R-"+c.name)
		replay(t, c, j)
		proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--seal-all", "--root", r, j)
		staged[c.name] = r
	}
	// spot and cryptofeed go through the tier manager: warm -> cold, and the 2021 day on
	// to the remote store.
	copyTree(t, staged["spot"], roots.Warm)
	copyTree(t, staged["cryptofeed"], roots.Warm)
	tierArgs := []string{"--hot", roots.Hot, "--warm", roots.Warm, "--cold", roots.Cold, "--remote", roots.Remote,
		"--now", "2024-08-20", "--cold-after", "24h", "--remote-after", "8760h", "--hot-to-warm=false", "--log-level", "warn", "apply"}
	proc.Run(t, testenv.Bin("chronicle-tier"), tierArgs...)
	proc.Run(t, testenv.Bin("chronicle-tier"), tierArgs...)
	copyTree(t, staged["coinm"], roots.Warm)
	copyTree(t, staged["usdm"], roots.Hot)
	if _, err := os.Stat(filepath.Join(roots.Cold, "v1", "binance-spot", "eth-usdt", "2024-08-08", layout.ZstName)); err != nil {
		t.Fatalf("spot did not reach the cold tier: %v", err)
	}
	if _, err := os.Stat(filepath.Join(roots.Cold, "v1", "binance-perp", "sushi-usdt", "2021-07-22", layout.StubName)); err != nil {
		t.Fatalf("cryptofeed did not reach the remote tier: %v", err)
	}
	mp := mountAll(t, roots)

	tiers := map[string]string{"usdm": "hot", "coinm": "warm", "spot": "cold", "cryptofeed": "remote"}
	for _, c := range captures {
		for sym, days := range c.symbols {
			for date := range days {
				rel := filepath.Join("v1", c.venue, sym, date)
				mdir := filepath.Join(mp, rel)
				if got, want := sum(t, filepath.Join(mdir, "book.q")), sum(t, filepath.Join(staged[c.name], rel, "book.q")); got != want {
					t.Fatalf("%s (%s): book.q through the mount differs from what the refinery wrote", rel, tiers[c.name])
				}
				for _, f := range []string{"meta.json", "index/time.idx", "index/snapshots.idx"} {
					if !bytes.Equal(testkit.ReadFile(t, filepath.Join(mdir, f)), testkit.ReadFile(t, filepath.Join(staged[c.name], rel, f))) {
						t.Fatalf("%s: %s through the mount differs", rel, f)
					}
				}
				if x, err := testkit.ServedTier(filepath.Join(mdir, "book.q")); err != nil || x != tiers[c.name] {
					t.Fatalf("%s is served from %q (%v), want %s", rel, x, err, tiers[c.name])
				}
				checkRangeReads(t, mdir)
			}
		}
		// The independent rebuild, reading the books and meta.json through the mount.
		args := []string{filepath.Join(repo, "python", "check_capture.py"), "--venue", c.venue}
		for sym := range c.symbols {
			if len(c.symbols) == 1 {
				args = append(args, "--symbol-dir", filepath.Join(mp, "v1", c.venue, sym))
			} else {
				args = append(args, "--symbol", strings.ToUpper(strings.ReplaceAll(sym, "-", ""))+"="+filepath.Join(mp, "v1", c.venue, sym))
			}
		}
		out, err := exec.Command(py, append(args, c.paths()...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s (%s tier): the independent check disagrees: %v\n%s", c.name, tiers[c.name], err, out)
		}
		t.Logf("%s (%s tier): %s", c.name, tiers[c.name], lastLine(out))
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// checkRangeReads compares reads by exchange time, in Go and in numpy, with filtering
// the whole file, over intervals spread across the partition.
func checkRangeReads(t *testing.T, mdir string) {
	t.Helper()
	_, recs := records(t, filepath.Join(mdir, "book.q"))
	lo, hi := recs[0].ExchTs, recs[0].ExchTs
	for _, r := range recs {
		lo, hi = min(lo, r.ExchTs), max(hi, r.ExchTs)
	}
	var ivs [][2]int64
	for i := int64(0); i < 20; i++ {
		a := lo - 1e9 + (hi-lo+2e9)*i/20
		ivs = append(ivs, [2]int64{a, a + (hi-lo)/7 + 1})
	}
	ivs = append(ivs, [2]int64{lo, hi + 1}, [2]int64{hi, hi + 1}, [2]int64{lo - 5e9, lo})
	var spec strings.Builder
	for _, iv := range ivs {
		var want []uint64
		for _, r := range recs {
			if r.ExchTs >= iv[0] && r.ExchTs < iv[1] {
				want = append(want, r.Seq)
			}
		}
		var got []uint64
		if err := bookindex.ReadRange(mdir, iv[0], iv[1], func(r *format.BookRecord) error { got = append(got, r.Seq); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: ReadRange [%d,%d) gives %d records, filtering gives %d", mdir, iv[0], iv[1], len(got), len(want))
		}
		fmt.Fprintf(&spec, "%d %d %d\n", iv[0], iv[1], len(want))
	}
	script := `
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, chronicle_q as q
path = sys.argv[2]
b = q.open_book(path)
for line in sys.stdin:
    a, e, n = map(int, line.split())
    got = q.read(path, a, e)
    want = b[(b["ts_exchange"] >= a) & (b["ts_exchange"] < e)]
    assert len(got) == n == len(want) and (got == want).all(), (a, e, len(got), n)
print("ok")
`
	cmd := exec.Command(testenv.Python(t), "-c", script, filepath.Join(testenv.RepoRoot(t), "python"), filepath.Join(mdir, "book.q"))
	cmd.Stdin = strings.NewReader(spec.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: chronicle_q.read: %v\n%s", mdir, err, out)
	}
}
