// Package qcli is the chronicle-q command line: the book of a partition at any instant,
// and its top N levels after every depth update or on a regular grid as CSV, read through
// the tiers of the shared configuration (any tier, as chronicle-fs does; tiers.Open) or a
// partition directory (a tier's, or one seen through the mount). The work is package
// format/bookview's; docs/format/views.md defines the rows.
package qcli

import (
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/internal/cli"
	"github.com/chronicle/chronicle/internal/config"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/spf13/pflag"
)

//go:embed usage.txt
var usage string

var (
	prog = &cli.Command{Program: "chronicle-q", Help: usage, FlagsTitle: "-", Usage: `chronicle-q book [flags] PARTITION TIME
chronicle-q top  [flags] PARTITION`}
	cmds = map[string]*cli.Command{
		"book": {Program: "chronicle-q", Name: "book", Help: usage, FlagsTitle: "-", Usage: "chronicle-q book [flags] PARTITION TIME"},
		"top":  {Program: "chronicle-q", Name: "top", Help: usage, FlagsTitle: "-", Usage: "chronicle-q top [flags] PARTITION"},
	}
)

// options are a command line's flags: the [tiers] and [remote] sections' bound onto their
// fields, the reads' (tiers.Config: frame cache, remote timeout) and the commands' own.
type options struct {
	set               *pflag.FlagSet
	bind              *config.Binder
	configPath        string
	roots             layout.Roots
	remote            objstore.Config
	read              tiers.Config
	depth, n          int
	asJSON            bool
	every, start, end string
}

func newOptions(c *cli.Command) *options {
	o := &options{set: c.FlagSet(), roots: layout.DefaultRoots(), read: tiers.DefaultConfig()}
	// A one-shot reader: a small frame cache, no disk cache, reads through the cache.
	o.read.CacheBytes, o.read.DiskCacheBytes, o.read.DirectReads = 64<<20, 0, false
	fl := o.set
	fl.StringVar(&o.configPath, "config", "", "shared TOML configuration ([tiers], [remote])")
	o.bind = config.NewBinder(fl).Section("tiers", &o.roots, "hot", "warm", "cold", "remote").Section("remote", &o.remote).
		Section("", &o.read, "cache-bytes", "remote-timeout")
	fl.IntVar(&o.depth, "depth", 0, "book: levels a side to print (0: all)")
	fl.BoolVar(&o.asJSON, "json", false, "book: print JSON")
	fl.IntVar(&o.n, "n", 10, "top: levels a side in each row")
	fl.StringVar(&o.every, "every", "", "top: a row per grid point (100ms, 1s, 1m...) instead of per depth update")
	fl.StringVar(&o.start, "start", "", "top: first instant (default: the partition's first record; a grid starts on a multiple of --every)")
	fl.StringVar(&o.end, "end", "", "top: end instant, excluded (default: past the last record)")
	fl.SortFlags = false
	return o
}

func init() { prog.Flags = func() *pflag.FlagSet { return newOptions(prog).set } }

// command finds the command among args: flags may come before it (chronicle-q --config
// FILE book ...), so it is the first argument that is neither a flag nor a flag's value
// and names a command; nil if there is none.
func command(args []string) *cli.Command {
	fl := newOptions(prog).set
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return nil
		case strings.HasPrefix(a, "--") && !strings.Contains(a, "="):
			if f := fl.Lookup(a[2:]); f != nil && f.Value.Type() != "bool" {
				i++ // its value
			}
			continue
		case strings.HasPrefix(a, "-"):
			continue
		}
		return cmds[a]
	}
	return nil
}

