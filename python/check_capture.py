#!/usr/bin/env python3
"""Check Chronicle partitions against the Binance, OKX or Kraken capture they were refined from.

    /usr/bin/python3 python/check_capture.py --venue binance-perp \\
        --symbol-dir /chronicle/v1/binance-perp/eth-usdt capture.jsonl.gz [more.jsonl.gz ...]
    /usr/bin/python3 python/check_capture.py --venue binance-perp \\
        --symbol SUSHIUSDT=/books/v1/binance-perp/sushi-usdt --symbol AKROUSDT=... cryptofeed.ws.txt

This is an independent implementation: it shares no code or logic with Chronicle's Go
refinery. It rebuilds every symbol's order book from the capture by Binance's documented
local-book rules, then reads the partitions' book.q files with chronicle_q (numpy) and
meta.json, and checks per UTC date:

  a. applied depth updates (and their ids and times) and trades equal the depth events
     (non-snapshot level records flagged LAST) and trade records of book.q, and meta.json;
  b. the book after the date's last applied update equals the one replayed from book.q;
  c. every valid snapshot run equals the independent book at the update it names (its
     seq), and the book replayed from the records before it;
  d. bookTicker self-checks (a ticker whose u is an applied update's u) and mismatches
     equal meta.json's;
  e. every record's exchange time lies in its partition's UTC date.

Book rules (Binance "how to manage a local order book correctly"):
  futures (binance-perp, binance-coinm): buffer depth updates until the REST snapshot
    (lastUpdateId L); drop u < L; the first applied has U <= L <= u; each later one has
    pu == the previous u, else a gap (book unknown until the next snapshot).
  spot (binance-spot): no pu; drop u < L; the first applied has U <= L+1 and u >= L;
    later ones chain by U == previous u + 1.
  Quantities are absolute, 0 deletes the level (deleting an unknown level is normal).
Prices and quantities are compared exactly, as decimal.Decimal, never as floats.

OKX (--venue okx) and Kraken (--venue kraken-spot), from their cryptofeed logs: books start
with the websocket snapshot; updates set absolute sizes (0 deletes); OKX keeps 400 levels a
side, Kraken the subscribed depth (book-N), dropping what falls past it; after every message
that carries one, the exchange's checksum is recomputed here from the strings as received
(OKX: the best 25 bids and asks interleaved "px:sz:px:sz...", CRC32 as a signed integer;
Kraken: the best 10 asks then bids, each price and volume with the point and leading zeros
removed, concatenated, CRC32 unsigned) and must match; then per partition: applied updates,
trades and tickers equal book.q's and meta.json's, meta.json's checksum checks equal the
messages checked here with no mismatch, and the book after the last update equals book.q's
replay (every snapshot run equal to the replay before it).

Capture formats: `<recv ns> <json>` lines (gzip or plain), the json a combined-stream
envelope or a REST depth snapshot; cryptofeed pairs X.ws.txt (`<unix s>: <json>`) with
X.http.txt (`<url> -> <unix s>: <snapshot>`), merged by receive time. Several files given
together are one stream, in order.

Exit status: 0 when everything agrees, 1 on any disagreement, 2 on bad usage or input.
"""

import argparse
import datetime
import gzip
import json
import os
import re
import sys
import zlib
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chronicle_q as cq  # noqa: E402

FUTURES_VENUES = ("binance-perp", "binance-coinm")
SPOT_VENUES = ("binance-spot",)
SUBSCRIBED_VENUES = ("okx", "kraken-spot")
NS_PER_DAY = 86400 * 10**9
EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()

# event tuples, per symbol, in stream order
SNAP, DEPTH, TRADE, TICKER = "snapshot", "depth", "trade", "ticker"


class InputError(Exception):
    """The capture or the arguments cannot be used."""


# --- decimals and dates --------------------------------------------------------------

_DEC = {}


def dec(s):
    """Exact Decimal of a price/quantity string (cached: the same strings repeat a lot)."""
    d = _DEC.get(s)
    if d is None:
        d = Decimal(s)
        if not d.is_finite():
            raise InputError(f"not a number: {s!r}")
        _DEC[s] = d
    return d


