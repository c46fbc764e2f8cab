package multihost

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"math/rand/v2"
	"syscall"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/books"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/s3test"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
	"github.com/chronicle/chronicle/layout"
)

var days = []string{"2024-08-08", "2024-08-09"}

func partDir(root, date string) string {
	return filepath.Join(root, "v1", "binance-perp", "eth-usdt", date)
}

// captureAB runs three feeds on one simulated USD-M exchange. capture-a drops its
// connection at message dropA, capture-b at dropB, each missing the next `missed` messages
// while it reconnects; with overlap, b drops while a is still away, and later once more,
// alone. capture-c never drops (the uninterrupted reference). The hosts subscribe to the
// streams in different orders (their journals' channels differ). It returns the journals.
func captureAB(t *testing.T, dropA, dropB, missed int, overlap bool) (a, b, c string) {
	m := newMarket(t)
	fa := m.startFeed("capture-a", "depth", "bookTicker", "trade")
	fb := m.startFeed("capture-b", "trade", "depth", "bookTicker")
	fc := m.startFeed("capture-c", "bookTicker", "trade", "depth")
	flush := func() {
		if !m.sim.Flush(30 * time.Second) {
			t.Fatal("connections did not drain")
		}
	}
	bounce := func(f *feed, at int) {
		m.sim.PlayUntil(at)
		flush()
		old, snaps := m.drop(f)
		m.sim.PlayUntil(at + missed)
		m.reconnected(f, old, snaps+1)
	}
	if overlap {
		m.sim.PlayUntil(dropA)
		flush()
		oldA, snaps := m.drop(fa)
		m.sim.PlayUntil(dropB)
		flush()
		oldB, _ := m.drop(fb)
		m.sim.PlayUntil(dropB + missed)
		m.reconnected(fa, oldA, snaps+1)
		m.reconnected(fb, oldB, snaps+2)
		bounce(fb, dropB+3*missed)
	} else {
		bounce(fa, dropA)
		bounce(fb, dropB)
	}
	m.finish(fa, fb, fc)
	return fa.journal, fb.journal, fc.journal
}

// refine backfills a host's journal into a fresh root.
func refine(t *testing.T, host, journalDir string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), host)
	runBin(t, "chronicle-etl", "backfill", "--log-level", "warn", "--seal-all", "--host-id", host, "--root", root, journalDir)
	return root
}

