# The `afe` command (docs/protocol.md): every protection the BQ76952 holds, read back from its data
# memory and decoded with pwfw.afe_regs (AFE_REGS, decode: pwfw.bq76952_units' conversions), plus FET Status, the
# security mode, Safety Status A-C and PF Status A-D. Loaded on demand by pwfw.commands.cmd_afe and
# dropped afterwards. Data memory cannot be read SEALED (TRM SLUUBY2B 9.3): the part is unsealed
# with the board's keys (to UNSEALED only: reads need no FULL ACCESS, and no write can happen) for
# three block reads, and sealed again in a `finally`. Should the seal itself fail on the bus, the
# next sample sees the changed security mode in Battery Status and re-configures, which seals it.
from pwfw.bq76952 import DEFAULT_KEYS, SEAL, SEC_SEALED, SEC_UNSEALED
from pwfw.afe_regs import AFE_REGS, decode
from pwfw.compat import const, ticks_diff

_SUBCMD = const(0x3E)
# Data-memory blocks that hold every AFE_REGS address: a read returns 32 bytes from its address
# (the TRM's data-memory access: 32 bytes at 0x40..0x5F), so three reads cover them: CUV..SCD Recovery Time, OTC..Recovery Time, Power Config.
_BLOCKS = ((0x9275, 32), (0x929A, 22), (0x9234, 2))
SEC_NAMES = ("unknown", "full", "unsealed", "sealed")  # Battery Status SEC1:0 (pwfw.bq76952_setup.security)


def _security(drv):
    return (drv.read_status() >> 8) & 3


def _key(drv, k):
    c = drv._cmd
    c[0] = k & 0xFF
    c[1] = (k >> 8) & 0xFF
    drv._write(_SUBCMD, c)  # a key goes in like a subcommand, two separate writes (TRM 9.3)
    drv._sleep(1)


def read(drv, keys):
    """(blocks, found, after): copies of the data-memory blocks, and the security mode before and
    after. Raises OSError/ValueError from the bus, ValueError when the keys do not unseal; the part
    is sealed again whenever it was found sealed."""
    found = _security(drv)
    try:
        if found == SEC_SEALED:
            _key(drv, keys[0])
            _key(drv, keys[1])
            if _security(drv) != SEC_UNSEALED:
                raise ValueError("the board's afe.keys did not unseal the AFE")
        out = []
        for addr, n in _BLOCKS:
            out.append(bytes(drv.read_dm(addr, n)))  # a copy: the view shares the driver's buffer
    finally:
        if found == SEC_SEALED and _security(drv) != SEC_SEALED:
            drv.subcommand(SEAL)
    return out, found, _security(drv)


def values(blocks, shunt_uohm):
    """[(AFE_KEYS name, value in its unit)] from the blocks read()."""
    vals = []
    for name, addr, n, kind in AFE_REGS:
        code = None
        for i in range(len(_BLOCKS)):
            a, size = _BLOCKS[i]
            if a <= addr and addr + n <= a + size:
                b = blocks[i]
                k = addr - a
                code = b[k] if n == 1 else b[k] | (b[k + 1] << 8)
        vals.append((name, None if code is None else decode(kind, code, shunt_uohm)))
    return vals


def report(app):
    """`afe`: an `afe` frame with every protection, then the `ok` with the state fields (or an
    `err` naming what failed: the part is re-sealed first in any case)."""
    hal = app.hal
    board = hal.board
    drv = app.pack.afe
    t0 = hal.ticks_ms()
    blocks, found, after = read(drv, (board.get("afe") or {}).get("keys") or DEFAULT_KEYS)
    drv.read_safety()  # direct commands: Safety Alert/Status A-C, PF Alert/Status A-D, FET Status
    took = ticks_diff(hal.ticks_ms(), t0)
    o = app.out
    o.begin(b"afe")
    for name, v in values(blocks, (board.get("current") or {}).get("shunt_uohm") or 0):
        o.int(name.encode(), v)
    o.end()
    if found == SEC_SEALED and after != SEC_SEALED:
        raise ValueError("the AFE did not seal again (security %s): the next sample re-configures it" % SEC_NAMES[after])
    s = drv.safety
    o.begin(b"ok")
    o.str(b"cmd", "afe")
    o.str(b"sec", SEC_NAMES[after])
    o.int(b"fet_status", drv.fet_status)
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
