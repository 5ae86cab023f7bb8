"""pwfw.protect, pwfw.store and pwfw.config under the real MicroPython (unix port): the core
behaviours of the T0 tests, and no heap allocation per Protect.check() in steady state."""

RIG = """
from array import array
from pwfw.config import Config
from pwfw import protect as P
from pwfw.compat import ticks_add

class Rig:
    def __init__(self, limits=None):
        self.cfg = Config({"chemistry": "lfp", "cells": 16, "limits": limits or {}})
        self.p = P.Protect(self.cfg)
        self.t = (1 << 30) - 2000  # ticks wrap during the test
        self.cells = array("h", [3300] * 16)
        self.off = 0
        self.i = 0
        self.temps = [250, None, 250]

    def step(self):
        ch = self.p.check(self.t, self.cells, sum(self.cells) + self.off, self.i, self.temps)
        self.t = ticks_add(self.t, 100)
        return ch

    def until(self, bit, on, max_ms=20000):
        for k in range(max_ms // 100 + 1):
            ch = self.step()
            if (self.p.alarm >> bit & 1) == on:
                assert ch >> bit & 1
                return k * 100
        return None

    def events(self):
        out = []
        e = self.p.pop_event()
        while e is not None:
            out.append(e)
            e = self.p.pop_event()
        return out
"""


def test_alarms_delays_hysteresis_latch_under_micropython(mp):
    out = mp.run(RIG + """
r = Rig({"imbal_mv": 1000})
r.cells[3] = 3651
assert r.until(P.CELL_OV, 1) == 1000
assert r.events() == [(P.CELL_OV, 1, 3651, 3)], r.events()
r.cells[3] = 3600  # hysteresis band
for k in range(30): r.step()
assert r.p.alarm == 1 << P.CELL_OV
r.cells[3] = 3599
assert r.until(P.CELL_OV, 0) == 1000
assert r.events() == [(P.CELL_OV, 0, 3599, 3)]

r.cells[3] = 3300
r.i = -150001  # discharge over-current latches
assert r.until(P.OC_DSG, 1) == 500
assert not r.p.relay_ok()
r.i = 0
for k in range(50): r.step()
assert r.p.alarm == 1 << P.OC_DSG
r.events()
assert r.p.clear() == 1 << P.OC_DSG and r.p.relay_ok()
assert r.events() == [(P.OC_DSG, 0, None, None)]

r.off = -501  # open wire latches too
assert r.until(P.OPEN_WIRE, 1) == 1000
r.off = 0
for k in range(50): r.step()
assert r.p.alarm == 1 << P.OPEN_WIRE
r.p.clear()

r.temps = [250, 500, None]  # 50 C: alarm while charging only
r.i = -3000
for k in range(40): r.step()
assert r.p.alarm == 0
r.i = 3000
assert r.until(P.OT_CHG, 1) == 2000
r.temps = [None, None, None]  # sensors failed: not a temperature alarm
assert r.until(P.OT_CHG, 0) == 1000

r.cfg.set("imbal_mv", 100)
r.cells[9] = 3199  # imbalance does not open the relay
assert r.until(P.IMBALANCE, 1) == 5000
assert r.p.relay_ok()
print("OK")
""")
    assert "OK" in out


def test_spike_rejection_and_event_ring_under_micropython(mp):
    out = mp.run(RIG + """
r = Rig({"cell_ov_ms": 0, "cell_uv_ms": 0, "imbal_ms": 0, "ow_ms": 0})
for glitch in (0, 7000, 5001, 499):
    r.cells[6] = glitch
    assert r.step() == 0
    r.cells[6] = 3300
    for k in range(20): r.step()
    assert r.p.alarm == 0
r.cells[6] = 0
assert r.until(P.OPEN_WIRE, 1) == 1000  # persistent implausible reading: a sensing fault

r = Rig({"oc_latch": 0, "oc_ms": 0, "release_ms": 0})
for k in range(P.EV_N + 6):
    r.i = 200000 if k % 2 == 0 else 0
    r.step()
assert r.p.ev_lost == 6 and r.p.ev_count == P.EV_N
assert [e[1] for e in r.events()] == [1 - k % 2 for k in range(6, P.EV_N + 6)]
assert r.p.pop_event() is None
print("OK")
""")
    assert "OK" in out


