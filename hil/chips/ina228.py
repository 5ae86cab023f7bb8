# The TI INA228 simulated at register level: shunt and bus voltage, current from SHUNT_CAL, die
# temperature and the hardware charge accumulator, with offset, gain and noise.
from hil.chips.rng import Rng

# register sizes in bytes (0 = not modelled, reads as zeros)
_SIZE = {0x00: 2, 0x01: 2, 0x02: 2, 0x03: 2, 0x04: 3, 0x05: 3, 0x06: 2, 0x07: 3, 0x08: 3,
         0x09: 5, 0x0A: 5, 0x0B: 2, 0x3E: 2, 0x3F: 2}
_CFG_DEFAULT = 0x0000
_ADC_DEFAULT = 0xFB68
_M20 = (1 << 20) - 1


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
        self.regs = {0x00: _CFG_DEFAULT, 0x01: _ADC_DEFAULT, 0x02: 0x1000, 0x3E: 0x5449, 0x3F: 0x2281}
        self.vshunt = 0
        self.vbus = 0
        self.die = 0
        self.current = 0
        self._acc = 0  # charge in CURRENT_LSB * ms

    def _i_raw(self, vshunt_raw):
        # CURRENT = VSHUNT * 4096 / SHUNT_CAL (SHUNT_CAL = 13107.2e6 * CURRENT_LSB * R, VSHUNT LSB 312.5 nV)
        cal = self.regs[0x02] or 1
        q = vshunt_raw * 4096
        return _sat20(q // cal if q >= 0 else -(-q // cal))

    def set_truth(self, i_ma, vbus_mv10, die_dc, dt_ms):
        """Current i_ma, then integrate it over dt_ms into the charge accumulator."""
        nv = i_ma * self.shunt_uohm  # mA * uohm = nV
        nv += nv * self.gain_ppm // 1000000 + self.offset_nv
        clean = _sat20((nv * 16 + 2500) // 5000)  # 312.5 nV = 5000/16 nV
        self.vshunt = _sat20(((nv + self.rng.gauss(self.noise_nv)) * 16 + 2500) // 5000)
        self.current = self._i_raw(self.vshunt)
        # the part accumulates every conversion, so the noise averages out of the charge
        self._acc += self._i_raw(clean) * dt_ms
        self.vbus = _sat20(vbus_mv10 * 64 // 125) if vbus_mv10 > 0 else 0  # 195.3125 uV LSB
        self.die = die_dc * 64 // 5  # 7.8125 m°C LSB

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
            return (q // 1000 if q >= 0 else -(-q // 1000)) & ((1 << 40) - 1)
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
        if len(data) < 2 or reg not in (0x00, 0x01, 0x02, 0x03, 0x0B):
            return
        v = (data[0] << 8) | data[1]
        if reg == 0x00:
            if v & 0x8000:
                self.reset()
                return
            if v & 0x4000:
                self._acc = 0
            v &= 0x3FFF
        elif reg == 0x02:
            v &= 0x7FFF
        self.regs[reg] = v
