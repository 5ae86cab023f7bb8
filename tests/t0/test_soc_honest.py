"""T0: pwfw.soc is never confidently wrong against the plant (issue 15 item 2).

The plant's cells (hil/plant.py, tables from PyBaMM in hil/data/) are not the estimator's model: the
firmware's generic lfp.json / nmc.json differ from them as a user's cells differ from a generic model
(LFP: the plant's OCV sits 15-80 mV below lfp.json on the plateau and its knees lie elsewhere). The
truth is the plant's own pack SoC. Whatever the start, the error must lie inside 3 sigma at least 95 %
of the time: first boot with the generic model (it must say how little it knows), and a persisted state
30 points off that claims 3 % — with the generic NMC model (its steep OCV shows the error), and for LFP
with the model `packwatch fit` makes from the shipped characterisation log of the plant's cell (with the
generic LFP model a 30-point error on the plateau lies inside the model's own OCV uncertainty: no
estimator can see it until a knee or full).
"""
from array import array
from pathlib import Path

import numpy as np
import pytest

from hil.scenarios import get
from pwfw.soc import Estimator, load_model

MODELS = Path(__file__).resolve().parents[2] / "firmware/pwfw/models"
DT_MS = 1000


@pytest.fixture(scope="module")
def fitted_lfp():
    from packwatch.fit import SAMPLE_LOG, fit_model
    return fit_model(str(SAMPLE_LOG), "lfp")


def run(scenario, hours, start_pm=None, seed=2, model=None):
    sc = get(scenario)
    plant = sc.make_plant(seed)
    chem = sc.chemistry
    n = len(plant.cells_mv10)
    model = model or str(MODELS / (chem + ".json"))
    est = Estimator(load_model(model), n, int(plant.capacity_ah * 1000))
    cells = array("h", [0] * n)
    relay = True
    err, sig = [], []
    for k in range(int(hours * 3600000 // DT_MS)):
        if k == 0 and start_pm is not None:
            est.set_soc(max(0, min(1000, int(round(plant.pack_soc * 1000)) + start_pm)))  # sigma 3 %
        plant.step(DT_MS, relay)
        for c, v in enumerate(plant.cells_mv10):
            cells[c] = int(v) // 10
        relay = min(cells) > 2600 and max(cells) < (3650 if chem == "lfp" else 4200)  # protections' cut
        est.update(DT_MS, int(plant.i_ma), cells, int(plant.temps_dc[0]))
        err.append(est.soc_pm / 1000 - plant.pack_soc)
        sig.append(est.sigma_pm / 1000)
    return np.array(err), np.array(sig)


@pytest.mark.parametrize("scenario,hours,start,fitted", [
    ("demo", 3.0, None, False), ("day", 24.0, None, False), ("nmc_day", 24.0, None, False),
    ("nmc_day", 24.0, +300, False), ("nmc_day", 24.0, -300, False),
    ("demo", 3.0, None, True), ("day", 24.0, -300, True),
    # known gap (issue 15): 30 points off on the plateau under a steady 0.35 C load, the voltage-domain
    # test (only at <= C/5) sees no inconsistency for the first hour (inside 3 sigma 66-83 % of the time)
    pytest.param("demo", 3.0, +300, True, marks=pytest.mark.xfail(strict=True, reason="issue 15: not met yet")),
    pytest.param("demo", 3.0, -300, True, marks=pytest.mark.xfail(strict=True, reason="issue 15: not met yet")),
])
def test_error_inside_3_sigma_against_the_plant(scenario, hours, start, fitted, request):
    err, sig = run(scenario, hours, start, model=request.getfixturevalue("fitted_lfp") if fitted else None)
    inside = float(np.mean(np.abs(err) <= 3 * sig))
    worst = int(np.argmax(np.abs(err) - 3 * sig))
    assert inside >= 0.95, "inside 3 sigma %.0f %% of the time; worst at %.1f h: error %.1f %%, sigma %.1f %%" % (
        100 * inside, worst * DT_MS / 3.6e6, 100 * err[worst], 100 * sig[worst])


def test_first_boot_with_the_generic_model_says_it_is_uncertain():
    # the first sample: a generic model is not the user's cell; on the LFP plateau a voltage is worth
    # little, so the first-boot sigma must cover the truth (plant at 50 %) instead of claiming a few %
    err, sig = run("demo", 0.01)
    assert abs(err[0]) <= 3 * sig[0]
