// Package capture reads recorded exchange captures: the timestamped JSON-lines format
// (`<receive ns> <json>` per line, gzip or plain, as in hftbacktest's recordings) and
// cryptofeed's ws/http pair (`<unix seconds>: <message>` websocket lines after a
// `<url> <-> <connect time>` line, `<url> <- <unix seconds>: <message>` for what the client
// sent; `<url> -> <unix seconds>: <json>` REST lines). Several files of one capture read
// as one stream merged by receive time (Merged). It is shared by chronicle-feed's replay
// and the exchange simulator.
package capture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chronicle/chronicle/fault"
)

// Kind says what a record holds.
type Kind uint8

const (
	KindMessage Kind = iota + 1 // one websocket message received
	// KindSnapshot is one REST response body: a depth snapshot (Binance), or reference
	// data (OKX instruments, Kraken AssetPairs); URL says which request it answered.
	KindSnapshot
	KindConnect // the recorder connected (URL set)
	KindSent    // a message the recorder sent on the websocket (a subscription; URL set)
)

// Record is one capture line. Payload aliases the reader's buffer until the next call to
// Next unless the record came from ReadAll.
type Record struct {
	RecvNs  int64
	Kind    Kind
	Payload []byte
	URL     string // REST request or websocket URL when the capture has it
	Symbol  string // symbol of a REST snapshot when the capture says it (upper case)
	Line    int
	File    string // the file it came from (set by Merged)
}

// Format is a capture file layout.
type Format uint8

const (
	FormatJSONL          Format = iota + 1 // "<ns> <json>"
	FormatCryptofeedWS                     // cryptofeed websocket log
	FormatCryptofeedHTTP                   // cryptofeed REST log
)

func (f Format) String() string {
	switch f {
	case FormatJSONL:
		return "jsonl"
	case FormatCryptofeedWS:
		return "cryptofeed-ws"
	case FormatCryptofeedHTTP:
		return "cryptofeed-http"
	}
	return "unknown"
}

// Reader reads one capture file.
type Reader struct {
	name   string
	f      io.Closer
	gz     *gzip.Reader
	br     *bufio.Reader
	format Format
	line   int
	buf    []byte
	peeked []byte // first line, read for detection
}

const maxLine = 64 << 20

// Open opens a capture file, detecting gzip by its magic bytes and the layout from the
// first line.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	r, err := NewReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// NewReader reads a capture from r; name is used in errors.
func NewReader(r io.Reader, name string) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	cr := &Reader{name: name, br: br}
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("capture %s: gzip: %w", name, err)
		}
		cr.gz = gz
		cr.br = bufio.NewReaderSize(gz, 1<<20)
	}
	first, err := cr.readLine()
	if err != nil {
		if err == io.EOF {
			return nil, fault.Line(name, 1, fmt.Errorf("%w: empty file", ErrUnknownFormat))
		}
		return nil, err
	}
	cr.format = detect(first)
	if cr.format == 0 {
		return nil, fault.Line(name, 1, ErrUnknownFormat)
	}
	cr.peeked = first
	return cr, nil
}

func detect(line []byte) Format {
	switch {
	case bytes.Contains(line, []byte(" <-> ")):
		return FormatCryptofeedWS
	case bytes.Contains(line, []byte(" -> ")) && bytes.Contains(line, []byte(": {")):
		return FormatCryptofeedHTTP
	}
	sp := bytes.IndexByte(line, ' ')
	if sp > 0 && isDigits(line[:sp]) {
		return FormatJSONL
	}
	return 0
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// Format returns the detected layout.
func (r *Reader) Format() Format { return r.format }

// readLine returns the next line without its newline; the slice is valid until the next
// call. Lines may be long (a REST snapshot is ~40 KB).
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, chunk...)
		if len(r.buf) > maxLine {
			return nil, fault.Line(r.name, r.line+1, fmt.Errorf("%w: longer than %d bytes", ErrBadLine, maxLine))
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r.name, err)
		}
		break
	}
	r.line++
	return bytes.TrimRight(r.buf, "\r\n"), nil
}

