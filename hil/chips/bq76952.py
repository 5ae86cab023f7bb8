# The TI BQ76952 AFE simulated at register level: direct commands, the subcommand interface
# (0x3E/0x3F, buffer 0x40..0x5F, checksum 0x60, length 0x61), data memory and the bus CRC-8.
# Its CRC is computed bit by bit, independently of the driver's table, so each checks the other.
from array import array

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

# Data-memory defaults after a POR (OTP unprogrammed), from the data-memory tables of the TRM
# (SLUUBY2B section 13; the BQ76942/22/72 TRMs of the same family give the same values for the
# entries their search results showed: OCC 2/4, OCD2 delay 7, SCD delay 2, FET Options 0x0D,
# CHG FET A/B/C 0x98/0xD5/0x56, DSG FET C 0xE2, Enabled A 0x88 (SLUAA11B 3.1), UTD recovery 5,
# Recovery Time 3, OCC recovery -200 mA). (address, value, bytes); F4 as IEEE-754 bits.
_DM_DEFAULTS = (
    (0x91A8, 0x40EF4203, 4),  # CC Gain 7.4768 (1 mOhm)
    (0x91AC, 0x4A081C6F, 4),  # Capacity Gain 2230042.463
    (0x9234, 0x2982, 2),  # Power Config: bit 8 SLEEP allowed
    (0x9236, 0x00, 1),  # REG12 Config
    (0x9237, 0x00, 1),  # REG0 Config
    (0x9239, 0x00, 1),  # Comm Type: default (I2C, no CRC)
    (0x9248, 20, 2),  # Sleep Current, mA
    (0x924A, 5, 1),  # Voltage Time, s: the measurement interval in SLEEP
    (0x924B, 500, 2),  # Wake Comparator Current, mA
    (0x9261, 0x88, 1),  # Enabled Protections A: SCD, COV
    (0x9262, 0x00, 1),
    (0x9263, 0x00, 1),
    (0x9265, 0x98, 1),  # CHG FET Protections A/B/C
    (0x9266, 0xD5, 1),
    (0x9267, 0x56, 1),
    (0x9269, 0xE4, 1),  # DSG FET Protections A/B/C
    (0x926A, 0xE6, 1),
    (0x926B, 0xE2, 1),
    (0x926D, 0xF800, 2),  # Default Alarm Mask
    (0x926F, 0xFC, 1),  # SF Alert Mask A/B/C
    (0x9270, 0xF7, 1),
    (0x9271, 0xF4, 1),
    (0x9273, 50, 2),  # Body Diode Threshold, mA
    (0x9275, 50, 1), (0x9276, 74, 2), (0x927B, 2, 1),  # CUV 2.53 V, 244 ms, 101 mV
    (0x9278, 86, 1), (0x9279, 74, 2), (0x927C, 2, 1),  # COV 4.35 V
    (0x9280, 2, 1), (0x9281, 4, 1),  # OCC 4 mV, 19.8 ms
    (0x9282, 4, 1), (0x9283, 1, 1),  # OCD1 8 mV, 9.9 ms
    (0x9284, 3, 1), (0x9285, 7, 1),  # OCD2 6 mV, 29.7 ms
    (0x9286, 0, 1), (0x9287, 2, 1),  # SCD 10 mV, 15 us
    (0x9288, -200 & 0xFFFF, 2),  # OCC Recovery Threshold, mA
    (0x928D, 200, 2),  # OCD Recovery Threshold, mA
    (0x9294, 5, 1),  # SCD Recovery Time, s
    (0x929A, 55, 1), (0x929B, 2, 1), (0x929C, 50, 1),  # OTC
    (0x929D, 60, 1), (0x929E, 2, 1), (0x929F, 55, 1),  # OTD
    (0x92A0, 80, 1), (0x92A1, 2, 1), (0x92A2, 65, 1),  # OTF
    (0x92A6, 0, 1), (0x92A7, 2, 1), (0x92A8, 5, 1),  # UTC
    (0x92A9, 0, 1), (0x92AA, 2, 1), (0x92AB, 5, 1),  # UTD
    (0x92AF, 3, 1),  # Recovery Time, s
    (0x92FD, 0x07, 1),  # TS1 Config: thermistor, cell temperature
    (0x9303, 0x05, 1),  # DA Configuration: userA 1 mA, userV 10 mV
    (0x9308, 0x0D, 1),  # FET Options: SFET, HOST_FET_EN, FET_CTRL_EN
)
_DEFAULT_KEYS = (0x0414, 0x3672, 0xFFFF, 0xFFFF)  # unseal 1, 2, full access 1, 2 (TRM 9.3)
_SCD_MV = (10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500)
_FULLACCESS = 1
_UNSEALED = 2
_SEALED = 3
_MAH_US = 3600000000  # mA.us in one mAh
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


