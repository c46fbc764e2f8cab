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

import bisect
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
CHECKSUM = 0x100     # a level record's aux0 holds the exchange's checksum of the book after it

# why a book is invalid: the reason code in a book_invalid record's qty field
(NO_SNAPSHOT, SEQUENCE, DISCONNECT, FEED_RESTART, WRITE_FAILED, ROLLOVER_LOST, OVERSIZED,
 JOURNAL_LOST, BAD_MESSAGE, NOT_CAPTURED, CHECKSUM_MISMATCH) = range(1, 12)
# NOT_CAPTURED names meta.json's stretch of a day before a capture's first record; no
# record carries it (docs/format/meta.md, "What the intervals cover").
INVALID_REASONS = {NO_SNAPSHOT: "no_snapshot", SEQUENCE: "sequence", DISCONNECT: "disconnect",
                   FEED_RESTART: "feed_restart", WRITE_FAILED: "write_failed",
                   ROLLOVER_LOST: "rollover_lost", OVERSIZED: "oversized",
                   JOURNAL_LOST: "journal_lost", BAD_MESSAGE: "bad_message",
                   NOT_CAPTURED: "not_captured",
                   CHECKSUM_MISMATCH: "checksum"}

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
    """A pandas DataFrame with datetime columns and float prices (exact integers kept too).

    Book records get a type name and price_f / qty_f; top-N rows (top_n, views/top{N}.npy)
    get one column per level (bid_price_0 is the best bid...) and mid_f, the mid price of
    the best levels (NaN where a side is empty); other structured arrays keep their fields.
    """
    import pandas as pd
    h = header or {"price_decimals": 8, "qty_decimals": 8}
    names = records.dtype.names or ()
    if "type_id" not in names:
        cols = {}
        for name in names:
            col = np.asarray(records[name])
            if col.ndim == 2:
                for i in range(col.shape[1]):
                    cols[f"{name}_{i}"] = col[:, i]
            elif name in ("ts_exchange", "ts_recv"):
                cols[name] = pd.to_datetime(col, unit="ns", utc=True)
            else:
                cols[name] = col
        df = pd.DataFrame(cols)
        if "bid_price" in names and "ask_price" in names:
            b = np.asarray(records["bid_price"])[:, 0].astype(float)
            a = np.asarray(records["ask_price"])[:, 0].astype(float)
            mid = np.where((b > 0) & (a > 0), (a + b) / 2, np.nan)
            df["mid_f"] = mid / 10 ** h["price_decimals"]
        return df
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



# --- research views: the book at any instant, top N, several partitions merged ----------
#
# docs/format/views.md defines the semantics; format/bookview is the Go implementation, and
# chronicle-fs serves the same rows as views/top{N}.npy. A book event is a depth update
# (its level records up to the one flagged LAST), a snapshot run (snapshot_begin ..
# snapshot_end) or a book_invalid record; events apply in file order; an event's time is
# its first record's exchange time. The book at t is the book after the last event (in
# file order) whose time is at or before t, every event before it applied.

EVENTS_INDEX_NAME = "events.idx"
IDX_KIND_EVENTS = 3
IDX_MAX_EVENT_ENTRIES = IDX_MAX_SECONDS + (4 << 20)
# 40-byte entries: counts of depth updates, trades and bbo records before each anchor record
EVENTS_INDEX_DTYPE = np.dtype({"names": ["record", "depth", "trades", "bbo", "flags"],
                               "formats": ["<u8", "<u8", "<u8", "<u8", "<u4"],
                               "offsets": [0, 8, 16, 24, 32], "itemsize": 40})
ANCHOR_SNAPSHOT, ANCHOR_VALID, ANCHOR_STRIDE, ANCHOR_END = 1, 2, 4, 8

