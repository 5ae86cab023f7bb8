"""T1: the drivers and the simulated chips under the real MicroPython unix port (a board's 96 KB heap
plus the simulated chips' allowance, as on the virtual board), including that the per-sample reads
allocate nothing."""
import pytest

# the rig and the chip simulations get this on top of the firmware's 96 KB (they measure ~56 KB here;
# the virtual board needs more for its process: packwatch.vboard.board.SIM_HEAP_K)
SIM_HEAP_K = 64

HEAP = "%dK" % (96 + SIM_HEAP_K)  # the chips are not the firmware's: they get the virtual board's reserve

SETUP = """
import gc, micropython
from array import array
from hil.chips.bus import SimI2C
from hil.chips.bq76952 import BQ76952Sim
from hil.chips.ina228 import INA228Sim
from hil.chips.adc import NtcAdcSim
from pwfw import bq76952 as bqmod
from pwfw.bq76952 import BQ76952
from pwfw.ina228 import INA228
from pwfw.ntc import Ntc

def bq(crc, cells=16):
    bus = SimI2C()
    sim = BQ76952Sim(cells=cells, crc=crc, seed=5)
    sim.noise_mv = 0
    bus.attach(8, sim)
    return bus, sim, BQ76952(bus, crc=crc, sleep=lambda ms: None)

def allocated(fn, arg, n=100):
    fn(arg)
    gc.collect()
    m0 = micropython.mem_total()
    for _ in range(n):
        fn(arg)
    return micropython.mem_total() - m0
"""


@pytest.mark.parametrize("crc", ["False", "True"])
def test_bq_round_trip_under_micropython(mp, crc):
    out = mp.run(SETUP + """
crc = %s
bus, sim, d = bq(crc)
d.configure(16)
assert sim.vcell_mode == 0xFFFF, hex(sim.vcell_mode)
r = d.subcommand(bqmod.DEVICE_NUMBER, 2)
assert r[0] | (r[1] << 8) == 0x7695
cells = [30000 + 997 * k for k in range(16)]
sim.set_truth(cells, sum(cells), -1234, (250, -100, 600), 333)
out = array('h', [0] * 16)
d.read_cells(out)
assert list(out) == [(c + 5) // 10 for c in cells], list(out)
assert d.read_stack_mv() == (sum(cells) + 50) // 100 * 10
assert d.read_cc2_ma() == -1234
assert [d.read_ts_dk(n) - 2732 for n in (1, 2, 3)] == [250, -100, 600]
assert d.read_int_dk() - 2732 == 333
frame = array('h', [0] * 16)
d.read_frame(frame)
assert frame == out and d.stack_mv == (sum(cells) + 50) // 100 * 10 and d.cc2_ma == -1234
bus.fail_next(8, 2, 'nack')
d.read_cells(out)
assert d.nacks == 2
bus.fail_next(8, 3, 'timeout')
try:
    d.read_cells(out)
    raise AssertionError('no OSError')
except OSError as e:
    assert e.args[0] == 110
assert d.nacks == 5
if crc:
    sim.corrupt_next(1)
    d.read_cells(out)
    assert d.crc_errors == 1 and list(out) == [(c + 5) // 10 for c in cells]
    sim.corrupt_next(3)
    try:
        d.read_cells(out)
        raise AssertionError('no ValueError')
    except ValueError:
        pass
    assert d.crc_errors == 4
print('OK')
""" % crc, heap=HEAP)
    assert "OK" in out


@pytest.mark.parametrize("crc", ["False", "True"])
def test_bq_14s_under_micropython(mp, crc):
    out = mp.run(SETUP + """
bus, sim, d = bq(%s, 14)
d.configure(14)
assert sim.vcell_mode == 0x9FFF, hex(sim.vcell_mode)
cells = [31000 + 211 * k for k in range(14)]
sim.set_truth(cells, sum(cells), 0, (250, 250, 250), 300)
out = array('h', [0] * 14)
d.read_cells(out)
assert list(out) == [(c + 5) // 10 for c in cells], list(out)
print('OK')
""" % crc, heap=HEAP)
    assert "OK" in out


