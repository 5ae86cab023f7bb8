# NTC dividers on the MCU ADC, simulated: temperature -> thermistor R (the part's published R-T
# table, or a B constant for old board files) -> divider voltage from a rail that is a parameter
# (rail_mv, not an exact 3.300 V) -> ADC code, with the port's non-idealities:
# rp2: 12-bit SAR referenced to the rail (ratiometric), noise ~0.75 LSB, and RP2040-E11: the codes
#   just below 512, 1536, 2560 and 3584 are wide (each swallows ~9-10 LSB of input, drawn per seed
#   around the mean of five measured Picos), so every code above reads low; read_u16 scaling
#   (c << 4 | c >> 8); no read_uv.
# esp32: ADC1 at 11 dB (IDF: ADC_ATTEN_DB_12) referenced to its internal ~1.1 V, so codes follow the
#   pin's voltage, not the rail; specified range 150-2450 mV (Espressif). Outside it: a dead zone
#   near 0 V, compression above 2450 mV, saturation at 3.1 V; read_uv is the calibrated voltage
#   (1 mV noise) inside the range and keeps the compression outside it (the calibration fits the
#   specified range only). rail_uv() reads the rail through a divider on another ADC1 pin.
# Floats are fine here: this is the simulator, not the firmware.
from array import array
from math import exp, log

from hil.chips.rng import Rng
from hil.mpcompat import micropython

OK = 0
OPEN = 1
SHORT = 2
STUCK = 3
_KINDS = {"ok": OK, "clear": OK, "open": OPEN, "short": SHORT, "stuck": STUCK}
_ESP_ZERO_MV = 75  # below this the ESP32 ADC reads 0
_ESP_LO_MV = 150  # Espressif's specified range at 11 dB: 150..2450 mV
_ESP_KNEE_MV = 2450
_ESP_SAT_MV = 3100  # where it saturates
_E11_CODES = (511, 1535, 2559, 3583)
_E11_MEAN = (10, 9, 9, 10)  # extra LSB each wide code swallows (mean of five Picos, see pwfw.ntc)


def _r_of_t_table(rt):
    ts = [1 / (p[0] + 273.15) for p in rt]
    ls = [log(p[1]) for p in rt]
    n = len(rt)

    def f(t_k):
        x = 1 / t_k
        i = 0
        while i < n - 2 and x < ts[i + 1]:  # 1/T falls as T rises
            i += 1
        return exp(ls[i] + (x - ts[i]) * (ls[i + 1] - ls[i]) / (ts[i + 1] - ts[i]))
    return f


