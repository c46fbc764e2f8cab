"""Read Chronicle `.q` book files with numpy alone (pandas optional).

    import chronicle_q
    book = chronicle_q.open_book("/chronicle/v1/binance-perp/eth-usdt/2024-08-08/book.q")
    levels = book[book["type_id"] == chronicle_q.LEVEL]
    df = chronicle_q.to_pandas(book)          # needs pandas

The byte layout is specified in docs/format/q.md; this module mirrors it.
"""

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
