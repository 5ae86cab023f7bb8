"""Multi-day balancing on the virtual board (issue 14, Numbers): a 16S LFP pack with a +-3 % SoC spread
and a +-2 % capacity spread (uniform, seeded) goes through one cycle a day - a CC-CV charge in the
morning (0.2 C to 3.50 V per cell on average, tail 0.02 C), a rest in the afternoon, an inverter load
in the evening (down to about 35 %), a rest at night - while the unmodified firmware balances through
the simulated BQ76952 (CB_ACTIVE_CELLS) and the plant bleeds each balanced cell through the board's
resistor (bal_r_ohm 55 ohm: ~60 mA at 3.3 V; --set bal_r_ohm=27 for another board).

Per day, from the plant's truth (not the firmware's view): the top-of-charge spread (max - min cell
voltage at the end of the charge: the last step with charge current), the usable capacity (the charge
left until the first cell is empty, at that moment: min over cells of SoC x capacity), and the charge
bled; from the firmware: its cell_ov alarms (evt cell_ov on=1) and the AFE's COV (prot bit 1). Target
(issue 14): spread < 10 mV at top of charge within 7 days; no cell-ov trip after day 2.

The firmware samples every --sample-ms (default 1000 ms; the board's default is 100): balancing acts on
minutes and hours, and at 100 ms a simulated day costs ten times the wall time. Pass --sample-ms 100
for the board's own rate.

Run: .venv/bin/python bench/hil/bench_balancing.py --days 7        (writes bench/results/balancing.md
     and docs/balancing.png; make bench-balancing)
     .venv/bin/python bench/hil/bench_balancing.py --days 1 --no-write
     .venv/bin/python bench/hil/bench_balancing.py --days 8 --seeds 1-5 --jobs 2 --set bal_max_cells=8 ...
                                                      (the spread over five packs: balancing_seeds_....md)
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "firmware"))

from hil import profiles as P  # noqa: E402
from hil.plant import Plant  # noqa: E402
from hil.scenarios import Scenario  # noqa: E402
from packwatch.protocol import Decoder  # noqa: E402
from packwatch.vboard import VirtualBoard  # noqa: E402
from pwfw.config_keys import KEYS  # noqa: E402

LFP = {k[0]: k[1] for k in KEYS}  # the firmware's LFP defaults, for the text (one source of truth)

H = 3600.0
DAY = 24 * H
N = 16
V_CV = 3.50  # per cell, the charger's CV (56.0 V): a high cell runs past cell_ov (3.65 V) while out of balance
SOC_SPREAD, CAP_SPREAD = 0.03, 0.02
TARGET_MV = 10


class BenchScenario(Scenario):
    """Daily cycles on a pack with a uniform +-3 % SoC and +-2 % capacity spread (seeded)."""

    def __init__(self, days, cap_ah, soc0=0.5):
        self.cap_ah = cap_ah
        self.soc0 = soc0

        def parts(seed):
            out = []
            c = cap_ah
            for d in range(days):
                t = d * DAY
                # ends at its tail current; a BMS that opens the path pauses it, and it goes on when the
                # path closes again (it sees the battery back), so one trip does not end the day's charge
                out.append(P.Charger(0.2 * c, N * V_CV, 0.02 * c, t + 8 * H, t + 16 * H, stop_on_disconnect=False))
                # ~65 % of the pack in 5 h: 0.13 C at ~52 V through a 90 % inverter
                out.append(P.InverterLoad(0.13 * c * 52.0 / 0.9 * 0.9, t + 18 * H, t + 23 * H))
            return out
        super().__init__("balancing_bench", days * DAY, parts, plant_kw={"spread": False, "h0": -1.0,
                                                                         "capacity_ah": cap_ah})

    def make_plant(self, seed=0, bal_r_ohm=None, bal_rsw_ohm=None):
        pl = super().make_plant(seed, bal_r_ohm, bal_rsw_ohm)
        rng = np.random.default_rng(1000 + seed)
        pl.cap_ah = self.cap_ah * (1.0 + rng.uniform(-CAP_SPREAD, CAP_SPREAD, N))
        pl._coef.clear()  # the SoC gain per step depends on the capacity
        pl._soc = list(self.soc0 + rng.uniform(-SOC_SPREAD, SOC_SPREAD, N))
        pl._advance(0.0, pl._coefs(0))
        return pl


def run(days, cap_ah, seed, sample_ms, heap, log=print, limits=None):
    import serial

    sc = BenchScenario(days, cap_ah)
    board = json.loads((ROOT / "boards" / "sim.json").read_text())
    board["capacity_mah"] = int(cap_ah * 1000)
    board["sample_ms"] = sample_ms
    board["report_ms"] = max(1000, sample_ms)
    if limits:
        board["limits"] = dict(board.get("limits") or {}, **limits)
    with tempfile.TemporaryDirectory() as d:
        bf = Path(d) / "board.json"
        bf.write_text(json.dumps(board))
        vb = VirtualBoard(sc, seed=seed, board_file=bf, fs_dir=Path(d) / "fs", truth_every_ms=10000,
                          heap=heap)
        pl = vb.plant
        cap_k = pl.cap_ah.copy()
        soc_k = np.array(pl._soc)
        vb.start()
        ser = serial.serial_for_url(vb.port, timeout=0.05)
        dec = Decoder()
        rows, frames = [], []
        t_wall = time.monotonic()
        end = days * DAY * 1000
        next_log = DAY * 1000
        try:
            while vb.t_ms < end:
                frames += [(vb.t_ms, t, f) for t, f in dec.feed(ser.read(65536)) if t in ("evt", "cell", "rep")]
                if len(frames) > 5000:  # keep what the report needs, not every rep
                    frames = [x for x in frames if x[1] != "rep"] + [x for x in frames if x[1] == "rep"][-1:]
                with vb._lock:
                    rows += vb.truth
                    vb.truth = []
                if vb.error:
                    raise RuntimeError("virtual board failed: %r" % vb.error)
                if vb.t_ms >= next_log:
                    log("  day %d done (%.0f s wall)" % (next_log // (DAY * 1000), time.monotonic() - t_wall))
                    next_log += DAY * 1000
            bled = list(pl.bled_as)
        finally:
            ser.close()
            vb.stop()
    wall = time.monotonic() - t_wall
    return summarize(rows, frames, cap_k, days), bled, wall, rows, need_ah(soc_k, cap_k)


def need_ah(soc, cap):
    """The charge each cell must lose to stand level with the lowest at the top of charge (plant truth):
    the charge missing from full, (1 - SoC) x capacity, is what a series charge leaves between the cells."""
    miss = (1.0 - soc) * cap
    return miss.max() - miss


def days_needed(need, max_cells, hours, duty, i_a=3.4 / 55, adjacent=False):
    """A lower bound on the days passive balancing needs (any schedule), each cell bleeding at most i_a
    for `hours` a day at `duty`: the most any one cell needs, the whole over max_cells bled at once, and
    without `adjacent` any two neighbours together (never bled at once), with it any three in a row
    (never all three at once: at most two of them bleed). With adjacent pairs pass the pair's current
    as i_a for a bound that holds (a pair bleeds faster than a cell alone), V / R for the single rate."""
    per_day = i_a * hours * duty  # Ah one cell can lose in a day
    parts = {"one cell": need.max() / per_day}
    if adjacent:
        parts["three in a row"] = max(need[k:k + 3].sum() / 2 for k in range(len(need) - 2)) / per_day
    else:
        parts["two neighbours"] = max(need[k] + need[k + 1] for k in range(len(need) - 1)) / per_day
    parts["all"] = need.sum() / max_cells / per_day
    return max(parts.values()), parts


def summarize(rows, frames, cap_k, days):
    t = np.array([r[0] for r in rows]) / 1000.0
    i = np.array([r[1] for r in rows]) / 1000.0
    v = np.array([r[3] for r in rows]) / 10.0  # mV
    soc = np.array([r[5] for r in rows])
    bal = np.array([r[12] for r in rows])
    out = []
    for d in range(days):
        day = (t >= d * DAY) & (t < (d + 1) * DAY)
        chg = np.flatnonzero(day & (i > 0.05) & (t >= d * DAY + 7 * H) & (t < d * DAY + 17 * H))
        k = chg[-1] if len(chg) else None
        ov = [f for ts, tp, f in frames if tp == "evt" and f.get("name") == "cell_ov" and f.get("on") == 1
              and d * DAY * 1000 <= ts < (d + 1) * DAY * 1000]
        cov = [f for ts, tp, f in frames if tp == "evt" and f.get("name") == "cov" and f.get("on") == 1
               and d * DAY * 1000 <= ts < (d + 1) * DAY * 1000]
        on_h = float(np.sum(day & (bal != 0)) * 10.0 / H)
        out.append({
            "day": d + 1,
            "spread_mv": None if k is None else float(v[k].max() - v[k].min()),
            "vmax_mv": None if k is None else float(v[k].max()),
            "usable_ah": None if k is None else float((soc[k] * cap_k).min()),
            "cell_ov": len(ov), "afe_cov": len(cov), "bal_h": on_h,
        })
    return out


def table(res):
    lines = ["| day | top-of-charge max−min [mV] | highest cell [mV] | usable capacity [Ah] | cell_ov trips | "
             "AFE COV | hours with a cell balancing |", "|---|---|---|---|---|---|---|"]
    for r in res:
        f = (lambda x, fmt: "—" if x is None else fmt % x)
        lines.append("| %d | %s | %s | %s | %d | %d | %.1f |" % (
            r["day"], f(r["spread_mv"], "%.1f"), f(r["vmax_mv"], "%.0f"), f(r["usable_ah"], "%.2f"),
            r["cell_ov"], r["afe_cov"], r["bal_h"]))
    first = next((r["day"] for r in res if r["spread_mv"] is not None and r["spread_mv"] < TARGET_MV), None)
    late_ov = sum(r["cell_ov"] + r["afe_cov"] for r in res if r["day"] > 2)
    return "\n".join(lines), first, late_ov


def plot(rows, res, path, cap_ah, r_ohm=55):
    from matplotlib.figure import Figure

    t = np.array([r[0] for r in rows]) / 1000.0 / DAY
    v = np.array([r[3] for r in rows]) / 10.0
    bal = np.array([r[12] for r in rows])
    fig = Figure(figsize=(11, 6.5))
    a, b, c = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1.3, 1]})
    a.plot(t, v.max(1) - v.min(1), lw=0.6, color="tab:purple", label="max−min (plant, every 10 s)")
    days = np.array([r["day"] for r in res if r["spread_mv"] is not None])
    top = np.array([r["spread_mv"] for r in res if r["spread_mv"] is not None])
    a.plot(days - 1 + 15.5 / 24, top, "o", color="black", label="top of charge")
    a.axhline(TARGET_MV, color="tab:red", lw=0.8, ls="--", label="target 10 mV")
    a.set_yscale("log")
    a.set_ylabel("cell spread [mV]")
    a.legend(fontsize=7, loc="upper right")
    b.plot(t, v.max(1), lw=0.5, color="tab:red", label="highest cell")
    b.plot(t, v.min(1), lw=0.5, color="tab:blue", label="lowest cell")
    b.axhline(3650, color="0.3", lw=0.6, ls=":", label="cell_ov 3650 mV")
    b.set_ylabel("cell [mV]")
    b.legend(fontsize=7, loc="lower right")
    for k in range(N):
        on = (bal >> k & 1).astype(bool)
        c.fill_between(t, k + 0.1, k + 0.9, where=on, step="post", color="tab:green", lw=0)
    c.set_yticks(range(0, N, 3), ["cell%02d" % (k + 1) for k in range(0, N, 3)], fontsize=6)
    c.set_ylim(0, N)
    c.set_ylabel("balancing")
    c.set_xlabel("day")
    fig.suptitle("16S LFP %.0f Ah, ±3 %% SoC / ±2 %% capacity spread, %d Ω bleed: plant truth" % (cap_ah, r_ohm),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _cmd(a, limits, packs):
    """The command line that reproduces a run, for the results' text (packs: --seed or --seeds)."""
    return ".venv/bin/python bench/hil/bench_balancing.py --days %d --capacity-ah %g %s --sample-ms %d%s" % (
        a.days, a.capacity_ah, packs, a.sample_ms, "".join(" --set %s=%d" % kv for kv in sorted(limits.items())))


