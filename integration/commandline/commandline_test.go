// Package commandline holds the test of the command-line convention (docs/cli.md) that
// every binary under cmd/ follows: it builds each one, finds its subcommands in its
// --help, and runs each with --help, -h, an unknown flag, every typed flag given a bad
// value, a missing config file and a config file with unknown keys or a bad [log] value.
// A binary or subcommand added later is covered without naming it here.
package commandline

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

func TestMain(m *testing.M) {
	names, err := commands()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(testenv.RunWithCommands(m, names...))
}

// commands lists the directories under cmd/ that hold a main package.
func commands() ([]string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			return nil, fmt.Errorf("go.mod not found")
		}
		dir = filepath.Dir(dir)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "cmd"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		src, _ := filepath.Glob(filepath.Join(dir, "cmd", e.Name(), "*.go"))
		for _, f := range src {
			b, err := os.ReadFile(f)
			if err == nil && regexp.MustCompile(`(?m)^package main$`).Match(b) {
				names = append(names, e.Name())
				break
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no commands under %s/cmd", dir)
	}
	sort.Strings(names)
	return names, nil
}

// result is one run of a binary.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a binary in dir (a fresh folder when ""), stopping it after 20 s: a command that
// should have failed at once but started instead is killed and reported.
func run(t *testing.T, dir, prog string, args ...string) result {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Bin(prog), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, ".cache"), "NOTIFY_SOCKET=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after 20 s (it started instead of failing)\n%s", prog, strings.Join(args, " "), errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	return result{code, out.String(), errb.String()}
}

// command is one command line to check: a program and, if it has them, one subcommand,
// with its synopsis from the program's help.
type command struct {
	prog, sub string
	synopsis  string   // "chronicle-etl backfill [flags] --root ROOT JOURNAL_DIR|SEGMENT..."
	words     []string // the synopsis after the program and subcommand
}

func (c command) name() string { return strings.TrimSpace(c.prog + " " + c.sub) }

// args is the command line up to and including the subcommand.
func (c command) args(rest ...string) []string {
	if c.sub == "" {
		return rest
	}
	return append([]string{c.sub}, rest...)
}

var (
	// A synopsis word: a placeholder (FILE..., NAME=VENUE:FILE[,FILE...]..., A|B), an
	// optional part ([flags], [--json]) or a flag (--root); what follows is the description.
	synopsisWord = regexp.MustCompile(`^(\[.*\]|--?[a-z][a-z0-9-]*|[A-Z][A-Z0-9_|=:,.\[\]]*)$`)
	subcommand   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// parseUsage finds the synopsis lines of the help's "Usage:" section.
func parseUsage(prog, help string) []command {
	var cmds []command
	in := false
	for _, line := range strings.Split(help, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Usage:"):
			in = true
			continue
		case in && trimmed == "":
			return cmds
		case !in:
			continue
		}
		f := strings.Fields(trimmed)
		if len(f) < 1 || f[0] != prog {
			continue
		}
		c := command{prog: prog}
		i := 1
		if i < len(f) && subcommand.MatchString(f[i]) {
			c.sub = f[i]
			i++
		}
		for ; i < len(f) && synopsisWord.MatchString(f[i]); i++ {
			c.words = append(c.words, f[i])
		}
		c.synopsis = strings.Join(append(strings.Fields(c.name()), c.words...), " ")
		cmds = append(cmds, c)
	}
	return cmds
}

// fill gives a synopsis's required words values: placeholders and flag values become
// paths in base that do not exist (the cases below fail before any is used).
func (c command) fill(base string) []string {
	var out []string
	for i, w := range c.words {
		switch {
		case strings.HasPrefix(w, "["):
		case strings.HasPrefix(w, "-"):
			out = append(out, w)
		case i > 0 && strings.HasPrefix(c.words[i-1], "-"):
			out = append(out, filepath.Join(base, "flag-"+strings.ToLower(w)))
		default:
			out = append(out, filepath.Join(base, "arg-"+strings.ToLower(strings.Trim(w, "."))))
		}
	}
	return out
}

