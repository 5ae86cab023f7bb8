"""T2: cell balancing through the virtual board (issue 14), as a pack builder meets it. The firmware's
policy (pwfw.balance, docs/configuration.md "Balancing") drives the simulated BQ76952's CB_ACTIVE_CELLS;
the plant bleeds the cells the part balances through the board's resistor (hil/plant.py). Expected
values come from the plant's truth (its cell voltages, its SoC, the mask it bled) and Ohm's law, never
from the firmware's own arithmetic: balancing starts on a pack with one cell high at top of charge
(the plant's truth shows that cell losing V/R x t, the firmware's `bal` is what the part balances and
its `cell` bal_mah what the plant lost), stops at the stop delta, and refuses as configured (too hot,
too low, discharging)."""
import json

import numpy as np
import pytest

from hil import profiles as P
from hil.scenarios import Scenario
from tests.support import ROOT

SIM = json.loads((ROOT / "boards" / "sim.json").read_text())
HIGH = 5  # the high cell (0-based, as the plant's arrays; `bal` bit 5 = cell 6)
N = 16


def _board(tmp_path, cap_mah=100000, **limits):
    b = json.loads(json.dumps(SIM))
    b["capacity_mah"] = cap_mah
    b["limits"] = dict({"bal_s": 5}, **limits)  # a decision every 5 s of virtual time (the key's minimum)
    p = tmp_path / "board.json"
    p.write_text(json.dumps(b))
    return p, b["limits"]


def _scenario(name, soc_hi, soc_rest, parts=(), cap_ah=100.0, ambient_c=25.0, minutes=60):
    soc0 = [soc_rest] * N
    soc0[HIGH] = soc_hi
    # identical cells (spread=False): only the one high cell stands out; charge branch (h0=1)
    kw = {"soc0": soc0, "spread": False, "h0": 1.0, "capacity_ah": cap_ah, "ambient_c": ambient_c}
    return Scenario(name, minutes * 60, lambda seed: list(parts), plant_kw=kw)


def _start(board, tmp_path, sc, cap_mah=100000, **limits):
    path, lim = _board(tmp_path, cap_mah, **limits)
    c = board(sc, board_file=path, truth_every_ms=100)
    c.until(lambda t, f: t == "rep" and "bal" in f, what="a rep with bal")
    return c, lim


def _truth(c):
    with c.vb._lock:
        return list(c.vb.truth)


def _ohm_bled_as(rows, k, r_ohm):
    """Charge cell k lost through its resistor by Ohm's law over the truth rows: V / R for every step
    whose mask (row[12]) had the cell, V the plant's cell voltage, dt the time to the next row."""
    q = 0.0
    for a, b in zip(rows, rows[1:]):
        if b[12] >> k & 1:  # the step ending at row b bled cell k
            q += a[3][k] / 1e4 / r_ohm * (b[0] - a[0]) / 1000.0
    return q


