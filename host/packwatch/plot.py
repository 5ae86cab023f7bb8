"""`packwatch plot LOG.csv -o FIG.png`: a summary figure of a log.

Big logs are reduced while reading: every block of rows becomes bins of ``bin_rows`` rows holding
min / max / mean per quantity (a min/max envelope), so a week at 10 Hz (6 million rows) never sits
in memory as rows. Blocks are parsed in parallel processes over byte ranges of the file.
"""
import os
import sys

import numpy as np

from .logcsv import cell_columns, temp_columns, read_header, iter_chunks
from .protocol import ALARM_BITS

MAX_POINTS = 4000      # bins drawn per quantity
_WANT = ("t_s", "current_a", "stack_v", "soc_pct", "soc_sigma_pct", "alarm")


def _reduce(cols, cells, temps, k):
    """Rows → bins of k rows: dict of per-bin arrays."""
    n = len(cols["t_s"])
    starts = np.arange(0, n, k)
    cnt = np.diff(np.append(starts, n)).astype(float)

    def mn(a):
        return np.fmin.reduceat(a, starts) if len(a) else a

    def mx(a):
        return np.fmax.reduceat(a, starts) if len(a) else a

    def mean(a):
        ok = ~np.isnan(a)
        s = np.add.reduceat(np.where(ok, a, 0.0), starts)
        c = np.add.reduceat(ok.astype(float), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            return s / c
    r = {"t": np.add.reduceat(cols["t_s"], starts) / cnt, "t_min": cols["t_s"][starts]}
    cv = np.column_stack([cols[c] for c in cells])
    with np.errstate(invalid="ignore"):
        row_min, row_max = np.fmin.reduce(cv, axis=1), np.fmax.reduce(cv, axis=1)
    r["vmin"], r["vmax"] = mn(row_min), mx(row_max)
    r["spread"] = mx(row_max - row_min)
    r["cell_mean"] = np.column_stack([mean(cols[c]) for c in cells])
    pack = cols["stack_v"] if "stack_v" in cols and not np.all(np.isnan(cols["stack_v"])) else np.nansum(cv, axis=1)
    for key, a in (("pack", pack), ("i", cols["current_a"])):
        r[key + "_min"], r[key + "_max"], r[key] = mn(a), mx(a), mean(a)
    for j, c in enumerate(temps):
        r["temp%d_min" % j], r["temp%d_max" % j], r["temp%d" % j] = mn(cols[c]), mx(cols[c]), mean(cols[c])
    if "soc_pct" in cols:
        soc = cols["soc_pct"]
        sig = cols.get("soc_sigma_pct", np.zeros_like(soc))
        r["soc"], r["soc_lo"], r["soc_hi"] = mean(soc), mn(soc - sig), mx(soc + sig)
    if "alarm" in cols:
        a = np.nan_to_num(cols["alarm"]).astype(np.int64)
        r["alarm"] = np.bitwise_or.reduceat(a, starts)
    return r


def _work(job):
    path, start, end, k, want = job
    with open(path, "rb") as f:
        names, _ = read_header(f, path)
    cells, temps = cell_columns(names), temp_columns(names)
    parts = []
    for _, _, cols in iter_chunks(path, columns=set(want) | set(cells) | set(temps), start=start, end=end,
                                  block=max(1 << 20, k * 200 * 8)):
        if len(cols["t_s"]):
            parts.append(_reduce(cols, cells, temps, k))
    return parts


def _merge(parts):
    keys = parts[0].keys()
    return {key: np.concatenate([p[key] for p in parts]) for key in keys}


def summarize(path, workers=None, max_points=MAX_POINTS):
    """Read ``path`` into binned envelopes. Returns (bins dict, names, meta, rows_estimate)."""
    path = str(path)
    with open(path, "rb") as f:
        names, meta = read_header(f, path)
        head = f.tell()
        sample = f.read(1 << 16)
    size = os.path.getsize(path)
    line_len = max(1, len(sample) / max(1, sample.count(b"\n")))
    est_rows = max(1, int((size - head) / line_len))
    k = max(1, est_rows // max_points)
    want = [c for c in _WANT if c in names]
    workers = workers or min(os.cpu_count() or 1, 4)
    if size - head < (64 << 20) or workers == 1:
        parts = _work((path, None, None, k, want))
    else:
        import concurrent.futures as cf
        step = (size - head) // workers + 1
        jobs = [(path, head + i * step, head + (i + 1) * step, k, want) for i in range(workers)]
        with cf.ProcessPoolExecutor(workers) as ex:
            parts = [p for ps in ex.map(_work, jobs) for p in ps]
    if not parts:
        raise ValueError("%s: no data rows" % path)
    return _merge(parts), names, meta, est_rows


def _spans(t, mask):
    """(start, end) time spans where mask is true."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    s, e = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    return [(t[a], t[b]) for a, b in zip(s, e)]


def plot(path, out, title=None, workers=None, dpi=110):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    b, names, meta, est = summarize(path, workers)
    cells, temps = cell_columns(names), temp_columns(names)
    t = b["t"]
    span = float(np.nanmax(b["t"]) - np.nanmin(b["t_min"])) if len(t) else 0.0
    unit, div = ("h", 3600.0) if span > 3 * 3600 else ("min", 60.0) if span > 300 else ("s", 1.0)
    x = t / div
    has_soc = "soc" in b and not np.all(np.isnan(b["soc"]))
    has_t = bool(temps) and not all(np.all(np.isnan(b["temp%d" % j])) for j in range(len(temps)))
    panels = ["cells", "spread", "pack"] + (["temp"] if has_t else []) + (["soc"] if has_soc else [])
    ratios = {"cells": 3, "spread": 1.2, "pack": 2, "temp": 1.6, "soc": 1.8}
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(12, 2.0 + 1.6 * len(panels)),
                             gridspec_kw={"height_ratios": [ratios[p] for p in panels]})
    ax = dict(zip(panels, axes))
    a = ax["cells"]
    cm = plt.get_cmap("viridis")
    for j in range(b["cell_mean"].shape[1]):
        a.plot(x, b["cell_mean"][:, j], lw=0.6, color=cm(j / max(1, len(cells) - 1)), alpha=0.8)
    a.fill_between(x, b["vmin"], b["vmax"], color="0.6", alpha=0.35, lw=0, label="min-max envelope (all cells)")
    a.plot(x, b["vmin"], color="tab:blue", lw=0.7, label="min cell")
    a.plot(x, b["vmax"], color="tab:red", lw=0.7, label="max cell")
    a.set_ylabel("cell [V]")
    a.legend(loc="upper right", fontsize=7, ncol=3)
    a = ax["spread"]
    a.plot(x, b["spread"] * 1000, color="tab:purple", lw=0.8)
    a.set_ylabel("spread [mV]")
    a = ax["pack"]
    a.fill_between(x, b["pack_min"], b["pack_max"], color="tab:green", alpha=0.3, lw=0)
    a.plot(x, b["pack"], color="tab:green", lw=0.8)
    a.set_ylabel("pack [V]", color="tab:green")
    a2 = a.twinx()
    a2.fill_between(x, b["i_min"], b["i_max"], color="tab:orange", alpha=0.3, lw=0)
    a2.plot(x, b["i"], color="tab:orange", lw=0.8)
    a2.axhline(0, color="0.5", lw=0.5)
    a2.set_ylabel("current [A] (+ charge)", color="tab:orange")
    if has_t:
        a = ax["temp"]
        for j, c in enumerate(temps):
            line, = a.plot(x, b["temp%d" % j], lw=0.8, label=c.replace("_c", ""))
            a.fill_between(x, b["temp%d_min" % j], b["temp%d_max" % j], color=line.get_color(), alpha=0.2, lw=0)
        a.set_ylabel("temp [°C]")
        a.legend(loc="upper right", fontsize=7, ncol=len(temps))
    if has_soc:
        a = ax["soc"]
        a.fill_between(x, np.clip(b["soc_lo"], 0, 100), np.clip(b["soc_hi"], 0, 100), color="tab:blue", alpha=0.25,
                       lw=0, label="±1σ")
        a.plot(x, b["soc"], color="tab:blue", lw=1.0, label="SoC")
        a.set_ylim(-2, 102)
        a.set_ylabel("SoC [%]")
        a.legend(loc="upper right", fontsize=7)
    if "alarm" in b and b["alarm"].any():
        seen = set()
        for bit, name in enumerate(ALARM_BITS):
            spans = _spans(x, (b["alarm"] >> bit) & 1 == 1)
            for s, e in spans:
                for aa in axes:
                    aa.axvspan(s, e if e > s else s + (x[-1] - x[0]) / 1000, color="red", alpha=0.15, lw=0)
            if spans:
                seen.add(name)
        axes[0].text(0.01, 0.97, "alarms: " + ", ".join(sorted(seen)), transform=axes[0].transAxes, va="top",
                     fontsize=8, color="darkred")
    axes[-1].set_xlabel("time since log start [%s]" % unit)
    for aa in axes:
        aa.grid(True, lw=0.3, alpha=0.5)
    head = title or os.path.basename(str(path))
    info = "%d cells, ~%s rows, %.1f %s" % (len(cells), format(est, ","), span / div, unit)
    if meta.get("start_utc"):
        info += ", from " + meta["start_utc"]
    if meta.get("fw"):
        info += ", fw " + meta["fw"]
    fig.suptitle("%s\n%s" % (head, info), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def main(args):
    try:
        plot(args.log, args.output, title=args.title, workers=args.workers)
    except (OSError, ValueError) as e:
        print("packwatch plot: %s" % e, file=sys.stderr)
        return 2
    print(args.output)
    return 0


def register(sub):
    p = sub.add_parser("plot", help="plot a CSV log to an image")
    p.add_argument("log", help="CSV log (packwatch log schema)")
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument("--title", default=None)
    p.add_argument("--workers", type=int, default=None, help="parallel parser processes (default: cores, max 4)")
    p.set_defaults(func=main)
    return p
