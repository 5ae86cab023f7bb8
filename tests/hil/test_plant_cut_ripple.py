"""The plant under an AFE FET cut inside a step (Plant._interrupt) and under inverter ripple (Plant.ripple):
expected values by coulomb counting and by integrating the ripple numerically (numpy), not from the
plant's own formulas."""
import math

import numpy as np
import pytest

from hil import profiles as P
from hil.plant import Plant


def coulomb(pl, soc0, amp_s, seconds):
    """Each cell's SoC after amp_s ampere-seconds and `seconds` of self-discharge."""
    return soc0 + amp_s / 3600.0 / pl.cap_ah - pl.self_dis * seconds


@pytest.mark.parametrize("amps,cut_us,chg,dsg", [
    (-200.0, 40_000, True, False),  # an OCD/SCD: DSG opens 40 ms into a 100 ms step of 200 A discharge
    (100.0, 25_000, False, True),   # an OCC: CHG opens 25 ms into a step of 100 A charge
    (-150.0, 100_000, True, False),  # a delay that ends with the step: all of it flowed
])
def test_a_fet_cut_inside_a_step_moves_only_the_charge_before_it(amps, cut_us, chg, dsg):
    pl = Plant("lfp", seed=2, profile=P.Constant(amps), soc0=0.5)
    pl.step(100)
    soc0 = pl.soc.copy()
    pl.step(100)  # the step the FET opens in: the plant learns it with the next request
    pl.step(100, True, chg, dsg, cut_us)
    # the corrected step carried amps for cut_us, then nothing (the path blocks that direction);
    # the last step nothing at all
    assert np.allclose(pl.soc, coulomb(pl, soc0, amps * cut_us / 1e6, 0.2), rtol=0, atol=1e-12)
    assert pl.i_avg_ma == 0 and pl.i_ma == 0
    onset, t_us, a, how = pl.interruptions[-1]
    assert (t_us, a, how) == (100_000 + cut_us, amps, "afe")


def test_a_cut_in_the_direction_the_path_still_passes_changes_nothing():
    # DSG off, but the pack charges: the charge current still flows (CHG on; series: DSG's body diode)
    a = Plant("lfp", seed=2, profile=P.Constant(50.0), soc0=0.5)
    b = Plant("lfp", seed=2, profile=P.Constant(50.0), soc0=0.5)
    for pl in (a, b):
        pl.step(100)
    a.step(100, True, True, False, 30_000)
    b.step(100, True, True, False)
    assert np.array_equal(a.soc, b.soc) and not a.interruptions


def ripple_mean_and_end(amps_pk, hz, t0_ms, dt_ms):
    t = np.linspace(t0_ms / 1000.0, (t0_ms + dt_ms) / 1000.0, 200_001)
    i = amps_pk * np.sin(2 * math.pi * hz * t)
    mean = float(np.sum((i[1:] + i[:-1]) / 2 * np.diff(t))) / (dt_ms / 1000.0)  # trapezoid rule
    return mean, float(i[-1])


@pytest.mark.parametrize("offset_ppm", [0.0, 250.0])
def test_ripple_moves_the_step_mean_and_reports_the_value_at_the_sample_instant(offset_ppm):
    amps_pk, hz = 60.0, 100.0 * (1 + offset_ppm * 1e-6)
    pl = Plant("lfp", seed=4, profile=P.Constant(-20.0), soc0=0.6)
    pl.ripple(amps_pk, 100.0, offset_ppm)
    soc0 = pl.soc.copy()
    moved = 0.0
    t = 0
    apart = 0
    for dt in (37, 100, 63, 100, 1, 99):  # steps that end anywhere in the ripple's period
        pl.step(dt)
        mean, end = ripple_mean_and_end(amps_pk, hz, t, dt)
        assert abs(pl.i_avg_ma - (mean - 20.0) * 1000) <= 1  # mA rounding
        assert abs(pl.i_ma - (end - 20.0) * 1000) <= 1
        moved += (mean - 20.0) * dt / 1000.0
        t += dt
        apart = max(apart, abs(pl.i_ma - pl.i_avg_ma))
    assert np.allclose(pl.soc, coulomb(pl, soc0, moved, t / 1000.0), rtol=0, atol=1e-10)
    # the instantaneous value is not the mean: a sampler that multiplies it by the step counts wrong
    assert apart > 10_000


def test_ripple_over_whole_periods_moves_no_charge_of_its_own():
    a = Plant("lfp", seed=4, profile=P.Constant(-20.0), soc0=0.6)
    b = Plant("lfp", seed=4, profile=P.Constant(-20.0), soc0=0.6)
    a.ripple(60.0, 100.0)
    for _ in range(50):  # 100 ms = 10 periods of 100 Hz
        a.step(100)
        b.step(100)
        assert a.i_avg_ma == b.i_avg_ma == -20_000
    assert np.allclose(a.soc, b.soc, rtol=0, atol=1e-12)