// Main runs the command line args (without the program name) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "help" && cmds[args[1]] != nil {
		args = []string{args[1], "--help"}
	}
	c := command(args)
	if c == nil {
		// No command: the program's help, or a usage error.
		o := newOptions(prog)
		if code, done := prog.Parse(o.set, args, stdout, stderr); done {
			return code
		}
		switch {
		case o.set.NArg() == 0:
			return prog.Exit(stderr, cli.Usagef("missing command (book or top)"))
		case o.set.Arg(0) == "help" && o.set.NArg() == 1:
			prog.PrintHelp(stdout, o.set)
			return cli.ExitOK
		case o.set.Arg(0) == "help":
			return prog.Exit(stderr, cli.Usagef("unknown command %q (want book or top)", o.set.Arg(1)))
		}
		return prog.Exit(stderr, cli.Usagef("unknown command %q (want book or top)", o.set.Arg(0)))
	}
	o := newOptions(c)
	if code, done := c.Parse(o.set, args, stdout, stderr); done {
		return code
	}
	// The command word is the first positional argument.
	return c.Exit(stderr, o.do(c.Name, o.set.Args()[1:], stdout))
}

// settings checks the flags and loads the config file under them, before anything is
// opened; it returns the grid step of --every.
func (o *options) settings(cmd string) (every time.Duration, err error) {
	if cmd == "top" && (o.n < 1 || o.n > bookview.MaxDepth) {
		return 0, cli.Usagef("--n %d: want 1..%d", o.n, bookview.MaxDepth)
	}
	if o.depth < 0 {
		return 0, cli.Usagef("--depth %d: want 0 (all) or more", o.depth)
	}
	if o.every != "" {
		if every, err = time.ParseDuration(o.every); err != nil || every <= 0 {
			return 0, cli.Usagef("--every %q: want a positive duration such as 100ms, 1s, 1m", o.every)
		}
	}
	if o.read.RemoteTimeout <= 0 {
		return 0, cli.Usagef("--remote-timeout %s: want a positive duration", o.read.RemoteTimeout)
	}
	if err := o.bind.Load(o.configPath); err != nil {
		return 0, err
	}
	o.bind.Apply()
	o.read.CacheBytes = max(o.read.CacheBytes, 8<<20)
	return every, nil
}

func (o *options) do(cmd string, args []string, stdout io.Writer) error {
	want := map[string][]string{"book": {"PARTITION", "TIME"}, "top": {"PARTITION"}}[cmd]
	if len(args) < len(want) {
		return cli.Usagef("missing %s", strings.Join(want[len(args):], " and "))
	}
	if len(args) > len(want) {
		return cli.Usagef("unexpected argument %q", args[len(want)])
	}
	every, err := o.settings(cmd)
	if err != nil {
		return err
	}
	p, closer, err := o.openPartition(args[0])
	if err != nil {
		return err
	}
	defer closer()
	if cmd == "book" {
		t, err := parseTime(args[1], p)
		if err != nil {
			return cli.Usage(err)
		}
		st, err := p.BookAt(t, o.depth)
		if err != nil {
			return fmt.Errorf("book at %s: %w", args[1], err)
		}
		if o.asJSON {
			return printJSON(stdout, args[0], st)
		}
		return printBook(stdout, args[0], st)
	}
	start, end := int64(math.MinInt64), int64(math.MaxInt64)
	if o.start != "" {
		if start, err = parseTime(o.start, p); err != nil {
			return cli.Usagef("--start: %w", err)
		}
	}
	if o.end != "" {
		if end, err = parseTime(o.end, p); err != nil {
			return cli.Usagef("--end: %w", err)
		}
	}
	var it *bookview.RowIter
	if every > 0 {
		step := int64(every)
		if o.start == "" || o.end == "" {
			lo, hi, _ := p.Span()
			if o.start == "" {
				start = (lo + step - 1) / step * step
			}
			if o.end == "" {
				end = hi + 1
			}
		}
		it = p.Grid(o.n, start, end, step)
	} else {
		it = p.Top(o.n, start, end)
	}
	defer it.Close()
	if err := writeCSV(stdout, p.Header(), o.n, it); err != nil {
		return fmt.Errorf("top %s: %w", args[0], err)
	}
	return nil
}

