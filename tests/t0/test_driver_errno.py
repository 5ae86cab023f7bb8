"""T0: the drivers treat a bus error by what it is (an OSError), whatever errno the port gives it.

What each port raises for a device that does not answer: real rp2 EIO (5, pico-sdk's
PICO_ERROR_GENERIC mapped by machine_i2c.c), the rp2040js emulator ETIMEDOUT (110,
/work/shared/rp2040 README, checked on the emulated board), the unix virtual board's simulated bus
ENODEV (19, as esp32's I2C driver reports a NACK). A retry absorbs a single error on every one of
them, and a persistent one surfaces as that same OSError after the configured retries.
"""
import errno
from array import array

import pytest

from hil.chips.bq76952 import BQ76952Sim
from hil.chips.bus import SimI2C
from hil.chips.ina228 import INA228Sim
from pwfw.bq76952 import BQ76952
from pwfw.ina228 import INA228

PORT_ERRNOS = [errno.EIO, errno.ETIMEDOUT, errno.ENODEV]


class PortBus:
    """A SimI2C whose failures raise the errno a given port raises."""

    def __init__(self, bus, code):
        self.bus = bus
        self.code = code
        self.fail = 0

    def _call(self, name, *a):
        if self.fail:
            self.fail -= 1
            raise OSError(self.code)
        return getattr(self.bus, name)(*a)

    def readfrom_mem_into(self, addr, reg, buf):
        return self._call("readfrom_mem_into", addr, reg, buf)

    def writeto_mem(self, addr, reg, buf):
        return self._call("writeto_mem", addr, reg, buf)

    def readfrom_into(self, addr, buf):
        return self._call("readfrom_into", addr, buf)

    def writeto(self, addr, buf):
        return self._call("writeto", addr, buf)


@pytest.mark.parametrize("code", PORT_ERRNOS)
def test_bq76952_retries_then_raises_the_ports_own_error(code):
    bus = SimI2C()
    sim = BQ76952Sim(cells=16, crc=False, seed=7)
    sim.noise_mv = 0
    sim.busy_reads = 0
    bus.attach(0x08, sim)
    sim.set_truth([33000 + 10 * k for k in range(16)], sum(33000 + 10 * k for k in range(16)), 0, [250] * 3, 250)
    pb = PortBus(bus, code)
    drv = BQ76952(pb, crc=False, retries=2, sleep=lambda ms: None)
    cells = array("h", [0] * 16)
    pb.fail = 1
    drv.read_cells(cells)  # one error: retried, and the data is right
    assert list(cells) == [3300 + k for k in range(16)] and drv.nacks == 1
    pb.fail = 10
    with pytest.raises(OSError) as e:
        drv.read_cells(cells)
    assert e.value.args[0] == code


@pytest.mark.parametrize("code", PORT_ERRNOS)
def test_ina228_retries_then_raises_the_ports_own_error(code):
    bus = SimI2C()
    bus.attach(0x40, INA228Sim(500, seed=3))
    pb = PortBus(bus, code)
    drv = INA228(pb, shunt_uohm=500, max_ma=150000, retries=2)
    drv.configure()
    pb.fail = 1
    drv.read_current_ma()
    assert drv.nacks == 1
    pb.fail = 10
    with pytest.raises(OSError) as e:
        drv.read_current_ma()
    assert e.value.args[0] == code
