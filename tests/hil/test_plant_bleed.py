"""The plant's balancing bleed (hil/plant.py Plant._bleed): a bled cell discharges through the
board's balancing resistor, I = V / R (Ohm's law), and nothing else does; an adjacent pair is one
loop through both internal switches and the two outer input resistors, I = (V1 + V2) / (Rin + Rsw +
Rsw + Rin) (TI E2E 1505209, "BQ76952: How to use host control to take care of adjacent cell
balancing?")."""
import numpy as np
import pytest

from hil import profiles as P
from hil.plant import Plant


def _run(pl, seconds, mask, dt_ms=100):
    for _ in range(int(seconds * 1000 // dt_ms)):
        pl.step(dt_ms, True, True, True, -1, mask)


@pytest.mark.parametrize("r_ohm", [55.0, 33.0])
def test_bled_cell_loses_v_over_r_times_t(r_ohm):
    # at rest (no pack current) for an hour, cells 3 and 9 bleeding (bit k = cell k)
    pl = Plant("lfp", seed=4, soc0=0.9, h0=1.0, bal_r_ohm=r_ohm)
    pl.self_dis[:] = 0.0  # so only the bleed moves charge
    mask = (1 << 3) | (1 << 9)
    soc0 = pl.soc.copy()
    v_start = pl.cells_v.copy()
    seconds = 3600
    volts = []
    for _ in range(seconds):  # 1 s steps as 10 x 100 ms; the terminal voltage each second
        _run(pl, 1, mask)
        volts.append(pl.cells_v.copy())
    v_mean = np.mean(volts, axis=0)
    lost_ah = (soc0 - pl.soc) * pl.cap_ah
    for k in (3, 9):
        # Ohm's law: Q = integral V/R dt; V barely moves (a few mV over the hour), so V_mean * t / R
        expect_ah = v_mean[k] / r_ohm * seconds / 3600.0
        assert lost_ah[k] == pytest.approx(expect_ah, rel=2e-3)
        assert pl.bled_as[k] == pytest.approx(expect_ah * 3600.0, rel=2e-3)
        assert v_start[k] / r_ohm > 0.05  # ~60 mA at 3.3 V through 55 ohm
    others = [k for k in range(pl.n_cells) if k not in (3, 9)]
    assert np.allclose(lost_ah[others], 0.0, atol=1e-12)  # the pack current never carried it
    assert all(pl.bled_as[k] == 0.0 for k in others)
    assert pl.i_a == 0.0  # the shunt sees nothing


@pytest.mark.parametrize("rin, rsw", [(13.5, 28.0), (20.0, 28.0)])  # 55 ohm board; TI's example 20 + 28
def test_adjacent_pair_bleeds_tis_loop_current(rin, rsw):
    # the board's bal_r_ohm is one cell's whole path: Rin + Rsw + Rin
    pl = Plant("lfp", seed=4, soc0=0.9, h0=1.0, bal_r_ohm=2 * rin + rsw, bal_rsw_ohm=rsw)
    pl.self_dis[:] = 0.0
    mask = (1 << 4) | (1 << 5) | (1 << 9)  # cells 4 and 5 a pair, 9 alone
    soc0 = pl.soc.copy()
    volts = []
    for _ in range(1800):
        _run(pl, 1, mask)
        volts.append(pl.cells_v.copy())
    v = np.mean(volts, axis=0)
    lost_ah = (soc0 - pl.soc) * pl.cap_ah
    pair_a = (v[4] + v[5]) / (rin + rsw + rsw + rin)
    for k in (4, 5):
        assert lost_ah[k] == pytest.approx(pair_a * 0.5, rel=2e-3)  # the same current in both
    assert lost_ah[9] == pytest.approx(v[9] / (rin + rsw + rin) * 0.5, rel=2e-3)
    assert pair_a > 1.2 * v[4] / (rin + rsw + rin)  # a pair bleeds more than a cell alone


def test_bleed_heats_the_board_not_without_it():
    hot = Plant("lfp", seed=1, soc0=0.9, h0=1.0)
    cold = Plant("lfp", seed=1, soc0=0.9, h0=1.0)
    m = 0b0101010101010101  # 8 cells: ~8 x 3.4 V^2 / 55 ohm = 1.7 W on the board
    _run(hot, 1800, m, dt_ms=1000)
    _run(cold, 1800, 0, dt_ms=1000)
    # the AFE's die and the TS3 (board) sensor warm, the cell-side sensors stay with their cells
    assert hot.temps_c[6] > cold.temps_c[6] + 5.0
    assert hot.temps_c[5] > cold.temps_c[5] + 5.0
    assert hot.temps_c[0] == pytest.approx(cold.temps_c[0], abs=0.05)


def test_board_resistor_default_is_the_firmwares():
    from pwfw.config import KEYS

    default = [k[1] for k in KEYS if k[0] == "bal_r_ohm"][0]
    assert Plant("lfp", seed=0).bal_r_ohm == default
    with pytest.raises(ValueError):
        Plant("lfp", seed=0, bal_r_ohm=0)


def test_bleed_undone_by_restore():
    # the virtual board steps ahead and undoes (snapshot/restore): a bleed must be undone too
    pl = Plant("lfp", seed=2, soc0=0.9, profile=P.Mix(P.Constant(5.0)))
    _run(pl, 10, 1 << 5)
    snap = pl.snapshot()
    soc, bled = pl.soc.copy(), list(pl.bled_as)
    _run(pl, 5, 1 << 5)
    assert pl.bled_as[5] > bled[5]
    pl.restore(snap)
    assert pl.bled_as == bled
    assert np.array_equal(pl.soc, soc)