// openPartition opens a partition directory, or resolves VENUE/SYMBOL/DATE through the
// tiers.
func (o *options) openPartition(arg string) (*bookview.Partition, func(), error) {
	if st, err := os.Stat(filepath.Join(arg, layout.BookName)); err == nil && !st.IsDir() {
		l, err := bookview.OpenDir(arg)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", arg, err)
		}
		return l.Partition, func() { l.Close() }, nil
	}
	logical := strings.Trim(arg, "/")
	if !strings.HasPrefix(logical, layout.LayoutVersion+"/") {
		logical = layout.LayoutVersion + "/" + logical
	}
	l, err := layout.ParseLogical(logical)
	if err != nil || l.Depth() != 3 {
		// A missing file or folder is a runtime error (docs/cli.md), like any open.
		return nil, nil, fmt.Errorf("open %s: no %s there, and not VENUE/SYMBOL/DATE", arg, layout.BookName)
	}
	ctx := context.Background()
	t, err := tiers.Open(ctx, tiers.OpenOptions{Roots: o.roots, Remote: o.remote, Config: o.read, SkipRootCheck: true})
	if err != nil {
		return nil, nil, fmt.Errorf("tiers: %w", err)
	}
	res, closeAll := t.Resolver, func() { t.Close() }
	part := l.Key.Dir()
	th, err := res.OpenBook(ctx, l.Key)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("open %s: %w", part, err)
	}
	ix, err := bookview.LoadIndexes(part, func(rel string, max int64) ([]byte, error) {
		h, err := res.Open(ctx, path.Join(part, rel))
		if errors.Is(err, tiers.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", rel, os.ErrNotExist)
		}
		if err != nil {
			return nil, err
		}
		defer h.Close()
		if h.Size() > max {
			return nil, fmt.Errorf("%s: %w", rel, format.ErrTooLarge)
		}
		b := make([]byte, h.Size())
		if n, err := h.ReadAt(b, 0); n < len(b) {
			return nil, fmt.Errorf("read %s: %w", rel, err)
		}
		return b, nil
	})
	// The book index is read a state at a time, through a handle kept open.
	var bh tiers.Handle
	if err == nil {
		bh, err = res.Open(ctx, path.Join(part, bookview.BooksPath))
		switch {
		case errors.Is(err, tiers.ErrNotFound):
			bh, err = nil, nil
		case err == nil:
			ix.Books, err = bookview.OpenBooks(part, bh, bh.Size())
		}
	}
	if err == nil {
		var p *bookview.Partition
		if p, err = bookview.Open(th, th.Size(), part+"/"+layout.BookName+" ("+th.Tier().String()+")", ix); err == nil {
			return p, func() {
				th.Close()
				if bh != nil {
					bh.Close()
				}
				closeAll()
			}, nil
		}
	}
	th.Close()
	if bh != nil {
		bh.Close()
	}
	closeAll()
	return nil, nil, fmt.Errorf("open %s: %w", part, err)
}

// parseTime reads an instant: RFC 3339 (UTC when no zone), a time of day on the
// partition's date, or integer nanoseconds since the epoch.
func parseTime(s string, p *bookview.Partition) (int64, error) {
	if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ns, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixNano(), nil
		}
	}
	if lo, _, ok := p.Day(); ok {
		if t, err := time.Parse("15:04:05.999999999", s); err == nil {
			return lo + int64(t.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))), nil
		}
	}
	return 0, fmt.Errorf("time %q: want RFC 3339 (2024-08-08T23:58:00Z), a time of day (23:58:00.5) or nanoseconds", s)
}

func dec(v int64, d uint8) string { return format.FormatDecimal(v, d) }

func reasonName(code int64) string {
	if code == 0 {
		return "unknown"
	}
	return format.InvalidReasonName(code)
}