class BQ76952Sim:
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
        self.dm_writes_outside = 0  # accepted outside CONFIG_UPDATE (the TRM only recommends it)
        self.trips = []  # (t_us, name) of every protection trip, in the chip's own time base
        self.t_us = 0  # the chip's clock: advanced by advance()
        self.i_ma = 0  # the true current of the last set_truth
        self._ts = ()
        self.por()
        self.set_truth([33000] * cells, 33000 * cells, 0, (250, 250, 250), 300)

    # --- power-on reset (a brown-out is one): RAM settings are lost ---------------------------
    def por(self):
        """A full reset: data memory back to its defaults (OTP unprogrammed), FULLACCESS, comm mode
        from OTP, FET_EN cleared (FETs off, FET test mode), POR set in Battery Status, the
        accumulated charge zeroed, no latched status."""
        dm = self.dm
        for i in range(_DM_SIZE):
            dm[i] = 0
        for a, v, n in _DM_DEFAULTS:
            for i in range(n):
                dm[a - _DM_BASE + i] = (v >> (8 * i)) & 0xFF
        r = self.reg
        for i in range(_SUBCMD):
            r[i] = 0
        self.crc = self.otp_crc
        self.cfg_update = False
        self.sec = _FULLACCESS  # Security Settings default: no SEAL at power-up
        self.keys = list(_DEFAULT_KEYS)
        self._key_step = 0
        self.fet_en = False  # Manufacturing Status FET_EN: 0 = FET test mode, FETs off
        self.host_off = 0  # bit 0 CHG, bit 1 DSG forced off by ALL_FETS_OFF & co.
        self.sleep_cmd = True  # SLEEP_ENABLE / SLEEP_DISABLE
        self.sleeping = False
        self._sleep_t = 0
        self.por_flag = True
        self.alert_a = self.alert_b = self.alert_c = 0
        self.status_a = self.status_b = self.status_c = 0
        self.alarm = 0  # Alarm Status (latched); Alarm Enable from Default Alarm Mask
        self.alarm_enable = 0xF800
        self._tmr = {}  # protection -> us its trip condition has held; recovery timers as -name
        self.q = 0  # accumulated charge, mA.us of the measured (CC Gain applied) current
        self.q_t = 0  # accumulated time, us
        self._derive()
        self.chg_fet = self.dsg_fet = False
        self._fets()

    def brownout(self):
        self.por()

    def shutdown(self):
        self.off = True

    def wake(self):
        """TS2 pulled low / charger on LD / RST_SHUT: SHUTDOWN ends with a full reset."""
        if self.off:
            self.off = False
            self.por()

    def _u(self, a, n=1):
        k = a - _DM_BASE
        v = 0
        for i in range(n):
            v |= self.dm[k + i] << (8 * i)
        return v

    def _i(self, a, n=1):
        v = self._u(a, n)
        return v - (1 << (8 * n)) if v >> (8 * n - 1) else v

    def _derive(self):
        """Everything the per-sample paths need from data memory, recomputed on every write (the
        part applies a change made outside CONFIG_UPDATE at once; in it, on exit)."""
        u = self._u
        bits = u(0x91A8, 4)
        m = (bits & 0x7FFFFF) | 0x800000
        e = ((bits >> 23) & 0xFF) - 150
        # reported = true * Rsense[mOhm] * CC Gain / 7.4768 (TRM 4.12), as a 2**20 fixed-point factor
        num = self.shunt_uohm * m * 10 << 20
        den = 74768
        if e >= 0:
            num <<= e
        else:
            den <<= -e
        self._gain20 = (num + den // 2) // den
        self._ua10 = (1, 10, 100, 1000)[self.dm[_DA - _DM_BASE] & 3]  # userA in 0.1 mA
        self.en = (u(0x9261), u(0x9262), u(0x9263))
        self.chg_mask = (u(0x9265), u(0x9266), u(0x9267))
        self.dsg_mask = (u(0x9269), u(0x926A), u(0x926B))
        self.fet_opt = u(0x9308)
        r = self.shunt_uohm
        # (name, status bit A, threshold in uV across the shunt (sign: + charge), delay us)
        self._oc = (
            ("scd", 0x80, -_SCD_MV[u(0x9286) & 15] * 1000, (u(0x9287) - 1) * 15),
            ("ocd2", 0x40, -u(0x9284) * 2000, (u(0x9285) + 2) * 3300),
            ("ocd1", 0x20, -u(0x9282) * 2000, (u(0x9283) + 2) * 3300),
            ("occ", 0x10, u(0x9280) * 2000, (u(0x9281) + 2) * 3300),
        )
        self._r = r
        self._cov = (u(0x9278) * 506 + 5) // 10, (u(0x927C) * 506 + 5) // 10, u(0x9279, 2) * 3300
        self._cuv = (u(0x9275) * 506 + 5) // 10, (u(0x927B) * 506 + 5) // 10, u(0x9276, 2) * 3300
        self._temps = (  # (name, status bit B, threshold dC, recovery dC, delay us, over?)
            ("otc", 0x10, self._i(0x929A) * 10, self._i(0x929C) * 10, u(0x929B) * 1000000, True),
            ("otd", 0x20, self._i(0x929D) * 10, self._i(0x929F) * 10, u(0x929E) * 1000000, True),
            ("otf", 0x80, self._i(0x92A0) * 10, self._i(0x92A2) * 10, u(0x92A1) * 1000000, True),
            ("utc", 0x01, self._i(0x92A6) * 10, self._i(0x92A8) * 10, u(0x92A7) * 1000000, False),
            ("utd", 0x02, self._i(0x92A9) * 10, self._i(0x92AB) * 10, u(0x92AA) * 1000000, False),
        )
        self._recov_us = u(0x92AF) * 1000000
        self._scd_recov_us = u(0x9294) * 1000000
        self._occ_rec = self._i(0x9288, 2)
        self._ocd_rec = self._i(0x928D, 2)
        self._ts_cfg = (u(0x92FD), u(0x92FE), u(0x92FF))
        self._sleep_ok = bool(u(0x9234, 2) & 0x100)
        self._sleep_ma = self._i(0x9248, 2)
        self._vtime_us = u(0x924A) * 1000000
        self._wake_ma = self._i(0x924B, 2)
        self._bd_ma = self._i(0x9273, 2)

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
        _put(r, 0x36, st)  # PACK and LD equal the stack: FETs on, no load drop modelled
        _put(r, 0x38, st)
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

    def _subcommand(self, cmd):
        self.subcommands += 1
        r = self.reg
        n = 0
        sec = self.sec
        if self._keyed(cmd):
            pass
        elif cmd == 0x0001:  # DEVICE_NUMBER
            r[_XBUF] = 0x95
            r[_XBUF + 1] = 0x76
            n = 2
        elif cmd == 0x0002:  # FW_VERSION: device number, firmware version, build (big-endian)
            for i, b in enumerate((0x76, 0x95, 0x01, 0x01, 0x00, 0x38)):
                r[_XBUF + i] = b
            n = 6
        elif cmd == 0x0090 and sec == _FULLACCESS:  # SET_CFGUPDATE: FULLACCESS only
            self.cfg_update = True
        elif cmd == 0x0092 and self.cfg_update:  # EXIT_CFGUPDATE: POR is cleared on exit (TRM 12.2.?)
            self.cfg_update = False
            self.por_flag = False
            self._derive()
        elif cmd == 0x0030 and sec != _SEALED:  # SEAL
            self.sec = _SEALED
        elif cmd == 0x0057:  # MANUFACTURINGSTATUS: bit 4 FET_EN
            r[_XBUF] = 0x10 if self.fet_en else 0
            r[_XBUF + 1] = 0
            n = 2
        elif cmd == 0x0022 and sec != _SEALED:  # FET_ENABLE toggles FET_EN
            self.fet_en = not self.fet_en
        elif cmd == 0x0035 and sec == _FULLACCESS:  # SECURITY_KEYS (read)
            for i in range(4):
                r[_XBUF + 2 * i] = self.keys[i] & 0xFF
                r[_XBUF + 2 * i + 1] = self.keys[i] >> 8
            n = 8
        elif cmd == 0x0076:  # DASTATUS6: accumulated charge (I4 userAh + U4 fraction), time (U4 s)
            d = _MAH_US * self._ua10 // 10
            whole = self.q // d  # floor: a negative charge has a positive fraction
            frac = (self.q - whole * d) * (1 << 32) // d
            for i, v in enumerate((whole & _M32, frac & _M32, (self.q_t // 1000000) & _M32)):
                for j in range(4):
                    r[_XBUF + 4 * i + j] = (v >> (8 * j)) & 0xFF
            for i in range(12, 32):
                r[_XBUF + i] = 0
            n = 32
        elif cmd == 0x0082:  # RESET_PASSQ
            self.q = self.q_t = 0
        elif cmd == 0x0093:  # DSG_PDSG_OFF
            self.host_off |= 2
        elif cmd == 0x0094:  # CHG_PCHG_OFF
            self.host_off |= 1
        elif cmd == 0x0095:  # ALL_FETS_OFF
            self.host_off = 3
        elif cmd == 0x0096:  # ALL_FETS_ON: allows them (protections still rule)
            self.host_off = 0
        elif cmd == 0x0099:  # SLEEP_ENABLE
            self.sleep_cmd = True
        elif cmd == 0x009A:  # SLEEP_DISABLE
            self.sleep_cmd = False
            self.sleeping = False
        elif cmd == 0x0010:  # SHUTDOWN (the part powers down; wake() brings it back via POR)
            self.off = True
        elif cmd == 0x0012:  # RESET
            self.por()
            return
        elif cmd == 0x29BC:  # SWAP_COMM_MODE: to the mode Comm Type selects (0 = default, no CRC)
            ct = self._u(0x9239)
            self.crc = ct in (0x11, 0x12) or (ct in (0, 0xFF) and self.otp_crc)
        elif _DM_BASE <= cmd < _DM_BASE + _DM_SIZE and sec != _SEALED:  # data-memory read, 32 bytes
            k = cmd - _DM_BASE
            for i in range(32):
                r[_XBUF + i] = self.dm[k + i] if k + i < _DM_SIZE else 0
            n = 32
        self._fets()
        self._respond(n)

    def _keyed(self, word):
        """Unseal / full-access keys: two words in consecutive writes to 0x3E (TRM 9.3). A key
        also looks like a subcommand to the interface; the part then answers nothing for it."""
        k = self.keys
        step = self._key_step
        self._key_step = 0
        if self.sec == _SEALED:
            if step == 1 and word == k[1]:
                self.sec = _UNSEALED
                return True
            if word == k[0]:
                self._key_step = 1
                return True
        elif self.sec == _UNSEALED:
            if step == 2 and word == k[3]:
                self.sec = _FULLACCESS
                return True
            if word == k[2]:
                self._key_step = 2
                return True
        return False

    def _commit(self):
        # checksum + length written: a data-memory write of the buffer to the address at 0x3E
        r = self.reg
        addr = r[_SUBCMD] | (r[_SUBCMD + 1] << 8)
        n = r[_LEN] - 4
        s = r[_SUBCMD] + r[_SUBCMD + 1]
        for i in range(n if 0 <= n <= 32 else 0):
            s += r[_XBUF + i]
        k = addr - _DM_BASE
        ok = 1 <= n <= 32 and ~s & 0xFF == r[_CHK] and self.sec == _FULLACCESS
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

    # --- status registers --------------------------------------------------------------------
    @property
    def battery_status(self):
        b = 1 if self.cfg_update else 0
        if self._sleep_ok and self.sleep_cmd:
            b |= 0x0004  # SLEEP_EN
        if self.por_flag:
            b |= 0x0008
        b |= self.sec << 8
        if self.status_a | self.status_b | self.status_c:
            b |= 0x0800  # SS
        if self.sleeping:
            b |= 0x8000
        return b

    @property
    def fet_status(self):
        return (1 if self.chg_fet else 0) | (4 if self.dsg_fet else 0) | (0x40 if self.alert else 0)

    @property
    def alert(self):
        """The ALERT pin asserted (active low on the board): Alarm Status & Alarm Enable."""
        return bool(self.alarm & self.alarm_enable)

    def _status(self):
        r = self.reg
        r[0x02] = self.alert_a
        r[0x03] = self.status_a
        r[0x04] = self.alert_b
        r[0x05] = self.status_b
        r[0x06] = self.alert_c
        r[0x07] = self.status_c
        b = self.battery_status
        r[0x12] = b & 0xFF
        r[0x13] = b >> 8
        raw = 0
        if self.status_a:
            raw |= 0x4000  # SSA
        if self.status_b | self.status_c:
            raw |= 0x8000  # SSBC
        if (self.alert_a & self._u(0x926F)) | (self.alert_b & self._u(0x9270)) | (self.alert_c & self._u(0x9271)):
            raw |= 0x1000  # MSK_SFALERT
        if not self.chg_fet:
            raw |= 0x0040  # XCHG
        if not self.dsg_fet:
            raw |= 0x0020  # XDSG
        self.alarm |= raw  # latched until the host writes 1s to Alarm Status
        r[0x62] = self.alarm & 0xFF
        r[0x63] = self.alarm >> 8
        r[0x64] = raw & 0xFF
        r[0x65] = raw >> 8
        r[0x66] = self.alarm_enable & 0xFF
        r[0x67] = self.alarm_enable >> 8
        r[0x7F] = self.fet_status

    def _fets(self):
        """CHG/DSG driver state: FET_EN (autonomous control), FET_CTRL_EN, no host OFF command, not
        in CONFIG_UPDATE, and no Safety Status bit that the CHG/DSG FET Protections masks select."""
        on = self.fet_en and self.fet_opt & 0x08 and not self.cfg_update and not self.off
        sa, sb, sc = self.status_a, self.status_b, self.status_c
        cm, dm = self.chg_mask, self.dsg_mask
        chg_prot = (sa & cm[0]) | (sb & cm[1]) | (sc & cm[2])
        dsg_prot = (sa & dm[0]) | (sb & dm[1]) | (sc & dm[2])
        self.chg_fet = bool(on and not chg_prot and not self.host_off & 1 and not (self.sleeping and not self.fet_opt & 2))
        self.dsg_fet = bool(on and not dsg_prot and not self.host_off & 2)
        if on and self.fet_opt & 1:  # series FETs: body diode protection (TRM 6.x)
            i = self.measured_ma(getattr(self, "i_ma", 0))
            if self.dsg_fet and not self.chg_fet and not self.host_off & 1 and -i > self._bd_ma:
                self.chg_fet = True  # discharging through CHG's body diode: turn it on
            if self.chg_fet and not self.dsg_fet and not self.host_off & 2 and i > self._bd_ma:
                self.dsg_fet = True
        self._status()

    def passes(self, i_ma):
        """The current the power path lets through for what the plant asks: charge needs CHG on,
        discharge needs DSG on. Series FETs: the other FET's body diode conducts (DSG off still
        lets charge flow, CHG off still lets discharge flow); parallel: separate paths, the same
        rule per direction."""
        if i_ma > 0:
            return i_ma if self.chg_fet else 0
        return i_ma if self.dsg_fet else 0

    # --- the protection state machine, in the chip's own time base ----------------------------
    def advance(self, dt_us, profile=None):
        """Run the part for dt_us of its own time. `profile`: [(duration_us, true mA), ...] for the
        current inside the step (default: the set_truth current for all of it). Over-current and
        short circuit are timed inside each piece, so an SCD trip inside a 100 ms step lands at its
        us delay; a FET that opens cuts the rest of the step's current in that direction.
        Returns the us into the step when a FET last opened (-1: none)."""
        if self.off:
            return -1
        if profile is None:
            profile = ((dt_us, self.i_ma),)
        cut = -1
        t = 0
        ena = self.en[0]
        r = self._r
        for dur, i in profile:
            i = self.passes(i)
            uv = i * r // 1000  # shunt voltage, + charge
            if not self.cfg_update and ena & 0xF0:
                for name, bit, th, delay in self._oc:
                    if not ena & bit:
                        continue
                    hit = uv >= th if th > 0 else uv <= th
                    if hit and not self.status_a & bit:
                        self.alert_a |= bit
                        held = self._tmr.get(name, 0)
                        if held + dur >= delay:
                            at = t + (delay - held if delay > held else 0)
                            self._trip(name, bit, 0, at)
                            before = self.chg_fet, self.dsg_fet
                            self._fets()
                            if before != (self.chg_fet, self.dsg_fet):
                                cut = at
                            # the part of the piece after the trip carries what still passes
                            self.q += self.measured_ma(i) * (at - t)
                            self.q_t += at - t
                            dur -= at - t
                            t = at
                            i = self.passes(i)
                            uv = i * r // 1000
                        else:
                            self._tmr[name] = held + dur
                    elif not hit:
                        self._tmr[name] = 0
                        self.alert_a &= ~bit
            self.q += self.measured_ma(i) * dur
            self.q_t += dur
            t += dur
        self.t_us += dt_us
        self._slow(dt_us)
        self._sleep_step(dt_us)
        self._fets()
        return cut

    def _trip(self, name, bit, reg, at):
        if reg == 0:
            self.status_a |= bit
        else:
            self.status_b |= bit
        self._tmr[name] = 0
        self._tmr["-" + name] = 0
        self.trips.append((self.t_us + at, name))

    def _hold(self, name, cond, dt, delay):
        """Time `name`'s condition; True once it has held for delay."""
        if not cond:
            self._tmr[name] = 0
            return False
        v = self._tmr.get(name, 0) + dt
        self._tmr[name] = v
        return v >= delay

    def _slow(self, dt):
        """Cell-voltage, temperature and recovery checks (once per step: their delays are ms-s)."""
        if self.cfg_update:
            return
        reg = self.reg
        hi = -32768
        lo = 32767
        for k in range(16):
            if self.vcell_mode and not self.vcell_mode >> k & 1:
                continue
            v = reg[0x14 + 2 * k] | (reg[0x15 + 2 * k] << 8)
            if v & 0x8000:
                v -= 0x10000
            hi = v if v > hi else hi
            lo = v if v < lo else lo
        ena, enb = self.en[0], self.en[1]
        th, hy, dl = self._cov
        self._cell(ena & 0x08, "cov", 0x08, hi >= th, hi < th - hy, dt, dl)
        th, hy, dl = self._cuv
        self._cell(ena & 0x04, "cuv", 0x04, lo <= th, lo > th + hy, dt, dl)
        # current recoveries (TRM 5.2: OCC when current <= OCC Recovery Threshold, OCD when current >=
        # OCD Recovery Threshold, each for Recovery Time; SCD after SCD Recovery Time)
        i = self.measured_ma(self.passes(self.i_ma))
        for name, bit, _, _ in self._oc:
            if self.status_a & bit:
                if name == "scd":
                    ok = True
                    need = self._scd_recov_us
                elif name == "occ":
                    ok = i <= self._occ_rec
                    need = self._recov_us
                else:
                    ok = i >= self._ocd_rec
                    need = self._recov_us
                if self._hold("-" + name, ok, dt, need):
                    self.status_a &= ~bit
        # temperatures: cell thermistors are the TS pins configured 0x07, FET ones 0x0F
        ts = self._ts
        cmax = -9999
        cmin = 9999
        fmax = -9999
        for k in range(3):
            if k >= len(ts) or ts[k] is None:
                continue
            c = self._ts_cfg[k]
            if c == 0x07:
                cmax = ts[k] if ts[k] > cmax else cmax
                cmin = ts[k] if ts[k] < cmin else cmin
            elif c == 0x0F:
                fmax = ts[k] if ts[k] > fmax else fmax
        for name, bit, th, rec, delay, over in self._temps:
            if not enb & bit:
                continue
            x = fmax if name == "otf" else cmax if over else cmin
            if x in (-9999, 9999):
                continue
            hit = x >= th if over else x <= th
            if hit:
                self.alert_b |= bit
            else:
                self.alert_b &= ~bit
            if self.status_b & bit:
                ok = x <= rec if over else x >= rec
                if self._hold("-" + name, ok, dt, self._recov_us):
                    self.status_b &= ~bit
            elif self._hold(name, hit, dt, delay):
                self._trip(name, bit, 1, 0)

    def _cell(self, on, name, bit, hit, ok, dt, delay):
        if not on:
            return
        if hit:
            self.alert_a |= bit
        else:
            self.alert_a &= ~bit
        if self.status_a & bit:
            if self._hold("-" + name, ok, dt, self._recov_us):
                self.status_a &= ~bit
        elif self._hold(name, hit, dt, delay):
            self._trip(name, bit, 0, 0)

    def _sleep_step(self, dt):
        """SLEEP (TRM 7.x): allowed by Power Config[SLEEP] and SLEEP_ENABLE, entered when |current|
        is below Sleep Current; left when it passes the wake comparator (or Sleep Current again).
        In SLEEP the voltages are measured only every Voltage Time (set_truth keeps the last)."""
        i = self.measured_ma(self.passes(self.i_ma))
        a = i if i >= 0 else -i
        if self.sleeping:
            if a >= self._wake_ma or a >= self._sleep_ma or not (self._sleep_ok and self.sleep_cmd):
                self.sleeping = False
            else:
                self._sleep_t += dt
        elif self._sleep_ok and self.sleep_cmd and a < self._sleep_ma and not self.cfg_update:
            self.sleeping = True
            self._sleep_t = 0

    @property
    def hold_voltages(self):
        """True while SLEEP skips this measurement (one every Voltage Time)."""
        if not self.sleeping:
            return False
        if self._sleep_t >= self._vtime_us:
            self._sleep_t = 0
            return False
        return True
