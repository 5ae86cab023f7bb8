# TI BQ76952 battery monitor (AFE) on I2C: direct commands, subcommands, data memory, optional CRC-8.
# Register map and transfer rules: docs/hardware.md (from the BQ76952 TRM, SLUUBY2).
from array import array

from pwfw.compat import MICROPYTHON, const, micropython, sleep_ms

if not MICROPYTHON:
    from pwfw.compat import ptr8, ptr16, ptr32

_SAFETY_A = const(0x02)  # Safety Alert A, Safety Status A, ... PF Status D (0x11): 16 bytes
_BAT_STATUS = const(0x12)
_FET_STATUS = const(0x7F)
_CELL1 = const(0x14)
_STACK = const(0x34)
_PACK = const(0x36)
_LD = const(0x38)
_CC2 = const(0x3A)
_SUBCMD = const(0x3E)
_XBUF = const(0x40)
_CHK = const(0x60)
_INT_TEMP = const(0x68)
_ALARM_STATUS = const(0x62)  # latched; the host writes 1s to clear (TRM 6.6: ALERT follows it & Alarm Enable)
_CC2_FULL = const(32767)  # CC2 at its 16-bit full scale: the true current may be anything beyond
_TS1 = const(0x70)
_USERV_MV = const(10)  # stack/PACK/LD are in userV units, centivolts by default (mV would overflow int16)
_FRAME = const(_CC2 + 2 - _BAT_STATUS)  # 0x12..0x3B: Battery Status, cells, stack, PACK, LD, CC2 in one read
_CELLS_AT = const(_CELL1 - _BAT_STATUS)  # where the cells start in the frame
# Battery Status bits that say the configuration may be gone: CFGUPDATE (0), SLEEP_EN (2: SLEEP allowed,
# Power Config[SLEEP] and SLEEP_ENABLE; the board's policy keeps it as configured), POR (3), SEC (9:8).
# Sealed, the part takes no data-memory write, so a setting cannot change without one of these changing.
_BS_WATCH = const(0x030D)
_BS_SS = const(0x0800)  # a Safety Status bit is set
_BS_PF = const(0x1000)  # a Permanent Fail Status bit is set
_POLLS = const(10)  # a subcommand answers in ~2 ms; give up after 10 polls 1 ms apart

DEVICE_NUMBER = const(0x0001)
FW_VERSION = const(0x0002)
_CB_ACTIVE_CELLS = const(0x0083)
SET_CFGUPDATE = const(0x0090)
EXIT_CFGUPDATE = const(0x0092)
DA_CONFIG = const(0x9303)  # Settings:Configuration:DA Configuration, bits 1:0 = userA (USA)
VCELL_MODE = const(0x9304)  # Settings:Configuration:Vcell Mode, bit n-1 = cell input n in use
BQ76952_ID = const(0x7695)
MFG_STATUS = const(0x0057)  # Manufacturing Status, bit 4 FET_EN
FET_ENABLE = const(0x0022)
ALL_FETS_OFF = const(0x0095)
SEAL = const(0x0030)
SECURITY_KEYS = const(0x0035)
SWAP_COMM_MODE = const(0x29BC)
FET_EN = const(0x10)  # Manufacturing Status bit
SEC_FULLACCESS = const(1)
SEC_UNSEALED = const(2)
SEC_SEALED = const(3)
DEFAULT_KEYS = (0x0414, 0x3672, 0xFFFF, 0xFFFF)  # the part's factory keys (TRM 9.3)


class ConfigError(ValueError):
    """configure() failed at the named step or setting (str(e) is its name); FETs stay off."""


def _crc8_table():
    t = bytearray(256)
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        t[i] = c
    return bytes(t)


_T = _crc8_table()  # CRC-8, polynomial 0x07, init 0 (the BQ769x2 bus CRC)
del _crc8_table  # run once: its code need not stay in the loop's heap


def crc8(data, crc=0):
    for b in data:
        crc = _T[crc ^ b]
    return crc


@micropython.native
def _s16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