# index/books.idx (kind 4): the whole book at a checkpoint about every stride of records
# (docs/format/index.md). 56-byte entries, then the states they point at.
BOOKS_INDEX_NAME = "books.idx"
IDX_KIND_BOOKS = 4
IDX_MAX_BOOK_ENTRIES = (4 << 20) + 1
BOOKS_INDEX_DTYPE = np.dtype({"names": ["record", "target", "depth", "min_ts", "off", "len", "crc", "bids", "asks"],
                              "formats": ["<u8", "<u8", "<u8", "<i8", "<u8", "<u4", "<u4", "<u4", "<u4"],
                              "offsets": [0, 8, 16, 24, 32, 40, 44, 48, 52], "itemsize": 56})
STATE_KNOWN, STATE_SEEDED = 1, 2
_STATE_FIXED = struct.Struct("<IHHqqQqq")  # flags, last_flags, zero, last_ts, last_recv, last_seq, reason, since

# Flags of a top-N row: the canonical records' bit values (ROW_INVALID is FLAG_BOOK_INVALID).
ROW_INVALID, ROW_BAD_TS_RECV, ROW_CROSSED, ROW_TS_ESTIMATED = FLAG_BOOK_INVALID, BAD_TS_RECV, CROSSED, TS_ESTIMATED
LEVEL_DTYPE_PAIR = np.dtype([("price", "<i8"), ("qty", "<i8")])


def top_dtype(n):
    """The dtype of a top-n row (views/top{n}.npy): 32 + 32 n bytes."""
    return np.dtype([("ts_exchange", "<i8"), ("ts_recv", "<i8"), ("seq", "<u8"), ("flags", "<u4"), ("reason", "<u4"),
                     ("bid_price", "<i8", (n,)), ("bid_qty", "<i8", (n,)), ("ask_price", "<i8", (n,)), ("ask_qty", "<i8", (n,))])


class NoBookError(ValueError):
    """No snapshot run has given the partition a book by the instant asked; .first is the
    first instant with one (None when the partition has none)."""

    def __init__(self, msg, first):
        super().__init__(msg)
        self.first = first


def read_events_index(part_dir):
    """Read <part_dir>/index/events.idx: (anchors, records, stride).

    anchors is a structured array (record, depth, trades, bbo, flags): for each anchor
    record, how many depth updates, trades and bbo records come before it; the last anchor
    (ANCHOR_END) is at the end of the book with the totals.
    """
    path = os.path.join(part_dir, INDEX_DIR, EVENTS_INDEX_NAME)
    e, records, stride = _read_index(path, IDX_KIND_EVENTS, EVENTS_INDEX_DTYPE, IDX_MAX_EVENT_ENTRIES)
    a = e.copy()
    if not len(a) or a["record"][0] != 0 or a["record"][-1] != records or not a["flags"][-1] & ANCHOR_END:
        raise FormatError(f"{path}: offset {IDX_HEADER_SIZE}: anchors must run from record 0 to an end anchor at {records}")
    if len(a) > 1 and (np.diff(a["record"].astype(np.int64)) <= 0).any():
        raise FormatError(f"{path}: offset {IDX_HEADER_SIZE}: anchors out of order")
    return a, records, stride


