# The simulated BQ76952 against TRM facts (SLUUBY2B; expected values are the TRM's numbers, the
# plant's truth, or LibreSolar's bq769x2 encodings), and the driver's setup() against the model.
import json
import struct
from pathlib import Path

import pytest

from hil.chips.bq76952 import BQ76952Sim
from hil.chips.bus import SimI2C
from pwfw import bq76952 as bqmod
from pwfw import bq76952_setup
from pwfw import bq76952_units as u

ROOT = Path(__file__).resolve().parents[2]
BOARD = json.loads((ROOT / "boards" / "pico.json").read_text())
CELLS = [33000] * 16
TS = (250, 250, 250)


def make(shunt=500, crc=False, board=BOARD):
    bus = SimI2C()
    sim = BQ76952Sim(cells=16, crc=crc, seed=3, shunt_uohm=shunt)
    bus.attach(8, sim)
    drv = bqmod.BQ76952(bus, 8, crc=crc, sleep=lambda ms: None)
    return bus, sim, drv


def configured(**kw):
    bus, sim, drv = make(**kw)
    drv.configure(16, None, 150000, board=BOARD)
    return bus, sim, drv


def truth(sim, i_ma, cells=CELLS, ts=TS):
    sim.set_truth(cells, sum(cells), i_ma, ts, 300)


def dm(sim, addr, n=1):
    return int.from_bytes(bytes(sim.dm[addr - 0x9180: addr - 0x9180 + n]), "little")


def test_por_defaults_are_the_trm_ones():
    bus, sim, drv = make()
    assert bytes(drv.read_dm(0x9261, 1)) == b"\x88"  # Enabled Protections A: COV + SCD (SLUAA11B 3.1)
    assert bytes(drv.read_dm(0x9308, 1)) == b"\x0d"  # FET Options (TRM 13.3.4)
    assert bytes(drv.read_dm(0x9303, 1)) == b"\x05"  # DA Configuration
    assert struct.unpack("<f", bytes(drv.read_dm(0x91A8, 4)))[0] == pytest.approx(7.4768, rel=1e-7)
    st = drv.read_status()
    assert st & 0x0008 and (st >> 8) & 3 == 1  # POR set; FULLACCESS (Battery Status SEC = 1)
    assert not sim.fet_en and not sim.chg_fet and not sim.dsg_fet  # FET test mode: FETs off


def test_default_cc_gain_with_a_half_milliohm_shunt_reads_half_the_current():
    # issue 13: CC Gain left at 7.4768 (1 mOhm) on a 0.5 mOhm board; TRM 4.12 scaling
    bus, sim, drv = make(shunt=500)
    truth(sim, -12000)
    assert drv.read_cc2_ma() == -6000
    drv.write_dm(u.CC_GAIN, u.le(u.cc_gain_bits(500), 4))
    truth(sim, -12000)
    assert drv.read_cc2_ma() == -12000


def test_setup_writes_reads_back_enables_fets_and_seals():
    bus, sim, drv = configured()
    plan = u.plan(BOARD, 16, 0xFFFF)
    for name, addr, data in plan:
        assert bytes(sim.dm[addr - 0x9180: addr - 0x9180 + len(data)]) == data, name
    assert sim.dm_writes_outside == 0  # all inside CONFIG_UPDATE
    assert sim.fet_en and sim.chg_fet and sim.dsg_fet and drv.fets_enabled
    assert sim.sec == 3 and (drv.read_status() >> 8) & 3 == 3  # SEALED
    assert not drv.read_status() & 0x0008  # POR cleared on exit of CONFIG_UPDATE
    truth(sim, -123456)
    assert drv.read_cc2_ma() == -123460  # userA 10 mA, CC Gain for 0.5 mOhm: the true current


