"""The emulated RP2040 as a second virtual board: official MicroPython (a UF2 the user supplies) on
rp2040js, behind the same pty, plant, scenarios and chip simulations as the unix-port virtual board.

    rp2040js (node, board.mjs) ── pipes ── _Bridge (thread) ── pty A ── VirtualBoard relay ── pty B (host)
      MicroPython + pwfw           I2C bytes → hal_sim's chips (BQ76952Sim, INA228Sim on SimI2C)
      hal_board.py, pico.json      ADC conversions → NtcAdcSim;  plant pipe → VirtualBoard's lockstep
                                   the BQ76952's ALERT → the board's alert_pin (GP6) as a GPIO input;
                                   its SHUTDOWN → the emulator stopped (dark) until a charger wakes it

The bridge plays the part hal_sim plays inside the unix port's process: it speaks the same plant
pipe (hal_sim.Hal's own `_step`/`_apply`/`_fault`, run here under CPython), so the lockstep, the
pipelining, scenario events, fault injection, holds, real-time pacing, power cuts, the relay and
the serial port of `packwatch.vboard.VirtualBoard` all work unchanged: `Rp2040Board` only replaces
the board process (`_launch`). The bridge steps the plant every `step_ms` of emulated time and
runs the emulator to the end of that step in slices of `slice_ms`, passing serial bytes each slice.
"""
import os
import select
import shutil
import struct
import subprocess
import threading
from pathlib import Path

from hil.vboard import hal_sim

from .board import HIL_DIR, REPO
from .runner import VirtualBoard

HERE = HIL_DIR / "rp2040"  # the emulated MCU (node: board.mjs, rp2040js in node_modules)
RUNNER_JS = HERE / "board.mjs"
SHARED = REPO.parent / "shared" / "rp2040"  # where the project's CI keeps the UF2 and boot ROM
FLASH_NAME = "flash.bin"


class Unavailable(RuntimeError):
    """The emulated board cannot start here (one line: what is missing and what to do)."""


def find_inputs(uf2=None, bootrom=None):
    """(uf2, bootrom) paths: as given, else $PW_RP2040_UF2 / $PW_RP2040_BOOTROM, else ../shared/rp2040/."""
    uf2 = uf2 or os.environ.get("PW_RP2040_UF2")
    bootrom = bootrom or os.environ.get("PW_RP2040_BOOTROM")
    if not uf2:
        found = sorted(SHARED.glob("RPI_PICO*.uf2"))
        uf2 = found[-1] if found else None
    if not bootrom and (SHARED / "bootrom.bin").exists():
        bootrom = SHARED / "bootrom.bin"
    if not uf2 or not Path(uf2).is_file():
        raise Unavailable("no MicroPython UF2 for the RP2040 (%s): set PW_RP2040_UF2 or pass --uf2 "
                          "(the RPI_PICO build from micropython.org)" % (uf2 or "none in %s" % SHARED))
    if not bootrom or not Path(bootrom).is_file():
        raise Unavailable("no RP2040 boot ROM (%s): set PW_RP2040_BOOTROM or pass --bootrom (bootrom.bin, "
                          "16 KiB, from raspberrypi/pico-bootrom)" % (bootrom or "none in %s" % SHARED))
    return Path(uf2), Path(bootrom)


def node_exe():
    node = shutil.which("node")
    if not node:
        raise Unavailable("node is not installed: the emulated RP2040 runs on Node.js 18+ (apt install nodejs)")
    if not (HERE / "node_modules" / "rp2040js" / "package.json").exists():
        raise Unavailable("rp2040js is not installed in %s: run `npm ci --prefix hil/rp2040` (make test does)"
                          % (HERE / "node_modules"))
    return node


def unavailable():
    """Why the emulated board cannot start here, or None."""
    try:
        node_exe()
        find_inputs()
    except Unavailable as e:
        return str(e)
    return None


