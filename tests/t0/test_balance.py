"""T0: the balancing policy (pwfw.balance) and the estimator's bled-charge correction. Expected masks
follow the policy's definition in docs/configuration.md ("Balancing"): the highest cells above lowest +
bal_stop_dmv, none adjacent (with bal_adjacent pairs, never three in a row), at most bal_max_cells, the
cells that bled held until their charge is gone.
A pair's current is TI's (E2E 1505209, "BQ76952: How to use host control to take care of adjacent
cell balancing?"): I = (V1 + V2) / (Rin + Rsw + Rsw + Rin), from the board's resistances here."""
import json
from pathlib import Path

import pytest

from hil.hal_fake import FakeHal
from hil.hal_ripple import RippleHal
from pwfw.app import App
from pwfw.balance import Balancer
from pwfw.balance_cmd import WHY
from pwfw.balance_run import choose
from pwfw.config import Config
from tests.support import frame_runner

ROOT = Path(__file__).resolve().parents[2]
BOARD = json.loads((ROOT / "boards" / "sim.json").read_text())
BASE = [3450] * 16


def cells(**hi):
    c = list(BASE)
    for k, v in hi.items():
        c[int(k[1:])] = v
    return c


def bal(**over):
    cfg = Config(dict(BOARD, limits=over))
    return Balancer(cfg, 16)


def test_highest_cells_none_adjacent_at_most_max_cells():
    b = bal()
    c = cells(c3=3500, c4=3499, c5=3498, c9=3480, c12=3470, c14=3460)
    m = choose(b, 0, c, 1000, [250, 250], 300)
    # 3 (highest), not 4 (adjacent), 5, then 9, 12: four cells; 14 would be the fifth
    assert m == (1 << 3) | (1 << 5) | (1 << 9) | (1 << 12) and WHY[b.st[5]] == "auto"


def test_adjacent_pairs_only_with_bal_adjacent_never_three_in_a_row():
    c = cells(c3=3500, c4=3500, c5=3500, c6=3500)  # four alike neighbours, all to bleed
    m = choose(bal(bal_adjacent=1), 0, c, 1000, [250], 300)
    assert m == 0b1111 << 3 & ~(1 << 5) or m == 0b1111 << 3 & ~(1 << 4)  # two pairs or 3 + 5,6
    assert m & m >> 1 and not m & m >> 1 & m >> 2
    assert bin(m).count("1") == 3
    m = choose(bal(), 0, c, 1000, [250], 300)  # bal_adjacent 0: never two adjacent
    assert m == (1 << 3) | (1 << 5) and not m & m >> 1
    wide = cells(**{"c%d" % k: 3500 for k in range(16)})
    wide[0] = 3440  # the lowest: every other cell bleeds
    m = choose(bal(bal_adjacent=1, bal_max_cells=8), 0, wide, 1000, [250], 300)
    assert bin(m).count("1") == 8 and not m & 1 and not m & m >> 1 & m >> 2


def test_the_cells_that_bled_are_held_until_their_charge_is_gone():
    # below the top of charge: the charge left (goal_mah) decides; two at a time
    b = bal(bal_max_cells=2)
    below = [3300] * 16
    g = b.goal_mah
    g[2], g[6], g[9] = 100, 90, 80
    m = choose(b, 0, below, 0, [250], 300)
    assert m == (1 << 2) | (1 << 6)  # the most left
    b.st[15] = m  # they bled (st[_BLED]) and now have less left than cell 9
    g[2], g[6] = 40, 30
    assert choose(b, 0, below, 0, [250], 300) == (1 << 2) | (1 << 6)  # held, not 9 instead
    g[6] = 0  # cell 6's charge is gone: its place goes to the one with the most left
    b.st[15] = (1 << 2) | (1 << 6)
    assert choose(b, 0, below, 0, [250], 300) == (1 << 2) | (1 << 9)