func bookRecords(t *testing.T, dir string) []format.BookRecord {
	t.Helper()
	_, recs, err := books.ReadFile(filepath.Join(dir, "book.q"))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// recordAt is rs[i], or the zero record past the end.
func recordAt(rs []format.BookRecord, i int) format.BookRecord {
	if i < len(rs) {
		return rs[i]
	}
	return format.BookRecord{}
}

func withoutRecv(rs []format.BookRecord) []format.BookRecord {
	out := make([]format.BookRecord, len(rs))
	for i, r := range rs {
		r.RecvTs = 0
		out[i] = r
	}
	return out
}

// TestABMerge is the "how it is checked": two feeds capture the bundled USD-M
// capture from one simulator with non-overlapping drops; the merged partitions have no
// invalid interval between their first snapshot and the end of the capture (where both
// feeds stopped), their depth and trade counts per day are the capture's figures (numpy,
// through a research host's mount), and their book records are an uninterrupted capture's
// but for receive times; the merge makes the same bytes whichever host is named first.
// Then two tier managers upload the same partitions to one versitygw bucket at once: never
// an overwrite; a third uploads the merge, which the research mount serves, each host's
// own version below hosts/.
func TestABMerge(t *testing.T) {
	ja, jb, jc := captureAB(t, 15000, 45000, 3000, false)
	ra, rb, rc := refine(t, "capture-a", ja), refine(t, "capture-b", jb), refine(t, "capture-c", jc)
	merged := filepath.Join(t.TempDir(), "merged")
	out := runBin(t, "chronicle-etl", "merge", "--log-level", "warn", "--root", merged, ja, jb)
	if strings.Count(out, "binance-perp/eth-usdt/") != 2 {
		t.Fatalf("merge printed %q, want the two partitions it wrote", out)
	}
	swapped := filepath.Join(t.TempDir(), "swapped")
	runBin(t, "chronicle-etl", "merge", "--log-level", "warn", "--root", swapped, jb, ja)
	trees.Same(t, rawTree(t, merged), rawTree(t, swapped), "merge a+b vs b+a, byte for byte")

	figures := kit.Get("usdm").Symbols["eth-usdt"]
	for _, date := range days {
		w := figures[date]
		pm, pa, pb, pc := partDir(merged, date), partDir(ra, date), partDir(rb, date), partDir(rc, date)
		mm, ma, mb, mc := readMeta(t, pm), readMeta(t, pa), readMeta(t, pb), readMeta(t, pc)
		t.Logf("%s: depth updates a %d, b %d, merged %d, uninterrupted %d, capture %d; invalid a %v b %v merged %v",
			date, ma.Events.DepthUpdates, mb.Events.DepthUpdates, mm.Events.DepthUpdates, mc.Events.DepthUpdates, w.Depth,
			ma.Completeness.Invalid, mb.Completeness.Invalid, mm.Completeness.Invalid)
		if mm.Events.DepthUpdates != w.Depth || mm.Events.Trades != w.Trades {
			t.Errorf("%s merged: %d depth updates and %d trades, the capture's figures are %d and %d", date, mm.Events.DepthUpdates, mm.Events.Trades, w.Depth, w.Trades)
		}
		if rm, rc := withoutRecv(bookRecords(t, pm)), withoutRecv(bookRecords(t, pc)); !reflect.DeepEqual(rm, rc) {
			i := 0
			for i < min(len(rm), len(rc)) && rm[i] == rc[i] {
				i++
			}
			t.Errorf("%s: merged book records differ from the uninterrupted capture's: %d and %d records, first difference at record %d: merged %+v, uninterrupted %+v",
				date, len(rm), len(rc), i, recordAt(rm, i), recordAt(rc, i))
		}
		if got, want := intervals(mm.Completeness.Invalid), intersect(ma.Completeness.Invalid, mb.Completeness.Invalid); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: merged invalid intervals %v, want the intersection of the hosts' %v", date, got, want)
		}
		if got, want := intervals(mm.Completeness.Invalid), intervals(mc.Completeness.Invalid); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: merged invalid intervals %v, the uninterrupted capture's %v", date, got, want)
		}
		checkNoHole(t, date, pm, mm)
		if mm.Merge == nil || mm.Merge.Base != "capture-a" || len(mm.Merge.Hosts) != 2 || mm.Merge.Hosts[1].ID != "capture-b" {
			t.Errorf("%s: merge provenance %+v", date, mm.Merge)
		}
	}
	// Each host alone missed data the other had: the drops were real.
	if ma, mb := readMeta(t, partDir(ra, days[0])), readMeta(t, partDir(rb, days[0])); ma.Events.DepthUpdates >= figures[days[0]].Depth ||
		mb.Events.DepthUpdates >= figures[days[0]].Depth || len(ma.Completeness.Invalid) < 2 || len(mb.Completeness.Invalid) < 2 {
		t.Fatalf("the hosts alone: a %+v %v, b %+v %v: a drop lost nothing", ma.Events, ma.Completeness.Invalid, mb.Events, mb.Completeness.Invalid)
	}
	if sup := readMeta(t, partDir(merged, days[0])).Merge.Supplied; len(sup) < 3 {
		t.Errorf("supplied stretches %+v: want capture-b's stretch over capture-a's drop and back", sup)
	}

	// Many hosts, one bucket.
	srv := s3test.Start(t)
	mnt := uploadAll(t, srv, map[string]string{"capture-a": ra, "capture-b": rb, "merge-ab": merged})
	for _, date := range days {
		rel := filepath.Join("v1", "binance-perp", "eth-usdt", date)
		for _, c := range []struct{ path, want string }{
			{filepath.Join(mnt, rel, "book.q"), filepath.Join(merged, rel, "book.q")},
			{filepath.Join(mnt, rel, "meta.json"), filepath.Join(merged, rel, "meta.json")},
			{filepath.Join(mnt, rel, "hosts", "capture-a", "book.q"), filepath.Join(ra, rel, "book.q")},
			{filepath.Join(mnt, rel, "hosts", "capture-b", "book.q"), filepath.Join(rb, rel, "book.q")},
			{filepath.Join(mnt, rel, "hosts", "capture-b", "meta.json"), filepath.Join(rb, rel, "meta.json")},
		} {
			if !bytes.Equal(testkit.ReadFile(t, c.path), testkit.ReadFile(t, c.want)) {
				t.Errorf("%s through the research mount differs from %s", c.path, c.want)
			}
		}
		ents, err := os.ReadDir(filepath.Join(mnt, rel, "hosts"))
		if err != nil || len(ents) != 2 || ents[0].Name() != "capture-a" || ents[1].Name() != "capture-b" {
			t.Errorf("%s/hosts lists %v (%v)", rel, ents, err)
		}
	}
	books, _ := filepath.Glob(filepath.Join(mnt, "v1", "binance-perp", "eth-usdt", "*", "book.q"))
	for path, c := range testenv.BookCounts(t, books...) {
		w := figures[filepath.Base(filepath.Dir(path))]
		if c[1] != w.Depth || c[2] != w.Trades {
			t.Errorf("numpy through the research mount: %s has %d depth updates and %d trades, the capture's figures are %d and %d", path, c[1], c[2], w.Depth, w.Trades)
		}
	}
}

