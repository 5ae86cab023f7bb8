# Cell balancing: the policy that drives the BQ76952's balancing FETs through CB_ACTIVE_CELLS
# (host-controlled; docs/hardware.md "Cell balancing" says why not the part's autonomous mode).
# Charge-based top balancing (docs/configuration.md "Balancing"): at the top of charge (highest cell at
# or above bal_start_mv, max-min past bal_start_dmv) the voltages show which cells are high, and each
# gets a charge to bleed (from its voltage above the lowest cell in the LFP knee, or, if more, the
# charge into the pack between its and the lowest's first reading at bal_start_mv);
# those cells then bleed until that charge is gone, in charge and rest alike (not only while above the
# start voltage), and the next top of charge measures again. Never below the lowest cell, none adjacent
# (bal_adjacent: pairs, never three in a row), at most bal_max_cells, those that bled held until done;
# charge and rest only unless bal_dsg; stops past bal_tmax_dc / bal_die_dc.
# Every bal_s the FETs go off for a short window and the mean of its samples decides (bounded duty: the
# balancing current's drop in the sense path never reaches a reading the policy uses).
# End of charge: a cell at cell_ov_mv - chg_stop_dmv turns the CHG FET off until the window's mean of
# the highest cell is back another cell_ov_hyst_mv below, so the charge ends without a cell_ov trip.
# Runs about once a second from App (which checks `next_ms` itself); the decision is pwfw.balance_run.
from array import array

from pwfw.compat import call, const, ticks_add, ticks_diff
from pwfw.plaus import cells_ext

OFF = 0
AUTO = 1
MANUAL = 2


_LOW = const(4)  # pwfw.balance_cmd.WHY index
# Balancer.st: the scalar state in one array (no attribute names, no instance dict in the loop's heap);
# the same indices in pwfw.balance, balance_run, balance_cmd and app (tests/t0/test_balance.py holds
# the copies to this one)
_MODE = const(0)  # OFF / AUTO / MANUAL
_PREV = const(1)  # the mode a manual balance falls back to
_MASK = const(2)  # cells bleeding now (bit k = cell k+1): `bal` in `rep`
_WANT = const(3)  # the manual mask (`balance cells`)
_UNTIL = const(4)  # ticks_ms the manual balance ends
_WHY = const(5)  # the last decision's reason: an index of pwfw.balance_cmd.WHY
_ACTIVE = const(6)  # auto: between start and stop delta (hysteresis), 0/1
_PAUSED = const(7)  # in the decision's window (FETs off, samples summed), 0/1
_NEXT = const(8)  # ticks_ms App calls run next
_LAST = const(9)  # ticks_ms the mask was written
_FETS = const(10)  # the FETs balancing allows (pwfw.app): 3, or 2 while the charge is stopped
_DUE = const(11)  # ticks_ms the window opens, or (in it) the decision is made
_NWIN = const(12)  # samples summed in the window
_GOAL = const(13)  # 1 while a cell has charge left to bleed (Balancer.goal_mah)
_OFF = const(14)  # ticks_ms the FETs went off for the window (what bled: _LAST to _OFF)
_BLED = const(15)  # the mask that bled from _LAST to _OFF
_N_ST = const(16)