def test_never_below_the_lowest_plus_stop_delta():
    b = bal()
    c = cells(c0=3430, c7=3490)  # lowest 3430: every other cell is > 5 mV above it
    m = choose(b, 0, c, 0, [250], 300)
    assert m & 1 == 0 and m & (1 << 7)
    c = list(BASE)
    c[0] = 3430
    c[7] = 3453  # the spread is cell 0 being low: max - min 23 mV, but bleeding cannot lift cell 0
    assert not choose(b, 0, c, 0, [250], 300) & 1


@pytest.mark.parametrize("i_ma, temps, die, why", [
    (-5000, [250], 300, "discharging"), (1000, [510, 250], 300, "hot"), (1000, [250], 660, "hot")])
def test_refuses_discharging_and_hot(i_ma, temps, die, why):
    b = bal()
    assert choose(b, 0, cells(c3=3500), i_ma, temps, die) == 0 and WHY[b.st[5]] == why


def test_discharging_allowed_when_configured():
    assert choose(bal(bal_dsg=1), 0, cells(c3=3500), -5000, [250], 300) == 1 << 3


def test_start_voltage_and_start_stop_hysteresis():
    b = bal()
    low = [3300] * 16
    low[2] = 3390
    assert choose(b, 0, low, 0, [250], 300) == 0 and WHY[b.st[5]] == "low"
    assert choose(b, 0, cells(c2=3457), 0, [250], 300) == 0 and WHY[b.st[5]] == "balanced"  # 7 < start 10
    assert choose(b, 0, cells(c2=3465), 0, [250], 300) == 1 << 2  # 15 >= start: on
    assert choose(b, 0, cells(c2=3458), 0, [250], 300) == 1 << 2  # 8 > stop 5: still on
    assert choose(b, 0, cells(c2=3454), 0, [250], 300) == 0 and WHY[b.st[5]] == "balanced"


def test_estimator_moves_the_bled_cell_by_its_charge():
    # 1 Ah bled from one cell of a 100 Ah pack: that cell 1 % (10 pm) lower, the pack mean 1/16 of it
    from pwfw.soc import Estimator, load_model

    e = Estimator(load_model(str(ROOT / "firmware/pwfw/models/lfp.json")), 16, 100000)
    e.set_soc(600)
    e._report()
    before = list(e.cell_soc_pm)
    e.bled(6, 3600000)
    e._report()
    after = list(e.cell_soc_pm)
    assert before[6] - after[6] == pytest.approx(10 - 10 / 16, abs=1)
    assert all(abs(after[j] - before[j]) <= 1 for j in range(16) if j != 6)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hal = RippleHal(BOARD)  # FakeHal whose AFE accumulates the charge: balancing counts from it
    a = App(hal)
    a.hal_ = hal
    run = frame_runner(a, hal)

    def cmd(text):
        hal.rx += text.encode() + b"\n"
        n = len(a.frames)
        run(200)
        return [f for f in a.frames[n:] if f[0] in ("ok", "err")][-1]

    a.run_ms, a.cmd = run, cmd
    return a


def test_app_drives_the_afe_and_reports_the_mask(app):
    hal = app.hal_
    hal.set(cells=cells(c3=3500, c10=3490), i_ma=2000)
    app.run_ms(65000)
    assert hal.bq.bal_mask == (1 << 3) | (1 << 10)  # what the part balances
    reps = [f[1] for f in app.frames if f[0] == "rep"]
    assert reps[-1]["bal"] == hal.bq.bal_mask
    hal.set(i_ma=-5000)  # discharging: the next decision stops it
    app.run_ms(61000)
    assert hal.bq.bal_mask == 0


