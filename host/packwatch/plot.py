"""`packwatch plot LOG.csv -o FIG.png`: a summary figure of a log.

Big logs are reduced while reading: every block of rows becomes bins of ``bin_rows`` rows holding
min / max / mean per quantity (a min/max envelope), so a week at 10 Hz (6 million rows) never sits
in memory as rows. Blocks are parsed in parallel processes over byte ranges of the file.
"""
import os
import sys

import numpy as np

from .cli import COUNT
from .files import atomic_output
from .logcsv import cell_columns, temp_columns, read_header, iter_chunks
from .protocol import ALARM_BITS, FAULT_BITS, FET_WORDS

MAX_POINTS = 4000      # bins drawn per quantity
_WANT = ("t_s", "current_a", "stack_v", "soc_pct", "soc_sigma_pct", "alarm", "fault", "fet", "bal")
# One colour per alarm and fault bit (alarms first, then faults, in protocol bit order): Kelly's 20
# colours of maximum contrast (K. L. Kelly, "Twenty-two colors of maximum contrast", 1965; white and
# black left out), so overlapping or neighbouring spans stay distinguishable.
SPAN_COLORS = ("#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#848482", "#008856",
               "#E68FAC", "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17",
               "#8DB600", "#654522", "#E25822", "#2B3D26")


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
        r["soc_lo3"], r["soc_hi3"] = mn(soc - 3 * sig), mx(soc + 3 * sig)
    for key in ("alarm", "fault", "bal"):  # a bin shows a bit if any of its rows had it
        if key in cols:
            a = np.nan_to_num(cols[key]).astype(np.int64)
            r[key] = np.bitwise_or.reduceat(a, starts)
    if "fet" in cols:
        f = cols["fet"]
        # a bin shows a path closed only if it was closed in every row (an open moment stays visible);
        # -1 marks a bin without any reading (rows logged before the column was known)
        known = np.add.reduceat((~np.isnan(f)).astype(np.int64), starts) > 0
        closed = np.bitwise_and.reduceat(np.where(np.isnan(f), (1 << len(FET_WORDS)) - 1, f).astype(np.int64), starts)
        r["fet"] = np.where(known, closed, -1)
    r["n"] = cnt.astype(np.int64)
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


def _label(meta, n_cells):
    """'16S LFP' from the log's header (the device's hdr), else the cell count of the columns."""
    chem = (meta.get("chem") or "").upper()
    cells = meta.get("cells") or n_cells
    try:
        cells = int(cells)
    except ValueError:
        cells = n_cells
    return ("%dS %s" % (cells, chem)) if chem else "%d cells" % cells


def span_color(kind, bit):
    """The colour of alarm (kind 'alarm') or fault ('fault') bit ``bit`` in every figure."""
    k = bit if kind == "alarm" else len(ALARM_BITS) + bit
    return SPAN_COLORS[k % len(SPAN_COLORS)]


def _bit_name(kind, bit):
    names = ALARM_BITS if kind == "alarm" else FAULT_BITS
    return names[bit] if bit < len(names) else "%s bit%d" % (kind, bit)