@micropython.viper
def _unpack_frame(out, d, m, n: int, w):
    """out[i] = the signed 16-bit little-endian reading of input m[i] in d, for i < n; and, for
    read_frame's block d, w (array('i')) = Battery Status, stack, PACK, LD (userV) and CC2, the last
    four signed (one viper call per sample instead of six native ones)."""
    b = ptr8(d)
    p = ptr8(m)
    o = ptr16(out)
    i = 0
    while i < n:
        j = p[i] << 1
        o[i] = ((b[j] | (b[j + 1] << 8)) ^ 0x8000) - 0x8000  # signed (CPython's array checks the range)
        i += 1
    q = ptr32(w)
    q[0] = b[0] | (b[1] << 8)
    k = 1
    j = _STACK - _BAT_STATUS  # stack, PACK, LD, CC2: adjacent words
    while k < 5:
        v = b[j] | (b[j + 1] << 8)
        if v & 0x8000:
            v -= 0x10000
        q[k] = v
        k += 1
        j += 2


@micropython.viper
def _copy(dst, src, n: int):
    a = ptr8(dst)
    b = ptr8(src)
    k = 0
    while k < n:
        a[k] = b[k]
        k += 1


@micropython.viper
def _sum76(d, n: int, chk: int) -> bool:
    """DASTATUS6's checksum: ~(0x76 + 0x00 + the n response bytes of d) & 0xFF == chk (viper: the
    32-byte loop was ~130 us of generic subscripts in native code on the RP2040)."""
    b = ptr8(d)
    s = 0x76
    k = 0
    while k < n:
        s += b[k]
        k += 1
    return ((s ^ 0xFF) & 0xFF) == chk


def cell_inputs(cells, cell_map=None):
    """1-based cell inputs in use: all 16, or TI's layout for fewer (1..n-1 and 16, top cell on VC16)."""
    if cell_map is None:
        cell_map = list(range(1, cells)) + [16] if cells < 16 else list(range(1, 17))
    if len(cell_map) != cells or not 3 <= cells <= 16:
        raise ValueError("cell map")
    last = 0
    for c in cell_map:
        if not last < c <= 16:
            raise ValueError("cell map")
        last = c
    return cell_map