def test_balance_command_manual_with_timeout_and_off(app):
    hal = app.hal_
    hal.set(cells=cells(c0=3457, c2=3457), i_ma=0)
    r = app.cmd("balance cells 0x5 1")
    assert r[0] == "ok" and r[1]["mode"] == "cells"
    app.run_ms(500)
    assert hal.bq.bal_mask == 5
    assert app.cmd("balance cells 3")[0] == "err"  # adjacent
    assert app.cmd("balance cells 0x10000")[0] == "err"  # beyond 16 cells
    assert app.cmd("balance cells 0x5555")[0] == "err"  # 8 cells > bal_max_cells 4
    app.run_ms(61000 + 61000)  # the minute ran out: back to auto, which sees 7 mV < 10: off
    assert hal.bq.bal_mask == 0
    assert app.cmd("balance")[1]["mode"] == "auto"
    app.cmd("balance cells 0x5 30")
    app.run_ms(500)
    assert hal.bq.bal_mask == 5
    assert app.cmd("balance off")[1]["mode"] == "off"  # applied at the next sample
    app.run_ms(500)
    assert hal.bq.bal_mask == 0


def test_bled_charge_is_counted_from_v_over_r_and_persisted(app):
    hal = app.hal_
    hal.set(cells=cells(c6=3520), i_ma=1000)
    app.run_ms(3600 * 1000)  # one hour
    # 3.52 V / 55 ohm = 64 mA for ~1 h at the bounded duty: of every bal_s (60 s) the FETs are off for
    # the 3 s decision window (docs/configuration.md "Balancing"), and the last period is counted at
    # its decision, so 59 to 60 periods of 57 s
    secs = app.bal.bal_s[6]
    assert 59 * 57 <= secs <= 60 * 57
    k = app.bal.bled_mah[6]
    assert abs(k - 3520 / 55 * secs / 3600) <= 1
    assert all(app.bal.bled_mah[j] == 0 for j in range(16) if j != 6)
    cell = [f[1] for f in app.frames if f[0] == "cell"][-1]
    assert cell["bal_mah"][6] >= k - 1
    app.save()
    app2 = App(hal)
    assert app2.bal.bled_mah[6] == k and app2.bal.bal_s[6] == app.bal.bal_s[6]




def _pair_app(tmp_path, monkeypatch, r_ohm, rsw_ohm):
    monkeypatch.chdir(tmp_path)
    board = dict(BOARD, limits=dict(BOARD["limits"], bal_adjacent=1, bal_r_ohm=r_ohm, bal_rsw_ohm=rsw_ohm))
    hal = FakeHal(board)
    a = App(hal)
    return a, hal, frame_runner(a, hal)


@pytest.mark.parametrize("r_ohm, rsw_ohm", [(55, 28), (68, 28)])  # 68 = TI's example: 20 + 28 + 20
def test_an_adjacent_pair_is_counted_with_tis_loop_current(tmp_path, monkeypatch, r_ohm, rsw_ohm):
    app, hal, run = _pair_app(tmp_path, monkeypatch, r_ohm, rsw_ohm)
    hal.set(cells=cells(c6=3520, c7=3500), i_ma=1000)
    run(630 * 1000)  # mid-period (the FETs are off in each period's last 3 s)
    assert hal.bq.bal_mask == 0b11 << 6  # the pair, both on
    run(2970 * 1000)
    # the board's bal_r_ohm is the whole path of one cell: 2 Rin + Rsw
    rin = (r_ohm - rsw_ohm) / 2
    i_ma = (3520 + 3500) / (rin + rsw_ohm + rsw_ohm + rin)  # TI's formula (55/28: 84.6 mA)
    for k in (6, 7):
        secs = app.bal.bal_s[k]
        assert 59 * 57 <= secs <= 60 * 57  # both on the whole hour at the bounded duty
        # counted in whole mAh (the rest carried in mA.s, each period's mA.s floored): up to ~1 mAh under
        assert 0 <= i_ma * secs / 3600 - app.bal.bled_mah[k] < 1.1
    assert app.bal.bled_mah[6] > 3520 / r_ohm * app.bal.bal_s[6] / 3600 + 10  # more than alone


