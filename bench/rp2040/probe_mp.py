# Runs under MicroPython, on the emulated RP2040 (hal_board, I2C and ADC to the simulated chips) or on
# the unix port (hal_sim's chips with one canned plant reply). Prints `ROW name us bytes` lines:
# microseconds (time.ticks_us: emulated time on the RP2040) and heap bytes (gc.mem_alloc deltas with
# the collector off; rp2 has no micropython.mem_total) per call. bench/rp2040/bench_rp2040.py runs it.
# The naive EKF's source is prepended by the runner (bench/soc/naive_ekf.py: not on the device).
import gc
import json
import sys
import time
from array import array

UNIX = sys.platform == "linux"


def per_call(fn, n, warm=20):
    for k in range(warm):
        fn(k)
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    t0 = time.ticks_us()
    for k in range(n):
        fn(k)
    dt = time.ticks_diff(time.ticks_us(), t0)
    a1 = gc.mem_alloc()
    gc.enable()
    t1 = time.ticks_us()
    for k in range(n):
        nop(k)
    dt0 = time.ticks_diff(time.ticks_us(), t1)
    return (dt - dt0) / n, (a1 - a0) / n


def nop(k):
    return k


def row(name, us, b):
    print("ROW %s %.1f %.2f" % (name, us, b))


# --- the estimator alone, as bench/soc/cost_mp.py drives it -----------------------------------------
from pwfw.soc import Estimator, load_model  # noqa: E402

with open("lib/pwfw/models/lfp.json") as f:  # where packwatch deploy (and the unix board) put it
    _j = json.load(f)
est = Estimator(load_model(_j), 16, 100000)
cells = array("h", [3300] * 16)


def soc16(k):
    cells[k & 15] = 3290 + (k % 23)
    est.update(100, -20000 + (k % 7), cells, 250)


row("soc16", *per_call(soc16, N_SOC))  # noqa: F821 (N_* set by the runner)
ekf = NaiveEkf(_j["soc_pct"], _j["ocv_discharge_v"], 0.0006, 0.0004, 30.0, 100.0)  # noqa: F821


def ekf1(k):
    ekf.step(0.1, -20.0 + (k % 7) * 0.001, 3.29 + (k % 23) * 0.001)


row("ekf1", *per_call(ekf1, N_EKF))  # noqa: F821
del est, ekf
gc.collect()

# --- the App, step by step -----------------------------------------------------------------------------
from pwfw.boot import load_board  # noqa: E402

board = load_board("board.json")
board["wdt_ms"] = 0  # a started rp2 watchdog cannot be stopped
if UNIX:
    import struct

    import hal_sim

    class Hal(hal_sim.Hal):  # as bench/hil/profile_fw.py: the chips, one canned step reply, no runner
        def __init__(self, board):
            self.board = board
            self._cause = "power"
            self._uid = "prof"
            self._t = 0
            self._relay = 1
            self.sim_heap = 0
            self._pipe()  # the per-step state _apply uses (the request buffers stay unused)
            self._chips(board, 1)
            # t_ms, i_ma, i_avg_ma (one current over the step), stack, flags, cells, temps
            body = struct.pack("<IiiIHBB", 0, -20000, -20000, 528000, 0, 16, 7)
            body += struct.pack("<16H7h", *([32800 + 7 * k for k in range(16)] + [250, 251, 252, 250, 250, 250, 300]))
            body += b"\0"
            self.pkt = struct.pack("<H", len(body)) + body
            self._out = open("/dev/null", "wb")

        def _step(self, ms):
            self._t += ms
            self._dt_us = ms * 1000  # the chip's protections run over the step (advance)
            self._apply(self.pkt)

        def serial_read(self):
            return -1

        def serial_write(self, buf, n):
            self._out.write(buf, n)
else:
    from pwfw.hal_board import Hal

gc.collect()
a0 = gc.mem_alloc()
hal = Hal(board)
from pwfw.app import App  # noqa: E402

app = App(hal)
gc.collect()
row("app_heap", 0, gc.mem_alloc() - a0)
T = [time.ticks_ms()]


def tms():
    return T[0]


def slp(ms):
    T[0] = time.ticks_add(T[0], ms)


if not UNIX:
    hal.ticks_ms = tms  # samples back to back: the App's clock advances by its sleeps only
    hal.sleep_ms = slp
app.store.due = lambda now, soc: False  # no flash writes inside the timed batches
for k in range(30):
    app.step()


def step(k):
    app.step()


class NoEst:
    soc_pm = 500
    sigma_pm = 10
    cap_mah = 100000

    def __init__(self, est):
        self.cell_soc_pm = est.cell_soc_pm

    def update(self, dt_ms, i_ma, cells_mv, t_dc, i_avg_ma=None):
        pass


class NoProt:
    alarm = 0
    _s = array("i", [0] * 65)  # App.sample reads the event ring's count (_s[64])

    def check(self, now, cells, stack, i_ma, temps):
        pass

    def pop_event(self):
        return None

    def relay_ok(self):
        return True

    def fets_ok(self):
        return 3  # both AFE FETs allowed


now = T[0]
row("report", *per_call(lambda k: app.report(now), N_REP))  # noqa: F821
row("cell_report", *per_call(lambda k: app.cell_report(now), N_REP))  # noqa: F821
# parts of "the rest of App.sample", each called alone on the App's state (the clock held: no
# accumulator read, no temperatures inside them); `part 1/s:` rows run once a second in the loop
P = app.pack
row("part: Pack.settle (charge counter + plausibility)", *per_call(lambda k: P.settle(), N_STEP))  # noqa: F821
row("part: Counter.sample", *per_call(lambda k: P.count.sample(100, True), N_STEP))  # noqa: F821
row("part: Plaus.check", *per_call(lambda k: P.plaus.check(now, None), N_STEP))  # noqa: F821
row("part: App.path", *per_call(lambda k: app.path(), N_STEP))  # noqa: F821
row("part: Pack.deep_uv", *per_call(lambda k: P.deep_uv(100), N_STEP))  # noqa: F821
row("part 1/s: Balancer.run", *per_call(lambda k: app.bal.run(now, P, app.est), N_REP))  # noqa: F821
row("part 1/s: accumulator read (DASTATUS6)", *per_call(lambda k: P.count._read_acc(now), N_REP))  # noqa: F821
for k in range(30):
    app.step()
t, b = per_call(step, N_STEP)  # noqa: F821
row("whole sample (App.step)", t, b)
cuts = [
    ("estimator (pwfw.soc update)", lambda: setattr(app, "est", NoEst(app.est))),
    ("protections (pwfw.protect check, events, relay)", lambda: setattr(app, "prot", NoProt())),
    ("AFE block read: cells, stack, CC2 (driver + I2C)", lambda: setattr(app.pack, "_read_afe", lambda: True)),
    ("current scaling (CC2 -> calibrated mA)", lambda: setattr(app.pack, "_read_current", lambda ok: None)),
    ("temperatures, 1 Hz: 3 NTC + 2 TS (per sample)", lambda: setattr(app.pack, "_read_temps", lambda: None)),
    ("reports: `rep` each 10th sample, `cell` each 100th (per sample)",
     lambda: (setattr(app, "report", lambda now: None), setattr(app, "cell_report", lambda now: None))),
    ("the rest of App.sample", lambda: setattr(app, "sample", lambda now: None)),
]
for name, cut in cuts:
    cut()
    t2, b2 = per_call(step, N_STEP)  # noqa: F821
    row(name, t - t2, b - b2)
    t, b = t2, b2
row("the rest of App.step (command poll, scheduling)", t, b)
print("DONE")
