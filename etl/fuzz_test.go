package etl

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// FuzzRefine feeds the refinery a journal of arbitrary messages on its depth, trade and
// ticker channels, REST snapshot bodies and connection events: it must never panic nor
// fail (a bad message is counted and skipped, the raw journal keeps it), and what it
// writes must hold its invariants: every record lies within its partition's date, every
// valid snapshot run equals the replay of the records before it, meta.json parses and
// counts what the file holds.
func FuzzRefine(f *testing.F) {
	t0 := ms("2024-08-08T23:59:58Z")
	seed := [][]string{
		{"s" + snap(100, t0, "100.0:1,99.9:2", "100.1:1"), "d" + depth("ETHUSDT", t0+1, 90, 101, 89, "100.0:3", "100.1:0"),
			"t" + trade("ETHUSDT", t0+2, 5, "100.1", "1", true), "b" + ticker("ETHUSDT", t0+3, 101, "100.0", "3", "100.2", "1"),
			"d" + depth("ETHUSDT", t0+2500, 102, 103, 101, "", "100.5:1"), "x", "d" + depth("ETHUSDT", t0+2600, 110, 111, 109, "99:1", "")},
		{"d" + depth("ETHUSDT", t0, 1, 2, 0, "1:1", "2:1"), "s" + snap(2, t0, "1:1", "2:1"), "d" + depth("ETHUSDT", t0+1, 3, 3, 1, "3:1", ""),
			"g", "d" + depth("ETHUSDT", t0+3, 4, 4, 3, "", ""), "s{\"code\":-1,\"msg\":\"x\"}", "t" + trade("ETHUSDT", t0+4, 9, "1e3", "1", false)},
		{"d{\"e\":\"depthUpdate\",\"E\":99999999999999,\"s\":\"ETHUSDT\",\"U\":1,\"u\":2,\"pu\":0,\"b\":[],\"a\":[]}", "tnot json", "b{}"},
	}
	for _, s := range seed {
		f.Add([]byte(joinLines(s)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		j := newJournal(t, "binance-perp", time.UnixMilli(t0-1000))
		j.connect(1, sDepth, sTrade, sTicker)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			body := string(line[1:])
			switch line[0] {
			case 'd':
				j.append(format.JournalMessage, j.chans[sDepth], []byte(`{"stream":"`+sDepth+`","data":`+body+`}`))
			case 't':
				j.append(format.JournalMessage, j.chans[sTrade], []byte(`{"stream":"`+sTrade+`","data":`+body+`}`))
			case 'b':
				j.append(format.JournalMessage, j.chans[sTicker], []byte(`{"stream":"`+sTicker+`","data":`+body+`}`))
			case 's':
				j.snapshot(sDepth, "ETHUSDT", body)
			case 'x':
				j.disconnect("error")
			case 'c':
				j.connect(2, sDepth, sTrade, sTicker)
			case 'g':
				j.append(format.JournalGap, j.chans[sDepth], []byte(`{"reason":"sequence","stream":"`+sDepth+`","symbol":"ETHUSDT"}`))
			default:
				j.append(format.JournalMessage, j.conn, line) // raw, on the connection's channel
			}
		}
		j.close()
		root := testenv.FastDir(t)
		refine(t, j, root, func(c *Config) { c.Grace = time.Second; c.SnapshotInterval = time.Second; c.MaxBuffered = 16 }, nil)
		books, _ := filepath.Glob(filepath.Join(root, "*", "binance-perp", "*", "*", "book.q"))
		for _, p := range books {
			h, recs := readBook(t, p)
			date := time.Date(int(h.Date/10000), time.Month(h.Date/100%100), int(h.Date%100), 0, 0, 0, 0, time.UTC).UnixNano()
			for i, r := range recs {
				if r.ExchTs < date || r.ExchTs >= date+int64(24*time.Hour) {
					t.Fatalf("%s: record %d at %d is outside the partition's date", p, i, r.ExchTs)
				}
			}
			checkRuns(t, recs)
			m, err := meta.Read(filepath.Join(filepath.Dir(p), meta.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if m.Records["total"] != int64(len(recs)) {
				t.Fatalf("%s: meta.json counts %d records, the file holds %d", p, m.Records["total"], len(recs))
			}
		}
		os.RemoveAll(root)
	})
}

func joinLines(s []string) string {
	var b bytes.Buffer
	for _, l := range s {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
