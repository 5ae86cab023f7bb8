"""SoC accuracy benchmark against PyBaMM ground truth: `python -m bench.soc.accuracy` (or via
bench.soc.run) -> bench/results/soc_accuracy.md.

Pipeline per chemistry (LFP Prada2013 + one-state hysteresis, NMC Chen2020; hil/pybamm_cells.py):
1. Characterisation run of one fresh cell (profiles.char_steps) -> log CSV (1 mV / 1 mA, as the logger
   writes it) -> packwatch.fit.fit_model -> the cell model every estimator uses. Used only for fitting.
2. Validation: a 16S pack of aged cells (capacity −3 %, resistance +20 % against the fitted fresh cell)
   with cell-to-cell spread (capacity ±1.5 %, resistance ±10 %, initial SoC ±1 %, uniform), each of the
   16 cells simulated separately with its own parameters under the same series current. The series
   current is made by a PyBaMM experiment on the pack's "driver" cell (the cell that is fullest at the
   top, so the CV hold never overcharges a cell); the other cells follow that current.
3. Sensors: per-cell offset U(−4, 4) mV, white noise 5 mV, 1 mV quantisation; current gain +0.5 %,
   offset +C/500, 1 mA noise, 1 mA quantisation; 2 s log period.
4. Truth: per-cell operational SoC (0 % = C/20 cut-off, 100 % = end of the CV hold, the same definition
   `packwatch fit` uses for the capacity), from PyBaMM's average negative stoichiometry; pack SoC =
   min/(1 − max + min) of the (clipped) cell SoCs, as pwfw.soc reports it.
5. Estimators: pwfw.soc through host/packwatch/estimate.py; coulomb counting (same start and current);
   filterpy UKF on the fitted ECM (bench/soc/peer_ukf.py, pack-mean cell). Starts: the true SoC (as a
   persisted state) and true ±30 % (a wrong persisted state); every estimator is told sigma 3 % at start.

PyBaMM runs are cached in bench/soc/cache/ keyed by a hash of their inputs and of pybamm_cells.py.
"""
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "host", ROOT / "firmware"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench.soc import profiles  # noqa: E402
from bench.soc.profiles import DT  # noqa: E402

CACHE = ROOT / "bench/soc/cache"
CNOM = {"lfp": 2.3, "nmc": 5.0}    # nominal capacity of the PyBaMM parameter sets, A·h
N_CELLS = 16
SEED = 4
AGE_CAP, AGE_R = 0.97, 1.20
SPREAD_CAP, SPREAD_R, SPREAD_SOC = 0.015, 0.10, 0.01
V_NOISE, V_OFF = 0.005, 0.004
I_GAIN, I_OFF_C, I_NOISE = 0.005, 1 / 500, 0.001
WRONG = 0.30
SIGMA0 = 0.03
CONV = 0.03


# ---- cache ---------------------------------------------------------------------------------------------
def _digest(obj):
    h = hashlib.sha256()

    def feed(o):
        if isinstance(o, np.ndarray):
            h.update(np.ascontiguousarray(o, dtype=float).tobytes())
        elif isinstance(o, (list, tuple)):
            h.update(b"[")
            for x in o:
                feed(x)
            h.update(b"]")
        else:
            h.update(repr(o).encode())
    feed(obj)
    return h.hexdigest()[:24]


def _src_tag():
    import pybamm
    return (pybamm.__version__, (ROOT / "hil/pybamm_cells.py").read_bytes())


def cached(kind, args, fn):
    key = "%s-%s" % (kind, _digest([kind, args, _src_tag()]))
    path = CACHE / (key + ".npz")
    if path.exists():
        os.utime(path)  # mark as used (stale entries can be pruned by age)
        with np.load(path) as z:
            return tuple(z["a%d" % k] for k in range(len(z.files)))
    out = fn()
    CACHE.mkdir(exist_ok=True)
    from packwatch.files import atomic_output
    with atomic_output(path) as tmp:  # a unique temporary name: concurrent runs do not share one
        np.savez_compressed(tmp, **{"a%d" % k: np.asarray(a) for k, a in enumerate(out)})
    return out


