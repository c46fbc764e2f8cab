#!/usr/bin/env python3
"""What a researcher sees of Chronicle's partitions: a summary and charts, read through the mount.

    /usr/bin/python3 python/demo_report.py summary MOUNT [--report DIR]
        One line per partition below MOUNT/v1 (its tier from the mount's user.chronicle.tier
        extended attribute, records by type, first and last exchange time, mid-price range,
        spread percentiles, the invalid intervals of meta.json). With --report, draws per
        partition a chart of mid-price and spread over exchange time and one of top-of-book
        depth (matplotlib), and gathers them with the figures in DIR/index.html.
    /usr/bin/python3 python/demo_report.py journal-count JOURNAL_DIR SYMBOL[,SYMBOL...]
        The websocket messages a chronicle-feed journal holds for these symbols (streams are
        mapped to symbols by the journal's own connect records), for comparison with what
        the exchange sent.

Everything is read with numpy (python/chronicle_q.py maps book.q) and json; the mount serves
every tier (hot, warm, cold, remote) as plain files, so nothing here knows where a partition
lives. scripts/demo.sh runs it.
"""

import argparse
import datetime
import glob
import html
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chronicle_q as q  # noqa: E402
import report_ladder  # noqa: E402

TIER_XATTR = "user.chronicle.tier"
SHORT_VENUE = {"binance-perp": "perp", "binance-coinm": "coinm", "binance-spot": "spot"}
MAX_POINTS = 2500  # per plotted series: more only costs drawing time


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


def hms(ns):
    t = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
    return t.strftime("%H:%M:%S.") + f"{t.microsecond // 100000}"


def analyse(pdir):
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
    ts = np.asarray(bbo["ts_exchange"])
    bid = np.asarray(bbo["bid_price"]) / scale
    ask = np.asarray(bbo["ask_price"]) / scale
    a = {
        "path": path, "tier": tier, "meta": meta, "records": len(book), "types": types,
        "first": int(book["ts_exchange"].min()) if len(book) else 0,
        "last": int(book["ts_exchange"].max()) if len(book) else 0,
        "ts": ts, "mid": (bid + ask) / 2, "spread": ask - bid,
        "bid_qty": np.asarray(bbo["bid_qty"]) / qscale, "ask_qty": np.asarray(bbo["ask_qty"]) / qscale,
        "qty_unit": meta.get("instrument", {}).get("qty_unit", "base"),
    }
    return a


def invalid_text(meta):
    """meta.json's invalid intervals by reason, and trade-id gaps."""
    inv = meta["completeness"].get("invalid") or []
    gaps = meta["completeness"].get("gaps") or []
    reasons = {}
    for i in inv:
        reasons[i["reason"]] = reasons.get(i["reason"], 0) + 1
    parts = [f"{r}" + (f"x{n}" if n > 1 else "") for r, n in sorted(reasons.items())]
    if gaps:
        parts.append(f"trade gaps x{len(gaps)}")
    return ",".join(parts) or "-"


def summary_line(name, a):
    t = a["types"]
    if len(a["mid"]):
        mid = f"{a['mid'].min():.6g}-{a['mid'].max():.6g}"
        p50, p99 = np.percentile(a["spread"], [50, 99])
        spread = f"{p50:.4g}/{p99:.4g}"
    else:
        mid, spread = "-", "-"
    return (f"{name:<32} {a['tier']:<6} {a['records']:>7} {t[q.LEVEL]:>7} {t[q.TRADE]:>6} {t[q.BBO]:>6}"
            f"  {hms(a['first'])}-{hms(a['last'])}  {mid:>17}  {spread:>11}  {invalid_text(a['meta'])}")


HEADER = (f"{'partition':<32} {'tier':<6} {'records':>7} {'levels':>7} {'trades':>6} {'bbo':>6}"
          f"  {'exchange time (UTC)':<21}  {'mid-price range':>17}  {'spread p50/p99':>11}  invalid intervals")


