#!/usr/bin/python3
"""Check a partition's research views against an independent rebuild of its book.

    /usr/bin/python3 python/check_views.py --book STAGED/book.q --part MOUNT1/v1/.../DATE [--part MOUNT2/...] \
        [--instants 30] [--seed 7]

The rebuild reads book.q's records with numpy (its own header parse and memmap: nothing of
Chronicle's Go code, nor chronicle_q's replay) and replays them with dicts, the way
docs/format/views.md defines the book: a valid snapshot run replaces the book, a run
flagged BOOK_INVALID or a book_invalid record makes it unknown, a depth update's level
records change it, and a row follows every depth update (a non-snapshot level record
flagged LAST). It then checks, for every --part (the same partition through each tier of
the mount):

  - views/top{1,10,25}.npy load with numpy.load(mmap_mode="r") and every row equals the
    rebuilt book's top N after that depth update (prices, sizes, zeros past the last
    level, the invalid and crossed flags, the reason, the update's times and id);
  - views/trades.npy and views/bbo.npy hold exactly the trade and bbo records;
  - chronicle_q.book_at at random instants (seed printed) equals the rebuilt book at that
    instant (every book event up to the last one at or before it).

It exits 1 naming the first difference.
"""

import argparse
import heapq
import os
import random
import struct
import sys

import numpy as np

LEVEL, TRADE, BBO, SNAP_BEGIN, SNAP_END, INVALID = 1, 2, 3, 4, 5, 6
BID, ASK, SNAPSHOT, LAST, BOOK_INVALID, BAD_TS_RECV, CROSSED, TS_ESTIMATED = 1, 2, 4, 8, 16, 32, 64, 128
DTYPE = np.dtype([("type_id", "<u2"), ("flags", "<u2"), ("symbol_id", "<u4"), ("ts_exchange", "<i8"), ("ts_recv", "<i8"),
                  ("seq", "<u8"), ("price", "<i8"), ("qty", "<i8"), ("aux0", "<i8"), ("aux1", "<i8")])
NS = (1, 10, 25)


def records(path):
    with open(path, "rb") as f:
        h = f.read(64)
    if h[:8] != b"\x89CHRONQ\n":
        raise SystemExit(f"{path}: not a .q file")
    header_size, = struct.unpack_from("<I", h, 12)
    committed, = struct.unpack_from("<Q", h, 24)
    n = (committed - header_size) // 64
    return np.memmap(path, dtype=DTYPE, mode="r", offset=header_size, shape=(n,))


class Book:
    def __init__(self):
        self.bids, self.asks = {}, {}
        self.known = self.seeded = False
        self.reason = 0
        self.last = (0, 0, 0, 0)

    def top(self, n):
        b = heapq.nlargest(n, self.bids)
        a = heapq.nsmallest(n, self.asks)
        return b, [self.bids[p] for p in b], a, [self.asks[p] for p in a]

    def crossed(self):
        return bool(self.bids) and bool(self.asks) and max(self.bids) >= min(self.asks)


def events(recs):
    """Book events in file order: (time of the first record, [records], ends a depth update)."""
    cols = [recs[c].tolist() for c in ("type_id", "flags", "ts_exchange", "ts_recv", "seq", "price", "qty")]
    cur = None
    for r in zip(*cols):
        t, fl = r[0], r[1]
        if t not in (LEVEL, SNAP_BEGIN, SNAP_END, INVALID):
            continue
        if cur is None:
            cur = [r[2], []]
        cur[1].append(r)
        depth = t == LEVEL and not fl & SNAPSHOT and fl & LAST
        if depth or t in (SNAP_END, INVALID):
            yield cur[0], cur[1], bool(depth)
            cur = None
    if cur is not None:
        yield cur[0], cur[1], False


def apply(book, evrecs):
    for t, fl, ts, recv, seq, price, qty in evrecs:
        if t == SNAP_BEGIN:
            book.bids, book.asks = {}, {}
            if not fl & BOOK_INVALID:
                book.known, book.seeded, book.reason = True, True, 0
            elif book.known:
                book.known, book.reason = False, 0
        elif t == INVALID:
            book.bids, book.asks = {}, {}
            book.known, book.reason = False, qty
        elif t == LEVEL and book.known and fl & (BID | ASK):
            side = book.asks if fl & ASK else book.bids  # both flagged (never written): an ask
            if qty == 0:
                side.pop(price, None)
            else:
                side[price] = qty
    t, fl, ts, recv, seq = evrecs[-1][:5]
    if t != SNAP_BEGIN and not (t == LEVEL and fl & SNAPSHOT):
        book.last = (ts, recv, seq, fl)


