package venue

// Joiner is implemented by venues that match their events across two captures of the same
// streams (chronicle-etl merge of two hosts' journals) by a rule of their own, for example
// a venue whose book updates carry a checksum of the book instead of sequence ids, or whose
// messages differ between connections. Venues without it are matched by Parse's stream,
// kind and ids together with the message's bytes (Binance sends every connection the same
// bytes), and a depth update's place in its chain is Check's: it follows the update whose
// id is Event.Prev (or, when Prev is 0, First - 1).
type Joiner interface {
	// JoinKey identifies the exchange event msg carries: equal for the same event received
	// on any connection, different for two events of one stream.
	JoinKey(msg []byte, ev Event) uint64
	// ChainPrev is the id of the depth update ev follows in its chain: ev continues a chain
	// that ends at ChainPrev(ev) (Check(ChainPrev(ev), ev) is SeqNext).
	ChainPrev(ev Event) int64
}

// EventTimer is implemented by venues that can read a message's exchange event time without
// decoding the rest of it. chronicle-etl merge places every depth update of both hosts by it
// (Decode would parse every price level only for the time).
type EventTimer interface {
	// EventTime is msg's exchange event time in ns, as Decode's Message.ExchNs; ok is false
	// when msg carries none that can be read.
	EventTime(msg []byte) (ns int64, ok bool)
}