def test_balancing_starts_on_a_high_cell_and_the_plant_loses_v_over_r(board, tmp_path):
    sc = _scenario("bal_top", 0.995, 0.985)
    c, lim = _start(board, tmp_path, sc)
    r_ohm = 55  # the firmware's default (docs/configuration.md): the board file sets none
    soc0 = np.array(_truth(c)[0][5])
    c.wait_t(c.vb.t_ms + 20 * 60 * 1000, timeout=300)
    rows = _truth(c)
    reps = c.reports()
    on = [f for f in reps if f["bal"]]
    assert on, "no report with a balancing cell: %r" % [f.get("bal") for f in reps[-5:]]
    assert all(f["bal"] >> HIGH & 1 for f in on)  # the high cell in every mask
    # the others sit at the lowest cell: one may pass lowest + stop delta on a noisy reading (the AFE's
    # 1 mV per cell) for one decision, never for long
    assert sum(1 for f in on if f["bal"] != 1 << HIGH) <= len(on) // 10
    # what the firmware says it balances is what the part balances: each report's bal against the plant's
    # mask one step later (the decision written after the sample is on from the next step)
    by_ms = {row[7]: row for row in rows}
    pairs = [(f["bal"], by_ms[f["ms"] + 100][12]) for f in reps if f["ms"] + 100 in by_ms]
    assert len(pairs) > 500
    agree = sum(1 for a, b in pairs if a == b)
    assert agree >= len(pairs) - 2 * len(pairs) // (5 * 10)  # all but the one paused sample per decision
    # the plant: each cell lost what Ohm's law says over the steps it bled, on top of the self-discharge
    # every cell has here (identical cells)
    q_ohm = np.array([_ohm_bled_as(rows, k, r_ohm) for k in range(N)])
    soc = np.array(rows[-1][5])
    cap_as = 100.0 * 3600.0
    drop = (soc0 - soc) * cap_as  # A.s per cell, bleed + self-discharge
    never = q_ohm == 0
    assert never.sum() >= N - 3
    base = drop[never]
    assert np.ptp(base) < 1e-3  # A.s: the cells that never bled lost the same
    np.testing.assert_allclose(drop - base.mean(), q_ohm, rtol=0.01, atol=0.05)
    assert q_ohm[HIGH] / 3.6 > 15  # mAh: about 20 min of 3.5 V / 55 ohm = 64 mA
    # the firmware's own count of the bled charge (`cell` bal_mah, from its readings and V/R)
    cells = [f for t, f in c.frames if t == "cell" and "bal_mah" in f]
    assert cells, "no cell frame with bal_mah"
    got = np.array(cells[-1]["bal_mah"])
    np.testing.assert_allclose(got, q_ohm / 3.6, atol=2)


def test_balancing_stops_at_the_stop_delta(board, tmp_path):
    # a small pack (5 Ah) so bleeding 0.4 % of it takes minutes: 20 mAh at ~60 mA; every cell above
    # bal_start_mv (3.42 V at 99.1 %), so only the delta can stop it
    sc = _scenario("bal_stop", 0.995, 0.991, cap_ah=5.0, minutes=120)
    c, lim = _start(board, tmp_path, sc, cap_mah=5000)
    stop = 5  # bal_stop_dmv's default (docs/configuration.md)

    seen = {}

    def stopped(t, f):  # a rep after balancing ran, with nothing on for two decision periods
        if t != "rep":
            return False
        if f["bal"]:
            seen["on"] = f["ms"]
            return False
        return "on" in seen and f["ms"] - seen["on"] > 2 * lim["bal_s"] * 1000

    c.until(stopped, timeout=300, what="balancing to start and stop")
    t_stop = c.vb.t_ms
    rows = _truth(c)
    last = [row for row in rows if row[12]][-1]  # the last step the plant bled
    v = np.array(last[3]) / 10.0  # mV
    assert v.max() - v.min() <= stop + 3  # the AFE reads 1 mV noise per cell
    first = [row for row in rows if row[12]][0]
    v0 = np.array(first[3]) / 10.0
    assert v0.max() - v0.min() >= 20  # it had started above the start delta
    t, f = c.cmd("balance")
    assert t == "ok" and f["why"] == "balanced" and f["bal"] == 0
    # the hysteresis: nothing restarts below the start delta
    c.wait_t(t_stop + 60 * 1000)
    assert all(row[12] == 0 for row in _truth(c) if row[0] > t_stop + 6000)


@pytest.mark.parametrize("case,why,limits,parts,soc,ambient", [
    ("hot", "hot", {}, (), (0.995, 0.985), 55.0),  # thermistors at 55 C > bal_tmax_dc 50 C
    ("hot_allowed", None, {"bal_tmax_dc": 600}, (), (0.995, 0.985), 55.0),  # configured to 60 C: it balances
    ("low", "low", {}, (), (0.97, 0.5), 25.0),  # 40 mV apart but the highest below bal_start_mv
    ("discharging", "discharging", {}, (P.Constant(-5.0),), (0.997, 0.99), 25.0),
    ("discharging_allowed", None, {"bal_dsg": 1}, (P.Constant(-5.0),), (0.997, 0.99), 25.0),
])
def test_balancing_refuses_as_configured(board, tmp_path, case, why, limits, parts, soc, ambient):
    sc = _scenario("bal_" + case, soc[0], soc[1], parts=parts, ambient_c=ambient, minutes=30)
    c, _ = _start(board, tmp_path, sc, **limits)
    c.wait_t(c.vb.t_ms + 60 * 1000)  # 12 decisions
    t, f = c.cmd("balance")
    rows = _truth(c)
    v = np.array(rows[-1][3]) / 10.0
    assert v.max() - v.min() >= 20  # there is something to balance
    bled = any(row[12] for row in rows)
    if why is None:
        assert bled and t == "ok" and f["why"] == "auto", f
    else:
        assert not bled and not any(r["bal"] for r in c.reports())
        assert t == "ok" and f["why"] == why and f["bal"] == 0, f


