# A HAL on the register-level chip simulations without the plant: a fake clock, settable analog truth
# and an in-memory serial port. Tests run the whole App on it under CPython (T0) and under the real
# MicroPython (T1: it allocates nothing per step, so the firmware's allocation can be measured).
from hil.chips.adc import NtcAdcSim
from hil.chips.bq76952 import BQ76952Sim
from hil.chips.bus import SimI2C


class FakeHal:
    def __init__(self, board, keep_tx=True):
        self.board = board
        self.i2c = SimI2C()
        afe = board["afe"]
        self.bq = BQ76952Sim(cells=board["cells"], crc=afe.get("crc", False), seed=3,
                             shunt_uohm=board["current"].get("shunt_uohm", 1000))  # CC Gain is set for it
        self.i2c.attach(afe.get("addr", 8), self.bq)
        self.adc = NtcAdcSim(board["ntc"], seed=4)
        self.t = 0
        self.rx = bytearray()  # bytes the host sends, read one by one
        self.tx = bytearray()  # what the firmware sent (when keep_tx)
        self.keep_tx = keep_tx
        self.writes = 0  # serial_write calls
        self.relay_on = None
        self.resets = 0
        self.cells_mv10 = [33000] * board["cells"]
        self.stack_mv10 = sum(self.cells_mv10)
        self.i_ma = 0
        self.ts = (250, 250, 250)
        self.set()

    def set(self, cells=None, i_ma=None, temp_dc=None):
        """Cells in mV, pack current in mA, all temperatures in 0.1 °C; what is not given stays."""
        if cells is not None:
            self.cells_mv10 = [int(v * 10) for v in cells]
            self.stack_mv10 = sum(self.cells_mv10)
        if i_ma is not None:
            self.i_ma = i_ma
        if temp_dc is not None:
            self.ts = (temp_dc,) * 3
        self._apply()

    def _apply(self):
        # a small frame: MicroPython heap-allocates bytecode frames of more than ~11 slots, and T1
        # measures the firmware's allocation through this, every step
        ts = self.ts
        self.bq.set_truth(self.cells_mv10, self.stack_mv10, self.i_ma, ts, 300)
        adc = self.adc
        adc.set_temp(0, ts[0])
        adc.set_temp(1, ts[1])
        adc.set_temp(2, ts[2])

    def ticks_ms(self):
        return self.t & 0x3FFFFFFF

    def sleep_ms(self, ms):
        self.t += max(0, ms)
        self._apply()  # fresh noise every step, like a sampling ADC

    def serial_read(self):
        if not self.rx:
            return -1
        b = self.rx[0]
        self.rx = self.rx[1:]
        return b

    def serial_write(self, buf, n):
        self.writes += 1
        if self.keep_tx:
            self.tx += bytes(buf[:n])

    def adc_u16(self, ch):
        return self.adc.u16(ch)

    def adc_uv(self, ch):
        return None

    def rail_uv(self):
        return None

    def relay(self, on):
        self.relay_on = on

    def alert(self):
        return not self.bq.alert_pin  # the chip's ALERT pin low, as pwfw.hal_board reads it

    def wdt_feed(self):
        pass

    def reset_cause(self):
        return "power"

    def reset(self):
        self.resets += 1

    def uid(self):
        return "FAKE"