class ByteI2C:
    """The target side of I2C0 as the RP2040's controller drives it, byte by byte, in front of a
    SimI2C's devices, with SimI2C's semantics: one transaction (one driver call) per start..stop, a
    failure injected with `fail_next` or an absent device NACKs the address (the emulator then raises
    OSError 110; a real rp2 raises EIO). A write of register + data reaches the device at the stop as
    `write(reg, data)`; a register write followed by a repeated start and a read is `read(reg, buf)`,
    a read after a fresh start `read(None, buf)`. The device is read when the first byte is clocked
    out; the controller says only at the last byte how many it wanted, so the read is sized by what
    the same (address, register) took last time (re-read larger if that is too few)."""

    def __init__(self, bus):
        self.bus = bus
        self.naks = 0
        self.write_errors = 0
        self._sizes = {}
        self._reset()

    def _reset(self):
        self._dev = None
        self._addr = None
        self._w = bytearray()
        self._reg = None
        self._buf = None
        self._k = 0

    def start(self, repeated):
        if repeated and self._dev is not None and self._w:
            w = self._w
            if len(w) == 1:
                self._reg = w[0]  # register pointer for the read that follows (readfrom_mem_into)
            else:
                self._flush()
            self._w = bytearray()

    def connect(self, addr, read):
        if self._dev is None or addr != self._addr:
            try:
                self._dev = self.bus._dev(addr, 0)  # counts the transaction; raises for an injected fault
            except OSError:
                self.naks += 1
                self._reset()
                return False
            self._addr = addr
        if read:
            self._buf = None
            self._k = 0
        return True

    def write(self, b):
        self._w.append(b)

    def read(self, more):
        k = self._k
        buf = self._buf
        if buf is None or k >= len(buf):
            n = max(self._sizes.get((self._addr, self._reg), 1), 2 * len(buf) if buf else 1, k + 1)
            buf = self._buf = bytearray(n)
            try:
                self._dev.read(self._reg, buf)
            except OSError:
                buf[:] = b"\xff" * n
        self._k = k + 1
        if not more:
            self._sizes[(self._addr, self._reg)] = k + 1
        return buf[k]

    def _flush(self):
        w = self._w
        try:
            self._dev.write(w[0], memoryview(w)[1:])
        except OSError:
            self.write_errors += 1  # (the bytes were already acknowledged)

    def stop(self):
        if self._dev is not None and self._w:
            self._flush()
        self._reset()


class _Chips(hal_sim.Hal):
    """hal_sim's chips and its end of the plant pipe, in CPython: the same code that runs inside the
    unix-port board (`_chips`, `_step`, `_reply`, `_apply`, `_fault`), without its serial port."""

    def __init__(self, board, seed, rep_r, req_w):  # noqa: super().__init__ opens the unix port's stdio
        self.board = board
        self._rx = open(rep_r, "rb", buffering=0)
        self._tx = open(req_w, "wb", buffering=0)
        self._seed = seed
        self._cause = "power"
        self._uid = ""
        self._t = 0
        self._relay = 1  # as the plant starts (connected), until the firmware drives the pin
        self._pipe()
        self._chips(board, seed)
        self.sim_heap = 0
        self._step(0)

    def close(self):
        for f in (self._rx, self._tx):
            try:
                f.close()
            except OSError:
                pass


