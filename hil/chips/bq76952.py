# The TI BQ76952 AFE simulated at register level: direct commands, the subcommand interface
# (0x3E/0x3F, buffer 0x40..0x5F, checksum 0x60, length 0x61), data memory and the bus CRC-8.
# Its CRC is computed bit by bit, independently of the driver's table, so each checks the other.
from array import array

from hil.chips.bq76952_fsm import Bq76952Fsm
from hil.chips.rng import Rng
# Native code runs the per-sample paths ~2x faster and keeps call frames off the heap; the viper loop
# below is ~20x faster than bytecode and draws exactly the numbers Rng.gauss() would.
from hil.mpcompat import micropython, ptr8, ptr16, ptr32, uint

_EIO = 5  # the part NACKs a write whose CRC is wrong
_CELL1 = 0x14
_SUBCMD = 0x3E
_XBUF = 0x40
_CHK = 0x60
_LEN = 0x61
_DM_BASE = 0x9180
_DM_SIZE = 0x200
_VCELL_MODE = 0x9304
_DA = 0x9303
_I16_MAX = 32767
_ENODEV = 19  # SHUTDOWN: the part is off and NACKs everything
_M32 = 0xFFFFFFFF


def crc8_bits(c, b):
    """One byte into CRC-8 (poly 0x07), bit by bit, as the part does."""
    c ^= b
    for _ in range(8):
        c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def _wiring(cells):
    return bytes(list(range(cells - 1)) + [15] if cells < 16 else list(range(16)))


def _clamp16(v):
    return -_I16_MAX - 1 if v < -_I16_MAX - 1 else _I16_MAX if v > _I16_MAX else v


@micropython.viper
def _cell_regs(reg, vin, off, x: uint, sd: int) -> uint:
    """The 16 cell-voltage registers from the input voltages (0.1 mV, array 'i') and the offsets (mV,
    array 'h'), with Rng.gauss(sd) noise from xorshift32 state x (the same numbers, inlined); returns
    the new PRNG state. Same arithmetic as the general loop in set_truth (no gain error)."""
    r = ptr8(reg)
    v = ptr32(vin)
    o = ptr16(off)
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)  # 0xFFFFFFFF, built so 32-bit targets compile it
    k = 0
    while k < 16:
        y = int(v[k])
        a = int(o[k]) & 0xFFFF  # ptr16 loads unsigned (CPython's array is signed): same either way
        if a & 0x8000:
            a -= 0x10000
        y += a * 10
        if sd:  # Rng.gauss: four 16-bit uniforms, rounded to nearest, symmetric around 0
            s = -131072
            j = 0
            while j < 4:
                x ^= (x << 13) & m
                x ^= x >> 17
                x ^= (x << 5) & m
                s += int(x & 0xFFFF)
                j += 1
            q = s * sd
            if q >= 0:
                y += (q + 18918) // 37837
            else:
                y -= (18918 - q) // 37837
        y = (y + 5) // 10
        if y > 32767:
            y = 32767
        elif y < -32768:
            y = -32768
        r[0x14 + 2 * k] = y & 0xFF
        r[0x15 + 2 * k] = (y >> 8) & 0xFF
        k += 1
    return x


@micropython.viper
def _put(reg, a: int, v: int):
    """One little-endian i16 register, clamped as the part saturates."""
    r = ptr8(reg)
    if v > 32767:
        v = 32767
    elif v < -32768:
        v = -32768
    r[a] = v & 0xFF
    r[a + 1] = (v >> 8) & 0xFF


@micropython.viper
def _copy(buf, reg, a: int, n: int):
    """buf[:n] = reg[a:a + n] without a slice object (the firmware's no-allocation test runs through here)."""
    b = ptr8(buf)
    r = ptr8(reg)
    i = 0
    while i < n:
        b[i] = r[a + i]
        i += 1


