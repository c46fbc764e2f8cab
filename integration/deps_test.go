package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestDepsPythonLink: `scripts/deps.sh python` (part of make demo) writes a chronicle_q.pth
// that makes /usr/bin/python3 import this checkout's chronicle_q from any folder, without
// touching sys.path in the reader's code. It writes into a scratch site folder here
// (CHRONICLE_PYTHON_SITE) instead of the interpreter's own.
func TestDepsPythonLink(t *testing.T) {
	repo := testenv.RepoRoot(t)
	site := t.TempDir()
	cmd := exec.Command(filepath.Join(repo, "scripts", "deps.sh"), "python")
	cmd.Env = append(os.Environ(), "CHRONICLE_PYTHON_SITE="+site)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deps.sh python: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(site, "chronicle_q.pth"))
	if err != nil || strings.TrimSpace(string(b)) != filepath.Join(repo, "python") {
		t.Fatalf("chronicle_q.pth: %q %v", b, err)
	}
	// site.addsitedir reads .pth files as the interpreter does at start for its own. -S and
	// a late site.main() put the scratch folder ahead of the interpreter's own site-packages,
	// whose chronicle_q.pth may name another checkout of this machine.
	py := exec.Command("/usr/bin/python3", "-S", "-c", "import site, sys; site.addsitedir(sys.argv[1]); site.main(); import chronicle_q; print(chronicle_q.__file__)", site)
	py.Dir = t.TempDir()
	out, err := py.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != filepath.Join(repo, "python", "chronicle_q.py") {
		t.Fatalf("import chronicle_q from another folder: %v\n%s", err, out)
	}
	// Idempotent: a second run changes nothing and says nothing about it.
	cmd = exec.Command(filepath.Join(repo, "scripts", "deps.sh"), "python")
	cmd.Env = append(os.Environ(), "CHRONICLE_PYTHON_SITE="+site)
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "importable") {
		t.Fatalf("second deps.sh python: %v\n%s", err, out)
	}
}