class Balancer:
    # The state only, set up by pwfw.balance_run.init: the decision is pwfw.balance_run (loaded every
    # bal_s, and only when the pack may need it), the command and persistence pwfw.balance_cmd, so the
    # loop's heap holds neither. Attributes: cfg, n, st (the scalars, _MODE.._BLED), and per cell
    # bal_s (s bled), bled_mah (mAh bled), _rem_mas (the rest, mA.s), goal_mah (left to bleed),
    # win_mv (the window's sum).
    def __init__(self, cfg, n_cells, now=0):
        self.st = array("i", [0] * _N_ST)
        self.win_mv = array("i", [0] * n_cells)
        call("balance_run", "init", self, cfg, n_cells, now)

    def run(self, now, pack, est):
        """Once a second (App calls it when next_ms has come): the charge stop on this sample, the
        window's sums, and the decision (pwfw.balance_run.run) once the window is over. Nothing
        bleeding or left to bleed, auto mode and every cell below bal_start_mv: nothing is loaded.
        Small frames on purpose (few locals each): a large one is allocated on the heap."""
        self._stop(pack.cells)
        self._count(now, pack)
        self.st[_NEXT] = ticks_add(now, 1000)
        if self.st[_PAUSED]:
            self._add(pack.cells)
            if ticks_diff(now, self.st[_DUE]) >= 0:
                self._load(now, pack, est)
            else:
                self.st[_NEXT] = now  # every sample of the window
        elif ticks_diff(now, self.st[_DUE]) >= 0:
            self._due(now, pack)

    def _stop(self, c):
        d = self.cfg.chg_stop_dmv
        if d and self._top(c) >= self.cfg.cell_ov_mv - d:  # at once, on one sample: the AFE's CHG FET off (App drives it)
            self.st[_FETS] = 2

    def _count(self, now, pack):
        # at the top: the charge into the pack (q[0] mAh, q[1] the rest in mA.ms) and each cell's first
        # reading at bal_start_mv (x_mah: q[0] then; x_bled: its bled_mah then). The charge between two
        # cells' crossings in the knee is their surplus (pwfw.balance_run.choose); off the top, anew.
        # Few locals (q[4] holds dt): a larger frame is allocated on the heap, every second
        q = self.q
        q[4] = ticks_diff(now, q[2])
        q[2] = now
        if self._top(pack.cells) < self.cfg.bal_start_mv - 100:
            if q[3]:
                self._anew()
            return
        q[3] = 1
        # the accumulator's mean since the last sample (pwfw.plaus.Counter), not the instant's reading:
        # under an inverter's or charger's ripple a once-a-second sample is not the charge that flowed.
        # Exact while this runs on every sample (sample_ms >= 1000); at faster sampling, the last
        # interval's mean (100 ms: whole periods of a 100/120 Hz ripple)
        if pack.i_avg_ma > 0 and 0 < q[4] < 10000:
            # split before it is stored: hundreds of A over seconds pass q's 32-bit words (no new
            # local: see above)
            q[0] += pack.i_avg_ma * q[4] // 3600000
            q[1] += pack.i_avg_ma * q[4] % 3600000
            if q[1] >= 3600000:
                q[0] += 1
                q[1] -= 3600000
        self._cross(pack.cells)

    def _anew(self):
        q = self.q
        q[0] = q[1] = q[3] = 0
        k = 0
        while k < self.n:
            self.x_mah[k] = -1
            k += 1

    def _cross(self, c):
        x = self.x_mah
        k = 0
        while k < self.n:
            if x[k] < 0 and c[k] >= self.cfg.bal_start_mv:
                x[k] = self.q[0]
                self.x_bled[k] = self.bled_mah[k]
            k += 1

    def _due(self, now, pack):
        if self._idle(pack.cells):
            self.st[_WHY] = _LOW if self.st[_MODE] else 1
            self.st[_ACTIVE] = 0
            self.st[_DUE] = ticks_add(now, self.cfg.bal_s * 1000)
        else:
            self._open(now, pack)

    def _idle(self, c):
        st = self.st
        return not (st[_MASK] or st[_GOAL]) and st[_FETS] == 3 and (
            st[_MODE] == OFF or st[_MODE] == AUTO and self._top(c) < self.cfg.bal_start_mv)

    def _open(self, now, pack):
        st = self.st
        st[_PAUSED] = 1  # open the window: FETs off, then its mean decides
        st[_NWIN] = 0
        st[_OFF] = now
        st[_BLED] = st[_MASK]
        st[_NEXT] = now
        st[_DUE] = ticks_add(now, min(3000, self.cfg.bal_s * 100))
        if st[_MASK]:
            st[_MASK] = 0
            try:
                pack.afe.cb_write(0)
            except (OSError, ValueError):
                pass  # the decision writes again
        else:
            self._add(pack.cells)  # nothing bleeds: this reading is clean already

    def _add(self, c):
        s = self.win_mv
        if not self.st[_NWIN]:
            for k in range(self.n):
                s[k] = 0
        for k in range(self.n):
            s[k] += c[k]
        self.st[_NWIN] += 1

    def _load(self, now, pack, est):
        try:
            call("balance_run", "run", self, now, pack, est)
        except MemoryError:  # no room to load the decision now: FETs off, try in 1 s
            self.st[_DUE] = ticks_add(now, 1000)

    def _top(self, c):  # max(0, the cells): a viper loop (pwfw.plaus)
        return cells_ext(c, self.n, 1)
