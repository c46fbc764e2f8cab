package integration

import (
	"encoding/json"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

const module = "github.com/chronicle/chronicle/"

// layers says which of the module's packages each package may import (see matches; the
// leaves in leaves are open to all, internal/config to tests and the floors listed); a
// package follows the longest entry that matches it. docs/architecture.md draws it.
var layers = []struct {
	pkg   string
	may   []string
	tests []string // extra imports its tests may use
}{
	{"layout", nil, []string{"internal/testkit"}},
	{"fault", nil, nil},
	{"deploy", nil, nil},
	{"internal/config", []string{"internal/bytesize"}, []string{"internal/testkit"}},
	{"internal/bytesize", nil, nil},
	{"internal/fileutil", nil, []string{"internal/testkit"}},
	{"internal/cli", nil, nil},
	{"internal/latency", nil, nil},
	{"internal/capture", nil, []string{"internal/testkit"}},
	{"format", nil, []string{"internal/testkit/testenv"}},
	{"format/", []string{"format", "layout"}, []string{"internal/testkit"}},
	{"format/bookview", []string{"format"}, []string{"internal/testkit"}}, // reads any tier through an io.ReaderAt: no tiers, no layout
	{"venue", []string{"venue", "format"}, []string{"internal/testkit", "internal/capture"}},
	{"feed", []string{"feed/", "venue", "format", "layout", "internal/capture"}, []string{"internal/testkit", "internal/exsim"}},
	// The refinery's default symbol table is handed in by the main (deploy embeds it).
	// The journal's contract (format/journal) lies on the floor below both its producer and
	// its consumer: the refinery imports nothing of the feed's.
	{"etl", []string{"etl/", "venue", "format", "layout"}, []string{"internal/testkit", "internal/capture", "internal/latency", "deploy"}},
	// The A/B merge stands on the refinery's public API (etl.Refine), not beside it.
	{"etl/merge", []string{"etl", "venue", "format", "layout"}, []string{"internal/testkit", "internal/capture", "deploy"}},
	{"tiers/objstore", []string{"layout"}, []string{"internal/testkit"}}, // file safety is internal/fileutil's, not format's
	{"tiers", []string{"tiers", "format", "layout"}, []string{"internal/testkit"}},
	{"fs", []string{"fs/", "tiers", "format", "layout"}, []string{"internal/testkit"}},
	{"internal/synth", []string{"format"}, []string{"internal/testkit"}},
	{"internal/exsim", []string{"venue", "format", "internal/capture"}, []string{"internal/testkit"}},
	{"internal/daemon", []string{"internal/config"}, nil},
	// A command's line where no package of its work fits (its subcommands, flags, output):
	// the main's floor, below cmd/ and linked by its one main.
	{"internal/etlcli", []string{"etl", "format", "layout", "internal/cli", "internal/config", "internal/daemon", "internal/synth"}, []string{"internal/testkit"}},
	{"internal/qcli", []string{"tiers", "format", "layout", "internal/cli", "internal/config", "internal/daemon"}, []string{"internal/testkit"}},
	{"internal/testkit", []string{""}, []string{""}}, // test-only: anything below cmd
	{"integration", []string{""}, []string{""}},
	{"cmd/", []string{""}, []string{""}},
}

// leaves import nothing of ours and are open to every package. internal/config is no
// leaf for code: it reads the mains' TOML, and only the mains (and internal/daemon, their
// helper) hand its values down; a package below takes them as options.
var leaves = []string{"fault", "internal/bytesize", "internal/fileutil", "internal/latency"}

// venueLinkers reports whether code in pkg may import a venue's own package (venue/binance,
// venue/all...): the mains, the registry, and the exchange simulator, which speaks each
// venue's wire protocol. Everything else finds a venue by name (venue.Lookup), so a new
// venue is one package and one line in venue/all; tests may link the venues they read.
func venueLinkers(pkg string) bool {
	for _, p := range []string{"cmd/", "venue", "internal/exsim", "internal/testkit", "integration"} {
		if matches(p, pkg) {
			return true
		}
	}
	return false
}

type goPkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

func goList(t *testing.T, args ...string) []goPkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []goPkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// matches reports whether path p falls under rule entry e: "x" names x and its
// subpackages, "x/" only x's subpackages, "" everything.
func matches(e, p string) bool {
	switch {
	case e == "":
		return true
	case strings.HasSuffix(e, "/"):
		return strings.HasPrefix(p, e)
	}
	return p == e || strings.HasPrefix(p, e+"/")
}

// allowed reports whether package pkg (relative path) may import dep.
func allowed(pkg, dep string, test bool) bool {
	best := -1
	for i, l := range layers {
		if l.pkg != "" && matches(l.pkg, pkg) && (best < 0 || len(l.pkg) > len(layers[best].pkg)) {
			best = i
		}
	}
	switch {
	case best < 0 || strings.HasPrefix(dep, "cmd/"):
		return false
	case matches("internal/testkit", dep) && !test && !matches("internal/testkit", pkg) && !matches("integration", pkg):
		return false // test kits are for tests
	case matches(pkg, dep) && !matches("internal/testkit", dep):
		return true // a package's own subpackages
	case strings.HasPrefix(dep, "venue/") && !test && !venueLinkers(pkg):
		return false // the venues are linked by the mains, through the registry
	}
	may := append(append([]string{}, leaves...), layers[best].may...)
	if test {
		// A package's tests may decode its TOML section the way the mains do.
		may = append(append(may, "internal/config"), layers[best].tests...)
	}
	for _, m := range may {
		if matches(m, dep) {
			return true
		}
	}
	return false
}

// TestImportRules states the layering (format <- tiers <- fs; feed and etl beside tiers;
// cmd on top; test kits in internal/testkit) and fails on any import that breaks it, in
// code and in tests.
func TestImportRules(t *testing.T) {
	var bad []string
	for _, p := range goList(t, "./...") {
		pkg := strings.TrimPrefix(p.ImportPath, module)
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				if !strings.HasPrefix(imp, module) {
					if imp == "testing" && !test && !strings.HasPrefix(pkg, "internal/testkit") {
						bad = append(bad, pkg+" imports testing outside its tests")
					}
					continue
				}
				dep := strings.TrimPrefix(imp, module)
				if !allowed(pkg, dep, test) {
					kind := "imports"
					if test {
						kind = "tests import"
					}
					bad = append(bad, pkg+" "+kind+" "+dep)
				}
			}
		}
		check(p.Imports, false)
		check(append(p.TestImports, p.XTestImports...), true)
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// TestBinaryDeps: what each binary links. No test kit in any binary; no object-store SDK in
// the capture host's feed and refinery.
func TestBinaryDeps(t *testing.T) {
	for _, p := range goList(t, "-deps=false", "./cmd/...") {
		deps := goList(t, "-deps", p.ImportPath)
		for _, d := range deps {
			if strings.HasPrefix(d.ImportPath, module+"internal/testkit") {
				t.Errorf("%s links the test kit %s", p.ImportPath, d.ImportPath)
			}
			lean := strings.HasSuffix(p.ImportPath, "chronicle-feed") || strings.HasSuffix(p.ImportPath, "chronicle-etl")
			if lean && strings.HasPrefix(d.ImportPath, "github.com/aws/") {
				t.Errorf("%s links %s", p.ImportPath, d.ImportPath)
				break
			}
		}
	}
}

// TestImportRulesCatchBreaks: each break the rules exist for is refused.
func TestImportRulesCatchBreaks(t *testing.T) {
	for _, c := range []struct {
		pkg, dep string
		test     bool
	}{
		{"tiers", "fs", true},                            // tiers never imports fs, not even in tests
		{"tiers/lifecycle", "internal/testkit/x", false}, // test kits stay out of code
		{"format", "tiers", false},                       // format imports nothing of ours
		{"format", "layout", false},
		{"tiers", "fs", false},
		{"feed", "tiers", false}, // the capture host's binaries link no object store
		{"etl", "tiers", false},
		{"etl", "feed", false},
		{"fs", "etl", false},
		{"format/bookview", "tiers", false}, // any tier's handle is an io.ReaderAt: the views need no resolver
		{"format/bookview", "layout", false},
		{"layout", "format", false},
		{"cmd/chronicle-fs", "internal/testkit", false},
		{"internal/testkit", "cmd/chronicle-fs", true},
		{"tiers/lifecycle", "internal/config", false}, // sizes print through internal/bytesize; the main resolves the host id
		{"tiers", "internal/config", false},
		{"format", "internal/config", false},
		{"internal/bytesize", "format", false},
		{"tiers/objstore", "format", false},        // SyncDir is internal/fileutil's
		{"internal/fileutil/vfs", "format", false}, // the writers' filesystem is a leaf: every floor may take one
		{"internal/fileutil/vfs", "layout", false},
		{"internal/fileutil", "format", false},
		{"etl", "feed/journal", false}, // the journal's contract is format/journal
		{"etl/merge", "feed/journal", false},
		{"format/journal", "feed", false},
		{"etl/symbols", "deploy", false}, // the main hands the embedded table to symbols.SetDefault
		{"etl", "deploy", false},
		{"feed", "venue/binance", false}, // the default venue is a name; the mains link venue/all
		{"feed", "venue/all", false},
		{"etl", "venue/all", false},
		{"etl/symbols", "venue/okx", false},
		{"fs", "venue/all", false},
	} {
		if allowed(c.pkg, c.dep, c.test) {
			t.Errorf("%s may import %s (test %v)", c.pkg, c.dep, c.test)
		}
	}
	for _, c := range [][2]string{{"fs", "tiers"}, {"tiers", "format/qzst"}, {"etl", "format/journal"}, {"feed", "format/journal"}, {"cmd/chronicle-etl", "etl"}, {"tiers/lifecycle", "tiers"}, {"format/bookview", "format/bookindex"}, {"fs", "format/bookview"}, {"cmd/chronicle-q", "tiers"}, {"etl/merge", "etl"}, {"tiers/lifecycle", "internal/bytesize"}, {"internal/daemon", "internal/config"}, {"cmd/chronicle-feed", "venue/all"}, {"venue/all", "venue/binance"}, {"feed", "venue"}, {"tiers/objstore", "internal/fileutil"}, {"format", "internal/fileutil"}, {"etl", "internal/fileutil/vfs"}, {"feed", "internal/fileutil/vfs"}, {"tiers/lifecycle", "internal/fileutil/vfs"}, {"internal/fileutil/vfs", "internal/fileutil"}} {
		if !allowed(c[0], c[1], false) {
			t.Errorf("%s may not import %s", c[0], c[1])
		}
	}
}
