# The board HAL: the only module that touches `machine`. Works on rp2 (Pico) and esp32 ports.
import sys
import time

import machine
import select
from micropython import const
from binascii import hexlify

_ALERT_POLL_MS = const(10)  # the longest an asserted ALERT waits for the loop to notice it

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
        ntc = board["ntc"]
        esp = board.get("port") == "esp32"
        for p in ntc["pins"]:
            self._adc.append(self._adc_pin(p, esp))
        self._has_uv = hasattr(self._adc[0], "read_uv") if self._adc else False
        # ESP32: the divider's rail through rail_div on an ADC1 pin, so read_uv (absolute) becomes a
        # fraction of the rail that actually feeds the dividers (docs/hardware.md)
        rp = ntc.get("rail_pin")
        self._rail = self._adc_pin(rp, esp) if rp is not None and self._has_uv else None
        self._rail_div = ntc.get("rail_div", 2)
        # Pico: GPIO23 drives the RT6150's PS pin; high = PWM mode, whose ripple is far lower than
        # the default power-save mode's: held high while the ADC converts (Pico data sheet, power chain)
        ps = board.get("ps_pin", 23 if board.get("port") == "rp2" else None)
        self._ps = machine.Pin(ps, machine.Pin.OUT, value=0) if ps is not None else None
        # BQ76952 ALERT: open drain, active low (the AFE set-up writes ALERT Pin Config 0x82), pulled
        # up on the board; the MCU's own pull-up too, so a board without the resistor never reads low
        ap = board.get("alert_pin")
        self._alert = machine.Pin(ap, machine.Pin.IN, machine.Pin.PULL_UP) if ap is not None else None
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
        # wait in poll so a command byte wakes us at once; with an ALERT pin in slices of at most
        # _ALERT_POLL_MS, returning as soon as the AFE pulls ALERT low (an extra sample: docs/hardware.md)
        a = self._alert
        if a is None:
            for _ in self._poll.ipoll(ms):
                break
            return
        end = time.ticks_add(time.ticks_ms(), ms)
        # until the pin changes: from high, an assertion (App.step's extra sample); from low (a held
        # condition latches ALERT again as soon as the status read clears it), its end, so the next
        # assertion is seen: a held ALERT must not make this return at once and the loop spin
        v = a.value()
        while a.value() == v:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                return
            for _ in self._poll.ipoll(left if left < _ALERT_POLL_MS else _ALERT_POLL_MS):
                return

    def alert(self):
        """The AFE's ALERT asserted (pin low); False on a board without one."""
        return self._alert is not None and not self._alert.value()

    def serial_read(self):
        for _ in self._poll.ipoll(0):
            c = self._in.read(1)  # on rp2 only read(1) returns promptly after poll
            return c[0] if c else -1
        return -1

    def serial_write(self, buf, n):
        self._out.write(buf, n)  # stream write(buf, max_len): the first n bytes, no slice allocated

    @staticmethod
    def _adc_pin(p, esp):
        adc = machine.ADC(machine.Pin(p))
        if esp:
            adc.atten(machine.ADC.ATTN_11DB)  # 0..3.1 V, specified 150..2450 mV; read_uv() is calibrated
        return adc

    def adc_u16(self, ch):
        ps = self._ps
        if ps is None:
            return self._adc[ch].read_u16()
        ps.value(1)
        v = self._adc[ch].read_u16()
        ps.value(0)
        return v

    def adc_uv(self, ch):
        return self._adc[ch].read_uv() if self._has_uv else None

    def rail_uv(self):
        """The NTC dividers' rail in uV where the board measures it (ntc.rail_pin), else None."""
        if self._rail is None:
            return None
        return self._rail.read_uv() * self._rail_div

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
