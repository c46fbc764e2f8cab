package etl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/venue"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from this build's partitions")

// goldenCaptures are every bundled capture of a venue this refinery reads.
// The OKX and Kraken captures are journaled as chronicle-feed replay journals them (reference
// data, control messages, the files merged by receive time).
var goldenCaptures = append(benchCaptures[:len(benchCaptures):len(benchCaptures)],
	struct {
		name  string
		venue string
		files []string
	}{"cryptofeed", "binance-perp", []string{"cryptofeed_binance-futures.ws.txt"}},
	struct {
		name  string
		venue string
		files []string
	}{"okx", "okx", []string{"cryptofeed_okx.ws.txt"}},
	struct {
		name  string
		venue string
		files []string
	}{"kraken", "kraken-spot", []string{"cryptofeed_kraken-book.ws.txt", "cryptofeed_kraken-trade.ws.txt", "cryptofeed_kraken-ticker.ws.txt"}})

// TestGoldenPartitions refines every bundled capture and compares what it writes (every
// book.q, index file and meta.json, the latter without its ingest time) with the hashes in
// testdata/golden, which the refinery before issue 23 wrote (map and heap book, closure-
// driven decoder, per-frame live commits; first at 5ef484e, then again at main ca2eb78,
// whose meta.json rule and events index came in with the merge; index/books.idx, issue 22's
// book index, added to them without changing another hash): the speed-ups since change no
// byte. Run with -update to accept a change of output on purpose. The live refinery,
// tailing the same journal until it is idle, writes the same partitions as the backfill.
// Beside the hashes, testdata/golden/NAME.summary.json says what the partitions hold (counts,
// first and last records, final books, meta.json), so that a change shows in a diff as what
// changed, and the test names the fields that differ.
func TestGoldenPartitions(t *testing.T) {
	for _, c := range goldenCaptures {
		t.Run(c.name, func(t *testing.T) {
			v, err := venue.Lookup(c.venue)
			if err != nil {
				t.Fatal(err)
			}
			dir, _ := captureJournal(t, v, c.files...)
			cfg := Defaults()
			cfg.CheckpointInterval = time.Hour
			sealed := filepath.Join(t.TempDir(), "sealed")
			if _, err := Refine(t.Context(), Options{Config: cfg, Root: sealed, JournalDir: dir, SealAll: true}); err != nil {
				t.Fatal(err)
			}
			checkGoldenSummaries(t, c.name, sealed)
			got := treeHashes(t, sealed)
			path := filepath.Join("testdata", "golden", c.name+".json")
			if *update {
				b, _ := json.MarshalIndent(got, "", "  ")
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				var want map[string]string
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if err := json.Unmarshal(b, &want); err != nil {
					t.Fatal(err)
				}
				var diff []string
				for k, h := range want {
					if got[k] != h {
						diff = append(diff, k)
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok {
						diff = append(diff, k+" (new)")
					}
				}
				sort.Strings(diff)
				if len(diff) > 0 {
					t.Fatalf("%d of %d files differ from %s: %s", len(diff), len(want), path, strings.Join(diff, ", "))
				}
			}

			// Backfill and live, both unsealed at the end, write the same tree.
			back := filepath.Join(t.TempDir(), "backfill")
			if _, err := Refine(t.Context(), Options{Config: cfg, Root: back, JournalDir: dir}); err != nil {
				t.Fatal(err)
			}
			live := filepath.Join(t.TempDir(), "live")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			lcfg := cfg
			lcfg.IdleSpin = 0
			if _, err := Refine(ctx, Options{Config: lcfg, Root: live, JournalDir: dir, Follow: true, Listener: onIdle(cancel)}); err != nil {
				t.Fatal(err)
			}
			sameTree(t, back, live)
		})
	}
}

// treeHashes returns the SHA-256 of every file below root but the checkpoint, by path;
// meta.json without its ingest time.
func treeHashes(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.Contains(p, StateDir) {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if filepath.Base(p) == meta.FileName {
			m, err := meta.Parse(b, p)
			if err != nil {
				return err
			}
			m.IngestTime = 0
			if b, err = meta.Marshal(m); err != nil {
				return err
			}
		}
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no partitions written")
	}
	return out
}
