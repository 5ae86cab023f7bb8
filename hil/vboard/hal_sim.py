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
from hil.faults import AFE_BROWNOUT, AFE_CRC, AFE_NACK, AFE_TIMEOUT, CURRENT_OFFSET, INA_NACK, NTC, OPEN_WIRE
from hil.faults import CURRENT_GAIN, CURRENT_STUCK, PACK_DROP
from hil.mpcompat import micropython, ptr8, ptr32

# The plant pipe (docs/architecture.md, host/packwatch/vboard/lockstep.py), little-endian.
# Request, 17 bytes <cIIiI: b'S', t_ms, outputs (bit 0 relay, bit 1 AFE CHG FET on, bit 2 AFE DSG FET
# on), cut_us (us into the previous step when an AFE FET opened in it, -1 none), bal (cells being
# balanced, bit k = cell k from the bottom). Reply: <H length, then the header below.
_REQ = 17
_HDR = 20  # <IiiIHBB: t_ms, i_ma (at the step's end), i_avg_ma (the step's mean), stack_mv10, flags, n_cells, n_temps


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


@micropython.viper
def _get32(dst, p, k: int, n: int):
    """dst[0:n] = the n signed little-endian 32-bit values at p[k:] (dst: array 'i')."""
    d = ptr32(dst)
    b = ptr8(p)
    i = 0
    while i < n:
        top = b[k + 3]
        if top & 0x80:
            top -= 256
        d[i] = b[k] | (b[k + 1] << 8) | (b[k + 2] << 16) | (top << 24)
        k += 4
        i += 1


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _i16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


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
        self._pipe()
        self._chips(board, self._seed)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        gc.collect()
        # heap held by the simulation (chips, buffers, this module): not the firmware's; `mem` subtracts it
        self.sim_heap = gc.mem_alloc() - _BASE
        self._step(0)

    def _pipe(self):
        """The plant pipe's buffers and the per-step state the request carries (rp2040.py shares it)."""
        self._req = bytearray(_REQ)
        self._req[0] = 83  # 'S'
        self._len = bytearray(2)
        self._pkt = bytearray(512)  # length prefix (2 bytes) + the step reply
        self._pmv = memoryview(self._pkt)
        self._want = self._pmv[:2]  # what the next reply is expected to fill (see _step)
        self._dt_us = 0  # the step being taken (the chip's protections run over it)
        self._cut = -1  # us into the last step when an AFE FET opened (sent with the next request)
        self._sent = 0  # outputs | bal changed | cut of the last request: may it take a reply sent ahead?
        self._bal_sent = 0
        self._prof = [[0, 0]]  # advance()'s current profile for the step: one piece, reused
        self._h32 = array("i", [0, 0, 0])  # the reply's i_ma, i_avg_ma, stack_mv10 (_apply)
        self.bal = 0  # cells being balanced (bit k = cell k): the plant bleeds them (set from the chip)
        self._bal_chip = 0  # the chip's bal_mask (inputs) self.bal was mapped from

    def _chips(self, board, seed):
        """The simulated chips on their bus, as the board file wires them, and what _apply fills."""
        self._cells = array("i")
        self._temps = array("i")
        self._i_offset = 0
        self.i2c = SimI2C()
        afe = board["afe"]
        cur = board["current"]
        # a stock part (OTP unprogrammed): it powers up, and comes back from every POR, in plain I2C
        # whatever the board asks; the firmware's set-up switches a CRC board's part to CRC (TRM 10.2)
        self.bq = BQ76952Sim(cells=board["cells"], crc=False, seed=seed,
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
        if self.bq.off:
            self._dark()

    def _dark(self):
        """The AFE is in SHUTDOWN: its REG1, this MCU's supply, is off, so nothing runs any more; the
        plant goes on with the path open until a charger at LD (reply flags bit 3) wakes the part
        (data sheet, SHUTDOWN mode: a POR), whose REG1 powers this MCU again: the runner starts the
        firmware afresh, on a part fresh from its POR (a new process: new chips)."""
        self._relay = 0
        while True:
            self._step(1000)
            if self._pkt[18] & 0x08:
                self._power_on()

    def _power_on(self):
        r = self._req
        r[0] = 87  # 'W' (+ 16 bytes the runner ignores): a power-on, reset cause 'power'
        self._tx.write(r)
        while True:
            self._read_exact(memoryview(self._len), 0)  # never answered: the runner kills this process

    def _step(self, ms):
        self._t += ms
        self._dt_us = ms * 1000
        t = self._t
        r = self._req
        r[1] = t & 255
        r[2] = (t >> 8) & 255
        r[3] = (t >> 16) & 255
        r[4] = (t >> 24) & 255
        bq = self.bq
        out = self._relay | (2 if bq.chg_fet else 0) | (4 if bq.dsg_fet else 0)
        r[5] = out
        c = self._cut & 0xFFFFFFFF
        r[9] = c & 255
        r[10] = (c >> 8) & 255
        r[11] = (c >> 16) & 255
        r[12] = (c >> 24) & 255
        cm = bq.bal_mask  # the part's balancing FETs (inputs) as the plant's cells (its wiring)
        if cm != self._bal_chip:
            self._bal_chip = cm
            b = 0
            w = bq.wiring
            for k in range(len(w)):
                if cm >> w[k] & 1:
                    b |= 1 << k
            self.bal = b
        b = self.bal
        r[13] = b & 255
        r[14] = (b >> 8) & 255
        r[15] = (b >> 16) & 255
        r[16] = (b >> 24) & 255
        # a reply sent ahead assumed these outputs, no cut and the last request's balancing mask
        self._sent = out if self._cut < 0 and b == self._bal_sent else -1
        self._bal_sent = b
        self._cut = -1
        self._tx.write(r)
        while not self._reply():
            pass  # a speculative reply for another step: the runner sends the right one next
        self._apply(self._pkt)

    def _reply(self):
        """Read one step reply into _pkt; False if it is a speculative one that does not fit.

        The runner may send a reply before it has read our request: the step it expects next (flags
        bit 15 set, bits 0-2 = the relay and FET outputs it assumed, with no FET cut and the balancing
        mask unchanged). It is ours if the time and all of that match; otherwise the runner undoes
        that step and answers the request itself."""
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
                nf = p[2 + _HDR + 2 * (p[20] + p[21])]
                self._want = self._pmv[: n - 4 * nf]  # the next reply, without faults
        if p[19] & 0x80:
            return _u32(p, 2) == self._t & 0xFFFFFFFF and (p[18] & 7) == self._sent
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
        # p: <H length, then <IiiIHBB t_ms, i_ma, i_avg_ma, stack_mv10, flags, n_cells, n_temps, cells,
        # temps, faults
        h = self._h32
        _get32(h, p, 6, 3)  # one viper call for the three (the stack, < 2**31, reads the same signed)
        i_ma = h[0] + self._i_offset
        i_avg = h[1] + self._i_offset
        stack = h[2]
        nc = p[20]
        nt = p[21]
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
        bq = self.bq
        bq.set_truth(cells, stack, i_ma, ts, die)  # CC2 / CURRENT: the current at the sample instant
        # the part's own time over this step: its protections, and its accumulated charge of the mean
        dt = self._dt_us
        pr = None
        if i_avg != i_ma:
            pr = self._prof
            pr[0][0] = dt
            pr[0][1] = i_avg
        cut = bq.advance(dt, pr)
        if cut >= 0:  # a FET opened inside this step: from then on only what the path passes flowed
            self._cut = cut
            i_ma = bq.passes(i_ma)
            if dt:
                i_avg = (i_avg * cut + bq.passes(i_avg) * (dt - cut)) // dt
            bq.set_truth(cells, stack, i_ma, ts, die)
        if self.ina is not None:
            self.ina.set_truth(i_ma, stack, die, dt // 1000, i_avg)
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
        elif kind == AFE_BROWNOUT:
            self.bq.brownout()  # a POR: RAM settings and comm mode back to the part's defaults, FETs off
        elif kind == PACK_DROP:
            self.bq.pack_drop_mv = b
        elif kind == CURRENT_STUCK:
            self.bq.cc2_stuck = bool(b)
        elif kind == CURRENT_GAIN:  # the sense resistor ppm off its nominal value: every chip reads that much more
            r = self.board["current"].get("shunt_uohm", 1000)
            self.bq.shunt_uohm = (r * (1000000 + b) + 500000) // 1000000  # the part's CC Gain was set for r
            self.bq._derive()
            if self.ina is not None:
                self.ina.gain_ppm = b

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

    def alert(self):
        return not self.bq.alert_pin  # the pin low, as pwfw.hal_board reads it (the chip decides its polarity)

    def wdt_feed(self):
        pass

    def reset_cause(self):
        return self._cause

    def reset(self):
        # the runner is the power supply: ask it to cut power and start us again
        r = self._req
        r[0] = 82  # 'R' (+ 16 bytes the runner ignores)
        self._tx.write(r)
        while True:
            self._read_exact(memoryview(self._len), 0)  # never answered: the runner kills this process

    def uid(self):
        return self._uid
