# TI INA228 85 V, 20-bit power/energy/charge monitor on I2C (data sheet SBOS896). Registers are big-endian.
# Read paths are integer-only with intermediates below 2**30, so they allocate nothing on 32-bit ports.
from pwfw.compat import const

_CONFIG = const(0x00)
_ADC_CONFIG = const(0x01)
_SHUNT_CAL = const(0x02)
_VBUS = const(0x05)
_DIETEMP = const(0x06)
_CURRENT = const(0x07)
_CHARGE = const(0x0A)
_MANUFACTURER_ID = const(0x3E)
_DEVICE_ID = const(0x3F)
_RST = const(0x8000)
_RSTACC = const(0x4000)
_ADCRANGE = const(0x0010)  # CONFIG bit 4: shunt full scale +-40.96 mV instead of +-163.84 mV
# continuous bus+shunt+temperature (MODE 0xF), 1052 us per conversion (5) each, 16-sample average (2):
# a full result every ~50 ms, inside the 100 ms sample period
_ADC_CFG = const(0xFB6A)
_M30 = const(0x3FFFFFFF)
TI_ID = const(0x5449)
INA228_ID = const(0x228)
# shunt ADC full scale in nV: ADCRANGE 0 and 1
FS0_NV = const(163840000)
FS1_NV = const(40960000)
# the board's current full scale (current.max_ma) must be this much above its highest over-current
# limit, in percent: a current past the limit must still read as itself, never clipped at the limit
HEADROOM_PCT = const(150)