class _Bridge(threading.Thread):
    """One boot of the emulated board: the node process's pipes, the chips, the run loop."""

    def __init__(self, vb, proc, cmd_w, evt_r, rep_r, req_w):
        super().__init__(name="rp2040-bridge", daemon=True)
        self.vb = vb
        self.proc = proc
        self.cmd_w = cmd_w
        self.evt_r = evt_r
        self.rep_r = rep_r
        self.req_w = req_w
        self.stopping = False
        self.info = None
        self.flash_ops = 0  # erases and programs of this boot, as of the last run slice
        self._cut = None  # power_loss_at_flash_op(n) waiting to reach the board process
        self._ev = bytearray()
        board = vb.board
        self.relay_pin = board.get("relay_pin")
        self.alert_pin = board.get("alert_pin")  # the BQ76952's ALERT, driven on this GPIO (see _drive_alert)
        self._alert_level = None  # the level last driven on it
        pins = board["ntc"]["pins"]
        self.adc_map = {p - 26: i for i, p in enumerate(pins) if 26 <= p <= 29}  # ADC0-3 are GP26-29

    def stop(self):
        self.stopping = True

    # --- node pipes --------------------------------------------------------------------------------
    def _send(self, t, body=b""):
        msg = t + struct.pack("<H", len(body)) + bytes(body)
        view = memoryview(msg)
        while view:
            view = view[os.write(self.cmd_w, view):]

    def _event(self):
        ev = self._ev
        while True:
            if len(ev) >= 3:
                n = ev[1] | (ev[2] << 8)
                if len(ev) >= 3 + n:
                    t = ev[0]
                    body = bytes(ev[3:3 + n])
                    del ev[:3 + n]
                    return t, body
            data = os.read(self.evt_r, 65536)
            if not data:
                raise EOFError("the emulator process ended")
            ev += data

    # --- the board's serial port (pty A slave: the relay in VirtualBoard does the rest) -----------
    def _serial_in(self):
        fd = self.vb._a_slave
        r, _, _ = select.select([fd], [], [], 0)
        if not r:
            return b""
        try:
            return os.read(fd, 4096)
        except OSError:
            return b""

    def _serial_out(self, data):
        fd = self.vb._a_slave
        view = memoryview(data)
        while view and not self.stopping:
            _, w, _ = select.select([], [fd], [], 0.1)  # blocks while the host lags: the board waits
            if w:
                view = view[os.write(fd, view):]

    # --- the loop ----------------------------------------------------------------------------------
    def run(self):
        chips = None
        try:
            chips = _Chips(self.vb.board, self.vb.seed, self.rep_r, self.req_w)
            self.rep_r = self.req_w = None  # owned by chips now
            self._loop(chips)
        except (EOFError, SystemExit, OSError, ValueError):
            pass  # the emulator or the runner went away (a power cut, stop()): nothing to keep
        except Exception as e:  # a bug here: the test or CLI that owns the board gets the reason
            if not self.stopping:
                self.vb.error = e
        finally:
            if chips is not None:
                chips.close()
            for fd in (self.cmd_w, self.evt_r, self.rep_r, self.req_w):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def _loop(self, chips):
        t, body = self._event()
        if t != ord("H"):
            raise EOFError("the emulator did not start")
        self.info = body
        i2c = ByteI2C(chips.i2c)
        self.i2c = i2c
        vb = self.vb
        step_ms = vb.step_ms
        slice_ns = int(vb.slice_ms * 1e6)
        t_ns = 0
        t_ms = 0
        run = struct.Struct("<Q")
        while not self.stopping:
            chips._step(step_ms)  # the plant (VirtualBoard's lockstep) to the end of this step
            if chips.bq.off:
                # the AFE took SHUTDOWN: its REG1, the MCU's supply, is off. The emulated chip stops
                # here (it is not run again); hal_sim's own dark loop steps the plant with the path open
                # until a charger at LD wakes the part, then asks the runner for a power-on (b'W'),
                # which starts a new emulator on the same flash: a first boot, reset cause 'power'
                chips._dark()  # returns only by SystemExit, when the runner closes the plant pipe
            t_ms += step_ms
            end_ns = t_ms * 1000000
            while t_ns < end_ns:
                if self.stopping:
                    return
                data = self._serial_in()
                if data:
                    self._send(b"s", data)
                cut, self._cut = self._cut, None
                if cut:
                    self._send(b"c", struct.pack("<I", cut))
                if self.alert_pin is not None:
                    self._drive_alert(chips.bq.alert_pin)
                target = min(t_ns + slice_ns, end_ns)
                self._send(b"r", run.pack(target))
                while True:
                    t, body = self._event()
                    if t == 82:  # 'R' read byte
                        self._send(b"b", bytes((i2c.read(body[0]),)))
                    elif t == 87:  # 'W'
                        i2c.write(body[0])
                    elif t == 67:  # 'C' connect
                        self._send(b"k", b"\x01" if i2c.connect(body[0], body[1] == 1) else b"\x00")
                    elif t == 83:  # 'S'
                        i2c.start(body[0])
                    elif t == 80:  # 'P'
                        i2c.stop()
                    elif t == 65:  # 'A' ADC conversion
                        self._send(b"a", struct.pack("<H", self._adc(chips, body[0])))
                    elif t == 79:  # 'O' USB CDC output
                        self._serial_out(body)
                    elif t == 68:  # 'D' run done
                        t_ns, high, out, self.flash_ops = struct.unpack("<QIII", body)
                        p = self.relay_pin
                        if p is not None and out >> p & 1:
                            chips._relay = high >> p & 1
                        break
                    elif t == 88:  # 'X' the board stopped: the runner power-cycles it
                        if body[0] == 2:  # the power failed during a flash operation (power_loss_at_flash_op)
                            vb.power_loss_in(0)
                        else:  # the watchdog reset the chip
                            chips.reset()  # asks for it on the plant pipe and waits to be killed
                        return

    def _drive_alert(self, level):
        """The ALERT net's level (the chip's pin on the board's pull-up: BQ76952Sim.alert_pin) on
        its GPIO, as an input the firmware reads; sent when it changes, before the slice that sees it."""
        if level != self._alert_level:
            self._alert_level = level
            m = 1 << self.alert_pin
            self._send(b"g", struct.pack("<II", m, m if level else 0))

    def _adc(self, chips, ch):
        i = self.adc_map.get(ch)
        if i is not None:
            return chips.adc_u16(i) >> 4  # the 12-bit code (NtcAdcSim returns read_u16's scaling)
        if ch == 4:
            return 876  # temperature sensor: 0.706 V, 27 °C (RP2040 datasheet 4.9.5)
        return 0


