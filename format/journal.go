package format

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Journal frame layout (docs/format/journal.md):
//
//	0  u32 payload length
//	4  u16 type id (never 0)
//	6  u16 channel (connection/stream id chosen by the writer)
//	8  i64 local receive time, ns since the Unix epoch
//	16 payload, then zero padding up to a multiple of 8 bytes
const (
	JournalFrameHeader = 16
	JournalAlign       = 8
	// MaxJournalPayload bounds one frame so a damaged length cannot make a reader allocate
	// or skip gigabytes. A 1000-level REST depth snapshot is about 40 KiB.
	MaxJournalPayload = 16 << 20
)

// Journal record type ids written by chronicle-feed.
const (
	JournalMessage         uint16 = 1 // one websocket message as received
	JournalRESTSnapshot    uint16 = 2 // a REST depth snapshot body
	JournalConnect         uint16 = 3 // a connection came up (JSON payload)
	JournalDisconnect      uint16 = 4 // a connection went down, with the reason (JSON)
	JournalSnapshotRequest uint16 = 5 // the feed asked for a REST snapshot (JSON)
	JournalGap             uint16 = 6 // the feed saw a sequence discontinuity (JSON)
	JournalReference       uint16 = 7 // a REST reference-data body: the venue's instrument listing
)

// JournalRecord is one decoded frame. Payload aliases the underlying buffer or mapping:
// copy it to keep it past the next call.
type JournalRecord struct {
	TypeID  uint16
	Channel uint16
	RecvTs  int64
	Payload []byte
	Offset  int64 // file offset of the frame
}

var (
	ErrBadFrame        = errors.New("invalid journal frame")
	ErrPayloadTooLarge = errors.New("payload too large")
)

// JournalFrameLen is the on-disk length of a frame carrying n payload bytes.
func JournalFrameLen(n int) int64 {
	return int64(JournalFrameHeader+n+JournalAlign-1) &^ (JournalAlign - 1)
}

// decodeJournalFrame decodes the frame at buf[0:], where buf ends at the committed length
// and off is buf's file offset (for errors).
func decodeJournalFrame(buf []byte, off int64, name string) (JournalRecord, int64, error) {
	if len(buf) < JournalFrameHeader {
		return JournalRecord{}, 0, corrupt(name, off, ErrBadFrame, "%d bytes left before the committed end, a frame header needs %d", len(buf), JournalFrameHeader)
	}
	le := binary.LittleEndian
	n := le.Uint32(buf[0:])
	t := le.Uint16(buf[4:])
	if t == 0 {
		return JournalRecord{}, 0, corrupt(name, off, ErrBadFrame, "type id 0")
	}
	if n > MaxJournalPayload {
		return JournalRecord{}, 0, corrupt(name, off, ErrBadFrame, "payload length %d above limit %d", n, MaxJournalPayload)
	}
	fl := JournalFrameLen(int(n))
	if fl > int64(len(buf)) {
		return JournalRecord{}, 0, corrupt(name, off, ErrTruncated, "frame of %d bytes runs past the committed end (%d bytes left)", fl, len(buf))
	}
	return JournalRecord{
		TypeID:  t,
		Channel: le.Uint16(buf[6:]),
		RecvTs:  int64(le.Uint64(buf[8:])),
		Payload: buf[JournalFrameHeader : JournalFrameHeader+int(n) : JournalFrameHeader+int(n)],
		Offset:  off,
	}, fl, nil
}

func putJournalFrameHeader(b []byte, typeID, channel uint16, recvNs int64, n int) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(n))
	le.PutUint16(b[4:], typeID)
	le.PutUint16(b[6:], channel)
	le.PutUint64(b[8:], uint64(recvNs))
}

func checkJournalAppend(typeID uint16, n int) error {
	if typeID == 0 {
		return fmt.Errorf("%w: type id 0 is reserved", ErrBadFrame)
	}
	if n > MaxJournalPayload {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, n, MaxJournalPayload)
	}
	return nil
}
