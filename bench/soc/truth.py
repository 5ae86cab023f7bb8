"""PyBaMM truth for the generated SoC sets (bench/soc/locked.py): any cell set, SPMe or DFN, any ambient.

The cells of the issue-4 benchmark (hil/pybamm_cells.py, variant "bench") are used as they are
(LFP Prada2013 with its one-state hysteresis, NMC Chen2020), with the same ageing/spread scaling;
this module adds what that one does not carry: the truth model (SPMe or DFN), the ambient temperature
(isothermal cell at the ambient: PyBaMM's Arrhenius terms make kinetics and diffusion slower when cold)
and a second NMC cell, Mohtat2020 (NMC532/graphite, 5 A·h, 2.8–4.2 V: another electrode pair and
maker than Chen2020's LG M50 NMC811 — OKane2022 and ORegan2022 are the same LG M50 cell again).
hil/pybamm_cells.py is not changed (its bytes key the issue-4 benchmark's cache).
"""
import os
import re

import numpy as np

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

# cell set -> (chemistry for packwatch fit, PyBaMM parameter set, (CV voltage, C/20 cut-off), nominal A·h)
CELLSETS = {
    "lfp-prada2013": ("lfp", "Prada2013", (3.6, 2.5), 2.3),
    "nmc-chen2020": ("nmc", "Chen2020", (4.2, 2.5), 5.0),
    "nmc-mohtat2020": ("nmc", "Mohtat2020", (4.2, 2.8), 5.0),
}
T_REF = 298.15


def _model(name, opts):
    import pybamm
    return {"SPMe": pybamm.lithium_ion.SPMe, "DFN": pybamm.lithium_ion.DFN}[name](opts)


def params(cellset):
    """Reference ParameterValues and model options of a cell set (widened cut-offs: weaker cells of a
    pack go a little beyond the driver cell's window)."""
    import pybamm
    from hil import pybamm_cells as pc
    chem, pset, (vmax, vmin), _ = CELLSETS[cellset]
    if pset == pc.PARAMETER_SETS.get(chem):
        p, opts = pc.base_params(chem, "bench"), pc.options(chem)
    else:
        p, opts = pybamm.ParameterValues(pset), {}
    p["Lower voltage cut-off [V]"] = vmin - 0.7
    p["Upper voltage cut-off [V]"] = vmax + 0.3 if chem == "nmc" else 4.0
    return p, opts


def _ref_window(cellset):
    # initial SoC is taken over the cell set's own window (as pybamm_cells does for its cells)
    p, _ = params(cellset)
    vmax, vmin = CELLSETS[cellset][2]
    p["Lower voltage cut-off [V]"] = 2.0 if cellset.startswith("lfp") else vmin
    p["Upper voltage cut-off [V]"] = vmax
    return p


def _scale(p, ck, ra):
    p["Electrode width [m]"] = p["Electrode width [m]"] * ck
    for key in ("Negative electrode exchange-current density [A.m-2]",
                "Positive electrode exchange-current density [A.m-2]",
                "Electrolyte conductivity [S.m-1]"):
        v = p[key]
        p[key] = (lambda f: (lambda *a: f(*a) / ra))(v) if callable(v) else v / ra


def _temp(p, temp_k):
    p["Ambient temperature [K]"] = temp_k
    p["Initial temperature [K]"] = temp_k


def x0y0(cellset, soc0, opts):
    import pybamm
    return pybamm.lithium_ion.get_initial_stoichiometries(soc0, _ref_window(cellset), options=opts)


def pb_soc(cellset, x):
    """PyBaMM initial_soc (reference window) for negative stoichiometry x."""
    import pybamm
    _, opts = params(cellset)
    x0, x100, _, _ = pybamm.lithium_ion.get_min_max_stoichiometries(_ref_window(cellset), options=opts)
    return (x - x0) / (x100 - x0)


def steps(cellset, segs, dt):
    """Generator segments -> PyBaMM experiment steps ({0.3C}, {C/30}: C-rates of the nominal cell)."""
    import pybamm
    c = CELLSETS[cellset][3]
    out = []
    for kind, val in segs:
        if kind == "dc":
            val = np.asarray(val, float)
            tt = np.arange(len(val) + 1) * dt
            ii = np.concatenate([val, val[-1:]]) * c
            out.append(pybamm.step.current(np.column_stack([tt, -ii])))
        else:
            s = re.sub(r"\{([0-9.]+)C\}", lambda m: "%g A" % (float(m.group(1)) * c), val)
            s = re.sub(r"\{C/([0-9.]+)\}", lambda m: "%g A" % (c / float(m.group(1))), s)
            out.append(s + " (%g second period)" % dt)
    return out


def run_experiment(cellset, model, exp_steps, soc0, cap_scale=1.0, r_scale=1.0, temp_k=T_REF):
    """Experiment run; returns (t, i, v, xn), current + = charging, duplicate boundary times removed."""
    import pybamm
    p, opts = params(cellset)
    _scale(p, cap_scale, r_scale * cap_scale)
    _temp(p, temp_k)
    x, y = x0y0(cellset, soc0, opts)
    p["Initial concentration in negative electrode [mol.m-3]"] = x * p["Maximum concentration in negative electrode [mol.m-3]"]
    p["Initial concentration in positive electrode [mol.m-3]"] = y * p["Maximum concentration in positive electrode [mol.m-3]"]
    sim = pybamm.Simulation(_model(model, opts), parameter_values=p, experiment=pybamm.Experiment(exp_steps),
                            solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-8))
    sol = sim.solve()
    t = sol["Time [s]"].entries
    keep = np.concatenate([[True], np.diff(t) > 1e-6])
    return (t[keep], -sol["Current [A]"].entries[keep], sol["Voltage [V]"].entries[keep],
            sol["Average negative particle stoichiometry"].entries[keep])


def run_current_cells(cellset, model, t_s, i_a, cells, temp_k=T_REF):
    """Current-driven runs of several cells (soc0, cap_scale, r_scale) under one current, one build.
    Returns [(v, xn)] at t_s."""
    import pybamm
    from hil.pybamm_cells import _stops
    p, opts = params(cellset)
    ck, ra = pybamm.InputParameter("cap_scale"), pybamm.InputParameter("r_area")
    _scale(p, ck, ra)
    _temp(p, temp_k)
    cn = p["Maximum concentration in negative electrode [mol.m-3]"]
    cp = p["Maximum concentration in positive electrode [mol.m-3]"]
    p["Initial concentration in negative electrode [mol.m-3]"] = pybamm.InputParameter("x0") * cn
    p["Initial concentration in positive electrode [mol.m-3]"] = pybamm.InputParameter("y0") * cp
    t_s, i_a = np.asarray(t_s, float), np.asarray(i_a, float)
    p["Current function [A]"] = pybamm.Interpolant(t_s, -i_a, pybamm.t)
    sim = pybamm.Simulation(_model(model, opts), parameter_values=p,
                            solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-8))
    out = []
    for soc0, cap_scale, r_scale in cells:
        x, y = x0y0(cellset, soc0, opts)
        sol = sim.solve(t_eval=_stops(t_s, i_a), t_interp=t_s,
                        inputs={"cap_scale": cap_scale, "r_area": r_scale * cap_scale, "x0": x, "y0": y})
        v = sol["Voltage [V]"].entries
        if len(v) != len(t_s):
            raise RuntimeError("pybamm stopped early at t=%.0f s (a cell left its voltage window)" % sol.t[-1])
        out.append((v, sol["Average negative particle stoichiometry"].entries))
    return out
