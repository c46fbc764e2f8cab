package lifecycle

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"

	"github.com/chronicle/chronicle/format"
	"github.com/parquet-go/parquet-go"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
)

// The parquet deriver (docs/chronicle-tier.md, "Deriver"): one row per canonical record, columns in
// record order with readable names. Timestamps are TIMESTAMP(NANOS, UTC); price and qty
// are DECIMAL(18, decimals) on INT64, the raw fixed-point integers with the header's
// scales, so they stay exact. aux0/aux1 are raw int64 (for bbo records they are the ask
// price and quantity at the price and qty scales).

var (
	// ErrDerive: the parquet deriver failed or its output did not read back as written. The
	// cold move is rolled back and retried, so a cold partition always has its parquet...
	ErrDerive = errors.New("derive parquet")
	// ErrDeriveRange: ...unless a price or quantity does not fit DECIMAL(18): then the move
	// goes on without derived/book.parquet (logged and counted).
	ErrDeriveRange = errors.New("value does not fit the parquet schema")
)

// ParquetSum is what the deriver checks after reading its file back.
type ParquetSum struct {
	Rows       int64
	Price      int64 // wrapping sum of the price column's raw integers
	TsExchange int64 // wrapping sum of ts_exchange
}

// maxDecimal18 is the largest magnitude DECIMAL(18, s) can hold.
const maxDecimal18 = 999_999_999_999_999_999

// Row groups are the unit engines scan in parallel (DuckDB, Polars and Spark split a file
// by row group) and prune by (each carries min/max statistics: ts_exchange's let a time
// filter skip groups). A day's file is cut into at least minRowGroups groups, each of
// minGroupRows to maxGroupRows rows: a small day still scans on several threads, a busy
// one (tens of millions of records) in groups of about 8 MB compressed.
const (
	minRowGroups = 8
	minGroupRows = 1 << 16
	maxGroupRows = 1 << 20
)

// RowGroupRows is the rows per row group of a file of rows records.
func RowGroupRows(rows int64) int64 {
	return min(max((rows+minRowGroups-1)/minRowGroups, minGroupRows), maxGroupRows)
}

// parquetSchema builds the schema for a book's decimals. The struct type fixes the column
// order (parquet.Group would sort the names); its tags carry the decimal scales.
func parquetSchema(priceDec, qtyDec uint8) (s *parquet.Schema, err error) {
	defer func() {
		if r := recover(); r != nil { // parquet-go panics on tags it cannot use
			err = fmt.Errorf("%w: schema: %v", ErrDerive, r)
		}
	}()
	i64, u16, u32, u64 := reflect.TypeFor[int64](), reflect.TypeFor[uint16](), reflect.TypeFor[uint32](), reflect.TypeFor[uint64]()
	dec := func(d uint8) string { return "decimal(" + strconv.Itoa(int(d)) + ":18)" }
	t := reflect.StructOf([]reflect.StructField{
		{Name: "Type", Type: u16, Tag: `parquet:"type"`},
		{Name: "Flags", Type: u16, Tag: `parquet:"flags"`},
		{Name: "SymbolID", Type: u32, Tag: `parquet:"symbol_id"`},
		{Name: "TsExchange", Type: i64, Tag: `parquet:"ts_exchange,timestamp(nanosecond:utc),delta"`},
		{Name: "TsRecv", Type: i64, Tag: `parquet:"ts_recv,timestamp(nanosecond:utc),delta"`},
		{Name: "Seq", Type: u64, Tag: `parquet:"seq,delta"`},
		{Name: "Price", Type: i64, Tag: reflect.StructTag(`parquet:"price,` + dec(priceDec) + `"`)},
		{Name: "Qty", Type: i64, Tag: reflect.StructTag(`parquet:"qty,` + dec(qtyDec) + `"`)},
		{Name: "Aux0", Type: i64, Tag: `parquet:"aux0"`},
		{Name: "Aux1", Type: i64, Tag: `parquet:"aux1"`},
	})
	return parquet.SchemaOf(reflect.New(t).Elem().Interface()), nil
}

// Column indexes in schema order.
const (
	colType = iota
	colFlags
	colSymbol
	colTsEx
	colTsRecv
	colSeq
	colPrice
	colQty
	colAux0
	colAux1
	numCols
)

