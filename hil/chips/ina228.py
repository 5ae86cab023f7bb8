# The TI INA228 simulated at register level (data sheet SBOS896): the shunt ADC with CONFIG.ADCRANGE
# (+-163.84 mV, 312.5 nV LSB, or +-40.96 mV, 78.125 nV LSB) saturating at its full scale, bus voltage,
# die temperature, CURRENT from SHUNT_CAL, and the CHARGE accumulator (40-bit two's complement, LSB =
# CURRENT_LSB x 1 s) fed with the true continuous current between conversions, with offset, gain and
# noise. Portable: runs in the virtual board's MicroPython too.
from hil.chips.rng import Rng

# register sizes in bytes (0 = not modelled, reads as zeros)
_SIZE = {0x00: 2, 0x01: 2, 0x02: 2, 0x03: 2, 0x04: 3, 0x05: 3, 0x06: 2, 0x07: 3, 0x08: 3,
         0x09: 5, 0x0A: 5, 0x0B: 2, 0x3E: 2, 0x3F: 2}
_WRITABLE = (0x00, 0x01, 0x02, 0x03, 0x0B)  # alert limits (0x0C-0x11) are not modelled
_CFG_DEFAULT = 0x0000
_ADC_DEFAULT = 0xFB68
_DIAG_DEFAULT = 0x0001  # MEMSTAT: trim memory OK
_ADCRANGE = 0x0010  # CONFIG bit 4
_CHARGEOF = 0x0400  # DIAG_ALRT bit 10: the 40-bit CHARGE register overflowed
_MATHOF = 0x0200  # DIAG_ALRT bit 9: an arithmetic result (CURRENT) overflowed its 20 bits
_M20 = (1 << 20) - 1
_M40 = (1 << 40) - 1


def _sat20(v):
    return -(1 << 19) if v < -(1 << 19) else (1 << 19) - 1 if v >= 1 << 19 else v


class INA228Sim:
    def __init__(self, shunt_uohm=500, seed=1):
        self.shunt_uohm = shunt_uohm
        self.rng = Rng(seed)
        self.offset_nv = 0  # shunt offset voltage (the part: +-1 uV)
        self.gain_ppm = 0
        self.noise_nv = 300  # 1 sigma on VSHUNT, about one 312.5 nV LSB
        self._ptr = 0
        self._v = 0
        self._n = 2
        self.reset()
        self.set_truth(0, 0, 250, 0)

    def reset(self):
        self.regs = {0x00: _CFG_DEFAULT, 0x01: _ADC_DEFAULT, 0x02: 0x1000, 0x0B: _DIAG_DEFAULT,
                     0x3E: 0x5449, 0x3F: 0x2281}
        self.vshunt = 0
        self.vbus = 0
        self.die = 0
        self.current = 0
        self._acc = 0  # CHARGE in CURRENT_LSB * ms (the register shows it in CURRENT_LSB * s)

    def _nv_per_16lsb(self):
        # VSHUNT LSB x 16 in nV: 312.5 nV (ADCRANGE 0) or 78.125 nV (ADCRANGE 1)
        return 1250 if self.regs[0x00] & _ADCRANGE else 5000

    def _code(self, nv):
        # the shunt ADC: round to its LSB, saturating at +-2**19 LSB (+-163.84 or +-40.96 mV)
        q = self._nv_per_16lsb()
        x = nv * 16
        return _sat20((x + q // 2) // q if x >= 0 else -((-x + q // 2) // q))

    def _i_raw(self, vshunt_raw):
        # CURRENT = VSHUNT_raw * VSHUNT_LSB * 13107.2e6 / SHUNT_CAL: 4096 / SHUNT_CAL in both ranges
        # (the x4 SHUNT_CAL that ADCRANGE 1 asks for makes up for its 4x finer LSB)
        cal = self.regs[0x02] or 1
        q = vshunt_raw * 4096
        v = q // cal if q >= 0 else -(-q // cal)
        if v >= 1 << 19 or v < -(1 << 19):
            self.regs[0x0B] |= _MATHOF
        return _sat20(v)

    def set_truth(self, i_ma, vbus_mv10, die_dc, dt_ms, i_avg_ma=None):
        """The current now (i_ma) and its mean over the dt_ms since the last call (i_avg_ma, default
        i_ma): the part converts continuously, so CHARGE integrates the mean, including ripple a
        100 ms sample would alias."""
        self.vshunt = self._code(self._nv(i_ma) + self.rng.gauss(self.noise_nv))
        self.current = self._i_raw(self.vshunt)
        # the part accumulates every conversion, so the noise averages out of the charge; a
        # saturated shunt ADC saturates what it counts too
        if dt_ms:
            a = self._acc + self._i_raw(self._code(self._nv(i_ma if i_avg_ma is None else i_avg_ma))) * dt_ms
            lim = 1000 << 39
            if a >= lim or a < -lim:
                self.regs[0x0B] |= _CHARGEOF
                a = ((a + lim) % (2 * lim)) - lim  # the register wraps
            self._acc = a
        self.vbus = _sat20(vbus_mv10 * 64 // 125) if vbus_mv10 > 0 else 0  # 195.3125 uV LSB
        self.die = die_dc * 64 // 5  # 7.8125 m°C LSB

    def _nv(self, i_ma):
        nv = i_ma * self.shunt_uohm  # mA * uohm = nV
        return nv + nv * self.gain_ppm // 1000000 + self.offset_nv

    def _value(self, reg):
        if reg == 0x04:
            return (self.vshunt & _M20) << 4
        if reg == 0x05:
            return (self.vbus & _M20) << 4
        if reg == 0x06:
            return self.die & 0xFFFF
        if reg == 0x07:
            return (self.current & _M20) << 4
        if reg == 0x0A:
            q = self._acc
            return (q // 1000 if q >= 0 else -(-q // 1000)) & _M40
        return self.regs.get(reg, 0)

    def read(self, reg, buf):
        # two small frames: MicroPython heap-allocates frames over ~11 words
        if reg is None:
            reg = self._ptr
        self._v = self._value(reg)
        self._n = _SIZE.get(reg, 2)
        self._fill(buf)

    def _fill(self, buf):
        i = len(buf)
        while i:
            i -= 1
            buf[i] = (self._v >> (8 * (self._n - 1 - i))) & 0xFF if i < self._n else 0

    def write(self, reg, data):
        self._ptr = reg
        if len(data) < 2 or reg not in _WRITABLE:
            return
        v = (data[0] << 8) | data[1]
        if reg == 0x00:
            if v & 0x8000:
                self.reset()
                return
            if v & 0x4000:  # RSTACC: ENERGY and CHARGE to 0
                self._acc = 0
                self.regs[0x0B] &= ~_CHARGEOF
            v &= 0x3FFF
        elif reg == 0x02:
            v &= 0x7FFF
        elif reg == 0x0B:  # the flags (bits 11..0) are read-only
            v = (v & 0xF000) | (self.regs[0x0B] & 0x0FFF)
        self.regs[reg] = v
