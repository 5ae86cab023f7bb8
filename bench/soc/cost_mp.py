# Runs under MicroPython (unix port): time and heap bytes per update of pwfw.soc (16 cells) and of the
# naive float EKF (one cell). Prints one line per estimator: name, us/update, heap bytes/update.
import json
import time
from array import array

import micropython

from bench.soc.naive_ekf import NaiveEkf
from pwfw.soc import Estimator, load_model

N = 2000
with open("firmware/pwfw/models/lfp.json") as f:
    j = json.load(f)


def measure(name, fn):
    for k in range(200):
        fn(k)
    m0 = micropython.mem_total()
    t0 = time.ticks_us()
    for k in range(N):
        fn(k)
    dt = time.ticks_diff(time.ticks_us(), t0)
    m1 = micropython.mem_total()
    # the loop itself: same harness with a no-op
    m2 = micropython.mem_total()
    t2 = time.ticks_us()
    for k in range(N):
        nop(k)
    dt0 = time.ticks_diff(time.ticks_us(), t2)
    m3 = micropython.mem_total()
    print("COST %s %.2f %.1f" % (name, (dt - dt0) / N, ((m1 - m0) - (m3 - m2)) / N))


def nop(k):
    return k


est = Estimator(load_model(j), 16, 100000)
cells = array("h", [3300] * 16)


def soc16(k):
    cells[k & 15] = 3290 + (k % 23)
    est.update(100, -20000 + (k % 7), cells, 250)


ekf = NaiveEkf(j["soc_pct"], j["ocv_discharge_v"], 0.0006, 0.0004, 30.0, 100.0)


def ekf1(k):
    ekf.step(0.1, -20.0 + (k % 7) * 0.001, 3.29 + (k % 23) * 0.001)


measure("pwfw.soc_16_cells", soc16)
measure("naive_float_ekf_1_cell", ekf1)
