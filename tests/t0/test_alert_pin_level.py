# The simulated BQ76952's ALERT pin level (BQ76952Sim.alert_pin), which hal_sim and hal_fake read as
# pwfw.hal_board reads the real pin and the emulated RP2040 drives on GP6. Expected levels from ALERT
# Pin Config's bits (TRM SLUUBY2B, Settings:Configuration:ALERT Pin Config; docs/hardware.md
# "Supervision"): PIN_FXN (1:0) 0b10 = ALERT, else the pin is not driven; OPT5 (bit 7) 1 = active low;
# OPT1 (bit 3) 1 = driven to the inactive level while not asserted, 0 = hi-Z. The board pulls the net
# up (README wiring), so a pin that is not driven reads high.
import pytest

from hil.chips.bq76952 import BQ76952Sim
from hil.chips.bus import SimI2C
from pwfw import bq76952 as bqmod

ALERT_PIN_CONFIG = 0x92FC
CELLS = [33000] * 16


def part(code):
    bus = SimI2C()
    sim = BQ76952Sim(cells=16, seed=3, shunt_uohm=500)
    bus.attach(8, sim)
    drv = bqmod.BQ76952(bus, 8, sleep=lambda ms: None)
    if code is not None:
        drv.write_dm(ALERT_PIN_CONFIG, bytes((code,)))  # a part fresh from POR: FULL ACCESS
    sim.set_truth(CELLS, sum(CELLS), 0, (250, 250, 250), 300)
    return sim


def trip(sim):
    high = [48000] + CELLS[1:]  # 4.8 V on cell 1: past COV's default threshold
    sim.set_truth(high, sum(high), 0, (250, 250, 250), 300)
    for _ in range(30):
        sim.advance(100000)  # past COV's default delay
    assert sim.alert  # Alarm Status SSA & Alarm Enable (Default Alarm Mask 0xF800)


@pytest.mark.parametrize("code, idle, asserted", [
    (None, 1, 1),  # the POR default 0x00: pin not used, never driven (the pull-up)
    (0x82, 1, 0),  # the firmware's: ALERT, active low, hi-Z while not asserted (open drain)
    (0x8A, 1, 0),  # active low, driven high while not asserted
    (0x2A, 0, 1),  # TI's BQ769x2 example code: ALERT, active high, driven low while not asserted
    (0x22, 1, 1),  # active high but hi-Z while not asserted: the pull-up hides the assertion
])
def test_alert_pin_level_follows_the_pin_config(code, idle, asserted):
    sim = part(code)
    assert sim.alert_pin == idle
    trip(sim)
    assert sim.alert_pin == asserted


def test_a_part_in_shutdown_does_not_drive_alert():
    sim = part(0x2A)  # would drive the pin low while not asserted
    assert sim.alert_pin == 0
    sim.shutdown()
    assert sim.alert_pin == 1  # unpowered: the pin floats, the pull-up holds it high
