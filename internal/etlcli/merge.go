package etlcli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/etl/merge"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/internal/daemon"
)

// mergeCmd is `chronicle-etl merge`, by the binaries' convention (internal/cli): usage
// errors and the usage line on stderr, exit 2; --help (its own flags only) on stdout, exit
// 0; a runtime error one line "chronicle-etl: what failed: why", exit 1.
func mergeCmd(args []string, stdout, stderr io.Writer) int {
	f := newFlags(cmdMerge)
	if code, done := cmdMerge.Parse(f.set, args, stdout, stderr); done {
		return code
	}
	return cmdMerge.Exit(stderr, runMerge(f, stdout, stderr))
}

func runMerge(f *flags, stdout, stderr io.Writer) error {
	if f.root == "" {
		return cli.Usagef("merge needs --root (where v1/... is written)")
	}
	if err := cli.Args(f.set, 2, 2, "two journals, one per host"); err != nil {
		return err
	}
	st, err := f.settings()
	if err != nil {
		return err
	}
	var inputs [2][]merge.Input
	for i, a := range f.set.Args() {
		if inputs[i], err = journalsOf(a); err != nil {
			return err
		}
	}
	pairs, err := merge.PairByVenue(inputs)
	if err != nil {
		return err
	}
	log, ctx, stop, tw, err := st.oneShot(f.root)
	if err != nil {
		return err
	}
	defer stop()
	for _, p := range pairs {
		var bar *progressbar.ProgressBar
		opt := merge.Options{Inputs: p, Root: f.root, Config: st.cfg, Table: tw.Table, Log: log,
			Phase: func(name string, total int64) {
				if bar != nil {
					bar.Finish()
					fmt.Fprintln(stderr)
				}
				bar = daemon.Progress(total, name+" "+filepath.Base(p[0].Dir))
			},
			Progress: func(d int64) {
				if bar != nil {
					bar.Add64(d)
				}
			}}
		start := time.Now()
		res, err := merge.Merge(ctx, opt)
		if bar != nil {
			bar.Finish()
			fmt.Fprintln(stderr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("merge %s and %s: interrupted (run it again: it starts over and writes the same bytes)", p[0].Dir, p[1].Dir)
			}
			return fmt.Errorf("merge %s and %s: %w", p[0].Dir, p[1].Dir, err)
		}
		log.Info("merge done", "venue", res.Venue, "base", res.Hosts[0], "other", res.Hosts[1],
			"published", len(res.Published), "already_there", len(res.Existing), "journal_bytes", res.Journal,
			"common", res.Stats.Common, "only_base", res.Stats.Only[0], "only_other", res.Stats.Only[1],
			"losses_covered", res.Stats.Suppressed, "losses", res.Stats.Invalidated, "seconds", time.Since(start).Seconds())
		for _, rel := range res.Published {
			fmt.Fprintln(stdout, filepath.Join(f.root, rel))
		}
	}
	return nil
}

// journalsOf reads one argument: [ID=]DIR, DIR a venue journal or a feed directory.
func journalsOf(arg string) ([]merge.Input, error) {
	host, dir := "", arg
	if i := strings.IndexByte(arg, '='); i > 0 && !strings.Contains(arg[:i], "/") {
		host, dir = arg[:i], arg[i+1:]
		if !config.ValidHostID(host) {
			return nil, cli.Usagef("%q: host id %q: want 1-64 of a-z 0-9 '-' '_' '.'", arg, host)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (give a venue journal or a feed directory)", dir)
	}
	dirs, err := etl.Journals(dir)
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s holds no journal segments", dir)
	}
	var out []merge.Input
	for _, d := range dirs {
		out = append(out, merge.Input{Host: host, Dir: d})
	}
	return out, nil
}
