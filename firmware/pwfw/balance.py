# Cell balancing: the policy that drives the BQ76952's balancing FETs through CB_ACTIVE_CELLS
# (host-controlled; docs/hardware.md "Cell balancing" says why not the part's autonomous mode).
# Top balancing: above bal_start_mv, when max-min reaches bal_start_dmv, the highest cells bleed
# until max-min is down to bal_stop_dmv; a cell is bled only while it sits above the lowest cell
# by more than the stop delta, so none is ever taken below the lowest. Charge and rest only unless
# bal_dsg. Stops when a board/cell thermistor passes bal_tmax_dc or the AFE's die bal_die_dc.
# Decided every bal_s seconds with the FETs off for the one sample the decision reads (bounded
# duty: the balancing current's drop in the sense path never reaches a reading the policy uses).
# Runs once per bal_s, never per sample: App checks `next_ms` itself.
from pwfw.compat import call, const, ticks_add

OFF = 0
AUTO = 1
MANUAL = 2


_LOW = const(4)  # pwfw.balance_cmd.WHY index
# Balancer.st: the scalar state in one array (no attribute names, no instance dict in the loop's heap);
# the same indices in pwfw.balance, balance_run, balance_cmd and app
_MODE = const(0)  # OFF / AUTO / MANUAL
_PREV = const(1)  # the mode a manual balance falls back to
_MASK = const(2)  # cells bleeding now (bit k = cell k+1): `bal` in `rep`
_WANT = const(3)  # the manual mask (`balance cells`)
_UNTIL = const(4)  # ticks_ms the manual balance ends
_WHY = const(5)  # the last decision's reason: an index of pwfw.balance_cmd.WHY
_ACTIVE = const(6)  # auto: between start and stop delta (hysteresis), 0/1
_PAUSED = const(7)  # FETs off for the decision's sample, 0/1
_NEXT = const(8)  # ticks_ms of the next decision
_LAST = const(9)  # ticks_ms of the last one


class Balancer:
    # The state only, set up by pwfw.balance_run.init: the decision is pwfw.balance_run (loaded every
    # bal_s, and only when the pack may need it), the command and persistence pwfw.balance_cmd, so the
    # loop's heap holds neither. Attributes: cfg, n, st (the scalars, _MODE.._LAST), and per cell
    # bal_s (s bled), bled_mah (mAh bled), _rem_mas (the rest, mA.s).
    def __init__(self, cfg, n_cells, now=0):
        call("balance_run", "init", self, cfg, n_cells, now)

    def run(self, now, pack, est):
        """One decision (pwfw.balance_run.run): App calls it once next_ms has come. Nothing bleeding,
        auto mode and every cell below bal_start_mv: nothing to decide, so nothing is loaded."""
        if not self.st[_MASK] and self.st[_MODE] == AUTO and self._top(pack.cells) < self.cfg.bal_start_mv:
            self._low(now)
        else:
            self._load(now, pack, est)

    def _low(self, now):
        self.st[_WHY] = _LOW
        self.st[_ACTIVE] = 0
        self.st[_LAST] = now
        self.st[_NEXT] = ticks_add(now, self.cfg.bal_s * 1000)

    def _load(self, now, pack, est):
        try:
            call("balance_run", "run", self, now, pack, est)
        except MemoryError:  # no room to load the decision now: the FETs stay as they are, try in 1 s
            self.st[_NEXT] = ticks_add(now, 1000)

    def _top(self, c):  # its own small frame: run's stays on the C stack (a large one is heap-allocated)
        hi = 0
        k = 0
        while k < self.n:
            hi = c[k] if c[k] > hi else hi
            k += 1
        return hi
