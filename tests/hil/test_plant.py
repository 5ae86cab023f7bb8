"""The pack plant, its profiles and scenarios (CPython, numpy)."""
import json
import math

import numpy as np
import pytest

from hil import profiles as P
from hil.plant import DATA, Plant, TracePlant, write_trace
from hil.scenarios import PLANT_EVENTS, SCENARIOS, Scenario, get


def run(plant, seconds, dt_ms=1000, relay=True):
    for _ in range(int(seconds * 1000 // dt_ms)):
        plant.step(dt_ms, relay)


def table(chem):
    return json.loads((DATA / ("ocv_%s.json" % chem)).read_text())


def test_charge_conservation_per_cell():
    pl = Plant("lfp", seed=3, profile=P.Mix(P.Constant(30.0, 0, 300), P.Constant(-45.0, 300, 600)), soc0=0.5)
    soc0 = pl.soc.copy()
    run(pl, 600, dt_ms=100)
    ah = (30.0 * 300 - 45.0 * 300) / 3600.0
    expect = soc0 + ah / pl.cap_ah - pl.self_dis * 600
    assert np.allclose(pl.soc, expect, rtol=0, atol=1e-9)
    assert len(set(np.round(pl.soc - soc0, 9))) > 1  # per-cell capacities differ


@pytest.mark.parametrize("amps,branch", [(20.0, "ocv_chg"), (-20.0, "ocv_dis")])
def test_rest_voltage_is_the_table_branch(amps, branch):
    start = 0.15 if amps > 0 else 0.85
    pl = Plant("lfp", seed=0, spread=False, soc0=start, h0=-math.copysign(1, amps),
               profile=P.Mix(P.Constant(amps, 0, 2 * 3600)))
    run(pl, 2 * 3600 + 3 * 3600, dt_ms=5000)  # 40 % SoC: h switches fully; then 3 h rest
    t = table("lfp")
    soc = pl.soc
    want = np.interp(soc, t["soc"], t[branch])
    other = np.interp(soc, t["soc"], t["ocv_dis" if branch == "ocv_chg" else "ocv_chg"])
    assert np.all(np.abs(pl.cells_v - want) < 0.001)
    assert np.all(np.abs(pl.cells_v - other) > 0.005)  # the branches are apart at mid SoC


def test_hysteresis_follows_current_direction():
    pl = Plant("lfp", seed=0, spread=False, soc0=0.5, h0=-1.0,
               profile=P.Mix(P.Constant(50.0, 0, 1800), P.Constant(-50.0, 3600, 5400)))
    run(pl, 1800)
    assert pl.h.min() > 0.5
    run(pl, 1800)  # rest: the state stays
    assert pl.h.min() > 0.5
    run(pl, 1800)
    assert pl.h.max() < -0.5
    nmc = Plant("nmc", seed=0, profile=P.Mix(P.Constant(50.0)))
    run(nmc, 600)
    assert np.all(nmc.h == 0)  # no hysteresis in the NMC table


def test_cccv_charger_tapers_and_stops_at_tail():
    v_cv = P.cell_cv("lfp", 16)
    ch = P.mains(50.0, v_cv, 3.0)
    pl = Plant("lfp", seed=2, soc0=0.8, h0=1.0, profile=P.Mix(ch))
    currents, stack = [], []
    for _ in range(4 * 3600):
        pl.step(1000, True)
        currents.append(pl.i_a)
        stack.append(pl.stack_v)
        if ch.done:
            break
    assert ch.done
    i = np.array(currents)
    assert i[0] == pytest.approx(50.0)
    cv = np.argmax(i < 49.0)
    assert cv > 0 and np.all(np.diff(i[cv:-1]) <= 1e-6)  # tapers monotonically in CV
    assert 0 < i[-2] and i[-2] < 3.5 and i[-1] == 0.0    # stopped just below the tail
    assert max(stack) < v_cv + 0.05
    run(pl, 60)
    assert pl.i_ma == 0


def test_relay_open_gives_zero_current_and_stops_the_charger():
    ch = P.mains(40.0, 56.0, 2.0)
    pl = Plant("lfp", seed=1, profile=P.Mix(P.InverterLoad(500.0), ch))
    pl.step(100, True)
    assert pl.i_ma != 0
    pl.step(100, False)
    assert pl.i_ma == 0 and ch.done
    pl.step(100, True)
    assert pl.i_ma < 0  # the load is back, the charger stays off


def test_thermal_rises_under_load_and_relaxes():
    pl = Plant("lfp", seed=1, soc0=0.95, spread=False, profile=P.Mix(P.Constant(-150.0, 0, 1800)))
    t0 = pl.temps_dc.copy()
    run(pl, 1800)
    hot = pl.temp_c.copy()
    assert np.all(hot > 25.0 + 2.0)
    assert np.all(pl.temps_dc[:5] > t0[:5] + 20)  # cell sensors see it; the die/ts3 see the ambient
    assert hot[len(hot) // 2] > hot[0]            # end cells cool better
    run(pl, 3 * 3600)
    assert np.all(pl.temp_c < hot - 2.0)
    assert np.all(pl.temp_c > 25.0)


def test_spread_makes_cells_differ_and_no_spread_does_not():
    a = Plant("lfp", seed=5, soc0=0.3, profile=P.Mix(P.Constant(-80.0)))
    b = Plant("lfp", seed=5, soc0=0.3, spread=False, profile=P.Mix(P.Constant(-80.0)))
    run(a, 900)
    run(b, 900)
    assert np.ptp(a.cells_mv10) > 20 and np.ptp(a.soc) > 0.005
    assert np.ptp(b.soc) == 0
    assert np.ptp(b.cells_mv10) <= 2  # only the cooler end cells (R rises as they cool)
    assert a.pack_soc < a.soc.mean()  # min-limited


def test_deterministic_from_seed():
    def trace(seed):
        pl = get("demo").make_plant(seed)
        out = []
        for _ in range(600):
            pl.step(100, True)
            out.append(pl.cells_mv10.copy())
        return np.array(out)
    assert np.array_equal(trace(7), trace(7))
    assert not np.array_equal(trace(7), trace(8))


def test_outputs_types_and_shapes():
    for chem, n in (("lfp", 16), ("nmc", 14)):
        pl = Plant(chem, seed=0, profile=P.Mix(P.Constant(-10.0)))
        pl.step(100, True)
        assert pl.cells_mv10.dtype == np.int32 and pl.cells_mv10.shape == (n,)
        assert pl.temps_dc.dtype == np.int16 and pl.temps_dc.shape == (7,)
        assert pl.stack_mv10 == int(pl.cells_mv10.sum())
        assert pl.i_ma == -10000 and pl.t_ms == 100
        row = pl.truth_row()
        assert row["cell%02d_v" % n] == pytest.approx(pl.cells_v[-1]) and "temp_c" in row


def test_degrade_and_ambient():
    pl = Plant("lfp", seed=0, spread=False, soc0=0.5, profile=P.Mix(P.Constant(-50.0)))
    pl.degrade_cell(3, 0.5, 3.0)
    pl.set_ambient(40.0)
    run(pl, 600)
    v = pl.cells_v
    assert v[3] < np.delete(v, 3).min() - 0.01
    assert pl.temps_dc[5] == 400


def test_trace_replay_reproduces_the_trace(tmp_path):
    pl = get("demo").make_plant(1)
    rows = [pl.truth_row()]
    for _ in range(120):
        pl.step(1000, True)
        rows.append(pl.truth_row())
    path = tmp_path / "truth.csv"
    write_trace(path, rows)
    tr = TracePlant(path)
    assert tr.n_cells == 16
    for k in range(1, 121):
        tr.step(500, True)
        a, b = rows[k - 1], rows[k]
        mid = np.array([(a["cell%02d_v" % c] + b["cell%02d_v" % c]) / 2 for c in range(1, 17)])
        assert np.allclose(tr.cells_v, mid, atol=1e-9)
        tr.step(500, True)
        assert np.array_equal(tr.cells_mv10, np.rint(np.array([b["cell%02d_v" % c] for c in range(1, 17)]) * 1e4))
        assert tr.i_a == pytest.approx(b["current_a"])
    tr.step(100, False)
    assert tr.i_ma == 0


def test_scenario_events_are_sorted_and_windowed():
    for sc in SCENARIOS.values():
        times = [e[0] for e in sc.events]
        assert times == sorted(times)
        assert sc.events_between(0, sc.duration_ms + 1) == sc.events
    ow = get("open_wire")
    assert ow.events_between(20 * 60000, 20 * 60000 + 100) == [(20 * 60000, "open_wire", (7, 1))]
    assert ow.events_between(0, 20 * 60000) == []
    with pytest.raises(ValueError):
        Scenario("bad", 10, lambda s: [], events=[(0, "explode", ())])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_runs_ten_minutes(name):
    sc = get(name)
    pl = sc.make_plant(0)
    assert pl.n_cells == (14 if sc.chemistry == "nmc" else 16)
    handled = 0
    while pl.t_ms < 10 * 60000:
        for _, kind, args in sc.events_between(pl.t_ms, pl.t_ms + 100):
            handled += Scenario.apply_plant_event(pl, kind, args)
        pl.step(100, True)
        assert np.all(np.isfinite(pl.cells_v)) and math.isfinite(pl.i_a)
    assert np.all(np.isfinite(pl.temp_c)) and 0 <= pl.pack_soc <= 1
    assert handled == sum(1 for t, k, _ in sc.events if t < 10 * 60000 and k in PLANT_EVENTS)
