"""`packwatch fit`: fit a cell model (docs/cell-model.md) from a one-cell characterisation log.

Segments are found from the current, after its zero is measured: rests are the samples within
max(C/100, 6 σ) of the current seen at rest (so a sensor's noise and offset at rest are rest, not tiny
charges), the offset is taken off every sample and rests count no charge. Then: full = the end of a
CC-CV charge (the current tapered while the voltage stood at the log's top), empty = the lowest
counted charge at the end of a discharge that ended on a knee (the voltage falling steeply). They may
come in any order; capacity = the charge between a full and an empty point next to each other in
time, every such pair is compared. OCV branches: the slow curves (C/100…C/8, IR drop removed) pulled
onto the rested points (rests ≥ 10 min) of the direction the cell last moved in; R0 from the voltage
step at current steps out of and into rests; two RC pairs from the relaxations after fast segments.

The model is then validated (limits inside the OCV range, OCV increasing, capacity consistent between
segments, residuals, coverage of the SoC range): what cannot give a model is refused (FitError, one
message naming what is missing), what is uncertain is a warning (stderr, and the model's ``fit`` key).
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

from packwatch.files import atomic_output, check_output
from packwatch.logcsv import read_log

GRID_PCT = [0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90,
            93, 95, 97, 98, 99, 100]
TAU1 = (5.0, 10.0, 20.0, 40.0, 80.0)
TAU2 = (200.0, 400.0, 800.0, 1600.0, 3200.0)
# a characterisation log that ships with the package (100 Ah LFP cell, made by hil/characterise.py)
SAMPLE_LOG = Path(__file__).resolve().parent / "data" / "char_lfp.csv"
OCV_REST_S = 600.0       # a rest at least this long gives a rested OCV point
RELAX_REST_S = 300.0     # a rest at least this long after a fast segment gives an RC fit
R0_DT_S = 2.0            # R0 from steps between samples at most this far apart (else corrected, warned)
COVER_PCT = 5            # a rested point or a slow-curve bin tells the OCV within this many % SoC
COVERAGE_MIN = 0.5       # OCV information on less of the SoC range than this: refused
GAP_WARN_PCT = 15        # a stretch of SoC wider than this without OCV information: warned
CAP_WARN, CAP_REFUSE = 0.01, 0.05   # capacity spread between full/empty pairs


class FitError(ValueError):
    """The log cannot give a model; the message names what is missing."""


def _runs(mask):
    """(start, end) index pairs (end exclusive) of the True runs of mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _label_runs(lab):
    """(start, end, label) of the runs of equal label."""
    cut = np.flatnonzero(np.diff(lab)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(lab)]])
    return [(int(s), int(e), int(lab[s])) for s, e in zip(starts, ends)]


def _binned(x, y, width):
    """Medians of y in bins of x of the given width: (centres, medians) of the bins holding data."""
    if len(x) == 0:
        return np.empty(0), np.empty(0)
    b = np.floor(np.asarray(x) / width).astype(int)
    o = np.argsort(b, kind="stable")
    b, xs, ys = b[o], np.asarray(x)[o], np.asarray(y)[o]
    cut = np.flatnonzero(np.diff(b)) + 1
    cx = [float(np.median(p)) for p in np.split(xs, cut)]
    cy = [float(np.median(p)) for p in np.split(ys, cut)]
    return np.array(cx), np.array(cy)


def _branch(soc, v, rest_soc, rest_v):
    """Branch on GRID_PCT: slow-curve shape pulled onto the rested points."""
    g = np.array(GRID_PCT, float) / 100
    base = None
    if len(soc) > 5:
        base = np.interp(g, soc, v)
    if len(rest_soc) >= 2:
        o = np.argsort(rest_soc)
        rs, rv = np.asarray(rest_soc)[o], np.asarray(rest_v)[o]
        if base is None:
            return np.interp(g, rs, rv)
        resid = rv - np.interp(rs, g, base)
        return base + np.interp(g, rs, resid)
    return base


def _rc_unit(ic, dt, tau):
    """Voltage of a 1-ohm RC pair of time constant tau driven by the current ic (sample k's current
    flows over the dt[k] before it, as the logger records it), from zero."""
    e = np.exp(-dt / tau)
    x = np.empty(len(ic))
    acc = 0.0
    for k in range(len(ic)):
        acc = acc * e[k] + ic[k] * (1 - e[k])
        x[k] = acc
    return x