// WriteParquet writes the records of a sealed book (size bytes of src, header h) as
// parquet to w and returns the sums ReadParquetSum must find.
func WriteParquet(ctx context.Context, src io.ReaderAt, h format.Header, size int64, w io.Writer) (ParquetSum, error) {
	var sum ParquetSum
	if h.Layout != format.LayoutBook || h.RecordSize != format.BookRecordSize {
		return sum, fmt.Errorf("%w: %w", ErrDerive, format.ErrWrongLayout)
	}
	schema, err := parquetSchema(h.PriceDecimals, h.QtyDecimals)
	if err != nil {
		return sum, err
	}
	start, end := h.DataStart(), min(size, int64(h.Committed))
	pw := parquet.NewWriter(w, schema,
		parquet.Compression(&pqzstd.Codec{Level: pqzstd.SpeedDefault}),
		parquet.MaxRowsPerRowGroup(RowGroupRows(max(end-start, 0)/format.BookRecordSize)),
		parquet.CreatedBy("chronicle-tier", "1", ""),
		parquet.KeyValueMetadata("chronicle.venue", h.Venue),
		parquet.KeyValueMetadata("chronicle.symbol_code", h.SymbolCode),
		parquet.KeyValueMetadata("chronicle.price_decimals", strconv.Itoa(int(h.PriceDecimals))),
		parquet.KeyValueMetadata("chronicle.qty_decimals", strconv.Itoa(int(h.QtyDecimals))),
	)
	const batch = 4096
	rows := make([]parquet.Row, batch)
	for i := range rows {
		rows[i] = make(parquet.Row, numCols)
	}
	buf := make([]byte, batch*format.BookRecordSize)
	for off := start; off < end; {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		b := buf[:min(int64(len(buf)), end-off)]
		if k, err := src.ReadAt(b, off); k < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return sum, fmt.Errorf("%w: read book at %d: %w", ErrDerive, off, err)
		}
		n := len(b) / format.BookRecordSize
		for i := 0; i < n; i++ {
			r := b[i*format.BookRecordSize:]
			le := binary.LittleEndian
			price, qty := int64(le.Uint64(r[32:])), int64(le.Uint64(r[40:]))
			if price > maxDecimal18 || price < -maxDecimal18 || qty > maxDecimal18 || qty < -maxDecimal18 {
				return sum, fmt.Errorf("%w: %w: record at offset %d: price %d or qty %d does not fit DECIMAL(18)", ErrDerive, ErrDeriveRange, off+int64(i*format.BookRecordSize), price, qty)
			}
			ts := int64(le.Uint64(r[8:]))
			row := rows[i]
			row[colType] = parquet.Int32Value(int32(le.Uint16(r[0:]))).Level(0, 0, colType)
			row[colFlags] = parquet.Int32Value(int32(le.Uint16(r[2:]))).Level(0, 0, colFlags)
			row[colSymbol] = parquet.Int32Value(int32(le.Uint32(r[4:]))).Level(0, 0, colSymbol)
			row[colTsEx] = parquet.Int64Value(ts).Level(0, 0, colTsEx)
			row[colTsRecv] = parquet.Int64Value(int64(le.Uint64(r[16:]))).Level(0, 0, colTsRecv)
			row[colSeq] = parquet.Int64Value(int64(le.Uint64(r[24:]))).Level(0, 0, colSeq)
			row[colPrice] = parquet.Int64Value(price).Level(0, 0, colPrice)
			row[colQty] = parquet.Int64Value(qty).Level(0, 0, colQty)
			row[colAux0] = parquet.Int64Value(int64(le.Uint64(r[48:]))).Level(0, 0, colAux0)
			row[colAux1] = parquet.Int64Value(int64(le.Uint64(r[56:]))).Level(0, 0, colAux1)
			sum.Price += price
			sum.TsExchange += ts
		}
		if _, err := pw.WriteRows(rows[:n]); err != nil {
			return sum, fmt.Errorf("%w: write rows: %w", ErrDerive, err)
		}
		sum.Rows += int64(n)
		off += int64(len(b))
	}
	if err := pw.Close(); err != nil {
		return sum, fmt.Errorf("%w: close: %w", ErrDerive, err)
	}
	return sum, nil
}

// ReadParquetSum opens a derived parquet file and returns its row count (from the footer,
// checked against every row group and page) and the sums of its price and ts_exchange
// columns, decoded page by page.
func ReadParquetSum(r io.ReaderAt, size int64, name string) (sum ParquetSum, err error) {
	defer func() {
		if p := recover(); p != nil { // parquet-go can panic on damaged files
			sum, err = ParquetSum{}, fmt.Errorf("%w: %s: unreadable: %v", ErrDerive, name, p)
		}
	}()
	// parquet-go allocates the footer length it reads before checking it against the file:
	// check it first, or a damaged length asks for gigabytes.
	var tail [8]byte
	if size < 12 {
		return sum, fmt.Errorf("%w: %s: %d bytes is too short for parquet", ErrDerive, name, size)
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return sum, fmt.Errorf("%w: %s: read footer: %w", ErrDerive, name, err)
	}
	if fl := int64(binary.LittleEndian.Uint32(tail[:4])); fl > size-12 {
		return sum, fmt.Errorf("%w: %s: offset %d: footer length %d exceeds the file", ErrDerive, name, size-8, fl)
	}
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return sum, fmt.Errorf("%w: open %s: %w", ErrDerive, name, err)
	}
	sum.Rows = f.NumRows()
	cols := map[string]*int64{"price": &sum.Price, "ts_exchange": &sum.TsExchange}
	for colName, dst := range cols {
		leaf, ok := f.Schema().Lookup(colName)
		if !ok {
			return sum, fmt.Errorf("%w: %s: no column %q", ErrDerive, name, colName)
		}
		var values int64
		for _, rg := range f.RowGroups() {
			s, n, err := sumColumn(rg.ColumnChunks()[leaf.ColumnIndex])
			if err != nil {
				return sum, fmt.Errorf("%w: %s: column %s: %w", ErrDerive, name, colName, err)
			}
			*dst += s
			values += n
		}
		if values != sum.Rows {
			return sum, fmt.Errorf("%w: %s: column %s has %d values, footer says %d rows", ErrDerive, name, colName, values, sum.Rows)
		}
	}
	return sum, nil
}

func sumColumn(cc parquet.ColumnChunk) (sum, n int64, err error) {
	pages := cc.Pages()
	defer pages.Close()
	buf := make([]parquet.Value, 4096)
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return sum, n, nil
		}
		if err != nil {
			return 0, 0, err
		}
		vr := p.Values()
		for {
			k, err := vr.ReadValues(buf)
			for _, v := range buf[:k] {
				sum += v.Int64()
			}
			n += int64(k)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				parquet.Release(p)
				return 0, 0, err
			}
		}
		parquet.Release(p)
	}
}
