package layout

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrSharedRoot marks a local root that other users can write to, or that another user
// owns: whatever they put there would be served, moved and uploaded as ours.
var ErrSharedRoot = errors.New("root open to other users")

// LocalRoot is one local directory a daemon trusts, named for messages ("hot", "output").
type LocalRoot struct {
	Name, Dir string
}

// LocalRoots returns the hot, warm and cold roots, and the remote tier's directory when it
// is file:///dir, leaving out those not configured.
func (r Roots) LocalRoots() []LocalRoot {
	var out []LocalRoot
	for t := Hot; t <= Cold; t++ {
		if d := r.Local(t); d != "" {
			out = append(out, LocalRoot{t.String(), d})
		}
	}
	if d, ok := strings.CutPrefix(r.Remote, "file://"); ok && d != "" {
		out = append(out, LocalRoot{Remote.String(), d})
	}
	return out
}

// CheckRoots checks the owner and mode of every root that exists (a missing one is left to
// the daemon, which creates it itself): a root that others can write to without the sticky
// bit (/dev/shm itself is 1777, which is fine), or that is owned by neither this process's
// user nor root, fails with ErrSharedRoot naming the root, its mode and owner and the option
// that accepts it. With allow ([tiers] allow_shared_roots) each such root is logged as a
// warning instead. Symbolic links are followed: the directory used is the one checked.
func CheckRoots(allow bool, log *slog.Logger, roots ...LocalRoot) error {
	return checkRoots(os.Geteuid(), allow, log, roots)
}

func checkRoots(euid int, allow bool, log *slog.Logger, roots []LocalRoot) error {
	var errs []error
	seen := map[string]bool{}
	for _, r := range roots {
		if r.Dir == "" || seen[filepath.Clean(r.Dir)] {
			continue
		}
		seen[filepath.Clean(r.Dir)] = true
		err := checkRoot(euid, r)
		if err == nil {
			continue
		}
		if allow && errors.Is(err, ErrSharedRoot) {
			if log != nil {
				log.Warn("accepting a root open to other users ([tiers] allow_shared_roots = true)", "root", r.Name, "dir", r.Dir, "err", err)
			}
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkRoot(euid int, r LocalRoot) error {
	fi, err := os.Stat(r.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s root %s: %w", r.Name, r.Dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := fi.Mode()
	var why string
	switch {
	case mode.Perm()&0o002 != 0 && mode&fs.ModeSticky == 0:
		why = "writable by every user without the sticky bit (chmod o-w)"
	case int(st.Uid) != euid && st.Uid != 0:
		why = fmt.Sprintf("owned by another user (this process runs as uid %d; chown it)", euid)
	default:
		return nil
	}
	return fmt.Errorf("%s root %s (mode %s %04o, owner uid %d): %s; set [tiers] allow_shared_roots = true to accept it: %w",
		r.Name, r.Dir, mode, unixMode(mode), st.Uid, why, ErrSharedRoot)
}

// unixMode is mode's permission and sticky/setuid/setgid bits as chmod spells them.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	return u
}
