package etlcli

import (
	"github.com/schollz/progressbar/v3"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/internal/daemon"
)

// progress is a backfill's progress bar on a terminal (none elsewhere), fed by the
// refinery's events.
type progress struct {
	etl.NopListener
	desc string
	bar  *progressbar.ProgressBar
}

func (p *progress) Total(n int64) { p.bar = daemon.Progress(n, p.desc) }

func (p *progress) Progress(d int64) {
	if p.bar != nil {
		p.bar.Add64(d)
	}
}

// finish completes the bar; it reports whether there was one.
func (p *progress) finish() bool {
	if p.bar == nil {
		return false
	}
	p.bar.Finish()
	return true
}