def test_manual_pairs_with_bal_adjacent_and_never_three(tmp_path, monkeypatch):
    app, hal, run = _pair_app(tmp_path, monkeypatch, 55, 28)

    def cmd(text):
        hal.rx += text.encode() + b"\n"
        n = len(app.frames)
        run(200)
        return [f for f in app.frames[n:] if f[0] in ("ok", "err")][-1]

    hal.set(cells=cells(c0=3460, c1=3460, c2=3460, c4=3460), i_ma=0)
    assert cmd("balance cells 0x3 5")[0] == "ok"
    run(500)
    assert hal.bq.bal_mask == 3
    r = cmd("balance cells 0x7")
    assert r[0] == "err" and "three adjacent" in r[1]["error"]


def test_charge_left_to_bleed_survives_a_power_loss(app):
    hal = app.hal_
    hal.set(cells=cells(c6=3520), i_ma=1000)
    app.run_ms(65000)  # the top of charge gave cell 6 charge to bleed
    left = app.bal.goal_mah[6]
    assert left > 0 and hal.bq.bal_mask == 1 << 6
    app.save()
    hal.set(cells=[3300] * 16)  # back on the plateau: no top of charge to measure again
    app2 = App(hal)
    assert app2.bal.goal_mah[6] == left
    run = frame_runner(app2, hal)
    run(65000)
    assert hal.bq.bal_mask == 1 << 6  # it goes on with what was left


def test_the_charge_between_two_cells_reaching_the_start_voltage_is_the_first_ones_surplus(app):
    # a 20 A charge: cell 3 reads bal_start_mv (3400) first, cell 6 after another 0.1 h, the rest
    # never; the same current filled them all in between (series), so cell 3 has 20 A x (0.1 + 0.05) h
    # = 3 Ah over the lowest, cell 6 1 Ah (less what each bled since: the firmware's own bled_mah)
    hal = app.hal_
    hal.set(cells=[3350] * 16, i_ma=20000)
    app.run_ms(30000)
    c = [3350] * 16
    c[3] = 3400
    hal.set(cells=list(c))
    app.run_ms(360000)
    c[3], c[6] = 3420, 3400
    hal.set(cells=c)
    app.run_ms(180000)
    hal.set(i_ma=0)  # the charge ends; the next decision (within a minute, at the top) measures
    app.run_ms(61000)
    b = app.bal
    for k, q_mah in ((3, 20000 * 540 / 3600), (6, 20000 * 180 / 3600)):
        left = q_mah - b.bled_mah[k]  # neither bled before it crossed
        # each crossing and the charge's end seen on the 1 s balancing tick: 5.6 mAh a second, a few
        assert abs(b.goal_mah[k] - left) <= 20, (k, b.goal_mah[k], left)
    assert b.goal_mah[3] > 5 * (3420 - 3350 - 5) * 5  # far more than the voltage alone shows (325 mAh)
    assert all(b.goal_mah[k] == 0 for k in range(16) if k not in (3, 6))


def test_the_charge_to_bleed_is_the_charge_that_flowed_under_a_ripple(tmp_path, monkeypatch):
    # the same two crossings under a 20 A charge with a 100 Hz, 5 A peak ripple (an inverter's), sampled
    # once a second: every sample reads the ripple at about the same phase, so their mean is not the
    # current. The goals must be the charge that flowed (the ripple HAL's truth, q_true), as the AFE's
    # accumulator counts it, not the sampled one; the direction also from the mean (a trough sampled at
    # the end of the charge is not a discharge)
    monkeypatch.chdir(tmp_path)
    hal = RippleHal(dict(BOARD, sample_ms=1000, report_ms=1000), ripple=(5.0, 100.0))
    app = App(hal)
    run = frame_runner(app, hal)
    seen = []
    sample = app.sample

    def spy(now):
        sample(now)
        seen.append(app.pack.i_ma)

    app.sample = spy
    hal.set(cells=[3350] * 16, i_ma=20000)
    run(30000)
    c = [3350] * 16
    c[3] = 3400
    hal.set(cells=list(c))
    q3 = hal.q_true
    run(360000)
    c[3], c[6] = 3420, 3400
    hal.set(cells=c)
    q6 = hal.q_true
    run(180000)
    q_end = hal.q_true
    sampled = sum(seen) / len(seen)
    assert abs(sampled - 20000) > 2000, sampled  # the scenario bites: the samples alias the ripple
    hal.set(i_ma=0)
    run(61000)
    b = app.bal
    for k, q in ((3, q3), (6, q6)):
        left = (q_end - q) / 3600000 - b.bled_mah[k]
        # each crossing seen on the 1 s balancing tick: 5.6 mAh a second, a few
        assert abs(b.goal_mah[k] - left) <= 20, (k, b.goal_mah[k], left)


