# The `afe` command (docs/protocol.md): every protection the BQ76952 holds, read back from its data
# memory and decoded with pwfw.bq76952_units (the addresses entries() writes, the one table of
# conversions), plus FET Status, the security mode, Safety Status A-C and PF Status A-D. Loaded on
# demand by pwfw.app.App.afe and dropped afterwards. Data memory cannot be read SEALED (TRM SLUUBY2B
# 9.3): the part is unsealed with the board's keys (to UNSEALED only: reads need no FULL ACCESS, and no
# write can happen) for three block reads, and sealed again in a `finally`. Should the seal itself
# fail on the bus, the next sample sees the changed security mode in Battery Status and re-configures,
# which seals it. The heap: pwfw.bq76952_units (addresses and conversions) and pwfw.afe_config (the
# setting names, AFE_KEYS: a constant table, so its names are not interned) are loaded one after the
# other, never side by side; this module is not loaded at boot, so its table costs the start-up
# nothing (docs/architecture.md, Memory).
import gc

from pwfw.bq76952 import DEFAULT_KEYS, SEAL, SEC_SEALED, SEC_UNSEALED
from pwfw.compat import const, ticks_diff, unload

_SUBCMD = const(0x3E)
_SEC = const(("unknown", "full", "unsealed", "sealed"))  # Battery Status SEC1:0 (pwfw.bq76952_setup.security)
# how a register's code reads in its AFE_KEYS unit
_K_CELL = const(0)  # U1, 50.6 mV steps: COV/CUV thresholds and hystereses
_K_CELL_DLY = const(1)  # U2, COV/CUV delay
_K_OC = const(2)  # U1, 2 mV across the shunt
_K_OC_DLY = const(3)  # U1, OCC/OCD delay
_K_SCD = const(4)  # U1, SCD table index
_K_SCD_DLY = const(5)  # U1, SCD delay (us)
_K_RAW = const(6)  # U1, seconds as stored
_K_TEMP = const(7)  # I1, degC
_K_SLEEP = const(8)  # H2 Power Config, bit 8


def _security(drv):
    return (drv.read_status() >> 8) & 3


def _key(drv, k):
    c = drv._cmd
    c[0] = k & 0xFF
    c[1] = (k >> 8) & 0xFF
    drv._write(_SUBCMD, c)  # a key goes in like a subcommand, two separate writes (TRM 9.3)
    drv._sleep(1)


