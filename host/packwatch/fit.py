"""`packwatch fit`: fit a cell model (docs/cell-model.md) from a one-cell characterisation log.

Segments are found from the current alone: a CC-CV charge (the CV tail defines 100 %), slow (about
C/20) discharge and charge, rested incremental-OCV steps in both directions, HPPC pulses. Capacity is the
charge taken out from the end of the first CV hold down to the lowest point; SoC follows by counting.
OCV branches: the slow curves with the IR drop removed, pulled onto the rested points of the same
direction; R0 from the voltage step at current steps; two RC pairs from the relaxations after pulses.
"""
import json
import sys
from pathlib import Path

import numpy as np

from packwatch.files import atomic_output
from packwatch.logcsv import read_log

GRID_PCT = [0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90,
            93, 95, 97, 98, 99, 100]
TAU1 = (5.0, 10.0, 20.0, 40.0, 80.0)
TAU2 = (200.0, 400.0, 800.0, 1600.0, 3200.0)
# a characterisation log that ships with the package (100 Ah LFP cell, made by hil/characterise.py)
SAMPLE_LOG = Path(__file__).resolve().parent / "data" / "char_lfp.csv"


def _runs(mask):
    """(start, end) index pairs (end exclusive) of the True runs of mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _branch(soc, v, rest_soc, rest_v):
    """Branch on GRID_PCT: slow-curve shape pulled onto the rested points."""
    g = np.array(GRID_PCT, float) / 100
    base = None
    if len(soc) > 10:
        o = np.argsort(soc)
        base = np.interp(g, soc[o], v[o])
    if len(rest_soc) >= 3:
        o = np.argsort(rest_soc)
        rs, rv = np.asarray(rest_soc)[o], np.asarray(rest_v)[o]
        if base is None:
            return np.interp(g, rs, rv)
        resid = rv - np.interp(rs, g, base)
        return base + np.interp(g, rs, resid)
    return base


def _fit_relax(t, v, i_pulse, t_pulse):
    """Two-RC fit of a relaxation after a pulse: returns (r1, tau1, r2, tau2) or None."""
    best = None
    tt = t - t[0]
    for t1 in TAU1:
        for t2 in TAU2:
            a = np.column_stack([np.ones_like(tt), np.exp(-tt / t1), np.exp(-tt / t2)])
            coef = np.linalg.lstsq(a, v, rcond=None)[0]
            err = float(np.sum((a @ coef - v) ** 2))
            if best is None or err < best[0]:
                best = (err, coef, t1, t2)
    _, coef, t1, t2 = best
    # after a discharge pulse the voltage recovers: v = vinf - A e^(-t/tau), A = |I| R (1 - e^(-Tp/tau))
    sgn = np.sign(i_pulse)
    r1 = sgn * coef[1] / (abs(i_pulse) * (1 - np.exp(-t_pulse / t1)))
    r2 = sgn * coef[2] / (abs(i_pulse) * (1 - np.exp(-t_pulse / t2)))
    if r1 <= 0 or r2 <= 0:
        return None
    return r1, t1, r2, t2


def fit_model(csv_path, chemistry=None):
    """Fit a cell model dict (docs/cell-model.md) from a characterisation log of one cell."""
    log = read_log(str(csv_path))
    t = np.asarray(log.t_s, float)
    i = np.nan_to_num(np.asarray(log.current_a, float))
    v = np.nanmean(log.cells_v, axis=1)
    if len(t) < 100:
        raise ValueError("%s: too short for a characterisation log" % csv_path)
    dt = np.diff(t, prepend=t[0])
    q = np.cumsum(i * dt) / 3600.0
    # 100 %: end of a CC-CV charge (voltage held at its top while the current tapered)
    anchors = []
    for s, e in _runs(i > 0):
        if e - s >= 3 and i[e - 1] <= 0.5 * np.max(i[s:e]) and v[e - 1] >= np.nanmax(v[s:e]) - 0.005:
            anchors.append(e - 1)
    if not anchors:
        raise ValueError("%s: no CC-CV charge found (current tapering at the top voltage)" % csv_path)
    vmax = float(v[anchors[0]])
    # capacity: the deepest discharge from (or to) a full anchor
    cap, k_full, k_empty = 0.0, anchors[0], anchors[0]
    bounds = [0] + anchors + [len(q)]
    for j, k in enumerate(anchors):
        before, after = bounds[j] + int(np.argmin(q[bounds[j]:k + 1])), k + int(np.argmin(q[k:bounds[j + 2]]))
        for e in (before, after):
            if q[k] - q[e] > cap:
                cap, k_full, k_empty = float(q[k] - q[e]), k, e
    if cap <= 0:
        raise ValueError("%s: no discharge from full charge" % csv_path)
    soc = 1.0 + (q - q[k_full]) / cap
    c = cap  # 1 C in A
    rest = np.abs(i) < c / 100
    slow = (np.abs(i) >= c / 100) & (np.abs(i) <= c / 8)
    # R0 from current steps out of rest (and back into rest)
    r0_pts = []
    for k in range(1, len(t)):
        di = i[k] - i[k - 1]
        if abs(di) > c / 5 and (rest[k - 1] or rest[k]) and dt[k] <= 2.0:
            r0_pts.append((soc[k], (v[k] - v[k - 1]) / di))
    if not r0_pts:
        raise ValueError("%s: no current steps (pulses) to fit R0" % csv_path)
    r0_pts = np.array(sorted(r0_pts))
    r0_med = float(np.median(r0_pts[:, 1]))
    # RC pairs from relaxations after fast segments
    rcs = []
    runs_rest = _runs(rest)
    for s, e in runs_rest:
        if s == 0 or t[e - 1] - t[s] < 300:
            continue
        p = s - 1
        p0 = p
        while p0 > 0 and not rest[p0 - 1] and np.sign(i[p0 - 1]) == np.sign(i[p]):
            p0 -= 1
        if abs(i[p]) < c / 5:
            continue
        w = slice(s + 1, min(e, s + 1 + int(np.searchsorted(t[s + 1:e] - t[s], 3600.0))))
        fitr = _fit_relax(t[w], v[w], i[p], t[p] - t[p0] + dt[p])
        if fitr:
            rcs.append(fitr)
    if rcs:
        rcs = np.array(rcs)
        r1, tau1, r2, tau2 = (float(np.median(rcs[:, j])) for j in range(4))
    else:
        r1, tau1, r2, tau2 = r0_med * 0.5, 30.0, r0_med * 0.5, 900.0
    rtot = r0_med + r1 + r2
    # OCV points: ends of long rests, branch from the direction before the rest
    rest_pts = {1: ([], []), -1: ([], [])}
    for s, e in runs_rest:
        if s == 0 or t[e - 1] - t[s] < 1200:
            continue
        d = 1 if i[s - 1] > 0 else -1
        rest_pts[d][0].append(soc[e - 1])
        rest_pts[d][1].append(v[e - 1])
    curves = {}
    for d in (1, -1):
        m = slow & (np.sign(i) == d)
        if d > 0:
            m &= v < vmax - 0.003  # not the CV hold
        m &= (soc > -0.01) & (soc < 1.01)
        curves[d] = _branch(soc[m], v[m] - i[m] * rtot, *rest_pts[d])
    if curves[1] is None and curves[-1] is None:
        raise ValueError("%s: no slow curves and no rested OCV points" % csv_path)
    ocv_c = curves[1] if curves[1] is not None else curves[-1]
    ocv_d = curves[-1] if curves[-1] is not None else curves[1]
    ocv_c = np.maximum(ocv_c, ocv_d)
    g = np.array(GRID_PCT, float) / 100
    r0_tab = np.interp(g, r0_pts[:, 0], r0_pts[:, 1])
    resid = []
    for d, tab in ((1, ocv_c), (-1, ocv_d)):
        rs, rv = rest_pts[d]
        resid += list(np.asarray(rv) - np.interp(rs, g, tab))
    err_mv = float(np.sqrt(np.mean(np.square(resid)))) * 1000 if resid else 3.0
    v_cut = float(np.nanmin(v[min(k_full, k_empty):max(k_full, k_empty) + 1]))  # on that discharge
    return {
        "format": "packwatch-cell-model/1",
        "chemistry": chemistry or ("lfp" if vmax < 3.8 else "nmc"),
        "name": "fitted from %s" % csv_path,
        "capacity_ah": round(cap, 4),
        "temperature_c": 25.0,
        "soc_pct": GRID_PCT,
        "ocv_charge_v": [round(float(x), 5) for x in ocv_c],
        "ocv_discharge_v": [round(float(x), 5) for x in ocv_d],
        "r0_ohm": [round(float(x), 7) for x in r0_tab],
        "rc": [{"tau_s": tau1, "r_ohm": [round(r1, 7)] * len(GRID_PCT)},
               {"tau_s": tau2, "r_ohm": [round(r2, 7)] * len(GRID_PCT)}],
        "hysteresis": {"gamma": 40.0},
        "limits": {"v_full": round(vmax - 0.005, 4), "v_cutoff": round(v_cut + 0.02, 4),
                   "tail_c": 0.05, "v_max": round(vmax, 4), "v_min": round(v_cut, 4)},
        "ocv_err_mv": round(max(2.0, err_mv + 1.5), 2),
    }


def run(args):
    if args.sample:
        if args.log:
            print("packwatch fit: --sample replaces LOG: give one of them", file=sys.stderr)
            return 2
        args.log = str(SAMPLE_LOG)
        if not args.output:  # where it is, to look at or to copy as a template
            print(args.log)
            return 0
    if not args.log or not args.output:
        print("packwatch fit: needs a characterisation LOG and -o MODEL.json (or --sample: see docs/cell-model.md)",
              file=sys.stderr)
        return 2
    with atomic_output(args.output, [args.log]) as tmp:
        model = fit_model(args.log, args.chemistry)
        with open(tmp, "w") as f:
            json.dump(model, f, indent=1)
    print("%s: capacity %.3f Ah, R0 %.2f mOhm (median), OCV error %.1f mV" % (
        args.output, model["capacity_ah"], 1000 * float(np.median(model["r0_ohm"])), model["ocv_err_mv"]))
    return 0


def register(sub):
    p = sub.add_parser("fit", help="fit a cell model from a characterisation log",
                       description="Fit OCV (charge/discharge branches), R0, two RC pairs and capacity "
                       "from a one-cell characterisation log (CC-CV, C/20 curves, OCV steps, pulses).")
    p.add_argument("log", nargs="?", help="characterisation log CSV (how to record one: docs/cell-model.md)")
    p.add_argument("-o", "--output", help="model JSON to write")
    p.add_argument("--sample", action="store_true",
                   help="use the sample characterisation log that ships with packwatch (without -o: print its path)")
    p.add_argument("--chemistry", choices=("lfp", "nmc"), default=None,
                   help="chemistry written into the model (default: lfp if the top voltage is under 3.8 V, else nmc)")
    p.set_defaults(func=run)
    return p