def figure(path, title=None, workers=None, max_points=MAX_POINTS, truth=None):
    """The summary figure of log ``path`` as a matplotlib Figure (not drawn, not registered with pyplot).

    Artists carry gids so callers (and tests) can find them: lines ``cellNN`` (mean per bin),
    ``vmin``/``vmax``, ``spread``, ``pack``, ``current``, ``tempN``, ``soc``, ``fet_charge``/``fet_discharge``
    (1 = path closed, 0 = open, nan = not logged); ``bal:cellNN`` (the broken bars of the times cell NN
    balanced, in the ``balance`` panel, from the log's ``bal`` column); with ``truth`` (a truth file of `packwatch sim --truth`,
    packwatch.truth) also ``soc_truth`` (the plant's pack SoC at the log's times); the broken bars of each alarm/fault ``alarm:NAME`` /
    ``fault:NAME`` in the events panel (labelled NAME, one legend entry each). The axes are in
    ``fig.panels`` (dict name → Axes)."""
    from matplotlib.figure import Figure
    from matplotlib import colormaps
    b, names, meta, _ = summarize(path, workers, max_points)
    cells, temps = cell_columns(names), temp_columns(names)
    t = b["t"]
    rows = int(b["n"].sum())
    span = float(np.nanmax(b["t"]) - np.nanmin(b["t_min"])) if len(t) else 0.0
    unit, div = ("h", 3600.0) if span > 2 * 3600 else ("min", 60.0) if span > 300 else ("s", 1.0)
    x = t / div
    has_soc = "soc" in b and not np.all(np.isnan(b["soc"]))
    has_t = bool(temps) and not all(np.all(np.isnan(b["temp%d" % j])) for j in range(len(temps)))
    has_fet = "fet" in b and bool(np.any(b["fet"] >= 0))
    events = [(kind, bit) for kind in ("alarm", "fault") if kind in b
              for bit in range(int(np.bitwise_or.reduce(b[kind])).bit_length()) if np.any(b[kind] >> bit & 1)]
    bal_cells = []
    if "bal" in b:
        ever = int(np.bitwise_or.reduce(b["bal"])) if len(b["bal"]) else 0
        bal_cells = [k for k in range(ever.bit_length()) if ever >> k & 1]
    panels = (["cells", "spread", "pack", "current"] + (["temp"] if has_t else []) + (["soc"] if has_soc else [])
              + (["balance"] if bal_cells else []) + (["events"] if events or has_fet else []))
    n_rows = len(events) + (len(FET_WORDS) if has_fet else 0)
    ratios = {"cells": 3, "spread": 1.2, "pack": 1.6, "current": 1.6, "temp": 1.6, "soc": 1.8,
              "events": 0.5 + 0.35 * n_rows, "balance": 0.5 + 0.25 * len(bal_cells)}
    fig = Figure(figsize=(13, 1.6 + 1.45 * len(panels)))
    # legends sit in the right margin, beside their panel, so none covers a trace
    side = {"loc": "upper left", "bbox_to_anchor": (1.005, 1.0), "fontsize": 7, "frameon": False}
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [ratios[p] for p in panels]})[:, 0]
    ax = fig.panels = dict(zip(panels, axes))
    a = ax["cells"]
    cm = colormaps["viridis"]
    for j in range(b["cell_mean"].shape[1]):
        a.plot(x, b["cell_mean"][:, j], lw=0.6, color=cm(j / max(1, len(cells) - 1)), alpha=0.8,
               gid="cell%02d" % (j + 1))
    a.fill_between(x, b["vmin"], b["vmax"], color="0.6", alpha=0.35, lw=0, label="min-max envelope (all cells)")
    a.plot(x, b["vmin"], color="tab:blue", lw=0.7, label="min cell", gid="vmin")
    a.plot(x, b["vmax"], color="tab:red", lw=0.7, label="max cell", gid="vmax")
    a.set_ylabel("cell [V]")
    a.legend(**side)
    a = ax["spread"]
    a.plot(x, b["spread"] * 1000, color="tab:purple", lw=0.8, gid="spread")
    a.set_ylabel("spread [mV]")
    a = ax["pack"]
    a.fill_between(x, b["pack_min"], b["pack_max"], color="tab:green", alpha=0.3, lw=0)
    a.plot(x, b["pack"], color="tab:green", lw=0.8, gid="pack")
    a.set_ylabel("pack [V]")
    a = ax["current"]
    a.fill_between(x, b["i_min"], b["i_max"], color="tab:orange", alpha=0.3, lw=0)
    a.plot(x, b["i"], color="tab:orange", lw=0.8, gid="current")
    a.axhline(0, color="0.4", lw=0.6)
    a.set_ylabel("current [A]\n(+ charge)")
    for p in ("pack", "current"):  # room above and below the envelope, so no trace sits on an edge
        ax[p].margins(y=0.12)
    if has_t:
        a = ax["temp"]
        for j, c in enumerate(temps):
            line, = a.plot(x, b["temp%d" % j], lw=0.8, label=c.replace("_c", ""), gid="temp%d" % (j + 1))
            a.fill_between(x, b["temp%d_min" % j], b["temp%d_max" % j], color=line.get_color(), alpha=0.2, lw=0)
        a.set_ylabel("temp [°C]")
        a.legend(ncol=1 + len(temps) // 4, **side)
    if has_soc:
        a = ax["soc"]
        a.fill_between(x, np.clip(b["soc_lo"], 0, 100), np.clip(b["soc_hi"], 0, 100), color="tab:blue", alpha=0.25,
                       lw=0, label="±1σ")
        if truth is not None:
            a.fill_between(x, np.clip(b["soc_lo3"], 0, 100), np.clip(b["soc_hi3"], 0, 100), color="tab:blue",
                           alpha=0.1, lw=0, label="±3σ")
        a.plot(x, b["soc"], color="tab:blue", lw=1.0, label="SoC", gid="soc")
        if truth is not None:
            tt, ts = _truth_soc(path, truth)
            a.plot(tt / div, ts, color="black", lw=0.8, ls="--", label="plant's SoC (truth)", gid="soc_truth")
        a.set_ylim(-2, 102)
        a.set_ylabel("SoC [%]")
        a.legend(**side)
    # bins are drawn from their first row to the next bin's first row
    edges = np.append(b["t_min"], b["t_min"][-1] + (b["t_min"][-1] - b["t_min"][0]) / max(1, len(t) - 1)) / div
    if bal_cells:
        a = ax["balance"]
        cm = colormaps["viridis"]
        for row, k in enumerate(reversed(bal_cells)):  # cell 1 at the top, as in the cells panel's order
            on = (b["bal"] >> k) & 1 == 1
            bars = [(edges[s], edges[e + 1] - edges[s]) for s, e in _runs(on)]
            a.broken_barh(bars, (row + 0.15, 0.7), facecolors=cm(k / max(1, len(cells) - 1)),
                          gid="bal:cell%02d" % (k + 1))
        a.set_ylim(0, len(bal_cells))
        a.set_yticks([r + 0.5 for r in range(len(bal_cells))],
                     ["cell%02d" % (k + 1) for k in reversed(bal_cells)], fontsize=6)
        a.tick_params(axis="y", length=0)
        a.set_ylabel("balancing")
    if "events" in ax:
        a = ax["events"]
        ticks = []
        row = n_rows - 1
        if has_fet:
            for bit, name in enumerate(FET_WORDS):  # `fet` column: bit set = that path closed
                closed = np.where(b["fet"] < 0, np.nan, (b["fet"] >> bit) & 1).astype(float)
                y0 = row
                a.fill_between(edges[:-1], y0 + 0.1, y0 + 0.1 + 0.8 * closed, step="post", color="0.55",
                               alpha=0.6, lw=0)
                a.plot(x, closed, lw=0, gid="fet_" + name)  # the data, for readers of the figure
                ticks.append((y0 + 0.5, "%s path" % name))
                row -= 1
        for kind, bit in events:
            name, color = _bit_name(kind, bit), span_color(kind, bit)
            on = (b[kind] >> bit) & 1 == 1
            bars = [(edges[s], edges[e + 1] - edges[s]) for s, e in _runs(on)]
            a.broken_barh(bars, (row + 0.1, 0.8), facecolors=color, label=name, gid="%s:%s" % (kind, name))
            for s, w in bars:
                for aa in axes[:-1]:
                    aa.axvspan(s, s + w, color=color, alpha=0.15, lw=0)
            ticks.append((row + 0.5, name))
            row -= 1
        a.set_ylim(0, n_rows)
        a.set_yticks([p for p, _ in ticks], [n for _, n in ticks], fontsize=7)
        a.tick_params(axis="y", length=0)
        a.set_ylabel("state")
        if events:
            a.legend(title="alarms / faults", title_fontsize=7, **side)
        if has_fet:
            a.text(1.005, 0.0, "grey: path closed", transform=a.transAxes, fontsize=6, va="bottom")
    axes[-1].set_xlabel("time since log start [%s]" % unit)
    if len(x) > 1:
        axes[-1].set_xlim(b["t_min"][0] / div, x[-1])
    for aa in axes:
        aa.grid(True, lw=0.3, alpha=0.5)
    head = title or os.path.basename(str(path))
    info = "%s, %s rows, %.1f %s" % (_label(meta, len(cells)), format(rows, ","), span / div, unit)
    if meta.get("board"):
        info += ", board " + meta["board"]
    if meta.get("start_utc"):
        info += ", from " + meta["start_utc"]
    if meta.get("fw"):
        info += ", fw " + meta["fw"]
    fig.suptitle("%s\n%s" % (head, info), fontsize=10)
    fig.tight_layout()
    return fig


def _truth_soc(path, truth):
    """(log t_s, pack SoC %) of the truth rows that fall inside the log (aligned by boot + dev_ms)."""
    from .logcsv import read_log
    from .truth import log_times

    tr = read_log(truth, columns=("dev_ms", "boot", "soc_pct"))
    if not {"dev_ms", "boot", "soc_pct"} <= set(tr.cols):
        raise ValueError("%s: not a truth file (no dev_ms, boot, soc_pct columns: write one with "
                         "`packwatch sim --truth`)" % truth)
    lg = read_log(path, columns=("dev_ms",))
    if "dev_ms" not in lg.cols:
        raise ValueError("%s: no dev_ms column to align the truth with" % path)
    t = log_times(tr.cols["dev_ms"], tr.cols["boot"], lg.cols["dev_ms"], lg.t_s)
    ok = ~np.isnan(t)
    return t[ok], tr.cols["soc_pct"][ok]


def _runs(mask):
    """(first, last) index pairs of the True runs of mask."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1))


def plot(path, out, title=None, workers=None, dpi=110, truth=None):
    """Write the summary figure of log ``path`` to ``out`` (format from its suffix); returns ``out``."""
    with atomic_output(out, [path, truth]) as tmp:  # never the log itself; never half a file
        figure(path, title, workers, truth=truth).savefig(tmp, dpi=dpi)
    return out


def main(args):
    try:
        plot(args.log, args.output, title=args.title, workers=args.workers, truth=args.truth)
    except (OSError, ValueError) as e:
        print("packwatch plot: %s" % e, file=sys.stderr)
        return 2
    print(args.output)
    return 0


def register(sub):
    p = sub.add_parser("plot", help="plot a CSV log to an image")
    p.add_argument("log", help="CSV log (packwatch log schema)")
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument("--title", default=None, help="figure title (default: the log's file name)")
    p.add_argument("--truth", default=None, metavar="TRUTH.csv",
                   help="the plant's truth of a virtual board's run (`packwatch sim --truth`): its pack SoC is "
                   "drawn over the board's SoC and ±3σ band, aligned by boot and dev_ms")
    p.add_argument("--workers", type=COUNT, default=None, metavar="N",
                   help="parallel parser processes (default: cores, max 4)")
    p.set_defaults(func=main)
    return p
