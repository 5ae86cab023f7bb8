"""Self-check of the SoC accuracy benchmark's plumbing (bench/soc/accuracy.py) without PyBaMM:
profiles, the pack-SoC truth definition, sensors, metrics and the three estimator runners on a short
ECM-simulated pack. It needs the bench extra (filterpy for the peer UKF), so it lives beside the
benchmark and `make bench` / `make bench-soc` run it first, not `make test`."""
import json
from pathlib import Path

import numpy as np
import pytest

from bench.soc import accuracy as A
from bench.soc import profiles
from hil.ecm import Ecm

ROOT = Path(__file__).resolve().parents[2]


def test_pack_soc_is_the_estimator_definition():
    from array import array

    from pwfw.soc import Estimator
    cells = np.array([[0.20, 0.30, 0.25], [0.0, 0.5, 0.4], [1.0, 0.9, 0.95]])
    got = A.pack_soc(cells)
    assert got == pytest.approx([0.2 / 0.9, 0.0, 0.9 / 0.9])
    # the firmware reports the same thing from its cell SoCs
    est = Estimator(str(ROOT / "firmware/pwfw/models/nmc.json"), 3, 5000)
    est.set_soc(500)
    for k, d in enumerate((-50000, 50000, 0)):
        est._cell_d_ppm[k] = d
    est.update(0, 0, array("h", [3700] * 3), None)
    c = np.array(est.cell_soc_pm, float)[None, :] / 1000
    assert abs(A.pack_soc(c)[0] * 1000 - est.soc_pm) <= 1


@pytest.mark.parametrize("chem", ["lfp", "nmc"])
def test_profiles_are_sane(chem):
    for name in profiles.SCENARIOS:
        segs, soc0 = profiles.scenario(name, chem, A.SEED)
        assert 0.3 <= soc0 <= 0.7  # ±30 % wrong starts stay inside 0…100 %
        for kind, val in segs:
            if kind == "dc":
                assert np.all(np.isfinite(val)) and np.max(np.abs(val)) <= 3.5
        if name in ("inverter", "solar_day", "shallow"):
            soc = soc0 + np.cumsum(segs[0][1]) * profiles.DT / 3600
            assert 0.05 < soc.min() and soc.max() < 0.9, name
            if name == "shallow":
                assert 0.35 < soc.min() and soc.max() < 0.7


def test_metrics():
    t = np.arange(0, 7200, 2.0)
    truth = np.full(len(t), 0.5)
    est = truth + 0.3 * np.exp(-t / 600)
    m = A.metrics(t, est, truth, np.full(len(t), 0.01))
    assert m["conv_s"] == pytest.approx(600 * np.log(10), abs=4)
    assert m["max30"] == pytest.approx(0.3 * np.exp(-3), rel=0.01)
    assert 0.5 < m["cover"] < 1
    assert A.metrics(t, truth + 0.05, truth, None)["conv_s"] == float("inf")


def test_runners_on_an_ecm_pack():
    model = json.loads((ROOT / "firmware/pwfw/models/nmc.json").read_text())
    t = np.arange(0, 1200, profiles.DT)
    i = np.where((t // 120) % 2 == 0, -1.0, 0.3) * model["capacity_ah"]
    v = np.column_stack([Ecm(model, cap_ah=model["capacity_ah"] * (1 + 0.01 * k)).run(t, i, 0.6)[0]
                         for k in range(2)])
    im, vm = A.sensors("nmc", "inverter", t, i, v)
    assert abs(np.mean(im - i) - A.I_OFF_C * A.CNOM["nmc"]) < 0.02
    s, sig, cells = A.run_pwfw(model, t, im, vm, 0.6)
    assert cells.shape == (len(t), 2) and np.all(sig > 0)
    cc, _ = A.run_cc(model, t, im, 0.6)
    uk, usig = A.run_ukf(model, t, im, vm, 0.45)
    truth = 0.6 + np.cumsum(i * profiles.DT) / (model["capacity_ah"] * 3600)
    assert abs(cc[-1] - truth[-1]) < 0.02
    assert abs(s[-1] - truth[-1]) < 0.05
    assert abs(uk[-1] - truth[-1]) < 0.1 and np.all(usig > 0)  # recovering from a 15 % wrong start
