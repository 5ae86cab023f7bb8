# Host commands (docs/protocol.md, "Host → device commands"): argument parsing and one handler per
# command, named as the command (`ping(app, args)`, `set(app, args)`: within this module only, so
# `set` hides the builtin, which nothing here uses). Each answers through app.reply (or another App
# message) exactly once. Loaded per command line and dropped, but the names a module brings are
# interned for good (docs/architecture.md, Memory): no `cmd_` prefix (a second name per command),
# private constants as const.
from pwfw.compat import const, unload
from pwfw.pack import F_CAL, F_CMD, F_STORE

_COMMANDS = const(("ping", "info", "config", "rate", "soc", "cal", "zero", "set", "save", "clear", "mem", "balance",
                   "reboot", "unlock", "lock", "afe"))


# --- protection settings behind an unlock (docs/configuration.md, "Unlock") ----------------------
# Every key but _FREE_KEYS is a protection setting: `set` changes one only within _UNLOCK_MS
# of `unlock <key>` (the board file's unlock_key) and reports the change as an `evt`; _UNLOCK_TRIES
# wrong keys in a row refuse `unlock` for _LOCKOUT_MS. The state lives in the Config (unlocked_at,
# bad_keys, lockout_at): this module is loaded per command line and dropped (pwfw.app).
# Keys that are not protection settings (report rate, the estimator's nominal capacity, current
# calibration): `set` changes them without an unlock.
_FREE_KEYS = const(("report_ms", "capacity_mah", "i_gain_ppm", "i_offset_ma", "zero_max_ma"))
_UNLOCK_MS = const(60000)  # an unlock lasts this long (or until `lock`)
_UNLOCK_TRIES = const(3)  # wrong keys in a row before a lock-out
_LOCKOUT_MS = const(60000)  # after _UNLOCK_TRIES wrong keys, `unlock` is refused this long


def run(app, text):
    """Parse and run one command line; a bad one is answered with an `err`, never raised."""
    parts = text.split(" ")
    name = parts[0]
    args = parts[1:]
    handler = globals()[name] if name in _COMMANDS else None
    if handler is None:
        app.reply(name, False, val="unknown command")
        return
    try:
        handler(app, args)
    except ValueError as e:
        app.reply(name, False, val=str(e) or "bad argument")
    except Exception as e:  # a bug in a handler must not take the board down: say so, flag it
        app.pack.fault |= F_CMD
        app.reply(name, False, val="internal error: %r" % (e,))


def _int_arg(args, lo, hi, what):
    if len(args) != 1:
        raise ValueError("expected one argument: " + what)
    s = args[0]
    digits = s[1:] if s[:1] == "-" else s
    if not digits or not digits.isdigit():
        raise ValueError("not an integer: " + s)
    v = int(s)
    if v < lo or v > hi:
        raise ValueError("%s out of range %d..%d" % (what, lo, hi))
    return v


def _no_args(args):
    if args:
        raise ValueError("takes no arguments")


def ping(app, args):
    _no_args(args)
    app.reply("ping", True, b"ms", app.hal.ticks_ms())


def info(app, args):
    _no_args(args)
    app.hdr()
    app.hdr(b"ok")


def config(app, args):
    _no_args(args)
    o = app.out
    o.begin(b"cfg")
    for k, v in app.cfg.as_dict().items():
        o.int(k.encode(), v)
    o.end()
    app.reply("config", True)


def rate(app, args):
    v = _int_arg(args, 100, 60000, "rate_ms")
    app.cfg.set("report_ms", v)
    app.next_report = app.hal.ticks_ms()
    app.reply("rate", True, b"rate_ms", v)


def soc(app, args):
    if args == ["reset"]:
        app.est.reset()
    else:
        app.est.set_soc(_int_arg(args, 0, 1000, "soc_pm"))
    app.save()
    app.reply("soc", True, b"soc_pm", app.est.soc_pm)


def cal(app, args):
    """`cal`: the calibration in use; `cal zero`: the offset, at rest only; `cal current <A>`: the gain
    from a known current (a clamp meter's reading, + charging). Stored in its own CRC'd record."""
    from pwfw import cal as m

    if not args:
        app.reply("cal", True, b"offset_ma", app.cfg.i_offset_ma, b"gain_ppm", app.cfg.i_gain_ppm)
    elif args == ["zero"]:
        _zero(app, "cal")
    elif len(args) == 2 and args[0] == "current":
        ref = m.parse_amps(args[1])
        raw = app.pack.raw_avg_ma
        if raw is None:
            raise ValueError("no current reading yet: wait a second and try again")
        g = m.current(app.cfg, ref, raw)
        app.cfg.set("i_gain_ppm", g)
        _cal_saved(app, m.save(app.cfg, app.hal.board, ref, raw))
        app.reply("cal", True, b"gain_ppm", g, b"ref_ma", ref)
    else:
        raise ValueError("usage: cal | cal zero | cal current <amps>")
    unload("cal")


def _cal_saved(app, ok):
    if ok:
        app.cal = "ok"
        app.pack.fault &= ~F_CAL
    else:
        app.pack.fault |= F_STORE