@pytest.mark.parametrize("crc", ["False", "True"])
def test_steady_state_reads_allocate_nothing(mp, crc):
    out = mp.run(SETUP + """
bus, sim, d = bq(%s)
d.configure(16)
cells = [33000 + 10 * k for k in range(16)]
sim.set_truth(cells, sum(cells), 500, (250, 250, 250), 300)
out = array('h', [0] * 16)
a_cells = allocated(d.read_cells, out) + allocated(d.read_frame, out)
a_ts = allocated(d.read_ts_dk, 1)
ibus = SimI2C()
isim = INA228Sim(500, seed=2)
ibus.attach(0x40, isim)
ina = INA228(ibus, 0x40, 500, 150000)
ina.configure()
isim.set_truth(-40000, 512000, 300, 100)
a_i = allocated(lambda _: ina.read_current_ma(), 0)
a_v = allocated(lambda _: ina.read_vbus_mv(), 0)
ntc = Ntc(10000, 10000, 3435, False)
a_n = allocated(ntc.dc_from_u16, 30000)
a_u = allocated(ntc.dc_from_uv, 1500000)
print('ALLOC', a_cells, a_ts, a_i, a_v, a_n, a_u)
assert (a_cells, a_ts, a_i, a_v, a_n, a_u) == (0, 0, 0, 0, 0, 0)
assert list(out) == [(c + 5) // 10 for c in cells]
assert abs(ina.read_current_ma() + 40000) <= 2
""" % crc, heap=HEAP)
    assert "ALLOC 0 0 0 0 0 0" in out


def test_ina_and_ntc_under_micropython(mp):
    out = mp.run(SETUP + """
bus = SimI2C()
sim = INA228Sim(500, seed=4)
sim.noise_nv = 0
bus.attach(0x40, sim)
d = INA228(bus, 0x40, 500, 150000)
d.configure()
assert sim.regs[2] == 1875
for i in (-150000, -12345, 0, 1, 99999, 150000):
    sim.set_truth(i, 512345, 421, 1000)
    assert abs(d.read_current_ma() - i) <= 1, (i, d.read_current_ma())
    assert abs(d.read_vbus_mv() - 51234) <= 1
    assert abs(d.read_die_dc() - 421) <= 1
want = -150000 - 12345 + 1 + 99999 + 150000
assert abs(d.read_charge_mas() - want) <= 6, d.read_charge_mas()
cfg = {'pins': [0, 1], 'r_fixed': 10000, 'r25': 10000, 'beta': 3435, 'ntc_on_top': False,
       'adc_bits': 12, 'vref_mv': 3300, 'atten_db': 11}
for port in ('rp2', 'esp32'):
    adc = NtcAdcSim(cfg, port=port, seed=9)
    adc.noise_lsb16 = 0
    adc.noise_uv = 0
    adc.e11 = False  # the conversion alone here; RP2040-E11 in tests/t1/test_ntc_mp.py
    ntc = Ntc.from_board(cfg)
    lo = -400 if port == 'rp2' else 0  # 10k/10k at 3.3 V leaves the ESP32's 2450 mV below ~0 °C
    for dc in range(lo, 1251, 25):
        adc.set_temp(0, dc)
        uv = adc.uv(0)
        got = ntc.dc_from_uv(uv) if uv is not None else ntc.dc_from_u16(adc.u16(0))
        assert got is not None and abs(got - dc) <= 5, (port, dc, got)
    adc.open(1)
    assert ntc.dc_from_u16(adc.u16(1)) is None
    adc.short(1)
    assert ntc.dc_from_u16(adc.u16(1)) is None
print('OK')
""", heap=HEAP)
    assert "OK" in out


NOISY_CHIPS = """
from hil.chips.bq76952 import BQ76952Sim
from hil.chips.adc import NtcAdcSim
s = BQ76952Sim(seed=9)
s.offset_mv[2] = -3
s.offset_mv[5] = 4
cfg = {'pins': [0, 1, 2], 'r_fixed': 10000, 'r25': 10000, 'beta': 3435, 'ntc_on_top': False,
       'adc_bits': 12, 'vref_mv': 3300}
adc = NtcAdcSim(cfg, seed=3)
acc = 0
for t in range(300):
    cells = [30000 + 37 * k + (t * 13) % 97 for k in range(16)]
    if t == 150:
        s.open_wire(5)
    s.set_truth(cells, sum(cells), -1234 + t, (250, 260, 270), 300)
    adc.set_temp(t % 3, 200 + t // 7)
    acc = (acc * 31 + sum(s.reg[i] * (i + 1) for i in range(0x14, 0x3C)) + adc.u16(t % 3)) % 1000000007
print('SUM', acc)
"""


def test_noisy_chips_agree_between_cpython_and_micropython(mp):
    # the chips' per-sample path runs native/viper code on MicroPython and plain Python on CPython:
    # same seed, same registers and ADC codes (noise included)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(NOISY_CHIPS, {})
    want = buf.getvalue().strip()
    assert want.startswith("SUM ")
    assert want in mp.run(NOISY_CHIPS, heap=HEAP)