// Next returns the next record, or io.EOF. Blank lines are skipped.
func (r *Reader) Next() (Record, error) {
	for {
		var line []byte
		if r.peeked != nil {
			line, r.peeked = r.peeked, nil
		} else {
			var err error
			line, err = r.readLine()
			if err != nil {
				return Record{}, err
			}
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := ParseLine(r.format, line)
		if err != nil {
			return Record{}, fault.Line(r.name, r.line, err)
		}
		rec.Line = r.line
		return rec, nil
	}
}

// Close releases the file.
func (r *Reader) Close() error {
	if r.gz != nil {
		r.gz.Close()
	}
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

// ParseLine decodes one line of the given format. The payload aliases line.
func ParseLine(f Format, line []byte) (Record, error) {
	switch f {
	case FormatJSONL:
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			return Record{}, fmt.Errorf("%w: no space after the timestamp", ErrBadLine)
		}
		ns, err := strconv.ParseInt(string(line[:sp]), 10, 64)
		if err != nil || ns < 0 {
			return Record{}, fmt.Errorf("%w: %q", ErrBadTimestamp, line[:sp])
		}
		payload := bytes.TrimSpace(line[sp+1:])
		if len(payload) == 0 || payload[0] != '{' {
			return Record{}, fmt.Errorf("%w: payload is not a json object", ErrBadLine)
		}
		kind := KindMessage
		if isSnapshot(payload) {
			kind = KindSnapshot
		}
		return Record{RecvNs: ns, Kind: kind, Payload: payload}, nil
	case FormatCryptofeedWS:
		if i := bytes.Index(line, []byte(" <-> ")); i >= 0 {
			ns, err := ParseSeconds(string(bytes.TrimSpace(line[i+5:])))
			if err != nil {
				return Record{}, err
			}
			return Record{RecvNs: ns, Kind: KindConnect, URL: string(line[:i])}, nil
		}
		// "<url> <- <seconds>: <message>": what the client sent. A received message
		// starts with its time, so the arrow cannot be inside one before the colon.
		if i := bytes.Index(line, []byte(" <- ")); i > 0 && i < bytes.Index(line, []byte(": ")) {
			ns, payload, err := splitSecondsMessage(line[i+4:])
			if err != nil {
				return Record{}, err
			}
			return Record{RecvNs: ns, Kind: KindSent, Payload: payload, URL: string(line[:i])}, nil
		}
		ns, payload, err := splitSecondsMessage(line)
		if err != nil {
			return Record{}, err
		}
		return Record{RecvNs: ns, Kind: KindMessage, Payload: payload}, nil
	case FormatCryptofeedHTTP:
		i := bytes.Index(line, []byte(" -> "))
		if i <= 0 {
			return Record{}, fmt.Errorf("%w: no \" -> \" after the url", ErrBadLine)
		}
		ns, payload, err := splitSecondsPayload(line[i+4:])
		if err != nil {
			return Record{}, err
		}
		u := string(line[:i])
		rec := Record{RecvNs: ns, Kind: KindSnapshot, Payload: payload, URL: u}
		if pu, err := url.Parse(u); err == nil {
			rec.Symbol = strings.ToUpper(pu.Query().Get("symbol"))
		}
		return rec, nil
	}
	return Record{}, ErrUnknownFormat
}

// splitSecondsMessage splits "<seconds>: <message>" where the message is any text a
// websocket carried (JSON objects and arrays, or a bare word such as "pong").
func splitSecondsMessage(line []byte) (int64, []byte, error) {
	ns, payload, err := splitSeconds(line)
	if err == nil && len(payload) == 0 {
		return 0, nil, fmt.Errorf("%w: empty message", ErrBadLine)
	}
	return ns, payload, err
}

// splitSecondsPayload splits "<seconds>: <JSON object>".
func splitSecondsPayload(line []byte) (int64, []byte, error) {
	ns, payload, err := splitSeconds(line)
	if err == nil && (len(payload) == 0 || payload[0] != '{') {
		return 0, nil, fmt.Errorf("%w: payload is not a json object", ErrBadLine)
	}
	return ns, payload, err
}

// splitSeconds splits "<seconds>: <rest>" into the time in ns and the rest, trimmed.
func splitSeconds(line []byte) (int64, []byte, error) {
	i := bytes.Index(line, []byte(": "))
	if i <= 0 {
		return 0, nil, fmt.Errorf("%w: no \": \" after the timestamp", ErrBadLine)
	}
	ns, err := ParseSeconds(string(line[:i]))
	if err != nil {
		return 0, nil, err
	}
	return ns, bytes.TrimSpace(line[i+2:]), nil
}

// ParseSeconds converts decimal Unix seconds ("1626992741.06217") to nanoseconds exactly,
// without going through a float.
func ParseSeconds(s string) (int64, error) {
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" || !isDigits([]byte(intPart)) || len(intPart) > 10 || (frac != "" && !isDigits([]byte(frac))) {
		return 0, fmt.Errorf("%w: %q", ErrBadTimestamp, s)
	}
	sec, _ := strconv.ParseInt(intPart, 10, 64)
	if sec >= (1<<63-1)/1_000_000_000 {
		return 0, fmt.Errorf("%w: %q out of range", ErrBadTimestamp, s)
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	var ns int64
	if frac != "" {
		n, _ := strconv.ParseInt(frac, 10, 64)
		for i := len(frac); i < 9; i++ {
			n *= 10
		}
		ns = n
	}
	return sec*1_000_000_000 + ns, nil
}

// isSnapshot tells a REST depth body ({"lastUpdateId":...}) from a stream message.
func isSnapshot(payload []byte) bool {
	if bytes.HasPrefix(payload, []byte(`{"stream"`)) {
		return false
	}
	if bytes.HasPrefix(payload, []byte(`{"lastUpdateId"`)) {
		return true
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(payload, &top) != nil {
		return false
	}
	_, snap := top["lastUpdateId"]
	_, stream := top["stream"]
	return snap && !stream
}

// ReadAll reads every record of a file, copying payloads.
func ReadAll(path string) ([]Record, error) {
	r, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return drain(r.Next)
}

// drain reads records from next to io.EOF, copying payloads.
func drain(next func() (Record, error)) ([]Record, error) {
	var out []Record
	for {
		rec, err := next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		rec.Payload = bytes.Clone(rec.Payload)
		out = append(out, rec)
	}
}

// Merge interleaves record lists by receive time (stable: ties keep list order, earlier
// lists first), as a cryptofeed ws file and its http file were recorded side by side.
func Merge(lists ...[]Record) []Record {
	var out []Record
	idx := make([]int, len(lists))
	for {
		best := -1
		for i, l := range lists {
			if idx[i] < len(l) && (best < 0 || l[idx[i]].RecvNs < lists[best][idx[best]].RecvNs) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, lists[best][idx[best]])
		idx[best]++
	}
}

// PairedHTTP returns the cryptofeed REST log that sits beside a websocket log
// ("X.ws.txt" -> "X.http.txt"; for one of several connections recorded at once,
// "X-book.ws.txt" -> "X.http.txt"), or "" if there is none.
func PairedHTTP(wsPath string) string {
	for _, pair := range [][2]string{{".ws.", ".http."}, {"ws.", "http."}} {
		i := strings.Index(wsPath, pair[0])
		if i < 0 {
			continue
		}
		p := wsPath[:i] + pair[1] + wsPath[i+len(pair[0]):]
		if _, err := os.Stat(p); err == nil {
			return p
		}
		dir, stem := filepath.Split(wsPath[:i])
		if j := strings.LastIndexByte(stem, '-'); j > 0 {
			p = dir + stem[:j] + pair[1] + wsPath[i+len(pair[0]):]
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return ""
}

// Merged reads the files of one capture as one stream in receive-time order: files
// recorded side by side (three Kraken connections) interleave, files that follow each
// other (a capture split at the recorder's midnight) follow each other, and each
// cryptofeed websocket log brings its REST log (PairedHTTP; once, however many logs share
// it). Ties keep file order. Files are streamed, not read whole.
type Merged struct {
	srcs  []*mergeSrc
	files []string
	last  int // the source whose head Next returned last: advanced on the next call
}

type mergeSrc struct {
	path string
	r    *Reader
	head Record
	live bool // head holds a record
}

// OpenMerged opens every file (and the REST logs they pair with).
func OpenMerged(paths []string) (*Merged, error) {
	m := &Merged{last: -1}
	seen := map[string]bool{}
	add := func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		r, err := Open(p)
		if err != nil {
			return err
		}
		src := &mergeSrc{path: p, r: r}
		m.srcs = append(m.srcs, src)
		m.files = append(m.files, p)
		return src.advance()
	}
	for _, p := range paths {
		if err := add(p); err != nil {
			m.Close()
			return nil, err
		}
		if m.srcs[len(m.srcs)-1].r.Format() == FormatCryptofeedWS {
			if h := PairedHTTP(p); h != "" {
				if err := add(h); err != nil {
					m.Close()
					return nil, err
				}
			}
		}
	}
	return m, nil
}

func (s *mergeSrc) advance() error {
	rec, err := s.r.Next()
	if errors.Is(err, io.EOF) {
		s.live = false
		return nil
	}
	if err != nil {
		s.live = false
		return err
	}
	rec.File = s.path
	s.head, s.live = rec, true
	return nil
}

// Files lists the files read, REST logs included, in tie order.
func (m *Merged) Files() []string { return m.files }

// Next returns the record with the earliest receive time, or io.EOF. Its payload is valid
// until the next call.
func (m *Merged) Next() (Record, error) {
	if m.last >= 0 {
		if err := m.srcs[m.last].advance(); err != nil {
			return Record{}, err
		}
		m.last = -1
	}
	best := -1
	for i, s := range m.srcs {
		if s.live && (best < 0 || s.head.RecvNs < m.srcs[best].head.RecvNs) {
			best = i
		}
	}
	if best < 0 {
		return Record{}, io.EOF
	}
	m.last = best
	return m.srcs[best].head, nil
}

// Close closes every file.
func (m *Merged) Close() error {
	var first error
	for _, s := range m.srcs {
		if err := s.r.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ReadMerged reads every record of a capture's files merged (OpenMerged), copying
// payloads.
func ReadMerged(paths []string) ([]Record, error) {
	m, err := OpenMerged(paths)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return drain(m.Next)
}
