# TI INA228 85 V, 20-bit power/energy/charge monitor on I2C. Registers are big-endian.
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
# continuous bus+shunt+temperature (MODE 0xF), 1052 us per conversion (5) each, 16-sample average (2):
# a full result every ~50 ms, inside the 100 ms sample period
_ADC_CFG = const(0xFB6A)
TI_ID = const(0x5449)
INA228_ID = const(0x228)


class INA228:
    def __init__(self, i2c, addr=0x40, shunt_uohm=500, max_ma=150000, retries=2):
        if not 0 < max_ma < 1 << 21:
            raise ValueError("max_ma")
        self.i2c = i2c
        self.addr = addr
        self.retries = retries
        self.nacks = 0
        self.max_ma = max_ma
        # CURRENT_LSB = max/2**19; SHUNT_CAL = 13107.2e6 * CURRENT_LSB[A] * R[ohm] = max_ma * R[uohm] / 40000
        self.shunt_cal = (max_ma * shunt_uohm + 20000) // 40000
        if not 0 < self.shunt_cal < 1 << 15:
            raise ValueError("shunt_cal")
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
        self.write_reg(_CONFIG, 0)  # ADCRANGE 0: +-163.84 mV full scale
        self.write_reg(_ADC_CONFIG, _ADC_CFG)
        self.write_reg(_SHUNT_CAL, self.shunt_cal)
        if self._read_u16(_SHUNT_CAL) != self.shunt_cal:
            raise ValueError("shunt_cal readback")

    def reset_charge(self):
        self.write_reg(_CONFIG, _RSTACC)

    def _ma(self, raw):
        # round(raw * max_ma / 2**19) without raw * max_ma (up to 2**40): split raw at bit 10
        a = (raw >> 10) * self.max_ma
        b = (raw & 0x3FF) * self.max_ma
        return (a >> 9) + ((((a & 0x1FF) << 10) + b + (1 << 18)) >> 19)

    def read_current_ma(self):
        return self._ma(self._read_20(_CURRENT))

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
