# Start-up: check board.json, build the HAL and the App, take the first sample; or say why not and
# leave the board at the REPL, where mpremote and `packwatch deploy` reach it. Imported only while
# starting: pwfw.app.main drops this module afterwards, so its code costs the running loop no heap.
from pwfw.compat import const
from pwfw.protocol import FrameWriter

BOOT_FILE = "boot.txt"  # consecutive start-up crashes and the last one's reason (docs/persistence.md)
_BOOT_TRIES = const(3)  # after this many in a row the board stays at the REPL instead of resetting again

# Board-file sections the firmware cannot start without (boards/board.schema.json requires more).
_REQUIRED = ("chemistry", "cells", "i2c", "afe", "current", "ntc")
_PIN_KEYS = ("alert_pin", "relay_pin", "led_pin")  # optional: an int, or null for none
_SOURCES = ("bq76952", "ina228")
_PORTS = ("rp2", "esp32", "sim")


def _one_of(values):
    return ", ".join([repr(v) for v in values])


def _int_in(src, path, v, lo, hi, unit=""):
    if type(v) is not int:
        raise ValueError("%s: %s: %r is not an integer" % (src, path, v))
    if v < lo or v > hi:
        raise ValueError("%s: %s: %r is out of range %d..%d%s" % (src, path, v, lo, hi, unit))


def _section(src, board, key):
    d = board[key]
    if not isinstance(d, dict):
        raise ValueError("%s: %s: %r is not an object" % (src, key, d))
    return d


def check_board(board, src="board.json"):
    """The firmware's own check of a board file, before anything is built from it: the required
    sections, chemistry, cell count, limits and their per-chemistry ranges, and pin types. It mirrors
    boards/board.schema.json (which the host checks in full) with the same kind of message:
    ValueError("board.json: chemistry: 'lpf' is not one of 'lfp', 'nmc'"). The order of paired
    limits is Config's check."""
    # imported here, not at the top: start() drops config_keys before it builds the App
    from pwfw.config_keys import _BOARD_FIELDS, CELLS_MAX, CELLS_MIN, CHEM_RANGES, CHEMISTRIES, _row

    if not isinstance(board, dict):
        raise ValueError("%s: %r is not an object" % (src, board))
    for k in _REQUIRED:
        if k not in board:
            raise ValueError("%s: %s: missing (required)" % (src, k))
    chem = board["chemistry"]
    if chem not in CHEMISTRIES:
        raise ValueError("%s: chemistry: %r is not one of %s" % (src, chem, _one_of(CHEMISTRIES)))
    _int_in(src, "cells", board["cells"], CELLS_MIN, CELLS_MAX)
    if board.get("port", "sim") not in _PORTS:
        raise ValueError("%s: port: %r is not one of %s" % (src, board["port"], _one_of(_PORTS)))
    if type(board.get("hal", "")) is not str:
        raise ValueError("%s: hal: %r is not of type 'string'" % (src, board["hal"]))
    i2c = _section(src, board, "i2c")
    for k in ("sda", "scl"):
        if k not in i2c:
            raise ValueError("%s: i2c.%s: missing (required)" % (src, k))
        _int_in(src, "i2c." + k, i2c[k], 0, 255)
    _section(src, board, "afe")
    cur = _section(src, board, "current")
    if cur.get("source") not in _SOURCES:
        raise ValueError("%s: current.source: %r is not one of %s" % (src, cur.get("source"), _one_of(_SOURCES)))
    ntc = _section(src, board, "ntc")
    pins = ntc.get("pins")
    if not isinstance(pins, list):
        raise ValueError("%s: ntc.pins: %r is not an array" % (src, pins))
    for i in range(len(pins)):
        _int_in(src, "ntc.pins[%d]" % i, pins[i], 0, 255)
    for k in _PIN_KEYS:
        v = board.get(k)
        if v is not None and type(v) is not int:
            raise ValueError("%s: %s: %r is not an integer or null" % (src, k, v))
        if v is not None:
            _int_in(src, k, v, 0, 255)
    if "failsafe" in board:
        from pwfw.afe_config import failsafe  # dropped with the AFE set-up modules (pwfw.pack)

        try:
            failsafe(board)
        except ValueError as e:
            raise ValueError("%s: %s" % (src, e))
        finally:
            import sys

            import pwfw

            sys.modules.pop("pwfw.afe_config", None)  # not held while the App is built (heap)
            try:
                delattr(pwfw, "afe_config")
            except (AttributeError, KeyError):
                pass
    for k in _BOARD_FIELDS:
        if k in board:
            r = _row(k)
            _int_in(src, k, board[k], r[3], r[4], " " + r[5])
    limits = board.get("limits")
    if limits is None:
        return
    if not isinstance(limits, dict):
        raise ValueError("%s: limits: %r is not an object" % (src, limits))
    for k in limits:
        r = _row(k)
        if r is None:
            raise ValueError("%s: limits.%s: unknown key" % (src, k))
        _int_in(src, "limits." + k, limits[k], r[3], r[4], " " + r[5])
        for c in CHEM_RANGES[chem]:
            if c[0] == k:
                _int_in(src, "limits." + k, limits[k], c[1], c[2], " %s for %s" % (r[5], chem))


