# The App's rare paths: start-up (the model's path, the reset cause, the saved state, the current
# calibration) and the `hdr` message. pwfw.app loads this module for each use and drops it after
# (pwfw.compat.call): the loop does not hold their code (docs/architecture.md, Memory).
import gc

from pwfw import FORMAT, VERSION
from pwfw.app import RESET_FILE
from pwfw.compat import call, unload
from pwfw.pack import F_CAL, F_STORE


def model_path(chem):
    import pwfw

    d = pwfw.__file__.rsplit("/", 1)[0] if "/" in pwfw.__file__ else "."
    return d + "/models/" + chem + ".json"


def start(app):
    """What the App needs from before this boot: why it reset, the saved state, the calibration."""
    app.reset_cause = _reset_cause(app)
    _restore(app)
    _load_cal(app)


def _reset_cause(app):
    # a crash leaves a marker before the reset; otherwise the HAL knows
    try:
        with open(RESET_FILE) as f:
            cause = f.read().strip()
        import os

        os.remove(RESET_FILE)
        return cause
    except OSError:
        return app.hal.reset_cause()


def _restore(app):
    gc.collect()  # the record is read at the heap's high-water mark of the start-up
    try:
        d = app.store.load()
    except MemoryError:  # the record code did not fit: start as on a first boot, flagged (the slots stay)
        d = None
        app.pack.fault |= F_STORE
    if app.store.corrupt and d is None:  # a torn slot beside a good one is the design working
        app.pack.fault |= F_STORE
    if d:
        b = d.get("boots", 0)
        app.boots = b if type(b) is int and b >= 0 else 0
        try:
            if app.cfg.load_overrides(d.get("cfg") or {}):
                app.pack.fault |= F_STORE
        except MemoryError:  # the key table did not fit: the defaults, flagged
            app.pack.fault |= F_STORE
        if d.get("bal"):  # per-cell balancing time and bled charge, and the mode (pwfw.balance_cmd)
            try:
                call("balance_cmd", "restore", app.bal, d["bal"])
            except (ValueError, TypeError, KeyError, AttributeError, MemoryError):
                app.pack.fault |= F_STORE
        if d.get("est"):
            try:
                app.est.restore(d["est"])
            except (ValueError, TypeError, KeyError):
                app.pack.fault |= F_STORE  # a record from another model: start as on a first boot
    app.boots += 1
    app._boot_save = True  # after the first sample: the estimator's state means something then


def _load_cal(app):
    """The current calibration from its own record (pwfw.cal, loaded for this and dropped)."""
    from pwfw import cal

    try:
        app.cal = cal.load(app.cfg, app.hal.board)
    except MemoryError:
        app.cal = "bad"
    if app.cal == "bad":
        app.pack.fault |= F_CAL
    cal = None
    unload("cal")


def hdr(app, topic):
    o = app.out
    o.begin(topic)
    if topic == b"ok":
        o.str(b"cmd", "info")
    o.str(b"fw", VERSION)
    o.int(b"fmt", FORMAT)
    o.str(b"board", app.hal.board.get("name"))
    o.str(b"chem", app.hal.board.get("chemistry"))
    o.int(b"cells", app.n_cells)
    o.str(b"reset", app.reset_cause)
    o.int(b"boots", app.boots)
    o.str(b"uid", app.hal.uid())
    o.str(b"cal", app.cal)  # the current calibration: none / ok / bad (pwfw.cal)
    o.int(b"i_offset_ma", app.cfg.i_offset_ma)
    o.int(b"i_gain_ppm", app.cfg.i_gain_ppm)
    o.end()
