package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseAndExit(t *testing.T) {
	c := &Command{Program: "prog", Name: "sub", Usage: "prog sub [flags] FILE", Help: "prog sub does things.\n\nExamples:\n  prog sub x\n"}
	fs := c.FlagSet()
	fs.Int("count", 1, "how many")
	var out, errb bytes.Buffer

	if code, done := c.Parse(fs, []string{"--help"}, &out, &errb); code != 0 || !done || errb.Len() != 0 ||
		!strings.Contains(out.String(), "Examples:") || !strings.Contains(out.String(), "--count") {
		t.Fatalf("--help: %d %v\nstdout %q\nstderr %q", code, done, out.String(), errb.String())
	}
	out.Reset()
	fs = c.FlagSet()
	fs.Int("count", 1, "how many")
	if code, done := c.Parse(fs, []string{"--count", "x"}, &out, &errb); code != 2 || !done || out.Len() != 0 {
		t.Fatalf("bad value: %d %v", code, done)
	}
	want := "prog: invalid argument \"x\" for \"--count\" flag: must be an integer\nUsage: prog sub [flags] FILE\nRun 'prog sub --help' for the flags and examples.\n"
	if errb.String() != want {
		t.Fatalf("stderr %q\nwant %q", errb.String(), want)
	}
	fs = c.FlagSet()
	n := fs.Int("count", 1, "how many")
	if code, done := c.Parse(fs, []string{"--count", "3", "a"}, &out, &errb); done || code != 0 || *n != 3 {
		t.Fatalf("good flags: %d %v %d", code, done, *n)
	}

	errb.Reset()
	if code := c.Exit(&errb, errors.Join(errors.New("first"), errors.New("second"))); code != 1 || errb.String() != "prog: first; second\n" {
		t.Fatalf("runtime error: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := c.Exit(&errb, WithCode(3, errors.New("locked"))); code != 3 || errb.String() != "prog: locked\n" {
		t.Fatalf("coded error: %d %q", code, errb.String())
	}
	if code := c.Exit(&errb, nil); code != 0 {
		t.Fatalf("nil: %d", code)
	}
}

func TestValidate(t *testing.T) {
	v := 1
	check := func() error {
		if v < 1 {
			return errors.New("v below 1")
		}
		return nil
	}
	// The file's value is bad and the flags leave it: the file's error.
	v = 0
	err := Validate("/etc/x.toml", check, func() {})
	if err == nil || IsUsage(err) || !strings.Contains(err.Error(), "/etc/x.toml") {
		t.Fatalf("file error: %v", err)
	}
	// The flags make it bad: the command line's.
	v = 1
	if err := Validate("/etc/x.toml", check, func() { v = 0 }); !IsUsage(err) {
		t.Fatalf("flag error: %v", err)
	}
	// The flags fix the file's value.
	v = 0
	if err := Validate("/etc/x.toml", check, func() { v = 2 }); err != nil {
		t.Fatalf("fixed by a flag: %v", err)
	}
	// No file: the command line's.
	v = 0
	if err := Validate("", check, func() {}); !IsUsage(err) {
		t.Fatalf("no file: %v", err)
	}
}

func TestDispatch(t *testing.T) {
	prog := &Command{Program: "prog", Usage: "prog a [flags]\nprog b [flags]", Help: "Usage:\n  prog a\n"}
	var got []string
	subs := map[string]func([]string) int{
		"a": func(args []string) int { got = args; return 0 },
		"b": func(args []string) int { return 5 },
	}
	var out, errb bytes.Buffer
	for _, tc := range []struct {
		args []string
		code int
	}{{nil, 2}, {[]string{"c"}, 2}, {[]string{"--x"}, 2}, {[]string{"b"}, 5}, {[]string{"help"}, 0}, {[]string{"-h"}, 0}, {[]string{"help", "z"}, 2}} {
		if code := Dispatch(prog, subs, []string{"a", "b"}, tc.args, &out, &errb); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
	if Dispatch(prog, subs, []string{"a", "b"}, []string{"help", "a"}, &out, &errb); len(got) != 1 || got[0] != "--help" {
		t.Errorf("help a ran a with %v", got)
	}
	if !strings.Contains(errb.String(), "prog: unknown command \"c\" (want a or b)\nUsage: prog a [flags]\n       prog b [flags]\n") {
		t.Errorf("stderr %q", errb.String())
	}
}

func TestFindCommandAndSynopsis(t *testing.T) {
	names := []string{"run", "apply", "status"}
	for args, want := range map[string]string{"--config f run": "run", "apply --dry-run": "apply", "--now x": "", "-- run": "", "x status": "status"} {
		if got := FindCommand(strings.Fields(args), names); got != want {
			t.Errorf("FindCommand(%q) = %q, want %q", args, got, want)
		}
	}
	syn := "p run    [flags]\np apply  [flags] [--dry-run]"
	if got := SynopsisOf(syn, "apply"); got != "p apply [flags] [--dry-run]" {
		t.Errorf("SynopsisOf = %q", got)
	}
	c := &Command{Program: "p", Usage: syn, Help: "p does things\n"}
	for args, want := range map[string]int{"": ExitUsage, "frob": ExitUsage, "help": ExitOK} {
		fs := c.FlagSet()
		fs.Parse(strings.Fields(args))
		var out, errOut strings.Builder
		if code := c.NoCommand(fs, names, &out, &errOut); code != want {
			t.Errorf("NoCommand(%q) = %d, want %d (%s)", args, code, want, errOut.String())
		}
	}
}