def read_books_index(part_dir):
    """Read the table of <part_dir>/index/books.idx: (entries, records, stride, path).

    entries is a structured array (record, target, depth, min_ts, off, len, crc, bids, asks):
    checkpoint k holds the book as a replay of records [0, record) leaves it (read it with
    book_state); min_ts is the earliest time of a book event starting between it and the
    next one. Raises FileNotFoundError when the partition has none.
    """
    path = os.path.join(part_dir, INDEX_DIR, BOOKS_INDEX_NAME)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(IDX_HEADER_SIZE)
        if len(head) < IDX_HEADER_SIZE:
            raise FormatError(f"{path}: offset 0: truncated header ({len(head)} bytes)")
        magic, version, k, entry_size, count, records, stride, crc_entries, crc_header = _IDX_HDR.unpack_from(head)
        if magic != IDX_MAGIC or version != IDX_VERSION or crc32c(head[:44]) != crc_header:
            raise FormatError(f"{path}: offset 0: not a version {IDX_VERSION} index (magic, version or header checksum)")
        if k != IDX_KIND_BOOKS or entry_size != BOOKS_INDEX_DTYPE.itemsize:
            raise FormatError(f"{path}: offset 10: kind {k}, entry size {entry_size}: not a book index")
        if not 1 <= count <= IDX_MAX_BOOK_ENTRIES or IDX_HEADER_SIZE + count * entry_size > size:
            raise FormatError(f"{path}: offset 16: {count} entries in a file of {size} bytes")
        body = f.read(count * entry_size)
    if crc32c(body) != crc_entries:
        raise FormatError(f"{path}: offset {IDX_HEADER_SIZE}: entries checksum mismatch")
    e = np.frombuffer(body, dtype=BOOKS_INDEX_DTYPE, count=count).copy()
    rec = e["record"].astype(np.int64)
    payload = size - IDX_HEADER_SIZE - count * entry_size
    bad = (e["target"] > e["record"]) | (e["off"] + e["len"] > payload) | (e["len"] < _STATE_FIXED.size)
    bad[0] |= rec[0] != 0
    bad[1:] |= (rec[1:] <= rec[:-1]) | (rec[1:] >= records) | (e["target"][1:] <= e["record"][:-1])
    if bad.any():
        i = int(np.argmax(bad))
        raise FormatError(f"{path}: offset {IDX_HEADER_SIZE + i * entry_size}: checkpoint {i} out of order or out of the file")
    return e, records, stride, path


def _varints(b):
    """Every unsigned LEB128 varint of bytes b, as uint64 (the last one must be whole)."""
    a = np.frombuffer(b, dtype=np.uint8)
    ends = np.nonzero(a < 0x80)[0]
    if not len(a) or not len(ends) or ends[-1] != len(a) - 1:
        raise ValueError("truncated varint")
    starts = np.concatenate(([0], ends[:-1] + 1))
    group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    shift = (np.arange(len(a)) - starts[group]).astype(np.uint64) * np.uint64(7)
    if (shift > 63).any():
        raise ValueError("varint longer than 64 bits")
    return np.add.reduceat((a & 0x7F).astype(np.uint64) << shift, starts)


def _unzigzag(u):
    return ((u >> np.uint64(1)).astype(np.int64)) ^ -((u & np.uint64(1)).astype(np.int64))


def book_state(books, k):
    """Checkpoint k of read_books_index's result, decoded: (flags, reason, since, last, bids,
    asks), bids and asks LEVEL_DTYPE_PAIR arrays best first, last (ts_exchange, ts_recv,
    seq, flags) of the last book event applied."""
    e, _, _, path = books
    c = e[k]
    off = IDX_HEADER_SIZE + len(e) * BOOKS_INDEX_DTYPE.itemsize + int(c["off"])
    with open(path, "rb") as f:
        f.seek(off)
        b = f.read(int(c["len"]))
    if len(b) != int(c["len"]) or crc32c(b) != int(c["crc"]):
        raise FormatError(f"{path}: offset {off}: checkpoint {k}: state checksum mismatch")
    flags, last_flags, _, last_ts, last_recv, last_seq, reason, since = _STATE_FIXED.unpack_from(b)
    nb, na = int(c["bids"]), int(c["asks"])
    sides = []
    try:
        v = _varints(b[_STATE_FIXED.size:]) if nb + na else np.zeros(0, np.uint64)
        i = 0
        for n, ask in ((nb, False), (na, True)):
            out = np.zeros(n, dtype=LEVEL_DTYPE_PAIR)
            if n:
                p0, step, unit = int(_unzigzag(v[i:i + 1])[0]), v[i + 1], v[i + 2]
                d = v[i + 3:i + 2 + n].astype(np.int64) * np.int64(step)
                moves = np.concatenate(([0], np.cumsum(d)))
                out["price"] = p0 + moves if ask else p0 - moves
                out["qty"] = _unzigzag(v[i + 2 + n:i + 2 + 2 * n]) * np.int64(unit)
                i += 2 + 2 * n
            sides.append(out)
        if i != len(v):
            raise ValueError(f"{len(v) - i} values after the levels")
    except (ValueError, IndexError) as x:
        raise FormatError(f"{path}: offset {off}: checkpoint {k}: {x}") from None
    return flags, reason, since, (last_ts, last_recv, last_seq, last_flags), sides[0], sides[1]


