// Command chronicle-q answers research questions from the shell: the book of a partition
// at any instant, and its top N levels after every depth update or on a regular grid as
// CSV. The command line is internal/qcli, the work format/bookview's; docs/chronicle-q.md
// is the manual.
package main

import (
	"os"

	"github.com/chronicle/chronicle/internal/qcli"
)

func main() { os.Exit(qcli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
