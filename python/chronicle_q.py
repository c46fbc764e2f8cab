"""Read Chronicle `.q` book files with numpy alone (pandas optional).

    import chronicle_q
    book = chronicle_q.open_book("/chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.q")
    levels = book[book["type_id"] == chronicle_q.LEVEL]
    df = chronicle_q.to_pandas(book)          # needs pandas

    part = chronicle_q.read(".../2024-08-08/book.q", "2024-08-08T23:55:00Z", "2024-08-08T23:56:00Z")
    runs = chronicle_q.snapshots(".../2024-08-08/book.q")   # every snapshot run, from index/

The byte layout is specified in docs/format/q.md; this module mirrors it. A sealed
partition also has an index/ directory beside book.q (time.idx: for every second the range
of records that can hold it; snapshots.idx: every snapshot run); read_time_index and
read_snapshot_index read it, and read() and snapshots() use it when it is there.
"""

import datetime
import os
import struct

import numpy as np

MAGIC = b"\x89CHRONQ\n"
VERSION = 1
LAYOUT_BOOK = 1
LAYOUT_JOURNAL = 2
RECORD_SIZE = 64

# type ids
LEVEL, TRADE, BBO, SNAPSHOT_BEGIN, SNAPSHOT_END, BOOK_INVALID = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {LEVEL: "level", TRADE: "trade", BBO: "bbo", SNAPSHOT_BEGIN: "snapshot_begin",
              SNAPSHOT_END: "snapshot_end", BOOK_INVALID: "book_invalid"}

# flags
BID, ASK, SNAPSHOT, LAST, FLAG_BOOK_INVALID, BAD_TS_RECV = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
CROSSED = 0x40       # after this event the book is crossed (best bid >= best ask)
TS_ESTIMATED = 0x80  # the venue sent no exchange time: ts_exchange is estimated

# why a book is invalid: the reason code in a book_invalid record's qty field
(NO_SNAPSHOT, SEQUENCE, DISCONNECT, FEED_RESTART, WRITE_FAILED, ROLLOVER_LOST, OVERSIZED,
 JOURNAL_LOST, BAD_MESSAGE, NOT_CAPTURED) = range(1, 11)
# NOT_CAPTURED names meta.json's stretch of a day before a capture's first record; no
# record carries it (docs/format/meta.md, "What the intervals cover").
INVALID_REASONS = {NO_SNAPSHOT: "no_snapshot", SEQUENCE: "sequence", DISCONNECT: "disconnect",
                   FEED_RESTART: "feed_restart", WRITE_FAILED: "write_failed",
                   ROLLOVER_LOST: "rollover_lost", OVERSIZED: "oversized",
                   JOURNAL_LOST: "journal_lost", BAD_MESSAGE: "bad_message",
                   NOT_CAPTURED: "not_captured"}

_COMMON = [("type_id", "<u2"), ("flags", "<u2"), ("symbol_id", "<u4"),
           ("ts_exchange", "<i8"), ("ts_recv", "<i8"), ("seq", "<u8")]

# One dtype for every record; the per-type dtypes below name aux0/aux1 by meaning.
BOOK_DTYPE = np.dtype(_COMMON + [("price", "<i8"), ("qty", "<i8"), ("aux0", "<i8"), ("aux1", "<i8")])
LEVEL_DTYPE = np.dtype(_COMMON + [("price", "<i8"), ("qty", "<i8"), ("first_update_id", "<i8"), ("prev_update_id", "<i8")])
TRADE_DTYPE = np.dtype(_COMMON + [("price", "<i8"), ("qty", "<i8"), ("first_trade_id", "<i8"), ("last_trade_id", "<i8")])
BBO_DTYPE = np.dtype(_COMMON + [("bid_price", "<i8"), ("bid_qty", "<i8"), ("ask_price", "<i8"), ("ask_qty", "<i8")])
SNAPSHOT_BEGIN_DTYPE = np.dtype(_COMMON + [("price", "<i8"), ("qty", "<i8"), ("levels", "<i8"), ("aux1", "<i8")])
BOOK_INVALID_DTYPE = np.dtype(_COMMON + [("price", "<i8"), ("qty", "<i8"), ("expected_prev_id", "<i8"), ("received_prev_id", "<i8")])
DTYPES = {LEVEL: LEVEL_DTYPE, TRADE: TRADE_DTYPE, BBO: BBO_DTYPE, SNAPSHOT_BEGIN: SNAPSHOT_BEGIN_DTYPE,
          SNAPSHOT_END: BOOK_DTYPE, BOOK_INVALID: BOOK_INVALID_DTYPE}
