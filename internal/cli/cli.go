// Package cli holds the command-line convention every Chronicle binary follows
// (docs/cli.md): --help prints to stdout and exits 0; a usage error (unknown command or
// flag, a bad flag value, missing or extra arguments) prints "PROGRAM: message", the
// command's usage line and where to read more to stderr and exits 2; any other error
// prints one line "PROGRAM: what failed: why" to stderr and exits 1. The mains parse and
// validate everything (flags, arguments, the config file) before they start anything.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // a runtime error: a file, the config file, a port, the work itself
	ExitUsage   = 2 // the command line is wrong
)

// Command is one command line: a program without subcommands, or one subcommand.
type Command struct {
	Program string // "chronicle-etl"
	Name    string // the subcommand ("run"), or "" for the program itself
	// Usage is the synopsis, one or more lines such as "chronicle-etl run [flags]": the
	// lines of the help's Usage section that belong to this command, printed after a
	// usage error.
	Usage string
	// Help is the text --help prints before the flags: what the command does, its usage,
	// examples.
	Help string
	// FlagsTitle heads the flag list in the help ("Flags:" when empty). A Help that
	// already ends with its own title sets it to "-".
	FlagsTitle string
	// Flags, when set, gives the flags PrintHelp lists when it is given none (the
	// program's help, whose subcommands share them).
	Flags func() *pflag.FlagSet
}

// FullName is "PROGRAM SUBCOMMAND", or the program alone.
func (c *Command) FullName() string {
	if c.Name == "" {
		return c.Program
	}
	return c.Program + " " + c.Name
}

// FlagSet returns an empty flag set for the command that prints nothing by itself: Parse
// reports help and errors.
func (c *Command) FlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.FullName(), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses args into fs (made by FlagSet). When it returns done, the caller returns
// code at once: after --help or -h (the help on stdout, 0), or a flag error (stderr, 2).
func (c *Command) Parse(fs *pflag.FlagSet, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return ExitOK, false
	case errors.Is(err, pflag.ErrHelp):
		c.PrintHelp(stdout, fs)
		return ExitOK, true
	default:
		return c.Exit(stderr, Usage(err)), true
	}
}

// PrintHelp writes the help text and the flags (if fs has any) to w.
func (c *Command) PrintHelp(w io.Writer, fs *pflag.FlagSet) {
	io.WriteString(w, c.Help)
	if !strings.HasSuffix(c.Help, "\n") {
		io.WriteString(w, "\n")
	}
	if fs == nil && c.Flags != nil {
		fs = c.Flags()
	}
	if fs == nil || !fs.HasFlags() {
		return
	}
	switch c.FlagsTitle {
	case "-":
	case "":
		io.WriteString(w, "\nFlags:\n")
	default:
		io.WriteString(w, "\n"+c.FlagsTitle+"\n")
	}
	io.WriteString(w, fs.FlagUsages())
}

// usageError marks an error as the command line's.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// Usage marks err as a usage error: Exit prints the usage line after it and returns 2.
// Nil stays nil.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}

// Usagef is a new usage error.
func Usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// codeError carries an exit code a command documents for one condition.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// WithCode makes Exit return code for err (a condition the command's help documents,
// such as chronicle-tier's 3 for a tier tree another process holds).
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codeError{code, err}
}

// Exit reports err the conventional way on stderr and returns the exit code: 0 for nil,
// 2 with the usage line for a usage error, the code of WithCode, else 1.
func (c *Command) Exit(stderr io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %s\n", c.Program, OneLine(err))
	if IsUsage(err) {
		if u := strings.TrimSpace(c.Usage); u != "" {
			lines := strings.Split(u, "\n")
			fmt.Fprintf(stderr, "Usage: %s\n", strings.TrimSpace(lines[0]))
			for _, l := range lines[1:] {
				fmt.Fprintf(stderr, "       %s\n", strings.TrimSpace(l))
			}
		}
		fmt.Fprintf(stderr, "Run '%s --help' for the flags and examples.\n", c.FullName())
		return ExitUsage
	}
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return ExitFailure
}