def expected_rows(recs):
    """Every top-25 row (as arrays) and every book event time, from the rebuild."""
    book = Book()
    rows = {k: [] for k in ("ts_exchange", "ts_recv", "seq", "flags", "reason", "bid_price", "bid_qty", "ask_price", "ask_qty")}
    times = []
    for ts, evrecs, depth in events(recs):
        times.append(ts)
        apply(book, evrecs)
        if not depth:
            continue
        last = book.last
        flags = last[3] & (BAD_TS_RECV | TS_ESTIMATED)
        reason = 0
        bp, bq, ap, aq = [], [], [], []
        if not book.known:
            flags |= BOOK_INVALID
            reason = book.reason
        else:
            if book.crossed():
                flags |= CROSSED
            bp, bq, ap, aq = book.top(25)
        pad = lambda v: v + [0] * (25 - len(v))
        for k, v in (("ts_exchange", evrecs[-1][2]), ("ts_recv", last[1]), ("seq", last[2]), ("flags", flags), ("reason", reason),
                     ("bid_price", pad(bp)), ("bid_qty", pad(bq)), ("ask_price", pad(ap)), ("ask_qty", pad(aq))):
            rows[k].append(v)
    out = {k: np.array(v, dtype=np.uint64 if k == "seq" else np.int64) for k, v in rows.items()}
    return out, times


def fail(msg):
    print("check_views: " + msg, file=sys.stderr)
    sys.exit(1)


def check_views(part, recs, want):
    n = len(want["ts_exchange"])
    for N in NS:
        path = os.path.join(part, "views", f"top{N}.npy")
        got = np.load(path, mmap_mode="r")
        if got.shape != (n,):
            fail(f"{path}: {got.shape[0]} rows, the rebuild has {n} depth updates")
        for k in ("ts_exchange", "ts_recv", "seq", "flags", "reason"):
            bad = np.nonzero(np.asarray(got[k]).astype(want[k].dtype) != want[k])[0]
            if len(bad):
                i = int(bad[0])
                fail(f"{path}: row {i}: {k} {got[k][i]}, rebuilt {want[k][i]}")
        for k in ("bid_price", "bid_qty", "ask_price", "ask_qty"):
            g, w = np.asarray(got[k]), want[k][:, :N]
            bad = np.nonzero((g != w).any(axis=1))[0]
            if len(bad):
                i = int(bad[0])
                fail(f"{path}: row {i} ({got['ts_exchange'][i]}): {k} {g[i].tolist()}, rebuilt {w[i].tolist()}")
    for name, typ in (("trades.npy", TRADE), ("bbo.npy", BBO)):
        path = os.path.join(part, "views", name)
        got = np.load(path, mmap_mode="r")
        w = recs[recs["type_id"] == typ]
        if got.shape != w.shape or got.tobytes() != w.tobytes():
            fail(f"{path}: {got.shape[0]} rows differ from the {len(w)} {name[:-4]} records of book.q")
    return n


def check_book_at(parts, recs, times, k, seed):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import chronicle_q as q
    if any(b < a for a, b in zip(times, times[1:])):
        fail("book events out of time order: the rebuild's instant rule needs them in order")
    lo, hi = int(recs["ts_exchange"].min()), int(recs["ts_exchange"].max())
    rng = random.Random(seed)
    ts = sorted(rng.randrange(lo - 10**9, hi + 10**9) for _ in range(k))
    day = q._day(q.read_header(os.path.join(parts[0], "book.q")))
    book, evs = Book(), events(recs)
    pending = next(evs, None)
    checked = 0
    for i, t in enumerate(ts):
        while pending is not None and pending[0] <= t:
            apply(book, pending[1])
            pending = next(evs, None)
        part = parts[i % len(parts)]
        try:
            got = q.book_at(part, t)
        except q.NoBookError as e:
            if book.seeded:
                fail(f"{part}: book_at({t}): {e}, the rebuild has a book")
            continue
        except ValueError as e:
            if day and not day[0] <= t < day[1]:
                continue
            fail(f"{part}: book_at({t}): {e}")
        if not book.seeded:
            fail(f"{part}: book_at({t}): a book (valid {got.valid}) before the first valid snapshot run")
        if got.valid != book.known or got.reason != (0 if book.known else book.reason):
            fail(f"{part}: book_at({t}): valid {got.valid} reason {got.reason}, rebuilt {book.known} {book.reason}")
        if book.known:
            wb = sorted(book.bids.items(), reverse=True)
            wa = sorted(book.asks.items())
            if [tuple(x) for x in got.bids.tolist()] != wb or [tuple(x) for x in got.asks.tolist()] != wa:
                fail(f"{part}: book_at({t}): {len(got.bids)}/{len(got.asks)} levels differ from the rebuilt {len(wb)}/{len(wa)}")
        checked += 1
    return checked


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--book", required=True, help="the partition's book.q (any copy)")
    ap.add_argument("--part", action="append", required=True, help="the partition's directory through the mount (repeat per tier)")
    ap.add_argument("--instants", type=int, default=30)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    recs = records(a.book)
    want, times = expected_rows(recs)
    rows = 0
    for part in a.part:
        rows = check_views(part, recs, want)
    checked = check_book_at(a.part, recs, times, a.instants, seed) if a.instants else 0
    print(f"check_views: {a.book}: {rows} depth updates; top 1/10/25, trades and bbo agree in {len(a.part)} views; "
          f"book_at agrees at {checked} of {a.instants} random instants (seed {seed})")


if __name__ == "__main__":
    main()
