"""T1: the NTC conversion from the part's table under the real MicroPython: each board file's read
path (RP2040-E11 correction with averaging; ESP32 read_uv against the measured rail) agrees with the
published table and allocates nothing per read."""
import json

from tests.support import ROOT

CODE = """
import gc, micropython, json
from hil.chips.adc import AdcHal, NtcAdcSim
from pwfw.ntc import Ntc, load_part
cfg = json.loads(%r)
sim = NtcAdcSim(cfg, port=%r, seed=5, rail_mv=3260)
hal = AdcHal(sim)
ntc = Ntc.from_board(cfg)
for t, r in load_part('b57330v2103'):
    if -30 <= t <= 80:
        sim.set_temp(0, 10 * t)
        got = ntc.read_dc(hal, 0)
        assert got is not None and abs(got - 10 * t) <= 3, (t, got)
sim.set_temp(0, 123)
if %r == 'esp32':
    # the simulated read_uv computes in floats (which allocate on this port): measure the firmware
    # on the integers it returned
    class Fixed:
        uv = sim.uv(0)
        rail = sim.rail_uv()
        def adc_uv(self, ch):
            return self.uv
        def rail_uv(self):
            return self.rail
    hal = Fixed()
    assert abs(ntc.read_dc(hal, 0) - 123) <= 3
def allocated(n=50):
    ntc.read_dc(hal, 0)
    gc.collect()
    m0 = micropython.mem_total()
    for _ in range(n):
        ntc.read_dc(hal, 0)
    return micropython.mem_total() - m0
print("ALLOC", allocated())
"""


def _cfg(name):
    return json.dumps(json.loads((ROOT / "boards" / (name + ".json")).read_text())["ntc"])


def test_pico_read_path_under_micropython(mp):
    # the simulated ADC (hil) allocates nothing per u16() either, so any allocation is the firmware's
    assert "ALLOC 0\n" in mp.run(CODE % (_cfg("pico"), "rp2", "rp2"))


def test_esp32_read_path_under_micropython(mp):
    assert "ALLOC 0\n" in mp.run(CODE % (_cfg("esp32"), "esp32", "esp32"))
