# The board HAL: the only module that touches `machine`. Works on rp2 (Pico) and esp32 ports.
import sys
import time

import machine
import select
from binascii import hexlify

_CAUSES = {
    getattr(machine, "PWRON_RESET", -1): "power",
    getattr(machine, "HARD_RESET", -2): "power",
    getattr(machine, "WDT_RESET", -3): "wdt",
    getattr(machine, "SOFT_RESET", -4): "soft",
}


class Hal:
    def __init__(self, board):
        self.board = board
        i = board["i2c"]
        self.i2c = machine.I2C(
            i["id"], sda=machine.Pin(i["sda"]), scl=machine.Pin(i["scl"]), freq=i["freq"], timeout=i.get("timeout_us", 50000)
        )
        self._adc = []
        for p in board["ntc"]["pins"]:
            adc = machine.ADC(machine.Pin(p))
            if board.get("port") == "esp32":
                adc.atten(machine.ADC.ATTN_11DB)  # full 0..3.3 V range; read_uv() corrects the non-linearity
            self._adc.append(adc)
        self._has_uv = hasattr(self._adc[0], "read_uv") if self._adc else False
        rp = board.get("relay_pin")
        self._relay = machine.Pin(rp, machine.Pin.OUT, value=0) if rp is not None else None
        wdt_ms = board.get("wdt_ms", 8000)
        self._wdt = machine.WDT(timeout=wdt_ms) if wdt_ms else None
        self._in = getattr(sys.stdin, "buffer", sys.stdin)
        self._out = getattr(sys.stdout, "buffer", sys.stdout)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def ticks_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        # wait in poll so a command byte wakes us at once
        for _ in self._poll.ipoll(ms):
            break

    def serial_read(self):
        for _ in self._poll.ipoll(0):
            c = self._in.read(1)  # on rp2 only read(1) returns promptly after poll
            return c[0] if c else -1
        return -1

    def serial_write(self, buf):
        self._out.write(buf)

    def adc_u16(self, ch):
        return self._adc[ch].read_u16()

    def adc_uv(self, ch):
        return self._adc[ch].read_uv() if self._has_uv else None

    def relay(self, on):
        if self._relay is not None:
            self._relay.value(1 if on else 0)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset_cause(self):
        return _CAUSES.get(machine.reset_cause(), "unknown")

    def reset(self):
        machine.reset()

    def uid(self):
        return hexlify(machine.unique_id()).decode()