def load_board(path="board.json"):
    """The board file, checked before anything is built from it (check_board, then the order of
    paired limits): ValueError names the file, the key, the value and what is allowed."""
    import json

    from pwfw.config import Config

    try:
        with open(path) as f:
            board = json.load(f)
    except OSError:
        raise ValueError("%s: missing or unreadable (copy one with packwatch deploy)" % path)
    except ValueError:  # MicroPython's and CPython's json both raise a ValueError subclass
        raise ValueError("%s: not valid JSON" % path)
    check_board(board, path)
    try:
        cfg = Config(board)
    except ValueError as e:
        msg = str(e)
        raise ValueError("%s: limits: %s" % (path, msg[12:] if msg.startswith("board file: ") else msg))
    check_current(board, cfg, path)
    return board


def check_current(board, cfg, src="board.json"):
    """The current sensor's full scale against the limits (pwfw.ina228.check_headroom: max_ma at
    least 1.5x the highest over-current limit) and, for an INA228, its shunt range (choose_range)."""
    from pwfw.ina228 import check_headroom, choose_range

    cur = board["current"]
    try:
        if "max_ma" in cur:
            check_headroom(cur["max_ma"], cfg.oc_chg_ma, cfg.oc_dsg_ma)
        if cur.get("source") == "ina228":
            choose_range(cur["shunt_uohm"], cur["max_ma"])
    except ValueError as e:
        raise ValueError("%s: %s" % (src, e))


def make_hal():
    """The HAL the board file names (`hal`, a module with a class Hal; default pwfw.hal_board, the
    real pins and buses): the firmware never names a simulator. The virtual board's boards/sim.json
    names hal_sim, which the virtual board puts on the module path."""
    board = load_board("board.json")
    name = board.get("hal", "pwfw.hal_board")
    try:
        mod = __import__(name, None, None, ("Hal",))
    except ImportError as e:
        raise ValueError("board.json: hal: cannot import %r (%s)" % (name, e))
    return mod.Hal(board)


class _Console:
    def __init__(self, hal):
        import sys

        self.hal = hal
        self.out = getattr(sys.stdout, "buffer", sys.stdout)

    def write(self, buf, n):
        if self.hal is not None:
            self.hal.serial_write(buf, n)
        else:
            self.out.write(memoryview(buf)[:n])  # not per sample: the slice every Python's stream takes


def say_err(why, hal=None):
    """One `#err` frame with cmd "boot" (docs/protocol.md): the host's decoder passes it and a person
    reads it. Through the HAL's serial port, or stdout (the same console) before there is a HAL."""
    o = FrameWriter(_Console(hal), 512)
    o.begin(b"err")
    o.str(b"cmd", "boot")
    o.str(b"error", why)
    o.end()


def _boot_fails():
    try:
        with open(BOOT_FILE) as f:
            parts = f.read().split("\n", 1)
        return int(parts[0]), parts[1] if len(parts) > 1 else ""
    except (OSError, ValueError):
        return 0, ""


def _set_boot_fails(n, why=""):
    try:
        if n:
            with open(BOOT_FILE, "w") as f:
                f.write("%d\n%s" % (n, why))
        else:
            import os

            os.remove(BOOT_FILE)
    except OSError:
        pass


def start(hal=None):
    """The App, started and through its first sample; or None after one `#err` frame, the board left
    at the REPL. A bad board file: no HAL (so no watchdog) is built and nothing is written. A crash
    while starting (App set-up or the first sample): reset, up to _BOOT_TRIES times in a row; from
    then on every boot stays at the REPL until `packwatch deploy` (or the user) removes BOOT_FILE."""
    from pwfw import app as A

    fails, why = _boot_fails()
    if fails >= _BOOT_TRIES:
        say_err("start-up crashed %d times in a row (last: %s); staying at the REPL: run packwatch deploy, "
                "or remove %s and reset" % (fails, why, BOOT_FILE), hal)
        return None
    if hal is None:
        try:
            hal = make_hal()
        except ValueError as e:
            say_err("%s; staying at the REPL: fix it with packwatch deploy" % (e,))
            return None
    # the board file's checks are done: their tables go back to the heap before the App is built
    # (App needs them again only for a moment, each on its own: the start-up peak stays low)
    import gc

    from pwfw.compat import unload

    unload("config_keys", "ina228")
    gc.collect()
    try:
        app = A.App(hal)
        app.step()  # the first sample is part of starting
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        fails += 1
        _set_boot_fails(fails, repr(e)[:200])
        if fails >= _BOOT_TRIES:
            say_err("start-up crashed %d times in a row (last: %r); staying at the REPL: run packwatch "
                    "deploy, or remove %s and reset" % (fails, e, BOOT_FILE), hal)
            return None
        A._crash(hal, e)
        return None
    if fails:
        _set_boot_fails(0)  # started: the count is of consecutive failures (no flash write otherwise)
    return app
