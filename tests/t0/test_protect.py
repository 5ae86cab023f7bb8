"""pwfw.protect under CPython: delays, hysteresis, latches, spike rejection, temperature windows,
relay decision and the event ring."""
from array import array

import pytest

from pwfw import protect as P
from pwfw.compat import ticks_add
from pwfw.config import Config

STEP = 100  # ms between samples, as the app's default sample period


class Rig:
    """A 16S LFP pack at rest, 3300 mV per cell, 25 °C, stack = sum of cells unless overridden."""

    def __init__(self, **limits):
        self.cfg = Config({"chemistry": "lfp", "cells": 16, "limits": limits})
        self.p = P.Protect(self.cfg)
        self.t = 12345
        self.cells = array("h", [3300] * 16)
        self.stack_off = 0
        self.stack = None
        self.i = 0
        self.temps = [250, 250, 250]

    def step(self):
        stack = sum(self.cells) + self.stack_off if self.stack is None else self.stack
        ch = self.p.check(self.t, self.cells, stack, self.i, self.temps)
        self.t = ticks_add(self.t, STEP)
        return ch

    def run(self, ms):
        for _ in range(ms // STEP):
            self.step()

    def until(self, bit, on, max_ms=20000):
        """Step until `bit` is `on`; returns the ms from the first sample to the changing one."""
        for k in range(max_ms // STEP + 1):
            ch = self.step()
            if bool(self.p.alarm >> bit & 1) == on:
                assert ch >> bit & 1, "change mask must report the bit"
                return k * STEP
        return None

    def events(self):
        out = []
        while True:
            e = self.p.pop_event()
            if e is None:
                return out
            out.append(e)


def _cell(r, v, k=3):
    r.cells[k] = v


def _i(r, v):
    r.i = v


def _temp(r, v, i):
    r.i = i
    r.temps[1] = v


# bit, key of the delay, set(rig) → (value, index) reported, value inside the hysteresis band, released
CASES = {
    "cell_ov": (P.CELL_OV, "cell_ov_ms", lambda r: _cell(r, 3651), lambda r: _cell(r, 3600), lambda r: _cell(r, 3599), (3651, 3)),
    "cell_uv": (P.CELL_UV, "cell_uv_ms", lambda r: _cell(r, 2499), lambda r: _cell(r, 2800), lambda r: _cell(r, 2801), (2499, 3)),
    "ot_chg_hot": (P.OT_CHG, "temp_ms", lambda r: _temp(r, 451, 2000), lambda r: _temp(r, 420, 2000), lambda r: _temp(r, 419, 2000), (451, 1)),
    "ot_chg_cold": (P.OT_CHG, "temp_ms", lambda r: _temp(r, -1, 2000), lambda r: _temp(r, 30, 2000), lambda r: _temp(r, 31, 2000), (-1, 1)),
    "ot_dsg_hot": (P.OT_DSG, "temp_ms", lambda r: _temp(r, 601, -2000), lambda r: _temp(r, 570, -2000), lambda r: _temp(r, 569, -2000), (601, 1)),
    "ot_dsg_cold": (P.OT_DSG, "temp_ms", lambda r: _temp(r, -201, -2000), lambda r: _temp(r, -170, -2000), lambda r: _temp(r, -169, -2000), (-201, 1)),
    "oc_chg": (P.OC_CHG, "oc_ms", lambda r: _i(r, 100001), lambda r: _i(r, 95000), lambda r: _i(r, 94999), (100001, None)),
    "oc_dsg": (P.OC_DSG, "oc_ms", lambda r: _i(r, -150001), lambda r: _i(r, -145000), lambda r: _i(r, -144999), (-150001, None)),
    "imbalance": (P.IMBALANCE, "imbal_ms", lambda r: _cell(r, 3199, 9), lambda r: _cell(r, 3220, 9), lambda r: _cell(r, 3221, 9), (101, 9)),
    "open_wire": (P.OPEN_WIRE, "ow_ms", lambda r: setattr(r, "stack_off", -501), lambda r: setattr(r, "stack_off", -400), lambda r: setattr(r, "stack_off", -399), (501, None)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_alarm_delay_hysteresis_release(name):
    bit, delay_key, on, band, off, (val, idx) = CASES[name]
    r = Rig(oc_latch=0, ow_latch=0)
    r.run(500)
    assert r.p.alarm == 0 and r.events() == []
    delay = getattr(r.cfg, delay_key)
    assert delay >= 500
    on(r)
    assert r.until(bit, True) == delay
    assert P.ALARM_NAMES[bit] in name
    ev = [e for e in r.events() if e[0] == bit]
    assert ev == [(bit, 1, val, idx)]
    band(r)  # inside the hysteresis band: stays set
    r.run(3 * r.cfg.release_ms)
    assert r.p.alarm >> bit & 1
    off(r)
    assert r.until(bit, False) == r.cfg.release_ms
    assert [e[:2] for e in r.events() if e[0] == bit] == [(bit, 0)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_interrupted_condition_restarts_delay(name):
    bit, delay_key, on, band, off, _ = CASES[name]
    r = Rig(oc_latch=0, ow_latch=0)
    delay = getattr(r.cfg, delay_key)
    on(r)
    r.run(delay - STEP)
    off(r)
    r.step()
    on(r)
    assert r.until(bit, True) == delay
    # a release interrupted by the condition coming back also starts over
    off(r)
    r.run(r.cfg.release_ms - STEP)
    on(r)
    r.step()
    off(r)
    assert r.until(bit, False) == r.cfg.release_ms


@pytest.mark.parametrize("bit,on_value", [(P.OC_CHG, 120000), (P.OC_DSG, -160000)])
def test_over_current_latches_until_clear(bit, on_value):
    r = Rig()
    r.i = on_value
    assert r.until(bit, True) == r.cfg.oc_ms
    r.i = 0
    r.run(10000)
    assert r.p.alarm >> bit & 1 and not r.p.relay_ok()
    r.events()
    assert r.p.clear() == 1 << bit
    assert r.p.alarm == 0 and r.p.relay_ok()
    assert r.events() == [(bit, 0, None, None)]
    assert r.step() == 0 and r.p.alarm == 0
    # clear while the over-current is still there: it sets again after the full delay
    r.i = on_value
    assert r.until(bit, True) == r.cfg.oc_ms
    r.p.clear()
    assert r.until(bit, True) == r.cfg.oc_ms


def test_open_wire_latches_until_clear_and_voltage_alarms_do_not():
    r = Rig()
    r.stack_off = 2000
    r.cells[0] = 3700  # OV too: auto-releases
    r.run(6000)
    assert r.p.alarm == (1 << P.OPEN_WIRE) | (1 << P.CELL_OV) | (1 << P.IMBALANCE)
    r.stack_off = 0
    r.cells[0] = 3300
    r.run(5000)
    assert r.p.alarm == 1 << P.OPEN_WIRE
    assert r.p.clear() == 1 << P.OPEN_WIRE
    assert r.p.alarm == 0
    assert r.p.clear() == 0  # nothing latched: no change, no event
    assert [e for e in r.events() if e[1] == 0 and e[3] is None and e[2] is None] == [(P.OPEN_WIRE, 0, None, None)]


def test_open_wire_reports_signed_difference():
    r = Rig(ow_ms=0)
    r.stack_off = 600  # stack higher than the sum of cells
    r.step()
    assert r.events() == [(P.OPEN_WIRE, 1, -600, None)]


@pytest.mark.parametrize("bit", range(8))
def test_relay_opens_for_every_alarm_but_imbalance_and_under_voltage(bit):
    # under-voltage: the AFE's DSG FET stops the discharge, the relay stays closed for a charger
    # (docs/hardware.md, "Deep under-voltage"); fets_ok still blocks discharge for it
    r = Rig()
    assert r.p.relay_ok()
    r.p.alarm = 1 << bit
    assert r.p.relay_ok() == (bit in (P.IMBALANCE, P.CELL_UV))
    if bit == P.CELL_UV:
        assert r.p.fets_ok() == 1  # charge only


def test_one_sample_glitch_is_not_an_alarm_even_with_zero_delays():
    r = Rig(cell_ov_ms=0, cell_uv_ms=0, imbal_ms=0, ow_ms=0)
    for glitch in (0, 7000, -5, 5001, 499):
        r.cells[6] = glitch
        assert r.step() == 0
        r.cells[6] = 3300
        r.run(2000)
        assert r.p.alarm == 0
    r.stack = 0  # stack reading glitch
    r.step()
    r.stack = None
    r.run(1000)
    assert r.p.alarm == 0
    # without rejection the same glitch alarms at once: proves the test can fail
    r2 = Rig(cell_ov_ms=0, cell_uv_ms=0, imbal_ms=0, ow_ms=0, spike_ms=0)
    r2.cells[6] = 0
    r2.step()
    assert r2.p.alarm & (1 << P.OPEN_WIRE)


def test_persistent_implausible_reading_is_an_open_wire_not_a_cell_alarm():
    # an open sense wire: its cell reads ~0 V, the cell above the sum of both, the stack adds up
    r = Rig(cell_uv_ms=0, cell_ov_ms=0, ow_ms=0, imbal_ms=0)
    r.cells[6] = 0
    r.cells[7] = 6600
    assert r.until(P.OPEN_WIRE, True) == r.cfg.spike_ms
    assert not r.p.alarm & ((1 << P.CELL_UV) | (1 << P.CELL_OV) | (1 << P.IMBALANCE))
    assert (P.OPEN_WIRE, 1, 0, 6) in r.events()
    assert not r.p.relay_ok()
    r.cells[6] = r.cells[7] = 3300  # wire fixed: latched until cleared
    r.run(3000)
    assert r.p.alarm & (1 << P.OPEN_WIRE)
    r.p.clear()
    r.run(3000)
    assert r.p.alarm == 0
    r2 = Rig(ow_ms=0)
    r2.cells[2] = 6000  # above any cell's voltage
    assert r2.until(P.OPEN_WIRE, True) == r2.cfg.spike_ms
    assert (P.OPEN_WIRE, 1, 6000, 2) in r2.events()


def test_glitch_holds_running_timers():
    r = Rig()
    r.cells[3] = 3700
    r.run(500)
    r.cells[4] = 0  # one implausible sample in the middle of the OV delay
    r.step()
    r.cells[4] = 3300
    assert r.until(P.CELL_OV, True) == r.cfg.cell_ov_ms - 600


def test_no_cells_or_missing_readings_do_not_crash_or_alarm():
    r = Rig(ow_ms=0, oc_ms=0, temp_ms=0)
    assert r.p.check(0, array("h"), None, None, None) == 0
    assert r.p.check(100, r.cells, None, None, [None, None]) == 0
    assert r.p.alarm == 0


def test_temperature_none_is_not_an_alarm():
    r = Rig(temp_ms=0)
    r.i = 5000
    r.temps = [None, None, None]
    r.run(3000)
    assert r.p.alarm == 0
    r.temps = [None, 460, None]
    r.step()
    assert r.events() == [(P.OT_CHG, 1, 460, 1)]
    r.temps = [None, None, None]  # the only hot sensor fails: nothing left to alarm on
    assert r.until(P.OT_CHG, False) == r.cfg.release_ms


@pytest.mark.parametrize(
    "temp,i_ma,expect",
    [
        (500, 2000, P.OT_CHG),  # 50 °C: too hot to charge...
        (500, -2000, None),  # ...fine to discharge
        (500, 400, None),  # at rest (|i| <= dir_ma): no temperature alarm
        (500, -400, None),
        (-100, 2000, P.OT_CHG),  # -10 °C: no charging...
        (-100, -2000, None),  # ...discharging is fine
        (-250, -2000, P.OT_DSG),
        (-250, 2000, P.OT_CHG),
        (650, -2000, P.OT_DSG),
        (650, 0, None),
        (250, 2000, None),
        (250, -2000, None),
    ],
)
def test_temperature_window_follows_current_direction(temp, i_ma, expect):
    r = Rig(temp_ms=0)
    r.temps = [250, temp, 250]
    r.i = i_ma
    r.run(3000)
    assert r.p.alarm == (0 if expect is None else 1 << expect)


def test_temperature_alarm_holds_until_back_inside_window():
    r = Rig(temp_ms=0)
    r.temps[0] = 500
    r.i = 3000
    r.step()
    r.i = 0  # the relay opened: charging stops, the pack is still hot
    r.run(5000)
    assert r.p.alarm == 1 << P.OT_CHG
    r.temps[0] = 410
    assert r.until(P.OT_CHG, False) == r.cfg.release_ms


def test_limits_changed_at_run_time_apply_on_next_sample():
    r = Rig()
    r.cells[0] = 3500
    r.run(6000)
    assert r.p.alarm == 1 << P.IMBALANCE
    r.cfg.set("cell_ov_mv", 3400)
    assert r.until(P.CELL_OV, True) == r.cfg.cell_ov_ms


def _toggle(r, n):
    """n alternating oc_chg set/clear events, one per sample."""
    for k in range(n):
        r.i = 200000 if k % 2 == 0 else 0
        r.step()


def test_event_ring_keeps_order_up_to_capacity():
    r = Rig(oc_latch=0, oc_ms=0, release_ms=0)
    _toggle(r, P.EV_N)
    assert r.p.ev_count == P.EV_N and r.p.ev_lost == 0
    ev = r.events()
    assert [e[:2] for e in ev] == [(P.OC_CHG, 1 - k % 2) for k in range(P.EV_N)]
    assert [e[2] for e in ev] == [200000 if k % 2 == 0 else 0 for k in range(P.EV_N)]
    assert r.p.pop_event() is None


def test_event_ring_overflow_drops_oldest_and_counts():
    r = Rig(oc_latch=0, oc_ms=0, release_ms=0)
    _toggle(r, P.EV_N + 6)
    assert r.p.ev_lost == 6 and r.p.ev_count == P.EV_N
    ev = r.events()
    assert [e[1] for e in ev] == [1 - k % 2 for k in range(6, P.EV_N + 6)]
    # interleaved push/pop keeps working after wrap-around
    _toggle(r, 3)
    assert [e[1] for e in r.events()] == [1, 0, 1]


def test_values_reported_on_release():
    r = Rig(cell_ov_ms=0, release_ms=0)
    r.cells[5] = 3700
    r.step()
    r.cells[5] = 3500
    r.step()
    assert r.events() == [(P.CELL_OV, 1, 3700, 5), (P.CELL_OV, 0, 3500, 5)]


def test_nmc_thresholds():
    cfg = Config({"chemistry": "nmc", "cells": 14})
    p = P.Protect(cfg)
    cells = array("h", [4150] * 14)
    t = 0
    for _ in range(30):
        p.check(t, cells, sum(cells), 0, [250])
        t += 100
    assert p.alarm == 0  # 4.15 V is fine for NMC, an OV for LFP
    cells[0] = 4201
    for _ in range(30):
        p.check(t, cells, sum(cells), 0, [250])
        t += 100
    assert p.alarm == 1 << P.CELL_OV


def test_ticks_wrap():
    r = Rig()
    r.t = (1 << 30) - 300  # ticks wrap at 2**30 in the middle of the delay
    r.cells[0] = 3700
    assert r.until(P.CELL_OV, True) == r.cfg.cell_ov_ms


# A value exactly at a limit: docs/configuration.md says every alarm is on while the value is *above* its
# high limit (below a low one), so at the limit itself it must never set; one step beyond sets (CASES).
AT_LIMIT = {
    "cell_ov": lambda r: _cell(r, 3650),
    "cell_uv": lambda r: _cell(r, 2500),
    "ot_chg_hot": lambda r: _temp(r, 450, 2000),
    "ot_chg_cold": lambda r: _temp(r, 0, 2000),
    "ot_dsg_hot": lambda r: _temp(r, 600, -2000),
    "ot_dsg_cold": lambda r: _temp(r, -200, -2000),
    "oc_chg": lambda r: _i(r, 100000),
    "oc_dsg": lambda r: _i(r, -150000),
    "imbalance": lambda r: _cell(r, 3200, 9),
    "open_wire": lambda r: setattr(r, "stack_off", -500),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_exactly_at_the_limit_never_sets(name):
    bit, delay_key, on, _, _, _ = CASES[name]
    r = Rig(oc_latch=0, ow_latch=0)
    AT_LIMIT[name](r)
    r.run(3 * getattr(r.cfg, delay_key) + 1000)
    assert not r.p.alarm >> bit & 1 and [e for e in r.events() if e[0] == bit] == []
    on(r)  # one unit beyond
    assert r.until(bit, True) == getattr(r.cfg, delay_key)


@pytest.mark.parametrize("bit,temp,i_edge", [(P.OT_CHG, 500, 500), (P.OT_DSG, 650, -500)])
def test_current_exactly_at_dir_ma_is_not_a_direction(bit, temp, i_edge):
    # docs/configuration.md: the pack charges while i_ma > dir_ma and discharges while i_ma < -dir_ma;
    # at exactly ±dir_ma (500 mA) it does neither, so a hot pack gets no temperature alarm
    r = Rig(temp_ms=0)
    r.temps = [250, temp, 250]
    r.i = i_edge
    r.run(3000)
    assert r.p.alarm == 0
    r.i = i_edge + (1 if i_edge > 0 else -1)
    assert r.until(bit, True) == 0
