"""PyBaMM cells: the one place where the project's electrochemical truth models are defined.

Two cell definitions, both SPMe (IDAKLU solver), current + = charging (as in packwatch logs):

* ``variant="plant"``: the cells behind the plant's tables (hil/data/ocv_*.json, written by
  hil/tools/derive_tables.py). LFP: Prada2013 with a one-state hysteresis OCP in the positive
  electrode whose gap is 5..25 mV (largest mid-plateau, as the literature reports), decay 40;
  NMC: Chen2020.
* ``variant="bench"``: the ground-truth cells of the SoC accuracy benchmark (bench/soc/accuracy.py).
  LFP: Prada2013 with lithiation/delithiation OCP = Prada's OCP -/+ 8 mV, decay rate 10; NMC: Chen2020.

They differ on purpose: the plant must not be the benchmark's truth either.

Cell-to-cell variation and ageing (bench variant, used by bench/soc/accuracy.py):
* capacity scale k: the electrode width (current-collector area) x k, so capacity is proportional to k
  and, at equal per-area properties, every resistance to 1/k (a bigger cell of the same design);
* resistance scale r: on top of the area effect, the exchange-current densities of both electrodes and
  the electrolyte conductivity are scaled so the cell's absolute (kinetic + electrolyte) resistance is
  about r x the reference cell's. Solid diffusion is left as it is, so the long-time (diffusion)
  overpotential scales only with 1/k.
`truth` of a run is the average negative-particle stoichiometry, which is linear in the charge stored;
accuracy.py maps it onto the operational SoC (C/20 from the end of the CV hold to the cut-off).
"""
import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

# voltage window of the bench cells (CV voltage, C/20 cut-off) used for characterisation and validation
LIMITS = {"lfp": (3.6, 2.5), "nmc": (4.2, 2.5)}
PARAMETER_SETS = {"lfp": "Prada2013", "nmc": "Chen2020"}

# plant variant: LFP hysteresis gap between the branches, 25 mV mid-plateau, 5 mV towards the ends
PLANT_GAP_MIN_V = 0.005
PLANT_GAP_MAX_V = 0.025
PLANT_HYST_DECAY = 40.0  # PyBaMM gamma: per unit stoichiometry change
BENCH_HALF_GAP_V = 0.008
BENCH_HYST_DECAY = 10.0


def plant_gap(sto):
    """Full gap between the plant's LFP branches at positive stoichiometry sto."""
    return PLANT_GAP_MIN_V + (PLANT_GAP_MAX_V - PLANT_GAP_MIN_V) * 4 * sto * (1 - sto)


def options(chem):
    """PyBaMM model options: LFP carries a one-state hysteresis OCP in the positive electrode."""
    return {"open-circuit potential": ("single", "one-state hysteresis")} if chem == "lfp" else {}


def base_params(chem, variant="bench"):
    """The parameter set of chem with the variant's hysteresis (LFP), before cut-offs and scaling."""
    import pybamm
    p = pybamm.ParameterValues(PARAMETER_SETS[chem])
    if chem != "lfp":
        return p
    u = p["Positive electrode OCP [V]"]
    if variant == "plant":
        # the positive lithiates on discharge: lithiation branch below, delithiation above
        p.update({
            "Positive electrode lithiation OCP [V]": lambda sto: u(sto) - plant_gap(sto) / 2,
            "Positive electrode delithiation OCP [V]": lambda sto: u(sto) + plant_gap(sto) / 2,
            "Positive particle lithiation hysteresis decay rate": lambda sto, T: PLANT_HYST_DECAY,
            "Positive particle delithiation hysteresis decay rate": lambda sto, T: PLANT_HYST_DECAY,
            "Positive particle hysteresis switching factor": 1.0,
            "Initial hysteresis state in positive electrode": 1.0,
        }, check_already_exists=False)
    elif variant == "bench":
        p.update({"Positive electrode lithiation OCP [V]": lambda sto: u(sto) - BENCH_HALF_GAP_V,
                  "Positive electrode delithiation OCP [V]": lambda sto: u(sto) + BENCH_HALF_GAP_V,
                  "Positive particle lithiation hysteresis decay rate": BENCH_HYST_DECAY,
                  "Positive particle delithiation hysteresis decay rate": BENCH_HYST_DECAY,
                  "Initial hysteresis state in positive electrode": 0.0}, check_already_exists=False)
    else:
        raise ValueError("unknown cell variant %r (plant, bench)" % (variant,))
    return p


def _scaled(f, s):
    return lambda *a: f(*a) * s


def params(chem, cap_scale=1.0, r_scale=1.0):
    """The bench cell of chem, scaled: (ParameterValues, model options)."""
    p, opts = base_params(chem, "bench"), options(chem)
    if cap_scale != 1.0:
        p["Electrode width [m]"] = p["Electrode width [m]"] * cap_scale
        p["Nominal cell capacity [A.h]"] = p["Nominal cell capacity [A.h]"] * cap_scale
    # per-area resistance × (r_scale * cap_scale): absolute resistance ≈ r_scale × reference
    ra = r_scale * cap_scale
    if ra != 1.0:
        for key in ("Negative electrode exchange-current density [A.m-2]",
                    "Positive electrode exchange-current density [A.m-2]",
                    "Electrolyte conductivity [S.m-1]"):
            v = p[key]
            p[key] = _scaled(v, 1.0 / ra) if callable(v) else v / ra
    # the cells of a pack may be driven a little beyond the reference cell's window
    p["Lower voltage cut-off [V]"] = 1.5 if chem == "nmc" else 1.8
    p["Upper voltage cut-off [V]"] = 4.5 if chem == "nmc" else 4.0
    return p, opts


