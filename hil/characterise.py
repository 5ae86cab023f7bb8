"""A bench characterisation of one cell, run on the plant (hil/plant.py): the sample log `packwatch fit` ships.

What a user does with a bench supply and an electronic load (docs/cell-model.md, "Recording a
characterisation log"), in the plant's time: a CC-CV charge to full, 10 % steps at C/2 down to the
cut-off and back up (the first of each at C/20), each followed by a 1 h rest and an HPPC pulse pair (1 C discharge 10 s, 0.75 C
charge 10 s, 10 min rests); the last 10 % down to the cut-off and up to the CV hold at C/20 (the knees
come out of slow curves as well as rested points).

The log is sampled like a careful logger that thins its output: 1 s for 30 s after every current change
and during pulses, then 10 s, and 60 s late in long rests (a real recording at 1 s throughout works the
same, it is only bigger). Voltages are quantised to 1 mV and currents to 1 mA, as `packwatch log` writes
them. Current sign: + = charging.

    python -m hil.characterise -o host/packwatch/data/char_lfp.csv     # regenerates the shipped sample
"""
import argparse
import math

import numpy as np

from hil.plant import Plant
from hil.pybamm_cells import LIMITS

H = 3600.0


def _rest(seconds):
    """A rest sampled densely at first (the relaxation), sparsely later."""
    out = [("rest", min(seconds, 30.0), None, None, 1.0)]
    if seconds > 30:
        out.append(("rest", min(seconds, 180.0) - 30.0, None, None, 10.0))
    if seconds > 180:
        out.append(("rest", seconds - 180.0, None, None, 60.0))
    return out


def steps(chemistry, c, first=-1, cccv=True, step_pct=10, rest_s=H, pulses=True):
    """The protocol for a cell of ``c`` Ah: ("cc", amps, max_s, v_limit, period_s),
    ("cv", volts, i_end, None, period_s), ("rest", seconds, None, None, period_s).
    ``first``: -1 sweeps down first, +1 up first; ``cccv``: a CC-CV charge to full before the sweeps
    (without it the log starts wherever the cell is); ``step_pct``: size of the OCV steps; ``rest_s``:
    the rest after each step; ``pulses``: an HPPC pulse pair after each rest. A down sweep ends with
    C/20 to the cut-off, an up sweep with C/20 to V_max and the CV hold."""
    vmax, vmin = LIMITS[chemistry]
    s = [("cc", c / 5, None, vmax, 10.0), ("cv", vmax, c / 50, None, 10.0)] + _rest(H) if cccv else []
    frac = step_pct / 100.0
    for sign in (first, -first):
        lim = vmin if sign < 0 else vmax
        for k in range(max(0, int(round(1 / frac)) - 1)):
            # the first step at C/20 (as good as OCV at the knee next to full / empty), then C/2
            s += [("cc", sign * c / 20, frac * 20 * H, lim, 60.0) if k == 0 else
                  ("cc", sign * c / 2, frac * 2 * H, lim, 10.0)]
            s += _rest(rest_s)
            if pulses:
                s += [("cc", -c, 10.0, vmin, 1.0)] + _rest(600.0) + [("cc", 0.75 * c, 10.0, vmax, 1.0)] + _rest(600.0)
        s += [("cc", sign * c / 20, None, lim, 60.0)]  # the last part to the limit at C/20
        s += ([("cv", vmax, c / 50, None, 10.0)] if sign > 0 else []) + _rest(H)
    return s


def run(chemistry="lfp", capacity_ah=100.0, soc0=0.5, dt_s=1.0, period_s=None, h0=-1.0, **protocol):
    """Runs the protocol (``protocol``: the keywords of steps()) on a one-cell plant (no cell spread);
    returns (rows, plant): rows are (t_s, current_a, cell_v, truth_soc): what is logged plus the
    plant's SoC (the truth for checks). ``period_s`` logs every sample at that period instead of the
    thinned sampling."""
    plant = Plant(chemistry, n_cells=1, seed=0, capacity_ah=capacity_ah, spread=False, soc0=soc0, h0=h0)
    dt_ms = int(round(dt_s * 1000))
    rows = [(0.0, 0.0, plant.stack_v, plant._soc[0])]
    for kind, a, b, c, period in steps(chemistry, capacity_ah, **protocol):
        period = period_s or period
        t0 = plant.t_ms
        i = 0.0
        every = max(1, int(round(period / dt_s)))
        k = 0
        while True:
            v0, r0 = plant.v0_stack, plant.r0_stack
            if kind == "rest":
                if plant.t_ms - t0 >= a * 1000 - 1e-6:
                    break
                i = 0.0
            elif kind == "cc":
                v = plant.stack_v
                if (b is not None and plant.t_ms - t0 >= b * 1000 - 1e-6) or (
                        k and (v >= c if a > 0 else v <= c)):
                    break
                i = a
            else:  # cv: the supply holds a volts, its current tapers until b amps
                i = max(0.0, (a - v0) / r0) if not k else min(i, max(0.0, (a - v0) / r0))
                if k and i < b:
                    break
            plant.profile = _Fixed(i)
            plant.step(dt_ms)
            k += 1
            if k % every == 0:
                rows.append((plant.t_ms / 1000.0, i, plant.stack_v, plant._soc[0]))
        if k % every:  # the step's last moment is always logged
            rows.append((plant.t_ms / 1000.0, i, plant.stack_v, plant._soc[0]))
    return rows, plant


