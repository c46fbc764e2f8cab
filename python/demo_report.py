#!/usr/bin/env python3
"""What a researcher sees of Chronicle's partitions: a summary and a report, read through the mount.

    /usr/bin/python3 python/demo_report.py summary MOUNT [--report DIR]
        One line per partition below MOUNT/v1 (its tier from the mount's user.chronicle.tier
        extended attribute, records by type, first and last exchange time, mid-price range,
        spread percentiles in basis points, the reasons of meta.json's invalid intervals).
        With --report, writes DIR/index.html, one static page with PNG charts beside it that
        reads offline: a summary table of every partition first, then the venues' ETH
        mid-price, basis and spread on one time axis, then a section per partition (facts
        in prose, its invalid intervals, and its charts).
    /usr/bin/python3 python/demo_report.py journal-count JOURNAL_DIR SYMBOL[,SYMBOL...]
        The websocket messages a chronicle-feed journal holds for these symbols (streams are
        mapped to symbols by the journal's own connect records), for comparison with what
        the exchange sent.

Everything is read with numpy (python/chronicle_q.py maps book.q) and json; the mount serves
every tier (hot, warm, cold, remote) as plain files, so nothing here knows where a partition
lives. scripts/demo.sh runs it.

Charts: best bid/offer series are step functions (a quote holds until the next one), drawn
as steps; where a series has more points than the chart has pixels, each pixel column keeps
its first, last, lowest and highest point (min/max per pixel bucket), so no spike is lost.
A partition's charts are the functions in PARTITION_CHARTS: each takes the partition's
analysis, the output folder and a file stem and returns (png name, caption) or None; a
module that draws more (a book ladder...) appends its own there.
"""

import argparse
import datetime
import glob
import html
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # chronicle_q beside this script
import chronicle_q as q  # noqa: E402
import report_ladder  # noqa: E402

TIER_XATTR = "user.chronicle.tier"
SHORT_VENUE = {"binance-perp": "perp", "binance-coinm": "coinm", "binance-spot": "spot", "kraken-spot": "kraken"}
VENUE_NAME = {"binance-perp": "Binance USD-M perpetual", "binance-coinm": "Binance COIN-M perpetual",
              "binance-spot": "Binance spot", "okx": "OKX", "kraken-spot": "Kraken spot"}
GROUP_OVER = 4  # the terminal summary gives a venue's date with more partitions (Kraken's ten pairs) one line
VENUE_COLOR = {"binance-perp": "tab:blue", "binance-coinm": "tab:orange", "binance-spot": "tab:green"}
TIER_TEXT = {"hot": "hot (the live tier)", "warm": "warm (local disk)", "cold": "cold (seekable zstd on local disk)",
             "remote": "remote (object store, fetched on read)"}
REASON_TEXT = {"not_captured": "not captured", "no_snapshot": "no snapshot yet", "sequence": "sequence gap",
               "disconnect": "connection lost", "feed_restart": "feed restarted", "write_failed": "journal write failed",
               "rollover_lost": "connection rollover lost events", "oversized": "oversized message dropped",
               "journal_lost": "journal segments lost", "bad_message": "undecodable depth message",
               "checksum": "checksum mismatch"}
NS = 1_000_000_000
# A partition spanning less exchange time or fewer best bid/offer records than this gets a
# sentence instead of charts (a line through three points says nothing).
MIN_CHART_SECONDS = 10
MIN_CHART_POINTS = 20
DPI = 100
WIDTH_IN = 12  # 1200 px wide; the plot area is about 1050 px: the pixel buckets of the thinning
BUCKETS = 1050


# --- reading -------------------------------------------------------------------------------

def partitions(mount):
    """(venue, symbol, date, dir) of every partition below mount/v1, sorted."""
    out = []
    for book in sorted(glob.glob(os.path.join(mount, "v1", "*", "*", "*", "book.q"))):
        d = os.path.dirname(book)
        date = os.path.basename(d)
        sym = os.path.basename(os.path.dirname(d))
        venue = os.path.basename(os.path.dirname(os.path.dirname(d)))
        out.append((venue, sym, date, d))
    return out


def parse_time(s):
    """meta.json's RFC 3339 nanosecond string as int ns since the epoch."""
    return q.to_ns(s)