# ---- characterisation and fit ------------------------------------------------------------------------
def characterise(chem):
    """Fresh-cell characterisation run, its log CSV, the fitted model and the SoC mapping."""
    from hil import pybamm_cells as pc
    from packwatch.fit import fit_model
    from packwatch.logcsv import LogWriter
    steps = profiles.char_steps(chem, CNOM[chem])
    t, i, v, xn = cached("char", [chem, steps], lambda: pc.run_experiment(chem, steps, 0.5))
    from packwatch.files import atomic_output
    path = CACHE / ("char-%s.csv" % chem)
    # written to a private temporary file, fitted from it, then put in place atomically: concurrent
    # runs never read a file another one is writing
    with atomic_output(path) as tmp:
        with LogWriter(tmp, 1, extra_cols=(), meta={"source": "PyBaMM characterisation (bench/soc)"}) as w:
            for k in range(len(t)):
                w.write_row(float(t[k]), float(i[k]), [float(v[k])])
        model = fit_model(tmp, chem)
    model["name"] = "fitted from a PyBaMM %s characterisation run (bench/soc)" % chem
    # operational SoC from the stoichiometry: 100 % at the fit's full anchor (end of the first CV hold
    # with the deepest discharge after it), capacity = the fitted one
    dt = np.diff(t, prepend=t[0])
    q = np.cumsum(i * dt) / 3600.0
    a = np.polyfit(xn, q, 1)[0]                   # A·h per unit of negative stoichiometry
    vmax = pc.LIMITS[chem][0]
    ends = [k for k in range(1, len(t) - 1) if i[k] > 0 and i[k + 1] <= 0 and v[k] > vmax - 0.01]
    k_full = max(ends, key=lambda k: q[k] - np.min(q[k:])) if ends else 0
    xf = float(xn[k_full])
    xe = xf - model["capacity_ah"] / a
    return model, xf, xe, path


def x_of(soc, xf, xe):
    return xe + soc * (xf - xe)


def soc_of(x, xf, xe):
    return (x - xe) / (xf - xe)


# ---- validation runs ----------------------------------------------------------------------------------
def pack_cells(chem):
    rng = np.random.default_rng([SEED, 7, 1 if chem == "nmc" else 0])
    cap = AGE_CAP * (1 + rng.uniform(-SPREAD_CAP, SPREAD_CAP, N_CELLS))
    r = AGE_R * (1 + rng.uniform(-SPREAD_R, SPREAD_R, N_CELLS))
    dsoc = rng.uniform(-SPREAD_SOC, SPREAD_SOC, N_CELLS)
    dsoc -= dsoc.mean()
    return cap, r, dsoc


def _pb_soc(chem, x):
    """PyBaMM initial_soc (reference window) for negative stoichiometry x."""
    import pybamm
    from hil import pybamm_cells as pc
    ref = pc._soc_window(chem)
    opts = pc.params(chem)[1]
    x0, x100, _, _ = pybamm.lithium_ion.get_min_max_stoichiometries(ref, options=opts)
    return (x - x0) / (x100 - x0)


def _steps(chem, segs):
    import pybamm
    out = []
    for kind, val in segs:
        if kind == "dc":
            tt = np.arange(len(val) + 1) * DT
            ii = np.concatenate([val, val[-1:]]) * CNOM[chem]
            out.append(pybamm.step.current(np.column_stack([tt, -ii])))
        else:
            s = val.replace("{0.3C}", "%g A" % (0.3 * CNOM[chem])).replace("{C/30}", "%g A" % (CNOM[chem] / 30))
            out.append(s + " (%g second period)" % DT)
    return out


def _cells_job(a):
    from hil import pybamm_cells as pc
    chem, t, i, cells = a
    out = cached("cells", [chem, t, i, cells], lambda: [
        np.array(x) for x in zip(*pc.run_current_cells(chem, t, i, cells))])
    return list(zip(out[0], out[1]))


TRUTH_TOL = 0.002   # a cell's truth may depart from its integrated current by at most 0.2 % SoC


def check_truth(t, i, soc, what):
    """Every cell's true SoC must follow the current it was driven with (one gain per cell, its
    capacity): a solver that steps over a burst would otherwise score the estimators on a wrong truth."""
    dq = np.diff(t) * (i[1:] + i[:-1]) / 2
    soc = np.asarray(soc, float).reshape(len(t), -1)
    for k in range(soc.shape[1]):
        ds = np.diff(soc[:, k])
        g = float(np.dot(ds, dq) / np.dot(dq, dq))
        dev = float(np.max(np.abs(np.cumsum(ds - g * dq))))
        if dev > TRUTH_TOL:
            raise RuntimeError("%s cell %d: truth departs from the integrated current by %.2f %% SoC"
                               % (what, k + 1, 100 * dev))