assert all(d.itemsize == RECORD_SIZE for d in DTYPES.values())

_HDR = struct.Struct("<8sHHIII Q I 28x I I Q q B B 6x 32s 64s")


class FormatError(ValueError):
    """The file is not a valid .q book file; the message names the file and offset."""


def read_header(path):
    """Return the header of a .q file as a dict."""
    with open(path, "rb") as f:
        raw = f.read(_HDR.size)
    if len(raw) < _HDR.size:
        raise FormatError(f"{path}: offset 0: truncated header ({len(raw)} bytes)")
    (magic, version, layout, header_size, record_size, _crc, committed, state,
     symbol_id, date, symbol_version_id, created_ns, price_dec, qty_dec, venue, code) = _HDR.unpack(raw)
    if magic != MAGIC:
        raise FormatError(f"{path}: offset 0: bad magic {magic!r}")
    if version != VERSION:
        raise FormatError(f"{path}: offset 8: unsupported version {version}")
    return {
        "version": version, "layout": layout, "header_size": header_size, "record_size": record_size,
        "committed": committed, "sealed": bool(state & 1), "symbol_id": symbol_id, "date": date,
        "symbol_version_id": symbol_version_id, "created_ns": created_ns,
        "price_decimals": price_dec, "qty_decimals": qty_dec,
        "venue": venue.rstrip(b"\0").decode(), "symbol_code": code.rstrip(b"\0").decode(),
    }


def open_book(path, header=None):
    """Map the committed records of a book.q as a read-only numpy structured array."""
    h = header or read_header(path)
    if h["layout"] != LAYOUT_BOOK or h["record_size"] != RECORD_SIZE:
        raise FormatError(f"{path}: offset 10: not a book file (layout {h['layout']}, record size {h['record_size']})")
    n = (h["committed"] - h["header_size"]) // RECORD_SIZE
    if n == 0:
        return np.zeros(0, dtype=BOOK_DTYPE)
    return np.memmap(path, dtype=BOOK_DTYPE, mode="r", offset=h["header_size"], shape=(n,))


def view(records, type_id):
    """Records of one type, viewed with that type's field names."""
    sel = records[records["type_id"] == type_id]
    return sel.view(DTYPES.get(type_id, BOOK_DTYPE))


def to_pandas(records, header=None):
    """A pandas DataFrame with datetime columns and float prices (exact integers kept too)."""
    import pandas as pd
    h = header or {"price_decimals": 8, "qty_decimals": 8}
    df = pd.DataFrame({name: np.asarray(records[name]) for name in BOOK_DTYPE.names})
    df["ts_exchange"] = pd.to_datetime(df["ts_exchange"], unit="ns", utc=True)
    df["ts_recv"] = pd.to_datetime(df["ts_recv"], unit="ns", utc=True)
    df["type"] = df["type_id"].map(TYPE_NAMES).fillna("unknown")
    df["price_f"] = df["price"] / 10 ** h["price_decimals"]
    df["qty_f"] = df["qty"] / 10 ** h["qty_decimals"]
    return df


# --- index/ of a sealed partition -----------------------------------------------------

IDX_MAGIC = b"\x89CHRIDX\n"
IDX_VERSION = 1
IDX_HEADER_SIZE = 64
IDX_KIND_TIME, IDX_KIND_SNAPSHOTS = 1, 2
INDEX_DIR, TIME_INDEX_NAME, SNAPSHOT_INDEX_NAME = "index", "time.idx", "snapshots.idx"
IDX_MAX_SECONDS = 400 * 86400  # a partition is one date plus grace: a larger index is damage

TIME_ENTRY_DTYPE = np.dtype([("lo", "<u8"), ("hi", "<u8")])
# 32-byte entries; the trailing u16 is reserved (zero) and not a field.
SNAPSHOT_INDEX_DTYPE = np.dtype({"names": ["ts_exchange", "record", "seq", "levels", "flags"],
                                 "formats": ["<i8", "<u8", "<u8", "<u4", "<u2"],
                                 "offsets": [0, 8, 16, 24, 28], "itemsize": 32})