def test_plan_addresses_are_libresolars():
    # LibreSolar drivers/bms_ic/bq769x2/bq769x2_registers.h
    libre = {"cc_gain": 0x91A8, "cap_gain": 0x91AC, "power_config": 0x9234, "reg12_config": 0x9236,
             "reg0_config": 0x9237, "ts1_config": 0x92FD, "ts2_config": 0x92FE, "ts3_config": 0x92FF,
             "da_config": 0x9303, "vcell_mode": 0x9304, "fet_options": 0x9308, "enabled_a": 0x9261,
             "enabled_b": 0x9262, "enabled_c": 0x9263, "chg_fet_a": 0x9265, "chg_fet_b": 0x9266,
             "dsg_fet_a": 0x9269, "dsg_fet_b": 0x926A, "default_alarm_mask": 0x926D, "cuv": 0x9275,
             "cuv_delay": 0x9276, "cuv_hyst": 0x927B, "cov": 0x9278, "cov_delay": 0x9279,
             "cov_hyst": 0x927C, "occ": 0x9280, "occ_delay": 0x9281, "ocd1": 0x9282,
             "ocd1_delay": 0x9283, "ocd2": 0x9284, "ocd2_delay": 0x9285, "scd": 0x9286,
             "scd_delay": 0x9287, "scd_recov_time": 0x9294, "otc": 0x929A, "otc_delay": 0x929B,
             "otc_recov": 0x929C, "otd": 0x929D, "otd_delay": 0x929E, "otd_recov": 0x929F,
             "otf": 0x92A0, "otf_delay": 0x92A1, "otf_recov": 0x92A2, "utc": 0x92A6, "utc_delay": 0x92A7,
             "utc_recov": 0x92A8, "utd": 0x92A9, "utd_delay": 0x92AA, "utd_recov": 0x92AB,
             "recovery_time": 0x92AF}
    plan = {n: a for n, a, _ in u.plan(BOARD, 16, 0xFFFF)}
    assert {n: plan[n] for n in libre} == libre
    assert dict((n, d) for n, _, d in u.plan(BOARD, 16, 0xFFFF))["da_config"] == b"\x06"  # LibreSolar 0x06


def test_a_setting_that_does_not_stick_names_itself_and_leaves_the_fets_off():
    bus, sim, drv = make()
    real = sim._commit

    def drop_scd():  # a part that loses the SCD threshold write
        r = sim.reg
        if r[0x3E] | (r[0x3F] << 8) == u.SCD_TH:
            return
        real()

    sim._commit = drop_scd
    with pytest.raises(bqmod.ConfigError) as e:
        drv.configure(16, None, 150000, board=BOARD)
    assert str(e.value) == "scd"
    assert not sim.fet_en and not sim.chg_fet and not sim.dsg_fet and not drv.fets_enabled


def test_cfgupdate_that_does_not_set_is_a_named_failure():
    bus, sim, drv = make()
    sim.sec = 3  # SEALED with keys the board does not know
    sim.keys = [0x1111, 0x2222, 0x3333, 0x4444]
    with pytest.raises(bqmod.ConfigError) as e:
        drv.configure(16, None, 150000, board=BOARD)
    assert str(e.value) == "unseal" and not sim.dsg_fet


def test_sealed_part_refuses_data_memory_until_unsealed_with_the_keys():
    bus, sim, drv = configured()
    before = dm(sim, u.COV_TH)
    drv.write_dm(u.COV_TH, b"\x6e")  # a stray write
    assert dm(sim, u.COV_TH) == before and sim.dm_rejects == 1
    with pytest.raises(ValueError):
        drv.read_dm(u.COV_TH, 1)  # no data-memory reads when SEALED
    assert bq76952_setup.unseal(drv, (0x0414, 0x3672, 0xFFFF, 0xFFFF)) == 3  # the factory keys no longer work
    assert bq76952_setup.unseal(drv, BOARD["afe"]["keys"]) == 1


def test_scd_inside_a_100_ms_step_trips_at_its_microsecond_delay():
    bus, sim, drv = configured()
    code = dm(sim, u.SCD_TH + 1)
    delay = (code - 1) * 15  # TRM 13.6.6
    th_ma = [10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500][dm(sim, u.SCD_TH)] * 2000
    truth(sim, -(th_ma + 100000))
    assert sim.advance(100000) == delay
    assert sim.trips[-1] == (delay, "scd") and not sim.dsg_fet
    assert sim.passes(-500000) == 0  # the short sees no current after the trip
    # a step whose short starts 40 ms in: the trip is 40 ms + the delay into it
    bus, sim, drv = configured()
    truth(sim, 0)
    assert sim.advance(100000, ((40000, -5000), (60000, -(th_ma + 100000)))) == 40000 + delay


def test_ocd2_under_a_surge_trips_at_its_delay_and_recovers_with_a_charger():
    bus, sim, drv = configured()
    th = dm(sim, u.OCD2_TH) * 2000 * 1000 // 500  # 2 mV steps across 0.5 mOhm, in mA
    delay = (dm(sim, u.OCD2_TH + 1) + 2) * 10000 // 3  # TRM: (setting + 2) * 3.33 ms
    truth(sim, -(th + 4000))
    cut = sim.advance(100000)
    assert cut == delay and not sim.dsg_fet and sim.status_a & 0x40
    truth(sim, 0)
    for _ in range(50):
        sim.advance(100000)  # no charger: OCD holds (recovery needs current >= +200 mA, TRM)
    assert not sim.dsg_fet
    truth(sim, 5000)  # charger: flows through the DSG FET's body diode (series), CHG is on
    for _ in range(31):
        sim.advance(100000)
    assert sim.dsg_fet and not sim.status_a & 0x40


