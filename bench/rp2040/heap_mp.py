# Who holds the firmware's live heap: runs under MicroPython (the emulated RP2040 with hal_board, or the
# unix port with hil.hal_fake's chips) and prints `HEAP name bytes` lines, each a gc.mem_alloc() delta
# after a collection. Modules are imported leaves first, so each row is that module's own code and
# globals (as .mpy: bytecode, and on rp2 the native code, live in the heap). Then the App's parts.
# bench/rp2040/bench_rp2040.py runs it on both ports (`make bench`); docs/architecture.md has the table.
import gc
import sys

UNIX = sys.platform == "linux"
A = [0, 0]  # exists before the first mem_alloc(): a new global would grow this module's dict


def mark():
    gc.collect()
    A[1] = gc.mem_alloc()
    d = A[1] - A[0]
    A[0] = A[1]
    return d


def row(name, b):
    print("HEAP %s %d" % (name, b))


import json  # noqa: E402

if UNIX:
    from hil.hal_fake import FakeHal  # noqa: F401
mark()
for m in ("pwfw", "pwfw.compat", "pwfw.protocol", "pwfw.config", "pwfw.protect", "pwfw.store",
          "pwfw.bq76952", "pwfw.ina228", "pwfw.ntc", "pwfw.plaus", "pwfw.pack", "pwfw.soc",
          "pwfw.balance", "pwfw.app"):
    try:
        __import__(m)
    except ImportError:  # a module this firmware version does not have
        continue
    row("module " + m, mark())
# loaded on demand and dropped again (pwfw.compat.call / unload): each loaded alone, counted, dropped
# (their interned names stay: the second figure is what a load costs while it is held)
for m in ("config_keys", "store_io", "app_rare", "soc_model", "limits", "cal", "commands"):
    try:
        __import__("pwfw." + m)
    except ImportError:
        continue
    row("module pwfw.%s (on demand, while held)" % m, mark())
    from pwfw.compat import unload  # noqa: E402

    unload(m)
    mark()
from pwfw.boot import load_board  # noqa: E402

row("module pwfw.boot (dropped after start-up)", mark())
board = load_board("board.json")
board["wdt_ms"] = 0  # a started rp2 watchdog cannot be stopped
if UNIX:
    hal = FakeHal(board, keep_tx=False)
    hal.set(cells=[3300 + k for k in range(16)], i_ma=-20000)
else:
    from pwfw.hal_board import Hal

    hal = Hal(board)
mark()
from pwfw.app import App  # noqa: E402

app = App(hal)
total = mark()
row("App(hal): objects", total)
parts = [("estimator (tables, state)", "est"), ("pack (drivers, buffers)", "pack"), ("protections", "prot"),
         ("config", "cfg"), ("store", "store"), ("frame writer + line reader", "out"), ("balancer", "bal")]
for name, attr in parts:
    if not hasattr(app, attr):
        continue
    setattr(app, attr, None)
    if attr == "out":
        app.lines = None
    row("  " + name, -mark())
print("DONE")
