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
from hil.chips.bq76952 import BQ76952Sim, _copy  # dst[:n] = src[k:k + n], allocating nothing
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
# Requests of steps taken from replies sent ahead (which the runner computed assuming exactly that
# request) tell the runner nothing it needs at once: up to this many go out in one write, so it wakes
# once per batch instead of once per step. Any other request goes out at once, with those before it,
# and they all go out before a read that may wait (the runner sends replies ahead in batches, one
# write each, and tells in each how many more that write holds: flags bits 8-14, read with the first
# in one system call), before a line to the serial port, a command byte and a reset (so the runner
# knows every step anything outside has seen).
_BATCH = 4
_MP = sys.implementation.name == "micropython"


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
        self._reqs = bytearray(_REQ * _BATCH)  # step requests not sent yet (see _BATCH)
        for k in range(_BATCH):
            self._reqs[k * _REQ] = 83  # 'S'
        self._nreq = 0
        # the rest of the runner's last write (replies sent ahead, each as long as its first), read with
        # that one in one more system call: _an of them from _ab[_ai:] (see _reply); room for three of
        # 16 cells and the plant's 7 temperatures (69 B each), made larger if a write holds more
        self._ab = bytearray(3 * (2 + _HDR + 2 * (16 + 7) + 1))
        self._ai = self._an = 0
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
        self._last(87)  # 'W': a power-on, reset cause 'power'

    def _last(self, kind):
        """The last request of this process ('R' reset, 'W' power-on; + 16 bytes the runner ignores),
        after the step requests held back: never answered (the runner kills this process)."""
        self._flush()
        r = self._reqs
        r[0] = kind
        self._nreq = 1
        self._flush()
        while True:
            self._read_exact(self._pmv[:2], 0)

    def _step(self, ms):
        self._t += ms
        self._dt_us = ms * 1000
        t = self._t
        r = self._reqs
        o = self._nreq * _REQ
        r[o + 1] = t & 255
        r[o + 2] = (t >> 8) & 255
        r[o + 3] = (t >> 16) & 255
        r[o + 4] = (t >> 24) & 255
        bq = self.bq
        out = self._relay | (2 if bq.chg_fet else 0) | (4 if bq.dsg_fet else 0)
        r[o + 5] = out
        c = self._cut & 0xFFFFFFFF
        r[o + 9] = c & 255
        r[o + 10] = (c >> 8) & 255
        r[o + 11] = (c >> 16) & 255
        r[o + 12] = (c >> 24) & 255
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
        r[o + 13] = b & 255
        r[o + 14] = (b >> 8) & 255
        r[o + 15] = (b >> 16) & 255
        r[o + 16] = (b >> 24) & 255
        self._nreq += 1
        # a reply sent ahead assumed these outputs, no cut and the last request's balancing mask
        self._sent = out if self._cut < 0 and b == self._bal_sent else -1
        self._bal_sent = b
        self._cut = -1
        if self._sent < 0:
            self._flush()  # no reply sent ahead can be ours: the runner answers this request itself
        ahead = True  # may a reply sent ahead still be ours?
        while not self._reply(ahead):
            # a reply sent ahead for another step: this request must reach the runner, which then
            # undoes the steps it computed ahead and answers it; later replies sent ahead are not ours
            ahead = False
            self._flush()
        if self._nreq >= _BATCH:
            self._flush()
        self._apply(self._pkt)

    def _flush(self):
        """Send the step requests held back (see _BATCH)."""
        n = self._nreq
        if n:
            self._nreq = 0
            if _MP:
                self._tx.write(self._reqs, n * _REQ)  # a stream's write(buf, n): no slice
            else:  # CPython (the emulated RP2040's bridge)
                self._tx.write(memoryview(self._reqs)[: n * _REQ])

    def _reply(self, ahead):
        """Read one step reply into _pkt; False if it is one sent ahead that is not ours.

        The runner may send replies before it has read their requests: the steps it expects next
        (flags bit 15 set, bits 0-2 = the relay and FET outputs it assumed, with no FET cut and the
        balancing mask unchanged). One is ours if the time and all of that match and no reply sent
        ahead was dropped before it (`ahead`: the runner, finding a request not the one it expected,
        undoes every step it computed ahead); otherwise the runner answers the request itself."""
        p = self._pkt
        if self._an:  # read already, with the first reply of its write
            n = len(self._want)
            _copy(p, self._ab, self._ai, n)
            self._ai += n
            self._an -= 1
            if p[19] & 0x80:
                return ahead and _u32(p, 2) == self._t & 0xFFFFFFFF and (p[18] & 7) == self._sent
            return True
        self._flush()  # the read may wait for the runner: it must have every request first
        # one read for the whole reply: its size is known from the last one (a reply with faults is
        # longer: the rest follows), so readinto, which fills its buffer, gets it in one system call
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
        k = p[19] & 0x7F if n >= 2 + _HDR else 0
        if k and n == len(self._want):  # the rest of its write is in the pipe (one write): read it now
            m = n * k
            if m > len(self._ab):
                self._ab = bytearray(m)
            if not _MP:  # CPython (the emulated RP2040's bridge)
                self._read_exact(memoryview(self._ab)[:m], 0)
            elif self._rx.readinto(self._ab, m) != m:  # readinto(buf, nbytes): all of it, no slice
                raise SystemExit(0)  # the runner is gone: the board loses power
            self._ai = 0
            self._an = k
        if p[19] & 0x80:
            return ahead and _u32(p, 2) == self._t & 0xFFFFFFFF and (p[18] & 7) == self._sent
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
            self._flush()  # a command (Ctrl-C, Ctrl-D included) at a step the runner knows
            c = self._in.read(1)
            return c[0] if c else -1
        return -1

    def serial_write(self, buf, n):
        self._flush()  # every line out is from a step the runner knows (truth rows, power cuts)
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
        self._last(82)  # 'R': the runner is the power supply: it cuts power and starts us again

    def uid(self):
        return self._uid
