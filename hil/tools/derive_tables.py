"""Derive the plant's cell tables from PyBaMM characterisation runs.

The plant must not run on the estimator's own model, so its OCV curves and resistances come from
an independent electrochemical model (PyBaMM SPMe; the cells are defined in hil/pybamm_cells.py,
variant "plant"):

* LFP: Prada2013 parameter set, one-state hysteresis OCP in the positive electrode. Prada2013 has a
  single OCP, so the lithiation / delithiation branches are that OCP -/+ half a gap of 5..25 mV
  (largest mid-plateau), which is what the literature reports for LFP.
* NMC: Chen2020 (no hysteresis).

Per chemistry: C/20 discharge from full (after a CV hold) to the lower cut-off, rest, C/20 charge
to a little above the upper cut-off (so the plant has the steep end for over-voltage scenarios);
the bulk open-circuit voltage with the hysteresis state moved to its charge / discharge limit gives
the two OCV branches against SoC (0 = empty at C/20, 1 = full after the CV hold). A 1C pulse at 50 % SoC gives R0 (instant step)
and two RC pairs (fit to the relaxation). The hysteresis relaxation (SoC throughput for 1/e of the
switch-over) is read from the state after the discharge -> charge reversal.

Run (needs `pip install pybamm==26.10.1.1`; the outputs are committed, so runtime and CI never need
PyBaMM):  PYBAMM_DISABLE_TELEMETRY=true .venv/bin/python -m hil.tools.derive_tables
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

from hil import pybamm_cells

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

OUT = Path(__file__).resolve().parents[1] / "data"
GRID = np.round(np.linspace(0.0, 1.0, 101), 4)

CHEMS = {
    "lfp": {"v_lo": 2.0, "v_hi": 3.6, "v_over": 3.9, "hyst": True},
    "nmc": {"v_lo": 2.5, "v_hi": 4.2, "v_over": 4.35, "hyst": False},
}


def _params(chem):
    # the plant's cells (hil/pybamm_cells.py, variant "plant"), with the characterisation's cut-offs
    c = CHEMS[chem]
    p = pybamm_cells.base_params(chem, "plant")
    p.update({"Upper voltage cut-off [V]": c["v_over"] + 0.05, "Lower voltage cut-off [V]": c["v_lo"] - 0.05},
             check_already_exists=False)
    return p


def _model(chem):
    import pybamm

    return pybamm.lithium_ion.SPMe(pybamm_cells.options(chem))


def _run(chem, steps, initial_soc, period="60 seconds"):
    import pybamm

    exp = pybamm.Experiment(steps, period=period)
    sim = pybamm.Simulation(_model(chem), parameter_values=_params(chem), experiment=exp,
                            solver=pybamm.IDAKLUSolver())
    return sim.solve(initial_soc=initial_soc)


def _branches(step, hyst):
    """Charge and discharge OCV branches along a run: the bulk OCV with the hysteresis state moved to
    +1 / -1 (so the branches do not carry the switch-over after a reversal)."""
    ocv = step["Bulk open-circuit voltage [V]"].entries
    if not hyst:
        return ocv, ocv
    h = step["X-averaged positive electrode hysteresis state"].entries
    big_h = np.abs(step["X-averaged positive electrode OCP hysteresis [V]"].entries)
    # ocp = (1+h)/2 U_delith + (1-h)/2 U_lith, and U_delith - U_lith = |H|
    return ocv + (1 - h) / 2 * big_h, ocv - (1 + h) / 2 * big_h


def _switch_soc(step, soc):
    """SoC throughput for the hysteresis state to close 1/e of the way to the new branch after the
    charge/discharge reversal at the start of the charge run."""
    h = step["X-averaged positive electrode hysteresis state"].entries
    frac = (h[-1] - h) / (h[-1] - h[0])
    return float(np.interp(np.exp(-1), frac[::-1], soc[::-1]))


def characterise(chem):
    c = CHEMS[chem]
    lo, hi, over = c["v_lo"], c["v_hi"], c["v_over"]
    sol = _run(chem, [
        "Charge at C/20 until %g V" % hi,
        "Hold at %g V until C/200" % hi,
        "Discharge at C/20 until %g V" % lo,
        "Rest for 2 hours",
        "Charge at C/20 until %g V" % over,
    ], initial_soc=0.9)
    dis, chg = sol.cycles[2], sol.cycles[4]
    qd = dis["Discharge capacity [A.h]"].entries
    q_full = float(qd[-1] - qd[0])
    # one charge count for both runs: SoC 0 = empty at the lower cut-off, 1 = full after the CV hold
    soc_d = 1.0 - (qd - qd[0]) / q_full
    soc_c = -(chg["Discharge capacity [A.h]"].entries - chg["Discharge capacity [A.h]"].entries[0]) / q_full
    d_chg, d_dis = _branches(dis, c["hyst"])
    c_chg, c_dis = _branches(chg, c["hyst"])
    # the branches from both runs, averaged (they differ by the C/20 bulk diffusion only)
    ocv_chg = 0.5 * (np.interp(GRID, soc_c, c_chg) + np.interp(GRID, soc_d[::-1], d_chg[::-1]))
    ocv_dis = 0.5 * (np.interp(GRID, soc_c, c_dis) + np.interp(GRID, soc_d[::-1], d_dis[::-1]))
    # the overcharge tail past SoC 1 (steep end), from the charge run only, for over-voltage scenarios
    ext = np.array([1.002, 1.005, 1.01, 1.02, 1.03, 1.05])
    ext = np.append(ext[ext < soc_c[-1] - 1e-4], round(float(soc_c[-1]), 4))
    ext_chg = np.interp(ext, soc_c, c_chg)
    ext_dis = np.interp(ext, soc_c, c_dis)
    hyst_soc = _switch_soc(chg, soc_c) if c["hyst"] else 0.0

    r0, rc = pulse(chem)
    return {
        "source": "PyBaMM %s SPMe, parameter set %s%s" % (
            __import__("pybamm").__version__, pybamm_cells.PARAMETER_SETS[chem],
            ", one-state hysteresis OCP (positive), gap %g..%g mV, decay %g" % (
                pybamm_cells.PLANT_GAP_MIN_V * 1e3, pybamm_cells.PLANT_GAP_MAX_V * 1e3,
                pybamm_cells.PLANT_HYST_DECAY) if c["hyst"] else ""),
        "generated_by": "hil/tools/derive_tables.py",
        "chemistry": chem,
        "ref_capacity_ah": round(q_full, 4),
        "v_lo": lo, "v_hi": hi,
        "soc": [round(float(x), 4) for x in np.concatenate([GRID, ext])],
        "ocv_chg": [round(float(x), 5) for x in np.concatenate([ocv_chg, ext_chg])],
        "ocv_dis": [round(float(x), 5) for x in np.concatenate([ocv_dis, ext_dis])],
        "r0_ohm": round(r0, 6),
        "rc": [[round(r, 6), round(t, 2)] for r, t in rc],
        "hyst_soc": round(hyst_soc, 5),
    }


def pulse(chem):
    """R0 from the instant step of a 1C pulse at 50 % SoC; 2 RC pairs from the relaxation after it."""
    sol = _run(chem, [
        "Rest for 1 hour",
        "Discharge at 1C for 60 seconds (0.1 second period)",
        "Rest for 30 minutes (1 second period)",
    ], initial_soc=0.5)
    rest0, dis, rest = sol.cycles[0], sol.cycles[1], sol.cycles[2]
    i = float(np.mean(dis["Current [A]"].entries[1:]))
    v_before = float(rest0["Voltage [V]"].entries[-1])
    v_dis = dis["Voltage [V]"].entries
    r0 = (v_before - float(v_dis[1])) / i
    t = rest["Time [s]"].entries - rest["Time [s]"].entries[0]
    v = rest["Voltage [V]"].entries
    t, v = t[1:], v[1:]
    # v(t) = v_inf - a1 exp(-t/tau1) - a2 exp(-t/tau2): grid over taus, linear least squares for the rest
    best = None
    for t1 in np.geomspace(2, 60, 25):
        for t2 in np.geomspace(80, 2000, 25):
            a = np.column_stack([np.ones_like(t), -np.exp(-t / t1), -np.exp(-t / t2)])
            x, *_ = np.linalg.lstsq(a, v, rcond=None)
            err = float(np.sum((a @ x - v) ** 2))
            if best is None or err < best[0]:
                best = (err, t1, t2, x)
    _, t1, t2, x = best
    # a_k = i * R_k * (1 - exp(-60 / tau_k)) after a 60 s pulse
    rc = [(max(float(x[1]), 0.0) / i / (1 - np.exp(-60 / t1)), t1),
          (max(float(x[2]), 0.0) / i / (1 - np.exp(-60 / t2)), t2)]
    return float(r0), [(float(r), float(t)) for r, t in rc]


def main(argv=None):
    chems = (argv or sys.argv[1:]) or list(CHEMS)
    OUT.mkdir(exist_ok=True)
    for chem in chems:
        table = characterise(chem)
        path = OUT / ("ocv_%s.json" % chem)
        path.write_text(json.dumps(table, indent=0) + "\n")
        gap = np.array(table["ocv_chg"]) - np.array(table["ocv_dis"])
        print("%s: %s, Q=%.3f Ah, R0=%.4f ohm, RC=%s, gap %.1f..%.1f mV" % (
            chem, path, table["ref_capacity_ah"], table["r0_ohm"], table["rc"],
            gap[:101].min() * 1e3, gap[:101].max() * 1e3))


if __name__ == "__main__":
    main()