def test_balance_command_refusals_are_one_clear_line(app):
    for line, ok in (("balance cells 3", False), ("balance cells 0xZZ", False), ("balance sometimes", False),
                     ("balance cells 0x5 0", False), ("balance cells 0x5 30", True), ("balance", True)):
        r = app.cmd(line)
        assert (r[0] == "ok") == ok, (line, r)
        if not ok:
            assert "internal error" not in r[1]["error"] and r[1]["error"], r
    assert app.cmd("balance cells 0xZZ")[1]["error"] == "mask must be an integer or 0x-hex, got 0xZZ"


def test_the_state_index_tables_are_one_table():
    # Balancer.st's indices are private const() in each module that reads the array (MicroPython inlines
    # them and cannot import them; public names would cost qstrs in the loop's heap): pwfw.balance holds
    # the table, and every copy (balance_run, balance_cmd, app's _BAL_*) must name the same indices
    import re

    fw = ROOT / "firmware" / "pwfw"
    pat = re.compile(r"^(_[A-Z_]+) = const\((\d+)\)", re.M)

    def table(name):
        return dict(pat.findall((fw / name).read_text()))

    ref = table("balance.py")
    names = ("_MODE", "_PREV", "_MASK", "_WANT", "_UNTIL", "_WHY", "_ACTIVE", "_PAUSED", "_NEXT", "_LAST",
             "_FETS", "_DUE", "_NWIN", "_GOAL", "_OFF", "_BLED")
    assert [ref[n] for n in names] == [str(k) for k in range(len(names))] and ref["_N_ST"] == str(len(names))
    for mod in ("balance_run.py", "balance_cmd.py"):
        got = table(mod)
        assert {n: got[n] for n in names if n in got} == {n: ref[n] for n in names if n in got}, mod
        assert sum(n in got for n in names) >= 9, mod
    app = table("app.py")
    assert {k[5:]: v for k, v in app.items() if k.startswith("_BAL_")} == {
        n[1:]: ref[n] for n in ("_MASK", "_NEXT", "_FETS")}


def test_a_one_sample_spike_does_not_start_balancing_the_window_mean_decides(app):
    # 10 mV is bal_start_dmv (docs/configuration.md): a cell that reads 25 mV high on one sample only
    # (a different cell every sample, as a noisy reading would) moves no cell's mean over a decision
    # window by more than a few mV, so nothing balances; a policy that decides on one sample sees a
    # 25 mV spread at every decision and bleeds whichever cell spiked then
    hal = app.hal_
    n = 0
    for _ in range(3000):  # 5 min of 100 ms samples: five decisions
        c = list(BASE)
        c[n % 16] += 25
        n += 1
        hal.set(cells=c, i_ma=1000)
        app.step()
        assert hal.bq.bal_mask == 0, n
    # the control: the same 25 mV held on one cell starts it at the next decision
    c = cells(c7=3475)
    hal.set(cells=c, i_ma=1000)
    app.run_ms(65000)
    assert hal.bq.bal_mask == 1 << 7
