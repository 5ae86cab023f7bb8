# NTC thermistor in a divider on the MCU ADC -> 0.1 °C, by an integer table built once at start-up.
# Floats are used only in __init__; dc_from_u16/dc_from_uv/read_dc are integer-only and allocate nothing.
# The thermistor's R(T) comes from the part's published resistance-temperature table (board file
# "ntc": {"part": NAME} -> pwfw/models/ntc_NAME.json, or "rt": [[°C, ohm], ...]), Steinhart-Hart
# coefficients ("sh": [A, B, C]) or, for old board files, a B constant ("beta"); docs/hardware.md.
from array import array
from math import exp, log

from pwfw.compat import const, micropython

_SHIFT = const(7)  # one table entry every 128 u16 codes (8 codes of a 12-bit ADC)
_STEP = const(128)
_K_SHIFT = const(21)  # uV -> u16 scale factor as a 16-bit fixed-point number (see dc_from_uv)
DEFAULT_PART = "b57330v2103"  # TDK (EPCOS) 10 kOhm, B25/85 = 3435 K: pwfw/models/ntc_b57330v2103.json
# RP2040-E11: the ADC's DNL spikes at 512, 1536, 2560 and 3584 (RP2040 data sheet errata). The code just
# below each is wide: it swallows this many LSB of input (the jumps in the mean error of five Picos
# measured by kitanokitsune/rp2040adc_correction: 10, 9, 9, 10 LSB), so every code above reads low by
# the sum of those below. The correction adds them back; the wide code itself reads its middle.
# Those four codes and widths are written out in _codes_e11 (viper: ~24 codes a second on an RP2040).
_K273 = 273.15


@micropython.viper
def _codes_e11(hal, ch, n: int) -> int:
    """The sum of n 12-bit RP2040 codes of channel ch with the E11 DNL spikes taken out, in 1/2 LSB
    (so a wide code can read its middle): what an ideal ADC would have given. The wide codes 511,
    1535, 2559, 3583 swallow 10, 9, 9, 10 LSB (above)."""
    s = 0
    k = 0
    while k < n:
        c = int(hal.adc_u16(ch)) >> 4
        x = c << 1
        if c >= 511:
            x += 10 if c == 511 else 20
        if c >= 1535:
            x += 9 if c == 1535 else 18
        if c >= 2559:
            x += 9 if c == 2559 else 18
        if c >= 3583:
            x += 10 if c == 3583 else 20
        s += x
        k += 1
    return s


def _t_of_r_table(rt):
    """T (K) from R through a published R-T table: 1/T linear in ln R between neighbours (exact for a
    B-curve between each pair of points), the end segments extended beyond the table."""
    ts = [1 / (p[0] + _K273) for p in rt]
    ls = [log(p[1]) for p in rt]
    n = len(rt)

    def f(r):
        lr = log(r)
        i = 0
        while i < n - 2 and lr < ls[i + 1]:  # R falls with T: find ls[i] >= lr >= ls[i+1]
            i += 1
        return 1 / (ts[i] + (lr - ls[i]) * (ts[i + 1] - ts[i]) / (ls[i + 1] - ls[i]))
    return f


def load_part(name):
    """The R-T table of a shipped part (pwfw/models/ntc_<name>.json): [[°C, ohm], ...]."""
    import json

    import pwfw

    d = pwfw.__file__.rsplit("/", 1)[0] if "/" in pwfw.__file__ else "."
    with open(d + "/models/ntc_" + name + ".json") as f:
        return json.load(f)["rt"]


def t_of_r_fn(r25=10000, beta=3435, rt=None, sh=None):
    """R (ohm) -> T (K) for a B constant, a Steinhart-Hart triple or an R-T table (host tools use it too)."""
    if rt is not None:
        rt = sorted(rt)
        for k in range(1, len(rt)):
            if not rt[k][1] < rt[k - 1][1]:
                raise ValueError("ntc.rt: resistance must fall as temperature rises")
        return _t_of_r_table(rt)
    if sh is not None:
        a, b, c = sh
        return lambda r: 1 / (a + b * log(r) + c * log(r) ** 3)
    return lambda r: 1 / (1 / 298.15 + log(r / r25) / beta)