class BQ76952Sim(Bq76952Fsm):
    def __init__(self, cells=16, crc=False, seed=1, addr=0x08, wiring=None, shunt_uohm=1000):
        self.addr = addr
        self.crc = crc
        self._crc_w = crc8_bits(0, addr << 1)
        self._addr_r = (addr << 1) | 1
        self.rng = Rng(seed)
        self.reg = bytearray(128)  # direct-command space 0x00..0x7F
        self.dm = bytearray(_DM_SIZE)  # data memory from 0x9180; Vcell Mode 0 = all 16 inputs
        # which input (0-based) each pack cell is wired to; default TI's layout, top cell on VC16,
        # and it follows the number of cells set_truth is given
        self._auto = wiring is None
        self.wiring = bytes(wiring) if wiring else _wiring(cells)
        self.cells = cells
        self._vin = array("i", [0] * 16)  # true input voltages, 0.1 mV
        self.noise_mv = 1  # 1 sigma, mV
        self.offset_mv = array("h", [0] * 16)  # per input
        self.gain_ppm = 0
        self.pack_drop_mv = 0  # PACK/LD this far below the stack (fault injection: v_pack)
        self.cc2_stuck = False  # CC2 keeps its last reading (fault injection: i_stuck); the accumulator counts on
        self.busy_reads = 1  # reads of 0x3E/0x3F that return 0xFF after a subcommand
        self._busy = 0
        self._corrupt = 0
        self._open = 0  # 1-based pack cell with an open top sense wire, 0 = none
        self.cfg_update = False
        self.crc_rx_errors = 0  # writes refused for a bad CRC
        self.dm_rejects = 0  # data-memory writes refused (checksum, length or not in CONFIG_UPDATE)
        self.dm_writes = 0
        self.subcommands = 0
        self._w = bytearray(64)  # de-interleaved write data
        self.shunt_uohm = shunt_uohm  # the real sense resistor: CC Gain must match it
        self.otp_crc = crc  # the comm mode the part powers up in (OTP); a POR returns to it
        self.off = False  # SHUTDOWN (or not powered): NACKs everything until wake()
        self._shut = False
        self.dm_writes_outside = 0  # accepted outside CONFIG_UPDATE (the TRM only recommends it)
        self.trips = []  # (t_us, name) of every protection trip, in the chip's own time base
        self.t_us = 0  # the chip's clock: advanced by advance()
        self.i_ma = 0  # the true current of the last set_truth
        self._ts = ()
        self.por()
        self.set_truth([33000] * cells, 33000 * cells, 0, (250, 250, 250), 300)

    # --- test and plant hooks -------------------------------------------------------------
    def corrupt_next(self, n):
        """Flip the first CRC byte of the next n reads (CRC mode)."""
        self._corrupt = n

    def open_wire(self, cell):
        """Open the top sense wire of pack cell `cell` (1-based; 0 clears).

        Model: the floating tap is pulled to the tap below by the input's leakage, so that cell
        reads ~0 mV and the cell above reads the sum of both; the top cell's tap has no cell above.
        """
        self._open = cell

    @property
    def vcell_mode(self):
        k = _VCELL_MODE - _DM_BASE
        return self.dm[k] | (self.dm[k + 1] << 8)

    @micropython.native
    def set_truth(self, cells_mv10, stack_mv10, i_ma, ts_dc, die_dc):
        self.i_ma = i_ma
        self._ts = ts_dc
        if self.sleeping and self.hold_voltages:  # SLEEP: no voltage measurement this time
            if not self.cc2_stuck:
                _put(self.reg, 0x3A, self._user_amps(i_ma))
            return
        v = self._vin
        n = len(cells_mv10)
        if n < 16:
            for k in range(16):
                v[k] = 0  # unused inputs are shorted to their neighbour
        if self._auto and n != len(self.wiring):
            self.wiring = _wiring(n)
        w = self.wiring
        if n > len(w):
            n = len(w)
        for i in range(n):
            v[w[i]] = cells_mv10[i]
        op = self._open
        if op and op <= n:
            k = w[op - 1]
            if op < n:
                v[w[op]] += v[k]
            v[k] = 0
        r = self.reg
        g = self.gain_ppm
        sd = self.noise_mv * 10
        off = self.offset_mv
        rng = self.rng
        if not g and 4 * sd < 32767:
            rng.x = _cell_regs(r, v, off, rng.x, sd)
            k = 16  # done: skip the general loop
        else:
            k = 0
        a = _CELL1 + 2 * k
        for k in range(k, 16):
            y = v[k]
            y += y * g // 1000000 + off[k] * 10 + rng.gauss(sd)
            y = (y + 5) // 10  # 1 mV resolution
            if y > _I16_MAX:
                y = _I16_MAX
            elif y < -_I16_MAX - 1:
                y = -_I16_MAX - 1
            r[a] = y & 0xFF
            r[a + 1] = (y >> 8) & 0xFF
            a += 2
        st = stack_mv10 + stack_mv10 * g // 1000000
        st = (st + 50) // 100  # userV = 10 mV
        _put(r, 0x34, st)
        _put(r, 0x36, st - self.pack_drop_mv // 10)  # PACK and LD: the stack (FETs on, no load drop
        _put(r, 0x38, st - self.pack_drop_mv // 10)  # modelled) less an injected drop (a FET that does not conduct)
        if not self.cc2_stuck:
            _put(r, 0x3A, self._user_amps(i_ma))
        nt = len(ts_dc)
        for k in range(3):
            _put(r, 0x70 + 2 * k, ts_dc[k] + 2732 if k < nt and ts_dc[k] is not None else 0)
        _put(r, 0x68, die_dc + 2732)

    def measured_ma(self, i_ma):
        """The current the part reports for a true current: CC Gain applied (TRM 4.12: a CC Gain
        for another sense resistor scales every reading)."""
        a = i_ma if i_ma >= 0 else -i_ma
        q = (a * self._gain20 + (1 << 19)) >> 20
        return q if i_ma >= 0 else -q

    def _user_amps(self, i_ma):
        # userA: 0.1, 1, 10 or 100 mA per count (DA Configuration bits 1:0), rounded symmetrically
        a = i_ma if i_ma >= 0 else -i_ma
        q = (a * self._gain20 * 10 + (self._ua10 << 19)) // (self._ua10 << 20)
        return q if i_ma >= 0 else -q

    # --- bus side -------------------------------------------------------------------------
    def _byte(self, a):
        if a >= 128:
            return 0xFF
        if self._busy and (a == _SUBCMD or a == _SUBCMD + 1):
            return 0xFF
        return self.reg[a]

    # read path kept in small frames: MicroPython heap-allocates frames over ~11 words, and the
    # firmware's no-allocation test runs through here
    @micropython.native
    def read(self, reg, buf):
        if self.off:
            raise OSError(_ENODEV)
        if reg is None:
            reg = 0
        if self.crc:
            self._read_crc(reg, buf)
        else:
            self._read_plain(reg, buf)
        if self._busy and reg <= _SUBCMD + 1 and reg + len(buf) > _SUBCMD:
            self._busy -= 1

    @micropython.native
    def _read_plain(self, reg, buf):
        i = len(buf)
        if self._busy or reg + i > 128:
            while i:
                i -= 1
                buf[i] = self._byte(reg + i)
            return
        _copy(buf, self.reg, reg, i)  # the common case: plain register bytes

    def _read_crc(self, reg, buf):
        # the first CRC covers (addr W, reg, addr R, byte 0), every later one just its byte
        c = crc8_bits(crc8_bits(self._crc_w, reg), self._addr_r)
        j = 0
        while j + 1 < len(buf):
            buf[j] = self._byte(reg + (j >> 1))
            buf[j + 1] = crc8_bits(c, buf[j])
            c = 0
            j += 2
        if self._corrupt and j:
            self._corrupt -= 1
            buf[1] ^= 0xFF

    def write(self, reg, data):
        # DASTATUS6 (the firmware reads it once a second) in a frame small enough for MicroPython's C
        # stack: T1 counts what the simulated chips allocate too
        if reg == _SUBCMD and not self.crc and not self.off and len(data) == 2 and data[0] == 0x76 and not data[1]:
            r = self.reg
            r[_SUBCMD] = 0x76
            r[_SUBCMD + 1] = 0
            self._respond(self.dastatus6())
            return
        self._write(reg, data)

    def _write(self, reg, data):
        if self.off:
            raise OSError(_ENODEV)
        n = len(data)
        w = self._w
        if self.crc:
            if n & 1:
                raise OSError(_EIO)
            c = crc8_bits(crc8_bits(0, self.addr << 1), reg)
            j = 0
            for i in range(n >> 1):
                b = data[j]
                if crc8_bits(c, b) != data[j + 1]:
                    self.crc_rx_errors += 1
                    raise OSError(_EIO)
                w[i] = b
                c = 0
                j += 2
            n >>= 1
        else:
            for i in range(n):
                w[i] = data[i]
        r = self.reg
        for i in range(n):
            a = reg + i
            if _SUBCMD <= a <= _LEN:  # the subcommand interface
                r[a] = w[i]
        if reg == 0x62 and n == 2:  # Alarm Status: write 1 to clear
            self.alarm &= ~(w[0] | (w[1] << 8))
            self._status()
            return
        if reg == 0x66 and n == 2:  # Alarm Enable
            self.alarm_enable = w[0] | (w[1] << 8)
            self._status()
            return
        if reg == _SUBCMD and n == 2:
            self._subcommand(r[_SUBCMD] | (r[_SUBCMD + 1] << 8))
        elif reg <= _LEN < reg + n:
            self._commit()

    def _respond(self, n):
        r = self.reg
        s = r[_SUBCMD] + r[_SUBCMD + 1]
        for i in range(n):
            s += r[_XBUF + i]
        r[_CHK] = ~s & 0xFF
        r[_LEN] = n + 4
        self._busy = self.busy_reads

    def _commit(self):
        # checksum + length written: a data-memory write of the buffer to the address at 0x3E
        r = self.reg
        addr = r[_SUBCMD] | (r[_SUBCMD + 1] << 8)
        n = r[_LEN] - 4
        s = r[_SUBCMD] + r[_SUBCMD + 1]
        for i in range(n if 0 <= n <= 32 else 0):
            s += r[_XBUF + i]
        k = addr - _DM_BASE
        if addr == 0x0083:  # CB_ACTIVE_CELLS write: 2 data bytes, checksum and length as for data memory
            if n == 2 and ~s & 0xFF == r[_CHK]:
                self.cb_write(r[_XBUF] | (r[_XBUF + 1] << 8))
            else:
                self.cb_rejects += 1
            return
        ok = 1 <= n <= 32 and ~s & 0xFF == r[_CHK] and self.sec == 1  # FULLACCESS
        if ok and addr == 0x0035 and n == 8:  # SECURITY_KEYS write
            self.keys = [r[_XBUF + 2 * i] | (r[_XBUF + 2 * i + 1] << 8) for i in range(4)]
            return
        # TRM: writing data memory outside CONFIG_UPDATE is only "recommended against" (settings
        # then change while protections run); the part takes it (FULLACCESS needed: we read the
        # TRM's security table that way, UNSEALED may only read - the TRM is not explicit)
        if not (ok and 0 <= k <= _DM_SIZE - n):
            self.dm_rejects += 1
            return
        for i in range(n):
            self.dm[k + i] = r[_XBUF + i]
        self.dm_writes += 1
        if not self.cfg_update:
            self.dm_writes_outside += 1
        self._derive()
        self._fets()