def _fw_events(c, name):
    return [f for t, f in c.frames if t == "evt" and f.get("name") == name and f.get("on") == 1]


def test_charge_found_at_the_top_is_bled_in_the_rest_below_the_start_voltage(board, tmp_path):
    # The top of charge shows cell HIGH 1.5 % above the others (plant: 0.995 against 0.98, identical
    # cells of 1 Ah). A discharge then takes every cell onto the plateau, below bal_start_mv, and the
    # pack rests there. Charge-based balancing keeps bleeding HIGH in that rest (a voltage-only policy
    # stops as soon as the highest cell is below bal_start_mv), waits while the pack discharges, and
    # stops by itself without taking HIGH below the lowest cell (the plant's SoC).
    start_mv = 3450
    parts = (P.Constant(-1.0, 60.0, 180.0),)  # 1 C for 2 min: 3.3 % off every cell
    sc = _scenario("bal_rest", 0.995, 0.98, parts=parts, cap_ah=1.0, minutes=24)
    c, lim = _start(board, tmp_path, sc, cap_mah=1000, bal_start_mv=start_mv)
    c.wait_t(24 * 60 * 1000, timeout=600)
    rows = _truth(c)
    soc0 = np.array(rows[0][5])
    assert soc0[HIGH] - np.delete(soc0, HIGH).max() > 0.01
    v_max = np.array([max(r[3]) for r in rows]) / 10.0  # mV, the plant's highest cell
    t = np.array([r[0] for r in rows])
    bled = np.array([r[12] >> HIGH & 1 for r in rows])
    other = np.array([r[12] & ~(1 << HIGH) for r in rows])
    assert not other.any()  # only the high cell was ever bled
    assert bled[(t < 60000) & (v_max >= start_mv)].any()  # it started at the top
    # discharging (from one decision after the load starts): nothing bleeds
    dsg = (t > 60000 + 2 * lim["bal_s"] * 1000) & (t <= 180000)
    assert dsg.sum() > 100 and not bled[dsg].any()
    # the rest after it, every cell below bal_start_mv: HIGH bleeds there for minutes
    rest = (t > 180000) & (v_max < start_mv)
    assert rest.sum() > 600
    on_s = bled[rest].sum() * (t[1] - t[0]) / 1000.0
    assert on_s > 180, "bled %.0f s in the rest below bal_start_mv" % on_s
    # ... and stopped by itself there: nothing in the last 3 minutes, HIGH still not below the lowest
    assert not bled[t > t[-1] - 180000].any()
    soc = np.array(rows[-1][5])
    assert soc[HIGH] >= np.delete(soc, HIGH).max()
    assert c.vb.plant.bled_as[HIGH] <= (soc0[HIGH] - np.delete(soc0, HIGH).max()) * 3600.0


