# The simulated HAL, run by the virtual board inside real MicroPython (unix port).
# The firmware's drivers talk to chips simulated at register level (hil/chips) on a simulated
# I2C bus; the chips' analog truth comes from the plant (numpy, CPython) over a pipe, one
# request per step of virtual time, so the firmware and the plant run in lockstep.
import gc
import os
from array import array
import sys

import select

gc.collect()
_BASE = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0  # before the chips load: see Hal.sim_heap (CPython: hil/rp2040)

from hil.chips.adc import NtcAdcSim
from hil.chips.bq76952 import BQ76952Sim
from hil.chips.bus import SimI2C
from hil.chips.ina228 import INA228Sim
# fault kinds sent with a step reply (scenario events), each as <BBh: one table, hil/faults.py
from hil.faults import AFE_CRC, AFE_NACK, AFE_TIMEOUT, CURRENT_OFFSET, INA_NACK, NTC, OPEN_WIRE
from hil.mpcompat import micropython, ptr8, ptr32

_HDR = 16  # <IiIHBB: t_ms, i_ma, stack_mv10, flags, n_cells, n_temps


@micropython.viper
def _get16(dst, p, k: int, n: int):
    """dst[0:|n|] = the |n| little-endian 16-bit values at p[k:] (dst: array 'i'): unsigned for
    n > 0, signed for n < 0 (viper takes at most four arguments)."""
    d = ptr32(dst)
    b = ptr8(p)
    top = 0x10000 if n > 0 else 0x8000  # values at/above this are negative
    if n < 0:
        n = 0 - n
    i = 0
    while i < n:
        v = b[k] | (b[k + 1] << 8)
        d[i] = v - 0x10000 if v >= top else v
        k += 2
        i += 1


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _i16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


def _i32(b, i):
    v = _u32(b, i)
    return v - 0x100000000 if v & 0x80000000 else v