def choose_range(shunt_uohm, max_ma):
    """ADCRANGE for a shunt and a full-scale current: 1 (+-40.96 mV, 4x finer) when max_ma's shunt
    voltage fits in it, else 0 (+-163.84 mV); ValueError when it does not fit in either."""
    nv = shunt_uohm * max_ma  # uohm * mA = nV
    if nv <= FS1_NV:
        return 1
    if nv <= FS0_NV:
        return 0
    raise ValueError("current.max_ma: %d mA through %d uOhm is %d uV, past the INA228's +-163840 uV shunt "
                     "range: use a smaller shunt or a smaller max_ma" % (max_ma, shunt_uohm, nv // 1000))


def check_headroom(max_ma, oc_chg_ma, oc_dsg_ma):
    """ValueError unless max_ma >= 1.5 x the highest over-current limit (HEADROOM_PCT)."""
    top = oc_chg_ma if oc_chg_ma > oc_dsg_ma else oc_dsg_ma
    if max_ma * 100 < top * HEADROOM_PCT:
        raise ValueError("current.max_ma: %d is below %d%% of the highest over-current limit (%d mA): a "
                         "current past the limit would read clipped; set max_ma to at least %d"
                         % (max_ma, HEADROOM_PCT, top, (top * HEADROOM_PCT + 99) // 100))


class INA228:
    def __init__(self, i2c, addr=0x40, shunt_uohm=500, max_ma=150000, retries=2):
        if not 0 < max_ma < 1 << 21:
            raise ValueError("max_ma")
        self.i2c = i2c
        self.addr = addr
        self.retries = retries
        self.nacks = 0
        self.max_ma = max_ma
        self.adc_range = choose_range(shunt_uohm, max_ma)
        # CURRENT_LSB = max/2**19; SHUNT_CAL = 13107.2e6 * CURRENT_LSB[A] * R[ohm] = max_ma * R[uohm] / 40000,
        # times 4 with ADCRANGE 1 (SBOS896 8.1.2)
        k = 4 if self.adc_range else 1
        self.shunt_cal = (max_ma * shunt_uohm * k + 20000) // 40000
        if not 0 < self.shunt_cal < 1 << 15:
            raise ValueError("shunt_cal")
        # saturation: the CURRENT code at which the shunt ADC (fs_nv / R) or the 20-bit CURRENT
        # register (max_ma) clips, whichever is first, less 1/256 for noise. A reading there is
        # not a current, it is "at least this much": the application treats it as over-current.
        fs_nv = FS1_NV if self.adc_range else FS0_NV
        top = min(1 << 19, fs_nv * (1 << 19) // (shunt_uohm * max_ma))
        self._sat = top - (top >> 8)
        self.saturated = False  # the last read_current_ma() was at full scale
        self.sat_count = 0  # how many reads were
        self._q_last = 0  # CHARGE's low 30 bits at the last charge_delta_mas()
        self._q_rem = 0  # and the fraction of a mA*s it left over (in 1/2**19)
        self._b = bytearray(5)
        mv = memoryview(self._b)
        self._b2 = mv[:2]
        self._b3 = mv[:3]
        self._w = bytearray(2)
        self._rd = i2c.readfrom_mem_into  # bound once: calling it allocates nothing
        self._reg = 0

    # small frames on the read path: MicroPython heap-allocates frames over ~11 words (a try costs ~3)
    def _read(self, reg, buf):
        self._reg = reg
        tries = self.retries
        while tries:
            tries -= 1
            if self._try(buf):
                return
        # the last attempt raises the bus's own OSError (ENODEV, ETIMEDOUT) unchanged
        self.nacks += 1
        self._rd(self.addr, reg, buf)
        self.nacks -= 1

    def _try(self, buf):
        try:
            self._rd(self.addr, self._reg, buf)
        except OSError:
            self.nacks += 1
            return False
        return True

    def _read_u16(self, reg):
        self._read(reg, self._b2)
        return (self._b[0] << 8) | self._b[1]

    def _read_20(self, reg):
        # 24-bit register, 20-bit two's complement value in bits 23..4
        self._read(reg, self._b3)
        b = self._b
        v = (b[0] << 12) | (b[1] << 4) | (b[2] >> 4)
        return v - (1 << 20) if v & 0x80000 else v

    def write_reg(self, reg, v):
        w = self._w
        w[0] = v >> 8
        w[1] = v & 0xFF
        tries = self.retries
        while True:
            try:
                self.i2c.writeto_mem(self.addr, reg, w)
                return
            except OSError:
                self.nacks += 1
                if tries <= 0:
                    raise
                tries -= 1

    def configure(self):
        """Check the part, reset it (zeroes the charge accumulator), set ADC and SHUNT_CAL, verify."""
        if self._read_u16(_MANUFACTURER_ID) != TI_ID or self._read_u16(_DEVICE_ID) >> 4 != INA228_ID:
            raise ValueError("not an ina228")
        self.write_reg(_CONFIG, _RST)
        cfg = _ADCRANGE if self.adc_range else 0
        self.write_reg(_CONFIG, cfg)
        self.write_reg(_ADC_CONFIG, _ADC_CFG)
        self.write_reg(_SHUNT_CAL, self.shunt_cal)
        if self._read_u16(_SHUNT_CAL) != self.shunt_cal or self._read_u16(_CONFIG) & _ADCRANGE != cfg:
            raise ValueError("ina228 config readback")
        self._q_last = 0
        self._q_rem = 0

    def reset_charge(self):
        self.write_reg(_CONFIG, _RSTACC | (_ADCRANGE if self.adc_range else 0))
        self._q_last = 0
        self._q_rem = 0

    def _ma(self, raw):
        # round(raw * max_ma / 2**19) without raw * max_ma (up to 2**40): split raw at bit 10
        a = (raw >> 10) * self.max_ma
        b = (raw & 0x3FF) * self.max_ma
        return (a >> 9) + ((((a & 0x1FF) << 10) + b + (1 << 18)) >> 19)

    def read_current_ma(self):
        """Current in mA; sets `saturated` when the reading is at the part's full scale (the true
        current may be anything beyond it)."""
        raw = self._read_20(_CURRENT)
        sat = raw >= self._sat or raw <= -self._sat
        self.saturated = sat
        if sat:
            self.sat_count += 1
        return self._ma(raw)

    def read_vbus_mv(self):
        return (self._read_20(_VBUS) * 25 + 64) >> 7  # 195.3125 uV = 25/128 mV

    def read_die_dc(self):
        v = self._read_u16(_DIETEMP)
        if v & 0x8000:
            v -= 0x10000
        return (v * 5 + 32) >> 6  # 7.8125 m°C = 1/128 °C; 0.1 °C = v * 10 / 128

    def read_charge_mas(self):
        """Charge since configure()/reset_charge() in mA*s (CHARGE LSB = CURRENT_LSB * 1 s).

        40-bit register: past 2**30 LSB (~85 Ah at 150 A full scale) the integers are long ints.
        """
        self._read(_CHARGE, self._b)
        b = self._b
        v = (b[0] << 32) | (b[1] << 24) | (b[2] << 16) | (b[3] << 8) | b[4]
        if v & (1 << 39):
            v -= 1 << 40
        return self._ma(v)

    def charge_delta_mas(self):
        """Charge in mA*s counted by the part since the previous call (or configure/reset_charge).

        Integer-only and allocation-free: the difference of CHARGE's low 30 bits is the 40-bit
        difference (the register wraps modulo 2**40, and 2**30 divides it) as long as less than 2**29 LSB
        moved between calls (~70 Ah at 250 A full scale); the rounding remainder is carried, so the
        sum of the deltas is the register's charge without drift.
        """
        self._read(_CHARGE, self._b)
        b = self._b
        q = ((b[1] & 0x3F) << 24) | (b[2] << 16) | (b[3] << 8) | b[4]
        d = (q - self._q_last) & _M30
        self._q_last = q
        if d >= 1 << 29:
            d -= 1 << 30
        return self._lsb_to_mas(d)

    def _lsb_to_mas(self, d):
        # floor((d * max_ma + rem) / 2**19) keeping the remainder, split at bit 8 so no product passes
        # 2**30 while |d| < 2**17 (~62 A*s a call at 250 A full scale; beyond, long ints, still exact)
        m = self.max_ma
        a = (d >> 8) * m
        x = (a & 0x7FF) << 8
        x += (d & 0xFF) * m + self._q_rem
        out = (a >> 11) + (x >> 19)
        self._q_rem = x & 0x7FFFF
        return out
