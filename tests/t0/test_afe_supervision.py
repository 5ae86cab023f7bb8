"""T0: the firmware configures the BQ76952 at boot with the whole plan and proves it, keeps the power
path open until then (fail safe), supervises the part every sample (a POR is noticed within one sample
and no current is ever reported with the unit the part lost), reports the AFE's latched protections
and FET state, and its own alarms turn the AFE's FETs off. The App runs on the register-level chip
(hil/chips) behind FakeHal; expected values come from the simulated part's truth (the current the
test set, the chip's own FET outputs and data memory), never from the firmware."""
import json

import pytest

from hil.hal_fake import FakeHal
from packwatch.protocol import Decoder
from pwfw import bq76952_units as u
from pwfw.app import App
from tests.support import ROOT

BOARD = json.loads((ROOT / "boards" / "sim.json").read_text())
FET_CHG, FET_DSG, AFE_CHG, AFE_DSG = 1, 2, 4, 8  # docs/protocol.md, power-path bits
F_AFE = 1


class Rig:
    def __init__(self, hal):
        self.hal = hal
        self.app = App(hal)
        self.dec = Decoder()
        self.frames = []

    def run(self, ms):
        end = self.hal.t + ms
        n = len(self.frames)
        while self.hal.t < end:
            self.app.step()
        self.frames += self.dec.feed(bytes(self.hal.tx))
        self.hal.tx.clear()
        return self.frames[n:]


def reps(frames):
    return [f for t, f in frames if t == "rep"]


def evts(frames, name=None):
    return [f for t, f in frames if t == "evt" and (name is None or f["name"] == name)]


def dm(sim, addr, n=1):
    return bytes(sim.dm[addr - 0x9180: addr - 0x9180 + n])


