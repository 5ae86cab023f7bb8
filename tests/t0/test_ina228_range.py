"""T0: the INA228's range, calibration, saturation and charge accumulator, checked against the truth
through a third-party driver (Adafruit's CircuitPython adafruit_ina228, on a busio-like shim over the
simulated bus) and through ours. Expected values are the plant's truth and the data sheet (SBOS896):
full scale +-163.84 mV (ADCRANGE 0) or +-40.96 mV (ADCRANGE 1), CURRENT_LSB = max / 2**19,
SHUNT_CAL = 13107.2e6 x CURRENT_LSB x R (x4 with ADCRANGE 1), CHARGE LSB = CURRENT_LSB x 1 s."""
import json
from fractions import Fraction

import adafruit_ina228
import pytest

from hil.chips.bus import SimI2C
from hil.chips.ina228 import INA228Sim
from pwfw.ina228 import INA228, check_headroom, choose_range
from tests.support import ROOT


class BusioShim:
    """The busio.I2C methods adafruit_bus_device.I2CDevice uses, on our simulated bus."""

    def __init__(self, bus):
        self.bus = bus

    def try_lock(self):
        return True

    def unlock(self):
        pass

    def writeto(self, addr, buf, *, start=0, end=None):
        self.bus.writeto(addr, bytes(buf[start:end]))

    def readfrom_into(self, addr, buf, *, start=0, end=None):
        mv = memoryview(buf)[start:end]
        tmp = bytearray(len(mv))
        self.bus.readfrom_into(addr, tmp)
        mv[:] = tmp

    def writeto_then_readfrom(self, addr, out, in_, *, out_start=0, out_end=None, in_start=0, in_end=None):
        self.writeto(addr, out, start=out_start, end=out_end)
        self.readfrom_into(addr, in_, start=in_start, end=in_end)


def chip(shunt_uohm, noise_nv=0):
    bus = SimI2C()
    sim = INA228Sim(shunt_uohm, seed=5)
    sim.noise_nv = noise_nv
    bus.attach(0x40, sim)
    return bus, sim


# (shunt uohm, full-scale A, ADCRANGE, true currents in mA): the second case fits +-40.96 mV
CASES = [
    (500, 320.0, 0, [-300000, -200000, -40000, -1234, 0, 777, 99999, 300000]),
    (100, 300.0, 1, [-290000, -150000, -2500, 0, 1, 4321, 123456, 290000]),
]


@pytest.mark.parametrize("shunt,fs_a,rng,currents", CASES, ids=["adcrange0", "adcrange1"])
def test_adafruit_driver_reads_the_true_current_and_charge(shunt, fs_a, rng, currents):
    bus, sim = chip(shunt)
    ada = adafruit_ina228.INA228(BusioShim(bus))
    ada.set_calibration(shunt / 1e6, fs_a)
    ada.adc_range = rng  # rewrites SHUNT_CAL x4 for ADCRANGE 1, as the data sheet asks
    assert sim.regs[0x00] >> 4 & 1 == rng
    lsb_ma = fs_a * 1000 / (1 << 19)
    vlsb_ma = (0.078125 if rng else 0.3125) / shunt * 1000  # one VSHUNT LSB through the shunt
    ada.reset_accumulators()
    moved = Fraction(0)
    for i in currents:
        sim.set_truth(i, 512000, 300, 1000)
        moved += Fraction(i, 1000)  # A*s over 1 s
        assert abs(ada.current * 1000 - i) <= vlsb_ma / 2 + lsb_ma, (i, ada.current)
        assert abs(ada.shunt_voltage - i / 1000 * shunt / 1e6) <= (78.125e-9 if rng else 312.5e-9) / 2 + 1e-12
    # CHARGE in coulombs: each 1 s step within one rounding of its current
    assert abs(Fraction(ada.charge).limit_denominator(10 ** 9) - moved) <= len(currents) * (vlsb_ma + lsb_ma) / 1000


def test_adafruit_sees_the_shunt_adc_saturate_at_the_ranges_full_scale():
    for rng, fs_v in ((0, 0.16384), (1, 0.04096)):
        bus, sim = chip(100)
        ada = adafruit_ina228.INA228(BusioShim(bus))
        ada.set_calibration(100e-6, 300.0)
        ada.adc_range = rng
        for i_ma, sign in ((2000000, 1), (-2000000, -1)):  # 2 kA: 200 mV across 100 uohm
            sim.set_truth(i_ma, 512000, 300, 0)
            assert abs(ada.shunt_voltage - sign * fs_v) <= 1e-6, (rng, ada.shunt_voltage)


