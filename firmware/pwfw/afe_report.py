# The `afe` command (docs/protocol.md): every protection the BQ76952 holds, read back from its data
# memory and decoded by pwfw.bq76952_units.readback (the addresses entries() writes, the one table of
# conversions), plus FET Status, the security mode, Safety Status A-C and PF Status A-D. Loaded on
# demand by pwfw.app.App.afe and dropped afterwards. Data memory cannot be read SEALED (TRM SLUUBY2B
# 9.3): the part is unsealed with the board's keys (to UNSEALED only: reads need no FULL ACCESS, and no
# write can happen) for three block reads, and sealed again in a `finally`. Should the seal itself
# fail on the bus, the next sample sees the changed security mode in Battery Status and re-configures,
# which seals it. The heap: pwfw.bq76952_units (the read-back) and pwfw.afe_config (the setting
# names, AFE_KEYS: a constant table, so its names are not interned) are loaded one after the other,
# never side by side (docs/architecture.md, Memory).
import gc

from pwfw.bq76952 import DEFAULT_KEYS, SEAL, SEC_SEALED, SEC_UNSEALED
from pwfw.compat import call, const, ticks_diff, unload

_SUBCMD = const(0x3E)
_SEC = const(("unknown", "full", "unsealed", "sealed"))  # Battery Status SEC1:0 (pwfw.bq76952_setup.security)


def _security(drv):
    return (drv.read_status() >> 8) & 3


def _key(drv, k):
    c = drv._cmd
    c[0] = k & 0xFF
    c[1] = (k >> 8) & 0xFF
    drv._write(_SUBCMD, c)  # a key goes in like a subcommand, two separate writes (TRM 9.3)
    drv._sleep(1)


def read(drv, keys, shunt_uohm):
    """(values, found, after): the AFE_KEYS values (pwfw.bq76952_units.readback), and the security
    mode before and after. Raises OSError/ValueError from the bus, ValueError when the keys do not
    unseal; the part is sealed again whenever it was found sealed."""
    found = _security(drv)
    try:
        if found == SEC_SEALED:
            _key(drv, keys[0])
            _key(drv, keys[1])
            if _security(drv) != SEC_UNSEALED:
                raise ValueError("the board's afe.keys did not unseal the AFE")
        vals = call("bq76952_units", "readback", drv.read_dm, shunt_uohm)  # loaded for it, dropped after it
    finally:
        if found == SEC_SEALED and _security(drv) != SEC_SEALED:
            drv.subcommand(SEAL)
    return vals, found, _security(drv)


def report(app):
    """`afe`: an `afe` frame with every protection, then the `ok` with the state fields (or an
    `err` naming what failed: the part is re-sealed first in any case)."""
    hal = app.hal
    board = hal.board
    drv = app.pack.afe
    t0 = hal.ticks_ms()
    vals, found, after = read(drv, (board.get("afe") or {}).get("keys") or DEFAULT_KEYS,
                              (board.get("current") or {}).get("shunt_uohm") or 0)
    drv.read_safety()  # direct commands: Safety Alert/Status A-C, PF Alert/Status A-D, FET Status
    took = ticks_diff(hal.ticks_ms(), t0)
    gc.collect()
    from pwfw.afe_config import AFE_KEYS

    o = app.out
    o.begin(b"afe")
    for i in range(len(vals)):
        o.int(AFE_KEYS[i][0].encode(), vals[i])
    o.end()
    AFE_KEYS = None
    unload("afe_config")
    if found == SEC_SEALED and after != SEC_SEALED:
        raise ValueError("the AFE did not seal again (security %s): the next sample re-configures it" % _SEC[after])
    s = drv.safety
    o.begin(b"ok")
    o.str(b"cmd", "afe")
    o.str(b"sec", _SEC[after])
    o.int(b"fet_status", drv.fet_status)
    o.int(b"alert", 1 if hal.alert() else 0)  # the ALERT pin as this MCU reads it (hal.alert: asserted)
    o.int(b"safety_a", s[1])
    o.int(b"safety_b", s[3])
    o.int(b"safety_c", s[5])
    o.int(b"pf_a", s[9])  # PF Status A-D at 0x0B, 0x0D, 0x0F, 0x11 (0x08/0x09 reserved)
    o.int(b"pf_b", s[11])
    o.int(b"pf_c", s[13])
    o.int(b"pf_d", s[15])
    o.int(b"took_ms", took)
    o.end()


def command(app):
    """`afe`: the report, or one `err` naming what went wrong on the bus."""
    try:
        report(app)
    except (OSError, ValueError) as e:  # the bus (NACK, time-out, CRC): re-sealed, or the next sample
        # sees the part unsealed and re-configures (which seals it)
        app.reply("afe", False, val="the AFE did not answer (%r); if it was left unsealed the next sample "
                  "re-configures and seals it: try again" % (e,))
