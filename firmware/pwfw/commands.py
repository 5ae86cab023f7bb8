# Host commands (docs/protocol.md, "Host → device commands"): argument parsing and one handler per
# command, `cmd_<name>(app, args)`. Each answers through app.reply (or another App message) exactly once.
import gc

from pwfw.pack import F_CMD


def run(app, text):
    """Parse and run one command line; a bad one is answered with an `err`, never raised."""
    parts = text.split(" ")
    name = parts[0]
    args = parts[1:]
    handler = globals().get("cmd_" + name) if name.isalpha() else None
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


def cmd_ping(app, args):
    _no_args(args)
    app.reply("ping", True, b"ms", app.hal.ticks_ms())


def cmd_info(app, args):
    _no_args(args)
    app.hdr()
    app.hdr(b"ok")


def cmd_config(app, args):
    _no_args(args)
    o = app.out
    o.begin(b"cfg")
    for k, v in app.cfg.as_dict().items():
        o.int(k.encode(), v)
    o.end()
    app.reply("config", True)


def cmd_rate(app, args):
    v = _int_arg(args, 100, 60000, "rate_ms")
    app.cfg.set("report_ms", v)
    app.next_report = app.hal.ticks_ms()
    app.reply("rate", True, b"rate_ms", v)


def cmd_soc(app, args):
    if args == ["reset"]:
        app.est.reset()
    else:
        app.est.set_soc(_int_arg(args, 0, 1000, "soc_pm"))
    app.save()
    app.reply("soc", True, b"soc_pm", app.est.soc_pm)


def cmd_zero(app, args):
    _no_args(args)
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
    app.save()
    app.reply("zero", True, b"offset_ma", raw)


def cmd_set(app, args):
    if len(args) != 2:
        raise ValueError("usage: set <key> <int>")
    key = args[0]
    if key not in app.cfg.keys():
        raise ValueError("unknown key: " + key)
    v = _int_arg(args[1:], -0x3FFFFFFF, 0x3FFFFFFF, key)
    app.cfg.set(key, v)  # checks the key's range and the order of paired limits
    app.reply("set", True, b"key", key, b"val", v)


def cmd_save(app, args):
    _no_args(args)
    app.save()
    app.reply("save", True, b"writes", app.store.writes)


def cmd_clear(app, args):
    _no_args(args)
    app.prot.clear()
    app.reply("clear", True, b"alarm", app.prot.alarm)


def cmd_mem(app, args):
    # live heap after a collection: what the firmware holds, to watch for growth over days
    _no_args(args)
    gc.collect()
    sim = getattr(app.hal, "sim_heap", 0)
    o = app.out
    o.begin(b"ok")
    o.str(b"cmd", "mem")
    o.int(b"alloc", gc.mem_alloc() - sim)
    o.int(b"free", gc.mem_free())
    o.int(b"sim", sim)
    o.end()


def cmd_reboot(app, args):
    _no_args(args)
    app.reply("reboot", True)
    app.save()
    app.hal.reset()
