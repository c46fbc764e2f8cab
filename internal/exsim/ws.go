package exsim

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// A minimal server side of RFC 6455, written here rather than taken from a library so the
// simulator can misbehave on purpose: trickle frames, send broken frames, close without a
// close frame.

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// hijack takes over the connection of a websocket upgrade request and returns it with
// its buffered reader and the handshake reply (writeAccept sends it): the caller can
// register the connection before the client learns it is open.
func hijack(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.Reader, []byte, error) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !headerHas(r.Header, "Connection", "upgrade") {
		return nil, nil, nil, ErrNotWebsocket
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		return nil, nil, nil, ErrNotWebsocket
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, nil, fmt.Errorf("hijack: %w", ErrNotWebsocket)
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("hijack: %w", err)
	}
	accept := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n"
	return conn, rw.Reader, []byte(accept), nil
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// frame encodes one unmasked server frame.
func frame(op byte, payload []byte) []byte {
	n := len(payload)
	var hdr []byte
	switch {
	case n < 126:
		hdr = []byte{0x80 | op, byte(n)}
	case n < 1<<16:
		hdr = []byte{0x80 | op, 126, 0, 0}
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
	default:
		hdr = make([]byte, 10)
		hdr[0], hdr[1] = 0x80|op, 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
	}
	return append(hdr, payload...)
}

// clientFrame is one frame read from the client (always masked).
type clientFrame struct {
	op      byte
	fin     bool
	payload []byte
}

const maxClientFrame = 1 << 20

func readClientFrame(r *bufio.Reader) (clientFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return clientFrame{}, err
	}
	f := clientFrame{op: h[0] & 0x0f, fin: h[0]&0x80 != 0}
	if h[1]&0x80 == 0 {
		return f, fmt.Errorf("%w: unmasked", ErrBadFrame)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxClientFrame {
		return f, fmt.Errorf("%w: %d bytes", ErrBadFrame, n)
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return f, err
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	for i := range f.payload {
		f.payload[i] ^= mask[i&3]
	}
	return f, nil
}

// BinaryFrame encodes a binary data frame, for InjectFrame.
func BinaryFrame(payload []byte) []byte { return frame(opBinary, payload) }

// ReservedBitsFrame is a text frame with the reserved bits set: a protocol error that a
// compliant client answers by failing the connection.
func ReservedBitsFrame() []byte { return []byte{0xF1, 0x01, 'x'} }