class NtcAdcSim:
    def __init__(self, board_ntc_cfg, port="rp2", seed=1, rail_mv=None):
        c = board_ntc_cfg
        self.port = port
        self.n = len(c["pins"])
        self.r_fixed = c["r_fixed"]
        self.r_series = c.get("r_series", 0)
        self.top = c.get("ntc_on_top", False)
        self.vref_mv = c.get("vref_mv", 3300)
        # the real rail: a parameter (a DevKitC's LDO or a Pico's buck gives 3.25..3.35 V)
        self.rail_mv = self.vref_mv if rail_mv is None else rail_mv
        self.rail_div = c.get("rail_div", 2)
        if "rt" in c or "part" in c or "beta" not in c:
            rt = c.get("rt")
            if rt is None:
                from pwfw.ntc import DEFAULT_PART, load_part  # data only: the part's published table

                rt = load_part(c.get("part", DEFAULT_PART))
            self._r_of_t = _r_of_t_table(sorted(rt))
        else:
            r25 = c.get("r25", 10000)
            beta = c["beta"]
            self._r_of_t = lambda t: r25 * exp(beta * (1 / t - 1 / 298.15))
        self.rng = Rng(seed)
        self.noise_lsb16 = 12  # 1 sigma in 1/16 LSB (0.75 LSB): bounded to about +-2.6 LSB
        self.noise_uv = 1000
        # RP2040-E11: this chip's wide codes, each within 1 LSB of the measured mean
        self.e11 = port == "rp2"
        self._wide = array("i", [0] * 4)
        for k in range(4):
            self._wide[k] = _E11_MEAN[k] - 1 + self.rng.below(3)
        self.temps = array("h", [250] * self.n)
        self.faults = bytearray(self.n)
        self._last = array("i", [0] * self.n)  # what a stuck input keeps returning
        self._last_uv = array("i", [0] * self.n)
        # the noiseless input (1/16 LSB) of each channel, kept while its temperature and fault state
        # stay the same: the plant's temperatures change once per thermal step, not every sample
        self._c16 = array("i", [0] * self.n)
        self._c16_ok = bytearray(self.n)

    def set_temp(self, ch, dc):
        if self.temps[ch] != dc:
            self.temps[ch] = dc
            self._c16_ok[ch] = 0

    def set_rail(self, mv):
        self.rail_mv = mv
        for ch in range(self.n):
            self._c16_ok[ch] = 0

    def fault(self, ch, kind):
        """kind: 'open' | 'short' | 'stuck' | 'ok' (or 1, 2, 3, 0)."""
        self.faults[ch] = _KINDS[kind] if isinstance(kind, str) else kind
        self._c16_ok[ch] = 0

    def open(self, ch):
        self.fault(ch, OPEN)

    def short(self, ch):
        self.fault(ch, SHORT)

    def stuck(self, ch):
        self.fault(ch, STUCK)

    def clear(self, ch):
        self.fault(ch, OK)

    def resistance(self, ch):
        return self._r_of_t(self.temps[ch] / 10 + 273.15)

    def ratio(self, ch):
        """Divider output as a fraction of the rail."""
        f = self.faults[ch]
        rf = self.r_fixed
        if f == OPEN:  # open NTC: the fixed resistor pulls the pin to its rail
            return 0.0 if self.top else 1.0
        r = (0.0 if f == SHORT else self.resistance(ch)) + self.r_series
        return rf / (r + rf) if self.top else r / (r + rf)

    def pin_mv(self, ch):
        return self.ratio(ch) * self.rail_mv

    def _esp_mv(self, mv):
        # what the ESP32's ADC1 at 11 dB makes of a pin voltage, in mV of its linear scale
        if mv <= _ESP_ZERO_MV:
            return 0.0
        if mv < _ESP_LO_MV:  # the toe: the dead zone fades into the linear range
            return _ESP_LO_MV * (mv - _ESP_ZERO_MV) / (_ESP_LO_MV - _ESP_ZERO_MV)
        if mv > _ESP_KNEE_MV:  # compression: the slope falls to half near the rail
            d = mv - _ESP_KNEE_MV
            mv = _ESP_KNEE_MV + d * (1 - d / (4 * (3300 - _ESP_KNEE_MV)))
        return mv

    def _esp_code(self, mv):
        return self._esp_mv(mv) * 4096 / _ESP_SAT_MV

    def _rp2_code16(self, x16):
        # RP2040-E11: an ideal input x (1/16 LSB) to the code it reads, the wide codes swallowing input
        for k in range(4):
            e = _E11_CODES[k]
            w = self._wide[k]
            c = x16 >> 4
            if c > e + w:
                x16 -= w << 4
            elif c > e:
                return e << 4
        return x16

    @micropython.native
    def u16(self, ch):
        if self.faults[ch] == STUCK:
            return self._last[ch]
        if not self._c16_ok[ch]:
            ratio = self.ratio(ch)
            if self.port == "esp32":
                self._c16[ch] = int(self._esp_code(ratio * self.rail_mv) * 16)
            else:
                self._c16[ch] = int(ratio * 4096 * 16)
            self._c16_ok[ch] = 1
        x = self._c16[ch] + self.rng.gauss(self.noise_lsb16)
        if self.e11:
            x = self._rp2_code16(x)
        c = (x + 8) >> 4
        c = 0 if c < 0 else 4095 if c > 4095 else c
        v = (c << 4) | (c >> 8)
        self._last[ch] = v
        return v

    def uv(self, ch):
        """ESP32 ADC.read_uv(): calibrated microvolts inside the specified range, saturating at 3.1 V;
        None on other ports."""
        if self.port != "esp32":
            return None
        if self.faults[ch] == STUCK:
            return self._last_uv[ch]
        uv = self._esp_uv(self.pin_mv(ch))
        self._last_uv[ch] = uv
        return uv

    def _esp_uv(self, mv):
        uv = int(self._esp_mv(mv) * 1000) + self.rng.gauss(self.noise_uv)
        lim = _ESP_SAT_MV * 1000
        return 0 if uv < 0 else lim if uv > lim else uv

    def rail_uv(self):
        """The rail as the HAL measures it on an ESP32: read_uv of rail / rail_div, times rail_div."""
        if self.port != "esp32":
            return None
        return self._esp_uv(self.rail_mv / self.rail_div) * self.rail_div


class AdcHal:
    """The ADC part of the HAL contract (docs/architecture.md) over a simulated ADC, for driving
    pwfw.ntc without a board: rail=False is a board without the rail divider (rail_uv None)."""

    def __init__(self, sim, rail=True):
        self.sim = sim
        self.rail = rail

    def adc_u16(self, ch):
        return self.sim.u16(ch)

    def adc_uv(self, ch):
        return self.sim.uv(ch)

    def rail_uv(self):
        return self.sim.rail_uv() if self.rail else None