def test_cold_windows_and_negative_readings_under_micropython(mp):
    # Below-zero limits and readings (LFP: no charging below 0 °C, no discharge below -20 °C; the values
    # and limits of the T0 CASES): pwfw.protect judges them in viper, whose 32-bit loads are
    # zero-extended on this 64-bit port, so a limit or reading read back without its sign would alarm
    # at once or never.
    out = mp.run(RIG + """
r = Rig()
r.temps = [250, -1, None]  # -0.1 °C while charging: ot_chg after temp_ms, the cold sensor reported
r.i = 2000
assert r.until(P.OT_CHG, 1) == r.cfg.temp_ms
assert r.events() == [(P.OT_CHG, 1, -1, 1)]
r.temps = [250, 30, None]  # inside the hysteresis band: held
for k in range(30): r.step()
assert r.p.alarm == 1 << P.OT_CHG
r.temps = [250, 31, None]
assert r.until(P.OT_CHG, 0) == r.cfg.release_ms
r.events()
r.temps = [250, -200, None]  # -20.0 °C while discharging: at the limit, no alarm
r.i = -2000
for k in range(30): r.step()
assert r.p.alarm == 0
r.temps = [-201, 250, None]
assert r.until(P.OT_DSG, 1) == r.cfg.temp_ms
assert r.events() == [(P.OT_DSG, 1, -201, 0)]
r.i = -400  # |i| <= dir_ma: at rest, no direction: the discharge window no longer applies
assert r.until(P.OT_DSG, 0) is None  # release needs the temperature back inside, whatever the current
r.temps = [-169, 250, None]
assert r.until(P.OT_DSG, 0) == r.cfg.release_ms
r.cells[5] = -5  # a negative cell reading (a glitch): implausible, never an under-voltage
assert r.step() == 0 and r.p.alarm == 0
print("OK")
""")
    assert "OK" in out


def test_check_allocates_nothing_in_steady_state(mp):
    # Steady states: all quiet; alarms set and held (condition persisting, latched); a sensor None.
    out = mp.run(RIG + """
import gc, micropython

def measure(r):
    for k in range(30):
        r.step()
    gc.collect()
    a = micropython.mem_total()
    for k in range(100):
        r.step()
    return micropython.mem_total() - a

def main():
    r = Rig()
    quiet = measure(r)
    r.cells[2] = 3700
    r.i = 120000
    r.temps = [500, None, 250]
    r.off = 3000
    alarmed = measure(r)
    assert r.p.alarm & 0x95 == 0x95, r.p.alarm
    # control: the measurement does see an allocation per step
    r.p.check = lambda *a: [0, 0]
    ctrl = measure(r)
    print("ALLOC", quiet, alarmed, ctrl)

main()
""")
    quiet, alarmed, ctrl = (int(x) for x in out.split("ALLOC")[1].split())
    assert ctrl > 0, "the measurement cannot see allocations"
    assert quiet == 0 and alarmed == 0, out


def test_config_validation_under_micropython(mp):
    out = mp.run("""
from pwfw.config import Config
c = Config({"chemistry": "nmc", "cells": 14, "limits": {"oc_ms": 300}})
assert (c.cell_ov_mv, c.cell_uv_mv, c.oc_ms) == (4200, 3000, 300)
before = c.as_dict()
for key, val, msg in (("nope", 1, "unknown key"), ("cell_ov_mv", 4501, "out of range 2000..4500"),
                      ("cell_ov_mv", "4100", "must be an integer"), ("cell_ov_mv", 4100.0, "must be an integer"),
                      ("oc_latch", True, "must be an integer"), ("cell_ov_mv", 2900, "must be below")):
    try:
        c.set(key, val)
    except ValueError as e:
        assert msg in str(e), str(e)
    else:
        raise AssertionError(key)
    assert c.as_dict() == before
c.set("cell_ov_mv", 4150)
assert c.cell_ov_mv == 4150 and c.overrides() == {"cell_ov_mv": 4150, "oc_ms": 300}
c.set("i_offset_ma", 100)
c.set("i_gain_ppm", -2500)
assert c.current_ma(150100) == 150000 - 375 and c.current_ma(-99900) == -100000 + 250
print("OK")
""")
    assert "OK" in out


def test_store_under_micropython(mp, tmp_path):
    out = mp.run("""
from pwfw import store as S
from pwfw.store import Store
s = Store()
assert s.load() is None and not s.corrupt
s.save({"soc_pm": 100, "v": "old"})
s.save({"soc_pm": 200, "v": "new"})
assert Store().load() == {"soc_pm": 200, "v": "new"}
data = open("state_b.bin", "rb").read()
for k in range(len(data)):
    for bad in (data[:k], data[:k] + bytes([data[k] ^ 0x10]) + data[k + 1:]):
        with open("state_b.bin", "wb") as f:
            f.write(bad)
        s = Store()
        assert s.load() == {"soc_pm": 100, "v": "old"}, k
        assert s.corrupt
open("state_a.bin", "wb").write(b"garbage")
s = Store()
assert s.load() is None and s.corrupt
open("state_a.bin", "wb").write(S.pack({"n": 1}, S.SEQ_MASK))
open("state_b.bin", "wb").write(S.pack({"n": 2}, 0))
s = Store()
assert s.load() == {"n": 2} and s.seq == 0
assert s.save({"n": 3}) and s.writes == 1
assert S.unpack(open("state_a.bin", "rb").read()) == (1, {"n": 3})
print("OK")
""", cwd=str(tmp_path))
    assert "OK" in out
