package powercut

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/exsim"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/lazyfs"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestPowerCutFeed cuts the power while `chronicle-feed run` captures the exchange
// simulator (the real USD-M capture, one-second segments) into a journal on the lazy file
// system, then restarts the feed on what the disk kept and lets it capture some more. A
// segment is acknowledged once the feed logged it sealed (its seal fsyncs it and its
// directory). After each cut:
//   - every acknowledged segment is still there, sealed, and unchanged by the restart;
//   - every segment is readable to its committed length (whole records only);
//   - no message was journaled twice, and no pre-created or temporary file is left.
func TestPowerCutFeed(t *testing.T) {
	n := testenv.CrashRuns(t)
	rng := newRand(t)
	recs, err := capture.ReadAll(testenv.CapturesDir() + "binance-usdm_ethusdt_20240808.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	recs = recs[:min(len(recs), 40000)]
	empty := t.TempDir()
	acked, cuts := 0, 0
	var last lazyfs.Stats
	for i := range n {
		s, err := exsim.New(exsim.Options{Records: recs, Interval: 100 * time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		lz := mountLazy(t, empty)
		jd := filepath.Join(lz.Dir(), "journal")
		cfg := filepath.Join(t.TempDir(), "chronicle.toml")
		os.WriteFile(cfg, fmt.Appendf(nil, `[log]
level = "info"
format = "json"
[feed]
journal_dir = %q
ws_url = %q
rest_url = %q
symbols = ["ETHUSDT"]
metrics_addr = ""
roll_period = "1s"
precreate_lead = "300ms"
chunk_size = 65536
max_segment_size = 67108864
reconnect_min = "5ms"
reconnect_max = "50ms"
`, jd, s.WSURL(), s.RESTURL()), 0o644)

		p := start(t, "chronicle-feed", "run", "--config", cfg)
		if !s.WaitConns(1, 20*time.Second) {
			t.Fatalf("run %d: the feed did not connect\n%s", i, p.Output())
		}
		s.Play()
		delay := 300*time.Millisecond + time.Duration(rng.Int64N(int64(2700*time.Millisecond)))
		select {
		case <-p.Done():
			t.Fatalf("run %d: the feed exited: %v\n%s", i, p.Err(), p.Output())
		case <-time.After(delay):
		}
		lz.Cut()
		p.Cmd.Process.Kill()
		p.Wait()
		cuts++
		if err := lz.Restart(); err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("run %d (power cut after %v)", i, delay)
		t.Run(fmt.Sprintf("cut-%02d", i), func(t *testing.T) {
			sealed := sealedLogged(p.Output())
			acked += len(sealed)
			kept := map[string][]byte{}
			for _, name := range sealed {
				b, err := os.ReadFile(filepath.Join(jd, name))
				if err != nil {
					t.Fatalf("%s: acknowledged segment %s: %v", what, name, err)
				}
				if h, err := format.ReadHeader(bytes.NewReader(b), int64(len(b)), name); err != nil || !h.Sealed {
					t.Fatalf("%s: acknowledged segment %s: sealed %v, %v", what, name, h.Sealed, err)
				}
				kept[name] = b
			}
			readAll(t, lz.Dir())

			// The feed restarts on what the disk kept and captures a while longer.
			s.Conns()[0].Wait()
			p2 := start(t, "chronicle-feed", "run", "--config", cfg)
			if !s.WaitConns(1, 20*time.Second) || len(s.Conns()) != 2 {
				t.Fatalf("%s: the restarted feed did not connect\n%s", what, p2.Output())
			}
			time.Sleep(700 * time.Millisecond)
			p2.Cmd.Process.Signal(syscall.SIGTERM)
			if err := p2.Wait(); err != nil {
				t.Fatalf("%s: restarted feed: %v\n%s", what, err, p2.Output())
			}
			for name, b := range kept {
				now, err := os.ReadFile(filepath.Join(jd, name))
				if err != nil || !bytes.Equal(now, b) {
					t.Fatalf("%s: acknowledged segment %s changed by the restart (%v)", what, name, err)
				}
			}
			checkJournal(t, what, jd)
		})
		last = lz.Stats()
		lz.Close()
		s.Close()
	}
	t.Logf("%d power cuts, %d acknowledged segments kept across them; lazyfs of the last run: %+v", cuts, acked, last)
	if acked < n {
		t.Fatalf("only %d segments were acknowledged before %d cuts: the cuts do not cover rolls", acked, n)
	}
}

// sealedLogged lists the segments a feed's log says it sealed.
func sealedLogged(log string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m struct {
			Msg     string `json:"msg"`
			Segment string `json:"segment"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "journal segment sealed" && m.Segment != "" {
			out = append(out, m.Segment)
		}
	}
	return out
}

// checkJournal reads every segment to its committed length and fails on a damaged frame,
// a message journaled twice, or a leftover file.
func checkJournal(t *testing.T, what, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, ".next-") || strings.Contains(n, ".tmp-") {
			t.Fatalf("%s: %s left in the journal", what, n)
		}
	}
	seen := map[string]string{}
	err = testkit.WalkJournal(dir, func(seg string, r *format.JournalRecord) {
		if r.TypeID != format.JournalMessage {
			return
		}
		k := string(r.Payload)
		if prev, dup := seen[k]; dup {
			t.Fatalf("%s: a message journaled twice, in %s and %s: %.80s", what, prev, seg, k)
		}
		seen[k] = seg
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(seen) == 0 {
		t.Fatalf("%s: no message in the journal", what)
	}
}
