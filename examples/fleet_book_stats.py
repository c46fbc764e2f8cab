#!/usr/bin/python3
"""Daily spread percentiles and top-10 depth imbalance of every partition, on a Dask fleet.

Each Dask worker is a research host: it mounts the bucket with chronicle-fs (remote tier
only, read-only keys; docs/research-hosts.md) at CHRONICLE_ROOT (default /chronicle). The
script lists the partitions on one worker, maps partition_stats over all of them (each task
reads one partition's views/top10.npy through its worker's mount) and gathers one table,
a row per partition, sorted by venue, symbol and date. With --local ROOT it computes the
same table in this process from a mount (or any tree) at ROOT, without Dask: the fleet's
table equals it (integration/research TestFleet).

    # on a fleet (dask-scheduler, dask-worker tcp://SCHEDULER:8786 on each research host)
    /usr/bin/python3 examples/fleet_book_stats.py --scheduler tcp://10.0.0.5:8786 --out stats.csv
    # one process, one mount
    /usr/bin/python3 examples/fleet_book_stats.py --local /chronicle --out stats.csv

The columns (docs/research-fleet.md): venue, symbol, date; rows (top-10 rows: one per
depth update), valid (rows with a valid book and both sides quoted); spread_bps_p50, _p90,
_p99 (ask - bid over mid, basis points, over the valid rows); imbalance_mean, _p10, _p50,
_p90 (top-10 depth imbalance (bid qty - ask qty) / (bid qty + ask qty)); bytes (the size
of views/top10.npy read). Needs numpy and pandas (Debian: python3-numpy, python3-pandas)
and, for --scheduler, python3-distributed.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

INVALID = 0x10  # a top-N row's flag: the book is unknown (docs/format/views.md)
COLUMNS = ["venue", "symbol", "date", "rows", "valid", "spread_bps_p50", "spread_bps_p90", "spread_bps_p99",
           "imbalance_mean", "imbalance_p10", "imbalance_p50", "imbalance_p90", "bytes"]


def mount_root(root=None):
    """The mount on this host: root, else CHRONICLE_ROOT, else /chronicle."""
    return root or os.environ.get("CHRONICLE_ROOT") or "/chronicle"


def list_partitions(root=None):
    """Every partition directory below root/v1, as "v1/venue/symbol/date", sorted."""
    base = os.path.join(mount_root(root), "v1")
    out = []
    for venue in sorted(os.listdir(base)):
        for symbol in sorted(os.listdir(os.path.join(base, venue))):
            for date in sorted(os.listdir(os.path.join(base, venue, symbol))):
                out.append("/".join(("v1", venue, symbol, date)))
    return out


def partition_stats(part, root=None):
    """One partition's row of the table, from its views/top10.npy; None when it has no
    book views (a partition of the unmapped stream, say)."""
    d = os.path.join(mount_root(root), part)
    try:
        top = np.load(os.path.join(d, "views", "top10.npy"), mmap_mode="r")
    except FileNotFoundError:
        return None
    _, venue, symbol, date = part.split("/")
    row = {"venue": venue, "symbol": symbol, "date": date, "rows": int(len(top)),
           "bytes": os.path.getsize(os.path.join(d, "views", "top10.npy"))}
    bid, ask = top["bid_price"][:, 0], top["ask_price"][:, 0]
    ok = ((top["flags"] & INVALID) == 0) & (bid > 0) & (ask > 0)
    row["valid"] = int(ok.sum())
    if row["valid"] == 0:
        return {**{c: float("nan") for c in COLUMNS}, **row}
    # Prices are fixed-point integers with one scale per partition: the ratio needs none.
    b, a = bid[ok].astype(np.float64), ask[ok].astype(np.float64)
    spread = (a - b) / ((a + b) / 2) * 1e4
    bq = top["bid_qty"][ok].sum(axis=1, dtype=np.int64).astype(np.float64)
    aq = top["ask_qty"][ok].sum(axis=1, dtype=np.int64).astype(np.float64)
    imb = (bq - aq) / (bq + aq)
    p50, p90, p99 = np.percentile(spread, [50, 90, 99])
    i10, i50, i90 = np.percentile(imb, [10, 50, 90])
    row.update(spread_bps_p50=float(p50), spread_bps_p90=float(p90), spread_bps_p99=float(p99),
               imbalance_mean=float(imb.mean()), imbalance_p10=float(i10), imbalance_p50=float(i50),
               imbalance_p90=float(i90))
    return row


def table(rows):
    """The gathered rows as a DataFrame, sorted by partition."""
    import pandas as pd
    df = pd.DataFrame([r for r in rows if r is not None], columns=COLUMNS)
    return df.sort_values(["venue", "symbol", "date"], kind="stable").reset_index(drop=True)


def on_fleet(scheduler, workers, timeout):
    """Map partition_stats over every partition on the fleet; returns the rows, which
    worker computed each partition, and the seconds from the listing to the last row."""
    from distributed import Client
    with Client(scheduler, timeout=timeout) as client:
        if workers:
            client.wait_for_workers(workers, timeout=timeout)
        t0 = time.monotonic()
        parts = client.submit(list_partitions, pure=False).result()
        futs = client.map(partition_stats, parts, pure=False)
        rows = client.gather(futs)
        secs = time.monotonic() - t0
        where = {}
        for f, p in zip(futs, parts):
            for w in client.who_has(f).get(f.key, ()):
                where[p] = w
        return rows, where, secs


def main():
    ap = argparse.ArgumentParser(description="Daily spread percentiles and top-10 depth imbalance of every partition.",
                                 epilog="examples:\n  %(prog)s --scheduler tcp://10.0.0.5:8786 --out stats.csv\n"
                                        "  %(prog)s --local /chronicle --out stats.csv",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler", help="the Dask scheduler's address (tcp://HOST:8786)")
    where.add_argument("--local", metavar="ROOT", help="compute in this process from the mount at ROOT")
    ap.add_argument("--workers", type=int, default=0, help="wait for this many workers first")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to wait for the scheduler and workers")
    ap.add_argument("--out", help="write the table as CSV here (default: print it)")
    ap.add_argument("--summary", help="write a JSON summary here: partitions, bytes, seconds, partitions per worker")
    args = ap.parse_args()

    if args.local:
        t0 = time.monotonic()
        rows = [partition_stats(p, args.local) for p in list_partitions(args.local)]
        secs = time.monotonic() - t0
        per_worker = {"local": len(rows)}
    else:  # timed from the listing on, once the workers are there
        rows, placed, secs = on_fleet(args.scheduler, args.workers, args.timeout)
        per_worker = {}
        for w in placed.values():
            per_worker[w] = per_worker.get(w, 0) + 1
    df = table(rows)
    text = df.to_csv(index=False, float_format="%.17g")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    summary = {"partitions": len(df), "bytes": int(df["bytes"].sum()), "seconds": secs, "per_worker": per_worker}
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f)
    print(f"{len(df)} partitions, {summary['bytes'] / 1e6:.1f} MB of views in {secs:.2f} s "
          f"({len(df) / secs:.1f} partitions/s); per worker: {per_worker}", file=sys.stderr)


if __name__ == "__main__":
    main()