// checkNoHole: no invalid interval from the partition's first snapshot run to the end of
// the capture. An interval may start at the last record: the feeds journal a shutdown
// disconnect when they stop, after which the book is unknown in every capture.
func checkNoHole(t *testing.T, date, dir string, m *meta.Meta) {
	t.Helper()
	recs := bookRecords(t, dir)
	var first, last int64 = -1, 0
	for _, r := range recs {
		if first < 0 && r.TypeID == format.TypeSnapshotEnd && r.Flags&format.FlagBookInvalid == 0 {
			first = r.ExchTs
		}
		last = max(last, r.ExchTs)
	}
	for _, iv := range m.Completeness.Invalid {
		if iv.To.Ns() > first && iv.From.Ns() < last {
			t.Errorf("%s: merged partition invalid %s..%s (%s) after its first snapshot %s and before the capture's end %s",
				date, iv.From, iv.To, iv.Reason, meta.Time(first), meta.Time(last))
		}
	}
}

// uploadAll gives each host a tier tree whose warm root holds its partitions and runs
// their chronicle-tier apply at the same moment against one versitygw bucket (the merge
// host's last), then checks that no host overwrote another: each key's objects are one
// host's, the others kept theirs local (status lists them) and uploaded them below
// hosts/{id}. It mounts the bucket as a research host does and returns the mount point.
func uploadAll(t *testing.T, srv *s3test.Server, roots map[string]string) string {
	t.Helper()
	remote := srv.URI("archive")
	cfgs := map[string]string{}
	tree := map[string]layout.Roots{}
	for host, root := range roots {
		dir := t.TempDir()
		r := layout.Roots{Hot: filepath.Join(dir, "hot"), Warm: filepath.Join(dir, "warm"), Cold: filepath.Join(dir, "cold"), Remote: remote}
		for _, d := range []string{r.Hot, r.Cold} {
			os.MkdirAll(d, 0o755)
		}
		if err := os.CopyFS(r.Warm, os.DirFS(root)); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(r.Warm, ".chronicle-etl"))
		cfg := testkit.ConfigTOML(r, testkit.S3Config(srv)) + "\n[host]\nid = \"" + host + "\"\n[tier]\nhot_to_warm = false\ncold_after = \"24h\"\nremote_after = \"24h\"\nblock_size = 65536\n[log]\nlevel = \"warn\"\n"
		cfgs[host] = filepath.Join(dir, "chronicle.toml")
		os.WriteFile(cfgs[host], []byte(cfg), 0o644)
		tree[host] = r
	}
	apply := func(host string) {
		cmd := exec.Command(testenv.Bin("chronicle-tier"), "--config", cfgs[host], "--now", "2026-01-01T00:00:00Z", "apply")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("chronicle-tier apply (%s): %v\n%s", host, err, out)
		}
	}
	var wg sync.WaitGroup
	for _, h := range []string{"capture-a", "capture-b"} {
		wg.Go(func() { apply(h) })
	}
	wg.Wait()
	apply("merge-ab")
	if t.Failed() {
		t.FailNow()
	}
	keptBy := map[string]int{} // days each capture host kept local: either may win a day's key
	for _, date := range days {
		k := layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: date}
		var holder, kept []string
		for _, h := range []string{"capture-a", "capture-b"} {
			d := testkit.PartDir(tree[h].Cold, k)
			switch {
			case exists(filepath.Join(d, layout.StubName)):
				holder = append(holder, h)
			case exists(filepath.Join(d, layout.CollisionName)) && exists(filepath.Join(d, layout.ZstName)):
				kept = append(kept, h)
				keptBy[h]++
			}
		}
		if len(holder) != 1 || len(kept) != 1 {
			t.Fatalf("%s: key held by %v, kept local by %v: want one of each", date, holder, kept)
		}
		if !exists(filepath.Join(testkit.PartDir(tree["merge-ab"].Cold, k), layout.StubName)) {
			t.Fatalf("%s: the merge host did not upload its partition", date)
		}
		b, err := os.ReadFile(filepath.Join(testkit.PartDir(tree["merge-ab"].Cold, k), layout.StubName))
		if s, perr := stub.Parse(b, "stub"); err != nil || perr != nil || s.Slot != stub.SlotMerged || s.Host != "merge-ab" {
			t.Fatalf("%s: the merge host's stub: %s (%v %v)", date, b, err, perr)
		}
	}
	for _, h := range []string{"capture-a", "capture-b"} {
		var st struct {
			Plan struct{ Kept []map[string]any }
		}
		out := runBin(t, "chronicle-tier", "--config", cfgs[h], "--now", "2026-01-01T00:00:00Z", "status", "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Plan.Kept) != keptBy[h] {
			t.Errorf("%s status: kept %v, want %d (%v)\n%s", h, st.Plan.Kept, keptBy[h], err, out)
		}
		txt := runBin(t, "chronicle-tier", "--config", cfgs[h], "--now", "2026-01-01T00:00:00Z", "status")
		if got := strings.Contains(txt, "kept local, another host holds the key"); got != (keptBy[h] > 0) {
			t.Errorf("%s status reports a collision: %v, want %v:\n%s", h, got, keptBy[h] > 0, txt)
		}
	}
	// The research host: the bucket only, read-only keys.
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.MkdirAll(mnt, 0o755)
	access, secret := srv.ReadOnlyUser("archive")
	cfg := filepath.Join(t.TempDir(), "research.toml")
	rcfg := testkit.S3Config(srv)
	rcfg.AccessKey, rcfg.SecretKey = access, secret
	os.WriteFile(cfg, []byte(testkit.ConfigTOML(layout.Roots{Remote: remote}, rcfg)+"\n[fs]\nmetrics_addr = \"\"\n"), 0o644)
	proc.Mount(t, exec.Command(testenv.Bin("chronicle-fs"), "mount", "--config", cfg, "--log-level", "warn", mnt), mnt, 30*time.Second, nil)
	return mnt
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestABOverlappingDrops: capture-b drops while capture-a is still reconnecting, and both
// miss the same messages; later capture-b drops again, alone. The merged partition is
// invalid exactly over the overlap (the intersection of the hosts' invalid intervals), and
// valid everywhere else either was: it holds more depth updates than either host.
func TestABOverlappingDrops(t *testing.T) {
	ja, jb, _ := captureAB(t, 20000, 20300, 3000, true)
	ra, rb := refine(t, "capture-a", ja), refine(t, "capture-b", jb)
	merged := filepath.Join(t.TempDir(), "merged")
	runBin(t, "chronicle-etl", "merge", "--log-level", "warn", "--root", merged, "capture-a="+ja, "capture-b="+jb)
	ma, mb, mm := readMeta(t, partDir(ra, days[0])), readMeta(t, partDir(rb, days[0])), readMeta(t, partDir(merged, days[0]))
	want := intersect(ma.Completeness.Invalid, mb.Completeness.Invalid)
	t.Logf("invalid a %v\nb %v\nmerged %v", ma.Completeness.Invalid, mb.Completeness.Invalid, mm.Completeness.Invalid)
	// Both: not_captured before the capture began, no_snapshot until its first snapshot;
	// then the overlap (the intersection), and b's second drop.
	if len(want) != 3 || want[2].To <= want[2].From || len(mb.Completeness.Invalid) != 4 {
		t.Fatalf("the drops did not overlap (and b did not drop again alone): a %v, b %v", ma.Completeness.Invalid, mb.Completeness.Invalid)
	}
	if got := intervals(mm.Completeness.Invalid); !reflect.DeepEqual(got, want) {
		// CHRONICLE_KEEP_JOURNALS=DIR keeps the two journals of a failing run to replay.
		if d := os.Getenv("CHRONICLE_KEEP_JOURNALS"); d != "" {
			os.CopyFS(filepath.Join(d, "a"), os.DirFS(ja))
			os.CopyFS(filepath.Join(d, "b"), os.DirFS(jb))
		}
		t.Fatalf("merged invalid intervals %v, want the overlap %v", got, want)
	}
	if mm.Events.DepthUpdates <= max(ma.Events.DepthUpdates, mb.Events.DepthUpdates) {
		t.Fatalf("merged %d depth updates, a %d, b %d: want more than either", mm.Events.DepthUpdates, ma.Events.DepthUpdates, mb.Events.DepthUpdates)
	}
}