def validation_run(chem, name, xf, xe, pool=None):
    """Returns t, i (true pack current), v (n×16), soc (n×16, truth per cell), soc0 scenario start."""
    from hil import pybamm_cells as pc
    segs, soc0 = profiles.scenario(name, chem, SEED)
    cap, r, dsoc = pack_cells(chem)
    s_cell = soc0 + dsoc
    top = int(np.argmin((1 - s_cell) * cap))          # fullest at the top: drives the CV hold
    s_pb = [float(_pb_soc(chem, x_of(s, xf, xe))) for s in s_cell]
    key = [chem, name, SEED, segs, s_pb[top], cap[top], r[top]]
    td, idrv, _, xdrv = cached("driver", key, lambda: pc.run_experiment(
        chem, _steps(chem, segs), s_pb[top], float(cap[top]), float(r[top])))
    check_truth(td, idrv, soc_of(xdrv, xf, xe), "%s %s driver" % (chem, name))
    # the series current on the log grid: mean of the driver's current over each DT interval
    t = np.arange(0.0, td[-1] - DT / 2, DT)
    qd = np.concatenate([[0], np.cumsum(np.diff(td) * (idrv[1:] + idrv[:-1]) / 2)])
    qg = np.interp(np.concatenate([t, [t[-1] + DT]]), td, qd)
    i = np.diff(qg) / DT                              # i[k]: mean current over [t_k, t_k+DT)
    i_log = np.concatenate([[i[0]], i[:-1]])          # logged at the end of its interval
    cells = [(s_pb[k], float(cap[k]), float(r[k])) for k in range(N_CELLS)]
    half = N_CELLS // 2
    jobs = [(chem, t, i_log, cells[:half]), (chem, t, i_log, cells[half:])]
    res = sum(pool.map(_cells_job, jobs) if pool else [_cells_job(j) for j in jobs], [])
    v = np.column_stack([x[0] for x in res])
    soc = soc_of(np.column_stack([x[1] for x in res]), xf, xe)
    check_truth(t, i_log, soc, "%s %s" % (chem, name))
    return t, i_log, v, soc, soc0


def pack_soc(cells):
    c = np.clip(cells, 0.0, 1.0)
    lo, hi = c.min(axis=1), c.max(axis=1)
    den = 1 - hi + lo
    return np.where(den > 0, lo / np.where(den > 0, den, 1), 0.0)


def sensors(chem, name, t, i, v):
    rng = np.random.default_rng([SEED, 99, profiles.SCENARIOS.index(name), 1 if chem == "nmc" else 0])
    off = rng.uniform(-V_OFF, V_OFF, v.shape[1])
    vm = np.round((v + off + V_NOISE * rng.standard_normal(v.shape)) * 1000) / 1000
    im = i * (1 + I_GAIN) + I_OFF_C * CNOM[chem] + I_NOISE * rng.standard_normal(len(i))
    im = np.round(im * 1000) / 1000
    return im, vm


# ---- estimators -------------------------------------------------------------------------------------
def run_pwfw(model, t, im, vm, start, temp_c=None):
    """temp_c: the board's thermistor reading (one value or per sample), as the firmware has it."""
    from packwatch.estimate import estimate
    from packwatch.logcsv import Log
    cols = {"t_s": t, "current_a": im}
    names = ["t_s", "current_a"]
    if temp_c is not None:
        cols["temp1_c"] = np.broadcast_to(np.asarray(temp_c, float), np.shape(t)).copy()
        names.append("temp1_c")
    for k in range(vm.shape[1]):
        cols["cell%02d_v" % (k + 1)] = vm[:, k]
        names.append("cell%02d_v" % (k + 1))
    out = estimate(Log(cols, names, {}), model, None if start is None else start * 100)
    cells = np.column_stack([out["cell%02d_soc_pct" % (k + 1)] for k in range(vm.shape[1])]) / 100
    return out["soc_pct"] / 100, out["soc_sigma_pct"] / 100, cells


