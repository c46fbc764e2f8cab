package tiermgr

import (
	"os"
	"strings"
	"testing"

	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
)

// TestSharedRootsRefused: chronicle-tier will not start on a root other users can write to
// (without the sticky bit) or that another user owns: it exits non-zero naming the root,
// its mode, its owner and the option (a runtime error: exit 1, docs/cli.md). A sticky 1777 root is fine, and [tiers]
// allow_shared_roots = true accepts the others with a warning naming them.
func TestSharedRootsRefused(t *testing.T) {
	e := lt.NewEnv(t, "", nil)
	status := func(want int, wants ...string) {
		t.Helper()
		_, stderr, code := tier(t, append(config(t, e, nil, ""), "status")...)
		if code != want {
			t.Fatalf("status exited %d, want %d; stderr:\n%s", code, want, stderr)
		}
		for _, s := range wants {
			if !strings.Contains(stderr, s) {
				t.Fatalf("stderr does not name %q:\n%s", s, stderr)
			}
		}
	}
	status(0)

	if err := os.Chmod(e.Roots.Warm, 0o777); err != nil {
		t.Fatal(err)
	}
	status(1, "warm root "+e.Roots.Warm, "drwxrwxrwx 0777", "owner uid ", "writable by every user", "allow_shared_roots = true")

	if err := os.Chmod(e.Roots.Warm, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	status(0)

	if os.Geteuid() == 0 {
		if err := os.Chown(e.Roots.Cold, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		status(1, "cold root "+e.Roots.Cold, "owner uid 4242", "owned by another user")
	}

	if err := os.Chmod(e.Roots.Warm, 0o777); err != nil {
		t.Fatal(err)
	}
	e.Roots.AllowSharedRoots = true
	status(0, "allow_shared_roots", e.Roots.Warm)
}
