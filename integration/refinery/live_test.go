package refinery

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit"
	kit "github.com/chronicle/chronicle/internal/testkit/captures"
	"github.com/chronicle/chronicle/internal/testkit/proc"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
)

// TestSubscribedLive captures the OKX and the Kraken capture live: the simulator serves
// each in its venue's protocol (subscription replies, snapshots on subscribe, checksums
// as recorded, reference data over REST) and the real chronicle-feed captures it. The
// journal holds every data message the simulator sent, byte for byte and in order, and
// the venue's reference data; refined, it gives the partitions a replay of the capture
// gives: the same records (but for receive times, and the exchange times Chronicle
// estimates for messages that carry none: Kraken's tickers and snapshots), the same
// counts and checks in meta.json.
func TestSubscribedLive(t *testing.T) {
	for _, set := range kit.Subscribed {
		t.Run(set.Name, func(t *testing.T) {
			recs, err := exsim.Load(set.Paths(testenv.CapturesDir())...)
			if err != nil {
				t.Fatal(err)
			}
			s, err := exsim.New(exsim.Options{Venue: set.Venue, Records: recs})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			sub, err := s.Subscription()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			live, rep := filepath.Join(dir, "live"), filepath.Join(dir, "replay")
			args := []string{"run", "--venue", set.Venue, "--symbols", strings.Join(sub.Symbols, ","), "--streams", strings.Join(sub.Streams, ","),
				"--ws-url", s.WSURL(), "--rest-url", s.RESTURL(), "--journal-dir", filepath.Join(live, "J"), "--metrics-addr", "", "--log-level", "warn"}
			if sub.BookDepth != 0 {
				args = append(args, "--book-depth", fmt.Sprint(sub.BookDepth))
			}
			feed := proc.Start(t, exec.Command(testenv.Bin("chronicle-feed"), args...))
			s.PlayAfterSnapshots()
			select {
			case <-s.Done():
			case <-time.After(2 * time.Minute):
				t.Fatalf("the simulator published %d of %d messages; feed log:\n%s", s.Published(), s.Len(), feed.Output())
			}
			s.Flush(time.Minute)
			var sent [][]byte
			for _, c := range s.Conns() {
				for _, i := range c.Sent() {
					if i >= 0 {
						sent = append(sent, s.Payload(i))
					}
				}
			}
			v := s.Venue()
			testenv.WaitFor(t, "the feed to journal what was sent", time.Minute, func() bool {
				got, _ := journaledData(t, v, filepath.Join(live, "J"))
				return len(got) >= len(sent)
			})
			feed.Cmd.Process.Signal(syscall.SIGTERM)
			if err := feed.Wait(); err != nil {
				t.Fatalf("chronicle-feed after SIGTERM: %v\n%s", err, feed.Output())
			}
			got, refs := journaledData(t, v, filepath.Join(live, "J"))
			if len(got) != len(sent) || refs != len(v.(venue.Referencer).ReferenceRequests("")) {
				t.Fatalf("%d data messages journaled, %d sent; %d reference bodies", len(got), len(sent), refs)
			}
			for i := range sent {
				if !bytes.Equal(got[i], sent[i]) {
					t.Fatalf("journaled message %d differs from the one sent", i)
				}
			}
			proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--root", filepath.Join(live, "R"), filepath.Join(live, "J"))
			replaySet(t, set, filepath.Join(rep, "J"))
			proc.Run(t, testenv.Bin("chronicle-etl"), "backfill", "--log-level", "warn", "--root", filepath.Join(rep, "R"), filepath.Join(rep, "J"))
			samePartitions(t, filepath.Join(live, "R"), filepath.Join(rep, "R"))
		})
	}
}

// journaledData returns the journal's data messages (what the venue parses as stream
// data) and the number of reference records.
func journaledData(t *testing.T, v venue.Venue, dir string) ([][]byte, int) {
	t.Helper()
	var msgs [][]byte
	refs := 0
	err := testkit.WalkJournal(dir, func(_ string, r *format.JournalRecord) {
		switch r.TypeID {
		case format.JournalMessage:
			if ev, err := v.Parse(r.Payload); err == nil && ev.Kind != venue.KindControl {
				msgs = append(msgs, bytes.Clone(r.Payload))
			}
		case format.JournalReference:
			refs++
		}
	})
	if err != nil {
		return nil, 0
	}
	return msgs, refs
}

// samePartitions requires two output roots to hold the same partitions with the same
// records, receive times aside (and the exchange times Chronicle estimated), and the same
// meta.json counts and checks. Snapshot runs are compared by what they restate.
func samePartitions(t *testing.T, a, b string) {
	t.Helper()
	pa, _ := filepath.Glob(filepath.Join(a, "v1", "*", "*", "*", "book.q"))
	pb, _ := filepath.Glob(filepath.Join(b, "v1", "*", "*", "*", "book.q"))
	if len(pa) == 0 || len(pa) != len(pb) {
		t.Fatalf("partitions %d and %d", len(pa), len(pb))
	}
	for i := range pa {
		rel, _ := filepath.Rel(a, pa[i])
		if rb, _ := filepath.Rel(b, pb[i]); rel != rb {
			t.Fatalf("partition %s against %s", rel, rb)
		}
		ha, ra := records(t, pa[i])
		hb, rb := records(t, pb[i])
		if ha.PriceDecimals != hb.PriceDecimals || ha.QtyDecimals != hb.QtyDecimals || ha.SymbolID != hb.SymbolID {
			t.Fatalf("%s: headers differ", rel)
		}
		ea, eb := events(ra), events(rb)
		if len(ea) != len(eb) {
			t.Fatalf("%s: %d events live, %d in the replay", rel, len(ea), len(eb))
		}
		for k := range ea {
			if ea[k] != eb[k] {
				t.Fatalf("%s: event record %d differs:\n live   %+v\n replay %+v", rel, k, ea[k], eb[k])
			}
		}
		ma, err := meta.Read(filepath.Join(filepath.Dir(pa[i]), meta.FileName))
		if err != nil {
			t.Fatal(err)
		}
		mb, err := meta.Read(filepath.Join(filepath.Dir(pb[i]), meta.FileName))
		if err != nil {
			t.Fatal(err)
		}
		if ma.Events.DepthUpdates != mb.Events.DepthUpdates || ma.Events.Trades != mb.Events.Trades || ma.Events.BBO != mb.Events.BBO ||
			*ma.Checks.ChecksumChecks != *mb.Checks.ChecksumChecks || *ma.Checks.ChecksumMismatches != 0 || *mb.Checks.ChecksumMismatches != 0 {
			t.Fatalf("%s: meta.json live %+v %+v, replay %+v %+v", rel, ma.Events, ma.Checks, mb.Events, mb.Checks)
		}
		replayCheck(t, pa[i], ra)
	}
}

// events are a partition's records outside snapshot runs, receive times zeroed (and the
// exchange times of records whose time Chronicle estimated).
func events(recs []format.BookRecord) []format.BookRecord {
	var out []format.BookRecord
	for _, r := range recs {
		if r.Flags&format.FlagSnapshot != 0 {
			continue
		}
		r.RecvTs = 0
		if r.Flags&format.FlagTsEstimated != 0 {
			r.ExchTs = 0
		}
		out = append(out, r)
	}
	return out
}