def _readback(read_dm, shunt_uohm):
    """[value in its AFE_KEYS unit, ...] in AFE_KEYS order (pwfw.afe_config), read with
    read_dm(address, n) from where pwfw.bq76952_units.entries() writes each setting; delays rounded
    to the key's unit, None for a code the part would not take (an SCD index past the table).
    bq76952_units is loaded here, not at module level, so it can be dropped after the call."""
    from pwfw.bq76952_units import (COV_TH, CUV_TH, OCC_TH, OCD1_TH, OCD2_TH, OTC_TH, POWER_CONFIG,
                                    RECOVERY_TIME, SCD_MV, SCD_RECOV_TIME, SCD_TH, UTC_TH, cell_delay_us,
                                    cell_mv, oc_delay_us, oc_ma, scd_delay_us, scd_ma, temp_dc)

    # A data-memory read returns 32 bytes from its address (TRM 9.3), so three cover every setting:
    # CUV..SCD Recovery Time, OTC..Recovery Time, Power Config.
    b = (CUV_TH, 32, OTC_TH, 22, POWER_CONFIG, 2)
    # address, size, kind per AFE_KEYS row: ints only (a row with its name would intern the name)
    t = (
        COV_TH, 1, _K_CELL,  # cov_mv
        0x927C, 1, _K_CELL,  # cov_hyst_mv
        COV_TH + 1, 2, _K_CELL_DLY,  # cov_ms
        CUV_TH, 1, _K_CELL,  # cuv_mv
        0x927B, 1, _K_CELL,  # cuv_hyst_mv
        CUV_TH + 1, 2, _K_CELL_DLY,  # cuv_ms
        OCC_TH, 1, _K_OC,  # occ_ma
        OCC_TH + 1, 1, _K_OC_DLY,  # occ_ms
        OCD1_TH, 1, _K_OC,  # ocd1_ma
        OCD1_TH + 1, 1, _K_OC_DLY,  # ocd1_ms
        OCD2_TH, 1, _K_OC,  # ocd2_ma
        OCD2_TH + 1, 1, _K_OC_DLY,  # ocd2_ms
        SCD_TH, 1, _K_SCD,  # scd_ma
        SCD_TH + 1, 1, _K_SCD_DLY,  # scd_us
        SCD_RECOV_TIME, 1, _K_RAW,  # scd_recov_s
        OTC_TH, 1, _K_TEMP,  # otc_dc
        OTC_TH + 2, 1, _K_TEMP,  # otc_recov_dc
        OTC_TH + 3, 1, _K_TEMP,  # otd_dc
        OTC_TH + 5, 1, _K_TEMP,  # otd_recov_dc
        OTC_TH + 6, 1, _K_TEMP,  # otf_dc
        OTC_TH + 8, 1, _K_TEMP,  # otf_recov_dc
        UTC_TH, 1, _K_TEMP,  # utc_dc
        UTC_TH + 2, 1, _K_TEMP,  # utc_recov_dc
        UTC_TH + 3, 1, _K_TEMP,  # utd_dc
        UTC_TH + 5, 1, _K_TEMP,  # utd_recov_dc
        OTC_TH + 1, 1, _K_RAW,  # temp_s: the five temperature delays are written alike, OTC's stands for them
        RECOVERY_TIME, 1, _K_RAW,  # recovery_s
        POWER_CONFIG, 2, _K_SLEEP,  # sleep
    )
    blocks = [bytes(read_dm(b[i], b[i + 1])) for i in range(0, len(b), 2)]  # copies: the view is the driver's buffer
    vals = []
    for j in range(0, len(t), 3):
        addr, n, kind = t[j], t[j + 1], t[j + 2]
        code = None
        for i in range(len(blocks)):
            k = addr - b[2 * i]
            if 0 <= k and k + n <= b[2 * i + 1]:
                c = blocks[i]
                code = c[k] if n == 1 else c[k] | (c[k + 1] << 8)
        if code is None or kind == _K_RAW:
            v = code
        elif kind == _K_CELL:
            v = cell_mv(code)
        elif kind == _K_CELL_DLY:
            v = (cell_delay_us(code) + 500) // 1000
        elif kind == _K_OC:
            v = oc_ma(code, shunt_uohm)
        elif kind == _K_OC_DLY:
            v = (oc_delay_us(code) + 500) // 1000
        elif kind == _K_SCD:
            v = scd_ma(code, shunt_uohm) if code < len(SCD_MV) else None
        elif kind == _K_SCD_DLY:
            v = scd_delay_us(code)
        elif kind == _K_TEMP:
            v = temp_dc(code)
        else:
            v = (code >> 8) & 1  # Power Config SLEEP
        vals.append(v)
    return vals


def read(drv, keys, shunt_uohm):
    """(values, found, after): the AFE_KEYS values (_readback), and the security
    mode before and after. Raises OSError/ValueError from the bus, ValueError when the keys do not
    unseal; the part is sealed again whenever it was found sealed."""
    found = _security(drv)
    try:
        if found == SEC_SEALED:
            _key(drv, keys[0])
            _key(drv, keys[1])
            if _security(drv) != SEC_UNSEALED:
                raise ValueError("the board's afe.keys did not unseal the AFE")
        vals = _readback(drv.read_dm, shunt_uohm)
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
    unload("bq76952_units")  # the read-back's; the names next
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