def _checkpoint_for(pdir, n, t):
    """(record, limit, state) of the book index's checkpoint for the book at t, or None
    without a book index (or one of another length, or at record 0)."""
    try:
        books = read_books_index(pdir)
    except FileNotFoundError:
        return None
    e, records, _, _ = books
    if records != n:
        return None
    suffix = np.minimum.accumulate(e["min_ts"][::-1])[::-1]
    k = int(np.searchsorted(suffix, t, side="right")) - 1  # the last with suffix <= t
    if k <= 0:
        return None
    limit = int(e["target"][k + 1]) if k + 1 < len(e) else n
    return int(e["record"][k]), limit, book_state(books, k)


def _paths(path):
    """(book.q path, partition directory) of a book.q path or a partition directory."""
    if os.path.isdir(path):
        return os.path.join(path, "book.q"), path
    return path, os.path.dirname(os.path.abspath(path))


def _day(h):
    d = h["date"]
    if not d:
        return None
    start = int(np.datetime64(f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}", "ns").astype(np.int64))
    return start, start + 86400 * 10**9


def _time_bound(part_dir, n):
    """A function t -> one past the last record that can have an exchange time <= t."""
    try:
        base, records, _, thi = read_time_index(part_dir)
    except FileNotFoundError:
        return lambda t: n
    if records != n or not len(thi):
        return lambda t: n

    def bound(t):
        s = _floor_sec(t) - base
        return 0 if s < 0 else n if s >= len(thi) else min(int(thi[s]), n)
    return bound


class _Book:
    """One L2 book: ascending price lists per side (best bid last, best ask first)."""

    def __init__(self):
        self.bp, self.bq, self.ap, self.aq = [], [], [], []
        self.known = False     # a valid run seeded the book and no gap since
        self.seeded = False    # a valid run was applied
        self.reason = 0        # why unknown: a book_invalid reason, 0 when none was given
        self.since = 0
        self.last = (0, 0, 0, 0)  # ts_exchange, ts_recv, seq, flags of the last event applied

    def reset(self):
        self.bp, self.bq, self.ap, self.aq = [], [], [], []

    def seed(self, state):
        """Take a book index checkpoint's state (book_state)."""
        flags, self.reason, self.since, self.last, bids, asks = state
        self.known, self.seeded = bool(flags & STATE_KNOWN), bool(flags & STATE_SEEDED)
        self.bp, self.bq = bids["price"][::-1].tolist(), bids["qty"][::-1].tolist()
        self.ap, self.aq = asks["price"].tolist(), asks["qty"].tolist()

    def set(self, bid, price, qty):
        ps, qs = (self.bp, self.bq) if bid else (self.ap, self.aq)
        i = bisect.bisect_left(ps, price)
        if i < len(ps) and ps[i] == price:
            if qty == 0:
                del ps[i], qs[i]
            else:
                qs[i] = qty
        elif qty != 0:
            ps.insert(i, price)
            qs.insert(i, qty)

    def apply(self, t, fl, ts, recv, seq, price, qty):
        """Apply one record; True when it ends a depth update (a row)."""
        if t == SNAPSHOT_BEGIN:
            self.reset()
            if not fl & FLAG_BOOK_INVALID:
                self.known, self.seeded, self.reason, self.since = True, True, 0, 0
            elif self.known:
                self.known, self.reason, self.since = False, 0, ts
        elif t == SNAPSHOT_END:
            self.last = (ts, recv, seq, fl)
        elif t == BOOK_INVALID:
            self.reset()
            self.known, self.reason, self.since = False, qty, ts
            self.last = (ts, recv, seq, fl)
        elif t == LEVEL:
            if self.known and fl & (BID | ASK):
                self.set(not fl & ASK, price, qty)  # both sides flagged (never written): an ask
            if not fl & SNAPSHOT and fl & LAST:
                self.last = (ts, recv, seq, fl)
                return True
        return False

    def crossed(self):
        return bool(self.bp and self.ap and self.bp[-1] >= self.ap[0])

    def row_flags(self):
        flags = self.last[3] & (BAD_TS_RECV | TS_ESTIMATED)
        if not self.known:
            return flags | ROW_INVALID, self.reason
        return flags | (ROW_CROSSED if self.crossed() else 0), 0

    def put_row(self, row, ts, n):
        row["ts_exchange"], row["ts_recv"], row["seq"] = ts, self.last[1], self.last[2]
        row["flags"], row["reason"] = self.row_flags()
        if not self.known:
            return  # rows start zeroed
        k = min(n, len(self.bp))
        row["bid_price"][:k] = self.bp[:-k - 1:-1]
        row["bid_qty"][:k] = self.bq[:-k - 1:-1]
        k = min(n, len(self.ap))
        row["ask_price"][:k] = self.ap[:k]
        row["ask_qty"][:k] = self.aq[:k]


def _is_book(t):
    return t == LEVEL or t == SNAPSHOT_BEGIN or t == SNAPSHOT_END or t == BOOK_INVALID


def _ends_event(t, fl):
    return (t == LEVEL and not fl & SNAPSHOT and fl & LAST) or t == SNAPSHOT_END or t == BOOK_INVALID


_CHUNK = 1 << 16


def _columns(book, lo, hi):
    """Records [lo, hi) in chunks, as Python lists of the fields a replay needs."""
    for a in range(lo, hi, _CHUNK):
        c = book[a:min(hi, a + _CHUNK)]
        yield (a, c["type_id"].tolist(), c["flags"].tolist(), c["ts_exchange"].tolist(), c["ts_recv"].tolist(),
               c["seq"].tolist(), c["price"].tolist(), c["qty"].tolist())


class _Cutter:
    """Replays a book up to instants that only move forward (the Go package's cutter):
    events pulled past an instant wait until a later event at or before some instant makes
    them part of the book; the time index bounds how far the pull goes."""

    def __init__(self, book, start, bound):
        self.b = _Book()
        self.src = self._records(book, start)
        self.bound = bound
        self.pos = start
        self.pending = []     # [ts, [records]] not applied yet
        self.cur = None       # event being pulled into pending
        self.streaming = False
        self.done = False
        self.applied = start  # one past the last record applied

    @staticmethod
    def _records(book, start):
        for a, t, fl, ts, rv, sq, pr, qt in _columns(book, start, len(book)):
            yield from zip(t, fl, ts, rv, sq, pr, qt)

    def _flush(self, t):
        k = -1
        for j, e in enumerate(self.pending):
            if e[0] <= t:
                k = j
        for e in self.pending[:k + 1]:
            for r in e[1]:
                self.b.apply(*r)
            self.applied = e[2]
        del self.pending[:k + 1]

    def advance(self, t):
        self._flush(t)
        hi = self.bound(t)
        while not self.done and (self.pos < hi or self.streaming or (self.cur is not None and self.cur[0] <= t)):
            r = next(self.src, None)
            if r is None:
                self.done = True
                break
            self.pos += 1
            typ, fl = r[0], r[1]
            if not _is_book(typ):
                continue
            end = _ends_event(typ, fl)
            if self.streaming:
                self.b.apply(*r)
                self.applied = self.pos
                self.streaming = not end
            elif self.cur is not None:
                self.cur[1].append(r)
                if end:
                    self._finish(t)
            elif not self.pending and r[2] <= t:
                self.b.apply(*r)
                self.applied = self.pos
                self.streaming = not end
            else:
                self.cur = [r[2], [r]]
                if end:
                    self._finish(t)
        if self.done and self.cur is not None and self.cur[0] <= t:
            # The book ends inside this event: the last one at or before t, applied as far
            # as it goes (as one applied while pulled would be).
            self._finish(t)

    def _finish(self, t):
        self.cur.append(self.pos)  # [ts, records, end]
        self.pending.append(self.cur)
        self.cur = None
        if self.pending[-1][0] <= t:
            self._flush(t)


def _start_record(runs, t):
    """The last valid snapshot run (by record) at or before t, or None."""
    ok = (runs["ts_exchange"] <= t) & ((runs["flags"] & FLAG_BOOK_INVALID) == 0)
    idx = np.nonzero(ok)[0]
    return int(runs["record"][idx[-1]]) if len(idx) else None


def _first_valid(runs, from_record=0):
    ok = ((runs["flags"] & FLAG_BOOK_INVALID) == 0) & (runs["record"] >= from_record)
    idx = np.nonzero(ok)[0]
    return (int(runs["ts_exchange"][idx[0]]), int(runs["record"][idx[0]])) if len(idx) else (None, None)


class BookState:
    """The book at one instant: exact fixed-point ints (price_decimals, qty_decimals)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return (f"BookState(time={self.time}, valid={self.valid}, reason={self.reason}, crossed={self.crossed}, "
                f"bids={len(self.bids)} levels, asks={len(self.asks)} levels)")


def book_at(path, t, depth=None):
    """The full L2 book of a partition at exchange time t (ns or anything to_ns takes).

    Returns a BookState: time, as_of (exchange time of the last book event applied),
    ts_recv, seq, valid, reason (a book_invalid reason code when not valid, 0 when none
    was given), invalid_since, crossed, bids and asks (LEVEL_DTYPE_PAIR arrays, best first,
    up to depth levels a side), bid_levels, ask_levels, price_decimals, qty_decimals.
    Raises NoBookError before the partition's first snapshot run and ValueError for an
    instant outside the partition's day. path: book.q or its partition directory.
    """
    t = to_ns(t)
    bpath, pdir = _paths(path)
    h = read_header(bpath)
    book = open_book(bpath, h)
    day = _day(h)
    if day and not day[0] <= t < day[1]:
        raise ValueError(f"{bpath}: {_fmt(t)} is outside the partition's day {h['date']}")
    runs = snapshots(bpath)
    bound = _time_bound(pdir, len(book))
    ck = _checkpoint_for(pdir, len(book), t)
    if ck is not None:
        # From the book index's checkpoint for t: less than a stride of records to replay.
        start, limit, state = ck
        c = _Cutter(book, start, lambda x: min(bound(x), limit))
        c.b.seed(state)
    else:
        start = _start_record(runs, t)
        c = _Cutter(book, start or 0, bound)
    c.advance(t)
    b = c.b
    if not b.seeded:  # before the first valid run (an invalid stretch before it included)
        first, _ = _first_valid(runs, c.applied)
        raise NoBookError(_no_book(bpath, t, first), first)
    d = None if depth is None or depth <= 0 else depth

    def side(ps, qs, best_last):
        if best_last:
            ps, qs = ps[::-1], qs[::-1]
        out = np.zeros(len(ps[:d]), dtype=LEVEL_DTYPE_PAIR)
        out["price"], out["qty"] = ps[:d], qs[:d]
        return out
    known = b.known
    return BookState(time=t, as_of=b.last[0], ts_recv=b.last[1], seq=b.last[2], valid=known,
                     reason=0 if known else b.reason, invalid_since=0 if known else b.since,
                     crossed=known and b.crossed(),
                     bids=side(b.bp, b.bq, True) if known else np.zeros(0, LEVEL_DTYPE_PAIR),
                     asks=side(b.ap, b.aq, False) if known else np.zeros(0, LEVEL_DTYPE_PAIR),
                     bid_levels=len(b.bp) if known else 0, ask_levels=len(b.ap) if known else 0,
                     price_decimals=h["price_decimals"], qty_decimals=h["qty_decimals"])


def _fmt(ns):
    return str(np.datetime64(int(ns), "ns")) + "Z"


def _no_book(path, t, first):
    if first is None:
        return f"{path}: no book at {_fmt(t)}: the partition has no valid snapshot run"
    return f"{path}: no book at {_fmt(t)}: the first instant with a book is {_fmt(first)}"


def top_n(path, n, start=None, end=None, every=None):
    """Top-n rows of a partition as a top_dtype(n) structured array (to_pandas works on it).

    Without every: one row per applied depth update whose exchange time is in [start, end),
    the book after it (exactly the rows of views/top{n}.npy, which is read when the mount
    serves it). With every (ns, or a numpy.timedelta64 / pandas Timedelta / "100ms"-style
    string): one row per grid point start, start+every, ... before end, the book at that
    instant (rows repeat while nothing changes; points before the first book and inside
    invalid stretches are flagged ROW_INVALID). start defaults to the first grid point at or
    after the partition's first record, end to one past its last record's time.
    """
    bpath, pdir = _paths(path)
    h = read_header(bpath)
    book = open_book(bpath, h)
    lo = -(1 << 63) if start is None else to_ns(start)
    hi = (1 << 63) - 1 if end is None else to_ns(end)
    if n < 1:
        raise ValueError(f"top_n: n must be at least 1, not {n}")
    if every is None:
        view = os.path.join(pdir, "views", f"top{n}.npy")
        if os.path.exists(view):
            rows = np.load(view, mmap_mode="r")
            if start is None and end is None:
                return rows
            ts = rows["ts_exchange"]
            return np.array(rows[(ts >= lo) & (ts < hi)])
        return _event_rows(book, pdir, n, lo, hi)
    step = _to_step(every)
    if not len(book):
        return np.zeros(0, dtype=top_dtype(n))
    if start is None:
        first = int(book["ts_exchange"].min())
        lo = -(-first // step) * step
    if end is None:
        hi = int(book["ts_exchange"].max()) + 1
    ck = _checkpoint_for(pdir, len(book), lo)
    if ck is not None:  # from the book index's checkpoint for the first point
        c = _Cutter(book, ck[0], _time_bound(pdir, len(book)))
        c.b.seed(ck[2])
    else:
        s = _start_record(snapshots(bpath), lo)
        c = _Cutter(book, s if s is not None else 0, _time_bound(pdir, len(book)))
    count = max(0, -(-(hi - lo) // step))
    out = np.zeros(count, dtype=top_dtype(n))
    for i in range(count):
        g = lo + i * step
        c.advance(g)
        c.b.put_row(out[i], g, n)
    return out


def _to_step(every):
    if isinstance(every, (int, np.integer)) and not isinstance(every, bool):
        step = int(every)
    elif isinstance(every, np.timedelta64):
        step = int(every.astype("timedelta64[ns]").astype(np.int64))
    else:
        import pandas as pd
        step = int(pd.Timedelta(every).value)
    if step <= 0:
        raise ValueError(f"every must be positive, not {every!r}")
    return step


def _event_rows(book, pdir, n, lo, hi):
    """Event rows by replaying book.q (no view file at hand)."""
    b = _Book()
    out, rows = [], None
    size = 4096
    k = 0
    # start at the last valid run before the first record that can be in range
    first = 0
    if lo > -(1 << 63):
        try:
            base, records, tlo, _ = read_time_index(pdir)
            if records == len(book) and len(tlo):
                s = _floor_sec(lo) - base
                rec = 0 if s < 0 else records if s >= len(tlo) else int(tlo[s])
                runs = snapshots(os.path.join(pdir, "book.q"))
                ok = (runs["record"] <= rec) & ((runs["flags"] & FLAG_BOOK_INVALID) == 0)
                idx = np.nonzero(ok)[0]
                first = int(runs["record"][idx[-1]]) if len(idx) else 0
        except FileNotFoundError:
            pass
    for a, t, fl, ts, rv, sq, pr, qt in _columns(book, first, len(book)):
        for r in zip(t, fl, ts, rv, sq, pr, qt):
            if b.apply(*r) and lo <= r[2] < hi:
                if rows is None or k == len(rows):
                    if rows is not None:
                        out.append(rows)
                    rows, k = np.zeros(size, dtype=top_dtype(n)), 0
                    size = min(size * 2, 1 << 20)
                b.put_row(rows[k], r[2], n)
                k += 1
    if rows is not None:
        out.append(rows[:k])
    return np.concatenate(out) if out else np.zeros(0, dtype=top_dtype(n))


REPLAY_DTYPE = np.dtype(BOOK_DTYPE.descr + [("source", "<u2")])


def replay(paths, start=None, end=None, chunk=1 << 16):
    """Records of several partitions (symbols, venues) merged by exchange time, for
    multi-asset backtests; yields REPLAY_DTYPE arrays (the record fields, and source: the
    index in paths) in bounded memory.

    Each partition's records keep their file order (the refinery's processing order, which
    a book replay needs): the merge orders them by the running maximum of each
    partition's exchange times, ties by the order of paths, then file order. That is what
    a streaming merge of the partitions by their next record's time gives. start and end
    select records with start <= ts_exchange < end (each partition seeks with its index).
    """
    paths = list(paths)
    if len(paths) > 0xFFFF:
        raise ValueError("replay: at most 65535 partitions at once")
    lo = None if start is None else to_ns(start)
    hi = None if end is None else to_ns(end)
    srcs = []
    for i, p in enumerate(paths):
        bpath, _ = _paths(p)
        if lo is None and hi is None:
            recs = open_book(bpath)
        else:
            recs = read(bpath, -(1 << 63) if lo is None else lo, (1 << 63) - 1 if hi is None else hi)
        srcs.append({"recs": recs, "pos": 0, "i": i, "buf": None, "keys": None, "run": -(1 << 63)})

    def refill(s):
        a = s["pos"]
        c = s["recs"][a:a + chunk]
        s["pos"] = a + len(c)
        if not len(c):
            return False
        keys = np.maximum.accumulate(np.maximum(c["ts_exchange"], s["run"]))
        s["run"] = int(keys[-1])
        out = np.zeros(len(c), dtype=REPLAY_DTYPE)
        for name in BOOK_DTYPE.names:
            out[name] = c[name]
        out["source"] = s["i"]
        if s["buf"] is None or not len(s["buf"]):
            s["buf"], s["keys"] = out, keys
        else:
            s["buf"], s["keys"] = np.concatenate([s["buf"], out]), np.concatenate([s["keys"], keys])
        return True

    live = []
    for s in srcs:
        if refill(s):
            live.append(s)
    done = []
    while live:
        # Everything keyed below the smallest last key of the live sources can go: their
        # keys only grow.
        m = min(live, key=lambda s: (s["keys"][-1], s["i"]))
        horizon = int(m["keys"][-1])
        yield from _emit(live + done, horizon)
        done = [s for s in done if s["buf"] is not None and len(s["buf"])]
        if not refill(m):
            live.remove(m)
            if m["buf"] is not None and len(m["buf"]):
                done.append(m)
    yield from _emit(done, None)


def _emit(srcs, horizon):
    """Merge and yield the buffered records keyed below horizon (all when None)."""
    parts, keys = [], []
    for s in srcs:
        if s["buf"] is None or not len(s["buf"]):
            continue
        k = len(s["keys"]) if horizon is None else int(np.searchsorted(s["keys"], horizon, side="left"))
        if k:
            parts.append(s["buf"][:k])
            keys.append(s["keys"][:k])
            s["buf"], s["keys"] = s["buf"][k:], s["keys"][k:]
    if not parts:
        return
    recs, ks = np.concatenate(parts), np.concatenate(keys)
    # stable: key, then source (paths order), then file order (concatenation order)
    order = np.lexsort((np.arange(len(recs)), recs["source"], ks))
    yield recs[order]