class Hal:
    def __init__(self, board):
        self.board = board
        rfd, wfd = os.getenv("PW_PLANT_FDS").split(",")
        self._rx = open("/dev/fd/" + rfd, "rb")
        self._tx = open("/dev/fd/" + wfd, "wb")
        self._seed = int(os.getenv("PW_SEED") or "1")
        self._cause = os.getenv("PW_RESET") or "power"
        self._uid = os.getenv("PW_UID") or "vboard"
        self._t = 0
        self._relay = 1  # as the plant starts (connected) until the firmware drives the relay on its first sample
        self._req = bytearray(9)
        self._req[0] = 83  # 'S'
        self._len = bytearray(2)
        self._pkt = bytearray(512)  # length prefix (2 bytes) + the step reply
        self._pmv = memoryview(self._pkt)
        self._want = self._pmv[:2]  # what the next reply is expected to fill (see _step)
        self._chips(board, self._seed)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        gc.collect()
        # heap held by the simulation (chips, buffers, this module): not the firmware's; `mem` subtracts it
        self.sim_heap = gc.mem_alloc() - _BASE
        self._step(0)

    def _chips(self, board, seed):
        """The simulated chips on their bus, as the board file wires them, and what _apply fills."""
        self._cells = array("i")
        self._temps = array("i")
        self._i_offset = 0
        self.i2c = SimI2C()
        afe = board["afe"]
        cur = board["current"]
        self.bq = BQ76952Sim(cells=board["cells"], crc=afe.get("crc", False), seed=seed,
                             shunt_uohm=cur.get("shunt_uohm", 1000))  # the firmware sets CC Gain for it
        self.i2c.attach(afe.get("addr", 8), self.bq)
        self.ina = None
        if cur["source"] == "ina228":
            self.ina = INA228Sim(cur["shunt_uohm"], seed=seed + 1)
            self.i2c.attach(cur.get("ina228_addr", 0x40), self.ina)
        self.adc = NtcAdcSim(board["ntc"], port=board.get("adc_port", "rp2"), seed=seed + 2)
        self._ts = [250, 250, 250]

    # --- time: every sleep is a step of the plant ---------------------------------------
    def ticks_ms(self):
        return self._t & 0x3FFFFFFF

    def sleep_ms(self, ms):
        if ms > 0:
            self._step(ms)

    def _step(self, ms):
        self._t += ms
        t = self._t
        r = self._req
        r[1] = t & 255
        r[2] = (t >> 8) & 255
        r[3] = (t >> 16) & 255
        r[4] = (t >> 24) & 255
        r[5] = self._relay
        self._tx.write(r)
        while not self._reply():
            pass  # a speculative reply for another step: the runner sends the right one next
        self._apply(self._pkt)

    def _reply(self):
        """Read one step reply into _pkt; False if it is a speculative one that does not fit.

        The runner may send a reply before it has read our request: the step it expects next (flags
        bit 15 set, bit 0 = the relay state it assumed). It is ours if the time and relay match;
        otherwise the runner undoes that step and answers the request itself."""
        # one read for the whole reply: its size is known from the last one (a reply with faults is
        # longer: the rest follows), so readinto, which fills its buffer, gets it in one system call
        p = self._pkt
        self._read_exact(self._want, 0)
        n = 2 + (p[0] | (p[1] << 8))
        have = len(self._want)
        if n != have:
            if n > len(p):
                self._grow(n)
                p = self._pkt
            if n > have:
                self._read_exact(self._pmv[have:n], 0)
            if n < 2 + 1 + _HDR:
                self._want = self._pmv[:2]  # a short reply (nothing to read): start over next time
            else:
                nf = p[2 + _HDR + 2 * (p[16] + p[17])]
                self._want = self._pmv[: n - 4 * nf]  # the next reply, without faults
        if p[15] & 0x80:
            return _u32(p, 2) == self._t & 0xFFFFFFFF and (p[14] & 1) == self._relay
        return True

    def _grow(self, n):
        b = bytearray(n + 64)
        b[: len(self._pkt)] = self._pkt
        self._pkt = b
        self._pmv = memoryview(b)
        self._want = self._pmv[:2]

    def _read_exact(self, mv, got):
        n = len(mv)
        while got < n:
            k = self._rx.readinto(mv[got:] if got else mv)
            if not k:
                raise SystemExit(0)  # the runner is gone: the board loses power
            got += k

    @micropython.native
    def _apply(self, p):
        # p: <H length, then <IiIHBB t_ms, i_ma, stack_mv10, flags, n_cells, n_temps, cells, temps, faults
        i_ma = _i32(p, 6) + self._i_offset
        stack = _u32(p, 10)
        nc = p[16]
        nt = p[17]
        cells = self._cells
        if len(cells) != nc:
            cells = self._cells = array("i", [0] * nc)  # u16 on the wire (0.1 mV): < 6553.6 mV
        temps = self._temps
        if len(temps) != nt:
            temps = self._temps = array("i", [0] * nt)
        k = _HDR + 2
        _get16(cells, p, k, nc)
        k += 2 * nc
        _get16(temps, p, k, -nt)
        k += 2 * nt
        nf = p[k]
        k += 1
        for _ in range(nf):
            self._fault(p[k], p[k + 1], _i16(p, k + 2))
            k += 4
        ts = self._ts
        for c in range(3):
            ts[c] = temps[3 + c] if nt > 3 + c else 250
        die = temps[6] if nt > 6 else 300
        self.bq.set_truth(cells, stack, i_ma, ts, die)
        if self.ina is not None:
            self.ina.set_truth(i_ma, stack, die, 100)
        adc = self.adc
        for ch in range(3 if nt > 3 else nt):
            adc.set_temp(ch, temps[ch])

    def _fault(self, kind, a, b):
        addr = self.board["afe"].get("addr", 8)
        if kind == AFE_NACK:
            self.i2c.fail_next(addr, b, "nack")
        elif kind == AFE_TIMEOUT:
            self.i2c.fail_next(addr, b, "timeout")
        elif kind == AFE_CRC:
            self.bq.corrupt_next(b)
        elif kind == INA_NACK:
            self.i2c.fail_next(self.board["current"].get("ina228_addr", 0x40), b, "nack")
        elif kind == NTC:
            self.adc.fault(a, b)
        elif kind == OPEN_WIRE:
            self.bq.open_wire(a + 1 if b else 0)  # events count cells from 0, the chip from 1
        elif kind == CURRENT_OFFSET:
            self._i_offset = b

    # --- the rest of the HAL contract -------------------------------------------------------
    def serial_read(self):
        for _ in self._poll.ipoll(0):
            c = self._in.read(1)
            return c[0] if c else -1
        return -1

    def serial_write(self, buf, n):
        self._out.write(buf, n)

    def adc_u16(self, ch):
        return self.adc.u16(ch)

    def adc_uv(self, ch):
        return self.adc.uv(ch)  # None unless the board simulates an ESP32's ADC (adc_port)

    def rail_uv(self):
        return self.adc.rail_uv() if "rail_pin" in self.board["ntc"] else None

    def relay(self, on):
        self._relay = 1 if on else 0

    def wdt_feed(self):
        pass

    def reset_cause(self):
        return self._cause

    def reset(self):
        # the runner is the power supply: ask it to cut power and start us again
        r = self._req
        r[0] = 82  # 'R'
        self._tx.write(r)
        while True:
            self._read_exact(memoryview(self._len), 0)  # never answered: the runner kills this process

    def uid(self):
        return self._uid
