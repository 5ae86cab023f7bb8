# NTC thermistor in a divider on the MCU ADC -> 0.1 °C, by an integer table built once at start-up.
# Floats are used only in __init__; dc_from_u16/dc_from_uv are integer-only and allocate nothing.
from array import array
from math import exp, log

from pwfw.compat import const, micropython

_SHIFT = const(7)  # one table entry every 128 u16 codes (8 codes of a 12-bit ADC)
_STEP = const(128)
_K_SHIFT = const(21)  # uV -> u16 scale factor as a 16-bit fixed-point number (see dc_from_uv)


class Ntc:
    """A B-parameter NTC in a divider driven from the ADC reference (ratiometric).

    top=True: the NTC is between the reference and the ADC pin, r_fixed to ground; top=False: the
    reverse. Readings outside t_min_dc..t_max_dc (an open or shorted sensor reads at a rail) give
    None, never a temperature.
    """

    def __init__(self, r_fixed=10000, r25=10000, beta=3435, top=True, adc_bits=12, vref_mv=3300,
                 uv_max=0, t_min_dc=-400, t_max_dc=1250):
        self.top = top
        self.uv_max = uv_max  # readings at/above this are ADC saturation (ESP32 11 dB: ~3.1 V): None
        self.vref_uv = vref_mv * 1000
        self.raw = 0  # the last reading read_dc() took

        def x_of(dc):  # temperature -> u16 code (65536 = the reference)
            r = r25 * exp(beta * (1 / (dc / 10 + 273.15) - 1 / 298.15))
            return 65536 * (r_fixed / (r + r_fixed) if top else r / (r + r_fixed))

        def dc_of(x):  # u16 code -> temperature (nodes past a rail are clamped to it)
            f = min(max(x, 1), 65535) / 65536
            r = r_fixed * ((1 - f) / f if top else f / (1 - f))
            return 10 * (1 / (1 / 298.15 + log(r / r25) / beta) - 273.15)

        # 1 °C of margin so a sensor exactly at a limit does not read as a fault through ADC noise
        a = x_of(t_min_dc - 10)
        b = x_of(t_max_dc + 10)
        if a > b:
            a, b = b, a
        # the rails: a few LSB of the ADC are never a valid reading
        rail = 3 << (16 - adc_bits)
        self.x_lo = max(int(a) + 1, rail)
        self.x_hi = min(int(b), 65535 - rail)
        self.x0 = self.x_lo & ~(_STEP - 1)
        n = ((self.x_hi - self.x0) >> _SHIFT) + 2
        self.table = array("h", [int(round(dc_of(self.x0 + i * _STEP))) for i in range(n)])
        # u16 = uv * 65536 / vref_uv, as uv * k >> _K_SHIFT with a 16-bit k split in two bytes so no
        # product passes 2**30 (uv <= vref_uv < 6.6 V)
        k = (65536 << _K_SHIFT) // self.vref_uv
        if not 1 << 14 <= k < 1 << 16:
            raise ValueError("vref_mv")
        self._k_hi = k >> 8
        self._k_lo = k & 0xFF

    @classmethod
    def from_board(cls, cfg):
        """From a board file's "ntc" block; ESP32 at 11 dB saturates near 3.1 V (3.05 V kept as margin)."""
        uv_max = 3050000 if cfg.get("atten_db") == 11 else 0
        return cls(cfg["r_fixed"], cfg["r25"], cfg["beta"], cfg.get("ntc_on_top", False),
                   cfg.get("adc_bits", 12), cfg.get("vref_mv", 3300), uv_max)

    @micropython.native
    def dc_from_u16(self, x):
        """0.1 °C from a read_u16() code, or None when out of range (open, short, saturated)."""
        if x < self.x_lo or x > self.x_hi:
            return None
        x -= self.x0
        i = x >> _SHIFT
        t = self.table
        a = t[i]
        return a + (((t[i + 1] - a) * (x & (_STEP - 1)) + (_STEP >> 1)) >> _SHIFT)

    def dc_from_uv(self, uv):
        """0.1 °C from calibrated microvolts (ESP32 ADC.read_uv), ratiometric against vref_mv."""
        if uv < 0 or uv >= self.vref_uv or (self.uv_max and uv >= self.uv_max):
            return None
        x = ((uv * self._k_hi) >> (_K_SHIFT - 8)) + ((uv * self._k_lo) >> _K_SHIFT)
        return self.dc_from_u16(x)

    def read_dc(self, hal, ch):
        """Channel ch through the HAL: calibrated microvolts where the port has them, else raw.
        The reading itself (uV or u16 code) is left in self.raw, for stuck-input checks."""
        uv = hal.adc_uv(ch)
        if uv is not None:
            self.raw = uv
            return self.dc_from_uv(uv)
        self.raw = hal.adc_u16(ch)
        return self.dc_from_u16(self.raw)