// OneLine is err's message on one line: the parts of a joined error are separated by "; ".
func OneLine(err error) string {
	parts := strings.Split(strings.TrimSpace(err.Error()), "\n")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

// Validate checks the settings the config file and the flags make, so that an error says
// whose it is. check runs on what the defaults and the file give, then again after apply
// has set what the flags give. An error that the flags leave as it was is the file's: a
// runtime error naming configPath. Any other is the command line's, a usage error; so is
// every error when no config file is given (the defaults alone are the command line's to
// complete, as with chronicle-feed's symbols).
func Validate(configPath string, check func() error, apply func()) error {
	before := check()
	apply()
	err := check()
	switch {
	case err == nil:
		return nil
	case configPath != "" && before != nil && before.Error() == err.Error():
		return fmt.Errorf("config %s: %w", configPath, err)
	}
	return Usage(err)
}

// Args checks the number of positional arguments: at least min and, unless max < 0, at
// most max; what names them in the message ("a MOUNTPOINT").
func Args(fs *pflag.FlagSet, min, max int, what string) error {
	n := fs.NArg()
	switch {
	case n < min:
		return Usagef("missing %s", what)
	case max >= 0 && n > max:
		return Usagef("unexpected argument %q", fs.Arg(max))
	}
	return nil
}

// Dispatch runs the subcommand args[0] names. With no argument it is a usage error;
// "help", "-h" and "--help" print the program's help on stdout, and "help SUB" a
// subcommand's (run with --help).
func Dispatch(prog *Command, subs map[string]func(args []string) int, names []string, args []string, stdout, stderr io.Writer) int {
	list := orList(names)
	if len(args) == 0 {
		return prog.Exit(stderr, Usagef("missing command (%s)", list))
	}
	switch args[0] {
	case "-h", "--help":
		prog.PrintHelp(stdout, nil)
		return ExitOK
	case "help":
		if len(args) > 1 {
			if run, ok := subs[args[1]]; ok {
				return run([]string{"--help"})
			}
			return prog.Exit(stderr, Usagef("unknown command %q (want %s)", args[1], list))
		}
		prog.PrintHelp(stdout, nil)
		return ExitOK
	}
	if run, ok := subs[args[0]]; ok {
		return run(args[1:])
	}
	if strings.HasPrefix(args[0], "-") {
		return prog.Exit(stderr, Usagef("a command comes first (%s), then its flags; got %s", list, args[0]))
	}
	return prog.Exit(stderr, Usagef("unknown command %q (want %s)", args[0], list))
}

// orList is "a, b or c".
func orList(names []string) string {
	list := strings.Join(names, ", ")
	if i := strings.LastIndex(list, ", "); i >= 0 {
		list = list[:i] + " or " + list[i+2:]
	}
	return list
}

// FindCommand finds the subcommand of a program whose flags may come before it
// (chronicle-tier --config FILE run): the first argument before any "--" that is one of
// names, or "".
func FindCommand(args, names []string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		for _, n := range names {
			if a == n {
				return n
			}
		}
	}
	return ""
}

// NoCommand ends a command line (parsed into fs) that named none of names: "help" prints
// the program's help, anything else is a usage error naming what was given.
func (c *Command) NoCommand(fs *pflag.FlagSet, names []string, stdout, stderr io.Writer) int {
	switch {
	case fs.NArg() == 0:
		return c.Exit(stderr, Usagef("missing command (%s)", orList(names)))
	case fs.Arg(0) == "help":
		c.PrintHelp(stdout, fs)
		return ExitOK
	}
	return c.Exit(stderr, Usagef("unknown command %q (want %s)", fs.Arg(0), orList(names)))
}

// SynopsisOf is the line of a program's synopsis (Command.Usage) that belongs to the
// subcommand name, its words single-spaced: "chronicle-tier apply [flags] [--dry-run]".
func SynopsisOf(synopsis, name string) string {
	for _, l := range strings.Split(synopsis, "\n") {
		if w := strings.Fields(l); len(w) > 1 && w[1] == name {
			return strings.Join(w, " ")
		}
	}
	return ""
}
