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


# ---- generated scenarios: the tuning set and the locked test set (issue 15) --------------------------
def _sets():
    from bench.soc import generator as G
    return G, G.load_sets()


def test_test_set_never_overlaps_the_tuning_set():
    G, sets = _sets()
    tune, test = sets["tuning"], sets["test"]
    assert len(tune) + len(test) >= 30                               # issue 15: >= 30 per chemistry
    assert not {r["id"] for r in tune} & {r["id"] for r in test}
    assert not {r["seed"] for r in tune} & {r["seed"] for r in test}  # other seeds ...
    assert not set(sets["tuning_families"]) & set(sets["test_families"])  # ... and other families
    assert {r["family"] for r in tune} == set(sets["tuning_families"])
    assert {r["family"] for r in test} == set(sets["test_families"])
    # the issue-4 benchmark (the scenarios the estimator was tuned on) is of the tuning families only
    assert set(sets["test_families"]).isdisjoint({"inverter", "solar", "cccv", "shallow"})
    assert {"SPMe", "DFN"} <= set(sets["truth_models"]["test"])
    drawn = {G.digest(G.draw(r["family"], r["seed"])) for r in tune}
    assert not drawn & {G.digest(G.draw(r["family"], r["seed"])) for r in test}


def test_locked_test_set_is_what_sets_json_locked():
    """A changed generator changes the test scenarios: the lock (digest per scenario) must then be
    rewritten deliberately (python -m bench.soc.generator --write), it cannot drift."""
    G, sets = _sets()
    for r in sets["test"]:
        assert G.digest(G.draw(r["family"], r["seed"])) == r["digest"], r["id"]


def test_generated_scenarios_are_sane():
    from bench.soc import generator as G
    from bench.soc.profiles import DT
    _, sets = _sets()
    for r in sets["tuning"] + sets["test"]:
        sc = G.draw(r["family"], r["seed"])
        c = sc["cond"]
        # the ranges: 5-40 C ambient, capacity 0..-10 %, resistance 0..+40 %
        assert 5 <= c["temp_c"] <= 40 and 0.9 <= c["age_cap"] <= 1.0 and 1.0 <= c["age_r"] <= 1.4
        assert c["i_noise"] > 0 and c["period_s"] in (2.0, 5.0, 10.0)
        dc = [v for k, v in sc["segs"] if k == "dc"]
        assert all(np.all(np.isfinite(v)) and np.max(np.abs(v)) <= 2.5 for v in dc)
        if all(k == "dc" for k, _ in sc["segs"]):   # no voltage control: must stay inside the window
            soc = sc["soc0"] + np.cumsum(np.concatenate(dc)) * DT / 3600
            assert G.LO - 1e-9 <= soc.min() and soc.max() <= G.HI + 1e-9, r["id"]
        hours = sum(len(v) for v in dc) * DT / 3600
        assert 1.5 <= hours <= 6.5, r["id"]


def test_only_the_report_reads_the_test_set():
    """Tuned constants never come from the test set: the fit sees only the characterisation run, the
    firmware and host never read bench/ (layer contract), and in bench/soc only the generator, the
    report (locked.py) and quick.py (to refuse) touch the split; quick refuses test scenarios."""
    import subprocess
    import sys
    readers = {p.name for p in (ROOT / "bench/soc").glob("*.py")
               if p.name != "test_plumbing.py" and ("load_sets" in p.read_text() or "sets.json" in p.read_text())}
    assert readers == {"generator.py", "locked.py", "quick.py"}
    for d in ("firmware", "host", "hil"):
        for p in (ROOT / d).rglob("*.py"):
            assert "sets.json" not in p.read_text(errors="replace") and "bench.soc" not in p.read_text(
                errors="replace"), p
    import inspect

    from bench.soc import locked
    assert list(inspect.signature(locked.characterise).parameters) == ["cellset"]
    _, sets = _sets()
    r = subprocess.run([sys.executable, "-m", "bench.soc.quick", "lfp-prada2013", sets["test"][0]["id"]],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "locked test set" in r.stderr and "Traceback" not in r.stderr


def test_locked_pipeline_smoke():
    """One test scenario, 36 minutes, one cell, SPMe: PyBaMM truth that follows its current (checked
    inside), the log's sensor errors, all three estimators and every start scored."""
    pytest.importorskip("pybamm")
    from bench.soc import generator as G
    from bench.soc import locked
    import pybamm

    from bench.soc import truth
    # the shipped generic model and PyBaMM's own 0/100 % window: no characterisation run needed
    model = json.loads((ROOT / "firmware/pwfw/models/nmc.json").read_text())
    xe, xf, _, _ = pybamm.lithium_ion.get_min_max_stoichiometries(truth._ref_window("nmc-chen2020"))
    r = locked.score("nmc-chen2020", "SPMe", G.draw("partial", 1001), model, float(xf), float(xe),
                     n_cells=1, hours=0.6)
    assert set(r["rows"]) >= {"%s|true" % e for e in locked.ESTIMATORS}
    assert 0.55 < r["hours"] < 0.61
    m = r["rows"]["coulomb|true"]
    assert m["rmse"] < 0.02        # 36 min of coulomb counting from the true start: the truth is sane