assert TIME_ENTRY_DTYPE.itemsize == 16 and SNAPSHOT_INDEX_DTYPE.itemsize == 32

# magic, version, kind, entry_size, count, records, base, entries crc, header crc, 16 zero bytes
_IDX_HDR = struct.Struct("<8sHHIQQqII16x")
assert _IDX_HDR.size == IDX_HEADER_SIZE


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli) of bytes, as Go's crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))."""
    t = _CRC32C
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _read_index(path, kind, dtype, max_count):
    """Check an index file's header and checksums; return (entries array, records, base)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > IDX_HEADER_SIZE + max_count * dtype.itemsize:
            raise FormatError(f"{path}: offset 0: {size} bytes, more than an index of {max_count} entries")
        raw = f.read()
    if len(raw) < IDX_HEADER_SIZE:
        raise FormatError(f"{path}: offset 0: truncated header ({len(raw)} bytes)")
    magic, version, k, entry_size, count, records, base, crc_entries, crc_header = _IDX_HDR.unpack_from(raw)
    if magic != IDX_MAGIC:
        raise FormatError(f"{path}: offset 0: bad magic {magic!r}")
    if version != IDX_VERSION:
        raise FormatError(f"{path}: offset 8: unsupported version {version}")
    if crc32c(raw[:44]) != crc_header:
        raise FormatError(f"{path}: offset 44: header checksum mismatch")
    if k != kind:
        raise FormatError(f"{path}: offset 10: kind {k}, want {kind}")
    if entry_size != dtype.itemsize:
        raise FormatError(f"{path}: offset 12: entry size {entry_size}, want {dtype.itemsize}")
    if count > max_count:
        raise FormatError(f"{path}: offset 16: {count} entries, at most {max_count}")
    if records > (1 << 63) // RECORD_SIZE:
        raise FormatError(f"{path}: offset 24: {records} records")
    want = IDX_HEADER_SIZE + count * entry_size
    if len(raw) != want:
        raise FormatError(f"{path}: offset 16: {count} entries need {want} bytes, file has {len(raw)}")
    body = raw[IDX_HEADER_SIZE:]
    if crc32c(body) != crc_entries:
        raise FormatError(f"{path}: offset {IDX_HEADER_SIZE}: entries checksum mismatch")
    return np.frombuffer(body, dtype=dtype, count=count), records, base


def read_time_index(part_dir):
    """Read <part_dir>/index/time.idx: (base, records, lo, hi).

    Second base+i (Unix seconds) is covered by entry i: lo[i] is the first record with an
    exchange time at or after that second, hi[i] one past the last record with an exchange
    time before the next one; records is the number of book records the index was built from.
    """
    path = os.path.join(part_dir, INDEX_DIR, TIME_INDEX_NAME)
    e, records, base = _read_index(path, IDX_KIND_TIME, TIME_ENTRY_DTYPE, IDX_MAX_SECONDS)
    lo, hi = e["lo"].copy(), e["hi"].copy()
    if len(lo):
        # both bounds grow with time and stay within the book
        bad = (lo > records) | (hi > records)
        bad[1:] |= (lo[1:] < lo[:-1]) | (hi[1:] < hi[:-1])
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(f"{path}: offset {IDX_HEADER_SIZE + i * TIME_ENTRY_DTYPE.itemsize}: entry {i} "
                              f"({lo[i]}, {hi[i]}) out of order or past {records} records")
    return base, records, lo, hi


def read_snapshot_index(part_dir):
    """Read <part_dir>/index/snapshots.idx: (runs, records).

    runs is a structured array (ts_exchange, record, seq, levels, flags), one row per snapshot
    run in file order; record is the run's snapshot_begin record number and flags its flags.
    """
    path = os.path.join(part_dir, INDEX_DIR, SNAPSHOT_INDEX_NAME)
    e, records, _ = _read_index(path, IDX_KIND_SNAPSHOTS, SNAPSHOT_INDEX_DTYPE, IDX_MAX_SECONDS)
    runs = e.copy()
    rec = runs["record"]
    if len(rec):
        bad = rec >= records
        bad[1:] |= rec[1:] <= rec[:-1]
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(f"{path}: offset {IDX_HEADER_SIZE + i * SNAPSHOT_INDEX_DTYPE.itemsize}: run {i} "
                              f"at record {rec[i]} out of order or past {records} records")
    return runs, records


def to_ns(t):
    """An instant as int nanoseconds since the epoch, UTC.

    Accepts ints (ns), numpy.datetime64, datetime.datetime (naive means UTC),
    pandas.Timestamp, and ISO strings ("2024-08-08T23:55:00Z").
    """
    if isinstance(t, (bool, np.bool_)):
        raise TypeError(f"not a time: {t!r}")
    if isinstance(t, (int, np.integer)):
        return int(t)
    if isinstance(t, np.datetime64):
        if np.isnat(t):
            raise ValueError("not a time: NaT")
        return int(t.astype("datetime64[ns]").astype(np.int64))
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        ts = pd.Timestamp(t)
        if ts is pd.NaT:
            raise ValueError(f"not a time: {t!r}")
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(ts.value)
    if isinstance(t, datetime.datetime):
        if t.tzinfo is not None:
            t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return int(np.datetime64(t, "us").astype("datetime64[ns]").astype(np.int64))
    if isinstance(t, str):
        s = t.strip()
        if s.endswith("Z"):
            s = s[:-1]
        elif s.endswith("+00:00"):
            s = s[:-6]
        return int(np.datetime64(s, "ns").astype(np.int64))
    raise TypeError(f"not a time: {t!r} (install pandas for more types)")


def _floor_sec(ns):
    return ns // 1_000_000_000  # Python's // floors negative times too


def read(path, start, end):
    """The records of the book.q at path with start <= ts_exchange < end, in file order.

    start and end are int ns since the epoch or anything to_ns takes. Records are not sorted
    by exchange time, so the result is exactly book[(ts >= start) & (ts < end)]; with the
    partition's index/time.idx only the records it bounds are read (a growing file is
    scanned past what its index covers).
    """
    start, end = to_ns(start), to_ns(end)
    book = open_book(path)
    n = len(book)
    if n == 0 or end <= start:
        return np.zeros(0, dtype=BOOK_DTYPE)
    lo, hi = 0, n
    part_dir = os.path.dirname(os.path.abspath(path))
    try:
        base, records, tlo, thi = read_time_index(part_dir)
    except FileNotFoundError:
        tlo = None
    if tlo is not None:
        if records > n:
            raise FormatError(f"{os.path.join(part_dir, INDEX_DIR, TIME_INDEX_NAME)}: offset 24: index built from "
                              f"{records} records, {path} holds {n}")
        count = len(tlo)
        s0 = _floor_sec(start) - base
        s1 = _floor_sec(end - 1) - base
        lo = 0 if s0 < 0 else records if s0 >= count else int(tlo[s0])
        hi = 0 if s1 < 0 else records if s1 >= count else int(thi[s1])
        if records < n:  # the file grew past its index: what follows can hold any time
            hi = n
        hi = max(hi, lo)
    part = book[lo:hi]
    ts = part["ts_exchange"]
    return np.array(part[(ts >= start) & (ts < end)], dtype=BOOK_DTYPE)


def snapshots(path):
    """Every snapshot run of the book.q at path: SNAPSHOT_INDEX_DTYPE rows in file order.

    Read from the partition's index/snapshots.idx when it exists (and the book's records
    past what it covers are scanned); without it, book.q is scanned for snapshot_begin records.
    """
    book = open_book(path)
    n = len(book)
    part_dir = os.path.dirname(os.path.abspath(path))
    try:
        runs, records = read_snapshot_index(part_dir)
    except FileNotFoundError:
        runs, records = np.zeros(0, dtype=SNAPSHOT_INDEX_DTYPE), 0
    if records > n:
        raise FormatError(f"{os.path.join(part_dir, INDEX_DIR, SNAPSHOT_INDEX_NAME)}: offset 24: index built from "
                          f"{records} records, {path} holds {n}")
    if records < n:
        tail = book[records:]
        at = np.nonzero(tail["type_id"] == SNAPSHOT_BEGIN)[0]
        more = np.zeros(len(at), dtype=SNAPSHOT_INDEX_DTYPE)
        sel = tail[at]
        more["ts_exchange"] = sel["ts_exchange"]
        more["record"] = at.astype(np.uint64) + np.uint64(records)
        more["seq"] = sel["seq"]
        more["levels"] = np.clip(sel["aux0"], 0, 0xFFFFFFFF).astype(np.uint32)
        more["flags"] = sel["flags"]
        runs = np.concatenate([runs, more])
    return runs