def _one(args):
    days, cap_ah, seed, sample_ms, heap, limits = args
    res, bled, wall, rows, need = run(days, cap_ah, seed, sample_ms, heap, log=lambda *_: None, limits=limits)
    return seed, res, wall, need


def many(a, seeds, limits):
    """Several seeds (packs) with the same settings: per-day top-of-charge spread for each, and the spread
    over them (the issue's target is per pack: the worst counts)."""
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.monotonic()
    jobs = [(a.days, a.capacity_ah, sd, a.sample_ms, a.heap, limits) for sd in seeds]
    with ProcessPoolExecutor(max(1, a.jobs)) as ex:
        out = sorted(ex.map(_one, jobs))
    wall = time.monotonic() - t0
    lines = ["| day | " + " | ".join("seed %d [mV]" % sd for sd, *_ in out) + " | median | worst |",
             "|---" * (len(out) + 3) + "|"]
    for d in range(a.days):
        v = [r[d]["spread_mv"] for _, r, _, _ in out]
        ok = [x for x in v if x is not None]
        lines.append("| %d | %s | %s | %s |" % (d + 1, " | ".join("—" if x is None else "%.1f" % x for x in v),
                                               "%.1f" % float(np.median(ok)) if ok else "—",
                                               "%.1f" % max(ok) if ok else "—"))
    first = []
    for sd, r, w, need in out:
        _, f, late = table(r)
        first.append((sd, f, late, need.sum(), w))
    days_ = [f or np.inf for _, f, _, _, _ in first]  # a seed not met within the run counts as later than all
    miss = days_.count(np.inf)

    def when(x):
        return "day %g" % x if np.isfinite(x) else "not within %d days" % a.days
    tag = "".join("_%s_%d" % kv for kv in sorted(limits.items()))
    cmd = _cmd(a, limits, "--seeds %s --jobs %d" % (a.seeds, a.jobs))
    text = "\n".join([
        "# Balancing over days (issue 14), seeds %s%s" % (a.seeds, "".join(", %s %d" % kv for kv in sorted(limits.items()))),
        "", "`%s` (%.0f s wall). Top-of-charge max−min cell voltage per day (plant truth), per seed:" % (cmd, wall), "",
        *lines, "",
        "| seed | first day < %d mV | trips after day 2 | to bleed [Ah] | wall [s] |" % TARGET_MV, "|---|---|---|---|---|",
        *["| %d | %s | %d | %.1f | %.0f |" % (sd, f or "not within %d" % a.days, late, nd, w) for sd, f, late, nd, w in first],
        "",
        "First day under %d mV: median %s, worst %s (%d of %d seeds not within %d days)." % (
            TARGET_MV, when(np.median(days_)), when(max(days_)), miss, len(first), a.days), ""])
    print(text)
    if not a.no_write:
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / ("balancing_seeds%s.md" % tag)).write_text(text)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--capacity-ah", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample-ms", type=int, default=1000)
    ap.add_argument("--heap", default="96K", help="the virtual board's heap (default: a board's 96K)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a board-file limit (bal_r_ohm=27, bal_max_cells=8, ...); results then go to"
                         " bench/results/balancing_<key>_<value>...md and docs/balancing_....png")
    ap.add_argument("--seeds", metavar="A-B|A,B,...",
                    help="several packs (seeds), one summary with the spread over them (median, worst) in"
                         " bench/results/balancing_seeds<...>.md instead of one seed's table and plot")
    ap.add_argument("--jobs", type=int, default=1, help="with --seeds: virtual boards at once")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    limits = {}
    for kv in a.set:
        k, _, v = kv.partition("=")
        if not v.lstrip("-").isdigit():
            ap.error("--set wants KEY=INTEGER, got %r" % kv)
        limits[k] = int(v)
    if a.seeds:
        try:
            lo, _, hi = a.seeds.partition("-")
            seeds = list(range(int(lo), int(hi) + 1)) if hi else [int(x) for x in a.seeds.split(",")]
        except ValueError:
            ap.error("--seeds wants A-B or A,B,..., got %r" % a.seeds)
        return many(a, seeds, limits)
    res, bled, wall, rows, need = run(a.days, a.capacity_ah, a.seed, a.sample_ms, a.heap, limits=limits)
    tag = "".join("_%s_%d" % kv for kv in sorted(limits.items()))
    duty = 57 / 60  # the 3 s decision window of every bal_s (60 s)
    r_ohm = limits.get("bal_r_ohm", LFP["bal_r_ohm"])
    rsw = limits.get("bal_rsw_ohm", LFP["bal_rsw_ohm"])
    other = ", ".join("%s %d" % kv for kv in sorted(limits.items()) if kv[0] not in ("bal_r_ohm", "bal_rsw_ohm"))
    paper = []
    for label, cells_, hours, r, adj in (
            ("defaults: 4 cells, charge and rest (19 h a day), 55 Ω", 4, 19, 55, 0),
            ("bal_max_cells 8, bal_dsg 1 (24 h a day), 55 Ω", 8, 24, 55, 0),
            ("bal_max_cells 8, bal_adjacent 1 (charge and rest), 55 Ω", 8, 19, 55, 1),
            ("bal_max_cells 8, bal_dsg 1, bal_adjacent 1, 55 Ω", 8, 24, 55, 1),
            ("defaults, 27 Ω (126 mA)", 4, 19, 27, 0)):
        rates = [3.4 / r] + ([6.8 / (r + rsw)] if adj else [])  # V / R; a pair's loop current
        for i in rates:
            d, parts = days_needed(need, cells_, hours, duty, i, adj)
            paper.append("| %s%s | %s | %.1f |" % (
                label, ", pairs at %.0f mA" % (i * 1000) if i != rates[0] else "",
                " / ".join("%s %.1f" % (k, parts[k]) for k in parts), d))
    tab, first, late = table(res)
    cmd = _cmd(a, limits, "--seed %d" % a.seed)
    bled_mah = ", ".join("%.0f" % (q / 3.6) for q in bled)
    text = "\n".join([
        "# Balancing over days (issue 14)%s" % "".join(", %s %d" % kv for kv in sorted(limits.items())), "",
        "`%s` (%.0f s wall for %d simulated days; `make bench-balancing`). 16S LFP %.0f Ah, SoC spread ±3 %%"
        " and capacity spread ±2 %% (uniform, seed %d), one cycle a day: CC-CV charge 08:00 (0.2 C to 3.50 V"
        " per cell, tail 0.02 C), rest, inverter load 18:00–23:00, rest; firmware sampling every %d ms,"
        " policy defaults (bal_start_mv %d, start/stop %d/%d mV, at most %d cells, none adjacent, bal_s %d,"
        " charge stop %d mV below cell_ov)%s, bleed path %d Ω (of it the AFE switch %d Ω); the charger ends"
        " at its tail current and goes on when a path the BMS opened closes again."
        " Values from the plant's truth; trips from the firmware's events." % (
            cmd, wall, a.days, a.capacity_ah, a.seed, a.sample_ms, LFP["bal_start_mv"], LFP["bal_start_dmv"],
            LFP["bal_stop_dmv"], LFP["bal_max_cells"], LFP["bal_s"], LFP["chg_stop_dmv"],
            " but for " + other if other else "", r_ohm, rsw), "",
        tab, "",
        "![spread over days](balancing%s.png)" % tag, "",
        "On paper, from the plant's start (charge each cell must lose, Ah: %s; %.1f Ah in all), at 3.4 V"
        " over the resistor (and for pairs their loop current, (V1 + V2) / (bal_r_ohm + bal_rsw_ohm)) and the"
        " %.0f %% duty: the fewest days any schedule needs (the one cell that needs most / two neighbours,"
        " never bled at once, or with bal_adjacent three in a row, never all at once / all of it over the"
        " cells bled at once; `days_needed`):" % (
            ", ".join("%.2f" % x for x in need), need.sum(), duty * 100), "",
        "| settings | bounds [days] | at least [days] |", "|---|---|---|",
        *paper, "",
        "Target (< %d mV at top of charge): %s. Over-voltage trips after day 2: %d. Charge bled per cell"
        " over the run (mAh, plant): %s." % (
            TARGET_MV, "first met on day %d" % first if first else "not met within %d days" % a.days, late, bled_mah),
        ""])
    print(text)
    if not a.no_write:
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / ("balancing%s.md" % tag)).write_text(text)
        plot(rows, res, ROOT / "docs" / ("balancing%s.png" % tag), a.capacity_ah, limits.get("bal_r_ohm", 55))
    return 0


if __name__ == "__main__":
    sys.exit(main())