def load_cell(csv_path, cell=None):
    """(t, i, v, notes) of one cell of a log: ``cell`` (1-based) picks a column of a pack log, else
    the mean of the cells. Rows with a missing value or a time that does not increase are dropped."""
    log = read_log(str(csv_path))
    notes = []
    t = np.asarray(log.t_s, float)
    i = np.asarray(log.current_a, float)
    if cell is not None:
        if not 1 <= cell <= log.n_cells:
            raise FitError("%s: --cell %d: the log has cell%s 1..%d" % (
                csv_path, cell, "s" if log.n_cells > 1 else "", log.n_cells))
        v = np.asarray(log.cells_v[:, cell - 1], float)
    else:
        v = np.asarray(log.cells_v, float)
        ok = np.isfinite(v).any(axis=1)
        v = np.where(ok, np.nanmean(np.where(np.isfinite(v), v, 0.0), axis=1) * v.shape[1]
                     / np.maximum(1, np.isfinite(v).sum(axis=1)), np.nan)
        if log.n_cells > 1:
            notes.append("%d cells in the log: fitted their mean (--cell N fits one cell)" % log.n_cells)
    ok = np.isfinite(t) & np.isfinite(i) & np.isfinite(v)
    if (~ok).sum():
        notes.append("%d rows without time, current or voltage skipped" % int((~ok).sum()))
    t, i, v = t[ok], i[ok], v[ok]
    if len(t):
        inc = np.concatenate([[True], t[1:] > np.maximum.accumulate(t)[:-1]])
        if (~inc).sum():
            notes.append("%d rows whose time did not increase skipped" % int((~inc).sum()))
        t, i, v = t[inc], i[inc], v[inc]
    return t, i, v, notes


def _segment(t, i, v, warn):
    """Rest/charge/discharge labels, the current zero and noise, the offset-free current."""
    dt = np.diff(t, prepend=t[0])
    c0 = float(np.ptp(np.cumsum(i * dt) / 3600.0))  # rough capacity: the counted range
    if c0 <= 0:
        raise FitError("no current in the log: a characterisation needs charges and discharges")
    r = np.abs(i) < c0 / 40  # first pass: tolerant of a zero offset, refined below
    if r.sum() < 10:
        raise FitError("no rests (current near zero): the OCV comes from rests after each step")
    off = float(np.median(i[r]))
    noise = float(1.4826 * np.median(np.abs(i[r] - off)))
    thr = max(c0 / 100, 6 * noise)
    rest = np.abs(i - off) < thr
    off = float(np.median(i[rest]))
    if abs(off) > max(c0 / 2000, 0.002):
        warn("current reads %+.0f mA at rest: taken as the sensor's offset and subtracted from every "
             "sample (check the zero of the current sensor)" % (1000 * off))
    if thr > c0 / 100:
        warn("current noise at rest %.0f mA (1 sigma): rests are |I| < %.0f mA, more than C/100" % (
            1000 * noise, 1000 * thr))
    ic = np.where(rest, 0.0, i - off)
    lab = np.where(rest, 0, np.sign(ic)).astype(int)
    return dict(dt=dt, c0=c0, off=off, noise=noise, thr=thr, rest=rest, ic=ic, lab=lab,
                q=np.cumsum(ic * dt) / 3600.0)


def _v_noise(v, rest):
    """Voltage noise (1 sigma) from sample-to-sample differences inside rests."""
    d = np.diff(v)[rest[1:] & rest[:-1]]
    return float(1.4826 * np.median(np.abs(d)) / np.sqrt(2)) if len(d) > 10 else 0.0


