# The BQ76952 conversion table against the TRM's own examples (SLUUBY2B section 13, data-memory
# tables) and LibreSolar bms-firmware's encodings (drivers/bms_ic/bq769x2, tests/bms_ic/bq769x2):
# every expected value is theirs, never computed by the code under test.
import struct

import pytest

from pwfw import bq76952_units as u


def f32(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def test_cc_gain_and_capacity_gain_defaults_are_the_trm_ones_for_1_mohm():
    # TRM 13.2: CC Gain default 7.4768, Capacity Gain default 2230042.463 (a 1 mOhm sense resistor)
    assert u.cc_gain_bits(1000) == f32(7.4768)
    assert u.cap_gain_bits(1000) == f32(2230042.463)


@pytest.mark.parametrize("uohm", [250, 300, 500, 1000, 2000])
def test_cc_gain_from_the_shunt_is_the_trm_formula(uohm):
    # data sheet 8.3.4 / TRM 4.12: CC Gain = 7.4768 / Rsense[mOhm]; Capacity Gain = CC Gain * 298261.6178
    mohm = uohm / 1000
    assert u.cc_gain_bits(uohm) == f32(7.4768 / mohm)
    assert u.cap_gain_bits(uohm) == f32(7.4768 / mohm * 298261.6178)
    m, e = u.f32_parts(u.cc_gain_bits(uohm))
    assert m * 2.0**e == struct.unpack("<f", struct.pack("<f", 7.4768 / mohm))[0]


def test_cell_thresholds_in_50_6_mv_steps():
    # TRM 13.6.1/2: COV 20..110 and CUV 20..90 in 50.6 mV; COV default 86 (4.3516 V), CUV 50 (2.53 V)
    assert u.cell_mv(86) == round(86 * 50.6) and u.cell_mv(50) == round(50 * 50.6)
    assert u.cell_mv(20) == 1012 and u.cell_mv(110) == 5566
    for mv in (2500, 2800, 3000, 3650, 3750, 4200, 4250):
        assert u.cell_code(mv) == round(mv / 50.6)  # LibreSolar configure_cell_ovp: lroundf(V/50.6 mV)
    assert u.cell_code(9000) == 110 and u.cell_code(100) == 20
    assert u.cell_code(9000, u.CUV_MIN, u.CUV_MAX) == 90
    assert u.hyst_code(0) == 2 and u.hyst_code(5000) == 20  # LibreSolar: CLAMP(hyst, 2, 20)


def test_cell_delay_units():
    # LibreSolar test_apply_cell_uvp: 74 * 3.3 ms -> 74 (the TRM default), 1 * 3.3 ms -> 1, 2047 max
    assert u.cell_delay_code(round(74 * 3.3)) == 74
    assert u.cell_delay_code(3) == 1 and u.cell_delay_code(0) == 1
    assert u.cell_delay_code(round(2047 * 3.3)) == 2047 and u.cell_delay_code(10**6) == 2047


def test_oc_delay_units_have_the_6_6_ms_offset():
    # TRM 13.6.3: "a setting of 1 gives 10 ms, 2 gives 13.3 ms"; U1 1..127
    assert u.oc_delay_us(1) == 10000 and u.oc_delay_us(2) == 13333
    assert u.oc_delay_code(10) == 1 and u.oc_delay_code(13) == 2
    assert u.oc_delay_code(20) == 4  # LibreSolar test_apply_chg_ocp: lroundf(6.6 + 4 * 3.3) -> 4
    assert u.oc_delay_code(3) == 1 and u.oc_delay_code(10**4) == 127


def test_scd_delay_units():
    # TRM 13.6.6: "1 = no delay, all other values (value - 1) * 15 us", 1..31; LibreSolar test_apply_dis_scp
    assert [u.scd_delay_us(c) for c in (1, 2, 31)] == [0, 15, 450]
    assert u.scd_delay_code(15) == 2 and u.scd_delay_code(0) == 1
    assert u.scd_delay_code(450) == 31 and u.scd_delay_code(465) == 31


@pytest.mark.parametrize("uohm", [500, 1000])
def test_current_thresholds_in_2_mv_steps_across_the_shunt(uohm):
    # TRM 13.6.3-5: OCC 2..62, OCD1/2 2..100, units of 2 mV across the sense resistor
    a_per_step = 2.0 / (uohm / 1000)  # amps
    assert u.oc_ma(2, uohm) == round(2 * a_per_step * 1000)
    assert u.oc_code(round(4 * a_per_step * 1000), uohm) == 4
    assert u.oc_code(round(1 * a_per_step * 1000), uohm, u.OCC_MAX) == 2  # LibreSolar: CLAMP 2..62
    assert u.oc_code(round(100 * a_per_step * 1000), uohm, u.OCC_MAX) == 62
    assert u.oc_code(round(120 * a_per_step * 1000), uohm) == 100  # OCD: 2..100


def test_scd_threshold_table():
    # LibreSolar bq769x2_scd_thresholds[] (the TRM 13.6.6 table) and test_apply_dis_scp: 10 mV -> 0,
    # 5 mV -> 0, 500 mV -> 15, 600 mV -> 15
    libre = [10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500]
    r = 500
    for i, mv in enumerate(libre):
        assert u.scd_code(mv * 1000 * 1000 // r, r) == i
        assert u.scd_ma(i, r) == mv * 1000 * 1000 // r
    assert u.scd_code(5 * 2000, r) == 0 and u.scd_code(600 * 2000, r) == 15
    assert u.scd_code(399 * 1000, r) == 8  # 199.5 mV: the entry below, never a later trip


def test_temperatures_and_da_configuration():
    # TRM 13.6.8ff: I1 degC; a negative threshold is two's complement in its byte
    assert u.temp_code(-200) == -20 and u.le(u.temp_code(-200), 1) == b"\xec"
    assert u.temp_code(2000) == 120 and u.temp_code(-900) == -40
    assert u.temp_dc(0xEC) == -200
    # TRM 13.3.2.19: DA Configuration default 0x05 (1 mA, 10 mV); LibreSolar writes 0x06 for
    # "CC2 current to 10 mA and stack/pack voltage to 10 mV"
    assert u.da_config(30000) == 0x05 and u.da_config(150000) == 0x06
    assert u.user_a_ua(0x06) == 10000