def test_charge_stops_before_cell_ov_and_the_charger_goes_on(board, tmp_path):
    # One cell 2.6 % above the rest near the end of a 0.2 C CC-CV charge from a mains charger (which stops
    # for good if the BMS opens the relay); a 1 Ah pack, so the cell's 64 mA bleed moves it in minutes.
    # The firmware turns only the AFE's CHG FET off when that cell reaches cell_ov_mv - chg_stop_dmv
    # (3600 mV): no cell_ov trip (a voltage-only policy lets it climb to 3650, the relay opens and the
    # charger is gone), the relay stays closed, and the charge goes on once the bled cell has fallen
    # cell_ov_hyst_mv further: the pack tops up in pulses.
    ov, stop = 3650, 50  # the LFP defaults (docs/configuration.md)
    parts = (P.mains(0.2, 16 * 3.5, 0.02, 5.0),)
    sc = _scenario("bal_chg_stop", 0.996, 0.97, parts=parts, cap_ah=1.0, minutes=20)
    c, _ = _start(board, tmp_path, sc, cap_mah=1000)
    c.wait_t(20 * 60 * 1000, timeout=600)
    rows = _truth(c)
    v_max = np.array([max(r[3]) for r in rows]) / 10.0
    i = np.array([r[1] for r in rows]) / 1000.0
    assert v_max.max() < ov  # never at cell_ov in the plant
    assert not _fw_events(c, "cell_ov") and not _fw_events(c, "cov")
    k = int(np.argmax(v_max >= ov - stop - 5))  # the high cell at the charge stop (1 mV AFE noise)
    assert v_max[k] >= ov - stop - 5, "the charge never reached the stop: %.0f mV" % v_max.max()
    after = rows[k:]
    assert all(r[6] for r in after)  # the relay stayed closed
    assert any((r[10] & 2) == 0 for r in after)  # the CHG FET off (plant path bit 1)
    stopped = np.flatnonzero(i[k:] < 0.01)
    assert len(stopped), "the charge current never stopped"
    assert (i[k + stopped[0]:] > 0.1).any(), "the charger did not go on after the stop"
    assert any(r[12] >> HIGH & 1 for r in after)  # the high cell bled meanwhile


def _loop_bled_as(rows, k, rin, rsw):
    """Charge cell k lost by TI's loop current (E2E 1505209) over the truth rows: alone V / (Rin + Rsw +
    Rin); with a bled neighbour the pair's (V1 + V2) / (Rin + Rsw + Rsw + Rin) (never three in a row)."""
    q = 0.0
    for a, b in zip(rows, rows[1:]):
        m = b[12]
        if not m >> k & 1:
            continue
        j = k - 1 if k and m >> (k - 1) & 1 else k + 1 if m >> (k + 1) & 1 else None
        v = a[3][k] / 1e4
        i = v / (rin + rsw + rin) if j is None else (v + a[3][j] / 1e4) / (rin + rsw + rsw + rin)
        q += i * (b[0] - a[0]) / 1000.0
    return q


@pytest.mark.parametrize("adjacent", [1, 0])
def test_adjacent_high_cells_bleed_as_a_pair_only_with_bal_adjacent(board, tmp_path, adjacent):
    soc0 = [0.985] * N
    soc0[HIGH] = soc0[HIGH + 1] = 0.995  # two neighbours high
    kw = {"soc0": soc0, "spread": False, "h0": 1.0, "capacity_ah": 100.0}
    sc = Scenario("bal_pair", 3600, lambda seed: [], plant_kw=kw)
    r_ohm, rsw = 55, 28  # the board's path of one cell and the AFE switch's part of it (R(CB) typ)
    c, lim = _start(board, tmp_path, sc, bal_adjacent=adjacent, bal_r_ohm=r_ohm, bal_rsw_ohm=rsw)
    soc_start = np.array(_truth(c)[0][5])
    c.wait_t(c.vb.t_ms + 20 * 60 * 1000, timeout=300)
    rows = _truth(c)
    pair = (1 << HIGH) | (1 << (HIGH + 1))
    masks = [row[12] for row in rows if row[12]]
    assert masks
    if not adjacent:
        assert all(m & pair != pair for m in masks)  # never both at once
        return
    assert sum(1 for m in masks if m & pair == pair) > 0.9 * len(masks)
    rin = (r_ohm - rsw) / 2
    drop = (soc_start - np.array(rows[-1][5])) * 100.0 * 3600.0  # A.s: bleed + self-discharge
    base = np.mean([drop[k] for k in range(N) if all(not m >> k & 1 for m in masks)])
    for k in (HIGH, HIGH + 1):
        q = _loop_bled_as(rows, k, rin, rsw)
        assert drop[k] - base == pytest.approx(q, rel=0.01, abs=0.05)
        assert q > 1.2 * _ohm_bled_as(rows, k, r_ohm)  # more than V / R alone
    got = np.array([f for t, f in c.frames if t == "cell" and "bal_mah" in f][-1]["bal_mah"])
    for k in (HIGH, HIGH + 1):  # the firmware's count, from its readings and the same formula
        assert abs(got[k] - _loop_bled_as(rows, k, rin, rsw) / 3.6) <= 2