def test_body_diode_rule_cov_and_cuv():
    bus, sim, drv = configured()
    cov = u.cell_mv(dm(sim, u.COV_TH))
    delay_ms = dm(sim, u.COV_TH + 1, 2) * 33 // 10
    high = [34000] * 15 + [(cov + 20) * 10]
    truth(sim, 2000, high)
    for _ in range(delay_ms // 100 + 1):
        sim.advance(100000)
    assert not sim.chg_fet and sim.dsg_fet  # COV: charge stops
    assert sim.passes(3000) == 0 and sim.passes(-3000) == -3000  # discharge still flows
    bus, sim, drv = configured()
    cuv = u.cell_mv(dm(sim, u.CUV_TH))
    low = [32000] * 15 + [(cuv - 20) * 10]
    truth(sim, -2000, low)
    for _ in range(dm(sim, u.CUV_TH + 1, 2) * 33 // 1000 + 1):
        sim.advance(100000)
    assert sim.chg_fet and not sim.dsg_fet and sim.status_a & 0x04
    assert sim.passes(-3000) == 0 and sim.passes(3000) == 3000  # a charger still charges


def test_alert_and_status_registers_follow_a_trip():
    bus, sim, drv = configured()
    truth(sim, -1000000)
    sim.advance(100000)
    st = drv.read_status()
    assert st & 0x0800  # Battery Status SS
    regs = bytearray(8)
    bus.readfrom_mem_into(8, 0x02, regs)
    assert regs[1] & 0x80  # Safety Status A SCD (0x03)
    two = bytearray(2)
    bus.readfrom_mem_into(8, 0x62, two)
    assert (two[0] | two[1] << 8) & 0x4000 and sim.alert  # Alarm Status SSA, ALERT asserted
    one = bytearray(1)
    bus.readfrom_mem_into(8, 0x7F, one)
    assert one[0] & 0x40 and not one[0] & 0x05  # FET Status: ALRT_PIN, CHG and DSG off


def test_brownout_loses_the_ram_settings():
    bus, sim, drv = configured()
    sim.brownout()
    st = drv.read_status()
    assert st & 0x0008 and (st >> 8) & 3 == 1  # POR, FULLACCESS again
    assert bytes(drv.read_dm(0x9303, 1)) == b"\x05" and not sim.dsg_fet
    truth(sim, -12300)
    assert drv.read_cc2_ma() == -12300 // 2 * 10  # 1 mA userA and 1 mOhm CC Gain, scaled by the stale 10
    drv.configure(16, None, 150000, board=BOARD)  # re-configured and verified
    assert sim.dsg_fet and drv.read_cc2_ma() != 0


def test_crc_switched_on_at_boot_from_a_part_that_starts_without():
    board = dict(BOARD, afe=dict(BOARD["afe"], crc=True))
    bus, sim, drv = make()
    assert not sim.crc
    drv.configure(16, None, 150000, board=board)
    assert sim.crc and drv.crc and sim.dsg_fet
    truth(sim, -20000)
    assert drv.read_cc2_ma() == -20000  # reads in CRC framing
    sim.brownout()  # a POR goes back to the OTP's mode (no CRC)
    assert not sim.crc


def test_accumulated_charge_dastatus6():
    bus, sim, drv = configured()
    bq76952_setup.unseal(drv, BOARD["afe"]["keys"])
    truth(sim, -10000)
    for _ in range(3600):
        sim.advance(1000000)
    raw = bytes(drv.subcommand(0x0076, 12))
    q, frac, t = struct.unpack("<iII", raw)  # Flytrex BQ76952Lib's DASTATUS6 layout
    assert t == 3600
    assert (q + frac / 2**32) * 10 == pytest.approx(-10000, abs=0.01)  # userAh = 10 mAh (userA 10 mA)


def test_sleep_measures_only_every_voltage_time_and_shutdown_nacks():
    bus, sim, drv = make()
    sim.noise_mv = 0
    truth(sim, 0)
    sim.advance(100000)
    assert drv.read_status() & 0x8000  # SLEEP: Power Config[SLEEP] default on, current below 20 mA
    sim.set_truth([32000] * 16, 32000 * 16, 0, TS, 300)
    sim.advance(1000000)
    assert sim.reg[0x14] | sim.reg[0x15] << 8 == 3300  # not measured: the last value stays
    for _ in range(5):
        sim.advance(1000000)
    sim.set_truth([32000] * 16, 32000 * 16, 0, TS, 300)
    assert sim.reg[0x14] | sim.reg[0x15] << 8 == 3200  # 5 s Voltage Time: measured
    drv.subcommand(0x0010)
    sim.advance(100000)
    with pytest.raises(OSError):
        drv.read_status()
    sim.wake()
    assert drv.read_status() & 0x0008