func printBook(w io.Writer, name string, st *bookview.State) error {
	fmt.Fprintf(w, "%s at %s\n", name, bookview.FormatTime(st.Time))
	if !st.Valid {
		since := ""
		if st.InvalidSince != 0 {
			since = " since " + bookview.FormatTime(st.InvalidSince)
		}
		_, err := fmt.Fprintf(w, "book INVALID (%s)%s: no levels to show\n", reasonName(st.Reason), since)
		return err
	}
	state := "valid"
	if st.Crossed {
		state = "valid, CROSSED"
	}
	fmt.Fprintf(w, "as of %s, update %d: %s, %d bid levels, %d ask levels\n", bookview.FormatTime(st.AsOf), st.Seq, state, st.BidLevels, st.AskLevels)
	fmt.Fprintf(w, "%18s %18s | %-18s %s\n", "bid size", "bid", "ask", "ask size")
	for i := 0; i < max(len(st.Bids), len(st.Asks)); i++ {
		var bq, bp, ap, aq string
		if i < len(st.Bids) {
			bp, bq = dec(st.Bids[i].Price, st.PriceDecimals), dec(st.Bids[i].Qty, st.QtyDecimals)
		}
		if i < len(st.Asks) {
			ap, aq = dec(st.Asks[i].Price, st.PriceDecimals), dec(st.Asks[i].Qty, st.QtyDecimals)
		}
		fmt.Fprintf(w, "%18s %18s | %-18s %s\n", bq, bp, ap, aq)
	}
	return nil
}

type jsonBook struct {
	Partition    string      `json:"partition"`
	Time         string      `json:"time"`
	AsOf         string      `json:"as_of,omitempty"`
	Seq          uint64      `json:"seq"`
	Valid        bool        `json:"valid"`
	Reason       string      `json:"reason,omitempty"`
	InvalidSince string      `json:"invalid_since,omitempty"`
	Crossed      bool        `json:"crossed"`
	BidLevels    int         `json:"bid_levels"`
	AskLevels    int         `json:"ask_levels"`
	Bids         [][2]string `json:"bids"`
	Asks         [][2]string `json:"asks"`
}

func printJSON(w io.Writer, name string, st *bookview.State) error {
	j := jsonBook{Partition: name, Time: bookview.FormatTime(st.Time), Seq: st.Seq, Valid: st.Valid, Crossed: st.Crossed,
		BidLevels: st.BidLevels, AskLevels: st.AskLevels, Bids: [][2]string{}, Asks: [][2]string{}}
	if st.AsOf != 0 {
		j.AsOf = bookview.FormatTime(st.AsOf)
	}
	if !st.Valid {
		j.Reason = reasonName(st.Reason)
		if st.InvalidSince != 0 {
			j.InvalidSince = bookview.FormatTime(st.InvalidSince)
		}
	}
	for _, l := range st.Bids {
		j.Bids = append(j.Bids, [2]string{dec(l.Price, st.PriceDecimals), dec(l.Qty, st.QtyDecimals)})
	}
	for _, l := range st.Asks {
		j.Asks = append(j.Asks, [2]string{dec(l.Price, st.PriceDecimals), dec(l.Qty, st.QtyDecimals)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

// writeCSV prints rows: times in RFC 3339, a state column (ok, crossed, invalid:REASON),
// then each level's price and size, empty past the last level of a side.
func writeCSV(w io.Writer, h format.Header, n int, it *bookview.RowIter) error {
	cw := csv.NewWriter(w)
	head := []string{"ts_exchange", "ts_recv", "seq", "state"}
	for _, side := range []string{"bid", "ask"} {
		for i := 1; i <= n; i++ {
			head = append(head, fmt.Sprintf("%s%d_price", side, i), fmt.Sprintf("%s%d_size", side, i))
		}
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	rec := make([]string, len(head))
	for it.Next() {
		r := it.Row()
		rec[0] = bookview.FormatTime(r.TsExchange)
		rec[1] = ""
		if r.TsRecv != 0 {
			rec[1] = bookview.FormatTime(r.TsRecv)
		}
		rec[2] = strconv.FormatUint(r.Seq, 10)
		switch {
		case r.Flags&bookview.RowInvalid != 0:
			rec[3] = "invalid:" + reasonName(int64(r.Reason))
		case r.Flags&bookview.RowCrossed != 0:
			rec[3] = "crossed"
		default:
			rec[3] = "ok"
		}
		k := 4
		for _, side := range [][2][]int64{{r.BidPrice, r.BidQty}, {r.AskPrice, r.AskQty}} {
			for i := range n {
				rec[k], rec[k+1] = "", ""
				if side[1][i] != 0 {
					rec[k], rec[k+1] = dec(side[0][i], h.PriceDecimals), dec(side[1][i], h.QtyDecimals)
				}
				k += 2
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return it.Err()
}
