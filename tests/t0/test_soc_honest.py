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
    # 30 points off under a steady 0.35 C load: no window convicts the told state (the load's IR and
    # diffusion errors), but one that the voltage puts 2 sigma away is no longer claimed to 3 %
    ("demo", 3.0, +300, True), ("demo", 3.0, -300, True),
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


@pytest.mark.parametrize("cut_mv", [3450, 3500])
def test_a_charge_cut_at_the_top_places_the_pack_by_its_highest_cell(cut_mv):
    # issue 15: a charge cut at the highest cell (the end-of-charge CHG-off at cell_ov_mv - chg_stop_dmv,
    # or a cell_ov trip) leaves no CV tail to sync on. charge_ov's plant: one cell well ahead, cut at
    # 98.9-99.3 % while the others are at 89 %; the estimator boots mid-charge (generic model, no state).
    # From 5 min after the cut (the drift at 0.2 %/s) it must be within 3 points of the plant's pack SoC,
    # and inside 3 sigma all along after the cut
    sc = get("charge_ov")
    plant = sc.make_plant(1)
    n = len(plant.cells_mv10)
    est = Estimator(load_model(str(MODELS / "lfp.json")), n, int(plant.capacity_ah * 1000))
    cells = array("h", [0] * n)
    chg = True
    cut = None
    err, sig = [], []
    for k in range(30 * 60):
        plant.step(DT_MS, True, chg, True)
        for c, v in enumerate(plant.cells_mv10):
            cells[c] = int(v) // 10
        if chg and max(cells) >= cut_mv:
            chg = False  # the CHG FET off: the current drops to 0 at once
            cut = k
            assert max(plant.soc) >= 0.97  # the plant: its highest cell is at the top of charge
        est.update(DT_MS, int(plant.i_ma), cells, int(plant.temps_dc[0]))
        err.append(est.soc_pm / 1000 - plant.pack_soc)
        sig.append(est.sigma_pm / 1000)
    assert cut is not None and cut < 15 * 60
    err, sig = np.array(err[cut:]), np.array(sig[cut:])
    assert np.all(np.abs(err) <= 3 * sig), (np.abs(err) - 3 * sig).max()
    late = np.abs(err[5 * 60:])
    assert late.max() <= 0.03, late.max()