def analyse(t, i, v, name="log"):
    """Everything fit_model finds in a log, with the model: a dict (what --report draws)."""
    warnings = []

    def warn(msg):
        if msg not in warnings:
            warnings.append(msg)

    if len(t) < 100:
        raise FitError("%s: %d rows, too short for a characterisation log" % (name, len(t)))
    sg = _segment(t, i, v, warn)
    dt, c0, ic, q, rest, lab = sg["dt"], sg["c0"], sg["ic"], sg["q"], sg["rest"], sg["lab"]
    sv = _v_noise(v, rest)
    if sv > 0.003:
        warn("voltage noise %.1f mV (1 sigma): rested points and R0 are medians of noisy samples" % (1000 * sv))
    runs = _label_runs(lab)
    # gaps: the logger stopped; across one with current flowing the counted charge is a guess
    step = float(np.median(dt[1:]))
    for k in np.flatnonzero(dt > max(120.0, 10 * step)):
        if lab[k] != 0 or lab[k - 1] != 0:
            warn("gap of %.0f s at %.2f h while current flowed: the charge across it is estimated "
                 "(I x gap); capacity and SoC may be off by %.1f %%" % (
                     dt[k], t[k] / 3600, 100 * abs(ic[k]) * dt[k] / 3600 / c0))
    if np.corrcoef(q, v)[0, 1] < 0:
        raise FitError("the voltage falls as the counted charge rises: the current sign looks inverted "
                       "(current_a must be + when charging; flip the column's sign)")
    # full: the end of a charge whose current tapered while the voltage stood at its top (CV hold)
    tol = 0.01 + 3 * sv
    vtop_log = float(np.max(v))  # (a gap near it may hide the CV hold)
    full, cv_mask = [], np.zeros(len(t), bool)
    for s, e, L in runs:
        if L != 1 or e - s < 3:
            continue
        seg_v, seg_i = v[s:e], ic[s:e]
        vtop = float(np.median(np.sort(seg_v)[-3:]))
        top = seg_v >= vtop - tol
        i_end = float(seg_i[-1])
        if (seg_v[-1] >= vtop - tol and i_end <= 0.6 * seg_i.max()
                and seg_i[top].max() >= 1.5 * i_end and top.sum() >= 2):
            full.append((e - 1, vtop))
            cv_mask[s:e] |= top
    # a CV hold is at the top of charge: a taper lower down (a charger limiting) is not full
    # (the highest CV, not the log's highest sample: a charge pulse at full overshoots it)
    full = [k for k, vt in full if vt >= max(x[1] for x in full) - 0.03 - tol] if full else []
    if not full:
        hid = [k for k in np.flatnonzero(dt > max(120.0, 10 * step)) if max(v[k], v[k - 1]) >= vtop_log - 0.05]
        if hid:
            raise FitError("no CC-CV charge found: the log has a gap at the top of charge (%.2f h, %.0f s), where "
                           "the CV hold would be; the end of the CV hold defines 100 %%"
                           % (t[hid[0]] / 3600, dt[hid[0]]))
        raise FitError("no CC-CV charge found (a charge whose current tapers while the voltage is held at "
                       "the top): the end of the CV hold defines 100 % (docs/cell-model.md, protocol step 1)")
    vmax = float(np.median([np.median(v[max(0, k - 2):k + 1]) for k in full]))
    # empty: ends of discharges on a knee; per stretch between full points, the lowest charge
    knees, short = [], []
    for s, e, L in runs:
        if L != -1:
            continue
        k = e - 1
        back = np.flatnonzero(q[s:e] >= q[k] + 0.02 * c0)
        if not len(back):
            short.append(k)  # less than 2 % of capacity: a pulse, or the C/20 tail after a step hit V_min
        elif v[s + int(back[-1])] - v[k] >= 0.15:  # the last 2 % fell steeply: a knee, not a plateau
            knees.append(k)
    if knees:  # a short discharge that ended as low as a knee did (after a rest at the cut-off)
        floor = min(v[k] for k in knees) + 0.02
        knees += [k for k in short if v[k] <= floor]
    bounds = [-1] + full + [len(t)]
    empty = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        ks = [k for k in knees if a < k < b]
        if ks:
            empty.append(min(ks, key=lambda k: q[k]))
    if not empty:
        kq = int(np.argmin(q))
        raise FitError("no discharge to the cut-off: the lowest charge point (%.2f h, %.3f V) is not on a knee "
                       "(voltage falling steeply); discharge to V_min at C/20 (docs/cell-model.md, step 2)"
                       % (t[kq] / 3600, v[kq]))
    events = sorted([(k, "full") for k in full] + [(k, "empty") for k in empty])
    pairs = [(a, b) for (a, ka), (b, kb) in zip(events[:-1], events[1:]) if ka != kb]
    if not pairs:
        raise FitError("no full point next to an empty point: charge to full and discharge to the cut-off "
                       "(in either order) without a break in the log")
    caps = [(abs(q[a] - q[b]), a, b) for a, b in pairs]
    dis = [c for c in caps if c[1] in full]   # full first: a discharge (the capacity's definition)
    cap, k_a, k_b = (dis or caps)[0]
    k_full, k_empty = (k_a, k_b) if k_a in full else (k_b, k_a)
    spread = max(abs(c[0] / cap - 1) for c in caps)
    if spread > CAP_REFUSE:
        raise FitError("capacity differs between segments by %.1f %% (%s Ah): a gap, a current offset that "
                       "drifts, or a charge not ended by a CV hold; record again" % (
                           100 * spread, ", ".join("%.3f" % c[0] for c in caps)))
    if spread > CAP_WARN:
        warn("capacity differs between segments by %.1f %% (%s Ah): the model uses %.3f Ah" % (
            100 * spread, ", ".join("%.3f" % c[0] for c in caps), cap))
    # SoC: 1 at every full point, 0 at every empty point, counted in between (so a knee sits where its
    # nearest anchors put it, whatever self-discharge or counting drift accumulates over the log)
    soc = 1.0 + (q - q[k_full]) / cap
    ev_k = [k for k, _ in events]
    ev_s = [1.0 if kind == "full" else 0.0 for _, kind in events]
    soc[:ev_k[0] + 1] = ev_s[0] + (q[:ev_k[0] + 1] - q[ev_k[0]]) / cap
    soc[ev_k[-1]:] = ev_s[-1] + (q[ev_k[-1]:] - q[ev_k[-1]]) / cap
    for (a, sa), (b, sb) in zip(zip(ev_k[:-1], ev_s[:-1]), zip(ev_k[1:], ev_s[1:])):
        if sa != sb:
            soc[a:b + 1] = sa + (q[a:b + 1] - q[a]) * (sb - sa) / (q[b] - q[a])
        else:  # two full (or two empty) points in a row: from the nearer one
            mid = (a + b) // 2
            soc[a:mid] = sa + (q[a:mid] - q[a]) / cap
            soc[mid:b + 1] = sb + (q[mid:b + 1] - q[b]) / cap
    c = cap  # 1 C in A
    # R0 from current steps out of rest (and back into rest)
    di = np.diff(ic, prepend=ic[0])
    steps = np.flatnonzero((np.abs(di) > c / 5) & (rest | np.roll(rest, 1)))
    steps = steps[steps > 0]
    if not len(steps):
        raise FitError("no current steps of more than C/5 into or out of a rest: R0 needs pulses "
                       "(docs/cell-model.md, protocol step 2)")
    fine = steps[dt[steps] <= R0_DT_S]
    sparse = not len(fine)
    use = steps if sparse else fine
    r0_soc = soc[use]
    r0_raw = (v[use] - v[use - 1]) / di[use]
    # RC pairs from the relaxations after fast segments, fitted jointly: in each rest window the voltage
    # is its own rested level plus r1 x1 + r2 x2, where xk is the voltage of a 1-ohm RC pair of time
    # constant tauk driven by the log's whole current (so the time since switch-off, the segment's length
    # and shape and what came before are all in it). One (tau1, tau2, r1, r2) for all windows: a
    # relaxation of a few mV at the voltage's resolution (a flat OCV region) cannot give its own.
    wins = []
    for s, e, L in runs:
        if L != 0 or s == 0 or t[e - 1] - t[s] < RELAX_REST_S:
            continue
        p = s - 1
        if abs(ic[p]) < c / 5:
            continue
        w = slice(s, min(e, s + int(np.searchsorted(t[s:e] - t[s], 3600.0))))
        if w.stop - w.start >= 8:
            wins.append(w)
    rcs, relax = [], []
    if wins:
        idx = np.concatenate([np.arange(w.start, w.stop) for w in wins])
        col = np.concatenate([np.full(w.stop - w.start, j) for j, w in enumerate(wins)])
        lev = np.zeros((len(idx), len(wins)))
        lev[np.arange(len(idx)), col] = 1.0
        unit = {tau: _rc_unit(ic, dt, tau)[idx] for tau in TAU1 + TAU2}
        best = None
        for t1 in TAU1:
            for t2 in TAU2:
                a = np.column_stack([lev, unit[t1], unit[t2]])
                coef = np.linalg.lstsq(a, v[idx], rcond=None)[0]
                if coef[-2] <= 0 or coef[-1] <= 0:
                    continue
                err = float(np.sum((a @ coef - v[idx]) ** 2))
                if best is None or err < best[0]:
                    best = (err, t1, t2, coef, a @ coef)
        if best is not None:
            err, tau1, tau2, coef, fv = best
            r1, r2 = float(coef[-2]), float(coef[-1])
            relax_rms = float(np.sqrt(err / len(idx)))
            for j, w in enumerate(wins):
                relax.append((t[w], v[w], fv[col == j]))
                rcs.append(j)
            if relax_rms > 0.002 + 2 * sv:
                warn("relaxation fits leave %.1f mV RMS: the two RC pairs describe the rests only roughly"
                     % (1000 * relax_rms))
    if not rcs:
        r1 = r2 = float(np.median(r0_raw)) * 0.5
        tau1, tau2, relax_rms = 30.0, 900.0, float("nan")
        warn("no rest of >= %d s after a fast segment (> C/5): the RC pairs are defaults (R0/2, 30 s and 900 s)"
             % RELAX_REST_S)
    # the voltage after a step sampled late holds part of the RC response: take it off
    gap_s = dt[use]
    r0_pts = r0_raw - (r1 * (1 - np.exp(-gap_s / tau1)) + r2 * (1 - np.exp(-gap_s / tau2)))
    if sparse:
        warn("no current step sampled within %g s (closest %.0f s): R0 is corrected for the RC response "
             "of the fitted pairs; sample at 1 s around steps for a direct R0" % (R0_DT_S, gap_s.min()))
    if np.any(r0_pts <= 0) or np.median(r0_pts) <= 0:
        raise FitError("R0 from the current steps is not positive (median %.3g Ohm): voltage and current "
                       "columns do not belong together, or the steps are not sampled" % float(np.median(r0_pts)))
    r0_med = float(np.median(r0_pts))
    rtot = r0_med + r1 + r2
    # rested OCV points: ends of rests, on the branch of the direction the cell last moved in
    rest_pts = {1: ([], []), -1: ([], [])}
    last_dir = 0
    for s, e, L in runs:
        if L != 0:
            if abs(q[e - 1] - q[max(s - 1, 0)]) >= 0.01 * c:
                last_dir = L
            continue
        if not last_dir or t[e - 1] - t[s] < OCV_REST_S:
            continue
        tail = np.flatnonzero(t[s:e] >= t[e - 1] - 120.0)
        rest_pts[last_dir][0].append(float(soc[e - 1]))
        rest_pts[last_dir][1].append(float(np.median(v[s + tail])))
    # slow curves: not the CV hold, the R0 drop and the two RC voltages (simulated over the log's current
    # with the fitted pairs, so the start of a slow segment is not biased) removed
    vrc = np.zeros(len(t))
    x1 = x2 = 0.0
    e1, e2 = np.exp(-dt / tau1), np.exp(-dt / tau2)
    for k in range(len(t)):
        x1 = x1 * e1[k] + ic[k] * r1 * (1 - e1[k])
        x2 = x2 * e2[k] + ic[k] * r2 * (1 - e2[k])
        vrc[k] = x1 + x2
    slow = (np.abs(ic) >= c / 100) & (np.abs(ic) <= c / 8) & ~cv_mask
    slow &= (soc > -0.01) & (soc < 1.01)
    curves, slow_pts = {}, {}
    for d in (1, -1):
        m = slow & (np.sign(ic) == d)
        xs, ys = _binned(soc[m], v[m] - ic[m] * r0_med - vrc[m], 0.002)
        slow_pts[d] = (xs, ys)
        curves[d] = _branch(xs, ys, *rest_pts[d])
    if curves[1] is None and curves[-1] is None:
        raise FitError("no slow curves and fewer than 2 rested OCV points per direction: rest >= %d s after "
                       "each step (docs/cell-model.md, protocol)" % OCV_REST_S)
    for d, word in ((1, "charge"), (-1, "discharge")):
        if curves[d] is None:
            warn("no %s-branch data (rests after %ss, slow %ss): both branches are the %s one, hysteresis "
                 "is not modelled" % (word, word, word, "discharge" if d > 0 else "charge"))
    g = np.array(GRID_PCT, float) / 100
    ocv_c = curves[1] if curves[1] is not None else curves[-1]
    ocv_d = curves[-1] if curves[-1] is not None else curves[1]
    # where one branch has no data (its table is extrapolated flat beyond its first or last point), take
    # the other's shape where that one has data or interpolates between its data, shifted by the
    # hysteresis gap where both are known
    own, inside = {}, {}
    pg = np.array(GRID_PCT, float)
    for d in (1, -1):
        x = np.concatenate([rest_pts[d][0], slow_pts[d][0]]) * 100
        own[d] = np.array([np.any(np.abs(x - p) <= COVER_PCT) for p in GRID_PCT]) if len(x) else g < 0
        inside[d] = ((pg >= x.min() - COVER_PCT) & (pg <= x.max() + COVER_PCT)) if len(x) else g < 0
    both = own[1] & own[-1] & (g >= 0.1) & (g <= 0.9)  # the gap at a knee says little
    if own[1].any() and own[-1].any():
        gap = float(np.median((ocv_c - ocv_d)[both])) if both.any() else 0.0
        fill_c, fill_d = ~inside[1] & inside[-1], ~inside[-1] & inside[1]
        ocv_c, ocv_d = np.where(fill_c, ocv_d + gap, ocv_c), np.where(fill_d, ocv_c - gap, ocv_d)
        for fill, word in ((fill_c, "charge"), (fill_d, "discharge")):
            if fill.any():
                warn("the %s branch has no data at %s %% SoC: there it is the other branch shifted by the "
                     "hysteresis (%.0f mV)" % (word, ", ".join("%g" % p for p in pg[fill]), 1000 * gap))
    # validate: OCV increasing with SoC
    for name_b, tab in (("charge", ocv_c), ("discharge", ocv_d)):
        drop = float(np.max(np.maximum.accumulate(tab) - tab))
        if drop > 0.02:
            j = int(np.argmax(np.maximum.accumulate(tab) - tab))
            raise FitError("the %s OCV falls by %.0f mV with rising SoC (near %g %%): rested points and "
                           "counted charge disagree (current gain, gaps, or a different cell)" % (
                               name_b, 1000 * drop, GRID_PCT[j]))
        if drop > 0.003:
            warn("the %s OCV fell by %.1f mV with rising SoC somewhere: made non-decreasing" % (name_b, 1000 * drop))
    ocv_c = np.maximum.accumulate(ocv_c)
    ocv_d = np.maximum.accumulate(ocv_d)
    ocv_c = np.maximum(ocv_c, ocv_d)
    # validate: coverage of the SoC range by OCV information (rested points, slow curves)
    info = np.concatenate([rest_pts[1][0], rest_pts[-1][0], slow_pts[1][0], slow_pts[-1][0]])
    pct = np.arange(101)
    covered = np.array([np.any(np.abs(info * 100 - p) <= COVER_PCT) for p in pct]) if len(info) else pct < 0
    coverage = float(covered.mean())
    holes = [(pct[s], pct[e - 1]) for s, e in _runs(~covered)]
    if coverage < COVERAGE_MIN:
        raise FitError("OCV known on %.0f %% of the SoC range only (none on %s %%): rest after steps across the "
                       "whole range, or add a slow C/20 sweep" % (
                           100 * coverage, ", ".join("%d-%d" % h for h in holes)))
    wide = [h for h in holes if h[1] - h[0] + 1 > GAP_WARN_PCT]
    if wide:
        warn("no OCV information on %s %% of SoC: the OCV is interpolated there" % (
            ", ".join("%d-%d" % h for h in wide)))
    # residuals of the rested points about their branch
    resid = []
    for d, tab in ((1, ocv_c), (-1, ocv_d)):
        rs, rv = rest_pts[d]
        resid += list(np.asarray(rv) - np.interp(rs, g, tab))
    err_mv = float(np.sqrt(np.mean(np.square(resid)))) * 1000 if resid else 3.0
    if err_mv > 5.0:
        warn("rested points scatter %.1f mV RMS about the OCV branches" % err_mv)
    # R0 table: medians in 10 % bins, interpolated
    o = np.argsort(r0_soc)
    bx, by = _binned(np.clip(r0_soc[o], 0, 1), r0_pts[o], 0.1)
    r0_tab = np.interp(g, bx, by)
    r0_med = float(np.median(r0_pts))
    mad = float(np.median(np.abs(r0_pts - np.interp(r0_soc, bx, by)))) / r0_med
    if mad > 0.15:
        warn("R0 steps scatter %.0f %% about the R0 table" % (100 * mad))
    # limits: the CV voltage and the voltage at the empty point of the defining discharge
    v_cut = float(np.median(v[max(0, k_empty - 1):k_empty + 1]))
    lim = {"v_full": round(vmax - 0.005, 4), "v_cutoff": round(v_cut + 0.02, 4), "tail_c": 0.05,
           "v_max": round(vmax, 4), "v_min": round(v_cut, 4)}
    o95, o5 = float(np.interp(0.95, g, ocv_c)), float(np.interp(0.05, g, ocv_d))
    if not (lim["v_full"] > o95 and lim["v_cutoff"] < o5 and lim["v_cutoff"] < lim["v_full"]):
        raise FitError("limits outside the OCV range: v_full %.3f V must be above the OCV at 95 %% (%.3f V) and "
                       "v_cutoff %.3f V below the OCV at 5 %% (%.3f V): the CV hold or the cut-off is not where "
                       "the log ends its charge and discharge" % (lim["v_full"], o95, lim["v_cutoff"], o5))
    fitinfo = {
        "warnings": warnings,
        "capacity_ah_segments": [round(float(x[0]), 4) for x in caps],
        "current_offset_ma": round(1000 * sg["off"], 1), "current_noise_ma": round(1000 * sg["noise"], 1),
        "rested_points": len(rest_pts[1][0]) + len(rest_pts[-1][0]), "r0_steps": int(len(use)),
        "relaxations": len(rcs), "ocv_coverage_pct": round(100 * coverage),
        "rested_rms_mv": round(err_mv, 2),
    }
    model = {
        "format": "packwatch-cell-model/1",
        "chemistry": "lfp" if vmax < 3.8 else "nmc",
        "name": "fitted from %s" % name,
        "capacity_ah": round(cap, 4),
        "temperature_c": 25.0,
        "soc_pct": GRID_PCT,
        "ocv_charge_v": [round(float(x), 5) for x in ocv_c],
        "ocv_discharge_v": [round(float(x), 5) for x in ocv_d],
        "r0_ohm": [round(float(x), 7) for x in r0_tab],
        "rc": [{"tau_s": tau1, "r_ohm": [round(r1, 7)] * len(GRID_PCT)},
               {"tau_s": tau2, "r_ohm": [round(r2, 7)] * len(GRID_PCT)}],
        "hysteresis": {"gamma": 40.0},
        "limits": lim,
        "ocv_err_mv": round(max(2.0, err_mv + 1.5), 2),
        "fit": fitinfo,
    }
    found = dict(t=t, i=i, v=v, soc=soc, lab=lab, runs=runs, full=full, empty=empty, k_full=k_full,
                 k_empty=k_empty, rest_pts=rest_pts, slow_pts=slow_pts, r0_soc=r0_soc, r0_pts=r0_pts,
                 relax=relax, rtot=rtot)
    return model, found


