package journal

import (
	"encoding/json"
	"fmt"
)

// Channel ids say which connection and which stream a record came from:
//
//	bit 15..9  slot    connection slot (0..126), fixed by the subscription plan
//	bit 8      parity  generation of the slot's connection, mod 2: during a rollover the
//	                   old and the new connection of a slot have different channels
//	bit 7..0   stream  index of the stream in the connection's Connect record;
//	                   255 = the connection itself (connect/disconnect, unparsable messages)
//
// Slot 127 (channels 0xFE00-0xFFFF) is reserved for records not tied to a connection.
const (
	MaxSlots          = 127
	MaxStreamsPerSlot = 255
	ConnStream        = 0xFF
	ChannelFeed       = 0xFFFF // feed-level records (journal write failures)
)

// Channel builds a channel id.
func Channel(slot int, gen uint64, stream int) (uint16, error) {
	if slot < 0 || slot >= MaxSlots || stream < 0 || stream > ConnStream {
		return 0, fmt.Errorf("slot %d stream %d: %w", slot, stream, ErrBadChannel)
	}
	return uint16(slot)<<9 | uint16(gen&1)<<8 | uint16(stream), nil
}

// SplitChannel is Channel's inverse.
func SplitChannel(ch uint16) (slot int, parity int, stream int) {
	return int(ch >> 9), int(ch>>8) & 1, int(ch & 0xFF)
}

// Record type ids are the format package's (format.JournalMessage...). Payloads of the
// event records are the JSON documents below.

// StreamInfo maps one channel to its stream.
type StreamInfo struct {
	Channel uint16 `json:"ch"`
	Stream  string `json:"stream"` // venue stream name as it appears in messages
	Symbol  string `json:"symbol"` // venue symbol
	Kind    string `json:"kind"`   // depth, trade, aggTrade, bookTicker, other
}

// Connect is the payload of a JournalConnect record.
type Connect struct {
	Session int64        `json:"session"` // feed process start, ns: changes on every restart
	Slot    int          `json:"slot"`
	Gen     uint64       `json:"gen"` // connection generation within the slot and session
	Channel uint16       `json:"ch"`  // the connection's own channel (stream 255)
	URL     string       `json:"url"`
	Streams []StreamInfo `json:"streams"`
	// Carried marks a restatement written at the start of a new segment for a connection
	// that was already open: nothing happened on the wire.
	Carried bool `json:"carried,omitempty"`
	// Replaces is set on a rollover connection: the generation it overlaps and replaces.
	Replaces *uint64 `json:"replaces,omitempty"`
	Replay   bool    `json:"replay,omitempty"`
	// Host is the capturing host's id ([host] id); absent in journals written before
	// host ids existed.
	Host string `json:"host,omitempty"`
}

// Disconnect reasons (Kind).
const (
	DisconnectError    = "error"    // the connection failed or the server closed it
	DisconnectRollover = "rollover" // retired after its replacement took over (no gap)
	DisconnectShutdown = "shutdown" // the feed is stopping
)

// Disconnect is the payload of a JournalDisconnect record.
type Disconnect struct {
	Session  int64  `json:"session"`
	Slot     int    `json:"slot"`
	Gen      uint64 `json:"gen"`
	Kind     string `json:"kind"`
	Reason   string `json:"reason"`
	Code     int    `json:"code,omitempty"` // websocket close code when one was received
	Messages int64  `json:"messages"`       // messages read on this connection
}

// Snapshot request reasons.
const (
	SnapshotStart     = "start"     // first connection of the session
	SnapshotReconnect = "reconnect" // after a connection was replaced without overlap
	SnapshotGap       = "gap"       // a depth sequence gap was seen
	SnapshotStale     = "stale"     // the previous snapshot was older than the diff chain
	SnapshotRetry     = "retry"     // the previous request failed
	SnapshotReplay    = "replay"    // recorded in a capture being replayed
	// SnapshotWriteFailed: records could not be journaled (a write_failed gap); every
	// depth stream needs a new snapshot once the journal takes records again.
	SnapshotWriteFailed = "write_failed"
)

// SnapshotRequest is the payload of a JournalSnapshotRequest record. The response, when
// it comes, is a JournalRESTSnapshot record on the same channel carrying the raw body.
type SnapshotRequest struct {
	Symbol string `json:"symbol"`
	Stream string `json:"stream"` // the depth stream the snapshot seeds
	URL    string `json:"url"`
	Limit  int    `json:"limit"`
	Weight int    `json:"weight"`
	Reason string `json:"reason"`
}

// Gap reasons.
const (
	GapSequence     = "sequence"      // the venue's sequence rule failed (depth pu != last u)
	GapOversized    = "oversized"     // a message above the size limit was dropped
	GapRolloverLost = "rollover_lost" // a rollover's old connection died before handover
	GapWriteFailed  = "write_failed"  // records could not be journaled (device full...)
	// GapChecksum: the book after the message just before this record on the stream
	// disagrees with the exchange's checksum that message carried (the feed resubscribes
	// the stream for a new snapshot). Unlike the others it follows the message.
	GapChecksum = "checksum"
)

// Why the feed resubscribes a stream of a venue that sends its snapshots on the websocket
// (the reason label of chronicle_feed_resubscribes_total).
const (
	ResubscribeChecksum = "checksum" // a checksum mismatch
	ResubscribeSequence = "sequence" // a sequence gap on a venue that sends snapshots on the websocket
)

// Gap is the payload of a JournalGap record. It precedes the record that revealed it.
type Gap struct {
	Reason  string `json:"reason"`
	Stream  string `json:"stream,omitempty"`
	Symbol  string `json:"symbol,omitempty"`
	LastID  int64  `json:"last_id,omitempty"` // last id kept before the gap
	First   int64  `json:"first,omitempty"`   // first update id of the revealing event
	Prev    int64  `json:"prev,omitempty"`    // its previous-id link (depth pu)
	ID      int64  `json:"id,omitempty"`      // its id
	Bytes   int64  `json:"bytes,omitempty"`   // size of a dropped oversized message
	Lost    int64  `json:"lost,omitempty"`    // records that could not be written
	FromNs  int64  `json:"from_ns,omitempty"` // first failed write
	ToNs    int64  `json:"to_ns,omitempty"`   // last failed write
	Message string `json:"message,omitempty"`
}

// Decode decodes an event payload into v (*Connect, *Disconnect, *SnapshotRequest, *Gap).
func Decode(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	return nil
}
