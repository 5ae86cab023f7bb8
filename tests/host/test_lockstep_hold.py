"""The runner's hold (tests freeze virtual time with it) when the firmware's next step is not the one
computed ahead: the plant must stand where the firmware is, not at the end of the steps sent ahead.
Seen under load as a flaky T2 test (test_a_hold_stops_the_firmware_where_the_plant_is: the plant 8 ms
past the truth's last row at a freeze). Here the firmware's requests are written by hand into the
runner's request pipe, so the interleaving that load produced is fixed."""
import os
import threading

from hil.scenarios import get
from packwatch.vboard.lockstep import _REQ, Lockstep


class Runner(Lockstep):
    """The plant-and-time part of VirtualBoard alone (no firmware process: the test is the firmware)."""

    def __init__(self):
        self.board = {}
        self.scenario = get("day")
        self.seed = 1
        self.boots = 1
        self._lock = threading.RLock()
        self._init_lockstep(False, 1.0, 1, True)
        req_r, self._req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        os.set_blocking(rep_r, False)  # a held step gets no reply
        self._rep_r = rep_r
        self._new_boot(req_r, rep_w)

    def _ld_charger(self):
        return False

    def step(self, t_ms):
        """The firmware asks for the step ending at t_ms; the runner serves it, then computes ahead."""
        os.write(self._req_w, _REQ.pack(b"S", t_ms, 7, -1, 0))
        self._read_requests()
        self._serve()
        if self._pending is None and self._next is not None:
            self._run_ahead()
        try:
            os.read(self._rep_r, 1 << 16)  # what the firmware would read (replies, those sent ahead too)
        except BlockingIOError:
            pass


def test_a_hold_at_a_step_not_computed_ahead_puts_the_plant_back_where_the_firmware_is():
    r = Runner()
    for t in range(0, 1100, 100):  # from boot (0: the clocks aligned), a steady 100 ms grid: the runner learns it and runs 8 steps ahead
        r.step(t)
    assert len(r._specq) == 8 and r.plant.t_ms == 1800  # the premise: steps computed ahead
    r.hold_at_ms = r.t_ms  # freeze(): before the plant, so the hold moves to the last step sent ahead
    assert r.hold_at_ms == 1800
    for t in range(1100, 1800, 100):  # the firmware takes the replies sent ahead up to 1700 ...
        r.step(t)
    r.step(1850)  # ... then asks for a longer step (it woke late), past the hold: it waits there
    assert r.held
    # the plant stands at the firmware's last step, which is the truth's last row (not at 1800)
    assert r.plant.t_ms == r.truth[-1][0] == r.t_ms == 1700
    r.hold_at_ms = None
    r._serve()
    assert r.plant.t_ms == r.truth[-1][0] == 1850 and not r._specq
