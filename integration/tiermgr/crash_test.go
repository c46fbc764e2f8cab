package tiermgr

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// TestKillNine kills the real chronicle-tier with SIGKILL at random moments of an apply
// that moves four partitions through every policy (file:// and S3 remotes alternately,
// the parquet deriver on every third run). Right after each kill every partition must
// read back identically; after one clean run every partition must be in exactly one tier,
// where the policies put it, identical, with no temporary file, leftover or orphan object.
func TestKillNine(t *testing.T) {
	runs := testenv.CrashRuns(t)
	rng := newRand(seed(t))
	srv := s3test.Start(t)
	crash := lt.NewCrash(t)

	setup := func(i int) (*lt.Env, []string) {
		var store objstore.Store
		var s *s3test.Server
		if i%2 == 0 {
			store = testkit.FileStore(t)
		} else {
			store, s = lt.S3Store(t, srv, fmt.Sprintf("kill-%d", i)), srv
		}
		e := lt.NewEnv(t, testenv.FastDir(t), store)
		crash.Place(t, e)
		extra := ""
		if i%3 == 0 {
			extra = `derive = "parquet"`
		}
		return e, append(config(t, e, s, extra), "--now", lt.CrashNow, "apply")
	}

	// Calibrate: how long one uninterrupted apply takes, per remote backend.
	var full [2]time.Duration
	for i := 0; i < 6; i++ {
		e, args := setup(i)
		t0 := time.Now()
		if _, stderr, code := tier(t, args...); code != 0 {
			t.Fatalf("uninterrupted apply exited %d:\n%s", code, stderr)
		}
		if d := time.Since(t0); full[i%2] == 0 || d < full[i%2] {
			full[i%2] = d
		}
		crash.CheckFinal(t, e)
	}
	t.Logf("an uninterrupted apply takes %v (file://), %v (S3); killing at uniform moments within that", full[0], full[1])

	killed, recovered := 0, 0
	for i := 0; i < runs; i++ {
		e, args := setup(i)
		delay := time.Duration(rng.Int64N(int64(full[i%2])))
		start := time.Now()
		p := proc.Start(t, exec.Command(testenv.Bin("chronicle-tier"), args...))
		select {
		case <-p.Done():
			// Finished before the kill moment: this machine is running faster than during
			// the calibration (shared hosts vary), so later kills aim within this run's time.
			if err := p.Err(); err != nil {
				t.Fatalf("run %d exited by itself with %v:\n%s", i, err, p.Output())
			}
			full[i%2] = min(full[i%2], time.Since(start))
		case <-time.After(delay):
			p.Cmd.Process.Kill()
			if err := p.Wait(); err != nil {
				killed++
			}
		}
		what := fmt.Sprintf("run %d (kill after %v, remote %s)", i, delay, e.Roots.Remote)
		t.Run(fmt.Sprintf("run-%02d", i), func(t *testing.T) {
			// No loss at the moment of the crash.
			e.CheckReadable(t, crash.Parts)
			// The next run finishes or rolls back, then completes the plan.
			_, out, code := tier(t, args...)
			if code != 0 {
				t.Fatalf("%s: the run after the kill exited %d:\n%s\nkilled run's log:\n%s", what, code, out, p.Output())
			}
			if strings.Contains(out, `"msg":"recovery"`) {
				recovered++
			}
			crash.CheckFinal(t, e)
		})
	}
	t.Logf("%d runs, %d killed before they finished, %d needed recovery (finish, roll back or clean up)", runs, killed, recovered)
	if killed < runs/2 {
		t.Fatalf("only %d of %d runs were killed mid-way: the kill moments do not cover the run", killed, runs)
	}
}