class Rp2040Board(VirtualBoard):
    """A VirtualBoard whose board process is the emulated RP2040 running the given UF2.

    The flash (2 MiB, the filesystem at 0xa0000) is `flash` (default: fs_dir/flash.bin), written
    through on every erase and program, so it survives `restart()`. The board starts empty unless
    its flash file already holds the firmware: deploy with `packwatch deploy --port <port> --board pico`.
    """

    target = "rp2040"

    def __init__(self, scenario="demo", seed=1, uf2=None, bootrom=None, flash=None, board_file=None,
                 step_ms=10, slice_ms=2, **kw):
        from ..staging import find_board_file

        self.uf2, self.bootrom = find_inputs(uf2, bootrom)
        self.node = node_exe()
        self.step_ms = step_ms
        self.slice_ms = slice_ms
        kw["install"] = False  # a Pico is flashed over its serial port, by `packwatch deploy`
        super().__init__(scenario, seed, board_file=board_file or find_board_file("pico"), **kw)
        self.flash_path = Path(flash) if flash else self.fs_dir / FLASH_NAME
        self._bridge = None

    def _launch(self, env, rep_r, req_w, raw_repl=False):
        cmd_r, cmd_w = os.pipe()
        evt_r, evt_w = os.pipe()
        uid = self.serial.encode()[-8:].rjust(8, b"\0").hex()
        log = open(self.fs_dir / "rp2040.log", "ab")
        try:
            proc = subprocess.Popen(
                [self.node, str(RUNNER_JS), "--fds", "%d,%d" % (cmd_r, evt_w), "--uf2", str(self.uf2),
                 "--bootrom", str(self.bootrom), "--flash", str(self.flash_path), "--uid", uid,
                 "--i2c", str(self.board["i2c"]["id"])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(HERE), pass_fds=(cmd_r, evt_w),
                start_new_session=True,
            )
        finally:
            log.close()
            os.close(cmd_r)
            os.close(evt_w)
        self._bridge = _Bridge(self, proc, cmd_w, evt_r, os.dup(rep_r), os.dup(req_w))
        self._bridge.start()
        return proc

    def _kill(self):
        b = self._bridge
        if b is not None:
            b.stop()
        super()._kill()  # kills node and closes the plant pipe: the bridge sees both end
        if b is not None and b is not threading.current_thread():
            b.join(timeout=5)
        self._bridge = None

    @property
    def bridge(self):
        return self._bridge

    @property
    def flash_ops(self):
        """Flash erases and programs since this boot (as of the emulator's last run slice)."""
        b = self._bridge
        return b.flash_ops if b is not None else 0

    def power_loss_at_flash_op(self, n):
        """Cut the power during the n-th flash erase or program from now (n >= 1): the n-1 before it
        finish, it stops half done (the first half of a page programmed, of a sector erased), then
        the board is power-cycled. A defined point in the firmware's writes, not a wall-clock time."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._bridge._cut = int(n)
