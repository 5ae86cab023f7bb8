# A FakeHal (hil/hal_fake.py) whose chips also run in time, for the counting tests and bench: the AFE's
# advance() (its accumulated charge integrates each step's mean current) and, on INA228 boards, an INA228
# with its CHARGE register. The true current may carry a sinusoidal ripple (a single-phase inverter's
# 100/120 Hz): the sample reads the instantaneous value, the accumulators the exact mean over the step,
# and q_true is the charge that really flowed (the truth the counts are judged against). CPython only.
import math

from hil.chips.ina228 import INA228Sim
from hil.hal_fake import FakeHal


class RippleHal(FakeHal):
    """FakeHal whose chips also run in time: the AFE's advance() (its accumulator integrates the mean
    current of each step) and, on INA228 boards, the INA228 with its CHARGE register. The true current
    may carry a sinusoidal ripple (amps peak, Hz): the sample reads the instantaneous value, the
    accumulators the exact mean over the step."""

    def __init__(self, board, ripple=(0.0, 100.0)):
        self.ina = None
        self.ripple = ripple
        self.q_true = 0.0  # mA*ms that really flowed (the plant's truth)
        super().__init__(board)
        self.bq.fet_en = True  # FakeHal never calls advance(); here the part's FETs pass the current
        if board["current"]["source"] == "ina228":
            self.ina = INA228Sim(shunt_uohm=board["current"]["shunt_uohm"], seed=5)
            self.i2c.attach(board["current"].get("ina228_addr", 0x40), self.ina)

    def _i_at(self, t):
        a, f = self.ripple
        return self.i_ma + a * 1000 * math.sin(2 * math.pi * f * t / 1000)

    def sleep_ms(self, ms):
        ms = max(0, ms)
        t0 = self.t
        self.t += ms
        if ms:
            a, f = self.ripple
            w = 2 * math.pi * f / 1000
            mean = self.i_ma + (a * 1000 * (math.cos(w * t0) - math.cos(w * self.t)) / (w * ms) if a else 0)
            self.q_true += mean * ms
            self.bq.set_truth(self.cells_mv10, self.stack_mv10, int(round(self._i_at(self.t))), self.ts, 300)
            self.bq.advance(ms * 1000, ((ms * 1000, int(round(mean))),))
            if self.ina is not None:
                self.ina.set_truth(int(round(self._i_at(self.t))), self.stack_mv10 // 10, 300, ms, int(round(mean)))
        self._apply()

    def _apply(self):
        ts = self.ts
        self.bq.set_truth(self.cells_mv10, self.stack_mv10, int(round(self._i_at(self.t))), ts, 300)
        for ch in range(3):
            self.adc.set_temp(ch, ts[ch])
