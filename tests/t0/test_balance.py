"""T0: the balancing policy (pwfw.balance) and the estimator's bled-charge correction. Expected masks
follow the policy's definition in docs/configuration.md ("Balancing"): the highest cells above lowest +
bal_stop_dmv, none adjacent, at most bal_max_cells."""
import json
from pathlib import Path

import pytest

from hil.hal_fake import FakeHal
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
    assert choose(b, 0, cells(c2=3465), 0, [250], 300) == 0 and WHY[b.st[5]] == "balanced"  # 15 < start 20
    assert choose(b, 0, cells(c2=3475), 0, [250], 300) == 1 << 2  # 25 >= start: on
    assert choose(b, 0, cells(c2=3465), 0, [250], 300) == 1 << 2  # 15 > stop 5: still on
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
    hal = FakeHal(BOARD)
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
    hal.set(cells=cells(c0=3460, c2=3460), i_ma=0)
    r = app.cmd("balance cells 0x5 1")
    assert r[0] == "ok" and r[1]["mode"] == "cells"
    app.run_ms(500)
    assert hal.bq.bal_mask == 5
    assert app.cmd("balance cells 3")[0] == "err"  # adjacent
    assert app.cmd("balance cells 0x10000")[0] == "err"  # beyond 16 cells
    assert app.cmd("balance cells 0x5555")[0] == "err"  # 8 cells > bal_max_cells 4
    app.run_ms(61000 + 61000)  # the minute ran out: back to auto, which sees 10 mV < 20: off
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
    # 20 mV is bal_start_dmv (docs/configuration.md): a cell that reads 25 mV high on one sample only
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
