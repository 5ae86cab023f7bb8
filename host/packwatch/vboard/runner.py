"""VirtualBoard: the three parts of a virtual board on one loop thread.

    board process ── pty A ──┐                   ┌── pty B slave: the board's serial port (host tools)
      (board.py: MicroPython │  relay (relay.py) │
       + hal_sim + chips) ── plant pipe ── lockstep (lockstep.py) ── plant (hil.plant, numpy)

The parts share the instance (each initialises and owns its own attributes); this module only
starts and stops them and runs the loop that polls their descriptors. A second board process
subclasses VirtualBoard and replaces `_launch`/`_kill` (packwatch.vboard.rp2040).
"""
import os
import select
import threading
import time

from .board import BoardProcess
from .lockstep import _SPEC_DEPTH, Lockstep
from .relay import _OUT_HIGH_WATER, Relay


class VirtualBoard(BoardProcess, Relay, Lockstep):
    def __init__(self, scenario="demo", seed=1, realtime=False, speed=1.0, fs_dir=None, board_file=None,
                 link=None, heap="96K", chemistry=None, install=True, serial=None, truth_every_ms=0,
                 pipeline=True):
        from hil.scenarios import get

        self.scenario = get(scenario) if isinstance(scenario, str) else scenario
        self.chemistry = chemistry or self.scenario.chemistry
        self.seed = seed
        self.serial = serial or "VB%08X" % (seed & 0xFFFFFFFF)
        self._lock = threading.RLock()
        self._running = False
        self.error = None
        self._init_process(fs_dir, board_file, heap, install)
        self._init_relay(link)
        self._init_lockstep(realtime, speed, truth_every_ms, pipeline)
        self._poller = None
        self._polled = None
        self._house = 0.0  # next wall time for the slow checks (host connected, process alive)

    # --- life cycle ----------------------------------------------------------------------
    def start(self):
        self._open_ptys()
        self._running = True
        self._spawn()
        self._thread = threading.Thread(target=self._loop, name="vboard", daemon=True)
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._running = False
        if getattr(self, "_thread", None):
            self._thread.join(timeout=5)
        self._kill()
        self._close_ptys()
        self._remove_flash()

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
                self._from_host()
            if self._outq and self._b_master is not None:
                self._flush_host()
            self._serve()
            if (len(self._specq) < _SPEC_DEPTH and self._pending is None and self._next is not None
                    and not self._reqbuf):
                self._run_ahead()

    def _housekeeping(self, now):
        """The slow checks, every few ms of wall time rather than on every step."""
        self._house = now + 0.005
        self._check_host()
        self._check_process()