def analyse(pdir, venue, sym, date):
    """Everything the summary and the charts need from one partition."""
    path = os.path.join(pdir, "book.q")
    h = q.read_header(path)
    book = q.open_book(path, h)
    with open(os.path.join(pdir, "meta.json")) as f:
        meta = json.load(f)
    try:
        tier = os.getxattr(path, TIER_XATTR).decode()
    except OSError:
        tier = "?"
    scale = 10.0 ** h["price_decimals"]
    qscale = 10.0 ** h["qty_decimals"]
    types = np.bincount(np.asarray(book["type_id"]), minlength=7)
    bbo = q.view(book, q.BBO)
    order = np.argsort(np.asarray(bbo["ts_exchange"]), kind="stable")  # file order is not time order
    ts = np.asarray(bbo["ts_exchange"])[order]
    bid = np.asarray(bbo["bid_price"])[order] / scale
    ask = np.asarray(bbo["ask_price"])[order] / scale
    bq = np.asarray(bbo["bid_qty"])[order] / qscale
    aq = np.asarray(bbo["ask_qty"])[order] / qscale
    two = (bid > 0) & (ask > 0)  # a side with no quote has no mid
    ts, bid, ask, bq, aq = ts[two], bid[two], ask[two], bq[two], aq[two]
    mid = (bid + ask) / 2
    parts = sym.split("-")
    base, quote = parts[0].upper(), (parts[1].upper() if len(parts) > 1 else "quote")
    inst = meta.get("instrument") or {}
    if inst.get("qty_unit") == "contracts":
        qty_unit = f"contracts of {inst.get('contract_size', '?')} {inst.get('contract_currency', '')}".strip()
    else:
        qty_unit = base
    first = int(book["ts_exchange"].min()) if len(book) else 0
    last = int(book["ts_exchange"].max()) if len(book) else 0
    invalid = [(parse_time(i["from"]), parse_time(i["to"]), i["reason"], bool(i.get("open")))
               for i in meta["completeness"].get("invalid") or []]
    return {
        "venue": venue, "symbol": sym, "date": date, "name": f"{SHORT_VENUE.get(venue, venue)}/{sym}/{date}",
        "dir": pdir, "path": path, "tier": tier, "meta": meta, "records": len(book), "types": types,
        "first": first, "last": last, "ts": ts, "mid": mid, "spread_bps": (ask - bid) / mid * 1e4,
        "bid_qty": bq, "ask_qty": aq, "base": base, "quote": quote, "qty_unit": qty_unit, "invalid": invalid,
        "stem": f"{venue}_{sym}_{date}",
    }


def captured_span(a):
    """[start, end] of what the capture covers in this partition: from the end of its
    not_captured stretch (from midnight when there is none: the capture began before it)
    to the last record."""
    start = day_start(a)
    for f, t, reason, _ in a["invalid"]:
        if reason == "not_captured":
            start = t
    return min(start, a["first"]) if a["records"] else start, a["last"]


def split_invalid(a):
    """meta.json's intervals in three kinds: not_captured; those within the captured span;
    those that start at or after its last record (the capture ended: a dropped connection,
    a stopped feed)."""
    _, end = captured_span(a)
    nc, within, after = [], [], []
    for i in a["invalid"]:
        if i[2] == "not_captured":
            nc.append(i)
        elif a["records"] and i[0] >= end:
            after.append(i)
        else:
            within.append(i)
    return nc, within, after


def invalid_ns(a):
    """Nanoseconds of the captured span during which meta.json says the book was invalid."""
    lo, hi = captured_span(a)
    return sum(max(0, min(t, hi) - max(f, lo)) for f, t, _, _ in split_invalid(a)[1])


def invalid_share(a):
    lo, hi = captured_span(a)
    return 100 * invalid_ns(a) / max(1, hi - lo)


# --- words and numbers ---------------------------------------------------------------------