// TestMergeKillNine kills chronicle-etl merge with SIGKILL at random moments of its run
// (CHRONICLE_CRASH_RUNS times, seed printed), each time on the root the last one left,
// then lets it finish: the partitions are byte for byte an uninterrupted merge's, and no
// work files remain.
func TestMergeKillNine(t *testing.T) {
	ja, jb, _ := captureAB(t, 15000, 45000, 3000, false)
	runBin(t, "chronicle-etl", "merge", "--log-level", "warn", "--root", filepath.Join(t.TempDir(), "warm-up"), ja, jb)
	ref := filepath.Join(t.TempDir(), "ref")
	start := time.Now()
	runBin(t, "chronicle-etl", "merge", "--log-level", "warn", "--root", ref, ja, jb)
	took := time.Since(start)
	rng := newRand(uint64(testenv.Seed(t)))
	root := filepath.Join(t.TempDir(), "killed")
	runs := testenv.CrashRuns(t)
	killed := 0
	for i := range runs {
		cmd := exec.Command(testenv.Bin("chronicle-etl"), "merge", "--log-level", "warn", "--root", root, ja, jb)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		at := time.Duration(rng.Int64N(int64(took) + 1))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: merge failed on its own: %v", i, err)
			}
		case <-time.After(at):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
		}
	}
	runBin(t, "chronicle-etl", "merge", "--log-level", "warn", "--root", root, ja, jb)
	t.Logf("%d runs, %d killed (an uninterrupted merge takes %v)", runs, killed, took)
	trees.Same(t, rawTree(t, ref), rawTree(t, root), "merged after kills vs uninterrupted, byte for byte")
	if exists(filepath.Join(root, ".chronicle-merge")) {
		t.Fatal("the merge's work directory remains")
	}
}

func newRand(s uint64) *rand.Rand { return rand.New(rand.NewPCG(s, s^0x5eed)) }