def thin(*cols):
    n = len(cols[0])
    if n <= MAX_POINTS:
        return cols
    step = -(-n // MAX_POINTS)
    return tuple(c[::step] for c in cols)


def draw(a, title, out_dir, stem):
    """mid-price and spread; top-of-book depth. Returns the two file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = a["ts"].astype("datetime64[ns]")
    t1, mid, spread = thin(t, a["mid"], a["spread"])
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(9, 4.6), height_ratios=[3, 1.3])
    ax1.plot(t1, mid, lw=0.7, color="tab:blue")
    ax1.set_ylabel("mid-price")
    ax1.set_title(title, fontsize=10)
    ax1.grid(alpha=0.3)
    ax2.step(t1, spread, lw=0.7, color="tab:red", where="post")
    ax2.set_ylabel("spread")
    ax2.set_xlabel("exchange time (UTC)")
    ax2.grid(alpha=0.3)
    mid_png = save(plt, fig, out_dir, stem + "_mid_spread.png")

    t2, bq, aq = thin(t, a["bid_qty"], a["ask_qty"])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(t2, bq, lw=0.6, color="tab:green", label="best bid size")
    ax.plot(t2, -aq, lw=0.6, color="tab:orange", label="best ask size (negated)")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel(f"size ({a['qty_unit']})")
    ax.set_xlabel("exchange time (UTC)")
    ax.set_title(title + ": top-of-book depth", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    depth_png = save(plt, fig, out_dir, stem + "_depth.png")
    return mid_png, depth_png


def save(plt, fig, out_dir, name):
    """lays out a time-axis figure, writes it to out_dir/name and closes it; returns name."""
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=80)
    plt.close(fig)
    return name


def write_html(out_dir, mount, rows):
    parts = []
    for name, a, pngs in rows:
        m = a["meta"]
        inv = "".join(f"<li>{html.escape(i['from'])} to {html.escape(i['to'])}: {html.escape(i['reason'])}"
                      f"{' (open)' if i.get('open') else ''}</li>" for i in m["completeness"].get("invalid") or []) or "<li>none</li>"
        ev = m["events"]
        facts = (f"tier <b>{html.escape(a['tier'])}</b>, {a['records']:,} records "
                 f"({ev['depth_updates']:,} depth updates, {ev['trades']:,} trades, {ev['bbo']:,} best bid/offer, "
                 f"{ev['snapshots']} snapshot runs), sealed: {m['sealed']}, ticker checks {m['checks']['ticker_checks']:,} "
                 f"/ mismatches {m['checks']['ticker_mismatches']}, crossed events {m['checks']['crossed_events']}")
        imgs = "".join(f'<img src="{p}" alt="{html.escape(name)}">' for p in pngs) or "<p>(no best bid/offer records)</p>"
        parts.append(f"<section><h2>{html.escape(name)}</h2><p>{facts}</p>"
                     f"<p>Invalid intervals (meta.json <code>completeness.invalid</code>):</p><ul>{inv}</ul>{imgs}</section>")
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Chronicle demo report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
section{{border-top:1px solid #ccc;margin-top:1.5em}} img{{max-width:100%;display:block;margin:.5em 0}}
code{{background:#f4f4f4}}</style></head><body>
<h1>Chronicle demo report</h1>
<p>Every figure and chart below was read through the Chronicle mount <code>{html.escape(mount)}</code>
(numpy memory maps of <code>book.q</code>, whatever tier holds it), from real Binance captures that
the exchange simulator served, <code>chronicle-feed</code> captured and <code>chronicle-etl</code>
refined. Mid-price and spread come from the best bid/offer records (bookTicker); top-of-book depth is
the size at the best bid and ask.</p>
{''.join(parts)}
</body></html>
"""
    with open(os.path.join(out_dir, "index.html"), "w") as f:
        f.write(doc)


def render(job):
    name, a, out_dir, stem = job
    pngs = list(draw(a, name, out_dir, stem)) if len(a["ts"]) else []
    # book ladders at a few instants, from the partition's views/top25.npy
    return name, pngs + report_ladder.draw(a["dir"], name, out_dir, stem, a["price_decimals"], a["qty_decimals"])


def cmd_summary(args):
    rows = []
    print(HEADER)
    for venue, sym, date, pdir in partitions(args.mount):
        name = f"{SHORT_VENUE.get(venue, venue)}/{sym}/{date}"
        a = analyse(pdir)
        a.update(dir=pdir, price_decimals=q.read_header(os.path.join(pdir, "book.q"))["price_decimals"],
                 qty_decimals=q.read_header(os.path.join(pdir, "book.q"))["qty_decimals"])
        print(summary_line(name, a), flush=True)
        rows.append((name, a, f"{venue}_{sym}_{date}"))
    if not args.report:
        return 0
    os.makedirs(args.report, exist_ok=True)
    import matplotlib  # once, before the workers fork
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    jobs = [(name, a, args.report, stem) for name, a, stem in rows]
    # Two processes: matplotlib is single-threaded, the machine has two cores.
    if len(jobs) > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(2) as pool:
            drawn = dict(pool.map(render, jobs))
    else:
        drawn = dict(map(render, jobs))
    write_html(args.report, args.mount, [(name, a, drawn[name]) for name, a, _ in rows])
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
    s = sub.add_parser("summary", help="one line per partition; --report: charts and index.html")
    s.add_argument("mount")
    s.add_argument("--report", help="directory for the PNG charts and index.html")
    s.set_defaults(fn=cmd_summary)
    j = sub.add_parser("journal-count", help="websocket messages of these symbols in a feed journal")
    j.add_argument("journal")
    j.add_argument("symbols")
    j.set_defaults(fn=cmd_journal_count)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