def clock(ns, date=False, digits=3):
    """An instant as 23:54:16.303 (UTC), with its date when asked."""
    t = datetime.datetime.fromtimestamp(ns // NS, tz=datetime.timezone.utc)
    frac = f"{ns % NS:09d}"[:digits]
    s = t.strftime("%H:%M:%S") + (f".{frac}" if digits else "")
    return (t.strftime("%Y-%m-%d ") + s) if date else s


def duration(ns):
    """A span as '5 min 45 s', '1.12 s', '2 h 3 min'."""
    s = ns / NS
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {s} s" if s else f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m} min" if m else f"{h} h"


def price(x):
    """A price with the decimals its size deserves: 2680.15, 7.6150, 0.017315."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    d = max(2, min(8, 3 - math.floor(math.log10(abs(x))) + 1))
    return f"{x:,.{d}f}"


def plural(n, what):
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def percent(x):
    return "0 %" if x == 0 else (f"{x:.2g} %" if x < 1 else f"{x:.1f} %")


def span_text(a):
    if not a["records"]:
        return "no records"
    return f"{clock(a['first'])}–{clock(a['last'])} ({duration(a['last'] - a['first'])})"


def interval_text(f, t, reason, is_open, day_start, sealed):
    """One invalid interval in words: 'no snapshot yet 23:54:15.308–23:54:15.408 (0.10 s)'."""
    end = "24:00:00" if t - day_start >= 86400 * NS else clock(t)
    words = f"{REASON_TEXT.get(reason, reason)} {clock(f)}–{end} ({duration(t - f)}"
    if is_open:
        words += ", and on past midnight" if sealed else ", not over yet"
    return words + ")"


def invalid_reasons(a):
    """The reasons of the invalid intervals, short ('no_snapshot, not_captured')."""
    rs = sorted({r for _, _, r, _ in a["invalid"]})
    gaps = a["meta"]["completeness"].get("gaps") or []
    if gaps:
        rs.append(f"trade gaps x{len(gaps)}")
    return ",".join(rs) or "-"


def day_start(a):
    return q.to_ns(a["date"] + "T00:00:00Z")


# --- the terminal summary ------------------------------------------------------------------

HEADER = (f"{'partition':<34} {'tier':<6} {'records':>7} {'levels':>7} {'trades':>6} {'bbo':>6}"
          f"  {'exchange time (UTC)':<21}  {'mid-price range':>19}  {'spread p50/p99':>14}  invalid intervals")


def summary_line(a):
    t = a["types"]
    if len(a["mid"]):
        mid = f"{price(a['mid'].min())}-{price(a['mid'].max())}"
        p50, p99 = np.percentile(a["spread_bps"], [50, 99])
        spread = f"{p50:.2f}/{p99:.2f} bps"
    else:
        mid, spread = "-", "-"
    span = f"{clock(a['first'], digits=1)}-{clock(a['last'], digits=1)}"
    return (f"{a['name']:<34} {a['tier']:<6} {a['records']:>7} {t[q.LEVEL]:>7} {t[q.TRADE]:>6} {t[q.BBO]:>6}"
            f"  {span:<21}  {mid:>19}  {spread:>14}  {invalid_reasons(a)}")


def group_line(name, group):
    """One terminal line for many partitions of a venue's date: their totals."""
    t = sum(a["types"] for a in group)
    tiers = "/".join(sorted({a["tier"] for a in group}))
    reasons = sorted({r for a in group for r in invalid_reasons(a).split(",") if r != "-"})
    span = f"{clock(min(a['first'] for a in group), digits=1)}-{clock(max(a['last'] for a in group), digits=1)}"
    return (f"{name:<34} {tiers:<6} {sum(a['records'] for a in group):>7} {t[q.LEVEL]:>7} {t[q.TRADE]:>6} {t[q.BBO]:>6}"
            f"  {span:<21}  {'-':>19}  {'-':>14}  {','.join(reasons) or '-'}")


# --- charts --------------------------------------------------------------------------------

def thin(t, *ys, buckets=BUCKETS):
    """Indices of the points to draw: all of them when there are few, else for each of
    buckets equal slices of time (a pixel column) its first, last, lowest and highest point
    of every series. t is sorted."""
    n = len(t)
    if n <= 4 * buckets:
        return np.arange(n)
    span = float(t[-1] - t[0]) or 1.0
    b = np.minimum(((t - t[0]) / span * buckets).astype(np.int64), buckets - 1)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], n] - 1
    keep = [starts, ends]
    for y in ys:
        order = np.lexsort((y, b))  # by bucket, then value: each bucket's lowest first, highest last
        keep += [order[starts], order[ends]]
    return np.unique(np.concatenate(keep))


