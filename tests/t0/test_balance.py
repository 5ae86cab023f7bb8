"""T0: the balancing policy (pwfw.balance) and the estimator's bled-charge correction. Expected masks
follow the policy's definition in docs/configuration.md ("Balancing"): the highest cells above lowest +
bal_stop_dmv, none adjacent, at most bal_max_cells."""
import json
from pathlib import Path

import pytest

from pwfw.balance import Balancer
from pwfw.config import Config

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
    m = b.choose(0, c, 1000, [250, 250], 300)
    # 3 (highest), not 4 (adjacent), 5, then 9, 12: four cells; 14 would be the fifth
    assert m == (1 << 3) | (1 << 5) | (1 << 9) | (1 << 12) and b.why == "auto"


def test_never_below_the_lowest_plus_stop_delta():
    b = bal()
    c = cells(c0=3430, c7=3490)  # lowest 3430: every other cell is > 5 mV above it
    m = b.choose(0, c, 0, [250], 300)
    assert m & 1 == 0 and m & (1 << 7)
    c = list(BASE)
    c[0] = 3430
    c[7] = 3453  # the spread is cell 0 being low: max - min 23 mV, but bleeding cannot lift cell 0
    assert not b.choose(0, c, 0, [250], 300) & 1


@pytest.mark.parametrize("i_ma, temps, die, why", [
    (-5000, [250], 300, "discharging"), (1000, [510, 250], 300, "hot"), (1000, [250], 660, "hot")])
def test_refuses_discharging_and_hot(i_ma, temps, die, why):
    b = bal()
    assert b.choose(0, cells(c3=3500), i_ma, temps, die) == 0 and b.why == why


def test_discharging_allowed_when_configured():
    assert bal(bal_dsg=1).choose(0, cells(c3=3500), -5000, [250], 300) == 1 << 3


def test_start_voltage_and_start_stop_hysteresis():
    b = bal()
    low = [3300] * 16
    low[2] = 3390
    assert b.choose(0, low, 0, [250], 300) == 0 and b.why == "low"
    assert b.choose(0, cells(c2=3465), 0, [250], 300) == 0 and b.why == "balanced"  # 15 < start 20
    assert b.choose(0, cells(c2=3475), 0, [250], 300) == 1 << 2  # 25 >= start: on
    assert b.choose(0, cells(c2=3465), 0, [250], 300) == 1 << 2  # 15 > stop 5: still on
    assert b.choose(0, cells(c2=3454), 0, [250], 300) == 0 and b.why == "balanced"


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
