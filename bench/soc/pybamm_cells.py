"""PyBaMM ground-truth cells for the accuracy benchmark (work in progress: only the cell setup exists).

LFP: Prada2013 with a one-state hysteresis OCP in the positive electrode (lithiation/delithiation OCP
= Prada's OCP ∓ 8 mV, decay rate 10); NMC: Chen2020. `run_cell(chem, t_s, i_a, soc0)` returns the
terminal voltage and discharge capacity at t_s (current + = charging, as in packwatch logs). Verified:
a 4 h profile of the LFP cell solves in ≈ 1.5 s with IDAKLU.
"""
import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")


def params(chem):
    import pybamm
    if chem == "nmc":
        return pybamm.ParameterValues("Chen2020"), {}
    p = pybamm.ParameterValues("Prada2013")
    ocp = p["Positive electrode OCP [V]"]
    p.update({"Positive electrode lithiation OCP [V]": lambda sto: ocp(sto) - 0.008,
              "Positive electrode delithiation OCP [V]": lambda sto: ocp(sto) + 0.008,
              "Positive particle lithiation hysteresis decay rate": 10.0,
              "Positive particle delithiation hysteresis decay rate": 10.0,
              "Initial hysteresis state in positive electrode": 0.0}, check_already_exists=False)
    return p, {"open-circuit potential": ("single", "one-state hysteresis")}


def run_cell(chem, t_s, i_a, soc0):
    import numpy as np
    import pybamm
    p, opts = params(chem)
    model = pybamm.lithium_ion.SPMe(opts)
    p["Current function [A]"] = pybamm.Interpolant(np.asarray(t_s), -np.asarray(i_a), pybamm.t)
    sim = pybamm.Simulation(model, parameter_values=p, solver=pybamm.IDAKLUSolver())
    sol = sim.solve(t_eval=[float(t_s[0]), float(t_s[-1])], t_interp=np.asarray(t_s), initial_soc=soc0)
    return sol["Voltage [V]"].entries, sol["Discharge capacity [A.h]"].entries
