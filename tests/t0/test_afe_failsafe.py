"""T0: supervision beyond the per-sample Battery Status (issue 12 items 4-7): ALERT wakes the loop for
an extra sample, a CRC board finds its part again after a brown-out (which brings it back in plain
I2C), every temperature lost or the current sensor at full scale opens the power path (the board
file decides what may stay on), and a deep under-voltage with no charger ends in SHUTDOWN.

The App runs on the register-level chip (hil/chips) behind FakeHal; expected values come from the
TRM (register bits), the simulated part's own state (FET outputs, comm mode, SHUTDOWN) or the truth
the test sets, never from the firmware."""
import json

import pytest

from hil.hal_fake import FakeHal
from tests.support import ROOT
from tests.t0.test_afe_supervision import Rig, evts, reps  # the App on the simulated chip, decoded

BOARD = json.loads((ROOT / "boards" / "sim.json").read_text())
FET_CHG, FET_DSG, AFE_CHG, AFE_DSG = 1, 2, 4, 8  # docs/protocol.md, power-path bits
F_AFE, F_AFE_CRC, F_CURRENT, F_NO_TEMP = 1, 2, 4, 64  # docs/protocol.md, fault bits
ALERT_PIN_CONFIG = 0x92FC  # TRM SLUUBY2B 13.3.2: Settings:Configuration:ALERT Pin Config
COMM_TYPE = 0x9239


def board(**over):
    b = json.loads(json.dumps(BOARD))
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(b.get(k), dict):
            b[k].update(v)
        else:
            b[k] = v
    return b


class SliceHal(FakeHal):
    """FakeHal whose sleep_ms waits in 1 ms slices and returns when ALERT asserts, as hal_board's does
    (in 10 ms slices); `at(t, fn)` runs fn once when the clock reaches t (a fault at a defined time)."""

    def __init__(self, b):
        FakeHal.__init__(self, b)
        self._at = []

    def at(self, t, fn):
        self._at.append((t, fn))

    def sleep_ms(self, ms):
        end = self.t + max(0, ms)
        while self.t < end:
            self.t += 1
            for t, fn in list(self._at):
                if self.t >= t:
                    self._at.remove((t, fn))
                    fn()
            self._apply()
            if self.alert():
                return


def dm(sim, addr):
    return sim.dm[addr - 0x9180]


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_alert_wakes_the_loop_and_the_protection_is_seen_before_the_next_sample():
    hal = SliceHal(BOARD)
    r = Rig(hal)
    r.run(2000)
    code = dm(hal.bq, ALERT_PIN_CONFIG)
    assert code & 3 == 2 and code & 0x80  # TRM: PIN_FXN 0b10 = ALERT, OPT5 (bit 7) = active low
    assert code & 0x08 == 0  # OPT1 = 0: hi-Z when not asserted (open drain, the board's pull-up)
    assert not hal.alert()
    t0 = hal.t + 37  # inside a 100 ms sample period: the next scheduled sample is 63 ms later

    def short():
        hal.set(i_ma=-1000000)  # 1000 A, past the board's SCD (400 A)
        hal.bq.advance(1000)  # the part's own time base: SCD trips within its us delay, ALERT latches

    hal.at(t0, short)
    frames = r.run(300)
    trip = evts(frames, "scd")
    assert [e["on"] for e in trip] == [1]
    assert trip[0]["ms"] - t0 <= 2  # the next scheduled sample would be 63 ms late
    # the ALERT read cleared the latch; SCD still latched in Safety Status A asserts it again at once
    # (TRM 6.6), and the loop does not spin on it: it went back to its 100 ms grid
    assert hal.t >= t0 + 200


def test_a_part_without_crc_on_a_crc_board_is_switched_to_crc_at_boot():
    b = board(afe={"crc": True})
    hal = FakeHal(b)
    hal.bq.otp_crc = False  # a stock part: OTP unprogrammed, it powers up in plain I2C
    hal.bq.por()
    assert not hal.bq.crc
    r = Rig(hal)
    frames = r.run(3000)
    assert [e["on"] for e in evts(frames, "afe_config")] == [0]
    assert hal.bq.crc and dm(hal.bq, COMM_TYPE) == 0x12  # TRM: Comm Type 0x12 = I2C fast with CRC
    assert hal.bq.chg_fet and hal.bq.dsg_fet and hal.relay_on is True
    assert not reps(frames)[-1]["fault"] & (F_AFE | F_AFE_CRC)


def test_a_crc_board_finds_its_part_again_after_a_brownout_in_plain_i2c():
    b = board(afe={"crc": True})
    hal = FakeHal(b)
    hal.bq.otp_crc = False
    hal.bq.por()
    r = Rig(hal)
    hal.set(cells=[3300] * 16, i_ma=-12300)
    before = reps(r.run(3000))
    assert hal.bq.crc
    hal.bq.brownout()  # back in plain I2C, RAM settings gone: no CRC read of ours can see its POR bit
    assert not hal.bq.crc and not hal.bq.fet_en
    after = r.run(4000)
    assert [e["on"] for e in evts(after, "afe_reset")] == [1]
    assert [e["on"] for e in evts(after, "afe_config")] == [0]
    assert hal.bq.crc and hal.bq.sec == 3 and hal.bq.dsg_fet and hal.relay_on is True
    t_reset = evts(after, "afe_reset")[0]["ms"]
    for rep in before + reps(after):
        if rep["i_ma"] is None:  # not measured at that sample: unknown (docs/protocol.md), never held
            assert rep["fault"] & F_CURRENT or rep["ms"] == t_reset, rep
        else:
            assert abs(rep["i_ma"] - -12300) <= 20, rep["i_ma"]  # never scaled with the part's default unit
    assert t_reset - before[-1]["ms"] <= 1000  # three samples of CRC errors, then at once
    assert not reps(after)[-1]["fault"] & (F_AFE | F_AFE_CRC)