def plt_setup():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def time_axis(ax, t0, t1):
    """Exchange-time ticks as 23:55:30 (seconds always shown), the date(s) in the axis label,
    and a dotted line where a new UTC day starts."""
    import matplotlib.dates as mdates
    loc = mdates.AutoDateLocator(minticks=5, maxticks=12)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    d0, d1 = clock(t0, date=True, digits=0)[:10], clock(t1, date=True, digits=0)[:10]
    if d0 == d1:
        ax.set_xlabel(f"exchange time (UTC) on {d0}")
        return
    ax.set_xlabel(f"exchange time (UTC), {clock(t0, date=True, digits=0)} to {clock(t1, date=True, digits=0)}")
    day = (t0 // (86400 * NS) + 1) * 86400 * NS
    while day <= t1:
        for a in ax.figure.axes:
            a.axvline(dt(day), color="black", lw=0.8, ls=":")
        ax.figure.axes[0].annotate(clock(day, date=True, digits=0)[:10], (dt(day), 1), xycoords=("data", "axes fraction"),
                                   xytext=(3, -12), textcoords="offset points", fontsize=8)
        day += 86400 * NS


def plain_y(ax):
    """Tick labels as the numbers themselves: no '1e-5' or '+2.68e3' offset."""
    from matplotlib.ticker import ScalarFormatter
    f = ScalarFormatter(useOffset=False)
    f.set_scientific(False)
    ax.yaxis.set_major_formatter(f)


def dt(ns):
    return np.asarray(ns, dtype="int64").astype("datetime64[ns]")


def shade_invalid(axes, a):
    """Shade the stretches meta.json marks invalid (within the charted span)."""
    lo, hi = int(a["ts"][0]), int(a["ts"][-1])
    px2 = 2 * (hi - lo) // BUCKETS  # narrower stretches are drawn two pixels wide, to be seen
    shaded = False
    for f, t, reason, _ in a["invalid"]:
        if reason == "not_captured" or t <= lo or f >= hi:
            continue
        f, t = max(f, lo), min(t, hi)
        if t - f < px2:
            f, t = max(lo, f - px2 // 2), min(hi, f + px2 // 2 + 1)
        for ax in axes:
            ax.axvspan(dt(f), dt(t), color="tab:red", alpha=0.3, lw=0,
                       label=None if shaded or ax is not axes[0] else "book invalid (meta.json)")
        shaded = True
    return shaded


def save(plt, fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=DPI)
    plt.close(fig)
    return name


def chart_mid_spread(a, out_dir, stem):
    """Mid-price (quote currency) and spread (basis points of the mid), as steps."""
    plt = plt_setup()
    t = a["ts"]
    i = thin(t, a["mid"], a["spread_bps"])
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(WIDTH_IN, 5.6), height_ratios=[3, 1.6])
    ax1.step(dt(t[i]), a["mid"][i], where="post", lw=0.8, color="tab:blue", label="mid-price")
    ax1.set_ylabel(f"mid-price ({a['quote']})")
    ax1.set_title(f"{VENUE_NAME.get(a['venue'], a['venue'])} {a['base']}/{a['quote']}, {a['date']}: "
                  "best bid/offer (bookTicker)", fontsize=11)
    ax2.step(dt(t[i]), a["spread_bps"][i], where="post", lw=0.8, color="tab:red")
    ax2.set_ylabel("spread (bps of mid)")
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        plain_y(ax)
        ax.grid(alpha=0.3)
    time_axis(ax2, int(t[0]), int(t[-1]))
    if shade_invalid((ax1, ax2), a):
        ax1.legend(loc="upper right", fontsize=8)
    name = save(plt, fig, out_dir, stem + "_mid_spread.png")
    return name, (f"Mid-price in {a['quote']} and spread in basis points of the mid, from {len(t):,} best bid/offer "
                  f"records ({len(i):,} drawn: first, last, lowest and highest per pixel column).")


def chart_depth(a, out_dir, stem):
    """Size at the best bid and at the best ask, as steps."""
    plt = plt_setup()
    t = a["ts"]
    i = thin(t, a["bid_qty"], a["ask_qty"])
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.4))
    ax.step(dt(t[i]), a["bid_qty"][i], where="post", lw=0.7, color="tab:green", label="best bid size")
    ax.step(dt(t[i]), -a["ask_qty"][i], where="post", lw=0.7, color="tab:orange", label="best ask size (drawn negative)")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel(f"size ({a['qty_unit']})")
    ax.set_title(f"{a['name']}: top-of-book depth", fontsize=11)
    plain_y(ax)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    time_axis(ax, int(t[0]), int(t[-1]))
    name = save(plt, fig, out_dir, stem + "_depth.png")
    return name, f"Size at the best bid (up) and the best ask (down), in {a['qty_unit']}."


