# The simulated BQ76952's host-controlled balancing (CB_ACTIVE_CELLS, subcommand 0x0083) and the
# driver's cb_write/cb_read against TI's documents: SLUAA81A (the subcommand, checksum and length
# at 0x60/0x61, available SEALED), SLUUBY2B 13.3.11 (Balancing Configuration bits, Cell Balance Max
# Cells), LibreSolar's bq769x2 driver (Max Cells default 1, data-memory addresses 0x9335..0x933A).
import pytest

from hil.chips.bq76952 import BQ76952Sim
from hil.chips.bus import SimI2C
from pwfw import bq76952 as bqmod

CELLS = [33000] * 16


def make():
    bus = SimI2C()
    sim = BQ76952Sim(cells=16, seed=3, shunt_uohm=500)
    bus.attach(8, sim)
    return bus, sim, bqmod.BQ76952(bus, 8, sleep=lambda ms: None)


def dm_write(drv, addr, v):
    drv.write_dm(addr, bytes([v & 0xFF]))


def test_por_defaults_one_cell_at_most_and_nothing_balancing():
    bus, sim, drv = make()
    assert bytes(drv.read_dm(0x933A, 1)) == b"\x01"  # Cell Balance Max Cells: 1 (LibreSolar: "only 1 by default")
    assert bytes(drv.read_dm(0x9335, 1)) == b"\x00"  # Balancing Configuration: no CB_NO_CMD, no CB_SLEEP
    assert drv.cb_read() == 0


def test_more_cells_than_max_cells_is_refused_then_taken_once_allowed():
    bus, sim, drv = make()
    drv.cb_write(0b101)
    assert drv.cb_read() == 0 and sim.cb_rejects == 1
    drv.cb_write(0b100)
    assert drv.cb_read() == 0b100
    dm_write(drv, 0x933A, 4)
    drv.cb_write(0x1111)
    assert drv.cb_read() == 0x1111 == sim.bal_mask
    drv.cb_write(0)
    assert drv.cb_read() == 0


def test_bad_checksum_or_length_changes_nothing():
    bus, sim, drv = make()
    drv.cb_write(1)
    bus.writeto_mem(8, 0x3E, bytes([0x83, 0x00, 0x02, 0x00]))
    bus.writeto_mem(8, 0x60, bytes([0x00, 6]))  # wrong checksum
    assert sim.bal_mask == 1
    s = ~(0x83 + 0x02) & 0xFF
    bus.writeto_mem(8, 0x60, bytes([s, 5]))  # right sum, wrong length
    assert sim.bal_mask == 1 and sim.cb_rejects == 2


def test_works_sealed_unless_cb_no_cmd():
    bus, sim, drv = make()
    sim.sec = 3  # SEALED: host balancing still works (SLUAA81A)
    drv.cb_write(2)
    assert drv.cb_read() == 2
    sim.sec = 1
    dm_write(drv, 0x9335, 0x10)  # CB_NO_CMD: host commands ignored
    drv.cb_write(4)
    assert sim.bal_mask == 2


def test_por_clears_the_mask():
    bus, sim, drv = make()
    drv.cb_write(8)
    sim.brownout()
    assert sim.bal_mask == 0 and drv.cb_read() == 0


@pytest.mark.parametrize("ts, die, stops", [((250, 250, 250), 300, False), ((650, 250, 250), 300, True),
                                            ((-250, 250, 250), 300, True), ((250, 250, 250), 750, True)])
def test_temperature_limits_end_balancing(ts, die, stops):
    # Cell Balance Min/Max Cell Temp -20/60 C, Max Internal Temp 70 C (defaults)
    bus, sim, drv = make()
    drv.subcommand(0x009A)  # SLEEP_DISABLE: at rest the part would sleep, and not balance in SLEEP
    drv.cb_write(1)
    sim.set_truth(CELLS, sum(CELLS), 0, ts, die)
    sim.advance(100000)
    assert (sim.bal_mask == 0) == stops


def test_no_balancing_in_sleep_without_cb_sleep():
    bus, sim, drv = make()
    drv.cb_write(1)
    sim.sleeping = True
    assert sim.bal_mask == 0
    sim.sleeping = False
    assert sim.bal_mask == 1
