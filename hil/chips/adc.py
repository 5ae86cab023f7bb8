# NTC dividers on the MCU ADC, simulated: temperature -> divider voltage -> ADC code.
# rp2: ideal 12-bit ADC with ~+-2 LSB noise, read_u16 scaling (c << 4 | c >> 8), no read_uv.
# esp32: ADC1 at 11 dB: a dead zone near 0 V, compression above ~2.45 V, saturation at 3.1 V;
# read_uv is calibrated (true voltage, 1 mV noise) up to the 3.1 V saturation.
# Floats are fine here: this is the simulator, not the firmware.
from array import array
from math import exp

from hil.chips.rng import Rng
from hil.mpcompat import micropython

OK = 0
OPEN = 1
SHORT = 2
STUCK = 3
_KINDS = {"ok": OK, "clear": OK, "open": OPEN, "short": SHORT, "stuck": STUCK}
_ESP_ZERO_MV = 75  # below this the ESP32 ADC reads 0
_ESP_KNEE_MV = 2450  # top of the linear range at 11 dB
_ESP_SAT_MV = 3100  # and where it saturates


class NtcAdcSim:
    def __init__(self, board_ntc_cfg, port="rp2", seed=1):
        c = board_ntc_cfg
        self.port = port
        self.n = len(c["pins"])
        self.r_fixed = c["r_fixed"]
        self.r25 = c["r25"]
        self.beta = c["beta"]
        self.top = c.get("ntc_on_top", False)
        self.vref_mv = c.get("vref_mv", 3300)
        self.rng = Rng(seed)
        self.noise_lsb16 = 12  # 1 sigma in 1/16 LSB (0.75 LSB): bounded to about +-2.6 LSB
        self.noise_uv = 1000
        self.temps = array("h", [250] * self.n)
        self.faults = bytearray(self.n)
        self._last = array("i", [0] * self.n)  # what a stuck input keeps returning
        self._last_uv = array("i", [0] * self.n)
        # the noiseless code (1/16 LSB) of each channel, kept while its temperature and fault state
        # stay the same: the plant's temperatures change once per thermal step, not every sample
        self._c16 = array("i", [0] * self.n)
        self._c16_ok = bytearray(self.n)

    def set_temp(self, ch, dc):
        if self.temps[ch] != dc:
            self.temps[ch] = dc
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

    def ratio(self, ch):
        """Divider output as a fraction of the reference."""
        f = self.faults[ch]
        if f == OPEN or f == SHORT:
            r = None if f == OPEN else 0.0
        else:
            t = self.temps[ch] / 10 + 273.15
            r = self.r25 * exp(self.beta * (1 / t - 1 / 298.15))
        rf = self.r_fixed
        if r is None:  # open NTC: the fixed resistor pulls the pin to its rail
            return 0.0 if self.top else 1.0
        return rf / (r + rf) if self.top else r / (r + rf)

    def _esp_code(self, mv):
        if mv <= _ESP_ZERO_MV:
            return 0.0
        if mv > _ESP_KNEE_MV:  # compression: the slope falls to half at the reference
            d = mv - _ESP_KNEE_MV
            mv = _ESP_KNEE_MV + d * (1 - d / (4 * (self.vref_mv - _ESP_KNEE_MV)))
        return (mv - _ESP_ZERO_MV) * 4096 / (_ESP_SAT_MV - _ESP_ZERO_MV)

    @micropython.native
    def u16(self, ch):
        if self.faults[ch] == STUCK:
            return self._last[ch]
        if self._c16_ok[ch]:
            c16 = self._c16[ch]
        else:
            ratio = self.ratio(ch)
            if self.port == "esp32":
                c16 = int(self._esp_code(ratio * self.vref_mv) * 16)
            else:
                c16 = int(ratio * 4096 * 16)
            self._c16[ch] = c16
            self._c16_ok[ch] = 1
        c = (c16 + self.rng.gauss(self.noise_lsb16) + 8) >> 4
        c = 0 if c < 0 else 4095 if c > 4095 else c
        v = (c << 4) | (c >> 8)
        self._last[ch] = v
        return v

    def uv(self, ch):
        """ESP32 ADC.read_uv(): calibrated microvolts, saturating at 3.1 V; None on other ports."""
        if self.port != "esp32":
            return None
        if self.faults[ch] == STUCK:
            return self._last_uv[ch]
        uv = int(self.ratio(ch) * self.vref_mv * 1000) + self.rng.gauss(self.noise_uv)
        lim = _ESP_SAT_MV * 1000
        uv = 0 if uv < 0 else lim if uv > lim else uv
        self._last_uv[ch] = uv
        return uv