def run_cc(model, t, im, start):
    dt = np.diff(t, prepend=t[0])
    return np.clip(start + np.cumsum(im * dt) / (model["capacity_ah"] * 3600), 0, 1), None


UKF_EVERY = 5   # samples per UKF step (10 s)


def run_ukf(model, t, im, vm, start):
    from bench.soc.peer_ukf import UkfSoc
    f = UkfSoc(model, model["capacity_ah"], vm.shape[1], start, SIGMA0, DT * UKF_EVERY)
    vmean = vm.mean(axis=1)
    s = np.full(len(t), start)
    sig = np.full(len(t), SIGMA0)
    for k in range(1, len(t) - UKF_EVERY + 1, UKF_EVERY):
        b = slice(k, k + UKF_EVERY)
        x, sd = f.step(t[k + UKF_EVERY - 1] - t[k - 1], float(im[b].mean()), float(vmean[b].mean()))
        s[b] = x
        sig[b] = sd
    s[k + UKF_EVERY:] = x
    sig[k + UKF_EVERY:] = sd
    return np.clip(s, 0, 1), sig


def metrics(t, est, truth, sig):
    e = est - truth
    after = t >= 1800
    ok = np.abs(e) < CONV
    bad = np.flatnonzero(~ok)
    if not len(bad):
        conv = 0.0
    elif bad[-1] == len(e) - 1:
        conv = float("inf")
    else:
        conv = t[bad[-1] + 1] - t[0]
    cover = float(np.mean(np.abs(e) <= 3 * sig)) if sig is not None else None
    return {"rmse": float(np.sqrt(np.mean(e ** 2))), "max30": float(np.max(np.abs(e[after]))),
            "conv_s": conv, "cover": cover, "final": float(e[-1])}


def cell_metrics(t, cells, soc):
    """Each cell's own estimate against its own truth: RMSE and max |error| after 30 min."""
    ce = cells - np.clip(soc, 0, 1)
    return {"cell_rmse": float(np.sqrt(np.mean(ce ** 2))), "cell_max30": float(np.max(np.abs(ce[t >= 1800])))}


def _est_src():
    files = ["firmware/pwfw/soc.py", "firmware/pwfw/soc_model.py", "host/packwatch/estimate.py",
             "bench/soc/peer_ukf.py"]
    return [(ROOT / f).read_bytes() for f in files]


def _est_job(a):
    """Estimator run, cached by its inputs and the estimator sources (a changed soc.py re-runs)."""
    kind, model, t, im, vm, start = a
    out = cached("est", [kind, json.dumps(model, sort_keys=True), t, im, vm, start, UKF_EVERY, _est_src()],
                 lambda: tuple(np.empty(0) if x is None else x for x in _est_run(a)))
    return tuple(None if x.size == 0 else x for x in out)


def _est_run(a):
    kind, model, t, im, vm, start = a
    if kind == "pwfw.soc":
        s, sig, cells = run_pwfw(model, t, im, vm, start)
        return s, sig, cells
    if kind == "coulomb":
        s, sig = run_cc(model, t, im, start)
        return s, sig, None
    s, sig = run_ukf(model, t, im, vm, start)
    return s, sig, None


ESTIMATORS = ("pwfw.soc", "coulomb", "filterpy UKF")


KNEE = (0.10, 0.95)   # pack truth at or beyond these: the low knee or a full charge


def _first_knee(t, truth):
    k = np.flatnonzero((truth <= KNEE[0]) | (truth >= KNEE[1]))
    return float(t[k[0]] - t[0]) if len(k) else None


