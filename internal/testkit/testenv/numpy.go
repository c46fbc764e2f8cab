package testenv

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
)

// countsPy counts, per book, what the refinery issue counts, with numpy through
// python/chronicle_q.py (argv[1]): records, depth updates (non-snapshot level records
// flagged last-of-event) and trades.
const countsPy = `
import json, sys
sys.path.insert(0, sys.argv[1])
import chronicle_q as q
out = {}
for path in sys.argv[2:]:
    b = q.open_book(path)
    lvl = (b["type_id"] == q.LEVEL) & (b["flags"] & q.SNAPSHOT == 0) & (b["flags"] & q.LAST != 0)
    out[path] = [len(b), int(lvl.sum()), int((b["type_id"] == q.TRADE).sum())]
print(json.dumps(out))
`

// BookCounts reads each book.q with numpy, the independent reader, through
// python/chronicle_q.py and returns by path its records, depth updates (non-snapshot
// level records flagged last-of-event) and trades.
func BookCounts(t testing.TB, books ...string) map[string][3]int64 {
	t.Helper()
	out, err := exec.Command(Python(t), append([]string{"-c", countsPy, filepath.Join(RepoRoot(t), "python")}, books...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got map[string][3]int64
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	return got
}