def _lose_every_temperature(hal):
    for ch in range(3):
        hal.adc.open(ch)
    hal.set(temp_dc=2000)  # the AFE's TS inputs read 200 C: outside what a thermistor reports (None)


@pytest.mark.parametrize("keep_dsg", [False, True])
def test_every_temperature_lost_opens_the_power_path_with_a_named_fault(keep_dsg):
    hal = FakeHal(board(failsafe={"keep_dsg": keep_dsg}))
    r = Rig(hal)
    r.run(2000)
    assert hal.relay_on is True and hal.bq.chg_fet and hal.bq.dsg_fet
    hal.adc.open(0)  # one NTC lost: a fault, the others still watch
    frames = r.run(2000)
    assert hal.relay_on is True and not reps(frames)[-1]["fault"] & F_NO_TEMP
    _lose_every_temperature(hal)
    frames = r.run(2000)
    assert [e["on"] for e in evts(frames, "no_temp")] == [1]
    rep = reps(frames)[-1]
    assert rep["fault"] & F_NO_TEMP and all(t is None for t in rep["t_dc"])
    assert not hal.bq.chg_fet  # charging into a pack whose temperature nobody knows: never
    if keep_dsg:  # the board keeps the load powered
        assert hal.relay_on is True and hal.bq.dsg_fet and rep["fet"] & (FET_CHG | FET_DSG) == FET_DSG
    else:
        assert hal.relay_on is False and not hal.bq.dsg_fet and rep["fet"] == 0
    for ch in range(3):
        hal.adc.fault(ch, "ok")
    hal.set(temp_dc=250)
    frames = r.run(3000)
    assert [e["on"] for e in evts(frames, "no_temp")] == [0]
    assert hal.relay_on is True and hal.bq.chg_fet and hal.bq.dsg_fet


def test_the_coulomb_counter_at_full_scale_opens_the_path_at_the_next_sample():
    hal = FakeHal(BOARD)
    r = Rig(hal)
    r.run(2000)
    assert hal.relay_on is True
    hal.set(i_ma=-400000)  # 400 A: CC2 in 10 mA units saturates at 327.67 A (TRM: I2 userA)
    r.run(100)  # one sample: the firmware's own oc_dsg (500 ms delay) has not acted yet
    assert hal.relay_on is False and not hal.bq.dsg_fet
    frames = r.run(1000)
    assert reps(frames)[-1]["fault"] & F_CURRENT and reps(frames)[-1]["fet"] & (FET_CHG | FET_DSG) == 0


def test_a_setting_changed_under_the_firmware_is_reconfigured():
    hal = FakeHal(BOARD)
    r = Rig(hal)
    r.run(2000)
    assert not hal.bq.battery_status & 0x0004  # the board's policy: SLEEP not allowed (Power Config bit 8)
    k = 0x9234 - 0x9180
    hal.bq.dm[k + 1] |= 0x01  # a glitch sets Power Config[SLEEP]: Battery Status SLEEP_EN follows
    hal.bq._derive()
    hal.bq.advance(1000)  # the part's next step: its registers show it
    assert hal.bq.battery_status & 0x0004
    frames = r.run(1000)
    assert [e["on"] for e in evts(frames, "afe_reset")] == [1]
    assert [e["on"] for e in evts(frames, "afe_config")] == [0]
    assert not hal.bq.battery_status & 0x0004 and hal.bq.dm[k + 1] & 0x01 == 0


def test_a_deep_under_voltage_without_charger_saves_the_state_and_shuts_the_afe_down():
    hal = FakeHal(board(failsafe={"shutdown_mv": 2000, "shutdown_s": 5}))
    r = Rig(hal)
    r.run(2000)
    hal.set(cells=[3300] * 15 + [1900], i_ma=5000)  # charging: a charger is there, no shutdown
    frames = r.run(8000)
    assert evts(frames, "shutdown") == [] and not hal.bq._shut
    hal.set(i_ma=0)
    writes = r.app.store.writes
    frames = r.run(4000)
    assert evts(frames, "shutdown") == []  # not yet: 5 s without a charger
    frames = r.run(2000)
    e = evts(frames, "shutdown")
    assert [x["on"] for x in e] == [1] and abs(e[0]["val"] - 1900) <= 5  # the low cell, as the chip read it
    assert r.app.store.writes == writes + 1  # the state was saved before the part went down
    hal.bq.advance(1000)  # the part's next step: SEALED, it took SHUTDOWN because it came twice
    assert hal.bq.off and not hal.bq.chg_fet and not hal.bq.dsg_fet
    hal.bq.wake()  # a charger on LD: the part comes back through a POR (TRM), so settings are gone
    assert hal.bq.por_flag and not hal.bq.fet_en
