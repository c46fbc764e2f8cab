package pipeline

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/trees"
)

// TestKillEachDaemon runs the whole pipeline while it kills (SIGKILL) one daemon after
// another at random moments (seed printed; CHRONICLE_SEED replays it) and starts it again:
// the refinery, a feed, the tier manager, the mount, in turn, while the markets play at 25
// times their recorded pace (chronicle-exsim, as in the demo) and the partitions move
// through the tiers. The final
// partitions, read through the mount from every tier, are byte-identical to an
// uninterrupted refinery run over the same journals. A feed killed while its market
// plays loses what was in flight (as it would against a real exchange); the journal
// keeps everything it had committed and the refinery marks the restart (feed_restart).
func TestKillEachDaemon(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(testenv.Seed(t)), 14))
	p := newPipe(t)
	p.serveBinary(25)
	p.start("etl", testenv.Bin("chronicle-etl"), "run", "--config", p.cfg)
	p.start("tier", testenv.Bin("chronicle-tier"), "--config", p.cfg, "--now", demoNow, "run")
	p.start("fs", testenv.Bin("chronicle-fs"), "mount", "--config", p.cfg, p.mnt)
	feed := func(name, market string) {
		p.start(name, append([]string{testenv.Bin("chronicle-feed")}, p.feedArgs(market)...)...)
	}
	feed("feed-coinm", "coinm")
	feed("feed-spot", "spot")
	feed("feed-perp", "cryptofeed")

	// The killer: every 0.3-2 s the next daemon in turn (feeds in turn among themselves).
	var mu sync.Mutex
	kills := map[string]int{}
	var restartedWhilePlaying []string
	stopKilling := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		order := []string{"etl", "feed", "tier", "fs"}
		feeds := []string{"feed-coinm", "feed-spot", "feed-perp"}
		for i, f := 0, 0; ; i++ {
			select {
			case <-stopKilling:
				return
			case <-time.After(time.Duration(300+rng.IntN(1700)) * time.Millisecond):
			}
			name := order[i%len(order)]
			if name == "feed" {
				name = feeds[f%len(feeds)]
				f++
			}
			if p.kill9(name) {
				mu.Lock()
				kills[name]++
				if market := p.feedMarket(name); market != "" && p.playing(market) {
					restartedWhilePlaying = append(restartedWhilePlaying, marketVenue[market])
				}
				mu.Unlock()
				t.Logf("kill -9 %s", name)
			}
		}
	}()

	p.marketDone("cryptofeed")
	p.quiet(p.journalDir("binance-perp"))
	p.stop("feed-perp")
	feed("feed-perp", "usdm")
	for _, m := range []string{"usdm", "coinm", "spot"} {
		p.marketDone(m)
	}
	for _, v := range venues {
		p.quiet(p.journalDir(v))
	}
	for _, f := range []string{"feed-perp", "feed-coinm", "feed-spot"} {
		p.stop(f)
	}
	for _, v := range venues {
		testenv.WaitFor(t, "the refinery to reach the end of "+v, 2*time.Minute, func() bool { return p.caughtUp(v) })
	}
	p.sealEnded()
	time.Sleep(3 * time.Second) // kills go on while the tier manager moves
	close(stopKilling)
	<-killerDone
	testenv.WaitFor(t, "the mount", 20*time.Second, func() bool { return mounted(p.mnt) && p.running("fs") })
	testenv.WaitFor(t, "every partition in its tier", 2*time.Minute, p.placed)
	for _, v := range venues {
		testenv.WaitFor(t, "the refinery to reach the end of "+v, time.Minute, func() bool { return p.caughtUp(v) })
	}

	mu.Lock()
	t.Logf("kills: %v", kills)
	for _, d := range []string{"etl", "tier", "fs"} {
		if kills[d] == 0 {
			t.Errorf("%s was never killed (kills %v)", d, kills)
		}
	}
	if kills["feed-coinm"]+kills["feed-spot"]+kills["feed-perp"] == 0 {
		t.Errorf("no feed was killed (kills %v)", kills)
	}
	restarted := append([]string(nil), restartedWhilePlaying...)
	mu.Unlock()

	p.stop("etl")
	trees.Same(t, trees.Served(t, p.reference()), trees.Served(t, p.mnt), "after kill -9 of every daemon vs an uninterrupted refinery run")
	// A feed restarted while its market played shows in its venue's partitions.
	for _, v := range restarted {
		parts, _ := filepath.Glob(filepath.Join(p.mnt, "v1", v, "*", "*", meta.FileName))
		found := false
		for _, mp := range parts {
			m, err := meta.Read(mp)
			if err != nil {
				t.Fatal(err)
			}
			for _, iv := range m.Completeness.Invalid {
				found = found || iv.Reason == format.InvalidReasonName(format.InvalidFeedRestart)
			}
		}
		if !found {
			t.Errorf("%s: a feed was killed and restarted while its market played, but no partition lists a feed_restart interval", v)
		}
	}
}

var marketVenue = map[string]string{"usdm": "binance-perp", "cryptofeed": "binance-perp", "coinm": "binance-coinm", "spot": "binance-spot"}

// feedMarket names the market a feed process is capturing, "" for other daemons.
func (p *pipe) feedMarket(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.procs[name]
	if pr == nil || !strings.HasPrefix(name, "feed-") {
		return ""
	}
	for i, a := range pr.args {
		if a == "--ws-url" && i+1 < len(pr.args) {
			return pr.args[i+1][strings.LastIndexByte(pr.args[i+1], '/')+1:]
		}
	}
	return ""
}

// quiet waits until a venue journal has stopped growing for a second: the feed has
// journaled what it had received (with kills, it cannot be counted against what was sent).
func (p *pipe) quiet(dir string) {
	p.t.Helper()
	size := func() string {
		var b strings.Builder
		segs, _ := filepath.Glob(filepath.Join(dir, "*.q"))
		for _, s := range segs {
			if h, err := format.ReadHeaderFile(s); err == nil {
				fmt.Fprintf(&b, "%s:%d ", s, h.Committed)
			}
		}
		return b.String()
	}
	last, since := size(), time.Now()
	testenv.WaitFor(p.t, "journal "+dir+" to stop growing", 2*time.Minute, func() bool {
		if s := size(); s != last {
			last, since = s, time.Now()
		}
		return time.Since(since) > time.Second
	})
}
