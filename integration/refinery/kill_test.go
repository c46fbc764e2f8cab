package refinery

import (
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
)

// TestKillNine kills the real chronicle-etl with SIGKILL at random moments while it
// refines the COIN-M capture (two journal segments, a partition sealed mid-run by a short
// grace, every partition sealed at the end), restarts it each time, and requires the
// final tree (books, index/, meta.json but its ingest time) to be byte-identical to an
// uninterrupted run's. Rounds start from an empty output root until at least 50 kills
// (CHRONICLE_CRASH_RUNS) landed.
func TestKillNine(t *testing.T) {
	kills := testenv.CrashRuns(t)
	rng := rand.New(rand.NewPCG(uint64(testenv.Seed(t)), 7))
	dir := t.TempDir()
	j := filepath.Join(dir, "J")
	replay(t, captures[1], j)
	args := func(root string) []string {
		return []string{"backfill", "--log-level", "warn", "--root", root, "--seal-all", "--grace", "1m",
			"--checkpoint-interval", "5ms", "--snapshot-interval", "10s", j}
	}
	ref := filepath.Join(dir, "ref")
	t0 := time.Now()
	proc.Run(t, testenv.Bin("chronicle-etl"), args(ref)...)
	full := time.Since(t0)
	want := trees.Refined(t, ref)
	t.Logf("an uninterrupted backfill takes %v; killing at uniform moments within it", full)

	landed, rounds := killRounds(t, rng, dir, args, full, kills, want, "")
	t.Logf("%d kills in %d rounds; every round's tree is identical to the uninterrupted run's", landed, rounds)
}

// killRounds refines with `chronicle-etl` args(root) into fresh roots under dir until kills
// SIGKILLs have landed: each round restarts the run on its root, killed at a uniform moment
// within window, until a run finishes (200 restarts at most), and its tree must then be
// want (what labels the rounds). It returns the kills landed and the rounds run.
func killRounds(t *testing.T, rng *rand.Rand, dir string, args func(root string) []string, window time.Duration,
	kills int, want map[string][]byte, what string) (landed, rounds int) {
	t.Helper()
	for landed < kills {
		rounds++
		root := filepath.Join(dir, "round"+strconv.Itoa(rounds))
		for attempt := 0; ; attempt++ {
			if attempt > 200 {
				t.Fatalf("round %d did not finish after 200 restarts", rounds)
			}
			p := proc.Start(t, exec.Command(testenv.Bin("chronicle-etl"), args(root)...))
			var err error
			select {
			case <-p.Done():
				err = p.Err()
			case <-time.After(time.Duration(rng.Int64N(int64(window)))):
				p.Cmd.Process.Signal(syscall.SIGKILL)
				err = p.Wait()
			}
			if err == nil {
				break // this run finished the refinement
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("round %d: chronicle-etl failed after a kill: %v\n%s", rounds, err, p.Output())
			}
			landed++
		}
		trees.Same(t, want, trees.Refined(t, root), strings.TrimSpace(what+" round "+strconv.Itoa(rounds)))
	}
	return landed, rounds
}
