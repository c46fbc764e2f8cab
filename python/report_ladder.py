"""Book ladders for the demo report: cumulative bid and ask size by price at a few instants
of a partition, read from its views/top25.npy through the mount (numpy.load, no replay).

    import report_ladder
    pngs = report_ladder.draw(partition_dir, "perp/eth-usdt/2024-08-08", out_dir, stem)

Each chart shows, at the depth update nearest a quarter, half and three quarters of the
partition's time span (rows whose book was valid), the bids' cumulative size stepping
down from the best bid and the asks' stepping up from the best ask: the shape of the
book a market order of a given size would walk.
"""

import os

import numpy as np

VIEW = "top25.npy"
INVALID = 0x10  # a row flag: the book was unknown (docs/format/views.md)


def instants(rows, k=3):
    """Indices of up to k valid rows spread over the time span."""
    ok = np.nonzero((np.asarray(rows["flags"]) & INVALID) == 0)[0]
    if not len(ok):
        return []
    ts = np.asarray(rows["ts_exchange"])[ok]
    out = []
    for f in np.linspace(0.25, 0.75, k):
        target = ts[0] + (ts[-1] - ts[0]) * f
        i = int(ok[min(np.searchsorted(ts, target), len(ok) - 1)])
        if i not in out:
            out.append(i)
    return out


def draw(pdir, title, out_dir, stem, price_decimals=8, qty_decimals=8):
    """Draws the ladders of one partition into out_dir; returns the PNG names (none when
    the partition has no views/ or no valid row)."""
    path = os.path.join(pdir, "views", VIEW)
    if not os.path.exists(path):
        return []
    rows = np.load(path, mmap_mode="r")
    picks = instants(rows)
    if not picks:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps, qs = 10.0 ** price_decimals, 10.0 ** qty_decimals
    fig, axes = plt.subplots(1, len(picks), figsize=(9, 3.0), squeeze=False)
    for ax, i in zip(axes[0], picks):
        r = rows[i]
        for side, color in (("bid", "tab:green"), ("ask", "tab:orange")):
            p, q = np.asarray(r[side + "_price"]), np.asarray(r[side + "_qty"])
            have = q > 0  # 0 past the last level of a side
            if have.any():
                ax.step(p[have] / ps, np.cumsum(q[have]) / qs, where="post", color=color, lw=1, label=side + "s")
        t = np.datetime64(int(r["ts_exchange"]), "ns").astype("datetime64[ms]")
        ax.set_title(str(t).replace("T", " ")[11:], fontsize=8)
        ax.set_xlabel("price", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("cumulative size", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title + ": book ladder (top 25 levels, views/top25.npy)", fontsize=9)
    fig.tight_layout()
    name = stem + "_ladder.png"
    fig.savefig(os.path.join(out_dir, name), dpi=80)
    plt.close(fig)
    return [name]
