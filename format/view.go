package format

import (
	"unsafe"
)

// The in-memory BookRecord has exactly the on-disk layout (same field order, sizes and
// natural alignment, no padding), so on a little-endian machine an aligned 64-byte slice
// *is* a record and decoding is a pointer cast. That is what lets numpy read book.q with no
// parser, and what lets Go iterate a mapping at memory speed.
var nativeLittleEndian = func() bool {
	var x uint16 = 1
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func init() {
	if unsafe.Sizeof(BookRecord{}) != BookRecordSize || unsafe.Offsetof(BookRecord{}.Aux1) != 56 {
		panic("format: BookRecord layout does not match the on-disk record")
	}
}

// BookRecords returns the records in data (whose length must be a multiple of
// BookRecordSize) as a slice aliasing data, or nil with ok=false when aliasing is not
// possible on this host or for this buffer's alignment. Columnar scans over a mapped file use
// it to touch each record once with no copy.
func BookRecords(data []byte) (recs []BookRecord, ok bool) {
	if len(data)%BookRecordSize != 0 || !nativeLittleEndian {
		return nil, false
	}
	if len(data) == 0 {
		return []BookRecord{}, true
	}
	if uintptr(unsafe.Pointer(&data[0]))%8 != 0 {
		return nil, false
	}
	return unsafe.Slice((*BookRecord)(unsafe.Pointer(&data[0])), len(data)/BookRecordSize), true
}