def fit_log(csv_path, chemistry=None, cell=None):
    """(model, found) from a log: the model dict and what analyse() found (for the report)."""
    t, i, v, notes = load_cell(csv_path, cell)
    try:
        model, found = analyse(t, i, v, name=str(csv_path))
    except FitError as e:
        raise FitError("%s: %s" % (csv_path, e)) from None
    model["fit"]["warnings"][:0] = notes
    model["fit"]["cell"] = cell if cell is not None else "mean"
    if chemistry:
        model["chemistry"] = chemistry
    return model, found


def fit_model(csv_path, chemistry=None, cell=None):
    """Fit a cell model dict (docs/cell-model.md) from a characterisation log of one cell. Raises
    FitError (a ValueError) naming what is missing; warnings are in model["fit"]["warnings"]."""
    return fit_log(csv_path, chemistry, cell)[0]


def figure(model, found):
    """The report: segments over the log, OCV branches with the rested points, R0 vs SoC, relaxation fits.
    A matplotlib Figure (not registered with pyplot); artists carry gids (tests read them)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(13, 9))
    ax_v, ax_ocv, ax_r0, ax_rx = fig.subplots(2, 2).ravel()
    th = found["t"] / 3600.0
    ax_v.plot(th, found["v"], lw=0.7, color="k", gid="voltage")
    ax_i = ax_v.twinx()
    ax_i.plot(th, found["i"], lw=0.5, color="tab:gray", alpha=0.6, gid="current")
    colours = {0: "tab:green", 1: "tab:red", -1: "tab:blue"}
    names = {0: "rest", 1: "charge", -1: "discharge"}
    for L in (0, 1, -1):
        spans = [(th[s], th[min(e, len(th) - 1)]) for s, e, lab in found["runs"] if lab == L]
        if spans:
            bars = ax_v.broken_barh([(a, b - a) for a, b in spans], (0, 1), transform=ax_v.get_xaxis_transform(),
                                    color=colours[L], alpha=0.15, label=names[L])
            bars.set_gid("segments:" + names[L])
    ax_v.plot(th[found["full"]], found["v"][found["full"]], "^", color="tab:red", ms=9, label="full (CV end)",
              gid="full")
    ax_v.plot(th[found["empty"]], found["v"][found["empty"]], "v", color="tab:blue", ms=9, label="empty (knee)",
              gid="empty")
    ax_v.set(xlabel="time (h)", ylabel="cell voltage (V)", title="segments found")
    ax_i.set_ylabel("current (A, + charging)")
    ax_v.legend(loc="lower left", fontsize=8)
    g = np.array(model["soc_pct"], float)
    ax_ocv.plot(g, model["ocv_charge_v"], color="tab:red", label="charge branch", gid="ocv_charge")
    ax_ocv.plot(g, model["ocv_discharge_v"], color="tab:blue", label="discharge branch", gid="ocv_discharge")
    for d, word, col in ((1, "charge", "tab:red"), (-1, "discharge", "tab:blue")):
        xs, ys = found["slow_pts"][d]
        if len(xs):
            ax_ocv.plot(xs * 100, ys, ".", ms=2, color=col, alpha=0.3, gid="slow_" + word,
                        label="slow %s (IR removed)" % word)
        rs, rv = found["rest_pts"][d]
        ax_ocv.plot(np.array(rs) * 100, rv, "o", mfc="none", color=col, gid="rested_" + word,
                    label="rested after %s (%d)" % (word, len(rs)))
    lo = min(model["ocv_discharge_v"][1], model["limits"]["v_cutoff"])
    ax_ocv.set_ylim(lo - 0.05, model["ocv_charge_v"][-2] + 0.05)
    ax_ocv.set(xlabel="SoC (%)", ylabel="OCV (V)", title="OCV: %.3f Ah, %d rested points" % (
        model["capacity_ah"], model["fit"]["rested_points"]))
    ax_ocv.legend(fontsize=8)
    ax_r0.plot(found["r0_soc"] * 100, np.asarray(found["r0_pts"]) * 1000, "o", ms=3, alpha=0.6, gid="r0_steps",
               label="steps (%d)" % len(found["r0_pts"]))
    ax_r0.plot(g, np.asarray(model["r0_ohm"]) * 1000, color="k", gid="r0_table", label="R0 table")
    ax_r0.set(xlabel="SoC (%)", ylabel="R0 (mOhm)", title="R0 vs SoC")
    ax_r0.legend(fontsize=8)
    for n, (tt, vv, fv) in enumerate(found["relax"]):
        x = (tt - tt[0]) / 60.0
        ax_rx.plot(x, (vv - fv[-1]) * 1000, ".", ms=2, alpha=0.4, gid="relax_data:%d" % n)
        ax_rx.plot(x, (fv - fv[-1]) * 1000, lw=0.8, gid="relax_fit:%d" % n)
    rc = model["rc"]
    ax_rx.set(xlabel="minutes into the rest", ylabel="V - V(end) (mV)",
              title="relaxations: %d fits, tau %g s / %g s" % (len(found["relax"]), rc[0]["tau_s"], rc[1]["tau_s"]))
    w = model["fit"]["warnings"]
    fig.suptitle("%s%s" % (model["name"], ("\nwarnings: " + "; ".join(w))[:300] if w else ""), fontsize=9)
    fig.tight_layout()
    return fig


def run(args):
    if args.sample:
        if args.log:
            print("packwatch fit: --sample replaces LOG: give one of them", file=sys.stderr)
            return 2
        args.log = str(SAMPLE_LOG)
        if not args.output and not args.report:  # where it is, to look at or to copy as a template
            print(args.log)
            return 0
    if not args.log or not (args.output or args.report):
        print("packwatch fit: needs a characterisation LOG and -o MODEL.json and/or --report FIG.png "
              "(or --sample: see docs/cell-model.md)", file=sys.stderr)
        return 2
    outs = [o for o in (args.output, args.report) if o]
    if len(outs) == 2 and os.path.abspath(outs[0]) == os.path.abspath(outs[1]):
        print("packwatch fit: -o and --report name the same file: give each its own", file=sys.stderr)
        return 2
    for o in outs:  # before the work: an output that is the log (or the other output) is refused
        check_output(o, [args.log] + [x for x in outs if x is not o])
    try:
        model, found = fit_log(args.log, args.chemistry, args.cell)
    except FitError as e:
        print("packwatch fit: refused: %s" % e, file=sys.stderr)
        return 1
    for w in model["fit"]["warnings"]:
        print("packwatch fit: warning: %s" % w, file=sys.stderr)
    if args.report:
        with atomic_output(args.report, [args.log]) as tmp:
            figure(model, found).savefig(tmp, dpi=100)
    if args.output:
        with atomic_output(args.output, [args.log]) as tmp:
            with open(tmp, "w") as f:
                json.dump(model, f, indent=1)
    print("%s: capacity %.3f Ah, R0 %.2f mOhm (median), OCV error %.1f mV%s" % (
        args.output or args.report, model["capacity_ah"], 1000 * float(np.median(model["r0_ohm"])),
        model["ocv_err_mv"], ", %d warning(s)" % len(model["fit"]["warnings"]) if model["fit"]["warnings"] else ""))
    return 0


def register(sub):
    p = sub.add_parser("fit", help="fit a cell model from a characterisation log",
                       description="Fit OCV (charge/discharge branches), R0, two RC pairs and capacity "
                       "from a one-cell characterisation log (CC-CV, OCV steps with rests, pulses, slow curves, "
                       "in any order), then validate it: refused with what is missing, or warnings.")
    p.add_argument("log", nargs="?", help="characterisation log CSV (how to record one: docs/cell-model.md)")
    p.add_argument("-o", "--output", help="model JSON to write")
    p.add_argument("--report", metavar="FIG.png", help="draw what the fit found (segments, OCV, R0, relaxations)")
    from packwatch.cli import COUNT
    p.add_argument("--cell", type=COUNT, default=None, metavar="N",
                   help="fit cell N (1-based) of a pack log (default: the mean of the log's cells)")
    p.add_argument("--sample", action="store_true",
                   help="use the sample characterisation log that ships with packwatch (without -o: print its path)")
    p.add_argument("--chemistry", choices=("lfp", "nmc"), default=None,
                   help="chemistry written into the model (default: lfp if the top voltage is under 3.8 V, else nmc)")
    p.set_defaults(func=run)
    return p