@pytest.fixture
def rig(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return lambda hal=None: Rig(hal or FakeHal(BOARD))


def test_a_configuration_that_fails_at_boot_keeps_the_power_path_open_and_names_the_setting(rig):
    hal = FakeHal(BOARD)
    sim = hal.bq
    real = sim._commit

    def drop_cov():  # a part that loses the COV threshold write
        r = sim.reg
        if r[0x3E] | (r[0x3F] << 8) != u.COV_TH:
            real()

    sim._commit = drop_cov
    r = rig(hal)
    frames = r.run(3000)
    bad = evts(frames, "afe_config")
    assert [(e["on"], e["setting"]) for e in bad] == [(1, "cov")]  # once, not once per retry
    for rep in reps(frames):
        assert rep["fault"] & F_AFE and rep["fet"] == 0
    assert hal.relay_on is False and not sim.chg_fet and not sim.dsg_fet
    sim._commit = real  # the part takes the write again: the next try (every 5 s) succeeds
    frames = r.run(6000)
    good = evts(frames, "afe_config")
    assert [e["on"] for e in good] == [0]
    assert dm(sim, u.COV_TH) == bytes([u.cell_code(3750)])  # the LFP default (afe_config), now in the part
    assert hal.relay_on is True and sim.chg_fet and sim.dsg_fet and sim.sec == 3
    last = reps(frames)[-1]
    assert not last["fault"] & F_AFE and last["fet"] == FET_CHG | FET_DSG | AFE_CHG | AFE_DSG


def test_a_brownout_mid_run_is_reconfigured_and_no_report_carries_a_stale_current(rig):
    r = rig()
    hal = r.hal
    hal.set(cells=[3300] * 16, i_ma=-12300)
    before = reps(r.run(3000))
    hal.bq.brownout()  # RAM settings gone: userA 1 mA and the 1 mOhm CC Gain (reads -61.5 A with the old unit)
    after = r.run(3000)
    for rep in before + reps(after):
        assert abs(rep["i_ma"] - -12300) <= 20, rep["i_ma"]  # the truth, 10 mA per count
    assert [e["on"] for e in evts(after, "afe_reset")] == [1]
    assert [e["on"] for e in evts(after, "afe_config")] == [0]
    plan = u.plan(BOARD, 16, 0xFFFF)
    sim = hal.bq
    assert sim.sec == 3  # sealed again: read data memory the way the part's own state holds it
    for name, addr, data in plan:
        assert dm(sim, addr, len(data)) == data, name
    assert hal.relay_on is True and sim.dsg_fet
    # the reset was seen at the first sample after it: the reset event and the reconfiguration have its `ms`
    t_reset = evts(after, "afe_reset")[0]["ms"]
    assert t_reset - before[-1]["ms"] <= 1000 and t_reset == evts(after, "afe_config")[0]["ms"]


def test_the_afes_latched_protection_and_fet_state_are_reported_and_named(rig):
    r = rig()
    hal = r.hal
    r.run(1500)
    hal.set(i_ma=-1000000)  # 1000 A: past the board's SCD (400 A)
    hal.bq.advance(100000)  # the part's own time base: SCD trips within its µs delay
    assert hal.bq.status_a & u.SCD and not hal.bq.dsg_fet and not hal.bq.chg_fet
    frames = r.run(200)
    trip = evts(frames, "scd")
    assert [e["on"] for e in trip] == [1]
    # CC2 read full scale in that sample: the firmware's own over-current latched at once (pwfw.protect)
    assert [e["on"] for e in evts(frames, "oc_dsg")] == [1]
    hal.set(i_ma=0)
    frames = r.run(1000)
    rep = reps(frames)[-1]
    assert rep["prot"] == 1 << 5  # `prot` bit 5: scd (docs/protocol.md)
    assert rep["fet"] & (AFE_CHG | AFE_DSG) == 0  # the part's drivers are off
    r.app.prot.clear()
    hal.bq.advance(6000000)  # SCD Recovery Time (5 s) at rest: the part releases it
    frames = r.run(2000)  # (the FETs allowed again after the clear: FET Status is read once a second)
    assert [e["on"] for e in evts(frames, "scd")] == [0]
    assert reps(frames)[-1]["prot"] == 0 and reps(frames)[-1]["fet"] & (AFE_CHG | AFE_DSG) == AFE_CHG | AFE_DSG


def test_the_firmwares_own_alarm_turns_the_afes_fet_off_by_direction(rig):
    # the end-of-charge stop (chg_stop_dmv, pwfw.balance) off: it would hold CHG off until its next
    # window; the protection's own release is tested here (tests/t0/test_balance.py tests the stop)
    board = json.loads(json.dumps(BOARD))
    board.setdefault("limits", {})["chg_stop_dmv"] = 0
    r = rig(FakeHal(board))
    hal = r.hal
    r.run(1500)
    assert hal.bq.chg_fet and hal.bq.dsg_fet
    hal.set(cells=[3300] * 15 + [3700])  # above the LFP cell_ov (3650 mV), below the AFE's COV (3750 mV)
    frames = r.run(5000)
    assert [e["on"] for e in evts(frames, "cell_ov")] == [1]
    assert hal.bq.status_a == 0  # the AFE did not trip: the firmware acted
    assert not hal.bq.chg_fet and hal.bq.dsg_fet  # charging stopped; discharging still allowed (CHG_PCHG_OFF)
    assert reps(frames)[-1]["fet"] & (AFE_CHG | AFE_DSG) == AFE_DSG
    hal.set(cells=[3300] * 16)
    frames = r.run(10000)
    assert [e["on"] for e in evts(frames, "cell_ov")] == [0]
    assert hal.bq.chg_fet and hal.bq.dsg_fet


@pytest.mark.parametrize("stop_ms", [3000, 6000, 8000, 12000])
def test_a_bus_that_nacks_at_boot_then_answers_raises_no_crc_fault_on_a_plain_board(rig, stop_ms):
    # the set-up tries the other framing once when the part does not answer (a CRC board's part back
    # in plain I2C after a POR); a bus that answers in neither is not a framing, and the driver must
    # keep the board's: a plain board never reads its part with CRC, so it never sees a CRC error
    assert not BOARD["afe"].get("crc")
    hal = FakeHal(BOARD)
    hal.i2c.fail_next(BOARD["afe"].get("addr", 8), 10 ** 9)  # NACKs from power-up ...
    r = rig(hal)
    frames = r.run(stop_ms)
    hal.i2c.fail_next(BOARD["afe"].get("addr", 8), 0)  # ... until here, whichever retry it falls between
    frames += r.run(8000)
    assert not evts(frames, "afe_crc")
    assert not any(rep["fault"] & 2 for rep in reps(frames))  # docs/protocol.md: bit 1 afe_crc
    assert [e["on"] for e in evts(frames, "afe_config")][-1] == 0 and hal.bq.chg_fet and hal.bq.dsg_fet