# A partition's charts, in order; each returns (png name, caption) or None.
def chart_ladders(a, out_dir, stem):
    """Book ladders at a few instants, from the partition's views/top25.npy (report_ladder)."""
    h = q.read_header(a["path"])
    pngs = report_ladder.draw(a["dir"], a["name"], out_dir, stem, h["price_decimals"], h["qty_decimals"])
    if not pngs:
        return None
    unit = f"{a['quote']} per {a['base']}" if a["qty_unit"] == a["base"] else a["quote"]
    return pngs[0], (f"Book ladders: cumulative bid and ask size ({a['qty_unit']}) by price ({unit}) over the top 25 "
                     f"levels, at a quarter, half and three quarters of the captured span, read from views/top25.npy.")


PARTITION_CHARTS = [chart_mid_spread, chart_depth, chart_ladders]


def chartable(a):
    """Why a partition gets no charts, or None when it does."""
    n, span = len(a["ts"]), (int(a["ts"][-1] - a["ts"][0]) if len(a["ts"]) else 0)
    if n == 0:
        return "no best bid/offer records to chart"
    if span < MIN_CHART_SECONDS * NS or n < MIN_CHART_POINTS:
        return (f"the partition is too short to chart, {n:,} best bid/offer records over {duration(span)} "
                f"(charts need {MIN_CHART_SECONDS} s and {MIN_CHART_POINTS} records; the figures above are all there is)")
    return None


def chart_venues(parts, out_dir):
    """The same base asset (ETH) on every venue, on one exchange-time axis: mid-price, the
    basis of each derivative against spot (bps, spot's mid as of the same instant), spread."""
    by_venue = {}
    # The venues captured at the same time as Binance spot's ETH (other captures, such as
    # Kraken's ETH/CHF of 2021, are other days).
    days = {a["date"] for a in parts if a["venue"] == "binance-spot" and a["base"] == "ETH"}
    for a in parts:
        if a["base"] != "ETH" or not len(a["ts"]) or (days and a["date"] not in days):
            continue
        by_venue.setdefault(a["venue"], []).append(a)
    if len(by_venue) < 2:
        return None
    series = {}
    for v, ps in sorted(by_venue.items()):
        t = np.concatenate([p["ts"] for p in ps])
        o = np.argsort(t, kind="stable")
        series[v] = (t[o], np.concatenate([p["mid"] for p in ps])[o], np.concatenate([p["spread_bps"] for p in ps])[o],
                     ps[0]["quote"], ps[0]["symbol"])
    plt = plt_setup()
    spot = series.get("binance-spot")
    n_ax = 3 if spot else 2
    fig, axes = plt.subplots(n_ax, 1, sharex=True, figsize=(WIDTH_IN, 2.4 * n_ax + 1.4),
                             height_ratios=[3, 2, 1.6][:n_ax] if spot else [3, 1.6])
    quotes = sorted({s[3] for s in series.values()})
    for v, (t, mid, spr, quote, sym) in series.items():
        i = thin(t, mid, spr)
        label = f"{SHORT_VENUE.get(v, v)} {sym} ({quote})"
        axes[0].step(dt(t[i]), mid[i], where="post", lw=0.8, color=VENUE_COLOR.get(v), label=label)
        axes[-1].step(dt(t[i]), spr[i], where="post", lw=0.7, color=VENUE_COLOR.get(v), label=label)
        if spot and v != "binance-spot":
            st, smid = spot[0], spot[1]
            j = np.searchsorted(st, t, side="right") - 1  # spot's mid as of each instant
            ok = (j >= 0) & (t <= st[-1])
            tb, basis = t[ok], (mid[ok] - smid[j[ok]]) / smid[j[ok]] * 1e4
            k = thin(tb, basis)
            axes[1].step(dt(tb[k]), basis[k], where="post", lw=0.8, color=VENUE_COLOR.get(v), label=f"{SHORT_VENUE.get(v, v)} − spot")
    axes[0].set_ylabel(f"mid-price ({' / '.join(quotes)})")
    axes[0].set_title("ETH on three Binance venues, one exchange-time axis: mid-price, basis against spot, spread",
                      fontsize=11)
    if spot:
        axes[1].axhline(0, color="black", lw=0.5)
        axes[1].set_ylabel("basis vs spot (bps)")
    axes[-1].set_ylabel("spread (bps of mid)")
    axes[-1].set_ylim(bottom=0)
    for ax in axes:
        plain_y(ax)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    time_axis(axes[-1], min(int(s[0][0]) for s in series.values()), max(int(s[0][-1]) for s in series.values()))
    name = save(plt, fig, out_dir, "eth_venues.png")
    spans = "; ".join(f"{SHORT_VENUE.get(v, v)} {clock(s[0][0], date=True, digits=0)}–{clock(s[0][-1], digits=0)}"
                      for v, s in series.items())
    caption = (f"Mid-price (USD-M and spot in USDT, COIN-M in USD), the perpetuals' basis against spot's mid at the "
               f"same exchange time (in basis points of spot), and each venue's spread. Captured: {spans} UTC.")
    return name, caption


