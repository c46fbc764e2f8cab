package format

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the writer process: with CHRONICLE_FORMAT_CHILD set it appends
// records to a file and never returns to the test framework. This gives real cross-process
// readers and real kill -9 crashes.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CHRONICLE_FORMAT_CHILD"); mode != "" {
		childWriter(mode, os.Getenv("CHRONICLE_FORMAT_PATH"))
		return
	}
	os.Exit(m.Run())
}

func childWriter(mode, path string) {
	n, _ := strconv.Atoi(os.Getenv("CHRONICLE_FORMAT_N"))
	var a *Appender
	var err error
	if _, statErr := os.Stat(path); statErr == nil {
		a, err = OpenAppender(path, Options{ChunkSize: 1 << 20})
	} else if mode == "book" {
		a, err = Create(path, NewBookHeader("binance-perp", "eth-usdt", 42, 20240808), Options{ChunkSize: 1 << 20})
	} else {
		a, err = Create(path, NewJournalHeader("binance-perp", "seg"), Options{ChunkSize: 1 << 20})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	start := 0
	if mode == "book" {
		start = int(a.Committed()-HeaderSize) / BookRecordSize
	} else {
		start = countFrames(path)
	}
	for i := start; n <= 0 || i < n; i++ {
		if mode == "book" {
			// Events of 1-3 records committed together.
			r := testRecord(i)
			err = a.WriteBook(&r)
			if i%3 != 2 && (n <= 0 || i+1 < n) {
				continue
			}
			a.Commit()
		} else {
			err = a.AppendJournal(uint16(1+i%6), uint16(i%4), int64(i)*10, journalPayload(i))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		if i%500 == 0 {
			time.Sleep(100 * time.Microsecond) // let the reader catch up sometimes
		}
	}
	if err := a.Seal(); err != nil {
		fmt.Fprintln(os.Stderr, "child seal:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func countFrames(path string) int {
	m, err := MapFile(path)
	if err != nil {
		return 0
	}
	defer m.Close()
	it, err := NewJournalIter(m, m.Size(), path)
	if err != nil {
		return 0
	}
	n := 0
	for it.Next() {
		n++
	}
	return n
}

func committedOf(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	h, err := ReadHeader(f, -1, path)
	if err != nil {
		return 0
	}
	return int64(h.Committed)
}

func startChild(t *testing.T, mode, path string, n int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CHRONICLE_FORMAT_CHILD="+mode, "CHRONICLE_FORMAT_PATH="+path, "CHRONICLE_FORMAT_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTailAcrossProcesses(t *testing.T) {
	for _, mode := range []string{"book", "journal"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "live.q")
			const n = 30000
			cmd := startChild(t, mode, path, n)
			waitForFile(t, path)
			tl, err := OpenTailer(path)
			if err != nil {
				t.Fatal(err)
			}
			defer tl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			i := 0
			for {
				var ok bool
				if mode == "book" {
					var r BookRecord
					r, ok, err = tl.NextBook()
					if ok && r != testRecord(i) {
						t.Fatalf("record %d: %+v", i, r)
					}
				} else {
					var r JournalRecord
					r, ok, err = tl.NextJournal()
					if ok && (r.TypeID != uint16(1+i%6) || string(r.Payload) != string(journalPayload(i))) {
						t.Fatalf("frame %d differs", i)
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					i++
					continue
				}
				if tl.Sealed() && tl.Committed() == tl.Offset() {
					break
				}
				if err := tl.Wait(ctx, 50*time.Microsecond); err != nil {
					t.Fatalf("after %d records: %v", i, err)
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			if i != n {
				t.Fatalf("tailed %d records, want %d", i, n)
			}
		})
	}
}

// TestCrashRecovery kills a writer process with SIGKILL mid-stream, reopens the file, checks
// that exactly the committed prefix survives, and lets a new writer finish the sequence.
func TestCrashRecovery(t *testing.T) {
	for _, mode := range []string{"book", "journal"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "crash.q")
			for round := 0; round < 3; round++ {
				before := committedOf(path)
				cmd := startChild(t, mode, path, 0) // writes forever
				waitForFile(t, path)
				// Kill only once this round has made progress, at a varying moment.
				deadline := time.Now().Add(20 * time.Second)
				for committedOf(path) <= before+64<<10 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				time.Sleep(time.Duration(round*7) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()
				if committedOf(path) <= before {
					t.Fatalf("round %d made no progress", round)
				}
			}
			// No leftover temporary files from Create.
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("directory holds %d entries after crashes", len(ents))
			}
			var before int
			if mode == "book" {
				m, _ := MapFile(path)
				h, err := ReadHeader(m, m.Size(), path)
				m.Close()
				if err != nil {
					t.Fatal(err)
				}
				before = int(h.Records())
				checkBookSequence(t, path, before)
			} else {
				before = countFrames(path)
			}
			if before == 0 {
				t.Fatal("writer committed nothing before the kill")
			}
			// Finish the sequence with a fresh writer process and check it is seamless.
			final := before + 1000
			cmd := startChild(t, mode, path, final)
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			if mode == "book" {
				checkBookSequence(t, path, final)
			} else if got := countFrames(path); got != final {
				t.Fatalf("journal has %d frames, want %d", got, final)
			}
			t.Logf("%s: %d records survived 3 kills, resumed to %d", mode, before, final)
		})
	}
}