class Ntc:
    """An NTC in a divider driven from the ADC reference (ratiometric), or from a rail measured in uV.

    top=True: the NTC (plus r_series) is between the rail and the ADC pin, r_fixed to ground;
    top=False: the reverse. Readings outside t_min_dc..t_max_dc (an open or shorted sensor reads at a
    rail) give None, never a temperature. e11: correct the RP2040's DNL spikes (RP2040-E11) per read;
    n_avg: reads averaged per temperature (the ADC's own noise dithers them).
    """

    def __init__(self, r_fixed=10000, r25=10000, beta=3435, top=True, adc_bits=12, vref_mv=3300,
                 uv_max=0, t_min_dc=-400, t_max_dc=1250, rt=None, sh=None, r_series=0, e11=False, n_avg=1,
                 uv_min=0):
        self.top = top
        # readings outside uv_min..uv_max are outside the ADC's specified range (ESP32 at 11 dB: 150 to
        # 2450 mV, where read_uv is calibrated; past it compression, then saturation at ~3.1 V): None
        self.uv_max = uv_max
        self.uv_min = uv_min
        self.vref_uv = vref_mv * 1000
        self.raw = 0  # the last reading read_dc() took
        self.e11 = e11
        self.n_avg = n_avg if n_avg > 0 else 1
        self.rail_uv = 0  # the rail read_dc() last measured (0: none, vref_mv is used)
        t_of_r = t_of_r_fn(r25, beta, rt, sh)

        def dc_of(x):  # u16 code -> temperature (nodes past a rail are clamped to it)
            f = min(max(x, 1), 65535) / 65536
            r = r_fixed * ((1 - f) / f if top else f / (1 - f)) - r_series
            return 10 * (t_of_r(max(r, 1.0)) - _K273)

        def x_of(dc):  # temperature -> u16 code, by bisection (dc_of is monotonic in x)
            lo, hi = 1, 65535
            rising = dc_of(hi) > dc_of(lo)
            while hi - lo > 1:
                mid = (lo + hi) >> 1
                if (dc_of(mid) < dc) == rising:
                    lo = mid
                else:
                    hi = mid
            return lo

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
        t = self.table = array("h", bytes(2 * n))  # filled in place: a list of n first would double the peak
        for i in range(n):
            t[i] = int(round(dc_of(self.x0 + i * _STEP)))
        # u16 = uv * 65536 / vref_uv, as uv * k >> _K_SHIFT with a 16-bit k split in two bytes so no
        # product passes 2**30 (uv <= vref_uv < 6.6 V)
        k = (65536 << _K_SHIFT) // self.vref_uv
        if not 1 << 14 <= k < 1 << 16:
            raise ValueError("vref_mv")
        self._k_hi = k >> 8
        self._k_lo = k & 0xFF

    @classmethod
    def from_board(cls, cfg):
        """From a board file's "ntc" block; ESP32 at 11 dB: only Espressif's specified 150-2450 mV.
        The thermistor: "rt" or "sh" when given, else "beta" (old board files), else "part" or the
        shipped default part's table."""
        esp = cfg.get("atten_db") == 11
        uv_max = 2450000 if esp else 0
        rt = cfg.get("rt")
        sh = cfg.get("sh")
        if rt is None and sh is None and ("part" in cfg or "beta" not in cfg):
            rt = load_part(cfg.get("part", DEFAULT_PART))
        return cls(cfg["r_fixed"], cfg.get("r25", 10000), cfg.get("beta", 3435), cfg.get("ntc_on_top", False),
                   cfg.get("adc_bits", 12), cfg.get("vref_mv", 3300), uv_max, rt=rt, sh=sh,
                   r_series=cfg.get("r_series", 0), e11=cfg.get("e11", False), n_avg=cfg.get("n_avg", 1),
                   uv_min=150000 if esp else 0)

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

    def dc_from_uv(self, uv, rail_uv=0):
        """0.1 °C from calibrated microvolts (ESP32 ADC.read_uv): a fraction of the measured rail
        (rail_uv, the divider's supply) or, without one, of vref_mv."""
        if uv < self.uv_min or (self.uv_max and uv > self.uv_max):
            return None
        if rail_uv > 0:
            return self.dc_from_u16(self._frac16(uv, rail_uv))
        if uv >= self.vref_uv:
            return None
        x = ((uv * self._k_hi) >> (_K_SHIFT - 8)) + ((uv * self._k_lo) >> _K_SHIFT)
        return self.dc_from_u16(x)

    @micropython.native
    def _frac16(self, uv, rail):
        # round(uv * 65536 / rail) by 16 steps of long division: every value stays below 2 * rail
        if uv >= rail:
            return 65536
        x = 0
        r = uv
        for _ in range(16):
            r <<= 1
            x <<= 1
            if r >= rail:
                r -= rail
                x |= 1
        return x + 1 if (r << 1) >= rail else x

    def read_dc(self, hal, ch):
        """Channel ch through the HAL: calibrated microvolts where the port has them (against the
        rail the HAL measures, if any), else raw codes (n_avg of them; E11-corrected on an RP2040).
        The reading itself (uV or the sum of codes) is left in self.raw, for stuck-input checks."""
        # small frames: MicroPython heap-allocates a bytecode frame of more than ~11 slots
        uv = hal.adc_uv(ch)
        if uv is not None:
            return self._read_uv(hal, ch, uv)
        return self._read_codes(hal, ch)

    @micropython.native
    def _read_uv(self, hal, ch, uv):
        n = self.n_avg
        for _ in range(n - 1):
            uv += hal.adc_uv(ch)
        self.raw = uv
        rail = hal.rail_uv()
        self.rail_uv = rail if rail else 0
        return self.dc_from_uv((uv + (n >> 1)) // n, self.rail_uv)

    @micropython.native
    def _read_codes(self, hal, ch):
        n = self.n_avg
        s = 0
        if self.e11:
            s = _codes_e11(hal, ch, n)
            self.raw = s
            # mean in 1/2 LSB of 12 bits -> u16 scale (x 8), rounded
            return self.dc_from_u16((s * 8 + (n >> 1)) // n)
        for _ in range(n):
            s += hal.adc_u16(ch)
        self.raw = s
        return self.dc_from_u16((s + (n >> 1)) // n)