def evaluate(chem, pool=None, scenarios=profiles.SCENARIOS):
    t0 = time.time()
    model, xf, xe, _ = characterise(chem)
    out = {"model": model, "runs": {}, "t_char": time.time() - t0}
    for name in scenarios:
        t1 = time.time()
        t, i, v, soc, soc0 = validation_run(chem, name, xf, xe, pool)
        t_sim = time.time() - t1
        truth = pack_soc(soc)
        im, vm = sensors(chem, name, t, i, v)
        starts = {"true": float(truth[0]), "+30 %": float(truth[0]) + WRONG, "-30 %": float(truth[0]) - WRONG}
        labels = [(kind, lab) for kind in ESTIMATORS for lab in starts]
        jobs = [(kind, model, t, im, vm, starts[lab]) for kind, lab in labels]
        res = pool.map(_est_job, jobs) if pool else [_est_job(j) for j in jobs]
        rows = {}
        for (kind, lab), (s, sig, cells) in zip(labels, res):
            m = metrics(t, s, truth, sig)
            if cells is not None and lab == "true":
                m.update(cell_metrics(t, cells, soc))
            rows[(kind, lab)] = m
        out["runs"][name] = {"rows": rows, "hours": (t[-1] - t[0]) / 3600, "soc_range": (
            float(truth.min()), float(truth.max())), "cell_range": (float(soc.min()), float(soc.max())),
            "t_sim": t_sim, "t_est": time.time() - t1 - t_sim, "start": float(truth[0]),
            "t_knee": _first_knee(t, truth)}
        print("  %s %-10s %.1f h, sim %.0f s, estimators %.0f s" % (
            chem, name, out["runs"][name]["hours"], t_sim, out["runs"][name]["t_est"]), flush=True)
    return out


# ---- report -------------------------------------------------------------------------------------------
def _pct(x):
    return "%.1f" % (100 * x)


def _conv(x):
    if x == float("inf"):
        return "never"
    return "%.0f" % (x / 60)


def _cov(x):
    return "–" if x is None else "%.0f" % (100 * x)


