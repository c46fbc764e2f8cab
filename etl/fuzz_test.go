package etl

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/kraken"
	"github.com/chronicle/chronicle/venue/okx"
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

// FuzzRefineSubscribed is FuzzRefine for the venues that send book snapshots on the
// websocket and checksums with their updates: arbitrary OKX or Kraken messages (the first
// byte picks the venue), reference bodies and connection events. Damaged messages make
// books invalid (bad_message, checksum), never a panic or a failure; the output keeps its
// invariants, Kraken's book-10 depth included.
func FuzzRefineSubscribed(f *testing.F) {
	ok := `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["100.1","1","0","1"],["100.2","2","0","1"]],"bids":[["100","3","0","1"]],"ts":"1723161599000","checksum":-1}]}`
	okUp := `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["100.1","0","0","0"]],"bids":[["99.9","1","0","1"]],"ts":"1723161599500","checksum":5}]}`
	okTrade := `{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"7","px":"100.1","sz":"0.5","side":"buy","ts":"1723161599600"}]}`
	okRef := `{"code":"0","data":[{"instId":"BTC-USDT","instType":"SPOT","tickSz":"0.1","lotSz":"0.00000001"}]}`
	kr := `[5,{"as":[["5.1","1.00000000","1723161599.000001"],["5.2","1.00000000","1723161599.000002"]],"bs":[["5.0","2.00000000","1723161598.1"]]},"book-10","XBT/USD"]`
	krUp := `[5,{"a":[["5.15","3.00000000","1723161599.5","r"]],"c":"123"},"book-10","XBT/USD"]`
	krTrade := `[6,[["5.1","0.10000000","1723161599.7","b","l",""]],"trade","XBT/USD"]`
	krTick := `[7,{"a":["5.1",1,"1.0"],"b":["5.0",2,"2.0"]},"ticker","XBT/USD"]`
	krRef := `{"error":[],"result":{"XXBTZUSD":{"wsname":"XBT/USD","pair_decimals":2,"lot_decimals":8}}}`
	f.Add([]byte("\x00" + joinLines([]string{"r" + okRef, "m" + ok, "m" + okUp, "m" + okTrade, "x", "c", "m" + ok})))
	f.Add([]byte("\x01" + joinLines([]string{"r" + krRef, "m" + kr, "m" + krTick, "m" + krUp, "m" + krTrade, "m" + kr})))
	f.Add([]byte("\x01" + joinLines([]string{"m" + kr, "m" + krUp, "mnot json", "m{\"event\":\"heartbeat\"}"})))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 1<<16 {
			return
		}
		name, streams := okx.Name, []string{"books:BTC-USDT", "trades:BTC-USDT", "tickers:BTC-USDT"}
		if data[0]&1 == 1 {
			name, streams = kraken.Name, []string{"book-10:XBT/USD", "trade:XBT/USD", "ticker:XBT/USD"}
		}
		v, _ := venue.Lookup(name)
		j := newJournal(t, name, time.UnixMilli(1723161598000))
		connect := func(session int64) {
			j.gen++
			conn, _ := journal.Channel(0, j.gen, journal.ConnStream)
			j.conn = conn
			c := journal.Connect{Session: session, Gen: j.gen, Channel: conn, URL: "test:"}
			for i, s := range streams {
				ch, _ := journal.Channel(0, j.gen, i)
				j.chans[s] = ch
				c.Streams = append(c.Streams, journal.StreamInfo{Channel: ch, Stream: s, Symbol: v.Symbol(s), Kind: []string{"depth", "trade", "bookTicker"}[i]})
			}
			b, _ := json.Marshal(c)
			j.append(format.JournalConnect, conn, b)
		}
		connect(1)
		for _, line := range bytes.Split(data[1:], []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			switch line[0] {
			case 'm':
				ch := j.conn
				if ev, err := v.Parse(line[1:]); err == nil {
					if c, ok := j.chans[string(ev.Key(nil))]; ok {
						ch = c
					}
				}
				j.append(format.JournalMessage, ch, line[1:])
			case 'r':
				j.append(format.JournalReference, journal.ChannelFeed, line[1:])
			case 'x':
				j.disconnect("error")
			case 'c':
				connect(1)
			case 'g':
				j.append(format.JournalGap, j.chans[streams[0]], []byte(`{"reason":"checksum","stream":"`+streams[0]+`"}`))
			}
		}
		j.close()
		root := testenv.FastDir(t)
		refine(t, j, root, func(c *Config) { c.Grace = time.Second; c.SnapshotInterval = time.Second }, nil)
		books, _ := filepath.Glob(filepath.Join(root, "*", name, "*", "*", "book.q"))
		for _, p := range books {
			_, recs := readBook(t, p)
			checkRuns(t, recs)
			m, err := meta.Read(filepath.Join(filepath.Dir(p), meta.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if m.Records["total"] != int64(len(recs)) || m.Checks.ChecksumChecks == nil {
				t.Fatalf("%s: meta.json counts %d records (file %d), checksum checks %v", p, m.Records["total"], len(recs), m.Checks.ChecksumChecks)
			}
		}
		os.RemoveAll(root)
	})
}