def fmt_dec(d):
    """A price for people: trailing zeros dropped, but at least two decimals."""
    if d is None:
        return "-"
    s = format(d.normalize(), "f")
    whole, _, frac = s.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def date_of_ms(ms):
    return datetime.date.fromordinal(EPOCH_ORDINAL + ms // 86400000).isoformat()


def day_start_ns(date):
    return (datetime.date.fromisoformat(date).toordinal() - EPOCH_ORDINAL) * NS_PER_DAY


def n(x):
    return f"{x:,}"


# --- reading captures ------------------------------------------------------------------

def open_text(path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gz else open(path, "r", encoding="utf-8")


def secs_to_ns(s):
    return int(Decimal(s) * 10**9)


class Capture:
    """All messages of one capture (several files are one stream), grouped by symbol."""

    def __init__(self):
        self.events = {}     # symbol -> list of event tuples in stream order
        self.counts = {}     # (symbol, kind) -> messages
        self.other = 0       # messages of streams not checked (kline, partial depth ...)
        self.messages = 0
        self.unnamed = []    # REST snapshots that do not name their symbol: (position, event)
        self.order = 0

    def add(self, sym, ev):
        if sym is None:  # a REST snapshot without symbol: resolved once the streams are known
            self.unnamed.append((self.order, ev))
        else:
            self.events.setdefault(sym, []).append((self.order, ev))
        self.order += 1
        kind = ev[0]
        self.counts[(sym, kind)] = self.counts.get((sym, kind), 0) + 1

    def message(self, obj, recv_ns, where, snap_symbol=None):
        self.messages += 1
        if "stream" in obj and "data" in obj:
            stream, d = obj["stream"], obj["data"]
            suffix = stream.split("@", 1)[1] if "@" in stream else ""
            sym = str(d.get("s", stream.split("@", 1)[0])).upper()
            if re.fullmatch(r"depth(@\d+ms)?", suffix):
                self.add(sym, (DEPTH, int(d["U"]), int(d["u"]), int(d["pu"]) if "pu" in d else None,
                               int(d["E"]), d["b"], d["a"], where))
            elif suffix == "trade":
                m = d["m"]
                self.add(sym, (TRADE, "trade", int(d["T"]), int(d["t"]), None, None, d["p"], d["q"], m, where))
            elif suffix == "aggTrade":
                m = d["m"]
                self.add(sym, (TRADE, "aggTrade", int(d["T"]), int(d["a"]), int(d["f"]), int(d["l"]),
                               d["p"], d["q"], m, where))
            elif suffix == "bookTicker":
                self.add(sym, (TICKER, int(d["u"]), d["b"], d["B"], d["a"], d["A"], where))
            else:
                self.other += 1
        elif "lastUpdateId" in obj:
            sym = snap_symbol or obj.get("symbol")
            self.add(sym.upper() if sym else None,
                     (SNAP, int(obj["lastUpdateId"]), obj["bids"], obj["asks"], recv_ns, where))
        else:
            self.other += 1

    def read_jsonl(self, path):
        with open_text(path) as f:
            for ln, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                head, sep, body = line.partition(" ")
                try:
                    recv = int(head)
                    obj = json.loads(body)
                except ValueError as e:
                    raise InputError(f"{path}:{ln}: not `<recv ns> <json>`: {e}") from None
                self.message(obj, recv, f"{os.path.basename(path)}:{ln}")

    def read_cryptofeed(self, ws_path, http_path):
        snaps = []
        if http_path:
            with open_text(http_path) as f:
                for ln, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        url, rest = line.split(" -> ", 1)
                        ts, body = rest.split(": ", 1)
                        obj = json.loads(body)
                        sym = parse_qs(urlparse(url).query)["symbol"][0]
                        snaps.append((secs_to_ns(ts), obj, sym, f"{os.path.basename(http_path)}:{ln}"))
                    except (ValueError, KeyError, IndexError) as e:
                        raise InputError(f"{http_path}:{ln}: not `<url> -> <unix s>: <json>`: {e}") from None
        snaps.sort(key=lambda s: s[0])
        k = 0
        with open_text(ws_path) as f:
            for ln, line in enumerate(f, 1):
                line = line.strip()
                if not line or " <-> " in line:  # the connection line
                    continue
                try:
                    ts, body = line.split(": ", 1)
                    recv = secs_to_ns(ts)
                    obj = json.loads(body)
                except ValueError as e:
                    raise InputError(f"{ws_path}:{ln}: not `<unix s>: <json>`: {e}") from None
                # a REST snapshot applies at its receive time: before later websocket messages
                while k < len(snaps) and snaps[k][0] <= recv:
                    self.message(snaps[k][1], snaps[k][0], snaps[k][3], snap_symbol=snaps[k][2])
                    k += 1
                self.message(obj, recv, f"{os.path.basename(ws_path)}:{ln}")
        for s in snaps[k:]:
            self.message(s[1], s[0], s[3], snap_symbol=s[2])

    def finish(self):
        """Give unnamed REST snapshots the capture's one depth symbol, then order by stream."""
        if self.unnamed:
            syms = sorted({s for (s, kind) in self.counts if s and kind == DEPTH})
            if len(syms) != 1:
                raise InputError(f"{len(self.unnamed)} REST snapshot(s) do not name their symbol and the "
                                 f"capture's depth streams are {syms or 'none'}")
            self.events.setdefault(syms[0], []).extend(self.unnamed)
            self.counts[(syms[0], SNAP)] = self.counts.get((syms[0], SNAP), 0) + self.counts.pop((None, SNAP))
            self.unnamed = []
        for sym in self.events:
            self.events[sym] = [ev for _, ev in sorted(self.events[sym], key=lambda x: x[0])]


def read_capture(paths):
    cap = Capture()
    given = set(os.path.abspath(p) for p in paths)
    for p in paths:
        if p.endswith(".http.txt"):
            ws = p[:-len(".http.txt")] + ".ws.txt"
            if os.path.abspath(ws) in given:
                continue  # read with its ws file
            raise InputError(f"{p}: a cryptofeed REST file needs its websocket file {ws} too")
        if p.endswith(".ws.txt"):
            http = p[:-len(".ws.txt")] + ".http.txt"
            cap.read_cryptofeed(p, http if os.path.exists(http) else None)
        else:
            cap.read_jsonl(p)
    cap.finish()
    return cap


# --- the independent book ----------------------------------------------------------------

def sequence(events, spot):
    """Apply Binance's sequencing rules to one symbol's stream.

    Returns (actions, info): actions in order are ("seed", snapshot event), ("apply", depth
    event) and ("gap", depth event, why); info counts stale drops, gaps and ignored snapshots.
    """
    actions, info = [], {"stale": 0, "gaps": [], "ignored_snapshots": 0, "bridges": [], "unbuffered": 0}
    state, buf, L, prev_u = "wait", [], None, None

    def step(ev):
        nonlocal state, prev_u, buf
        _, U, u, pu, E, _, _, where = ev
        if state == "wait":
            buf.append(ev)
            return
        if state == "bridge":
            if u < L:
                info["stale"] += 1
                return
            ok = (U <= L + 1 and u >= L) if spot else (U <= L <= u)
            if not ok:
                why = f"first update after snapshot {L} is U={U} u={u}: updates missing"
                actions.append(("gap", ev, why))
                info["gaps"].append((where, why))
                state, buf = "wait", [ev]
                return
            info["bridges"].append((L, U, u, where))
        else:  # live
            ok = (U == prev_u + 1) if spot else (pu == prev_u)
            if not ok:
                why = (f"U={U} after u={prev_u}" if spot else f"pu={pu} after u={prev_u}")
                actions.append(("gap", ev, why))
                info["gaps"].append((where, why))
                state, buf = "wait", [ev]
                return
        actions.append(("apply", ev))
        state, prev_u = "live", u

    for ev in events:
        kind = ev[0]
        if kind == SNAP:
            if state == "live":
                info["ignored_snapshots"] += 1  # the book is already synchronised
                continue
            L = ev[1]
            actions.append(("seed", ev))
            state = "bridge"
            pending, buf = buf, []
            for b in pending:
                step(b)
        elif kind == DEPTH:
            step(ev)
    info["unbuffered"] = len(buf)
    return actions, info


def book_from(levels):
    book = {}
    for p, q in levels:
        qd = dec(q)
        if qd:
            book[dec(p)] = qd
    return book


def apply_levels(book, levels):
    for p, q in levels:
        qd = dec(q)
        if qd:
            book[dec(p)] = qd
        else:
            book.pop(dec(p), None)


def best(bids, asks):
    bb = max(bids) if bids else None
    ba = min(asks) if asks else None
    return bb, (bids[bb] if bb is not None else None), ba, (asks[ba] if ba is not None else None)


class Independent:
    """The book rebuilt from the capture, and what the checks need from it."""

    def __init__(self, events, spot, wanted_seqs):
        self.actions, self.info = sequence(events, spot)
        applied = [a[1] for a in self.actions if a[0] == "apply"]
        # per date: applied updates as (u, U, pu, E ms) in order, trades, ticker checks
        self.updates = {}
        for ev in applied:
            self.updates.setdefault(date_of_ms(ev[4]), []).append((ev[2], ev[1], ev[3] or 0, ev[4]))
        last_u = {d: ups[-1][0] for d, ups in self.updates.items()}
        self.trades = {}
        for ev in events:
            if ev[0] == TRADE:
                self.trades.setdefault(date_of_ms(ev[2]), []).append(ev)
        tickers = {}
        for ev in events:
            if ev[0] == TICKER:
                tickers.setdefault(ev[1], []).append(ev)
        applied_u = {ev[2] for ev in applied}
        self.unmatched_tickers = sum(len(v) for u, v in tickers.items() if u not in applied_u)

        # replay: keep copies of the book at the u's that snapshot runs name and at each
        # date's last applied update; check tickers at the updates they name
        want = set(wanted_seqs) | set(last_u.values())
        # ("seed", lastUpdateId) -> the book as the REST snapshot gave it;
        # ("update", u) -> the book right after the applied update u. They differ when an
        # update ending exactly at lastUpdateId bridges the snapshot (it restates levels,
        # some beyond the snapshot's depth).
        self.states = {}
        self.final = {}                  # date -> (bids, asks) after its last applied update
        self.ticker_checks, self.ticker_mismatches, self.mismatch_examples = {}, {}, []
        bids, asks = {}, {}
        final_of = {u: d for d, u in last_u.items()}
        for act in self.actions:
            if act[0] == "seed":
                ev = act[1]
                bids, asks = book_from(ev[2]), book_from(ev[3])
                if ev[1] in want:
                    self.states[("seed", ev[1])] = (dict(bids), dict(asks))
            elif act[0] == "gap":
                bids, asks = {}, {}
            else:
                ev = act[1]
                apply_levels(bids, ev[5])
                apply_levels(asks, ev[6])
                u, date = ev[2], date_of_ms(ev[4])
                if u in want:
                    st = (dict(bids), dict(asks))
                    self.states[("update", u)] = st
                    if u in final_of:
                        self.final[final_of[u]] = st
                for t in tickers.get(u, ()):
                    bb, bq, ba, aq = best(bids, asks)
                    self.ticker_checks[date] = self.ticker_checks.get(date, 0) + 1
                    if (bb, bq, ba, aq) != (dec(t[2]), dec(t[3]), dec(t[4]), dec(t[5])):
                        self.ticker_mismatches[date] = self.ticker_mismatches.get(date, 0) + 1
                        if len(self.mismatch_examples) < 5:
                            self.mismatch_examples.append(
                                f"{t[6]}: ticker u={u} {t[2]}x{t[3]} / {t[4]}x{t[5]}, book "
                                f"{fmt_dec(bb)}x{bq} / {fmt_dec(ba)}x{aq}")


# --- the partitions (book.q replay) -----------------------------------------------------------

class Partition:
    """One {date}/book.q replayed record by record, with its meta.json."""

    def __init__(self, part_dir, date):
        self.dir, self.date = part_dir, date
        self.path = os.path.join(part_dir, "book.q")
        self.header = cq.read_header(self.path)
        self.records = np.array(cq.open_book(self.path, self.header))
        meta_path = os.path.join(part_dir, "meta.json")
        self.meta = None
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                self.meta = json.load(f)
        self.problems = []  # format problems found while replaying
        self._replay()

    def price(self, raw):
        return Decimal(raw).scaleb(-self.header["price_decimals"])

    def qty(self, raw):
        return Decimal(raw).scaleb(-self.header["qty_decimals"])

    def to_dec(self, bids, asks):
        return ({self.price(p): self.qty(q) for p, q in bids.items()},
                {self.price(p): self.qty(q) for p, q in asks.items()})

    def _replay(self):
        r = self.records
        typ, flg = r["type_id"].tolist(), r["flags"].tolist()
        seq, price, qty = r["seq"].tolist(), r["price"].tolist(), r["qty"].tolist()
        aux0, aux1, ts = r["aux0"].tolist(), r["aux1"].tolist(), r["ts_exchange"].tolist()
        L, SN, LA, BI = cq.LEVEL, cq.SNAPSHOT, cq.LAST, cq.FLAG_BOOK_INVALID
        ev_mask = (r["type_id"] == L) & (r["flags"] & SN == 0) & (r["flags"] & LA != 0)
        ev_idx = np.nonzero(ev_mask)[0]
        last_event = int(ev_idx[-1]) if len(ev_idx) else -1
        # depth events: (record, u, U, pu, ts)
        self.depth_events = [(int(i), seq[i], aux0[i], aux1[i], ts[i]) for i in ev_idx]
        self.trades = [i for i in range(len(typ)) if typ[i] == cq.TRADE]
        self.runs = []           # (record, seq, flags, ts, (bids, asks) raw ints, replay state before or None)
        self.invalid = []        # (record, reason)
        self.final = None        # (bids, asks, valid) after the last depth event
        bids, asks, valid = {}, {}, False
        i, nrec = 0, len(typ)
        while i < nrec:
            t, f = typ[i], flg[i]
            if t == cq.SNAPSHOT_BEGIN:
                k = aux0[i]
                end = i + k + 1
                if k < 0 or end >= nrec:
                    self.problems.append(f"record {i}: snapshot run of {k} levels runs past the end ({nrec} records)")
                    break
                rb, ra = {}, {}
                for j in range(i + 1, end):
                    if typ[j] != L or not flg[j] & SN or (flg[j] & 3) not in (cq.BID, cq.ASK):
                        self.problems.append(f"record {j}: inside the snapshot run at {i} but not a bid/ask "
                                             f"level flagged SNAPSHOT (type {typ[j]}, flags {flg[j]:#x})")
                        break
                    side = rb if flg[j] & cq.BID else ra
                    if price[j] in side:
                        self.problems.append(f"record {j}: snapshot run at {i} repeats price {self.price(price[j])}")
                    side[price[j]] = qty[j]
                if typ[end] != cq.SNAPSHOT_END or seq[end] != seq[i]:
                    self.problems.append(f"record {end}: the snapshot run at {i} (seq {seq[i]}) does not end there "
                                         f"(type {typ[end]}, seq {seq[end]})")
                if f & BI:
                    valid = False
                    self.runs.append((i, seq[i], f, ts[i], None, None))
                else:
                    before = (dict(bids), dict(asks)) if valid else None
                    self.runs.append((i, seq[i], f, ts[i], (rb, ra), before))
                    bids, asks, valid = dict(rb), dict(ra), True
                i = end + 1
                continue
            if f & BI:
                valid = False
            if t == cq.BOOK_INVALID:
                self.invalid.append((i, qty[i]))
            elif t == L:
                if f & SN:
                    self.problems.append(f"record {i}: level flagged SNAPSHOT outside a snapshot run")
                elif valid:
                    side = f & 3
                    book = bids if side == cq.BID else asks if side == cq.ASK else None
                    if side == 3:
                        self.problems.append(f"record {i}: level flagged both BID and ASK")
                    elif book is not None:
                        if qty[i]:
                            book[price[i]] = qty[i]
                        else:
                            book.pop(price[i], None)
                if i == last_event:
                    self.final = (dict(bids), dict(asks), valid)
            i += 1


def book_diff(a, b, what_a, what_b, limit=4):
    """Describe how two (bids, asks) books differ, or None."""
    out = []
    for side, x, y in (("bid", a[0], b[0]), ("ask", a[1], b[1])):
        if x == y:
            continue
        diff = sorted(set(x) ^ set(y) | {p for p in set(x) & set(y) if x[p] != y[p]})
        ex = ", ".join(f"{fmt_dec(p)}: {x.get(p, '-')} vs {y.get(p, '-')}" for p in diff[:limit])
        out.append(f"{side}s differ at {len(diff)} of {len(x)}/{len(y)} levels ({what_a} vs {what_b}: {ex}"
                   f"{' ...' if len(diff) > limit else ''})")
    return "; ".join(out) or None


# --- checking ---------------------------------------------------------------------------------

def check_symbol(venue, sym, sym_dir, cap, out):
    """Check one symbol; returns the list of disagreements."""
    spot = venue in SPOT_VENUES
    bad = []

    def disagree(date, msg):
        bad.append(f"{sym} {date}: {msg}")
        out(f"    DISAGREE: {msg}")

    events = cap.events.get(sym, [])
    kinds = {k: cap.counts.get((sym, k), 0) for k in (DEPTH, TRADE, TICKER, SNAP)}
    out(f"{venue} {sym} -> {sym_dir}")
    out(f"  capture: {n(kinds[DEPTH])} depth updates, {n(kinds[TRADE])} trades, {n(kinds[TICKER])} tickers, "
        f"{kinds[SNAP]} REST snapshot(s)")

    # partitions: the dates the capture touches, and any partition dated within its span
    parts = {}
    on_disk = sorted(d for d in (os.listdir(sym_dir) if os.path.isdir(sym_dir) else [])
                     if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) and os.path.exists(os.path.join(sym_dir, d, "book.q")))
    for d in on_disk:
        try:
            parts[d] = Partition(os.path.join(sym_dir, d), d)
        except (cq.FormatError, OSError) as e:
            disagree(d, f"cannot read partition: {e}")
    wanted = {run[1] for p in parts.values() for run in p.runs if run[4] is not None}
    ind = Independent(events, spot, wanted)
    info = ind.info
    bridges = "; ".join(f"snapshot {L} bridged by U={U} u={u} ({w})" for L, U, u, w in info["bridges"]) or "no bridge"
    out(f"  sequencing: {bridges}; {info['stale']} stale updates dropped; {len(info['gaps'])} gap(s); "
        f"{info['unbuffered']} update(s) never applied (no snapshot after them)"
        + (f"; {info['ignored_snapshots']} REST snapshot(s) while in sync ignored" if info["ignored_snapshots"] else ""))
    for where, why in info["gaps"]:
        out(f"    gap at {where}: {why}")

    cap_dates = set(ind.updates) | set(ind.trades)
    if not cap_dates:
        out("  (no applied depth updates or trades in the capture for this symbol)")
    lo_d, hi_d = (min(cap_dates), max(cap_dates)) if cap_dates else (None, None)
    dates = sorted(cap_dates | {d for d in parts if lo_d and lo_d <= d <= hi_d})

    earlier_u = set()  # u's of the depth events in partitions of earlier dates
    for date in dates:
        if date in parts and date > min(dates):
            earlier_u |= {e[1] for d, q in parts.items() if d < date for e in q.depth_events}
        out(f"  {date}")
        p = parts.get(date)
        if p is None:
            disagree(date, f"no partition {os.path.join(sym_dir, date, 'book.q')}")
            continue
        h, meta = p.header, p.meta
        for prob in p.problems:
            disagree(date, f"book.q: {prob}")
        want_date = int(date.replace("-", ""))
        if h["date"] != want_date or h["venue"] != venue:
            disagree(date, f"book.q header says venue {h['venue']!r} date {h['date']}, want {venue!r} {want_date}")
        if meta is None:
            disagree(date, "no meta.json")
            meta = {}
        m_events, m_checks = meta.get("events", {}), meta.get("checks", {})

        # a. counts, and the applied updates themselves
        ups = ind.updates.get(date, [])
        got = p.depth_events
        mu = m_events.get("depth_updates")
        line = f"depth updates {n(len(ups))}, book.q {n(len(got))}, meta {n(mu) if mu is not None else '-'}"
        ok = len(ups) == len(got) == mu
        if not ok:
            disagree(date, f"applied depth updates: capture {n(len(ups))}, book.q {n(len(got))}, meta.json {mu}")
        for k, (want_u, got_e) in enumerate(zip(ups, got)):
            u, U, pu, E = want_u
            rec, gu, gU, gpu, gts = got_e
            if (gu, gU, gpu, gts) != (u, U, pu, E * 10**6):
                disagree(date, f"depth event {k} (record {rec}): book.q u={gu} U={gU} pu={gpu} ts={gts}, "
                               f"capture's applied update {k} has u={u} U={U} pu={pu} E={E}")
                ok = False
                break
        if ok:
            line += " (ids and times agree)"
        out(f"    a. {line}")

        trs = ind.trades.get(date, [])
        mt = m_events.get("trades")
        tline = f"trades {n(len(trs))}, book.q {n(len(p.trades))}, meta {n(mt) if mt is not None else '-'}"
        if not len(trs) == len(p.trades) == mt:
            disagree(date, f"trades: capture {n(len(trs))}, book.q {n(len(p.trades))}, meta.json {mt}")
        else:
            # same trades: ids, times, prices, quantities and aggressor side, as multisets
            r = p.records
            def mine(ev):
                _, kind, T, tid, f, l, px, q, m, _ = ev
                side = cq.ASK if m else cq.BID  # m: the buyer is the maker, so the seller was aggressive
                return (tid, f or 0, l or 0, T * 10**6, dec(px), dec(q), side)
            want_t = sorted(mine(ev) for ev in trs)
            got_t = sorted((int(r["seq"][i]), int(r["aux0"][i]), int(r["aux1"][i]), int(r["ts_exchange"][i]),
                            p.price(int(r["price"][i])), p.qty(int(r["qty"][i])), int(r["flags"][i]) & 3, i)
                           for i in p.trades)
            if want_t != [g[:-1] for g in got_t]:
                k = next(k for k in range(len(want_t)) if want_t[k] != got_t[k][:-1])
                fields = ("id", "first", "last", "ts", "price", "qty", "side")
                show = lambda t: " ".join(f"{a}={b}" for a, b in zip(fields, t))  # noqa: E731
                disagree(date, f"trade contents differ (sorted by id, trade {k}): capture {show(want_t[k])}; "
                               f"book.q record {got_t[k][-1]} {show(got_t[k])}")
            else:
                tline += " (ids, times, prices, sizes, sides agree)"
        out(f"    a. {tline}")

        # b. final book
        fin = ind.final.get(date)
        if fin is None:
            out("    b. no applied depth update on this date: no final book to compare")
        elif p.final is None:
            disagree(date, "book.q has no depth event to replay to")
        else:
            rb, ra, valid = p.final
            bb, bq, ba, aq = best(*fin)
            desc = f"final best bid/ask {fmt_dec(bb)} / {fmt_dec(ba)} (sizes {bq} / {aq}), {len(fin[0])}+{len(fin[1])} levels"
            if not valid:
                disagree(date, "replaying book.q, the book is invalid at the last depth event")
            else:
                d = book_diff(fin, p.to_dec(rb, ra), "capture", "book.q")
                if d:
                    disagree(date, f"final book: {d}")
                else:
                    desc += ", equal to book.q's replay"
            out(f"    b. {desc}")

        # c. snapshot runs
        # A run's seq names the last update the book reflects: the book right after the
        # applied update u == seq if book.q holds that update before the run, else the REST
        # snapshot with lastUpdateId == seq (a run written before its bridging update).
        valid_runs = [run for run in p.runs if run[4] is not None]
        n_ok, n_prev = 0, 0
        for rec, seq, flags, ts, levels, before in valid_runs:
            got_book = p.to_dec(*levels)
            applied_before = seq in earlier_u or any(e[1] == seq and e[0] < rec for e in p.depth_events)
            key = ("update", seq) if applied_before else ("seed", seq)
            st = ind.states.get(key)
            if st is None:
                disagree(date, f"snapshot run at record {rec}: seq {seq} is not "
                               + ("an applied update's u" if applied_before else
                                  "a REST snapshot's lastUpdateId (and book.q applies no update u == seq before it)"))
                continue
            d = book_diff(st, got_book, f"capture {'after update' if applied_before else 'REST snapshot'} {seq}", "run")
            if d:
                disagree(date, f"snapshot run at record {rec} (seq {seq}): {d}")
                continue
            if before is not None:
                d = book_diff(p.to_dec(*before), got_book, "replay before the run", "run")
                if d:
                    disagree(date, f"snapshot run at record {rec} (seq {seq}): {d}")
                    continue
                n_prev += 1
            n_ok += 1
        inv_runs = len(p.runs) - len(valid_runs)
        reasons = ", ".join(f"record {i}: {cq.INVALID_REASONS.get(q, q)}" for i, q in p.invalid) or "none"
        out(f"    c. snapshot runs: {n_ok} of {len(valid_runs)} valid ones equal the capture's book "
            f"({n_prev} also the replay before them); {inv_runs} flagged BOOK_INVALID; book_invalid records: {reasons}")

        # d. ticker checks
        tc, tm = ind.ticker_checks.get(date, 0), ind.ticker_mismatches.get(date, 0)
        mc, mm = m_checks.get("ticker_checks"), m_checks.get("ticker_mismatches")
        out(f"    d. ticker checks {n(tc)} / mismatches {tm}; meta {mc} / {mm}")
        if (tc, tm) != (mc, mm):
            disagree(date, f"ticker checks/mismatches: capture {tc}/{tm}, meta.json {mc}/{mm}")
        if tm:
            out(f"    note: the capture's tickers disagree with its own book {tm} time(s)")

        # e. exchange times within the date
        ts = p.records["ts_exchange"]
        d0 = day_start_ns(date)
        outside = np.nonzero((ts < d0) | (ts >= d0 + NS_PER_DAY))[0]
        if len(outside):
            disagree(date, f"{len(outside)} record(s) outside the UTC date, first record {outside[0]} "
                           f"ts_exchange {ts[outside[0]]}")
        else:
            out(f"    e. all {n(len(ts))} records' exchange times lie in {date} UTC")

    for ex in ind.mismatch_examples:
        out(f"  ticker mismatch: {ex}")
    if ind.unmatched_tickers:
        out(f"  ({n(ind.unmatched_tickers)} tickers name no applied depth update: not checked)")
    return bad


# --- OKX and Kraken ----------------------------------------------------------------------------

def read_cryptofeed_msgs(paths):
    """(recv ns, file order, line, json) of every received message of cryptofeed ws logs,
    merged by receive time (ties in file order)."""
    out = []
    for k, path in enumerate(paths):
        with open_text(path) as f:
            for ln, line in enumerate(f, 1):
                line = line.strip()
                if not line or " <-> " in line or " <- " in line.split(": ", 1)[0]:
                    continue
                t, sep, body = line.partition(": ")
                if not sep:
                    raise InputError(f"{path} line {ln}: no ': ' after the time")
                try:
                    obj = json.loads(body)
                except ValueError as e:
                    raise InputError(f"{path} line {ln}: {e}")
                out.append((secs_to_ns(t), k, ln, obj))
    out.sort(key=lambda x: (x[0], x[1], x[2]))
    return out


class StrBook:
    """A book of the exchange's strings: price Decimal -> (price string, size string)."""

    def __init__(self):
        self.bids, self.asks = {}, {}

    def set(self, side, px, sz):
        p = dec(px)
        if dec(sz) == 0:
            side.pop(p, None)
        else:
            side[p] = (px, sz)

    def top(self, bids, n):
        side = self.bids if bids else self.asks
        keys = sorted(side, reverse=bids)
        return [side[k] for k in (keys if n is None else keys[:n])]

    def trim(self, depth):
        for side, rev in ((self.bids, True), (self.asks, False)):
            for k in sorted(side, reverse=rev)[depth:]:
                del side[k]

    def as_dec(self):
        return ({k: dec(v[1]) for k, v in self.bids.items()}, {k: dec(v[1]) for k, v in self.asks.items()})


def okx_checksum(book):
    b, a = book.top(True, 25), book.top(False, 25)
    parts = []
    for i in range(25):
        if i < len(b):
            parts += list(b[i])
        if i < len(a):
            parts += list(a[i])
    c = zlib.crc32(":".join(parts).encode())
    return c - (1 << 32) if c >= 1 << 31 else c


def kraken_checksum(book):
    s = ""
    for px, sz in book.top(False, 10) + book.top(True, 10):
        s += px.replace(".", "").lstrip("0") + sz.replace(".", "").lstrip("0")
    return zlib.crc32(s.encode())


class SubscribedSymbol:
    """What the capture says of one OKX instrument or Kraken pair."""

    def __init__(self):
        self.book, self.live = StrBook(), False
        self.updates = self.trades = self.tickers = self.checked = self.mismatched = self.snapshots = 0
        self.final = None  # (bids, asks) as Decimals after the last applied update


def read_subscribed(venue, paths):
    syms = {}

    def get(s):
        return syms.setdefault(s, SubscribedSymbol())

    for recv, _, ln, m in read_cryptofeed_msgs(paths):
        if venue == "okx":
            if not isinstance(m, dict) or "data" not in m or "arg" not in m:
                continue
            ch, inst = m["arg"].get("channel"), m["arg"].get("instId")
            st = get(inst)
            if ch == "books":
                d = m["data"][0]
                if m.get("action") == "snapshot":
                    st.book, st.live = StrBook(), True
                    st.snapshots += 1
                elif not st.live:
                    continue
                else:
                    st.updates += 1
                for side, key in ((st.book.bids, "bids"), (st.book.asks, "asks")):
                    for lv in d[key]:
                        st.book.set(side, lv[0], lv[1])
                st.book.trim(400)
                if d.get("checksum", 0) != 0:
                    st.checked += 1
                    if okx_checksum(st.book) != d["checksum"]:
                        st.mismatched += 1
                        st.live = False
                if m.get("action") == "update":
                    st.final = st.book.as_dec()
            elif ch == "trades":
                st.trades += len(m["data"])
            elif ch == "tickers":
                st.tickers += 1
        else:
            if not isinstance(m, list) or len(m) < 4:
                continue
            channel, pair = m[-2], m[-1]
            st = get(pair)
            if channel.startswith("book-"):
                depth = int(channel[5:])
                objs = m[1:-2]
                if any("as" in o or "bs" in o for o in objs):
                    st.book, st.live = StrBook(), True
                    st.snapshots += 1
                elif not st.live:
                    continue
                else:
                    st.updates += 1
                csum = None
                for o in objs:
                    for key, side in (("as", st.book.asks), ("a", st.book.asks), ("bs", st.book.bids), ("b", st.book.bids)):
                        for lv in o.get(key, []):
                            st.book.set(side, lv[0], lv[1])
                    csum = o.get("c", csum)
                st.book.trim(depth)
                if csum is not None:
                    st.checked += 1
                    if kraken_checksum(st.book) != int(csum):
                        st.mismatched += 1
                        st.live = False
                    st.final = st.book.as_dec()
            elif channel == "trade":
                st.trades += len(m[1])
            elif channel == "ticker":
                st.tickers += 1
    return syms


def check_subscribed(venue, sym, sym_dir, st, out):
    """Check one OKX instrument's or Kraken pair's partitions; returns the disagreements."""
    bad = []
    dates = sorted(d for d in os.listdir(sym_dir) if os.path.exists(os.path.join(sym_dir, d, "book.q")))
    if not dates:
        return [f"{sym}: no partition in {sym_dir}"]
    events = trades = bbo = checks = mismatches = 0
    final = None
    for date in dates:
        p = Partition(os.path.join(sym_dir, date), date)
        bad += [f"{sym} {date}: {x}" for x in p.problems]
        events += len(p.depth_events)
        trades += len(p.trades)
        bbo += int(np.count_nonzero(p.records["type_id"] == cq.BBO))
        m = p.meta or {}
        ev = m.get("events", {})
        if ev.get("depth_updates") != len(p.depth_events) or ev.get("trades") != len(p.trades):
            bad.append(f"{sym} {date}: meta.json events {ev} against book.q's {len(p.depth_events)} updates, {len(p.trades)} trades")
        c = m.get("checks", {})
        checks += c.get("checksum_checks", 0)
        mismatches += c.get("checksum_mismatches", 0)
        for i, run in enumerate(p.runs):
            if run[4] is not None and run[5] is not None and run[4] != run[5]:
                bad.append(f"{sym} {date}: snapshot run at record {run[0]} differs from the replay before it")
        if p.final is not None:
            final = p.to_dec(p.final[0], p.final[1])
    out(f"{sym}: capture {n(st.snapshots)} snapshots, {n(st.updates)} updates, {n(st.checked)} checksums "
        f"({n(st.mismatched)} failed here), {n(st.trades)} trades, {n(st.tickers)} tickers; "
        f"partitions {n(events)} updates, {n(checks)} checks ({n(mismatches)} failed), {n(trades)} trades, {n(bbo)} bbo")
    for what, a, b in (("updates", st.updates, events), ("trades", st.trades, trades), ("tickers", st.tickers, bbo),
                       ("checksum checks", st.checked, checks), ("checksum mismatches", st.mismatched, mismatches)):
        if a != b:
            bad.append(f"{sym}: {what}: {a} in the capture, {b} in the partitions")
    if st.final is not None and final is not None:
        d = book_diff(st.final, final, "capture", "book.q")
        if d:
            bad.append(f"{sym}: the book after the last update: {d}")
    elif st.final != final:
        bad.append(f"{sym}: a final book on one side only")
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check Chronicle partitions against the capture they came from.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    ap.add_argument("--venue", required=True, choices=FUTURES_VENUES + SPOT_VENUES + SUBSCRIBED_VENUES)
    ap.add_argument("--symbol-dir", help="Chronicle symbol directory holding {date}/book.q and meta.json")
    ap.add_argument("--symbol", action="append", default=[], metavar="RAW=DIR",
                    help="for a multi-symbol capture: the symbol directory of a raw symbol (repeat)")
    ap.add_argument("captures", nargs="+", metavar="CAPTURE_FILE")
    a = ap.parse_args(argv)
    if bool(a.symbol_dir) == bool(a.symbol):
        ap.error("give either --symbol-dir or --symbol RAW=DIR (repeatable)")

    if a.venue in SUBSCRIBED_VENUES:
        try:
            syms = read_subscribed(a.venue, a.captures)
            targets = []
            for t in a.symbol or []:
                raw, sep, d = t.partition("=")
                if not sep or raw not in syms:
                    raise InputError(f"--symbol {t!r}: want RAW=DIR with RAW in the capture ({', '.join(sorted(syms))})")
                targets.append((raw, d))
            if a.symbol_dir:
                if len(syms) != 1:
                    raise InputError(f"the capture holds {len(syms)} instruments: use --symbol RAW=DIR")
                targets = [(next(iter(syms)), a.symbol_dir)]
        except (InputError, OSError, ValueError, KeyError, IndexError) as e:
            print(f"check_capture: {e}", file=sys.stderr)
            return 2
        bad = []
        for sym, d in targets:
            bad += check_subscribed(a.venue, sym, d, syms[sym], print)
        if bad:
            print(f"DISAGREEMENT: {len(bad)} problem(s):")
            for b in bad:
                print(f"  {b}")
            return 1
        print(f"OK: {', '.join(s for s, _ in targets)} agree with the capture")
        return 0

    try:
        cap = read_capture(a.captures)
        syms = sorted(cap.events)
        if a.symbol_dir:
            if len(syms) != 1:
                raise InputError(f"the capture holds {len(syms)} symbols ({', '.join(syms)}): use --symbol RAW=DIR")
            targets = [(syms[0], a.symbol_dir)]
        else:
            targets = []
            for s in a.symbol:
                raw, sep, d = s.partition("=")
                if not sep or not raw or not d:
                    raise InputError(f"--symbol {s!r}: want RAW=DIR")
                if raw.upper() not in cap.events:
                    raise InputError(f"--symbol {raw}: not in the capture (it has {', '.join(syms)})")
                targets.append((raw.upper(), d))
    except (InputError, OSError) as e:
        print(f"check_capture: {e}", file=sys.stderr)
        return 2

    print(f"capture: {', '.join(a.captures)}: {n(cap.messages)} messages "
          f"({n(cap.other)} of unchecked streams), symbols {', '.join(syms)}")
    bad = []
    for sym, d in targets:
        bad += check_symbol(a.venue, sym, d, cap, print)
    unchecked = sorted(set(syms) - {s for s, _ in targets})
    if unchecked:
        print(f"not checked (no directory given): {', '.join(unchecked)}")
    if bad:
        print(f"DISAGREEMENT: {len(bad)} problem(s):")
        for b in bad:
            print(f"  {b}")
        return 1
    print(f"OK: {', '.join(s for s, _ in targets)} agree with the capture")
    return 0


if __name__ == "__main__":
    sys.exit(main())