def _zero(app, name):
    from pwfw import cal as m

    raw = app.pack.raw_i_ma
    if raw is None:
        raise ValueError("no current reading yet")
    # with the power path open no current flows: whatever is read is offset; closed, only a reading
    # a sensor's offset can explain is (zero_max_ma), else `zero` would hide a real load
    lim = app.cfg.zero_max_ma
    if app.path() and abs(raw) > lim:
        raise ValueError("pack is not at rest: %d mA measured, more than zero_max_ma %d mA with the power path "
                         "closed; stop the load and the charger, then zero again" % (raw, lim))
    app.cfg.set("i_offset_ma", raw)  # range-checked: a wild reading raises ValueError
    _cal_saved(app, m.save(app.cfg, app.hal.board))
    app.reply(name, True, b"offset_ma", raw)


def zero(app, args):
    # the old name of `cal zero` (the same rest check, the same record)
    _no_args(args)
    _zero(app, "zero")
    unload("cal")


def set(app, args):
    if len(args) != 2:
        raise ValueError("usage: set <key> <int>")
    from pwfw import config_keys  # noqa: F401  (held for the checks below: loaded once, dropped with this module)

    key = args[0]
    if key not in app.cfg.keys():
        raise ValueError("unknown key: " + key)
    if key in ("i_offset_ma", "i_gain_ppm"):
        raise ValueError(key + " is the calibration: set it with `cal zero` / `cal current <amps>`")
    v = _int_arg(args[1:], -0x3FFFFFFF, 0x3FFFFFFF, key)
    # a protection key only while unlocked, and then an `evt` {"name":"set","val":new,"setting":key,
    # "old":old} before the command's `ok`
    cfg = app.cfg
    guarded = key not in _FREE_KEYS
    if guarded and cfg.unlock_key is None:  # pwfw.limits did not load (memory): nothing checks the limits
        raise ValueError("hard limits not loaded yet (the AFE set-up is retried every 5 s): try again later")
    cfg.update({key: v}, False)  # a value that would be refused anyway says why, locked or not
    if guarded and not _unlocked(app):
        raise ValueError("locked: %s is a protection setting; send `unlock <key>` (the board file's unlock_key) "
                         "first, then set it within %d s" % (key, _UNLOCK_MS // 1000))
    old = cfg.get(key)
    cfg.set(key, v)  # the key's range, its hard limits and the order of paired limits
    if guarded:
        o = app.out
        o.begin(b"evt")
        o.int(b"seq", app._next_seq())
        o.int(b"ms", app.hal.ticks_ms())
        o.str(b"name", "set")
        o.int(b"on", 1)
        o.int(b"val", v)
        o.int(b"idx", None)
        o.str(b"setting", key)
        o.int(b"old", old)
        o.end()
    app.reply("set", True, b"key", key, b"val", v)


def save(app, args):
    _no_args(args)
    app.save()
    app.reply("save", True, b"writes", app.store.writes)


def clear(app, args):
    _no_args(args)
    app.prot.clear()
    app.reply("clear", True, b"alarm", app.prot.alarm)


def mem(app, args):
    # a bare `mem` is answered by App.mem before this module loads (so it is not counted); here only
    # its argument check
    _no_args(args)
    app.mem()


def balance(app, args):
    """`balance [auto|off|cells MASK [minutes]]` (docs/protocol.md): pwfw.balance_cmd, loaded for it."""
    from pwfw.compat import call

    call("balance_cmd", "command", app, args)


def reboot(app, args):
    _no_args(args)
    app.reply("reboot", True)
    app.save()
    app.hal.reset()


def _unlocked(app):
    """True while the present unlock lasts (not: never unlocked, timed out, `lock`)."""
    from pwfw.compat import ticks_diff
    c = app.cfg
    if c.unlocked_at is None:
        return False
    if ticks_diff(app.hal.ticks_ms(), c.unlocked_at) >= _UNLOCK_MS:
        c.unlocked_at = None
        return False
    return True


def unlock(app, args):
    if len(args) != 1:
        raise ValueError("usage: unlock <key> (the board file's unlock_key)")
    from pwfw.compat import ticks_diff
    c = app.cfg
    now = app.hal.ticks_ms()
    if c.lockout_at is not None:
        left = _LOCKOUT_MS - ticks_diff(now, c.lockout_at)
        if left > 0:
            raise ValueError("locked out after %d wrong keys: try again in %d s" % (_UNLOCK_TRIES, (left + 999) // 1000))
        c.lockout_at = None
    if args[0] != c.unlock_key:
        c.bad_keys += 1
        c.unlocked_at = None
        if c.bad_keys >= _UNLOCK_TRIES:
            c.bad_keys = 0
            c.lockout_at = now
            raise ValueError("wrong unlock key: locked out for %d s" % (_LOCKOUT_MS // 1000))
        raise ValueError("wrong unlock key (%d more and unlock is refused for %d s)"
                         % (_UNLOCK_TRIES - c.bad_keys, _LOCKOUT_MS // 1000))
    c.bad_keys = 0
    c.unlocked_at = now
    app.reply("unlock", True, b"for_ms", _UNLOCK_MS)


def lock(app, args):
    if args:
        raise ValueError("takes no arguments")
    app.cfg.unlocked_at = None
    app.reply("lock", True)


def afe(app, args):
    """`afe` with arguments lands here (a bare `afe` is run by App.afe without this module loaded)."""
    if args:
        raise ValueError("takes no arguments")
    app.afe()