def table(res):
    lines = ["| scenario | estimator | RMSE % | max\\|e\\| >30 min % | in 3σ % | RMSE % (±30 %) | "
             "max\\|e\\| >30 min % (±30 %) | min to <3 % (+30 / −30) | in 3σ % (+30 / −30) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in res["runs"].items():
        for kind in ESTIMATORS:
            a = run["rows"][(kind, "true")]
            p, m = run["rows"][(kind, "+30 %")], run["rows"][(kind, "-30 %")]
            lines.append("| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s |" % (
                name, kind, _pct(a["rmse"]), _pct(a["max30"]), _cov(a["cover"]), _pct(p["rmse"]), _pct(m["rmse"]),
                _pct(p["max30"]), _pct(m["max30"]), _conv(p["conv_s"]), _conv(m["conv_s"]),
                _cov(p["cover"]), _cov(m["cover"])))
    return lines


TARGETS = {"lfp": (0.010, 0.025), "nmc": (0.008, 0.015)}   # issue 4: pack RMSE, pack max |e| after 30 min
CELL_TARGETS = (0.015, 0.035)                                # per cell of the 16S pack


def targets(chem, res):
    """The issue's targets against this run, worst scenario first (values to 0.01 points)."""
    runs = res["runs"]

    def worst(key, est="pwfw.soc", start="true", agg=max):
        v = {n: r["rows"][(est, start)][key] for n, r in runs.items()}
        n = agg(v, key=v.get)
        return n, v[n]

    rows = []

    def add(what, name, val, ok, fmt="%.2f"):
        rows.append("| %s | %s | %s | %s |" % (what, name, fmt % val, "yes" if ok else "**no**"))

    t_rmse, t_max = TARGETS[chem]
    n, v = worst("rmse")
    add("pack RMSE ≤ %.1f %% (true start)" % (100 * t_rmse), n, 100 * v, v <= t_rmse)
    n, v = worst("max30")
    add("pack max \\|e\\| after 30 min ≤ %.1f %%" % (100 * t_max), n, 100 * v, v <= t_max)
    n, v = worst("cell_rmse")
    add("per-cell RMSE ≤ %.1f %%" % (100 * CELL_TARGETS[0]), n, 100 * v, v <= CELL_TARGETS[0])
    n, v = worst("cell_max30")
    add("per-cell max \\|e\\| after 30 min ≤ %.1f %%" % (100 * CELL_TARGETS[1]), n, 100 * v, v <= CELL_TARGETS[1])
    covs = [(r["rows"][("pwfw.soc", st)]["cover"], "%s %s" % (n, st)) for n, r in runs.items()
            for st in ("+30 %", "-30 %")]
    v, n = min(covs)
    add("±30 % start: error inside 3σ ≥ 95 % of the time", n, 100 * v, v >= 0.95, "%.0f %%")
    if chem == "lfp":
        conv = [(r["rows"][("pwfw.soc", st)]["conv_s"] - r["t_knee"], "%s %s" % (n, st)) for n, r in runs.items()
                if r["t_knee"] is not None for st in ("+30 %", "-30 %")]
        if conv:
            v, n = max(conv)
            add("±30 %% start: within 3 %% from the first knee (≤ %.0f %%) or full (≥ %.0f %%) on" % (
                100 * KNEE[0], 100 * KNEE[1]), n, v / 60, v <= 0, "%+.0f min")
    if chem == "nmc":
        conv = [(r["rows"][("pwfw.soc", st)]["conv_s"], "%s %s" % (n, st)) for n, r in runs.items()
                for st in ("+30 %", "-30 %")]
        v, n = max(conv)
        add("±30 % start: within 3 % in < 5 min", n, v / 60, v < 300, "%.0f min")
    beat = [n for n, r in runs.items() if all(
        r["rows"][("pwfw.soc", "true")][k] <= r["rows"][(o, "true")][k] for o in ESTIMATORS[1:] for k in ("rmse", "max30"))]
    add("better than coulomb counting and the UKF (true start, RMSE and max)", "%d of %d scenarios" % (
        len(beat), len(runs)), len(beat), len(beat) == len(runs), "%d")
    return ["| target (issue 4) | worst scenario | measured | met |", "|---|---|---:|---|"] + rows


def report(results, runtime):
    lines = ["### SoC accuracy against PyBaMM ground truth", ""]
    lines += ["Errors are estimate − truth of the **pack SoC** (min/(1 − max + min) of the 16 cell SoCs, "
              "what pwfw.soc reports), in SoC percentage points. Columns without (±30 %): estimator started "
              "at the true SoC; (±30 %): started 30 points too high / too low (both starts listed). "
              "\"min to <3 %\": minutes until |error| stays below 3 points for the rest of the run. "
              "\"in 3σ\": share of all samples with |error| ≤ 3 × the estimator's own sigma (coulomb "
              "counting has none). Every estimator is told sigma = 3 % at the start, also when it is "
              "30 points off (a wrong persisted state).", ""]
    for chem, res in results.items():
        m = res["model"]
        lines += ["#### %s (%s)" % (chem.upper(), "PyBaMM Prada2013 + one-state hysteresis" if chem == "lfp"
                                     else "PyBaMM Chen2020"), "",
                  "Fitted fresh cell: %.3f A·h, R0 %.1f mΩ (median), RC %.0f s / %.0f s, OCV error %.1f mV." % (
                      m["capacity_ah"], 1000 * float(np.median(m["r0_ohm"])), m["rc"][0]["tau_s"],
                      m["rc"][1]["tau_s"], m["ocv_err_mv"]), ""]
        lines += ["| scenario | hours | pack SoC range % | cell SoC range % |", "|---|---:|---:|---:|"]
        for name, run in res["runs"].items():
            lines.append("| %s | %.1f | %s–%s | %s–%s |" % (name, run["hours"], _pct(run["soc_range"][0]),
                                                         _pct(run["soc_range"][1]), _pct(run["cell_range"][0]),
                                                         _pct(run["cell_range"][1])))
        lines += [""] + table(res) + [""]
        cell = ["%s %s / %s" % (name, _pct(run["rows"][("pwfw.soc", "true")].get("cell_rmse", float("nan"))),
                                _pct(run["rows"][("pwfw.soc", "true")].get("cell_max30", float("nan"))))
                for name, run in res["runs"].items()]
        lines += ["pwfw.soc per-cell SoC, each cell's own estimate against its own truth (true start), RMSE / "
                  "max |error| after 30 min, %%: %s." % ", ".join(cell), ""]
        lines += targets(chem, res) + [""]
    lines += ["How the numbers were produced: " + HOW, "",
              "Runtime of this accuracy run: %.0f s (PyBaMM runs cached in bench/soc/cache/)." % runtime, ""]
    return lines


HOW = """
* Ground truth: PyBaMM %(pv)s SPMe, IDAKLU; LFP = Prada2013 (2.3 A·h) with a one-state hysteresis positive
  OCP (±8 mV, decay rate 10); NMC = Chen2020 (5 A·h); window 2.5–3.6 V (LFP), 2.5–4.2 V (NMC).
* Fitting only: one fresh cell, `profiles.char_steps` (0.2C CC-CV, C/20 discharge to the cut-off and C/20
  charge with CV hold to C/50, 9 × 10 %% steps at C/2 each direction with 1 h rests, a 1C/0.75C 10 s pulse
  pair after each rest; ≈ 75 h), written as a packwatch log (1 mV, 1 mA) and fitted with
  `packwatch.fit.fit_model` (= `packwatch fit`). All three estimators use that fitted model.
* Validation only (synthesised, seeded, `bench/soc/profiles.py`, 2 s log period): **inverter** 6 h from 70 %%
  (standby, fridge compressor cycling with start surge, laptop, 4 kettle bursts 1C, 2 microwave 0.6C,
  45 min true rest); **solar_day** 16 h from 30 %% (fridge, morning kettles, laptop, cloudy solar
  07–19 h scaled to peak ≈ 85 %%, evening TV/kettle/microwave); **cccv_deep** ≈ 12 h from 50 %% (rest,
  discharge, 0.3C CC-CV to C/30, rest, 0.3C deep discharge with bursts to the cut-off, rest, 0.2C
  recharge); **shallow** 8 h between ≈ 40 and 65 %% (0.1–0.4C, rests), never a knee.
* Pack: 16 cells, each its own PyBaMM run (no reuse), all aged against the fitted fresh cell (capacity
  × 0.97, resistance × 1.2: electrode width × capacity factor, exchange-current densities and electrolyte
  conductivity scaled), spread uniform capacity ±1.5 %%, resistance ±10 %%, initial SoC ±1 %%. The series
  current comes from a PyBaMM experiment on the cell that is fullest at the top (so CV holds and
  cut-offs act on a real cell); all 16 cells are then run under that current, with a solver stop at
  every kink of it (an adaptive step can otherwise pass over a minutes-long burst). Checked on every
  run: each cell's truth follows its integrated current to within %(tol).1f %% SoC, or the run fails.
* Sensors: cell offsets U(−4, +4) mV, noise 5 mV rms, 1 mV quantisation; current gain +0.5 %%, offset
  +C/500, noise 1 mA, 1 mA quantisation.
* Truth SoC per cell: PyBaMM average negative-particle stoichiometry mapped linearly so 100 %% = the
  end of the characterisation CV hold and 0 %% = fitted capacity below it (C/20 to the cut-off); relative
  to each cell's own (aged) capacity. Pack truth = min/(1 − max + min) of the cells clipped to 0…1.
* Estimators: (a) pwfw.soc via `packwatch.estimate.estimate` (16 cells, fitted model, capacity = fitted
  fresh capacity, start by `set_soc` with sigma 3 %%); (b) coulomb counting of the measured current
  against the fitted capacity, same start; (c) filterpy %(fv)s UnscentedKalmanFilter (Merwe points
  α 0.3, β 2) on the same fitted ECM (SoC, 2 RC, hysteresis) fed the mean of the 16 cell voltages,
  P0 = diag(3 %%², 10 mV², 10 mV², 0.5²), Q from the sensor budget (1 %% of |ΔSoC| + 3e-5/√s; RC 0.3 mV,
  h 0.02), R = (5 mV/4)² + ocv_err² + (0.3·I·R0)² — not tuned on the validation runs. It estimates the
  mean cell, not min/(1 − max + min) (a structural bias of up to the cell spread).
* Metrics over the whole run except "max |e| > 30 min" (samples after the first 30 minutes).
"""


def main(argv=None):
    import multiprocessing as mp
    import filterpy
    import pybamm
    global HOW
    HOW = HOW % {"pv": pybamm.__version__, "fv": filterpy.__version__, "tol": 100 * TRUTH_TOL}
    t0 = time.time()
    chems = ("lfp", "nmc")
    with mp.get_context("fork").Pool(max(1, min(4, os.cpu_count() or 1))) as pool:
        results = {}
        for chem in chems:
            results[chem] = evaluate(chem, pool)
    lines = report(results, time.time() - t0)
    text = "\n".join(lines)
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/soc_accuracy.md").write_text(text)
    with open(CACHE / "last_results.json", "w") as f:
        json.dump({c: {n: {"%s|%s" % k: v for k, v in r["rows"].items()} for n, r in res["runs"].items()}
                   for c, res in results.items()}, f, indent=1, default=str)
    print(text)
    return results


if __name__ == "__main__":
    main()