class BQ76952:
    def __init__(self, i2c, addr=0x08, crc=False, retries=2, sleep=sleep_ms):
        self.i2c = i2c
        self.addr = addr
        self.crc = crc
        self.retries = retries
        self._sleep = sleep
        self.nacks = 0
        self.crc_errors = 0
        w = 2 if crc else 1  # CRC mode: every data byte is followed by its CRC byte
        self._raw = bytearray(_FRAME * w)
        mv = memoryview(self._raw)
        self._r2 = mv[: 2 * w]
        self._r32 = mv[: 32 * w]
        self._r16 = mv[: 16 * w]
        self._r1 = mv[:w]
        self._rf = mv[: _FRAME * w]
        # data bytes: the raw buffer itself, or the CRC-checked bytes copied out of it
        self._d = bytearray(_FRAME) if crc else self._raw
        self._fw = array("i", bytes(20))  # read_frame's words (_unpack_frame)
        self._cmd = bytearray(2)
        self._cb = bytearray(4)  # CB_ACTIVE_CELLS write: subcommand + mask
        # the CRC of the first read byte covers (addr W, reg, addr R): precompute the address part
        self._crc_w = _T[addr << 1]
        self._crc_r = (addr << 1) | 1
        self._rd = i2c.readfrom_mem_into  # bound once: calling it allocates nothing
        self._reg = 0
        self._n2 = 0
        self.cells = 0
        self.ua = 1  # mA per CC2 count (userA); configure() widens it for packs over 32 A
        self.stack_mv = 0  # what read_frame() read besides the cells
        self.cc2_ma = 0
        self.cc2_sat = False  # the last CC2 reading sat at its full scale (+-32767 counts)
        self.alarm = 0  # Alarm Status as read_alarm() found it (before clearing)
        self._clr = bytearray(2)
        self.status = 0  # Battery Status of the last read_frame()
        # Battery Status & _BS_WATCH as configure() left it (-1: never configured, nothing to compare)
        self._bs_ok = -1
        self.stale = False  # the part reset or left its configuration: ua and the settings are unverified
        self.safety = bytearray(16)  # Safety Alert/Status A-C, PF Alert/Status A-D (read_safety)
        self.fet_status = 0
        self._map = b""
        self._map2 = b""  # the same, for the cells at _CELLS_AT in read_frame's block
        self.fets_enabled = False  # setup() handed the FETs to the AFE (FET_EN) and sealed it
        self.pack_mv = 0  # PACK and LD pins (read_frame): the power path's side of the FETs
        self.ld_mv = 0
        self._wc = bytearray(4)  # a 2-byte subcommand with its CRCs
        self._wreg = 0
        self._wbuf = self._wc
        self._acc_ok = False  # read_acc_mas(): a baseline was taken
        self._acc_w = self._acc_fh = self._acc_fl = self._acc_t = self._acc_lo = self._acc_rem = 0
        self.set_map(16)

    # --- bus transfers ------------------------------------------------------------------------
    # Native: the frame stays on the C stack (a bytecode frame with a try block is heap-allocated).
    @micropython.native
    def _read(self, reg, raw, n):
        """Read n data bytes from reg in one transaction (auto-increment) into self._d."""
        self._reg = reg
        self._n2 = 2 * n
        tries = self.retries
        while tries:
            tries -= 1
            try:
                self._rd(self.addr, reg, raw)
            except OSError:
                self.nacks += 1
                continue
            if not self.crc or self._check(raw):
                return
            self.crc_errors += 1
        # the last attempt raises the bus's own OSError (ENODEV, ETIMEDOUT) unchanged
        self.nacks += 1
        self._rd(self.addr, reg, raw)
        self.nacks -= 1
        if self.crc and not self._check(raw):
            self.crc_errors += 1
            raise ValueError("bq76952 crc")

    @micropython.native
    def _check(self, raw):
        c = _T[_T[self._crc_w ^ self._reg] ^ self._crc_r]
        j = 0
        while j < self._n2:
            b = raw[j]
            if _T[c ^ b] != raw[j + 1]:
                return False
            self._d[j >> 1] = b
            c = 0  # every CRC after the first covers its data byte only
            j += 2
        return True

    def _write(self, reg, data):
        if self.crc:
            buf = bytearray(2 * len(data))
            c = _T[self._crc_w ^ reg]
            j = 0
            for b in data:
                buf[j] = b
                buf[j + 1] = _T[c ^ b]
                c = 0
                j += 2
        else:
            buf = data
        tries = self.retries
        while True:
            try:
                self.i2c.writeto_mem(self.addr, reg, buf)
                return
            except OSError:
                self.nacks += 1
                if tries <= 0:
                    raise
                tries -= 1

    @micropython.native
    def _read16(self, reg):
        self._read(reg, self._r2, 2)
        return _s16(self._d, 0)

    # --- direct commands ------------------------------------------------------------------
    @micropython.native
    def read_cells(self, out_mv):
        """All 16 inputs in one 32-byte read; out_mv[i] = configured cell i in mV."""
        self._read(_CELL1, self._r32, 32)
        self._cells(out_mv)

    @micropython.native
    def read_frame(self, out_mv):
        """Battery Status, cells, stack and CC2 current in one 42-byte read (the registers are
        adjacent and the part auto-increments): one bus transaction per sample, all from the same
        moment. out_mv as read_cells(); the rest lands in self.status, self.stack_mv, self.cc2_ma.
        Once configured, a Battery Status that says the part reset or left its configuration (POR,
        CFGUPDATE, security mode) makes the driver `stale`: ua is forgotten (cc2_ma 0) until
        configure() verifies the settings again, so no current is scaled with a unit the part lost."""
        self._read(_BAT_STATUS, self._rf, _FRAME)
        w = self._fw
        _unpack_frame(out_mv, self._d, self._map2, self.cells, w)
        st = self.status = w[0]
        if self._bs_ok >= 0 and (st & _BS_WATCH) != self._bs_ok:
            self.stale = True
            self.ua = 0
        self.stack_mv = w[1] * _USERV_MV
        self.pack_mv = w[2] * _USERV_MV
        self.ld_mv = w[3] * _USERV_MV
        raw = w[4]
        self.cc2_sat = raw >= _CC2_FULL or raw < -_CC2_FULL
        self.cc2_ma = raw * self.ua

    @micropython.native
    def _cells(self, out_mv):
        _unpack_frame(out_mv, self._d, self._map, self.cells, self._fw)  # w: not read_frame's block, unused

    def read_safety(self):
        """Safety Alert/Status A-C and PF Alert/Status A-D (0x02..0x11) into self.safety, and FET
        Status (0x7F) into self.fet_status; allocation-free (two reads: on a change of Battery
        Status SS/PF, and once a second)."""
        self._read(_SAFETY_A, self._r16, 16)
        _copy(self.safety, self._d, 16)
        self._read(_FET_STATUS, self._r1, 1)
        self.fet_status = self._d[0]

    def read_alarm(self):
        """Alarm Status (0x62, latched) into self.alarm, then clear the bits read (write 1s), so the
        ALERT pin deasserts and asserts again on the next event (a condition that persists latches
        again at once). On ALERT and with the once-a-second status read."""
        self._read(_ALARM_STATUS, self._r2, 2)
        a = self._d[0] | (self._d[1] << 8)
        self.alarm = a
        if a:
            c = self._clr
            c[0] = a & 0xFF
            c[1] = a >> 8
            self._write(_ALARM_STATUS, c)
        return a

    def shutdown(self):
        """SHUTDOWN (0x0010), sent twice: SEALED, the part takes it only twice within 4 s (TRM
        SLUUBY2B 4.x subcommand table); it then powers down REG1/REG2 (so a board's MCU fed from
        REG1 loses power) and wakes on a charger at LD, TS2 pulled low or RST_SHUT (data sheet
        SLUSE13 SHUTDOWN mode), with a POR."""
        self.subcommand(0x0010)
        self.subcommand(0x0010)

    @micropython.native
    def read_stack_mv(self):
        return self._read16(_STACK) * _USERV_MV

    def read_pack_mv(self):
        return self._read16(_PACK) * _USERV_MV

    def read_ld_mv(self):
        return self._read16(_LD) * _USERV_MV

    @micropython.native
    def read_cc2_ma(self):
        return self._read16(_CC2) * self.ua

    def read_ts_dk(self, n):
        if not 1 <= n <= 3:
            raise ValueError("ts")
        return self._read16(_TS1 + 2 * (n - 1))

    def read_int_dk(self):
        return self._read16(_INT_TEMP)

    def read_status(self):
        return self._read16(_BAT_STATUS) & 0xFFFF

    # --- accumulated charge (DASTATUS6 0x0076, TRM SLUUBY2B 12.4.3): the part integrates every CC1
    # conversion continuously, so a ripple the 3 ms CC2 aliases is counted as it flows.
    # Allocation-free: pre-allocated buffers, integers below 2**30 (the I4/U4 fields are taken 16 bits at a time).
    def acc_reset(self):
        """Forget the baseline: the next read_acc_mas() only takes one (after POR, reconfiguration)."""
        self._acc_ok = False

    def read_acc_mas(self):
        """Charge in mA*s the part accumulated since the previous call (+ charging), or None when there
        is no baseline (the first call, or the accumulator restarted: POR or RESET_PASSQ set its time
        back to 0; the caller counts that interval another way, so a reset is never a jump). The
        rounding remainder is carried: the sum of the returns is the part's charge without drift."""
        self._send76()
        self._poll(0x0076)
        self._read(_CHK, self._r2, 2)
        self._resp76(self._d[0], self._d[1] - 4)
        return self._acc_delta()

    def _send76(self):
        if self.crc:  # the CRCs of a 2-byte write: (addr W, reg, byte 0), then byte 1 alone
            w = self._wc
            w[1] = _T[_T[self._crc_w ^ _SUBCMD] ^ 0x76]
            w[3] = _T[0]
        else:
            w = self._cmd
            w[1] = 0
        w[0] = 0x76
        w[2 if self.crc else 1] = 0
        self._wr(_SUBCMD, w)

    def _resp76(self, chk, n):
        # the data sheet's 32 response bytes; 16 if a part sends just the fields
        if n == 32:
            self._read(_XBUF, self._r32, 32)
        elif n == 16:
            self._read(_XBUF, self._r16, 16)
        else:
            raise ValueError("bq76952 length")
        if not _sum76(self._d, n, chk):
            self.crc_errors += 1
            raise ValueError("bq76952 checksum")

    def _wr(self, reg, buf):
        # a write with retries in small frames (MicroPython heap-allocates frames over ~11 words)
        self._wreg = reg
        self._wbuf = buf
        tries = self.retries
        while tries:
            tries -= 1
            if self._try_w():
                return
        self.i2c.writeto_mem(self.addr, reg, buf)

    def _try_w(self):
        try:
            self.i2c.writeto_mem(self.addr, self._wreg, self._wbuf)
        except OSError:
            self.nacks += 1
            return False
        return True

    def _poll(self, cmd):
        n = _POLLS
        while n:
            n -= 1
            if self._read16(_SUBCMD) & 0xFFFF == cmd:
                return
            self._sleep(1)
        raise OSError(110)

    @micropython.native
    def _acc_delta(self):
        d = self._d
        w16 = d[0] | (d[1] << 8)  # low 16 bits of the I4 whole userAh: enough for a delta under 2**15
        fhi = d[6] | (d[7] << 8)  # the U4 fraction of a userAh, high and low halves
        flo = d[4] | (d[5] << 8)
        t16 = d[8] | (d[9] << 8)  # accumulated time, s (low 16 bits)
        ok = self._acc_ok
        self._acc_ok = True
        lw = self._acc_w
        lh = self._acc_fh
        ll = self._acc_fl
        lt = self._acc_t
        self._acc_w = w16
        self._acc_fh = fhi
        self._acc_fl = flo
        self._acc_t = t16
        if not ok or ((t16 - lt) & 0xFFFF) >= 0x8000 or not self.ua:
            self._acc_lo = 0
            return None  # no baseline, or the time went back: the accumulator restarted at 0
        dw = (w16 - lw) & 0xFFFF
        if dw >= 0x8000:
            dw -= 0x10000
        lo = self._acc_lo + flo - ll  # 2**-32 userAh, carried into the 2**-16 units below
        self._acc_lo = lo & 0xFFFF
        u = dw * 65536 + (fhi - lh) + (lo >> 16)  # 2**-16 userAh
        # mA*s = u * ua * 3600 / 65536 = u * (ua * 225) / 4096, split at bit 8 (products < 2**30)
        k = self.ua * 225
        a = (u >> 8) * k  # 1/16 mA*s
        x = ((a & 15) << 8) + (u & 0xFF) * k + self._acc_rem  # 1/4096 mA*s
        self._acc_rem = x & 0xFFF
        return (a >> 4) + (x >> 12)

    # --- subcommands and data memory ------------------------------------------------------
    def subcommand(self, cmd, nread=0):
        """Send a subcommand; return a memoryview of the first nread response bytes.

        The view shares the driver's buffer: copy it before the next read.
        """
        c = self._cmd
        c[0] = cmd & 0xFF
        c[1] = cmd >> 8
        self._write(_SUBCMD, c)
        return self._response(cmd, nread)

    def _response(self, cmd, nread):
        # the device reads 0xFF at 0x3E/0x3F until it has run the subcommand, then echoes it
        for _ in range(_POLLS):
            if self._read16(_SUBCMD) & 0xFFFF == cmd:
                break
            self._sleep(1)
        else:
            raise OSError(110)
        if not nread:
            return memoryview(self._d)[:0]
        tries = self.retries
        while True:
            self._read(_CHK, self._r2, 2)
            chk = self._d[0]
            n = self._d[1] - 4
            if not nread <= n <= 32:
                raise ValueError("bq76952 length")
            self._read(_XBUF, memoryview(self._raw)[: n * 2 if self.crc else n], n)
            s = (cmd & 0xFF) + (cmd >> 8)
            for i in range(n):
                s += self._d[i]
            if ~s & 0xFF == chk:
                return memoryview(self._d)[:nread]
            self.crc_errors += 1
            if tries <= 0:
                raise ValueError("bq76952 checksum")
            tries -= 1

    # --- host-controlled balancing (CB_ACTIVE_CELLS 0x0083; SLUAA81A: works SEALED, needs the
    # checksum and length at 0x60/0x61 like a data-memory write). Pre-allocated buffers: no heap. -----
    def cb_write(self, mask):
        """Balance the cell inputs in mask (bit k = input k+1); 0 stops balancing."""
        b = self._cb
        b[0] = _CB_ACTIVE_CELLS
        b[1] = 0
        b[2] = mask & 0xFF
        b[3] = (mask >> 8) & 0xFF
        self._write(_SUBCMD, b)
        c = self._cmd
        c[0] = ~(b[0] + b[2] + b[3]) & 0xFF
        c[1] = 6  # 2 data bytes + 4
        self._write(_CHK, c)

    def input_mask(self, mask):
        """Pack cells (bit k = cell k+1) as the cell inputs they are wired to (set_map)."""
        m = 0
        mp = self._map
        for k in range(len(mp)):
            if mask >> k & 1:
                m |= 1 << mp[k]
        return m

    def cb_read(self):
        """The inputs the part is balancing now (CB_ACTIVE_CELLS read), checksum-checked."""
        c = self._cmd
        c[0] = _CB_ACTIVE_CELLS
        c[1] = 0
        self._write(_SUBCMD, c)
        for _ in range(_POLLS):
            if self._read16(_SUBCMD) & 0xFFFF == _CB_ACTIVE_CELLS:
                break
            self._sleep(1)
        else:
            raise OSError(110)
        self._read(_CHK, self._r2, 2)
        chk = self._d[0]
        if self._d[1] != 6:
            raise ValueError("bq76952 length")
        self._read(_XBUF, self._r2, 2)
        m = self._d[0] | (self._d[1] << 8)
        if ~(_CB_ACTIVE_CELLS + self._d[0] + self._d[1]) & 0xFF != chk:
            raise ValueError("bq76952 checksum")
        return m

    def read_dm(self, addr, n):
        return self.subcommand(addr, n)

    def write_dm(self, addr, data):
        """Write data memory (the device takes it only in CONFIG_UPDATE mode: see configure)."""
        n = len(data)
        if not 1 <= n <= 32:
            raise ValueError("dm length")
        blk = bytearray(2 + n)
        blk[0] = addr & 0xFF
        blk[1] = addr >> 8
        blk[2:] = data
        self._write(_SUBCMD, blk)  # address at 0x3E/0x3F and data at 0x40.. in one transfer
        s = 0
        for b in blk:
            s += b
        c = self._cmd
        c[0] = ~s & 0xFF
        c[1] = n + 4
        self._write(_CHK, c)  # checksum + length: the device commits on this write

    # --- set-up -------------------------------------------------------------------------------
    def set_map(self, cells, cell_map=None):
        m = cell_inputs(cells, cell_map)
        self._map = bytes([c - 1 for c in m])
        self._map2 = bytes([c - 1 + _CELLS_AT // 2 for c in m])
        self.cells = cells
        return m

    def configure(self, cells=16, cell_map=None, max_ma=32767, board=None):
        """Check the part, set the cell inputs in use (Vcell Mode) and the current unit, read them back.

        CC2 is a signed 16-bit count of userA: the default 1 mA saturates at 32.767 A, so for a larger
        max_ma userA becomes 10 mA (USA=2, +-327 A) or 100 mA (USA=3).

        With `board` (the parsed board file) it writes the whole configuration instead (see
        pwfw.bq76952_setup): protections, FET control, CC Gain from the shunt, and seals the part.

        The map is set first so read_cells fills exactly `cells` values even if the bus fails here.
        """
        m = self.set_map(cells, cell_map)
        mask = 0
        for c in m:
            mask |= 1 << (c - 1)
        if board is not None:
            # loaded for the set-up only (a board's heap: docs/architecture.md), then dropped
            from pwfw.bq76952_setup import setup
            from pwfw.bq76952_units import entries

            self.stale = True  # from here until verified, no current is scaled with a cached unit
            self.ua = 0
            try:
                n = setup(self, lambda: entries(board, cells, mask), board.get("afe") or {})
            except BaseException:
                self.ua = 0
                raise
            self._verified()
            return n
        r = self.subcommand(DEVICE_NUMBER, 2)
        if r[0] | (r[1] << 8) != BQ76952_ID:
            raise ValueError("not a bq76952")
        usa, ua = (1, 1) if max_ma <= 32767 else (2, 10) if max_ma <= 327670 else (3, 100)
        da = (self.read_dm(DA_CONFIG, 1)[0] & 0xFC) | usa
        self.subcommand(SET_CFGUPDATE)
        try:
            self.write_dm(VCELL_MODE, bytes((mask & 0xFF, mask >> 8)))
            self.write_dm(DA_CONFIG, bytes((da,)))
        finally:
            self.subcommand(EXIT_CFGUPDATE)
        r = self.read_dm(VCELL_MODE, 2)
        if r[0] | (r[1] << 8) != mask:
            raise ValueError("vcell mode")
        if self.read_dm(DA_CONFIG, 1)[0] != da:
            raise ValueError("da configuration")
        self.ua = ua
        self._verified()

    def _verified(self):
        """The settings were just written and read back: Battery Status as it is now is the one to keep."""
        self._bs_ok = self.read_status() & _BS_WATCH
        self.stale = False

    def set_crc(self, on):
        """Switch the bus framing (after SWAP_COMM_MODE): the buffers are rebuilt for it."""
        keep = (self.cells, self._map, self._map2, self.ua, self.nacks, self.crc_errors, self.fets_enabled,
                self.stale, self._bs_ok)
        self.__init__(self.i2c, self.addr, on, self.retries, self._sleep)
        (self.cells, self._map, self._map2, self.ua, self.nacks, self.crc_errors, self.fets_enabled,
         self.stale, self._bs_ok) = keep
