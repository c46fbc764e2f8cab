package feed

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/faults"
)

// TestJournalDirFaults fails, one at a time, each operation the journal performs on its
// directory through JournalOptions.FS (recovery's listing and removals, the removal that
// frees a pre-created segment's name, the rename that rolls into it, the directory fsyncs
// after the seal and at close), once as an error and once as a crash (every later one
// fails too). Whatever fails, an error that reaches the caller is the injected one, and a
// writer reopening the journal finds every record whose append succeeded, in order: a
// failed rename makes the roll create the segment instead.
func TestJournalDirFaults(t *testing.T) {
	run := func(dir string, in *faults.Injector) (appended []string, err error) {
		o := jopt(dir)
		if in != nil {
			in.Filter = func(_ faults.Op, path string) bool { return strings.HasPrefix(path, dir) }
			o.FS = faults.NewFS(nil, in)
		}
		j, err := OpenJournal(o, t0, nil, nil)
		if err != nil {
			return nil, err
		}
		var errs []error
		for i := 0; i < 40; i++ {
			if i == 20 {
				if err := j.Precreate(t0+int64(59*time.Minute+45*time.Second), 30*time.Second); err != nil {
					errs = append(errs, err)
				}
			}
			p := fmt.Sprintf(`{"i":%d}`, i)
			if err := j.Append(format.JournalMessage, 1, t0+int64(i)*int64(3*time.Minute), []byte(p)); err != nil {
				errs = append(errs, err)
				continue
			}
			appended = append(appended, p)
		}
		errs = append(errs, j.Close())
		return appended, errors.Join(errs...)
	}
	messages := func(dir string) []string {
		j, err := OpenJournal(jopt(dir), t0+int64(3*time.Hour), nil, nil) // recovery seals what was left
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range readJournal(t, dir) {
			if r.TypeID == format.JournalMessage {
				out = append(out, string(r.Payload))
			}
		}
		return out
	}

	rec := faults.Recorder()
	if _, err := run(t.TempDir(), rec); err != nil {
		t.Fatal(err)
	}
	events := rec.Events()
	ops := map[faults.Op]bool{}
	for _, ev := range events {
		ops[ev.Op] = true
	}
	for _, op := range []faults.Op{faults.OpReadDir, faults.OpRemove, faults.OpRename, faults.OpSyncDir} {
		if !ops[op] {
			t.Fatalf("the journal never went through %s: %v", op, events)
		}
	}
	t.Logf("%d operations, each failed as an error and as a crash", len(events))
	for i, ev := range events {
		for _, mode := range []faults.Mode{faults.Error, faults.Crash} {
			dir := t.TempDir()
			in := faults.New(i, mode)
			appended, err := run(dir, in)
			if fired, ok := in.Fired(); !ok || fired.Op != ev.Op {
				t.Fatalf("%s %s: fired %v %v", ev, mode, fired, ok)
			}
			if err != nil && !errors.Is(err, faults.ErrInjected) {
				t.Fatalf("%s %s: %v, not the injected fault", ev, mode, err)
			}
			if ev.Op == faults.OpReadDir && err == nil {
				t.Fatalf("%s %s: recovery's listing failed unnoticed", ev, mode)
			}
			got := messages(dir)
			if strings.Join(got, " ") != strings.Join(appended, " ") {
				t.Fatalf("%s %s: the journal holds %d records, %d were appended", ev, mode, len(got), len(appended))
			}
			if ev.Op == faults.OpRename && len(appended) != 40 {
				t.Fatalf("%s %s: %d of 40 appends succeeded with the pre-created segment's rename failed", ev, mode, len(appended))
			}
		}
	}
}