def test_our_driver_picks_the_range_and_reads_the_truth():
    assert choose_range(100, 300000) == 1  # 30 mV at full scale: the +-40.96 mV range
    assert choose_range(500, 320000) == 0  # 160 mV
    with pytest.raises(ValueError, match="past the INA228's"):
        choose_range(1000, 200000)  # 200 mV: beyond both
    for shunt, fs_a, rng, currents in CASES:
        bus, sim = chip(shunt)
        drv = INA228(bus, 0x40, shunt, int(fs_a * 1000))
        drv.configure()
        assert drv.adc_range == rng and sim.regs[0x00] >> 4 & 1 == rng
        # SHUNT_CAL from the data sheet's formula, in floats here
        assert drv.shunt_cal == round(13107.2e6 * (fs_a / 2 ** 19) * shunt / 1e6 * (4 if rng else 1))
        for i in currents:
            sim.set_truth(i, 512000, 300, 0)
            assert abs(drv.read_current_ma() - i) <= 1, (shunt, i)
            assert not drv.saturated


def test_the_esp32_board_reads_200_and_300_a_as_themselves_and_flags_beyond():
    board = json.loads((ROOT / "boards" / "esp32.json").read_text())
    cur = board["current"]
    bus, sim = chip(cur["shunt_uohm"])
    drv = INA228(bus, 0x40, cur["shunt_uohm"], cur["max_ma"])
    drv.configure()
    for i in (-200000, -300000, 200000):
        sim.set_truth(i, 512000, 300, 0)
        assert abs(drv.read_current_ma() - i) <= 1
        assert not drv.saturated
    for i in (-400000, 500000, -2000000):  # past the ADC's +-163.84 mV or the 20-bit register: "at least"
        sim.set_truth(i, 512000, 300, 0)
        got = drv.read_current_ma()
        assert drv.saturated, (i, got)
        assert abs(got) >= 320000 * 0.99 and (got < 0) == (i < 0)
    assert drv.sat_count == 3
    sim.set_truth(-1000, 512000, 300, 0)
    drv.read_current_ma()
    assert not drv.saturated


def test_board_full_scale_must_clear_the_over_current_limits_by_half():
    check_headroom(225000, 100000, 150000)
    with pytest.raises(ValueError, match=r"current.max_ma: 150000 is below 150% .*150000 mA.*at least 225000"):
        check_headroom(150000, 100000, 150000)  # the old esp32.json: -200 A read -150 A


def test_charge_deltas_sum_to_the_charge_moved_across_the_40_bit_wrap():
    bus, sim = chip(500, noise_nv=600)
    drv = INA228(bus, 0x40, 500, 320000)
    drv.configure()
    # just below the register's positive end: +2**39 LSB (CURRENT_LSB = 320 A / 2**19), charging
    sim._acc = ((1 << 39) - 3000) * 1000
    drv.charge_delta_mas()  # where counting starts
    moved = 0
    got = 0
    for k in range(300):
        i = 250000 if k < 200 else -180000
        sim.set_truth(i, 512000, 300, 100)
        moved += i * 100 // 1000  # mA*s in 100 ms
        got += drv.charge_delta_mas()
    assert sim.regs[0x0B] & 0x0400  # CHARGEOF: the register wrapped (data sheet DIAG_ALRT bit 10)
    lsb_mas = 320000 / (1 << 19)
    # each 100 ms step within one VSHUNT rounding (0.3125 uV / 500 uohm = 0.625 mA) plus one CURRENT LSB
    assert abs(got - moved) <= 300 * 0.1 * (0.625 + lsb_mas) + 1, (got, moved)


def test_charge_counts_the_mean_current_not_the_sampled_one():
    # a 100 Hz ripple sampled once per 100 ms always lands on the same phase: the part's accumulator
    # integrates what flows (the plant's mean over the step), so it does not alias
    bus, sim = chip(500)
    drv = INA228(bus, 0x40, 500, 320000)
    drv.configure()
    got = 0
    for _ in range(100):
        sim.set_truth(60000, 512000, 300, 100, i_avg_ma=20000)  # peak sampled, mean 20 A
        got += drv.charge_delta_mas()
    assert abs(got - 20000 * 10) <= 10 * (0.625 + 0.61) + 1