def _soc_window(chem):
    # PyBaMM's initial_soc is defined over the reference voltage window of the parameter set
    import pybamm
    p, _ = params(chem)
    p["Lower voltage cut-off [V]"] = 2.5 if chem == "nmc" else 2.0
    p["Upper voltage cut-off [V]"] = LIMITS[chem][0]
    return p


def _sim(chem, cap_scale, r_scale, experiment):
    import pybamm
    p, opts = params(chem, cap_scale, r_scale)
    model = pybamm.lithium_ion.SPMe(opts)
    return pybamm.Simulation(model, parameter_values=p, experiment=experiment,
                             solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-8))


def _init_soc(sim, chem, soc0):
    # set the initial stoichiometries from the reference window (not the widened cut-offs)
    import pybamm
    ref = _soc_window(chem)
    x, y = pybamm.lithium_ion.get_initial_stoichiometries(soc0, ref, options=sim.model.options)
    p = sim.parameter_values
    p["Initial concentration in negative electrode [mol.m-3]"] = x * p["Maximum concentration in negative electrode [mol.m-3]"]
    p["Initial concentration in positive electrode [mol.m-3]"] = y * p["Maximum concentration in positive electrode [mol.m-3]"]


def _stops(t_s, i_a):
    """Solver stop points: the ends and every kink of the piecewise-linear current. Without them the
    adaptive solver can step right over a short burst (seen: a 3 min 1.3C burst missed entirely, so a
    cell's truth did not follow the series current)."""
    import numpy as np
    t_s, i_a = np.asarray(t_s, float), np.asarray(i_a, float)
    kink = np.abs(np.diff(i_a, 2)) > 1e-4
    return t_s[np.concatenate([[True], kink, [True]])]


def run_current_cells(chem, t_s, i_a, cells):
    """Current-driven runs of several cells under the same current, one model build: cells is a list of
    (soc0, cap_scale, r_scale). Returns a list of (v, xn) at t_s (xn: average negative
    stoichiometry)."""
    import numpy as np
    import pybamm
    p, opts = params(chem)
    ck, ra = pybamm.InputParameter("cap_scale"), pybamm.InputParameter("r_area")
    p["Electrode width [m]"] = p["Electrode width [m]"] * ck
    for key in ("Negative electrode exchange-current density [A.m-2]",
                "Positive electrode exchange-current density [A.m-2]",
                "Electrolyte conductivity [S.m-1]"):
        v = p[key]
        p[key] = (lambda f: (lambda *a: f(*a) / ra))(v) if callable(v) else v / ra
    cn = p["Maximum concentration in negative electrode [mol.m-3]"]
    cp = p["Maximum concentration in positive electrode [mol.m-3]"]
    p["Initial concentration in negative electrode [mol.m-3]"] = pybamm.InputParameter("x0") * cn
    p["Initial concentration in positive electrode [mol.m-3]"] = pybamm.InputParameter("y0") * cp
    p["Current function [A]"] = pybamm.Interpolant(np.asarray(t_s, float), -np.asarray(i_a, float), pybamm.t)
    model = pybamm.lithium_ion.SPMe(opts)
    sim = pybamm.Simulation(model, parameter_values=p, solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-8))
    ref = _soc_window(chem)
    out = []
    for soc0, cap_scale, r_scale in cells:
        x, y = pybamm.lithium_ion.get_initial_stoichiometries(soc0, ref, options=model.options)
        inputs = {"cap_scale": cap_scale, "r_area": r_scale * cap_scale, "x0": x, "y0": y}
        sol = sim.solve(t_eval=_stops(t_s, i_a), t_interp=np.asarray(t_s, float), inputs=inputs)
        v = sol["Voltage [V]"].entries
        if len(v) != len(t_s):
            raise RuntimeError("pybamm stopped early at t=%.0f s" % sol.t[-1])
        out.append((v, sol["Average negative particle stoichiometry"].entries))
    return out


def run_experiment(chem, steps, soc0, cap_scale=1.0, r_scale=1.0):
    """Experiment run (steps: pybamm step strings/objects, current + = charging in the output).
    Returns (t, i, v, xn) with duplicate step-boundary times removed."""
    import numpy as np
    import pybamm
    exp = pybamm.Experiment(steps)
    sim = _sim(chem, cap_scale, r_scale, exp)
    _init_soc(sim, chem, soc0)
    sol = sim.solve()
    t = sol["Time [s]"].entries
    i = -sol["Current [A]"].entries
    v = sol["Voltage [V]"].entries
    xn = sol["Average negative particle stoichiometry"].entries
    keep = np.concatenate([[True], np.diff(t) > 1e-6])  # first of a duplicate: the old step's end
    return t[keep], i[keep], v[keep], xn[keep]