def render(job):
    """Draws one job in a worker: ('partition', analysis, out_dir) or ('venues', parts, out_dir)."""
    kind, obj, out_dir = job
    if kind == "venues":
        return "venues", chart_venues(obj, out_dir)
    if chartable(obj):
        return obj["name"], []
    drawn = [f(obj, out_dir, obj["stem"]) for f in PARTITION_CHARTS]
    return obj["name"], [d for d in drawn if d]


# --- the HTML report -----------------------------------------------------------------------

def anchor(a):
    return "p-" + a["stem"].replace(".", "-")


def summary_table(parts):
    rows = []
    for a in parts:
        m = a["meta"]
        if len(a["mid"]):
            mid = f"{price(a['mid'].min())} – {price(a['mid'].max())} {a['quote']}"
            p50, p99 = np.percentile(a["spread_bps"], [50, 99])
            spread = f"{p50:.2f} / {p99:.2f}"
        else:
            mid, spread = "–", "–"
        reasons = sorted({REASON_TEXT.get(r, r) for _, _, r, _ in split_invalid(a)[1]})
        invalid = percent(invalid_share(a)) + (f" ({', '.join(reasons)})" if reasons else "")
        c = m["checks"]
        checks = f"{c['ticker_checks']:,} / {c['ticker_mismatches']}"
        if "checksum_checks" in c:  # OKX, Kraken: the exchange's checksum of the book, not tickers
            checks = f"checksums {c['checksum_checks']:,} / {c['checksum_mismatches']}"
        state = "sealed" if m.get("sealed") else "being written"
        rows.append(
            f"<tr><td><a href=\"#{anchor(a)}\">{html.escape(a['venue'])} · {html.escape(a['symbol'])} · {a['date']}</a></td>"
            f"<td>{html.escape(a['tier'])}</td><td>{state}</td><td class=n>{a['records']:,}</td>"
            f"<td>{html.escape(span_text(a))}</td><td class=n>{html.escape(mid)}</td><td class=n>{spread}</td>"
            f"<td>{html.escape(invalid)}</td><td class=n>{checks}</td></tr>")
    return ("<table><thead><tr><th>partition (venue · symbol · date)</th><th>tier</th><th>state</th><th>records</th>"
            "<th>exchange time, UTC (span)</th><th>mid-price range</th><th>spread p50 / p99, bps</th>"
            "<th>invalid share of the captured span</th><th>ticker checks / mismatches</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def partition_prose(a):
    m = a["meta"]
    ev = m["events"]
    c = m["checks"]
    tier = TIER_TEXT.get(a["tier"], a["tier"])
    if m.get("sealed"):
        state = "sealed: the refinery closed the day and the files no longer change"
    else:
        state = "still being written: book.q grows as the refinery commits records"
    facts = [f"Tier {tier}; {state}."]
    if a["records"]:
        facts.append(f"{a['records']:,} records with exchange times from {clock(a['first'])} to {clock(a['last'])} UTC "
                     f"({duration(a['last'] - a['first'])}): {plural(ev['depth_updates'], 'depth update')}, "
                     f"{plural(ev['trades'], 'trade')}, {plural(ev['bbo'], 'best bid/offer update')}, "
                     f"{plural(ev['snapshots'], 'snapshot run')}.")
    ds = day_start(a)
    sealed = bool(m.get("sealed"))
    nc, within, after = split_invalid(a)
    if nc:
        facts.append(f"The capture began at {clock(nc[0][1])}; before it the day was not captured.")
    elif a["records"]:
        facts.append("The capture covers the day from midnight (it began the day before).")
    if within:
        if len(within) <= 6:
            listed = "; ".join(interval_text(f, t, r, o, ds, sealed) for f, t, r, o in within)
        else:
            counts = {}
            for _, _, r, _ in within:
                counts[r] = counts.get(r, 0) + 1
            listed = "; ".join(f"{REASON_TEXT.get(r, r)} ×{n}" for r, n in sorted(counts.items()))
        facts.append(f"Within it the book was not valid for {percent(invalid_share(a))} of the time: {listed}.")
    elif a["records"]:
        facts.append("Within it the book was valid throughout.")
    for f, t, r, o in after:
        rest = "the rest of the day" if sealed else "the time since, until a new snapshot,"
        facts.append(f"The capture ended at {clock(f)} ({REASON_TEXT.get(r, r)}): meta.json marks {rest} invalid.")
    gaps = m["completeness"].get("gaps") or []
    if gaps:
        facts.append(f"The trade stream skipped ids {len(gaps)} times ({sum(g.get('missing', 0) for g in gaps):,} trades missing).")
    checks = (f"Self-checks: {plural(c['ticker_checks'], 'bookTicker message')} compared with the rebuilt book right "
              f"after the same update, {c['ticker_mismatches']} mismatched")
    if "checksum_checks" in c:
        checks = (f"Self-checks: the exchange's own checksum of its book, sent with "
                  f"{plural(c['checksum_checks'], 'depth message')}, recomputed on the rebuilt book after each: "
                  f"{c['checksum_mismatches']} mismatched")
    checks += f"; the book was crossed after {c['crossed_events']} updates." if c["crossed_events"] else "; the book never crossed."
    facts.append(checks)
    facts.append(f"Prices in {a['quote']}, sizes in {a['qty_unit']}.")
    return " ".join(html.escape(f) for f in facts)


def write_html(out_dir, mount, parts, drawn, venues):
    sections = [f"<section id=summary><h2>Summary</h2><p>{len(parts)} partitions read through the mount "
                f"<code>{html.escape(mount)}</code>, whichever tier holds each. Exchange times are UTC; the span is "
                "from the first to the last record; the invalid share counts the stretches meta.json marks invalid "
                "within that span (before it, the day was not captured).</p>" + summary_table(parts) + "</section>"]
    if venues:
        png, caption = venues
        sections.append(f"<section id=venues><h2>ETH across venues</h2><figure><img src=\"{png}\" alt=\"ETH across venues\">"
                        f"<figcaption>{html.escape(caption)}</figcaption></figure></section>")
    else:
        sections.append("<section id=venues><h2>ETH across venues</h2><p>Fewer than two venues hold ETH here.</p></section>")
    for a in parts:
        why = chartable(a)
        charts = "".join(f"<figure><img src=\"{png}\" alt=\"{html.escape(a['name'])}\">"
                         f"<figcaption>{html.escape(cap)}</figcaption></figure>" for png, cap in drawn.get(a["name"], []))
        if why:
            charts = f"<p class=note>No charts: {html.escape(why)}.</p>"
        sections.append(f"<section id=\"{anchor(a)}\"><h2>{html.escape(a['name'])}</h2>"
                        f"<p>{partition_prose(a)}</p>{charts}</section>")
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chronicle demo report</title>
<style>
body{{font-family:sans-serif;max-width:1240px;margin:2em auto;color:#222;line-height:1.45}}
section{{border-top:1px solid #ccc;margin-top:1.5em}} img{{max-width:100%;display:block;margin:.5em 0}}
figure{{margin:1em 0}} figcaption{{font-size:.9em;color:#555}} code{{background:#f4f4f4}}
table{{border-collapse:collapse;font-size:.85em}} th,td{{border:1px solid #ddd;padding:.25em .5em;vertical-align:top}}
th{{background:#f4f4f4;text-align:left}} td.n{{text-align:right;white-space:nowrap}} .note{{color:#555}}
</style></head><body>
<h1>Chronicle demo report</h1>
<p>Real Binance, OKX and Kraken captures that the exchange simulator served, <code>chronicle-feed</code> captured,
<code>chronicle-etl</code> refined and <code>chronicle-tier</code> aged, read back through the Chronicle mount with
numpy memory maps of <code>book.q</code>. Mid-price and spread come from the best bid/offer records (bookTicker;
OKX's and Kraken's tickers);
charts draw them as steps, keeping every pixel column's first, last, lowest and highest point.</p>
{''.join(sections)}
</body></html>
"""
    with open(os.path.join(out_dir, "index.html"), "w") as f:
        f.write(doc)


# --- commands ------------------------------------------------------------------------------

def cmd_summary(args):
    parts = []
    print(HEADER)
    found = partitions(args.mount)
    count = {}
    for venue, _, date, _ in found:
        count[(venue, date)] = count.get((venue, date), 0) + 1
    group = []
    for venue, sym, date, pdir in found:
        a = analyse(pdir, venue, sym, date)
        parts.append(a)
        n = count[(venue, date)]
        if n <= GROUP_OVER:
            print(summary_line(a), flush=True)
            continue
        group.append(a)
        if len(group) == n:
            print(group_line(f"{SHORT_VENUE.get(venue, venue)}/{{{n} symbols}}/{date}", group), flush=True)
            group = []
    if not args.report:
        return 0
    os.makedirs(args.report, exist_ok=True)
    plt_setup()  # once, before the workers fork
    import matplotlib.pyplot  # noqa: F401
    jobs = [("venues", parts, args.report)] + [("partition", a, args.report) for a in parts]
    # Two processes: matplotlib is single-threaded, the machine has two cores.
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(render, jobs)
    venues = next(r for k, r in results if k == "venues")
    drawn = {k: r for k, r in results if k != "venues"}
    write_html(args.report, args.mount, parts, drawn, venues)
    return 0


def cmd_journal_count(args):
    syms = set(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    chan_sym = {}
    n = 0
    frame = struct.Struct("<IHHq")
    for seg in sorted(glob.glob(os.path.join(args.journal, "*.q"))):
        h = q.read_header(seg)
        if h["layout"] != q.LAYOUT_JOURNAL:
            raise q.FormatError(f"{seg}: offset 10: not a journal segment (layout {h['layout']})")
        with open(seg, "rb") as f:
            f.seek(h["header_size"])
            data = f.read(h["committed"] - h["header_size"])
        off = 0
        while off + frame.size <= len(data):
            plen, typ, ch, _ = frame.unpack_from(data, off)
            body = data[off + frame.size: off + frame.size + plen]
            if typ == 3:  # connect: which stream (and symbol) each channel carries from now on
                for st in json.loads(body).get("streams", []):
                    chan_sym[st["ch"]] = st["symbol"].upper()
            elif typ == 1 and chan_sym.get(ch) in syms:
                n += 1
            off += (frame.size + plen + 7) & ~7
    print(n)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="one line per partition; --report: index.html with a summary table and charts")
    s.add_argument("mount")
    s.add_argument("--report", help="directory for index.html and its PNG charts")
    s.set_defaults(fn=cmd_summary)
    j = sub.add_parser("journal-count", help="websocket messages of these symbols in a feed journal")
    j.add_argument("journal")
    j.add_argument("symbols")
    j.set_defaults(fn=cmd_journal_count)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
