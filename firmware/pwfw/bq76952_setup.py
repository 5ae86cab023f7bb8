# BQ76952 full configuration (issue 12): every setting written, read back, then FET control, then
# SEALED. Imported only while configuring (pwfw.bq76952.BQ76952.configure with a board), so the
# running firmware does not carry it in its heap. Sequence and sources: docs/hardware.md.
from pwfw.bq76952 import (ALL_FETS_OFF, BQ76952_ID, DA_CONFIG, DEFAULT_KEYS, DEVICE_NUMBER, EXIT_CFGUPDATE,
                          FET_EN, FET_ENABLE, MFG_STATUS, SEAL, SEC_FULLACCESS, SEC_SEALED, SEC_UNSEALED,
                          SECURITY_KEYS, SET_CFGUPDATE, SWAP_COMM_MODE, ConfigError)
from pwfw.compat import const

_SUBCMD = const(0x3E)
_POLLS = const(10)  # a status bit answers in ~2 ms; give up after 10 polls 1 ms apart


def security(drv):
    """Battery Status SEC bits: 1 FULLACCESS, 2 UNSEALED, 3 SEALED (0 not yet initialised)."""
    return (drv.read_status() >> 8) & 3


def _key(drv, k):
    c = drv._cmd
    c[0] = k & 0xFF
    c[1] = (k >> 8) & 0xFF
    drv._write(_SUBCMD, c)  # a key is written like a subcommand; the part does not echo it
    drv._sleep(1)


def unseal(drv, keys):
    """SEALED -> UNSEALED -> FULLACCESS with keys (unseal 1, 2, full access 1, 2): TRM 9.3,
    each pair as two separate writes. Returns the security mode reached."""
    if security(drv) == SEC_SEALED:
        _key(drv, keys[0])
        _key(drv, keys[1])
    if security(drv) == SEC_UNSEALED:
        _key(drv, keys[2])
        _key(drv, keys[3])
    return security(drv)


def _cfg_mode(drv, on):
    drv.subcommand(SET_CFGUPDATE if on else EXIT_CFGUPDATE)
    for _ in range(_POLLS):  # LibreSolar waits 2 ms (enter) / 1 ms (exit), then polls the bit
        drv._sleep(1)
        if bool(drv.read_status() & 1) == on:
            return
    raise ConfigError("cfgupdate" if on else "exit cfgupdate")


def setup(drv, plan, afe=None):
    """Configure from plan [(name, addr, bytes)] (pwfw.bq76952_units.plan), or a function giving a
    fresh iterator of them each time (pwfw.bq76952_units.entries: no list on the heap): FULLACCESS (keys from
    the board), CONFIG_UPDATE (bit checked), every write with a wait after it, exit (bit
    checked), every setting read back, then FET control (FET_ENABLE) and SEALED. Raises
    ConfigError naming the step or setting that failed; the FETs are then left off.
    Returns the number of settings verified."""
    afe = afe or {}
    walk = plan if callable(plan) else (lambda: plan)
    keys = afe.get("keys") or DEFAULT_KEYS
    try:
        r = drv.subcommand(DEVICE_NUMBER, 2)
    except (OSError, ValueError):
        # a part with unprogrammed OTP starts without CRC, one already switched talks CRC:
        # try the other framing once (TRM 10.2, Comm Type / SWAP_COMM_MODE)
        drv.set_crc(not drv.crc)
        try:
            r = drv.subcommand(DEVICE_NUMBER, 2)
        except BaseException:  # no answer in either: the bus, not the framing; keep the one it had
            drv.set_crc(not drv.crc)  # (else it flips at each retry, and a plain board reads with CRC)
            raise
    if r[0] | (r[1] << 8) != BQ76952_ID:
        raise ConfigError("device number")
    drv.fets_enabled = False
    if unseal(drv, keys) != SEC_FULLACCESS and unseal(drv, DEFAULT_KEYS) != SEC_FULLACCESS:
        raise ConfigError("unseal")
    kb = bytearray(8)
    for i in range(4):
        kb[2 * i] = keys[i] & 0xFF
        kb[2 * i + 1] = keys[i] >> 8
    _cfg_mode(drv, True)
    try:
        for name, addr, data in walk():
            drv.write_dm(addr, data)
            drv._sleep(1)  # LibreSolar found 200 us needed after a write; the TRM gives none
        drv.write_dm(SECURITY_KEYS, kb)
        drv._sleep(1)
    finally:
        _cfg_mode(drv, False)
    n = 0
    for name, addr, data in walk():
        n += 1
        got = drv.read_dm(addr, len(data))
        for i in range(len(data)):
            if got[i] != data[i]:
                raise ConfigError(name)
        if addr == DA_CONFIG:
            drv.ua = (0, 1, 10, 100)[data[0] & 3]  # plan() never asks for 0.1 mA
    got = drv.subcommand(SECURITY_KEYS, 8)
    for i in range(8):
        if got[i] != kb[i]:
            raise ConfigError("security keys")
    if afe.get("crc") and not drv.crc:
        _key(drv, SWAP_COMM_MODE)  # the part changes mode at once: no echo to poll in the old one
        drv.set_crc(True)
        r = drv.subcommand(DEVICE_NUMBER, 2)
        if r[0] | (r[1] << 8) != BQ76952_ID:
            raise ConfigError("comm type")
    if not drv.subcommand(MFG_STATUS, 2)[0] & FET_EN:
        drv.subcommand(FET_ENABLE)  # toggles Manufacturing Status FET_EN: autonomous FET control
    if not drv.subcommand(MFG_STATUS, 2)[0] & FET_EN:
        raise ConfigError("fet enable")
    drv.subcommand(SEAL)
    if security(drv) != SEC_SEALED:
        drv.subcommand(ALL_FETS_OFF)
        raise ConfigError("seal")
    drv.fets_enabled = True
    return n


def pack_configure(pack):
    """pwfw.pack.Pack.configure: the board's configuration through the driver (setup() above), and
    what the pack makes of the result: `afe_ready`, the `afe` fault, a note for App's `evt`
    (afe_config: on 0 with the number of settings verified, or on 1 with the failed step or setting,
    once per failure, not once per retry). A failure turns every FET off (ALL_FETS_OFF)."""
    board = pack.board
    what = None
    from pwfw.afe_config import failsafe  # checked by pwfw.boot; a bad value fails the set-up, named

    try:
        pack.keep_dsg, pack.shutdown_mv, pack.shutdown_ms = failsafe(board)
    except ValueError:
        what = "failsafe"
    try:
        if what is None:
            n = pack.afe.configure(pack.n_cells, board.get("cell_map"), board["current"].get("max_ma", 32767),
                                   board=board)
    except OSError:
        what = "bus"
    except ValueError as e:  # ConfigError names the step or setting; else a CRC error after retries
        what = str(e) or "afe"
    pack.afe_ready = what is None
    if what is None:
        pack.fault &= ~1  # pwfw.pack's `afe` fault bit
        pack.notes.append(("afe_config", 0, n, None))
        pack._safety_n = 0  # read the status at once
        pack._want = -1  # and command the FETs again
        pack._conf_err = None
        return
    pack.fault |= 1
    try:
        pack.afe.subcommand(ALL_FETS_OFF)  # whatever the part had before, nothing conducts now
    except (OSError, ValueError):
        pass
    if what != pack._conf_err:
        pack._conf_err = what
        pack.notes.append(("afe_config", 1, None, what))
