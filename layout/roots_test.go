package layout

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/config"
)

// TestCheckRoots: roots others can write to without the sticky bit, or owned by another
// user, are refused with an error naming the root, its mode, its owner and the option;
// allow_shared_roots accepts them with a warning.
func TestCheckRoots(t *testing.T) {
	me := os.Geteuid()
	other := me + 4242 // a user this process is not
	const foreign = -2 // chown to other when root; else check as other (the root stays ours)
	for _, tc := range []struct {
		name  string
		mode  os.FileMode // applied with Chmod (sticky via os.ModeSticky)
		chown int         // uid to give the root; -1 leaves it ours; foreign: see above
		euid  int         // the user the check runs as
		allow bool
		want  string // "" for accepted, else a substring of the error
	}{
		{"0755 ours", 0o755, -1, me, false, ""},
		{"0700 ours", 0o700, -1, me, false, ""},
		{"0777 refused", 0o777, -1, me, false, "writable by every user"},
		{"0773 refused", 0o773, -1, me, false, "writable by every user"},
		{"1777 sticky ok", 0o777 | os.ModeSticky, -1, me, false, ""},
		{"0775 group-writable ok", 0o775, -1, me, false, ""},
		{"foreign owner refused", 0o755, foreign, me, false, "owned by another user"},
		{"0777 allowed by config", 0o777, -1, me, true, ""},
		{"foreign owner allowed by config", 0o755, foreign, me, true, ""},
		{"root-owned ok for another user", 0o755, 0, other, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "hot")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			euid := tc.euid
			if tc.chown == foreign {
				if me == 0 {
					tc.chown = other
				} else {
					tc.chown, euid = -1, other
				}
			}
			if tc.chown >= 0 {
				if me != 0 {
					t.Skip("chown needs root")
				}
				if err := os.Chown(dir, tc.chown, -1); err != nil {
					t.Fatal(err)
				}
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			err := checkRoots(euid, tc.allow, log, []LocalRoot{{"hot", dir}})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.allow && !strings.Contains(logs.String(), dir) {
					t.Fatalf("accepted by allow_shared_roots without a warning naming %s: %q", dir, logs.String())
				}
				if !tc.allow && logs.Len() > 0 {
					t.Fatalf("fine root logged: %s", logs.String())
				}
				return
			}
			if !errors.Is(err, ErrSharedRoot) {
				t.Fatalf("err %v; want ErrSharedRoot", err)
			}
			for _, s := range []string{"hot root " + dir, "mode ", "owner uid ", "allow_shared_roots", tc.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			t.Log(err)
		})
	}
}

// TestCheckRootsEach: every root is checked (each bad one named), through symbolic links;
// missing and empty roots are left alone; the real CheckRoots refuses a 0777 root.
func TestCheckRootsEach(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	good, bad1, bad2 := mk("good", 0o755), mk("bad1", 0o777), mk("bad2", 0o757)
	link := filepath.Join(base, "link")
	if err := os.Symlink(bad2, link); err != nil {
		t.Fatal(err)
	}
	roots := Roots{Hot: good, Warm: bad1, Cold: filepath.Join(base, "missing"), Remote: "file://" + link}
	err := CheckRoots(false, nil, roots.LocalRoots()...)
	if !errors.Is(err, ErrSharedRoot) {
		t.Fatalf("err %v; want ErrSharedRoot", err)
	}
	for _, s := range []string{"warm root " + bad1, "remote root " + link} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if strings.Contains(err.Error(), good) {
		t.Errorf("error names the good root: %v", err)
	}
	if err := CheckRoots(false, nil, LocalRoot{"hot", good}, LocalRoot{"output", ""}, LocalRoot{"cold", filepath.Join(base, "missing")}); err != nil {
		t.Fatalf("good, empty and missing roots refused: %v", err)
	}
	if n := len((Roots{Hot: "/h", Remote: "s3://b/p"}).LocalRoots()); n != 1 {
		t.Fatalf("LocalRoots of hot and an s3 remote: %d roots; want 1", n)
	}
}

// TestAllowSharedRootsDecodes: the option is read from the [tiers] section.
func TestAllowSharedRootsDecodes(t *testing.T) {
	r := DefaultRoots()
	if err := config.Decode("[tiers]\nhot = \"/h\"\nallow_shared_roots = true\n", "test", map[string]any{"tiers": &r}); err != nil {
		t.Fatal(err)
	}
	if !r.AllowSharedRoots || r.Hot != "/h" {
		t.Fatalf("decoded %+v; want allow_shared_roots true", r)
	}
	if (DefaultRoots()).AllowSharedRoots {
		t.Fatal("shared roots allowed by default")
	}
}