class _Fixed:
    chargers = ()

    def __init__(self, i):
        self.i = i

    def current(self, t_ms, plant):
        return self.i


def sense(rows, noise_ma=0.0, offset_ma=0.0, gain=0.0, noise_mv=0.0, gaps=0, gap_s=600.0, seed=0):
    """What a logger sees of the truth rows: current (1 + gain) I + offset + Gaussian noise (mA), at
    rest too (a shunt amplifier's offset and noise); cell voltage + Gaussian noise (mV); ``gaps``
    spans of ``gap_s`` seconds missing (a logger that stopped), anywhere in the log."""
    rng = np.random.default_rng(seed)
    a = np.array(rows, float)
    n = len(a)
    i = a[:, 1] * (1 + gain) + (offset_ma + rng.normal(0.0, noise_ma, n) * (noise_ma > 0)) / 1000.0
    v = a[:, 2] + rng.normal(0.0, noise_mv, n) / 1000.0 * (noise_mv > 0)
    keep = np.ones(n, bool)
    for t0 in rng.uniform(a[0, 0], a[-1, 0] - gap_s, gaps) if gaps else ():
        keep[(a[:, 0] > t0) & (a[:, 0] < t0 + gap_s)] = False
    return [(a[k, 0], i[k], v[k], a[k, 3]) for k in np.flatnonzero(keep)]


def write(path, rows, chemistry, capacity_ah):
    """The rows as a packwatch log CSV (logcsv's schema: t_s, current_a, cell01_v)."""
    with open(path, "w", newline="\n") as f:
        f.write("# packwatch log\n# log_format: 1\n# source: hil/characterise.py (plant %s cell, %g Ah)\n"
                "# chem: %s\n# cells: 1\n# units: t_s=s current_a=A cell01_v=V\nt_s,current_a,cell01_v\n"
                % (chemistry, capacity_ah, chemistry))
        for t, i, v, _ in rows:
            f.write("%.1f,%.3f,%.3f\n" % (t, i, math.floor(v * 1000 + 0.5) / 1000))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", required=True, help="CSV to write")
    p.add_argument("--chemistry", choices=sorted(LIMITS), default="lfp")
    p.add_argument("--capacity-ah", type=float, default=100.0, help="cell capacity (default 100 Ah)")
    p.add_argument("--start", choices=("cccv", "full", "empty", "mid"), default="cccv",
                   help="cccv: a CC-CV charge first, from 50 %% (the sample); full / empty / mid: the cell "
                   "starts there (rested) and the sweeps begin at once (full and mid: down first, empty: up)")
    p.add_argument("--up-first", action="store_true", help="sweep up first (with --start mid or cccv)")
    p.add_argument("--step-pct", type=float, default=10.0, help="OCV step size (default 10 %%)")
    p.add_argument("--rest-s", type=float, default=H, help="rest after each step (default 3600 s)")
    p.add_argument("--no-pulses", action="store_true", help="no HPPC pulse pairs")
    p.add_argument("--period-s", type=float, default=None, help="log every sample at this period "
                   "(default: 1 s after changes, 10 s, 60 s late in rests)")
    p.add_argument("--noise-ma", type=float, default=0.0, help="current sensor noise, 1 sigma (mA)")
    p.add_argument("--offset-ma", type=float, default=0.0, help="current sensor offset (mA)")
    p.add_argument("--gain", type=float, default=0.0, help="current sensor gain error (0.002 = +0.2 %%)")
    p.add_argument("--noise-mv", type=float, default=0.0, help="voltage noise, 1 sigma (mV)")
    p.add_argument("--gaps", type=int, default=0, help="number of 10 min gaps in the log")
    p.add_argument("--seed", type=int, default=0, help="seed of the sensor errors and gaps")
    a = p.parse_args(argv)
    soc0, h0 = {"cccv": (0.5, -1.0), "full": (1.0, 1.0), "empty": (0.0, -1.0), "mid": (0.5, -1.0)}[a.start]
    first = 1 if a.start == "empty" or a.up_first else -1
    rows, plant = run(a.chemistry, a.capacity_ah, soc0=soc0, h0=h0, period_s=a.period_s, first=first,
                      cccv=a.start == "cccv", step_pct=a.step_pct, rest_s=a.rest_s, pulses=not a.no_pulses)
    rows = sense(rows, a.noise_ma, a.offset_ma, a.gain, a.noise_mv, a.gaps, seed=a.seed)
    write(a.output, rows, a.chemistry, a.capacity_ah)
    print("%s: %d rows, %.1f h" % (a.output, len(rows), rows[-1][0] / H))


if __name__ == "__main__":
    main()