// flagRE matches a line of pflag's flag list: name and value type (none for a bool).
var flagRE = regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)(?: ([a-zA-Z0-9]+))?\s{2,}`)

type flagInfo struct{ name, typ string }

func parseFlags(help string) []flagInfo {
	var out []flagInfo
	for _, line := range strings.Split(help, "\n") {
		if m := flagRE.FindStringSubmatch(line); m != nil {
			out = append(out, flagInfo{m[1], m[2]})
		}
	}
	return out
}

// discover finds every command line of every binary.
func discover(t *testing.T) []command {
	names, err := commands()
	if err != nil {
		t.Fatal(err)
	}
	var all []command
	for _, prog := range names {
		r := run(t, "", prog, "--help")
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%s --help: want exit 0, the help on stdout (with a Usage: section) and nothing on stderr; %s", prog, r)
			continue
		}
		cmds := parseUsage(prog, r.stdout)
		if len(cmds) == 0 {
			t.Errorf("%s --help: no synopsis lines (\"  %s ...\") in its Usage: section", prog, prog)
			continue
		}
		seen := map[string]bool{}
		for _, c := range cmds {
			if !seen[c.sub] { // a program without subcommands may show several synopses
				seen[c.sub] = true
				all = append(all, c)
			}
		}
	}
	return all
}

// oneLine checks that stderr is exactly one "PROG: ..." line containing want.
func oneLine(t *testing.T, what string, c command, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != 1 || r.stdout != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], c.prog+": ") || !strings.Contains(lines[0], want) {
		t.Errorf("%s: want exit 1 and one line \"%s: ...%s...\" on stderr, nothing on stdout; %s", what, c.prog, want, r)
	}
}

// usageError checks the shape of a usage error: exit 2, nothing on stdout, "PROG: msg"
// (msg containing want), the command's usage line, a pointer to --help.
func usageError(t *testing.T, what string, c command, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	ok := r.code == 2 && r.stdout == "" && len(lines) >= 3 && strings.HasPrefix(lines[0], c.prog+": ") &&
		strings.Contains(lines[0], want) && strings.HasPrefix(lines[1], "Usage: "+c.prog) &&
		strings.Contains(lines[len(lines)-1], "--help")
	if ok && c.sub != "" {
		// The usage line is the subcommand's, as its help's Usage section shows it.
		ok = strings.Join(strings.Fields(strings.TrimPrefix(lines[1], "Usage: ")), " ") == c.synopsis
	}
	if !ok {
		t.Errorf("%s: want exit 2, nothing on stdout, and on stderr \"%s: ...%s...\", \"Usage: %s\" and a pointer to --help; %s",
			what, c.prog, want, c.synopsis, r)
	}
}

// TestConvention runs every command line of every binary through the convention.
func TestConvention(t *testing.T) {
	cmds := discover(t)
	progs := map[string][]command{}
	for _, c := range cmds {
		progs[c.prog] = append(progs[c.prog], c)
	}
	for prog, cs := range progs {
		if cs[0].sub == "" {
			continue
		}
		// A program with subcommands: none, an unknown one, or a flag first are usage errors.
		for _, args := range [][]string{nil, {"frobnicate"}, {"--bogus"}} {
			r := run(t, "", prog, args...)
			if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, prog+": ") || !strings.Contains(r.stderr, "Usage: "+prog) {
				t.Errorf("%s %s: want a usage error (exit 2, \"%s: ...\" and the usage lines on stderr); %s", prog, strings.Join(args, " "), prog, r)
			}
		}
		if r := run(t, "", prog, "help"); r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%s help: want its help on stdout; %s", prog, r)
		}
	}
	for _, c := range cmds {
		t.Run(strings.ReplaceAll(c.name(), " ", "_"), func(t *testing.T) { checkCommand(t, c) })
	}
}

func checkCommand(t *testing.T, c command) {
	// Help, on stdout, with examples.
	var help string
	for _, h := range []string{"--help", "-h"} {
		r := run(t, "", c.prog, c.args(h)...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, c.synopsis[:len(c.name())]) {
			t.Errorf("%s %s: want exit 0, the help (naming %q, with Examples:) on stdout, nothing on stderr; %s", c.name(), h, c.name(), r)
		}
		help = r.stdout
	}
	if c.sub != "" {
		if r := run(t, "", c.prog, "help", c.sub); r.code != 0 || r.stdout != help {
			t.Errorf("%s help %s: want the same help as %s --help; %s", c.prog, c.sub, c.name(), r)
		}
	}
	base := t.TempDir()
	args := c.fill(base)

	// An unknown flag, before and after the arguments.
	usageError(t, c.name()+" --bogus", c, run(t, "", c.prog, c.args(append([]string{"--bogus"}, args...)...)...), "unknown flag: --bogus")
	usageError(t, c.name()+" ... --bogus", c, run(t, "", c.prog, c.args(append(args, "--bogus")...)...), "unknown flag: --bogus")

	// Every typed flag given a value of the wrong type.
	flags := parseFlags(help)
	if len(flags) == 0 {
		t.Logf("%s has no flags", c.name())
	}
	t.Logf("%d flags", len(flags))
	has := map[string]bool{}
	for _, f := range flags {
		has[f.name] = true
		var bad string
		switch f.typ {
		case "duration", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
			bad = "not-a-" + f.typ
		case "":
			bad = "maybe" // a bool
		default:
			continue // text: what it must be is the command's to say, checked where it is used
		}
		arg := "--" + f.name + "=" + bad
		usageError(t, c.name()+" "+arg, c, run(t, "", c.prog, c.args(append([]string{arg}, args...)...)...), "--"+f.name)
	}

	if !has["config"] {
		return
	}
	// Settings that keep anything the command might start away from the machine's own
	// tiers, had it started: each names a folder that must still not exist afterwards.
	var safe []string
	var watch []string
	for _, name := range []string{"hot", "warm", "cold", "root", "journal-dir", "disk-cache-dir"} {
		if has[name] {
			d := filepath.Join(base, "set-"+name)
			safe = append(safe, "--"+name, d)
			watch = append(watch, d)
		}
	}
	if has["metrics-addr"] {
		safe = append(safe, "--metrics-addr", heldPort(t))
	}
	cmdline := func(cfg string) []string {
		return c.args(append(append([]string{"--config", cfg}, safe...), args...)...)
	}
	untouched := func(what string) {
		t.Helper()
		for _, d := range watch {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("%s: %s was created: the command started before its configuration was checked", what, d)
			}
		}
	}

	// A config file that does not exist.
	missing := filepath.Join(base, "no-such-dir", "chronicle.toml")
	oneLine(t, c.name()+" --config MISSING", c, run(t, "", c.prog, cmdline(missing)...), missing)
	untouched("--config MISSING")

	// Unknown keys in every section: each binary reads at least [tiers].
	unknown := filepath.Join(base, "unknown.toml")
	var b strings.Builder
	for _, sec := range []string{"tiers", "remote", "log", "feed", "etl", "tier", "fs"} {
		fmt.Fprintf(&b, "[%s]\nbogus_key = 1\n\n", sec)
	}
	os.WriteFile(unknown, []byte(b.String()), 0o644)
	oneLine(t, c.name()+" --config UNKNOWN-KEYS", c, run(t, "", c.prog, cmdline(unknown)...), "bogus_key")
	untouched("--config UNKNOWN-KEYS")

	// A bad value in a section the command reads, in the file, then on the command line.
	if strings.Contains(help, "[log]") {
		badLog := filepath.Join(base, "badlog.toml")
		os.WriteFile(badLog, []byte("[log]\nlevel = \"loud\"\n"), 0o644)
		r := run(t, "", c.prog, cmdline(badLog)...)
		oneLine(t, c.name()+" --config BAD-LOG-LEVEL", c, r, "level")
		if !strings.Contains(r.stderr, badLog) {
			t.Errorf("%s --config BAD-LOG-LEVEL: the error does not name the file %s: %s", c.name(), badLog, r.stderr)
		}
		untouched("--config BAD-LOG-LEVEL")
		if has["log-level"] {
			good := filepath.Join(base, "empty.toml")
			os.WriteFile(good, nil, 0o644)
			r := run(t, "", c.prog, c.args(append(append([]string{"--config", good, "--log-level", "loud"}, safe...), args...)...)...)
			usageError(t, c.name()+" --log-level loud", c, r, "level")
			untouched("--log-level loud")
		}
	}
}

// heldPort returns an address this test listens on until it ends: a command that opened
// its metrics port before checking its configuration fails differently.
func heldPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestRuntimeErrorsBeforeStart: arguments that name what does not exist fail with one
// line naming it, before anything starts: no log line, no metrics port (the test holds the
// one given, so a command that bound it first would fail differently), no folder created.
func TestRuntimeErrorsBeforeStart(t *testing.T) {
	base := t.TempDir()
	gone := filepath.Join(base, "typo", "deeper")
	port := heldPort(t)
	for _, tc := range []struct {
		prog string
		args []string
		want string
	}{
		{"chronicle-feed", []string{"replay", "--journal-dir", gone, "--metrics-addr", port, filepath.Join(base, "missing.jsonl.gz")}, "missing.jsonl.gz"},
		{"chronicle-etl", []string{"backfill", "--root", gone, filepath.Join(base, "missing-journal")}, "missing-journal"},
		{"chronicle-fs", []string{"mount", "--metrics-addr", port, "--hot", gone, gone}, gone},
		{"chronicle-fs", []string{"unmount", base}, "not a mount point"},
		{"chronicle-exsim", []string{"--state-dir", gone, "m=binance-perp:" + filepath.Join(base, "missing.jsonl.gz")}, "missing.jsonl.gz"},
	} {
		c := command{prog: tc.prog}
		oneLine(t, tc.prog+" "+strings.Join(tc.args, " "), c, run(t, "", tc.prog, tc.args...), tc.want)
		if _, err := os.Stat(filepath.Dir(gone)); err == nil {
			t.Fatalf("%s %v created %s", tc.prog, tc.args, filepath.Dir(gone))
		}
	}
}
